//! The `isr` plugin: whole responses cached per app, served without
//! touching the app.
//!
//! On the request (GET/HEAD without a body and without `;` in the query,
//! from no caller unless a rule allows it: no subject verified by authn,
//! none of `credential_headers` such as `Authorization`, `Cookie`,
//! `x-api-key`; see RFC 9111 §3.5):
//! a fresh entry is answered at once (`x-cache: HIT`, `Age`, `ETag`, 304
//! for a matching `If-None-Match`); a stale one within its
//! stale-while-revalidate window too (`STALE`) while one background request
//! refreshes it; on a miss exactly one request per key goes on to the app
//! while the others wait for its answer (the stampede guard), asking the
//! app for the key's query (ignored parameters removed). On the
//! response: what may be kept (see [`policy`]) is stored, up to
//! `max_entry_bytes`, and the waiting requests are woken.
//!
//! Admin endpoints under the manifest's `base` (`/__bext/api`):
//! `POST {base}/invalidate` (`{"tags": [], "paths": [], "app": ""}`) and
//! `POST {base}/revalidate` (`{"app": "", "path": "", "host": ""}`), with
//! `Authorization: Bearer $BEXT_ADMIN_TOKEN`.

pub mod config;
pub mod key;
pub mod l2;
pub mod policy;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bext_edge::Edge;
use bext_plugin_abi::admin::refuse_unless_admin;
use bext_plugin_abi::{
    AppTarget, Body, BuiltinPlugin, Ctx, EncodedSlashes, Flow, Hook, Hooks, Host, PathError, PathPattern, Plugin,
    PluginError, Request, Response, Setup, normalise_path, text_response,
};
use http::header::{
    AGE, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, DATE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH, RANGE,
    SET_COOKIE, TRANSFER_ENCODING, USER_AGENT, VARY,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::key::{IgnoredParams, KeyParts, caller_digest, encode_path, is_bot, normalise_query, primary_key};
use crate::policy::{RuleSay, freshness, vary_names};
use crate::store::{AppCache, Entry, Flight, Limits, State, Turn, cache_for, caches, vary_key};

/// Where the admin endpoints live when the manifest names no `base`.
const DEFAULT_BASE: &str = "/__bext/api";

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_CACHE_TIER: HeaderName = HeaderName::from_static("x-cache-tier");
static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
static X_BEXT_TAGS: HeaderName = HeaderName::from_static("x-bext-tags");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The plugin instance.
pub struct IsrPlugin {
    limits: Limits,
    store: Arc<StorePolicy>,
    wait_timeout: Duration,
    ignored: IgnoredParams,
    rules: Vec<Rule>,
    base: String,
    token_env: String,
    token: OnceLock<Option<String>>,
    host: OnceLock<Host>,
    /// Every app's id (invalidating a path everywhere names each app's set).
    apps: Vec<String>,
}

/// Whether this process listens to the fleet's invalidations already.
static LISTENING: AtomicBool = AtomicBool::new(false);

/// What decides whether and how a response is stored; shared with the
/// background refreshes.
struct StorePolicy {
    default_ttl: Option<Duration>,
    negative_ttl: Duration,
    max_entry_bytes: usize,
    /// The fleet's Redis in edge mode: entries are written through.
    edge: OnceLock<Arc<Edge>>,
    /// Request headers that carry credentials (`credential_headers`).
    credentials: Vec<HeaderName>,
}

struct Rule {
    path: PathPattern,
    say: RuleSay,
    no_store: bool,
    authorized: bool,
}

/// A request whose response may be stored: left in the context by
/// `on_request` for `on_response`.
struct Pending {
    app: String,
    cache: Arc<AppCache>,
    primary: String,
    request_headers: HeaderMap,
    path: String,
    rule: Option<RuleSay>,
    /// The caller is part of `primary` (a rule with `authorized: true`):
    /// only then may the response `Vary` on a credential header.
    caller_keyed: bool,
    /// Held by the request that fetches the key for the others.
    flight: Option<Flight>,
    /// An expired entry, still good if the app fails (stale-if-error).
    fallback: Option<Arc<Entry>>,
}

/// The request passed the cache by (method, rule, credentials).
#[derive(Clone)]
struct Bypass;

/// Where `on_request` leaves a [`Pending`] for `on_response` (context
/// values must be `Clone`; a pending store is taken exactly once).
type PendingSlot = Arc<std::sync::Mutex<Option<Pending>>>;

impl BuiltinPlugin for IsrPlugin {
    const NAME: &'static str = "isr";
    const PRIORITY: i32 = 800;
    const SUMMARY: &'static str = "whole-response cache: rules, Cache-Control, stale-while-revalidate, ETags, tags";
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/isr.yaml");
    type Config = Config;

    fn new(c: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        if c.max_entries == 0 {
            return Err(PluginError::config("max_entries", "must be at least 1"));
        }
        let mut credentials = Vec::new();
        for (i, name) in c.credential_headers.iter().enumerate() {
            credentials.push(
                HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| PluginError::config(format!("credential_headers[{i}]"), "is not a header name"))?,
            );
        }
        let mut rules = Vec::new();
        for (i, r) in c.rules.iter().enumerate() {
            rules.push(Rule {
                path: PathPattern::parse(format!("rules[{i}].path"), &r.path)?,
                say: RuleSay {
                    ttl: r.ttl.map(|s| s.0),
                    swr: r.swr.map(|s| s.0),
                },
                no_store: r.no_store,
                authorized: r.authorized,
            });
        }
        Ok(IsrPlugin {
            limits: Limits {
                entries: c.max_entries,
                bytes: c.max_bytes.0,
            },
            store: Arc::new(StorePolicy {
                default_ttl: c.default_ttl.map(|s| s.0),
                negative_ttl: c.negative_ttl.0,
                max_entry_bytes: usize::try_from(c.max_entry_bytes.0).unwrap_or(usize::MAX),
                edge: OnceLock::new(),
                credentials,
            }),
            wait_timeout: c.wait_timeout.0,
            ignored: IgnoredParams::new(&c.ignore_params),
            rules,
            base: setup.base.unwrap_or(DEFAULT_BASE).trim_end_matches('/').to_owned(),
            token_env: c.admin_token_env,
            token: OnceLock::new(),
            host: OnceLock::new(),
            apps: setup.apps.iter().map(|a| a.id.clone()).collect(),
        })
    }
}

