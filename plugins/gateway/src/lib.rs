//! The `gateway` plugin: rate limits (GCRA, per client address, app,
//! route, API key or verified subject), CORS, and response headers (custom
//! and security presets), per app.
//!
//! On the request: a CORS preflight is answered here; then each limit that
//! applies decides, and the first refusal answers 429. `by: subject`
//! limits decide later, in the plugin's late place
//! ([`Plugin::late_priority`], after authn by default), keyed by the
//! subject authn verified, or by the client address without one: a
//! subject read from an unverified token would let anyone spend someone
//! else's budget or make up fresh ones. On the response (also of a 429,
//! by the onion order): CORS headers for allowed origins, `RateLimit-*`
//! headers of the tightest limit of both places, and the configured
//! headers.

pub mod config;
pub mod cors;
pub mod gcra;
pub mod shared;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Instant;

use bext_plugin_abi::{
    Body, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, PathPattern, Plugin, PluginError, RateLimitState, Request,
    Response, Setup, text_response,
};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, StatusCode};

use crate::config::{Config, LimitConfig, LimitKey, SecurityPreset};
use crate::cors::Cors;
use crate::gcra::{Client, Decision, IpPrefixes, MemoryStore, Quota, RateKey, RateStore};
use crate::shared::SharedStore;

/// Monotonic nanoseconds for the limiter, from a process-wide origin.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When the request arrived, in limiter time: the kernel read the clock
/// then, so deciding costs no second read.
fn nanos_at(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_nanos() as u64
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The plugin instance.
pub struct GatewayPlugin {
    limits: Vec<Limit>,
    store: Arc<dyn RateStore>,
    cors: Option<Cors>,
    headers: Vec<(HeaderName, HeaderValue)>,
    override_headers: bool,
    /// In edge mode, the fleet's store; `store` is the fallback.
    shared: OnceLock<SharedStore>,
    /// Where `by: subject` limits decide: `Some(priority)` when there are
    /// any.
    subject_priority: Option<i32>,
    /// How much of an address is one client.
    prefixes: IpPrefixes,
}

/// Which of the plugin's two places in the chain is deciding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// At the plugin's priority, before authn: every limit but `by:
    /// subject` (cheap refusals before authn's cryptography).
    Early,
    /// At `subject_priority`, after authn: the `by: subject` limits.
    Late,
}

impl Pass {
    fn decides(self, by: LimitKey) -> bool {
        (by == LimitKey::Subject) == (self == Pass::Late)
    }
}

/// A compiled limit.
struct Limit {
    name: String,
    by: LimitKey,
    header: Option<HeaderName>,
    quota: Quota,
    routes: Vec<PathPattern>,
    methods: Vec<Method>,
    headers: LimitHeaders,
}

/// The `RateLimit-*` values a limit's responses share, made once.
struct LimitHeaders {
    /// `RateLimit-Policy: <burst>;w=<window seconds>`.
    policy: HeaderValue,
    /// `RateLimit-Limit`.
    limit: HeaderValue,
    /// `RateLimit-Remaining` of a client within its rate, which is
    /// `burst - 1` on nearly every response (a large burst is beyond the
    /// table of small counts).
    steady_remaining: HeaderValue,
}

impl LimitHeaders {
    fn of(quota: &Quota) -> Self {
        LimitHeaders {
            policy: lasting(
                HeaderValue::from_str(&format!("{};w={}", quota.burst, quota.window().as_secs().max(1)))
                    .expect("digits"),
            ),
            limit: lasting(HeaderValue::from(quota.burst)),
            steady_remaining: lasting(HeaderValue::from(quota.burst - 1)),
        }
    }
}

impl Limit {
    fn applies(&self, method: &Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && (self.routes.is_empty() || self.routes.iter().any(|r| r.matches(path)))
    }
}

/// Counts below this have a header value made once per process.
const SMALL_COUNTS: usize = 1024;

