//! The `authn` plugin: who is calling. JWTs (HS/RS/PS/ES/EdDSA; keys from
//! the config, the environment, PEM files or a JWKS file or URL) and API
//! keys (stored hashed, with names and scopes); per-app rules (required or
//! optional, public paths, scopes per path); the caller forwarded to the
//! app in headers that clients can never set themselves.

pub mod config;
pub mod keys;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bext_plugin_abi::{
    BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, PathPattern, Plugin, PluginError, Request, Setup, text_response,
};
use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};
use thread_local::ThreadLocal;

use crate::config::{Config, KeyConfig};
use crate::keys::{Checks, Key, Rejection, key_from_config, keys_from_jwks};

/// Headers removed from every request, whatever the configuration: only
/// this plugin may tell the app who is calling.
const ALWAYS_STRIPPED: &[&str] = &["x-auth-sub", "x-auth-claims", "x-auth-scopes", "x-auth-key"];

/// Shortest pause between two JWKS fetches caused by unknown `kid`s.
const REFETCH_GAP: Duration = Duration::from_secs(30);

/// The plugin instance.
pub struct AuthnPlugin {
    name: String,
    required: bool,
    public: Vec<PathPattern>,
    scope_rules: Vec<ScopeRule>,
    jwt: Option<Jwt>,
    api_keys: Option<ApiKeys>,
    subject_header: HeaderName,
    claims_header: Option<HeaderName>,
    claim_headers: Vec<(HeaderName, String)>,
    stripped: Vec<HeaderName>,
    /// The stripped names' lengths as bits (all set if one is 64 or
    /// longer): most request headers are ruled out by length alone.
    stripped_lengths: u64,
    challenge: HeaderValue,
    invalid_token: HeaderValue,
    invalid_request: HeaderValue,
    insufficient_scope: HeaderValue,
}

struct ScopeRule {
    path: PathPattern,
    methods: Vec<Method>,
    require: Vec<String>,
}

impl ScopeRule {
    fn covers(&self, method: &Method, path: &str) -> bool {
        self.path.matches(path) && (self.methods.is_empty() || self.methods.contains(method))
    }
}

/// JWT settings, with keys loaded in `on_init`.
struct Jwt {
    checks: Checks,
    cookie: Option<String>,
    key_configs: Vec<KeyConfig>,
    secret_env: Option<String>,
    jwks: Option<JwksSource>,
    refresh: Duration,
    data_dir: PathBuf,
    /// Configured keys plus the JWKS's, swapped on refresh.
    keys: Arc<ArcSwap<Vec<Key>>>,
    static_keys: OnceLock<Vec<Key>>,
    /// Tokens already verified, for the next request of the same session.
    verified: VerifiedTokens,
    /// Wakes the refresher when a token names an unknown `kid`.
    refetch: Arc<tokio::sync::Notify>,
    last_refetch: Mutex<Option<Instant>>,
}

#[derive(Clone)]
enum JwksSource {
    File(PathBuf),
    Url(http::Uri, Box<JwksClient>),
}

/// The HTTP(S) client for a JWKS URL: rustls with Mozilla's roots (plus
/// `jwks_ca`), kept for the refreshes so they reuse the connection.
#[derive(Clone)]
struct JwksClient(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Empty<bytes::Bytes>,
    >,
);

/// Why a `jwks_ca` file cannot be used.
#[derive(Debug, thiserror::Error)]
enum CaError {
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: no PEM certificate in it")]
    Empty(String),
    #[error("{0}: {1}")]
    Bad(String, String),
}

impl JwksClient {
    fn new(extra_ca: Option<&Path>) -> Result<Self, CaError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_ca {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| CaError::Read(shown.clone(), e))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| CaError::Bad(shown.clone(), e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| CaError::Bad(shown.clone(), e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(CaError::Empty(shown));
            }
        }
        // The provider is named here, not installed process-wide: nothing
        // depends on which one another crate compiled in.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(JwksClient(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
        ))
    }
}

struct ApiKeys {
    header: HeaderName,
    query: Option<String>,
    by_hash: HashMap<[u8; 32], (String, Vec<String>)>,
}

/// Who the request is from, with the headers that tell the app, built
/// once per credential (a cached token reuses them).
struct Principal {
    /// The subject for [`Ctx::set_subject`], namespaced by credential kind
    /// and issuer (see [`api_key_subject`], [`jwt_subject`]) so that caches
    /// and rate limits keyed by it never merge two callers; shared per
    /// request without a copy.
    subject: Option<Arc<str>>,
    scopes: Vec<String>,
    forwarded: Vec<(HeaderName, HeaderValue)>,
}

impl BuiltinPlugin for AuthnPlugin {
    const NAME: &'static str = "authn";
    const PRIORITY: i32 = 300;
    const SUMMARY: &'static str = "JWT and API key authentication, per-app rules, caller headers for the app";
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/authn.yaml");
    type Config = Config;