impl IsrPlugin {
    fn rule(&self, path: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.path.matches(path))
    }

    /// Whether the request comes from a caller: a subject authn verified
    /// (it runs before this plugin), or any credential header, which the
    /// cache cannot see through.
    fn has_caller(&self, req: &Request, cx: &Ctx) -> bool {
        cx.subject().is_some() || self.store.credentials.iter().any(|n| req.headers().contains_key(n))
    }

    /// The caller's part of the key (see [`caller_digest`]).
    fn caller(&self, req: &Request, cx: &Ctx) -> String {
        let sent = self
            .store
            .credentials
            .iter()
            .flat_map(|n| req.headers().get_all(n).iter().map(move |v| (n.as_str(), v.as_bytes())));
        caller_digest(cx.subject(), sent)
    }

    /// `query` is the request's, normalised.
    fn key(&self, req: &Request, cx: &Ctx, app: &str, caller: Option<&str>, query: Option<&str>) -> String {
        let host = cx.host.as_deref().unwrap_or("");
        let agent = req.headers().get(USER_AGENT).map_or(&b""[..], HeaderValue::as_bytes);
        primary_key(&KeyParts {
            app,
            tenant: cx.tenant(),
            locale: cx.vars.get("locale").map_or("", String::as_str),
            bot: is_bot(agent),
            caller,
            path: req.uri().path(),
            query,
            scheme: "http",
            host,
        })
    }

    /// Refreshes `key` in the background with the app's runtime, asking
    /// for `target`: the request's URI with the key's query, so the app
    /// sees nothing the key leaves out.
    #[allow(clippy::too_many_arguments)]
    fn refresh(
        &self,
        cache: &Arc<AppCache>,
        primary: String,
        full: &str,
        req: &Request,
        target: Uri,
        cx: &Ctx,
        rule: Option<RuleSay>,
    ) {
        let (Some(host), Some(app)) = (self.host.get(), cx.app()) else {
            return;
        };
        let Some(claim) = cache.start_refresh(full) else {
            return; // one refresh at a time
        };
        // Past the bypass, a caller means its key holds the caller.
        let caller_keyed = self.has_caller(req, cx);
        let mut fetch = Request::new(Body::empty());
        *fetch.uri_mut() = target;
        *fetch.headers_mut() = req.headers().clone();
        fetch.headers_mut().remove(IF_NONE_MATCH);
        let target = AppTarget {
            app: app.to_owned(),
            host: cx.host.as_deref().map(str::to_owned),
            tenant: cx.tenant().map(str::to_owned),
            base: cx.base.as_deref().map(str::to_owned),
        };
        let (cache, policy, request_headers, path, target_app) = (
            cache.clone(),
            self.store.clone(),
            req.headers().clone(),
            encode_path(req.uri().path()).into_owned(),
            app.to_owned(),
        );
        let answer = host.serve_app(target, fetch);
        host.spawn(async move {
            let _claim = claim;
            if let Some(mut res) = answer.await {
                if res.status().is_server_error() {
                    return; // keep serving what we have
                }
                let pending = Pending {
                    app: target_app,
                    cache,
                    primary,
                    request_headers,
                    path,
                    rule,
                    caller_keyed,
                    flight: None,
                    fallback: None,
                };
                policy.store(pending, &mut res).await;
            }
        });
    }

    /// Drops what `order` names here, and in edge mode from the L2 tier
    /// and (through the bus) from every other instance's memory; how many
    /// entries went here.
    async fn invalidate_everywhere(&self, order: &AdminOrder) -> usize {
        let removed = invalidate(order);
        let Some(edge) = self.store.edge.get() else {
            return removed;
        };
        if let Ok(message) = serde_json::to_vec(order) {
            edge.publish(&message).await;
        }
        let apps: Vec<&str> = match &order.app {
            Some(a) => vec![a.as_str()],
            None => self.apps.iter().map(String::as_str).collect(),
        };
        let mut sets: Vec<String> = order.tags.iter().map(|t| l2::tag_set(edge, t)).collect();
        for app in &apps {
            sets.extend(order.paths.iter().map(|p| l2::path_set(edge, app, p)));
            if order.tags.is_empty() && order.paths.is_empty() {
                sets.push(l2::app_set(edge, app));
            }
        }
        edge.delete_listed(&sets).await;
        removed
    }

    /// `{base}/invalidate` and `{base}/revalidate`.
    async fn admin(&self, req: &mut Request, cx: &Ctx, action: &str) -> Response {
        if let Some(refused) = refuse_unless_admin(req, cx, self.token.get().and_then(Option::as_deref)) {
            return refused;
        }
        if req.method() != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        let body = req.body_mut().peek(64 << 10).await;
        let mut order: AdminOrder = match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}\n")),
        };
        // Paths in the form entries record (the kernel's canonical one), so
        // `/café`, `/caf%c3%a9` and `/caf%C3%A9` name the same entries.
        for path in &mut order.paths {
            match admin_path(path) {
                Ok(canonical) => *path = canonical,
                Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        match action {
            "invalidate" => {
                if order.tags.is_empty() && order.paths.is_empty() && order.app.is_none() {
                    return text_response(StatusCode::BAD_REQUEST, "give `tags`, `paths` or `app`\n");
                }
                let removed = self.invalidate_everywhere(&order).await;
                json_response(serde_json::json!({ "removed": removed }))
            }
            _ => self.revalidate(order).await,
        }
    }

    async fn revalidate(&self, order: AdminOrder) -> Response {
        let (Some(app), Some(path)) = (order.app.clone(), order.path.clone()) else {
            return text_response(StatusCode::BAD_REQUEST, "give `app` and `path`\n");
        };
        let Some(host) = self.host.get() else {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n");
        };
        let (path_only, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path.as_str(), None),
        };
        let path_only = match admin_path(path_only) {
            Ok(p) => p,
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        // The app is asked for what the key will say, as for any request
        // that goes through the cache.
        let query = match query
            .map(|q| normalise_query(&encode_path(q), &self.ignored))
            .transpose()
        {
            Ok(q) => q.filter(|q| !q.is_empty()),
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("`path` {path:?}: {e}\n")),
        };
        let target = match &query {
            Some(q) => format!("{path_only}?{q}"),
            None => path_only.clone(),
        };
        let removed = self
            .invalidate_everywhere(&AdminOrder {
                paths: vec![path_only.clone()],
                ..order.clone()
            })
            .await;
        let Ok(uri) = target.parse::<http::Uri>() else {
            return text_response(StatusCode::BAD_REQUEST, "`path` is not a request path\n");
        };
        let mut fetch = Request::new(Body::empty());
        *fetch.uri_mut() = uri;
        if let Some(h) = order.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            fetch.headers_mut().insert(http::header::HOST, h);
        }
        let target = AppTarget {
            app: app.clone(),
            host: order.host.clone(),
            tenant: order.tenant.clone(),
            base: None,
        };
        let Some(mut res) = host.serve_app(target, fetch).await else {
            return text_response(StatusCode::NOT_FOUND, "no such app\n");
        };
        let status = res.status().as_u16();
        let primary = primary_key(&KeyParts {
            app: &app,
            tenant: order.tenant.as_deref(),
            locale: "",
            bot: false,
            caller: None,
            path: &path_only,
            query: query.as_deref(),
            scheme: "http",
            host: order.host.as_deref().unwrap_or(""),
        });
        let rule = self.rule(&path_only).map(|r| r.say);
        let pending = Pending {
            app: app.clone(),
            cache: cache_for(&app, self.limits),
            primary,
            request_headers: HeaderMap::new(),
            path: path_only,
            rule,
            caller_keyed: false,
            flight: None,
            fallback: None,
        };
        let stored = self.store.store(pending, &mut res).await;
        json_response(serde_json::json!({ "status": status, "stored": stored, "removed": removed }))
    }
}