/// `0`, `1`... `1023` as header values over one static string: most
/// remaining counts and reset times are small, and cloning a static
/// value neither allocates nor touches a reference count.
static SMALL_COUNT_VALUES: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    let digits: String = (0..SMALL_COUNTS).map(|n| n.to_string()).collect();
    let digits: &'static str = Box::leak(digits.into_boxed_str());
    let mut at = 0;
    (0..SMALL_COUNTS)
        .map(|n| {
            let len = n.checked_ilog10().unwrap_or(0) as usize + 1;
            at += len;
            HeaderValue::from_static(&digits[at - len..at])
        })
        .collect()
});

/// A count as a header value.
fn count_value(n: impl Into<u64>) -> HeaderValue {
    let n: u64 = n.into();
    match SMALL_COUNT_VALUES.get(n as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

/// The request's `Origin`, kept for the response's CORS headers.
#[derive(Clone)]
struct RequestOrigin(HeaderValue);

impl BuiltinPlugin for GatewayPlugin {
    const NAME: &'static str = "gateway";
    const PRIORITY: i32 = 100;
    const SUMMARY: &'static str = "rate limits (per IP, app, route, API key, JWT subject), CORS, response headers";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/gateway.yaml");
    type Config = Config;

    fn new(config: Config, _setup: &Setup<'_>) -> Result<Self, PluginError> {
        let mut limits = Vec::new();
        if let Some(app) = &config.app_limit {
            let quota = Quota::per_minute(app.rpm, app.burst.unwrap_or(app.rpm.div_ceil(60).max(1)));
            if app.rpm == 0 {
                return Err(PluginError::config("app_limit.rpm", "must be at least 1"));
            }
            limits.push(Limit {
                name: "app".into(),
                by: app.by,
                header: None,
                quota,
                routes: Vec::new(),
                methods: Vec::new(),
                headers: LimitHeaders::of(&quota),
            });
        }
        for (i, l) in config.limits.iter().enumerate() {
            limits.push(compile_limit(i, l)?);
        }
        let cors = config
            .cors
            .as_ref()
            .map(Cors::new)
            .transpose()
            .map_err(|(path, reason)| PluginError::config(path, reason))?;
        let mut headers = Vec::new();
        if let Some(preset) = config.security_headers {
            headers.extend(security_headers(preset));
        }
        for (name, value) in &config.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PluginError::config(format!("headers.{name}"), "not a header name"))?;
            let v = lasting(
                HeaderValue::from_str(value)
                    .map_err(|_| PluginError::config(format!("headers.{name}"), "not a header value"))?,
            );
            headers.retain(|(h, _)| *h != n);
            headers.push((n, v));
        }
        if config.ipv4_prefix > 32 {
            return Err(PluginError::config("ipv4_prefix", "must be 0 to 32"));
        }
        if config.ipv6_prefix > 128 {
            return Err(PluginError::config("ipv6_prefix", "must be 0 to 128"));
        }
        LazyLock::force(&EPOCH);
        let subject_priority = limits
            .iter()
            .any(|l| l.by == LimitKey::Subject)
            .then_some(config.subject_priority);
        Ok(GatewayPlugin {
            limits,
            store: Arc::new(MemoryStore::new(config.max_keys.max(1024))),
            cors,
            headers,
            override_headers: config.override_headers,
            shared: OnceLock::new(),
            subject_priority,
            prefixes: IpPrefixes {
                v4: config.ipv4_prefix,
                v6: config.ipv6_prefix,
            },
        })
    }
}

