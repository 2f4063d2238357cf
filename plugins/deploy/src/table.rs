//! What the registry adds to the kernel's app table before each pipeline
//! build ([`bext_plugin_abi::BuiltinPlugin::app_changes`]): every app
//! with a current version is served from that version's directory (an
//! app only the registry knows, created by a deploy, as its bundle's
//! `bext.config.toml` describes it); a live preview is the app with the
//! preview's files and `preview_env` on the preview's own hosts; a
//! canary is the app with the canary's files as a hidden app, which this
//! plugin's `on_request` sends its share of visitors to. Last, each app
//! gets its tenants' own domains (after the copies, so that no preview or
//! canary has them).

use std::collections::BTreeMap;

use bext_plugin_abi::{AppChange, AppInfo, Domains, Env};

use crate::registry::Served;
use crate::{canary_app_id, preview_app_id};

/// The changes `served` makes to `table` at Unix time `now` (expired
/// previews are left out), in the order the kernel applies them. A
/// tenant's domain whose app is in neither `table` nor the registry's
/// current versions (an app that left the platform file) is left out.
pub fn changes(served: Served, now: u64, table: &[AppInfo]) -> Vec<AppChange> {
    let mut tenants: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for d in served.domains {
        let known = table.iter().any(|a| a.id == d.app) || served.current.iter().any(|v| v.app == d.app);
        if known {
            tenants.entry(d.app).or_default().insert(d.domain, d.tenant);
        } else {
            tracing::warn!(target: "bext::deploy", app = %d.app, domain = %d.domain, "tenant domain not served: no such app");
        }
    }
    let current = served.current.into_iter().map(|v| AppChange {
        id: v.app.clone(),
        like: v.app,
        source: Some(v.path),
        domains: Domains::Same,
        env: Env::Same,
    });
    let previews = served
        .previews
        .into_iter()
        .filter(|p| p.expires_at > now)
        .map(|p| AppChange {
            id: preview_app_id(&p.app, &p.name),
            like: p.app,
            source: Some(p.path),
            domains: Domains::Preview(p.name),
            env: Env::Preview,
        });
    let canaries = served.canaries.into_iter().map(|c| AppChange {
        id: canary_app_id(&c.app, &c.version),
        like: c.app,
        source: Some(c.path),
        domains: Domains::Hidden,
        env: Env::Same,
    });
    let domains = tenants.into_iter().map(|(app, domains)| AppChange {
        id: app.clone(),
        like: app,
        source: None,
        domains: Domains::Tenants(domains),
        env: Env::Same,
    });
    current.chain(previews).chain(canaries).chain(domains).collect()
}