impl StorePolicy {
    /// Keeps `res` if it may be kept, whole and small enough; marks it
    /// `MISS`. True when it was stored.
    async fn store(&self, p: Pending, res: &mut Response) -> bool {
        res.headers_mut().insert(&X_CACHE, HeaderValue::from_static("MISS"));
        let tags = tags_of(res.headers());
        let Some(fresh) = freshness(res.status(), res.headers(), p.rule, self.default_ttl, self.negative_ttl) else {
            return false;
        };
        let Some(new) = vary_names(res.headers(), &self.credentials, p.caller_keyed) else {
            return false; // Vary: *, a credential header, or a name that cannot be keyed
        };
        // The names the key's other answers varied on stay in the key: two
        // answers for one URL that vary on different headers (a page and
        // its 404 for another `Accept`) then both stay findable.
        let mut vary: Vec<HeaderName> = p.cache.vary_names(&p.primary).map(|k| k.to_vec()).unwrap_or_default();
        for name in new {
            if !vary.contains(&name) {
                vary.push(name);
            }
        }
        let prefix = res.body_mut().peek(self.max_entry_bytes.saturating_add(1)).await;
        if res.body().as_bytes().is_none() || prefix.len() > self.max_entry_bytes {
            return false; // too big, or it failed midway: passed through only
        }
        let etag = match res.headers().get(ETAG) {
            Some(e) => e.clone(),
            None => {
                let digest = Sha256::digest(&prefix);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                let e = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex");
                res.headers_mut().insert(ETAG, e.clone());
                e
            }
        };
        let mut headers = res.headers().clone();
        for h in [
            CONNECTION,
            TRANSFER_ENCODING,
            KEEP_ALIVE.clone(),
            DATE,
            AGE,
            X_CACHE.clone(),
            SET_COOKIE,
        ] {
            headers.remove(h);
        }
        let entry = Entry {
            status: res.status(),
            headers,
            body: prefix,
            etag,
            stored: Instant::now(),
            freshness: fresh,
            tags,
            path: p.path,
        };
        let shared = self.edge.get().map(|edge| {
            let names: Vec<&str> = vary.iter().map(HeaderName::as_str).collect();
            (
                edge.clone(),
                l2::encode(&entry),
                l2::index_sets(edge, &p.app, &entry),
                names.join(","),
            )
        });
        let full = p.cache.put(&p.primary, &p.request_headers, vary, entry);
        drop(p.flight);
        if let Some((edge, bytes, sets, names)) = shared {
            let (entry_key, vary_record) = (l2::entry_key(&edge, &full), l2::vary_key(&edge, &p.primary));
            let keep = l2::keep_for(&fresh);
            // The vary record first: an instance that can see the entry
            // must be able to see which headers its key was made of.
            tokio::spawn(async move {
                if names.is_empty() || edge.put(&vary_record, names.as_bytes(), keep, &[]).await {
                    edge.put(&entry_key, &bytes, keep, &sets).await;
                }
            });
        }
        true
    }
}