    fn new(c: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        let header = |field: &str, name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PluginError::config(field, format!("`{name}` is not a header name")))
        };
        let public = PathPattern::parse_all("public", &c.public)?;
        let mut scope_rules = Vec::new();
        for (i, r) in c.scopes.iter().enumerate() {
            let path = PathPattern::parse(format!("scopes[{i}].path"), &r.path)?;
            let mut methods: Vec<Method> = r
                .methods
                .iter()
                .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|_| PluginError::config(format!("scopes[{i}].methods"), "not a method"))?;
            // HEAD is GET without the body: apps answer it with the GET
            // handler, so a rule for GET guards HEAD too.
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            scope_rules.push(ScopeRule {
                path,
                methods,
                require: r.require.clone(),
            });
        }
        let jwt = match (&c.jwt, &c.jwt_secret_env) {
            (None, None) => None,
            (jwt, secret_env) => {
                let defaults = config::JwtConfig {
                    keys: Vec::new(),
                    jwks: None,
                    jwks_ca: None,
                    jwks_refresh: bext_plugin_abi::units::Span(Duration::from_secs(300)),
                    issuers: Vec::new(),
                    audiences: Vec::new(),
                    leeway: bext_plugin_abi::units::Span(Duration::from_secs(30)),
                    cookie: None,
                };
                let j = jwt.clone().unwrap_or(defaults);
                for (i, k) in j.keys.iter().enumerate() {
                    let sources = [
                        k.secret.is_some(),
                        k.secret_env.is_some(),
                        k.pem.is_some(),
                        k.pem_file.is_some(),
                    ];
                    if sources.iter().filter(|s| **s).count() != 1 {
                        return Err(PluginError::config(
                            format!("jwt.keys[{i}]"),
                            "give exactly one of secret, secret_env, pem, pem_file",
                        ));
                    }
                    if k.alg.parse::<jsonwebtoken::Algorithm>().is_err() {
                        return Err(PluginError::config(
                            format!("jwt.keys[{i}].alg"),
                            format!("`{}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA...)", k.alg),
                        ));
                    }
                }
                let jwks = match &j.jwks {
                    None => None,
                    Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
                        let url: http::Uri = s
                            .parse()
                            .map_err(|e| PluginError::config("jwt.jwks", format!("not a URL: {e}")))?;
                        let ca = j.jwks_ca.as_ref().map(|f| resolve(setup.data_dir, Path::new(f)));
                        let client = JwksClient::new(ca.as_deref())
                            .map_err(|e| PluginError::config("jwt.jwks_ca", e.to_string()))?;
                        Some(JwksSource::Url(url, Box::new(client)))
                    }
                    Some(s) => {
                        if j.jwks_ca.is_some() {
                            return Err(PluginError::config("jwt.jwks_ca", "only for an https:// `jwks` URL"));
                        }
                        Some(JwksSource::File(resolve(setup.data_dir, Path::new(s))))
                    }
                };
                if j.keys.is_empty() && jwks.is_none() && secret_env.is_none() {
                    return Err(PluginError::config(
                        "jwt",
                        "no keys: give `keys`, `jwks` or `jwt_secret_env`",
                    ));
                }
                Some(Jwt {
                    checks: Checks::new(&j.issuers, &j.audiences, j.leeway.0),
                    cookie: j.cookie.clone(),
                    key_configs: j.keys.clone(),
                    secret_env: secret_env.clone(),
                    jwks,
                    refresh: j.jwks_refresh.0.max(Duration::from_secs(5)),
                    data_dir: setup.data_dir.to_path_buf(),
                    keys: Arc::new(ArcSwap::from_pointee(Vec::new())),
                    static_keys: OnceLock::new(),
                    refetch: Arc::new(tokio::sync::Notify::new()),
                    verified: VerifiedTokens::new(j.leeway.0),
                    last_refetch: Mutex::new(None),
                })
            }
        };
        let api_keys = match &c.api_keys {
            None => None,
            Some(a) => {
                let mut by_hash = HashMap::new();
                for (i, k) in a.keys.iter().enumerate() {
                    let hash = parse_hash(&k.hash).ok_or_else(|| {
                        PluginError::config(format!("api_keys.keys[{i}].hash"), "must be sha256:<64 hex digits>")
                    })?;
                    by_hash.insert(hash, (k.name.clone(), k.scopes.clone()));
                }
                Some(ApiKeys {
                    header: header("api_keys.header", &a.header)?,
                    query: a.query.clone(),
                    by_hash,
                })
            }
        };
        if jwt.is_none() && api_keys.is_none() {
            return Err(PluginError::config(
                "",
                "configure `jwt`, `jwt_secret_env` or `api_keys`",
            ));
        }
        let subject_header = header("forward.subject", &c.forward.subject)?;
        let claims_header = (!c.forward.claims.is_empty())
            .then(|| header("forward.claims", &c.forward.claims))
            .transpose()?;
        let mut claim_headers = Vec::new();
        for (h, claim) in &c.forward.claim_headers {
            claim_headers.push((header(&format!("forward.claim_headers.{h}"), h)?, claim.clone()));
        }
        let mut stripped: Vec<HeaderName> = ALWAYS_STRIPPED.iter().map(|h| HeaderName::from_static(h)).collect();
        stripped.push(subject_header.clone());
        stripped.extend(claims_header.clone());
        stripped.extend(claim_headers.iter().map(|(h, _)| h.clone()));
        stripped.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        stripped.dedup();
        let stripped_lengths = stripped
            .iter()
            .map(|h| 1u64.checked_shl(h.as_str().len() as u32).unwrap_or(u64::MAX))
            .fold(0, |bits, b| bits | b);
        let realm = c.realm.replace('"', "");
        let bearer =
            |extra: &str| HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"{extra}")).expect("printable realm");
        Ok(AuthnPlugin {
            name: setup.plugin.to_owned(),
            required: c.required,
            public,
            scope_rules,
            jwt,
            api_keys,
            subject_header,
            claims_header,
            claim_headers,
            stripped,
            stripped_lengths,
            challenge: bearer(""),
            invalid_token: bearer(", error=\"invalid_token\""),
            invalid_request: bearer(", error=\"invalid_request\""),
            insufficient_scope: bearer(", error=\"insufficient_scope\""),
        })
    }
}

