//! The authn manifest's `config` block (documented in
//! `manifests/authn.yaml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bext_plugin_abi::PluginError;
use bext_plugin_abi::units::Span;
use http::HeaderName;
use serde::Deserialize;

/// Typed `config` of the authn plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Refuse requests without valid credentials (401); `false` checks
    /// credentials when present and lets anonymous requests through on
    /// paths that no scope rule covers.
    #[serde(default = "yes")]
    pub required: bool,
    /// Paths that need no credentials (`/health`, `/assets/*`), unless a
    /// scope rule covers them: rules win over `public`.
    #[serde(default)]
    pub public: Vec<String>,
    /// Paths that need scopes (401 without a credential, 403 without the
    /// scopes), whatever `required` and `public` say.
    #[serde(default)]
    pub scopes: Vec<ScopeRule>,
    /// JWT settings; JWTs are off when absent.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Shortcut for an HS256 secret read from this environment variable
    /// (`[apps.<id>] auth = { jwt_secret_env = "..." }`).
    #[serde(default)]
    pub jwt_secret_env: Option<String>,
    /// API keys; off when absent.
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
    /// Headers the app receives about the caller; client-sent copies are
    /// always removed first.
    #[serde(default)]
    pub forward: ForwardConfig,
    /// `realm` of `WWW-Authenticate`.
    #[serde(default = "realm")]
    pub realm: String,
}

/// `scopes:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// Exact path or prefix ending in `*`.
    pub path: String,
    /// Only for these methods; all when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Every one of these is needed.
    pub require: Vec<String>,
}

/// `jwt:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Keys from the config or the environment.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// A JWKS document: a file (relative to the data directory) or an
    /// `https://` (or `http://`) URL; cached and refreshed.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Extra certificate authorities (a PEM file, relative to the data
    /// directory) trusted for an `https://` JWKS besides the public ones:
    /// an identity provider behind a private CA.
    #[serde(default)]
    pub jwks_ca: Option<String>,
    /// How often the JWKS is fetched again.
    #[serde(default = "jwks_refresh")]
    pub jwks_refresh: Span,
    /// Accepted issuers (`iss`); any when empty.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`); when empty, tokens with an `aud` are
    /// refused (they were meant for someone else).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "leeway")]
    pub leeway: Span,
    /// Where the token is: `Authorization: Bearer` always, and this
    /// cookie too when set.
    #[serde(default)]
    pub cookie: Option<String>,
}

impl Default for JwtConfig {
    /// The settings of `jwt_secret_env` without a `jwt` block: every field
    /// at its default, as an empty `jwt: {}` gives.
    fn default() -> Self {
        JwtConfig {
            keys: Vec::new(),
            jwks: None,
            jwks_ca: None,
            jwks_refresh: jwks_refresh(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: leeway(),
            cookie: None,
        }
    }
}

/// One key of `jwt.keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// `kid` a token names to pick this key; tokens without `kid` try
    /// every key of their algorithm.
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm the key is for: HS256/384/512, RS256/384/512,
    /// PS256/384/512, ES256/384, EdDSA. A token must use exactly it.
    pub alg: String,
    /// An HMAC secret (avoid: prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Environment variable holding the HMAC secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// A PEM public key (RSA, EC or Ed25519), inline.
    #[serde(default)]
    pub pem: Option<String>,
    /// A PEM public key file, relative to the data directory.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
}

/// `api_keys:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Header carrying the key.
    #[serde(default = "api_key_header")]
    pub header: String,
    /// Query parameter carrying the key (off when unset: keys in URLs
    /// end up in logs).
    #[serde(default)]
    pub query: Option<String>,
    /// The keys, stored as SHA-256 hashes.
    pub keys: Vec<ApiKeyConfig>,
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who the key belongs to; forwarded as the subject header, and the
    /// request's subject is `apikey:<name>`.
    pub name: String,
    /// `sha256:<64 hex digits>` of the key
    /// (`printf %s "$KEY" | sha256sum`).
    pub hash: String,
    /// Scopes the key grants.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `forward:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Header with the subject (`sub`, or the API key's name).
    #[serde(default = "sub_header")]
    pub subject: String,
    /// Header with the verified claims as JSON (the API key's name and
    /// scopes for a key); empty to leave it out.
    #[serde(default = "claims_header")]
    pub claims: String,
    /// More headers from single claims: `{ x-auth-email: email }`.
    #[serde(default)]
    pub claim_headers: BTreeMap<String, String>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            subject: sub_header(),
            claims: claims_header(),
            claim_headers: BTreeMap::new(),
        }
    }
}

/// The header named by the config field `field`.
pub(crate) fn header_name(field: &str, name: &str) -> Result<HeaderName, PluginError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| PluginError::config(field, format!("`{name}` is not a header name")))
}

/// A path from the config: relative ones are under the data directory.
pub(crate) fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

fn yes() -> bool {
    true
}
fn realm() -> String {
    "bext".into()
}
fn jwks_refresh() -> Span {
    Span(std::time::Duration::from_secs(300))
}
fn leeway() -> Span {
    Span(std::time::Duration::from_secs(30))
}
fn api_key_header() -> String {
    "x-api-key".into()
}
fn sub_header() -> String {
    "x-auth-sub".into()
}
fn claims_header() -> String {
    "x-auth-claims".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_defaults_are_an_empty_jwt_block() {
        let empty: JwtConfig = bext_plugin_abi::decode_config(serde_json::json!({})).unwrap();
        let default = JwtConfig::default();
        assert_eq!(
            (default.jwks_refresh.0, default.leeway.0),
            (empty.jwks_refresh.0, empty.leeway.0)
        );
        assert_eq!(
            (default.keys.len(), default.issuers, default.audiences),
            (empty.keys.len(), empty.issuers, empty.audiences)
        );
        assert_eq!(
            (default.jwks, default.jwks_ca, default.cookie),
            (empty.jwks, empty.jwks_ca, empty.cookie)
        );
        assert_eq!(default.jwks_refresh.0, std::time::Duration::from_secs(300));
        assert_eq!(default.leeway.0, std::time::Duration::from_secs(30));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = bext_plugin_abi::decode_config::<Config>(serde_json::json!({"jwt": {"leway": "5s"}})).unwrap_err();
        assert!(err.to_string().contains("leway"), "{err}");
        let err = bext_plugin_abi::decode_config::<Config>(serde_json::json!({"forwrd": {}})).unwrap_err();
        assert!(err.to_string().contains("forwrd"), "{err}");
    }

    #[test]
    fn header_names_are_checked() {
        assert_eq!(header_name("f", "X-Auth-Sub").unwrap(), "x-auth-sub");
        match header_name("forward.subject", "x auth") {
            Err(PluginError::Config { path, reason }) => {
                assert_eq!(path, "forward.subject");
                assert_eq!(reason, "`x auth` is not a header name");
            }
            other => panic!("{other:?}"),
        }
    }
}
