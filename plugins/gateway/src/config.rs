//! The gateway manifest's `config` block (documented in
//! `manifests/gateway.yaml`).

use std::collections::BTreeMap;

use bext_plugin_abi::units::Span;
use serde::Deserialize;

/// Typed `config` of the gateway plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rate limits, each checked in order; the first that refuses answers.
    #[serde(default)]
    pub limits: Vec<LimitConfig>,
    /// The app's own limit, from `[apps.<id>] rate_limit` in the platform
    /// file (the kernel fills this in).
    #[serde(default)]
    pub app_limit: Option<AppLimitConfig>,
    /// Where in the request chain `by: subject` limits decide: after
    /// authn (300) verified the subject, so a forged token cannot pick a
    /// bucket. The other limits decide at the plugin's own priority,
    /// before authn spends time on cryptography.
    #[serde(default = "subject_priority")]
    pub subject_priority: i32,
    /// Leading bits of an IPv4 address that make one client for `by: ip`
    /// (and the address fallback of the other keys): 32, each address.
    #[serde(default = "ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that make one client: 64, since a
    /// host usually holds a whole /64 and could otherwise take a fresh
    /// bucket per address.
    #[serde(default = "ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Keys kept by the in-memory limiter at most (idle ones go first).
    #[serde(default = "max_keys")]
    pub max_keys: usize,
    /// CORS; off when absent.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Response headers added to every answer.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A preset of security headers: `basic` or `strict`.
    #[serde(default)]
    pub security_headers: Option<SecurityPreset>,
    /// Replace a header the app set itself with the configured value
    /// (default: the app's own value wins).
    #[serde(default)]
    pub override_headers: bool,
}

/// One `limits:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// A name for logs and headers; `limit-<n>` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Who shares a bucket.
    #[serde(default)]
    pub by: LimitKey,
    /// The header holding the API key (`by: header`).
    #[serde(default)]
    pub header: Option<String>,
    /// Requests a minute.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Requests a second (instead of `rpm`).
    #[serde(default)]
    pub rps: Option<u32>,
    /// Requests allowed at once; the rate's one-second worth when absent
    /// (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Only requests whose path matches one of these (`/api/*` is a
    /// prefix; `/login` exact). All paths when empty.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Only these methods. All when empty.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// What a limit counts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// The client address (as the WAF resolved it behind trusted proxies,
    /// else the TCP peer).
    #[default]
    Ip,
    /// The whole app: every client shares one bucket.
    App,
    /// A header's value, such as an API key; requests without it, or
    /// with an empty one, fall back to the client address.
    Header,
    /// The subject the authn plugin verified (a JWT's `sub`, an API key's
    /// name); else the client address. Decided at `subject_priority`.
    Subject,
}

/// `[apps.<id>] rate_limit` of the platform file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLimitConfig {
    /// Requests a minute.
    pub rpm: u32,
    /// Requests allowed at once.
    #[serde(default)]
    pub burst: Option<u32>,
    /// `app` (default: one bucket for the app) or `ip` (one per client).
    #[serde(default = "app_key")]
    pub by: LimitKey,
}

fn app_key() -> LimitKey {
    LimitKey::App
}

fn subject_priority() -> i32 {
    350
}

fn ipv4_prefix() -> u8 {
    32
}

fn ipv6_prefix() -> u8 {
    64
}

fn max_keys() -> usize {
    1_000_000
}

/// `cors:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), wildcard
    /// subdomains (`https://*.example.com`) or `*` (any).
    pub origins: Vec<String>,
    /// Allowed methods.
    #[serde(default = "cors_methods")]
    pub methods: Vec<String>,
    /// Allowed request headers (`*`: whatever the preflight asks).
    #[serde(default = "cors_headers")]
    pub headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub expose: Vec<String>,
    /// Allow cookies and `Authorization` (never with `origins: ["*"]`).
    #[serde(default)]
    pub credentials: bool,
    /// How long browsers may cache a preflight.
    #[serde(default = "max_age")]
    pub max_age: Span,
}

fn cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

fn cors_headers() -> Vec<String> {
    ["content-type", "authorization"].map(String::from).to_vec()
}

fn max_age() -> Span {
    Span(std::time::Duration::from_secs(600))
}

/// Security header presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityPreset {
    /// HSTS (1 year), `nosniff`, `SAMEORIGIN` frames,
    /// `strict-origin-when-cross-origin` referrers.
    Basic,
    /// HSTS (2 years, subdomains, preload), `nosniff`, no frames, no
    /// referrers, cross-origin isolation of the opener.
    Strict,
}
