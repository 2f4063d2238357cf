//! The deploy manifest's `config` block (documented in `manifests/deploy.yaml`).

use bext_plugin_abi::units::Span;
use serde::Deserialize;

/// Typed `config` of the deploy plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Old versions kept per app besides the current one (for rollbacks);
    /// older ones are removed with their files.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: usize,
    /// How long a preview is served before it is removed.
    #[serde(default = "default_preview_ttl")]
    pub preview_ttl: Span,
    /// The admin API needs `Authorization: Bearer` with the value of this
    /// environment variable (and answers 404 when it is unset).
    #[serde(default = "default_token_env")]
    pub admin_token_env: String,
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
