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
}
