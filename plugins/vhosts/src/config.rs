//! The vhosts manifest's `config` block (documented in `manifests/vhosts.yaml`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Typed `config` of the vhosts plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host pattern → entry. A pattern is an exact host (`example.com`), a
    /// wildcard (`*.example.com`, capturing the tenant) or a regex prefixed
    /// with `~` (anchored; a named group `tenant` captures the tenant).
    #[serde(default)]
    pub hosts: BTreeMap<String, HostEntry>,
    /// Also route every app's `domains` from the platform file.
    #[serde(default = "yes")]
    pub app_domains: bool,
}

fn yes() -> bool {
    true
}

/// Where one host pattern sends a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Id of the app that serves this host.
    pub app: String,
    /// Only paths under this prefix match this entry; others fall through.
    #[serde(rename = "pathPrefix", default)]
    pub path_prefix: Option<String>,
    /// Skip the app's `on_request`/`on_response` plugins for this host.
    #[serde(default)]
    pub bypass: bool,
}

/// The app an entry's `app` names: Buntime's `name@latest` is the app's
/// current version, the app itself; other `name@version` pins are apps the
/// deploy registry adds for that version (its `pinned_versions`).
pub fn served_app(app: &str) -> &str {
    app.strip_suffix("@latest").unwrap_or(app)
}

#[cfg(test)]
mod tests {
    #[test]
    fn latest_is_the_app_itself_and_other_pins_are_kept() {
        assert_eq!(super::served_app("skedly@latest"), "skedly");
        assert_eq!(super::served_app("skedly@1.2"), "skedly@1.2");
        assert_eq!(super::served_app("admin-panel"), "admin-panel");
    }
}