/// Where a request carries a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Authorization,
    ApiKeyHeader,
    ApiKeyQuery,
    Cookie,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Authorization => "Authorization header",
            Source::ApiKeyHeader => "API key header",
            Source::ApiKeyQuery => "API key query parameter",
            Source::Cookie => "token cookie",
        })
    }
}

/// A request with more than one credential: refused (400) before any is
/// verified, because whichever one authn picked, the app and anything in
/// between could read another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than one credential: {0} and {1}")]
struct Ambiguous(Source, Source);

/// The one credential of a request, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential<'r> {
    ApiKey(&'r [u8]),
    Token(&'r [u8]),
}

/// The request's one credential among the sources authn reads: the API
/// key header and query parameter (`api`, when keys are on) and, when JWTs
/// are on (`jwt`, holding the cookie's name if any), `Authorization:
/// Bearer` and the cookie. Every field and list element counts, so HTTP/1
/// lines, HTTP/2 fields and `;`-joined cookies are all seen; a value with
/// commas in one line is one value (and fails verification).
fn find_credential<'r>(
    api: Option<(&HeaderName, Option<&str>)>,
    jwt: Option<Option<&str>>,
    headers: &'r http::HeaderMap,
    query: Option<&'r str>,
) -> Result<Option<Credential<'r>>, Ambiguous> {
    let mut found: Option<(Credential<'r>, Source)> = None;
    let mut add = |credential, source| match found {
        Some((_, first)) => Err(Ambiguous(first, source)),
        None => {
            found = Some((credential, source));
            Ok(())
        }
    };
    if let Some((header, param)) = api {
        for v in headers.get_all(header) {
            add(Credential::ApiKey(v.as_bytes()), Source::ApiKeyHeader)?;
        }
        if let (Some(param), Some(query)) = (param, query) {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if form_name_is(name, param) {
                    add(Credential::ApiKey(value.as_bytes()), Source::ApiKeyQuery)?;
                }
            }
        }
    }
    if let Some(cookie) = jwt {
        let mut lines = headers.get_all(http::header::AUTHORIZATION).iter();
        if let Some(first) = lines.next() {
            // Not a list header: two lines are malformed, whatever the scheme.
            if lines.next().is_some() {
                return Err(Ambiguous(Source::Authorization, Source::Authorization));
            }
            if let Some(token) = bearer_token(first.as_bytes()) {
                add(Credential::Token(token), Source::Authorization)?;
            }
        }
        if let Some(cookie) = cookie {
            for line in headers.get_all(http::header::COOKIE) {
                for pair in line.as_bytes().split(|b| *b == b';') {
                    let Some(at) = pair.iter().position(|b| *b == b'=') else {
                        continue;
                    };
                    if pair[..at].trim_ascii() == cookie.as_bytes() {
                        add(Credential::Token(pair[at + 1..].trim_ascii()), Source::Cookie)?;
                    }
                }
            }
        }
    }
    Ok(found.map(|(c, _)| c))
}

/// The token of an `Authorization: Bearer` value (the scheme in any case).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    value[..space]
        .eq_ignore_ascii_case(b"bearer")
        .then(|| value[space..].trim_ascii())
}

/// Whether a query parameter's name, as sent, is `want` once decoded
/// (`api%5Fkey` is `api_key` to the app, so it is to authn too).
fn form_name_is(raw: &str, want: &str) -> bool {
    if raw == want {
        return true;
    }
    if !raw.contains(['%', '+']) {
        return false;
    }
    let raw = raw.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match raw[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    decoded.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b => decoded.push(b),
        }
        i += 1;
    }
    decoded == want.as_bytes()
}

/// The subject an API key sets: `apikey:<name>`, never equal to a JWT's.
fn api_key_subject(name: &str) -> String {
    format!("apikey:{name}")
}