/// The app a pin (`skedly@1.2`, written in a vhosts entry as Buntime
/// writes it) is served as: the newest of `versions` (newest first) named
/// `spec` or `v<spec>`, or whose name goes on from it after a dot
/// (`1.2` is `1.2.7` or `v1.2.0`), as a hidden app named `pin`.
pub fn pinned(pin: &str, app: &str, spec: &str, versions: &[crate::VersionRecord]) -> Option<AppChange> {
    let matches = |name: &str| {
        let name = name.strip_prefix('v').unwrap_or(name);
        let spec = spec.strip_prefix('v').unwrap_or(spec);
        name == spec || name.strip_prefix(spec).is_some_and(|rest| rest.starts_with('.'))
    };
    let v = versions.iter().find(|v| matches(&v.version))?;
    Some(AppChange {
        id: pin.to_owned(),
        like: app.to_owned(),
        source: Some(v.path.clone()),
        domains: Domains::Hidden,
        env: Env::Same,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{CanaryRecord, DomainRecord, PreviewRecord, VersionRecord};

    #[test]
    fn current_versions_then_live_previews_then_canaries_then_tenant_domains() {
        let version = VersionRecord {
            app: "shop".into(),
            version: "v2".into(),
            path: "/d/shop/v2".into(),
            routes: vec![],
            files: 1,
            bytes: 1,
            deployed_at: 1,
            deployed_by: "me".into(),
            current: true,
        };
        let preview = |name: &str, expires_at| PreviewRecord {
            app: "shop".into(),
            name: name.into(),
            version: "v3".into(),
            path: "/d/shop/v3".into(),
            created_at: 1,
            expires_at,
        };
        let canary = CanaryRecord {
            app: "shop".into(),
            version: "v4".into(),
            path: "/d/shop/v4".into(),
            share: 10,
            started_at: 1,
            auto_promote_after: None,
            max_error_rate: None,
        };
        let domain = |domain: &str, app: &str| DomainRecord {
            domain: domain.into(),
            app: app.into(),
            tenant: "customer".into(),
            added_at: 1,
            added_by: "me".into(),
        };
        let served = Served {
            current: vec![version],
            canaries: vec![canary],
            previews: vec![preview("pr-1", 100), preview("old", 50)],
            domains: vec![
                domain("b.customer.test", "shop"),
                domain("a.customer.test", "shop"),
                domain("c.customer.test", "blog"),
                domain("d.customer.test", "gone"),
            ],
        };
        let blog = AppInfo {
            id: "blog".into(),
            domains: vec![],
            tenant_domains: Default::default(),
        };
        let changes = changes(served, 60, &[blog]);
        let summary: Vec<(&str, &str, Option<PathBuf>, &Domains, Env)> = changes
            .iter()
            .map(|c| (c.id.as_str(), c.like.as_str(), c.source.clone(), &c.domains, c.env))
            .collect();
        let tenants =
            |names: &[&str]| Domains::Tenants(names.iter().map(|n| ((*n).to_owned(), "customer".to_owned())).collect());
        let (blog_domains, shop_domains) = (
            tenants(&["c.customer.test"]),
            tenants(&["a.customer.test", "b.customer.test"]),
        );
        assert_eq!(
            summary,
            [
                ("shop", "shop", Some("/d/shop/v2".into()), &Domains::Same, Env::Same),
                (
                    "shop~pr-1",
                    "shop",
                    Some("/d/shop/v3".into()),
                    &Domains::Preview("pr-1".into()),
                    Env::Preview
                ),
                (
                    "shop@v4",
                    "shop",
                    Some("/d/shop/v4".into()),
                    &Domains::Hidden,
                    Env::Same
                ),
                ("blog", "blog", None, &blog_domains, Env::Same),
                ("shop", "shop", None, &shop_domains, Env::Same),
            ],
            "the expired preview is left out, and the domain of an app nobody has"
        );
    }

    #[test]
    fn a_pin_is_the_newest_version_it_names() {
        let v = |name: &str| VersionRecord {
            app: "skedly".into(),
            version: name.into(),
            path: PathBuf::from(format!("/d/skedly/{name}")),
            routes: vec![],
            files: 1,
            bytes: 1,
            deployed_at: 1,
            deployed_by: "me".into(),
            current: false,
        };
        let versions = [v("1.3.0"), v("v1.2.7"), v("1.2.1"), v("1.20"), v("v2")];
        let path = |spec: &str| pinned(&format!("skedly@{spec}"), "skedly", spec, &versions).map(|c| c.source);
        assert_eq!(path("1.2"), Some(Some("/d/skedly/v1.2.7".into())));
        assert_eq!(path("1.2.1"), Some(Some("/d/skedly/1.2.1".into())));
        assert_eq!(path("2"), Some(Some("/d/skedly/v2".into())));
        assert_eq!(path("1.20"), Some(Some("/d/skedly/1.20".into())));
        assert_eq!(path("1.4"), None);
        let c = pinned("skedly@1.2", "skedly", "1.2", &versions).unwrap();
        assert_eq!(
            (c.id.as_str(), c.like.as_str(), c.domains),
            ("skedly@1.2", "skedly", Domains::Hidden)
        );
    }
}
