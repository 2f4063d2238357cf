//! The deploy manifest's `config` block (documented in `manifests/deploy.yaml`).

use bext_plugin_abi::units::{ByteSize, Span};
use serde::Deserialize;

use std::collections::BTreeMap;

use crate::DeployHooks;
use crate::bundle::Limits;

/// Typed `config` of the deploy plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Old versions kept per app besides the current one (for rollbacks);
    /// older ones are removed with their files.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: usize,
    /// How long a preview is served before it is removed.
    #[serde(
        default = "default_preview_ttl",
        deserialize_with = "bext_plugin_abi::units::preview_ttl"
    )]
    pub preview_ttl: Span,
    /// The admin API needs `Authorization: Bearer` with the value of this
    /// environment variable (and answers 404 when it is unset).
    #[serde(default = "default_token_env")]
    pub admin_token_env: String,
    /// Largest total size of one bundle's files, unpacked: a bigger one is
    /// refused (413 from the admin API) before it is stored.
    #[serde(default = "default_max_bundle_bytes")]
    pub max_bundle_bytes: ByteSize,
    /// Most entries (files and directories) in one bundle: a bundle with
    /// more is refused (413 from the admin API) before it is stored.
    #[serde(default = "default_max_bundle_entries")]
    pub max_bundle_entries: u64,
    /// Each app's `pre_build` and `post_deploy` commands, by app id: what
    /// the platform file's `[apps.<id>] hooks = { ... }` says, passed on by
    /// the kernel (a manifest may set them here too).
    #[serde(default)]
    pub app_hooks: BTreeMap<String, DeployHooks>,
    /// The ids of the apps the platform file declares, passed on by the
    /// kernel (it replaces what a manifest says): the registry records them
    /// as `platform` apps, and every other app it knows as created by a
    /// deploy. The app table the plugin is built with also holds the apps
    /// the registry adds (created by deploys, canaries, previews).
    #[serde(default)]
    pub platform_apps: Option<Vec<String>>,
    /// Hosts the platform routes outside the app table, passed on by the
    /// kernel (it replaces what a manifest says): the vhosts `hosts` map,
    /// `admin_hosts`, the names a default app serves by its certificate.
    /// With the table's apps' `domains` and `tenant_domains`, none may
    /// become a tenant's own domain.
    #[serde(default)]
    pub reserved_hosts: Vec<bext_plugin_abi::claims::Claim>,
    /// Apps that keep another number of old versions, by app id: the
    /// platform file's `[apps.<id>] deploy.keep_versions`, passed on by the
    /// kernel.
    #[serde(default)]
    pub app_keep_versions: BTreeMap<String, usize>,
    /// Most apps the registry may hold (`[platform] max_apps`, passed on
    /// by the kernel): a deploy creating one more is refused (409).
    #[serde(default)]
    pub max_apps: Option<usize>,
    /// `[platform] max_isolates` and the JS isolates of the app table as
    /// last built, passed on by the kernel: a deploy that would start
    /// more (a new JS app, a preview, a canary) is refused (409).
    #[serde(default)]
    pub isolates: Option<IsolateBudget>,
    /// Apps named with a version (`skedly@1.2`) by the vhosts `hosts` map,
    /// passed on by the kernel: each is served from the newest deployed
    /// version that matches, as a hidden app of that name.
    #[serde(default)]
    pub pinned_versions: Vec<String>,
}

/// What the JS apps may run, in isolates, and what they run now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateBudget {
    /// `[platform] max_isolates`.
    pub max: usize,
    /// Isolates of each app of the table (0: not a JS app), previews
    /// (`app~name`) and canaries (`app@version`) included.
    #[serde(default)]
    pub apps: BTreeMap<String, usize>,
    /// Isolates of a JS app a bundle creates (the defaults: a bundle sets
    /// no isolate settings).
    pub new_app: usize,
}

impl Config {
    /// The bounds every bundle is held to.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_bundle_bytes.0,
            max_entries: self.max_bundle_entries,
        }
    }
}

fn default_keep_versions() -> usize {
    5
}

fn default_preview_ttl() -> Span {
    Span(std::time::Duration::from_secs(7 * 86400))
}

fn default_token_env() -> String {
    "BEXT_ADMIN_TOKEN".into()
}

fn default_max_bundle_bytes() -> ByteSize {
    ByteSize(Limits::default().max_bytes)
}

fn default_max_bundle_entries() -> u64 {
    Limits::default().max_entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_limits_decode_and_the_manifest_documents_their_defaults() {
        let config: Config = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(config.limits(), Limits::default());
        let config: Config =
            serde_json::from_value(serde_json::json!({ "max_bundle_bytes": "64KiB", "max_bundle_entries": 50 }))
                .unwrap();
        assert_eq!(
            config.limits(),
            Limits {
                max_bytes: 64 << 10,
                max_entries: 50
            }
        );
        let manifest = include_str!("../../../manifests/deploy.yaml");
        let defaults = Limits::default();
        assert!(manifest.contains(&format!("  max_bundle_bytes: {}GiB\n", defaults.max_bytes >> 30)));
        assert!(manifest.contains(&format!("  max_bundle_entries: {}\n", defaults.max_entries)));
    }
}