/// What an admin endpoint is asked to do (and what the fleet's bus
/// carries to every instance).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct AdminOrder {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// Why a path given to an admin endpoint names no entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BadPath {
    /// It has a query or a fragment (`invalidate` takes paths only).
    NotAPath(String),
    /// The kernel would refuse it as a request path.
    Refused(String, PathError),
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadPath::NotAPath(p) => write!(f, "path {p:?}: give a path without `?` or `#`"),
            BadPath::Refused(p, e) => write!(f, "path {p:?}: {e}"),
        }
    }
}

/// A path an admin endpoint was given, in the form entries record: bytes
/// a request target cannot carry raw percent-encoded (`/café` is
/// `/caf%C3%A9`), then the kernel's canonical form
/// ([`normalise_path`]: `%c3` is `%C3`, `%61` is `a`, `//` and `..` gone).
fn admin_path(given: &str) -> Result<String, BadPath> {
    if given.contains(['?', '#']) {
        return Err(BadPath::NotAPath(given.to_owned()));
    }
    let encoded = encode_path(given);
    match normalise_path(&encoded, EncodedSlashes::Reject) {
        Ok(p) => Ok(p.into_owned()),
        Err(e) => Err(BadPath::Refused(given.to_owned(), e)),
    }
}

/// Drops the entries an order names from this process; how many went.
fn invalidate(order: &AdminOrder) -> usize {
    let everything = order.tags.is_empty() && order.paths.is_empty();
    caches(order.app.as_deref())
        .iter()
        .map(|(_, cache)| {
            cache.remove_where(|e| {
                everything || e.tags.iter().any(|t| order.tags.contains(t)) || order.paths.iter().any(|p| p == &e.path)
            })
        })
        .sum()
}