fn compile_limit(i: usize, l: &LimitConfig) -> Result<Limit, PluginError> {
    let at = |field: &str| format!("limits[{i}].{field}");
    let quota = match (l.rpm, l.rps) {
        (Some(rpm), None) if rpm > 0 => Quota::per_minute(rpm, l.burst.unwrap_or(rpm.div_ceil(60).max(1))),
        (None, Some(rps)) if rps > 0 => Quota::per_second(rps, l.burst.unwrap_or(rps.max(1))),
        (Some(_), Some(_)) => return Err(PluginError::config(at("rps"), "give `rpm` or `rps`, not both")),
        _ => {
            return Err(PluginError::config(
                at("rpm"),
                "a limit needs `rpm` or `rps` of at least 1",
            ));
        }
    };
    let header = match (l.by, &l.header) {
        (LimitKey::Header, Some(h)) => Some(
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| PluginError::config(at("header"), "not a header name"))?,
        ),
        (LimitKey::Header, None) => return Err(PluginError::config(at("header"), "`by: header` needs `header`")),
        _ => None,
    };
    let mut methods = Vec::new();
    for (j, m) in l.methods.iter().enumerate() {
        methods.push(
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| PluginError::config(at(&format!("methods[{j}]")), "not a method"))?,
        );
    }
    let routes = PathPattern::parse_all(&at("routes"), &l.routes)?;
    Ok(Limit {
        name: l.name.clone().unwrap_or_else(|| format!("limit-{i}")),
        by: l.by,
        header,
        quota,
        routes,
        methods,
        headers: LimitHeaders::of(&quota),
    })
}

/// A header value made from configuration, over a `'static` string so a
/// response's copy is a plain copy: a reference-counted value costs two
/// atomic operations per response. Each distinct string is kept once for
/// the process's life, so reloads of the same configuration add nothing.
/// A value that is not visible ASCII (obs-text) stays as it is.
fn lasting(value: HeaderValue) -> HeaderValue {
    static KEPT: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let Ok(text) = value.to_str() else {
        return value;
    };
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let text: &'static str = match kept.get(text) {
        Some(t) => t,
        None => {
            let t: &'static str = Box::leak(text.into());
            kept.insert(t);
            t
        }
    };
    HeaderValue::from_static(text)
}