/// The subject a JWT sets: `jwt:<iss>|<sub>` (`jwt:|<sub>` without `iss`),
/// since a `sub` is only unique within its issuer. `%` and `|` in the
/// issuer are escaped (`%25`, `%7C`), so the first `|` ends it and two
/// different (issuer, sub) pairs never give one subject.
fn jwt_subject(iss: Option<&str>, sub: &str) -> String {
    let iss = iss.unwrap_or("");
    let mut out = String::with_capacity(5 + iss.len() + sub.len());
    out.push_str("jwt:");
    for c in iss.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
    out.push('|');
    out.push_str(sub);
    out
}

fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

/// `sha256:<hex>` as bytes.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Reads a JWKS document from a file or a URL.
async fn load_jwks(source: &JwksSource) -> Result<Vec<Key>, String> {
    let bytes = match source {
        JwksSource::File(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        JwksSource::Url(url, client) => fetch(url, client).await?,
    };
    keys_from_jwks(&bytes)
}

async fn fetch(url: &http::Uri, client: &JwksClient) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    // The error's sources say why (an unknown certificate authority, a
    // refused connection): the top level alone says only "client error".
    let why = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        format!("{url}: {text}")
    };
    let res = tokio::time::timeout(Duration::from_secs(5), client.0.get(url.clone()))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| why(&e))?;
    if !res.status().is_success() {
        return Err(format!("{url}: status {}", res.status()));
    }
    let body = http_body_util::Limited::new(res.into_body(), 1 << 20);
    let bytes = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(bytes.to_bytes().to_vec())
}

/// Refetches the JWKS every `every`, or sooner when a token names an
/// unknown `kid`; ends when the plugin instance is gone.
async fn refresh_jwks(
    keys: std::sync::Weak<ArcSwap<Vec<Key>>>,
    static_keys: Vec<Key>,
    source: JwksSource,
    every: Duration,
    refetch: Arc<tokio::sync::Notify>,
    plugin: String,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = refetch.notified() => {}
        }
        let Some(keys) = keys.upgrade() else { return };
        match load_jwks(&source).await {
            Ok(fresh) => {
                let mut all = static_keys.clone();
                all.extend(fresh);
                keys.store(Arc::new(all));
            }
            Err(e) => tracing::warn!(plugin = %plugin, error = %e, "JWKS not refreshed; the previous keys stay"),
        }
    }
}

/// Tokens that passed verification, keyed by the whole token (an exact
/// match, not a hash). A hit still has its `exp` and `nbf` checked against
/// the clock, and counts only while the key set it was verified with is
/// the live one (a JWKS refresh or a reload starts over). Bounded: at most
/// 4,096 tokens of at most 2 KiB each, and one more per worker thread.
///
/// In front of the shared cache, each worker thread keeps the last token
/// it saw: a client sends the same token on request after request (a page
/// and its assets, an API client's calls, all on one connection that one
/// worker serves), so the next request is usually answered by comparing
/// bytes, with no hash, lock or probe. Another client's token differs
/// within its first segments, so a miss costs little.
struct VerifiedTokens {
    cache: quick_cache::sync::Cache<String, Arc<Verified>>,
    last: ThreadLocal<RefCell<LastToken>>,
    leeway: u64,
}

/// A worker thread's last token and its verdict.
#[derive(Default)]
struct LastToken {
    token: String,
    verdict: Option<Arc<Verified>>,
}

impl LastToken {
    fn remember(&mut self, token: &str, verdict: &Arc<Verified>) {
        // The buffer is reused: no allocation once it fits the tokens seen.
        self.token.clear();
        self.token.push_str(token);
        self.verdict = Some(verdict.clone());
    }
}

struct Verified {
    principal: Arc<Principal>,
    /// When the verdict lapses, on the monotonic clock: when the token
    /// expires (with leeway), or [`MAX_CACHED_FOR`] after it was checked.
    /// A hit reads no clock: the kernel read it when the request came.
    /// `nbf` needs no second look: a token that passed it stays past it.
    until: Instant,
    /// The key set it was verified with.
    keys: Arc<Vec<Key>>,
}

const MAX_CACHED_TOKEN: usize = 2048;

/// How long a verdict is kept at most. Expiry is counted on the monotonic
/// clock from the check, so a stepped wall clock shifts it; this bounds
/// by how much.
const MAX_CACHED_FOR: Duration = Duration::from_secs(60);

impl Verified {
    /// The principal, if the verdict holds at `at` under `keys`.
    fn holds(&self, keys: &Arc<Vec<Key>>, at: Instant) -> Option<Arc<Principal>> {
        (at < self.until && Arc::ptr_eq(&self.keys, keys)).then(|| self.principal.clone())
    }
}

impl VerifiedTokens {
    fn new(leeway: Duration) -> Self {
        VerifiedTokens {
            cache: quick_cache::sync::Cache::new(4096),
            last: ThreadLocal::new(),
            leeway: leeway.as_secs(),
        }
    }