fn json_response(v: serde_json::Value) -> Response {
    let mut res = text_response(StatusCode::OK, format!("{v}\n"));
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The `Cache-Tag` and `x-bext-tags` values (comma or space separated);
/// the headers are removed, they are for the cache only.
fn tags_of(headers: &HeaderMap) -> Vec<String> {
    [&CACHE_TAG, &X_BEXT_TAGS]
        .iter()
        .flat_map(|h| headers.get_all(*h))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ' ']))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a GET or HEAD carries a body: a `Content-Length` other than
/// 0, any `Transfer-Encoding`, or a body the kernel did not find ended
/// with the head (an HTTP/2 request without END_STREAM on its HEADERS; the
/// kernel hands plugins an empty body exactly when `is_end_stream` held).
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| v.as_bytes() != b"0")
        || req.body().as_bytes().is_none_or(|b| !b.is_empty())
}

/// `uri` with `query` (the normalised one) as its query; none when it is
/// empty. `None` if that is not a valid target (it always is: it is a
/// subset of a valid one).
fn with_query(uri: &Uri, query: Option<&str>) -> Option<Uri> {
    if uri.query() == query && query.is_none_or(|q| !q.is_empty()) {
        return Some(uri.clone()); // the common case: nothing to take out
    }
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    if uri.path_and_query().map(PathAndQuery::as_str) == Some(target.as_str()) {
        return Some(uri.clone());
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(parts).ok()
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2).
fn not_modified(req: &Request, etag: &HeaderValue) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(etag.to_str().unwrap_or(""));
    req.headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

/// A stored entry as this request's answer.
fn answer(e: &Entry, req: &Request, label: &'static str) -> Response {
    let now = Instant::now();
    let mut res = if not_modified(req, &e.etag) {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        for h in [
            ETAG,
            CACHE_CONTROL,
            VARY,
            http::header::EXPIRES,
            http::header::CONTENT_LOCATION,
        ] {
            for v in e.headers.get_all(&h) {
                res.headers_mut().append(&h, v.clone());
            }
        }
        res
    } else {
        let mut res = Response::new(Body::full(e.body.clone()));
        *res.status_mut() = e.status;
        *res.headers_mut() = e.headers.clone();
        res
    };
    res.headers_mut().remove(&CACHE_TAG);
    res.headers_mut().remove(&X_BEXT_TAGS);
    res.headers_mut().insert(AGE, HeaderValue::from(e.age(now).as_secs()));
    res.headers_mut().insert(&X_CACHE, HeaderValue::from_static(label));
    res
}

impl Plugin for IsrPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::FETCH | Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let _ = self.host.set(host.clone());
        store::retain_apps(host.apps());
        if let Some(edge) = host.service::<Edge>() {
            if !LISTENING.swap(true, Ordering::SeqCst) {
                host.spawn(listen(edge.clone()));
            }
            let _ = self.store.edge.set(edge);
        }
        let token = std::env::var(&self.token_env).ok().filter(|t| !t.is_empty());
        let _ = self.token.set(token);
        Hook::Ready(Ok(()))
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let action = match req.uri().path().strip_prefix(self.base.as_str()) {
            Some("/invalidate") => "invalidate",
            Some("/revalidate") => "revalidate",
            _ => return Hook::Ready(Ok(Flow::Continue)),
        };
        Hook::later(async move { Ok(Flow::Respond(self.admin(req, cx, action).await)) })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let Some(app) = cx.app().map(str::to_owned) else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        let rule = self.rule(req.uri().path());
        let authorized = rule.is_some_and(|r| r.authorized);
        let has_caller = self.has_caller(req, cx);
        // A caller's page is never shared (RFC 9111 §3.5): it passes by,
        // or under `authorized: true` it is kept under the caller's key.
        // A GET with a body ("fat GET") passes by too: the body is not in
        // the key, and a lead request must not be one whose client can
        // hold the key's waiters by trickling it.
        let bypass = !matches!(*req.method(), Method::GET | Method::HEAD)
            || rule.is_some_and(|r| r.no_store)
            || (has_caller && !authorized)
            || req.headers().contains_key(RANGE)
            || has_body(req);
        // The query as keyed; what goes to the app through the cache is
        // exactly that (ignored parameters gone). A query the key cannot
        // describe for every app (a `;`) passes by, unrewritten.
        let keyed = (!bypass)
            .then(|| {
                let query = req
                    .uri()
                    .query()
                    .map(|q| normalise_query(q, &self.ignored))
                    .transpose()
                    .ok()?;
                let target = with_query(req.uri(), query.as_deref())?;
                Some((query, target))
            })
            .flatten();
        let Some((query, target)) = keyed else {
            cx.ext.insert(Bypass);
            return Hook::Ready(Ok(Flow::Continue));
        };
        let say = rule.map(|r| r.say);
        let cache = cache_for(&app, self.limits);
        let caller = has_caller.then(|| self.caller(req, cx));
        let caller_keyed = caller.is_some();
        let primary = self.key(req, cx, &app, caller.as_deref(), query.as_deref());
        let full = cache.full_key(&primary, req.headers());
        let mut fallback = None;
        if let Some(e) = cache.get(&full) {
            match e.state(Instant::now()) {
                State::Fresh => return Hook::Ready(Ok(Flow::Respond(answer(&e, req, "HIT")))),
                State::Stale => {
                    self.refresh(&cache, primary, &full, req, target, cx, say);
                    return Hook::Ready(Ok(Flow::Respond(answer(&e, req, "STALE"))));
                }
                State::Expired => fallback = Some(e),
            }
        }
        if *req.method() == Method::HEAD {
            // A HEAD answer has no body to keep; it is served from entries
            // a GET stored, and passes by otherwise.
            cx.ext.insert(Bypass);
            return Hook::Ready(Ok(Flow::Continue));
        }
        // From here the answer may be stored under `primary`: the app gets
        // the key's query.
        *req.uri_mut() = target;
        let pending = |flight| Pending {
            app: app.clone(),
            cache: cache.clone(),
            primary: primary.clone(),
            request_headers: req.headers().clone(),
            path: encode_path(req.uri().path()).into_owned(),
            rule: say,
            caller_keyed,
            flight,
            fallback: fallback.clone(),
        };
        match cache.take_turn(&full) {
            Turn::Lead(flight) => {
                let p = pending(Some(flight));
                let Some(edge) = self.store.edge.get().filter(|e| e.is_up()) else {
                    cx.ext.insert::<PendingSlot>(Arc::new(std::sync::Mutex::new(Some(p))));
                    return Hook::Ready(Ok(Flow::Continue));
                };
                Hook::later(async move {
                    if let Some(e) = lookup_l2(edge, &p.cache, &p.primary, req).await {
                        drop(p); // wakes the requests waiting for this key
                        let mut res = answer(&e, req, "HIT");
                        res.headers_mut().insert(&X_CACHE_TIER, HeaderValue::from_static("L2"));
                        return Ok(Flow::Respond(res));
                    }
                    cx.ext.insert::<PendingSlot>(Arc::new(std::sync::Mutex::new(Some(p))));
                    Ok(Flow::Continue)
                })
            }
            Turn::Wait(mut done) => {
                let p = pending(None);
                Hook::later(async move {
                    let _ = tokio::time::timeout(self.wait_timeout, done.changed()).await;
                    let full = p.cache.full_key(&p.primary, req.headers());
                    if let Some(e) = p.cache.get(&full)
                        && e.state(Instant::now()) != State::Expired
                    {
                        return Ok(Flow::Respond(answer(&e, req, "HIT")));
                    }
                    cx.ext.insert::<PendingSlot>(Arc::new(std::sync::Mutex::new(Some(p))));
                    Ok(Flow::Continue)
                })
            }
        }
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        if cx.ext.get::<Bypass>().is_some() {
            res.headers_mut().insert(&X_CACHE, HeaderValue::from_static("BYPASS"));
            return Hook::Ready(Ok(()));
        }
        let pending = cx
            .ext
            .get::<PendingSlot>()
            .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take());
        let Some(pending) = pending else {
            return Hook::Ready(Ok(()));
        };
        if res.status().is_server_error()
            && let Some(e) = pending.fallback.as_ref().filter(|e| e.usable_on_error(Instant::now()))
        {
            let mut stale = answer(e, &Request::new(Body::empty()), "STALE");
            std::mem::swap(res, &mut stale);
            return Hook::Ready(Ok(()));
        }
        Hook::later(async move {
            self.store.store(pending, res).await;
            res.headers_mut().remove(&CACHE_TAG);
            res.headers_mut().remove(&X_BEXT_TAGS);
            Ok(())
        })
    }
}