fn security_headers(preset: SecurityPreset) -> Vec<(HeaderName, HeaderValue)> {
    let pairs: &[(&str, &str)] = match preset {
        SecurityPreset::Basic => &[
            ("strict-transport-security", "max-age=31536000"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "SAMEORIGIN"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
        ],
        SecurityPreset::Strict => &[
            (
                "strict-transport-security",
                "max-age=63072000; includeSubDomains; preload",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cross-origin-opener-policy", "same-origin"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
        ],
    };
    pairs
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect()
}

impl GatewayPlugin {
    /// The bucket of `limit` this request counts in.
    fn key<'r>(&self, limit: &'r Limit, req: &'r Request, cx: &'r Ctx) -> RateKey<'r> {
        let ip = Client::Ip(self.prefixes.bucket(cx.client_ip));
        let client = match limit.by {
            LimitKey::App => Client::All,
            LimitKey::Ip => ip,
            LimitKey::Header => match limit.header.as_ref().and_then(|h| req.headers().get(h)) {
                Some(v) => Client::Key(v.as_bytes()),
                None => ip,
            },
            // Only a subject authn verified: a claim read from an unsigned
            // token names whoever the caller likes.
            LimitKey::Subject => match cx.subject() {
                Some(sub) => Client::Subject(Cow::Borrowed(sub)),
                None => ip,
            },
        };
        RateKey {
            limit: &limit.name,
            app: cx.app().unwrap_or(""),
            client,
        }
    }

    /// Decides every limit of `pass` that applies, in order, stopping at
    /// the first refusal, with this instance's store: no await, no future.
    fn limit_here(&self, req: &Request, cx: &mut Ctx, pass: Pass) -> Flow {
        let now = nanos_at(cx.received_at);
        let mut tightest = self.standing(cx);
        for (index, limit) in self.applying(req, pass) {
            let decision = self.store.check(&self.key(limit, req, cx), &limit.quota, now);
            if let Some(refused) = self.count(index, limit, &decision, cx, &mut tightest) {
                return refused;
            }
        }
        Self::keep(cx, tightest)
    }

    /// The same, in edge mode: the fleet's Redis decides (this instance's
    /// store when Redis does not answer in time).
    async fn limit_shared(&self, req: &Request, cx: &mut Ctx, shared: &SharedStore, pass: Pass) -> Flow {
        let now = nanos_at(cx.received_at);
        let mut tightest = self.standing(cx);
        for (index, limit) in self.applying(req, pass) {
            let key = self.key(limit, req, cx);
            let decision = match shared.check(&key, &limit.quota).await {
                Some(d) => d,
                None => self.store.check(&key, &limit.quota, now),
            };
            if let Some(refused) = self.count(index, limit, &decision, cx, &mut tightest) {
                return refused;
            }
        }
        Self::keep(cx, tightest)
    }

    /// The limits of `pass` that apply to the request, with their indexes.
    fn applying<'s>(&'s self, req: &'s Request, pass: Pass) -> impl Iterator<Item = (usize, &'s Limit)> + 's {
        let (method, path) = (req.method(), req.uri().path());
        self.limits
            .iter()
            .enumerate()
            .filter(move |(_, l)| pass.decides(l.by) && l.applies(method, path))
    }

    /// The tightest standing this instance already recorded for the
    /// request (the early place's, when the late one decides), so the
    /// `RateLimit-*` headers report the tightest of both.
    fn standing(&self, cx: &Ctx) -> Option<RateLimitState> {
        cx.rate_limit.filter(|r| r.decided_by.0 == self.identity())
    }

    /// Decides the limits of `pass`, here or in the fleet's store.
    fn limit<'a>(&'a self, req: &'a Request, cx: &'a mut Ctx, pass: Pass) -> Hook<'a, Result<Flow, PluginError>> {
        match self.shared.get().filter(|s| s.is_up()) {
            None => Hook::Ready(Ok(self.limit_here(req, cx, pass))),
            Some(shared) => Hook::later(async move { Ok(self.limit_shared(req, cx, shared, pass).await) }),
        }
    }

    /// Takes in one limit's decision: the 429 if it refuses (its state
    /// kept for the response's headers), else it may be the tightest.
    fn count(
        &self,
        index: usize,
        limit: &Limit,
        decision: &Decision,
        cx: &mut Ctx,
        tightest: &mut Option<RateLimitState>,
    ) -> Option<Flow> {
        let state = RateLimitState {
            limit: limit.quota.burst,
            remaining: decision.remaining,
            reset: decision.reset,
            decided_by: (self.identity(), index),
        };
        if !decision.allowed {
            tracing::info!(
                target: "bext::gateway",
                request_id = %cx.request_id,
                limit = %limit.name,
                "rate limited"
            );
            cx.rate_limit = Some(state);
            return Some(self.too_many(decision));
        }
        if tightest.is_none_or(|t| decision.remaining < t.remaining) {
            *tightest = Some(state);
        }
        None
    }

    /// Keeps the tightest limit's state for the response's headers.
    fn keep(cx: &mut Ctx, tightest: Option<RateLimitState>) -> Flow {
        if tightest.is_some() {
            cx.rate_limit = tightest;
        }
        Flow::Continue
    }

    fn identity(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn too_many(&self, decision: &Decision) -> Flow {
        let mut res = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        let secs = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        Flow::Respond(res)
    }
}