    /// The principal of a token verified before with `keys`, if its
    /// verdict still holds at `at`.
    fn get(&self, token: &str, keys: &Arc<Vec<Key>>, at: Instant) -> Option<Arc<Principal>> {
        let mut last = self.last.get_or_default().borrow_mut();
        if last.token == token
            && let Some(verdict) = &last.verdict
        {
            return verdict.holds(keys, at);
        }
        let hit = self.cache.get(token)?;
        let principal = hit.holds(keys, at)?;
        last.remember(token, &hit);
        Some(principal)
    }

    /// Keeps the verdict on a token that was verified for a request that
    /// came `at`; tokens without a numeric `exp` are not kept.
    fn insert(
        &self,
        token: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
        principal: &Arc<Principal>,
        keys: &Arc<Vec<Key>>,
        at: Instant,
    ) {
        if token.len() > MAX_CACHED_TOKEN {
            return;
        }
        let Ok(Some(exp)) = keys::numeric_date(claims, "exp") else {
            return;
        };
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return;
        };
        // The checks count whole seconds: the token holds until the second
        // after `exp + leeway` begins. `at` is a little before now, so the
        // verdict lapses no later than the token.
        let lapses = Duration::from_secs(exp.saturating_add(self.leeway).saturating_add(1));
        let Some(left) = lapses.checked_sub(now) else {
            return;
        };
        let verdict = Arc::new(Verified {
            principal: principal.clone(),
            until: at + left.min(MAX_CACHED_FOR),
            keys: keys.clone(),
        });
        self.last.get_or_default().borrow_mut().remember(token, &verdict);
        self.cache.insert(token.to_owned(), verdict);
    }
}

/// JSON with every non-ASCII character escaped, so it fits in a header.
fn ascii_json(v: &serde_json::Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl AuthnPlugin {
    fn refuse(&self, status: StatusCode, challenge: &HeaderValue, cx: &Ctx, reason: &str) -> Flow {
        tracing::info!(
            target: "bext::authn",
            plugin = %self.name,
            request_id = %cx.request_id,
            status = status.as_u16(),
            reason,
            "request not authenticated"
        );
        let text = match status {
            StatusCode::FORBIDDEN => "Forbidden\n",
            StatusCode::BAD_REQUEST => "Bad Request\n",
            _ => "Unauthorized\n",
        };
        let mut res = text_response(status, text);
        res.headers_mut().insert(WWW_AUTHENTICATE, challenge.clone());
        Flow::Respond(res)
    }

    /// The one credential the request carries, if any; several (two
    /// `Authorization` lines, an API key in the header and the query, a
    /// key and a token...) are refused rather than one picked: the app and
    /// anything between would see the others.
    fn credential<'r>(&self, req: &'r Request) -> Result<Option<Credential<'r>>, Ambiguous> {
        find_credential(
            self.api_keys.as_ref().map(|a| (&a.header, a.query.as_deref())),
            self.jwt.as_ref().map(|j| j.cookie.as_deref()),
            req.headers(),
            req.uri().query(),
        )
    }

    /// The verified caller of `credential`.
    fn principal(&self, credential: Credential<'_>, at: Instant) -> Result<Arc<Principal>, Rejection> {
        let token = match credential {
            Credential::ApiKey(key) => {
                let api = self.api_keys.as_ref().expect("API keys are only read when configured");
                let hash: [u8; 32] = Sha256::digest(key).into();
                return match api.by_hash.get(&hash) {
                    Some((name, scopes)) => Ok(Arc::new(
                        self.principal_of(
                            serde_json::json!({ "sub": name, "scope": scopes.join(" "), "auth": "api_key" })
                                .as_object()
                                .expect("an object"),
                            Some(api_key_subject(name)),
                        ),
                    )),
                    None => Err(Rejection::Signature),
                };
            }
            Credential::Token(token) => token,
        };
        let jwt = self
            .jwt
            .as_ref()
            .expect("tokens are only read when JWTs are configured");
        let token = std::str::from_utf8(token).map_err(|_| Rejection::Malformed)?;
        // A guard, not a clone: no reference count touched per request.
        let keys = jwt.keys.load();
        let verified = match jwt.verified.get(token, &keys, at) {
            Some(principal) => Ok(principal),
            None => jwt.checks.verify(token, &keys).map(|claims| {
                let subject = claims.get("sub").and_then(|s| s.as_str()).map(|sub| {
                    let iss = claims.get("iss").and_then(|i| i.as_str());
                    jwt_subject(iss, sub)
                });
                let principal = Arc::new(self.principal_of(&claims, subject));
                jwt.verified.insert(token, &claims, &principal, &keys, at);
                principal
            }),
        };
        if matches!(verified, Err(Rejection::UnknownKid)) && jwt.jwks.is_some() {
            let mut last = jwt.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() > REFETCH_GAP) {
                *last = Some(Instant::now());
                jwt.refetch.notify_one();
            }
        }
        verified
    }

    /// The caller named by verified claims, with the headers the app gets:
    /// `subject` is the namespaced one for [`Ctx::set_subject`], while the
    /// app's subject header keeps the plain `sub` (or API key name).
    fn principal_of(&self, claims: &serde_json::Map<String, serde_json::Value>, subject: Option<String>) -> Principal {
        use serde_json::Value;
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
            (_, Some(Value::Array(a))) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            (_, Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let subject: Option<Arc<str>> = subject.map(Arc::from);
        let mut forwarded = Vec::new();
        if let Some(v) = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            forwarded.push((self.subject_header.clone(), v));
        }
        if let Some(h) = &self.claims_header
            && let Ok(v) = HeaderValue::from_str(&ascii_json(&Value::Object(claims.clone())))
        {
            forwarded.push((h.clone(), v));
        }
        for (h, claim) in &self.claim_headers {
            let value = match claims.get(claim) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => ascii_json(other),
                None => continue,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                forwarded.push((h.clone(), v));
            }
        }
        Principal {
            subject,
            scopes,
            forwarded,
        }
    }

    /// Whether a scope rule covers this request.
    fn guarded(&self, method: &Method, path: &str) -> bool {
        self.scope_rules.iter().any(|r| r.covers(method, path))
    }

    /// Scopes this request needs that `p` lacks (empty when allowed).
    fn missing_scopes(&self, method: &Method, path: &str, p: &Principal) -> Vec<&str> {
        self.scope_rules
            .iter()
            .filter(|r| r.covers(method, path))
            .flat_map(|r| r.require.iter())
            .filter(|s| !p.scopes.contains(s))
            .map(String::as_str)
            .collect()
    }

    fn forward(&self, req: &mut Request, cx: &mut Ctx, p: &Principal) {
        let headers = req.headers_mut();
        for (h, v) in &p.forwarded {
            headers.insert(h, v.clone());
        }
        // With two authn plugins in a chain (platform and app), the first
        // one's verified subject stands.
        if let Some(sub) = &p.subject
            && cx.subject().is_none()
        {
            let _ = cx.set_subject(sub.clone());
        }
    }
}

