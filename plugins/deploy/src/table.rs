//! What the registry adds to the kernel's app table before each pipeline
//! build ([`bext_plugin_abi::BuiltinPlugin::app_changes`]): every app
//! with a current version is served from that version's directory (an
//! app only the registry knows, created by a deploy, as its bundle's
//! `bext.config.toml` describes it); a live preview is the app with the
//! preview's files and `preview_env` on the preview's own hosts; a
//! canary is the app with the canary's files as a hidden app, which this
//! plugin's `on_request` sends its share of visitors to.

use bext_plugin_abi::{AppChange, Domains, Env};

use crate::registry::Served;
use crate::{canary_app_id, preview_app_id};

/// The changes `served` makes to the table at Unix time `now` (expired
/// previews are left out), in the order the kernel applies them.
pub fn changes(served: Served, now: u64) -> Vec<AppChange> {
    let current = served.current.into_iter().map(|v| AppChange {
        id: v.app.clone(),
        like: v.app,
        source: v.path,
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
            source: p.path,
            domains: Domains::Preview(p.name),
            env: Env::Preview,
        });
    let canaries = served.canaries.into_iter().map(|c| AppChange {
        id: canary_app_id(&c.app, &c.version),
        like: c.app,
        source: c.path,
        domains: Domains::Hidden,
        env: Env::Same,
    });
    current.chain(previews).chain(canaries).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{CanaryRecord, PreviewRecord, VersionRecord};

    #[test]
    fn current_versions_then_live_previews_then_canaries() {
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
        let served = Served {
            current: vec![version],
            canaries: vec![canary],
            previews: vec![preview("pr-1", 100), preview("old", 50)],
        };
        let changes = changes(served, 60);
        let summary: Vec<(&str, &str, PathBuf, &Domains, Env)> = changes
            .iter()
            .map(|c| (c.id.as_str(), c.like.as_str(), c.source.clone(), &c.domains, c.env))
            .collect();
        assert_eq!(
            summary,
            [
                ("shop", "shop", "/d/shop/v2".into(), &Domains::Same, Env::Same),
                (
                    "shop~pr-1",
                    "shop",
                    "/d/shop/v3".into(),
                    &Domains::Preview("pr-1".into()),
                    Env::Preview
                ),
                ("shop@v4", "shop", "/d/shop/v4".into(), &Domains::Hidden, Env::Same),
            ],
            "the expired preview is left out"
        );
    }
}
