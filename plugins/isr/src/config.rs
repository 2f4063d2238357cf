//! The isr manifest's `config` block (documented in `manifests/isr.yaml`).

use bext_plugin_abi::units::{ByteSize, Span};
use serde::Deserialize;

/// Typed `config` of the isr plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Most responses kept per app.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Most bytes (bodies and headers) kept per app.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Larger responses are passed through, never kept.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: ByteSize,
    /// Freshness for responses that say nothing about caching; none keeps
    /// only what the app marks cacheable (or a rule's `ttl` covers).
    #[serde(default)]
    pub default_ttl: Option<Span>,
    /// How long such answers are then served stale while one request
    /// refreshes them (the original bext's `default_swr_ms`).
    #[serde(default)]
    pub default_swr: Option<Span>,
    /// How long a 404 or 410 may be served from the cache at most.
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: Span,
    /// How long requests for a key being fetched wait for the first one.
    #[serde(default = "default_wait")]
    pub wait_timeout: Span,
    /// Query parameters left out of the key (`name` or `prefix*`), and so
    /// removed from requests that go through the cache: what the key does
    /// not say must not reach the app.
    #[serde(default = "default_ignored_params")]
    pub ignore_params: Vec<String>,
    /// Per-path rules; the first whose `path` matches applies.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Request headers that carry a caller's credentials the cache cannot
    /// see through (RFC 9111 §3.5): a request with any of them passes the
    /// cache by unless its rule says `authorized: true`, and a response
    /// that `Vary`s on one is not shared. Add the header authn (or the
    /// app) reads API keys from when it is not `x-api-key`.
    #[serde(default = "default_credential_headers")]
    pub credential_headers: Vec<String>,
    /// Admin endpoints (`{base}/invalidate`, `{base}/revalidate`) need
    /// `Authorization: Bearer` with the value of this environment variable.
    #[serde(default = "default_token_env")]
    pub admin_token_env: String,
}

/// `rules[]`: how one path pattern is cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Exact path or `/prefix/*`.
    pub path: String,
    /// Fresh for this long, whatever the app's `Cache-Control` says.
    #[serde(default)]
    pub ttl: Option<Span>,
    /// Then served stale for this long while one request refreshes it.
    #[serde(default)]
    pub swr: Option<Span>,
    /// Never cached.
    #[serde(default)]
    pub no_store: bool,
    /// Requests from a caller (a subject authn verified, or credentials in
    /// `credential_headers`) may be served from and stored in the cache,
    /// each caller under its own key: a page per user, kept per user.
    #[serde(default)]
    pub authorized: bool,
}

fn default_max_entries() -> usize {
    10_000
}

fn default_max_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

fn default_max_entry_bytes() -> ByteSize {
    ByteSize(8 << 20)
}

fn default_negative_ttl() -> Span {
    Span(std::time::Duration::from_secs(10))
}

fn default_wait() -> Span {
    Span(std::time::Duration::from_secs(10))
}

fn default_ignored_params() -> Vec<String> {
    [
        "utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl",
    ]
    .map(String::from)
    .to_vec()
}

fn default_credential_headers() -> Vec<String> {
    ["authorization", "proxy-authorization", "cookie", "x-api-key"]
        .map(String::from)
        .to_vec()
}

fn default_token_env() -> String {
    "BEXT_ADMIN_TOKEN".into()
}