impl Plugin for AuthnPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST
    }

    fn owned_request_headers(&self) -> &[HeaderName] {
        &self.stripped
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        Hook::later(async move {
            let Some(jwt) = &self.jwt else { return Ok(()) };
            let mut keys = Vec::new();
            for (i, k) in jwt.key_configs.iter().enumerate() {
                let secret = match (&k.secret, &k.secret_env) {
                    (Some(s), _) => Some(s.clone().into_bytes()),
                    (_, Some(env)) => Some(
                        std::env::var(env)
                            .map_err(|_| {
                                PluginError::Init(format!("jwt.keys[{i}].secret_env: `{env}` is not set").into())
                            })?
                            .into_bytes(),
                    ),
                    _ => None,
                };
                let pem = match (&k.pem, &k.pem_file) {
                    (Some(p), _) => Some(p.clone().into_bytes()),
                    (_, Some(f)) => {
                        let path = resolve(&jwt.data_dir, f);
                        Some(std::fs::read(&path).map_err(|e| {
                            PluginError::Init(format!("jwt.keys[{i}].pem_file: {}: {e}", path.display()).into())
                        })?)
                    }
                    _ => None,
                };
                let key = key_from_config(&k.alg, secret.as_deref(), pem.as_deref(), k.kid.clone())
                    .map_err(|e| PluginError::Init(format!("jwt.keys[{i}]: {e}").into()))?;
                keys.push(key);
            }
            if let Some(env) = &jwt.secret_env {
                let secret = std::env::var(env)
                    .map_err(|_| PluginError::Init(format!("jwt_secret_env: `{env}` is not set").into()))?;
                keys.push(
                    key_from_config("HS256", Some(secret.as_bytes()), None, None)
                        .map_err(|e| PluginError::Init(format!("jwt_secret_env: {e}").into()))?,
                );
            }
            let _ = jwt.static_keys.set(keys.clone());
            if let Some(source) = &jwt.jwks {
                let fetched = load_jwks(source)
                    .await
                    .map_err(|e| PluginError::Init(format!("jwt.jwks: {e}").into()))?;
                let mut all = keys.clone();
                all.extend(fetched);
                jwt.keys.store(Arc::new(all));
                host.spawn(refresh_jwks(
                    Arc::downgrade(&jwt.keys),
                    keys,
                    source.clone(),
                    jwt.refresh,
                    jwt.refetch.clone(),
                    self.name.clone(),
                ));
            } else {
                jwt.keys.store(Arc::new(keys));
            }
            Ok(())
        })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        // Spoofed identity headers are rare: one look over the names is
        // cheaper than a removal per name on every request.
        let may_be_stripped = |k: &HeaderName| {
            let len = k.as_str().len();
            (len >= 64 || self.stripped_lengths >> len & 1 == 1) && self.stripped.contains(k)
        };
        if req.headers().keys().any(may_be_stripped) {
            for h in &self.stripped {
                req.headers_mut().remove(h);
            }
        }
        let (method, path) = (req.method(), req.uri().path());
        // A scope rule wins over `public` and `required: false`: a path it
        // covers is never served to a caller without its scopes.
        let guarded = self.guarded(method, path);
        if !guarded && self.public.iter().any(|p| p.matches(path)) {
            return Hook::Ready(Ok(Flow::Continue));
        }
        let credential = match self.credential(req) {
            Ok(c) => c,
            Err(why) => {
                return Hook::Ready(Ok(self.refuse(
                    StatusCode::BAD_REQUEST,
                    &self.invalid_request,
                    cx,
                    &why.to_string(),
                )));
            }
        };
        let principal = match credential.map(|c| self.principal(c, cx.received_at)) {
            None if self.required || guarded => {
                return Hook::Ready(Ok(self.refuse(
                    StatusCode::UNAUTHORIZED,
                    &self.challenge,
                    cx,
                    "no credentials",
                )));
            }
            None => return Hook::Ready(Ok(Flow::Continue)),
            Some(Err(why)) => {
                return Hook::Ready(Ok(self.refuse(
                    StatusCode::UNAUTHORIZED,
                    &self.invalid_token,
                    cx,
                    &why.to_string(),
                )));
            }
            Some(Ok(p)) => p,
        };
        let missing = self.missing_scopes(req.method(), req.uri().path(), &principal);
        if !missing.is_empty() {
            let reason = format!("missing scopes: {}", missing.join(" "));
            return Hook::Ready(Ok(self.refuse(
                StatusCode::FORBIDDEN,
                &self.insufficient_scope,
                cx,
                &reason,
            )));
        }
        self.forward(req, cx, &principal);
        Hook::Ready(Ok(Flow::Continue))
    }
}