impl Plugin for GatewayPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        if !self.limits.is_empty()
            && let Some(edge) = host.service::<bext_edge::Edge>()
        {
            let _ = self.shared.set(SharedStore::new(edge));
        }
        Hook::Ready(Ok(()))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        if let Some(cors) = &self.cors {
            if let Some((status, headers)) = cors.preflight(req.method(), req.headers()) {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = status;
                *res.headers_mut() = headers;
                return Hook::Ready(Ok(Flow::Respond(res)));
            }
            // Most requests (same-origin navigations) carry no Origin:
            // nothing to keep for them.
            if let Some(origin) = req.headers().get(http::header::ORIGIN) {
                cx.ext.insert(RequestOrigin(origin.clone()));
            }
        }
        if self.limits.is_empty() {
            return Hook::Ready(Ok(Flow::Continue));
        }
        self.limit(req, cx, Pass::Early)
    }

    fn late_priority(&self) -> Option<i32> {
        self.subject_priority
    }

    fn on_late_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        self.limit(req, cx, Pass::Late)
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        let headers = res.headers_mut();
        let rate = cx
            .rate_limit
            .filter(|r| r.decided_by.0 == self.identity())
            .and_then(|r| Some((r, self.limits.get(r.decided_by.1)?)));
        // One growth of the map for everything added here, not several.
        headers.reserve(self.headers.len() + if rate.is_some() { 4 } else { 0 } + 2);
        if let Some(cors) = &self.cors {
            let origin = cx.ext.get::<RequestOrigin>().and_then(|o| o.0.to_str().ok());
            cors.decorate(origin, headers);
        }
        if let Some((info, limit)) = rate {
            headers.insert(&RATELIMIT_LIMIT, limit.headers.limit.clone());
            let remaining = info.remaining;
            headers.insert(
                &RATELIMIT_REMAINING,
                if remaining + 1 == limit.quota.burst {
                    limit.headers.steady_remaining.clone()
                } else {
                    count_value(remaining)
                },
            );
            let reset = info.reset.as_secs_f64().ceil() as u64;
            headers.insert(&RATELIMIT_RESET, count_value(reset));
            headers.insert(&RATELIMIT_POLICY, limit.headers.policy.clone());
        }
        // Names by reference: an owned name costs http's map more per
        // insert. Without `override_headers`, an app's own value stands;
        // apps rarely set these, so one look over the names decides for
        // all, and appending is cheaper than an entry each.
        let app_set_one =
            !self.override_headers && headers.keys().any(|k| self.headers.iter().any(|(name, _)| name == k));
        for (name, value) in &self.headers {
            if self.override_headers {
                headers.insert(name, value.clone());
            } else if app_set_one {
                headers.entry(name).or_insert_with(|| value.clone());
            } else {
                headers.append(name, value.clone());
            }
        }
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(GatewayPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn build(config: serde_json::Value) -> Result<GatewayPlugin, PluginError> {
        let setup = Setup {
            plugin: "gateway",
            base: None,
            apps: &[],
            data_dir: std::path::Path::new("/tmp"),
        };
        GatewayPlugin::new(bext_plugin_abi::decode_config(config).unwrap(), &setup)
    }

    #[test]
    fn prefixes_and_the_late_place_follow_the_config() {
        let limit = serde_json::json!([{ "by": "subject", "rpm": 60 }]);
        let g = build(serde_json::json!({ "limits": limit })).unwrap();
        assert_eq!(g.late_priority(), Some(350), "after authn by default");
        assert_eq!(g.prefixes, IpPrefixes { v4: 32, v6: 64 });
        let g = build(serde_json::json!({ "limits": limit, "subject_priority": 450 })).unwrap();
        assert_eq!(g.late_priority(), Some(450));
        let ip_only = serde_json::json!([{ "by": "ip", "rpm": 60 }]);
        assert_eq!(
            build(serde_json::json!({ "limits": ip_only })).unwrap().late_priority(),
            None,
            "no subject limit, no late place"
        );
        for (field, bad) in [("ipv4_prefix", 33), ("ipv6_prefix", 129)] {
            match build(serde_json::json!({ field: bad })) {
                Err(PluginError::Config { path, .. }) => assert_eq!(path, field),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{field}: {bad} accepted"),
            }
        }
    }

    #[test]
    fn counts_read_the_same_from_the_table_and_beyond_it() {
        for n in [0u64, 1, 9, 10, 99, 100, 999, 1000, 1023, 1024, 1_000_000] {
            assert_eq!(count_value(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn lasting_values_read_the_same_and_non_ascii_ones_stay_counted() {
        assert_eq!(lasting(HeaderValue::from_static("1000;w=60")), "1000;w=60");
        let first = lasting(HeaderValue::from(42u32));
        let again = lasting(HeaderValue::from(42u32));
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr(), "kept once");
        let obs = HeaderValue::from_str("Zoë").unwrap();
        assert_eq!(lasting(obs.clone()), obs);
    }
}