/// Looks `primary` up in the L2 tier after an L1 miss; a hit is
/// promoted to L1.
async fn lookup_l2(edge: &Edge, cache: &AppCache, primary: &str, req: &Request) -> Option<Arc<Entry>> {
    let names: Arc<[HeaderName]> = match cache.vary_names(primary) {
        Some(n) => n,
        None => match edge.get(&l2::vary_key(edge, primary)).await {
            Some(record) => String::from_utf8_lossy(&record)
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect(),
            None => Arc::from([]),
        },
    };
    let full = if names.is_empty() {
        primary.to_owned()
    } else {
        vary_key(primary, &names, req.headers())
    };
    let entry = l2::decode(&edge.get(&l2::entry_key(edge, &full)).await?)?;
    if entry.state(Instant::now()) == State::Expired {
        return None;
    }
    cache.put_full(primary, names, full.clone(), entry);
    cache.get(&full)
}

/// Applies the fleet's invalidations to this process's memory.
async fn listen(edge: Arc<Edge>) {
    let mut bus = edge.messages();
    loop {
        match bus.recv().await {
            Ok(message) => {
                if let Ok(order) = serde_json::from_slice::<AdminOrder>(&message) {
                    invalidate(&order);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

bext_plugin_abi::register!(IsrPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, headers: &[(&str, &str)], body: Body) -> Request {
        let mut req = Request::new(body);
        *req.uri_mut() = uri.parse().unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        req
    }

    /// M3: a GET with a body in any framing is told apart.
    #[test]
    fn bodies_are_found_in_every_framing() {
        assert!(!has_body(&get("/", &[], Body::empty())));
        assert!(!has_body(&get("/", &[("content-length", "0")], Body::empty())));
        assert!(has_body(&get("/", &[("content-length", "5")], Body::empty())));
        assert!(has_body(&get("/", &[("transfer-encoding", "chunked")], Body::empty())));
        assert!(has_body(&get("/", &[], Body::full("x=1"))));
        // The kernel hands on a stream exactly when the body had not ended
        // with the head (HTTP/2 without END_STREAM, or a framing above).
        let stream = Body::stream(String::from("x=1"));
        assert!(has_body(&get("/", &[], stream)));
    }

    #[test]
    fn the_app_is_asked_for_the_keyed_query() {
        let uri: Uri = "/p?utm_source=x&b=2&a=1".parse().unwrap();
        let ig = IgnoredParams::new(&["utm_*".into()]);
        let q = normalise_query(uri.query().unwrap(), &ig).unwrap();
        assert_eq!(with_query(&uri, Some(&q)).unwrap(), "/p?a=1&b=2");
        assert_eq!(with_query(&uri, Some("")).unwrap(), "/p");
        assert_eq!(with_query(&uri, None).unwrap(), "/p");
        let absolute: Uri = "http://shop.test/p?utm_x=1".parse().unwrap();
        assert_eq!(with_query(&absolute, Some("")).unwrap(), "http://shop.test/p");
    }

    /// L9: every spelling of a path names the entries the kernel's form does.
    #[test]
    fn admin_paths_take_the_kernel_form() {
        for given in ["/caf%C3%A9", "/caf%c3%a9", "/café", "//caf%c3%a9", "/x/../caf%C3%A9"] {
            assert_eq!(admin_path(given).as_deref(), Ok("/caf%C3%A9"), "{given}");
        }
        assert_eq!(admin_path("/%61b").as_deref(), Ok("/ab"));
        assert_eq!(
            admin_path("/a%2Fb"),
            Err(BadPath::Refused("/a%2Fb".into(), PathError::EncodedSlash))
        );
        assert_eq!(
            admin_path("/../x"),
            Err(BadPath::Refused("/../x".into(), PathError::AboveRoot))
        );
        assert_eq!(admin_path("/p?x=1"), Err(BadPath::NotAPath("/p?x=1".into())));
        assert!(admin_path("p").is_err());
        assert!(
            BadPath::Refused("/a%2Fb".into(), PathError::EncodedSlash)
                .to_string()
                .contains("\"/a%2Fb\"")
        );
    }
}