bext_plugin_abi::register!(AuthnPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_still_expire_and_follow_the_key_set() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cache = VerifiedTokens::new(Duration::from_secs(5));
        let keys = Arc::new(vec![
            keys::key_from_config("HS256", Some(&[7; 32]), None, None).unwrap(),
        ]);
        let claims = |exp: u64| {
            let mut m = serde_json::Map::new();
            m.insert("exp".into(), exp.into());
            m
        };
        let who = Arc::new(Principal {
            subject: Some("u".into()),
            scopes: Vec::new(),
            forwarded: Vec::new(),
        });
        let at = Instant::now();
        cache.insert("fresh", &claims(now + 100), &who, &keys, at);
        cache.insert("stale", &claims(now - 100), &who, &keys, at);
        cache.insert("leeway", &claims(now - 2), &who, &keys, at);
        assert!(cache.get("fresh", &keys, at).is_some());
        // "fresh" is now this thread's last token: only the same bytes hit.
        for near in ["fres", "freshh", "Fresh", ""] {
            assert!(cache.get(near, &keys, at).is_none(), "{near:?} is not fresh");
        }
        std::thread::scope(|s| {
            s.spawn(|| assert!(cache.get("fresh", &keys, at).is_some(), "shared across threads"));
        });
        assert!(
            cache.get("stale", &keys, at).is_none(),
            "an expired token is verified again (and refused)"
        );
        assert!(cache.get("leeway", &keys, at).is_some());
        let later = |secs| at + Duration::from_secs(secs);
        assert!(
            cache.get("leeway", &keys, later(5)).is_none(),
            "past exp + leeway, the verdict lapses"
        );
        assert!(cache.get("fresh", &keys, later(59)).is_some());
        assert!(
            cache.get("fresh", &keys, later(60)).is_none(),
            "kept at most a minute however far exp is"
        );
        let rotated = Arc::new(vec![
            keys::key_from_config("HS256", Some(&[8; 32]), None, None).unwrap(),
        ]);
        assert!(cache.get("fresh", &rotated, at).is_none(), "new keys: verified again");
        cache.insert(&"x".repeat(MAX_CACHED_TOKEN + 1), &claims(now + 100), &who, &keys, at);
        assert!(
            cache.get(&"x".repeat(MAX_CACHED_TOKEN + 1), &keys, at).is_none(),
            "huge tokens are not kept"
        );
        let no_exp = serde_json::Map::new();
        cache.insert("no-exp", &no_exp, &who, &keys, at);
        assert!(cache.get("no-exp", &keys, at).is_none(), "no exp: never kept");
    }

    /// The request's credential with API keys (header `x-api-key`, query
    /// `api_key`) and JWTs (cookie `session`) on.
    fn credential_of(lines: &[(&str, &str)], query: Option<&str>) -> Result<Option<Credential<'static>>, Ambiguous> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in lines {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let headers: &'static http::HeaderMap = Box::leak(Box::new(headers));
        let query = query.map(|q| &*Box::leak(q.to_owned().into_boxed_str()));
        let api = HeaderName::from_static("x-api-key");
        find_credential(Some((&api, Some("api_key"))), Some(Some("session")), headers, query)
    }

    #[test]
    fn one_credential_is_read_and_several_are_refused() {
        use Credential::*;
        use Source::*;
        /// Header lines, a query string and what authn makes of them.
        type Case<'a, T> = (&'a [(&'a str, &'a str)], Option<&'a str>, T);
        let one: &[Case<'_, Credential<'_>>] = &[
            (&[("x-api-key", "k")], None, ApiKey(b"k")),
            (&[], Some("a=1&api_key=k&b=2"), ApiKey(b"k")),
            (&[], Some("api%5Fkey=k"), ApiKey(b"k")),
            (&[("authorization", "Bearer t")], None, Token(b"t")),
            (&[("authorization", "BEARER  t ")], None, Token(b"t")),
            (&[("cookie", "theme=dark; session=t")], None, Token(b"t")),
            (&[("cookie", "a=1"), ("cookie", " session = t ")], None, Token(b"t")),
            // One line with commas is one value, which then fails to verify.
            (&[("x-api-key", "good, other")], None, ApiKey(b"good, other")),
            (&[("authorization", "Bearer a, Bearer b")], None, Token(b"a, Bearer b")),
            // Not authn's credentials: forwarded as they are.
            (
                &[("authorization", "Basic dTpw"), ("x-api-key", "k")],
                None,
                ApiKey(b"k"),
            ),
            (
                &[("x-api-key", "k"), ("cookie", "sessions=t; xsession=u")],
                Some("api_keyx=1"),
                ApiKey(b"k"),
            ),
        ];
        for (lines, query, want) in one {
            assert_eq!(credential_of(lines, *query), Ok(Some(*want)), "{lines:?} {query:?}");
        }
        assert_eq!(credential_of(&[("authorization", "Basic dTpw")], None), Ok(None));
        assert_eq!(credential_of(&[], Some("x=1")), Ok(None));

        let several: &[Case<'_, Ambiguous>] = &[
            (
                &[("authorization", "Bearer a"), ("Authorization", "Bearer b")],
                None,
                Ambiguous(Authorization, Authorization),
            ),
            (
                &[("authorization", "Basic dTpw"), ("authorization", "Bearer b")],
                None,
                Ambiguous(Authorization, Authorization),
            ),
            (
                &[("x-api-key", "a"), ("X-Api-Key", "b")],
                None,
                Ambiguous(ApiKeyHeader, ApiKeyHeader),
            ),
            (
                &[("x-api-key", "a")],
                Some("api_key=b"),
                Ambiguous(ApiKeyHeader, ApiKeyQuery),
            ),
            (&[], Some("api_key=a&api_key=b"), Ambiguous(ApiKeyQuery, ApiKeyQuery)),
            (&[], Some("api_key=a&api%5fkey=b"), Ambiguous(ApiKeyQuery, ApiKeyQuery)),
            (&[("cookie", "session=a; session=b")], None, Ambiguous(Cookie, Cookie)),
            (
                &[("cookie", "session=a"), ("cookie", "session=b")],
                None,
                Ambiguous(Cookie, Cookie),
            ),
            (
                &[("authorization", "Bearer a"), ("cookie", "session=b")],
                None,
                Ambiguous(Authorization, Cookie),
            ),
            (
                &[("x-api-key", "a"), ("authorization", "bearer b")],
                None,
                Ambiguous(ApiKeyHeader, Authorization),
            ),
        ];
        for (lines, query, want) in several {
            assert_eq!(credential_of(lines, *query), Err(*want), "{lines:?} {query:?}");
        }
    }

    #[test]
    fn subjects_differ_by_credential_kind_and_issuer() {
        let all = [
            api_key_subject("reader-key"),
            jwt_subject(None, "reader-key"),
            jwt_subject(Some("https://a.test"), "reader-key"),
            jwt_subject(Some("https://b.test"), "reader-key"),
            // A separator inside the issuer or the subject moves nothing.
            jwt_subject(Some("https://a.test|reader"), "key"),
            jwt_subject(Some("https://a.test"), "reader|key"),
            jwt_subject(Some("x%7C"), "y"),
            jwt_subject(Some("x|"), "y"),
            jwt_subject(None, "apikey:reader-key"),
        ];
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        assert_eq!(api_key_subject("billing-job"), "apikey:billing-job");
        assert_eq!(
            jwt_subject(Some("https://idp.test"), "user-42"),
            "jwt:https://idp.test|user-42"
        );
        assert_eq!(jwt_subject(None, "u1"), "jwt:|u1");
    }

    #[test]
    fn query_names_are_compared_decoded() {
        assert!(form_name_is("api_key", "api_key"));
        assert!(form_name_is("api%5Fkey", "api_key") && form_name_is("%61pi_key", "api_key"));
        assert!(form_name_is("a+b", "a b"));
        assert!(!form_name_is("api_key%", "api_key") && !form_name_is("api%5", "api_key"));
        assert!(!form_name_is("api_keys", "api_key"));
    }

    #[test]
    fn hashes_and_json_for_headers() {
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_hash(&h), Some([0xab; 32]));
        assert_eq!(parse_hash("sha256:zz"), None);
        assert_eq!(parse_hash("md5:abc"), None);
        assert_eq!(ascii_json(&serde_json::json!({"n": "Zoë\n"})), r#"{"n":"Zo\u00eb\n"}"#);
    }
}
