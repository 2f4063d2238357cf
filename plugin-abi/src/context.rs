use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::trace::TraceContext;

/// A process-unique request id, printed as 16 hex digits in logs and
/// error pages so an operator can find the request a user reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a request stands against the rate limit that binds it most
/// tightly: set by the rate limiter that decided, read for the response's
/// `RateLimit-*` headers and by anything else that reports it. A field of
/// [`Ctx`], not an `ext` entry, because a limiter sets it on every request
/// and an entry would cost an allocation each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitState {
    /// Requests allowed at once (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still allowed now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the allowance is whole again (`RateLimit-Reset`).
    pub reset: Duration,
    /// The limiter instance that decided and which of its limits, for
    /// its own response hook (another limiter in the chain leaves it be).
    pub decided_by: (usize, usize),
}

/// How bext's cache dealt with a request (its `x-cache`): set by the
/// cache plugin where it writes that header, read by the access log. A
/// field of [`Ctx`], so the log's worker-side cost is a copy, not a
/// search of the response's headers for a custom name on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from a fresh entry.
    Hit,
    /// Answered from a stale entry (being refreshed, or on the app's error).
    Stale,
    /// Not in the cache: the app answered (and the answer may be kept).
    Miss,
    /// Not cacheable: passed the cache by.
    Bypass,
}

impl CacheStatus {
    /// The name as `x-cache`, the metrics and the access log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Stale => "STALE",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}

/// In a request's `ext` when it arrived on bext's TLS listener: the scheme
/// its app sees (`request.url`, `X-Forwarded-Proto`) is `https`. The
/// kernel sets it; the cache keys on it, so that a page rendered with
/// `http://` links is never served to an `https://` client, nor the
/// reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrivedOverTls;

/// Request headers set together ([`Ctx::set_request_headers`]), shared.
pub type HeaderSet = Arc<[(http::HeaderName, http::HeaderValue)]>;

/// Returned when a write-once security fact (app, tenant, version, subject) is set a
/// second time: one writer per fact, so a later plugin cannot re-route a
/// request another plugin already placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is already set for this request")]
pub struct AlreadySet(pub &'static str);

/// The [`Ctx::vars`] name under which JavaScript and dynamic plugins
/// read [`Ctx::subject`] (the kernel adds it at their boundary; setting it
/// there changes nothing, as the subject is write-once).
pub const SUBJECT_VAR: &str = "auth.sub";

/// Per-request state shared by the kernel and every hook.
///
/// Security facts (`app`, `tenant`, `version`, `subject`) are write-once. Rust plugins
/// share typed values through [`Ctx::ext`]; JavaScript and dynamic plugins
/// use the string map [`Ctx::vars`].
pub struct Ctx {
    /// Unique id of this request.
    pub request_id: RequestId,
    /// Address of the TCP peer (the client, or the proxy in front of bext).
    pub peer: SocketAddr,
    /// The client's address: the peer's (an IPv4-mapped IPv6 address as
    /// IPv4), until a security plugin (the waf) resolves the address a
    /// trusted proxy reports. Later plugins
    /// (rate limits, logs) key on it, so all agree on who the client is;
    /// a field, not an `ext` entry, because every request has one.
    pub client_ip: IpAddr,
    /// When the kernel received the request head.
    pub received_at: Instant,
    /// Host of the request, lower-cased, without port or trailing dot;
    /// `None` only for HTTP/1.0 requests that sent no Host.
    pub host: Option<Box<str>>,
    /// Mount path the app is served under, sent to it as `x-base`.
    pub base: Option<Cow<'static, str>>,
    /// Skip the app's `on_request`/`on_response` plugins (a vhost entry's
    /// `bypass: true`).
    pub bypass: bool,
    /// The binding rate limit's standing, once a limiter decided.
    pub rate_limit: Option<RateLimitState>,
    /// How bext's cache dealt with the request, once it decided.
    pub cache_status: Option<CacheStatus>,
    /// Response headers added next to the response's map, in HTTP/1
    /// form (see [`EncodedHeaders`](crate::EncodedHeaders)): the kernel
    /// appends them to the map before any later `on_response` hook (but
    /// one whose plugin [reads them where they are](crate::Plugin::reads_encoded_headers))
    /// and wherever a map is needed, so they read as if inserted there.
    pub encoded_headers: crate::EncodedHeaders,
    /// Typed values plugins share, keyed by type.
    pub ext: crate::Extensions,
    /// Request headers set next to the request's map, not yet inserted
    /// ([`Ctx::set_request_headers`]).
    request_headers: Option<HeaderSet>,
    /// See [`Ctx::headers_as_admitted`].
    headers_as_admitted: bool,
    /// String values for plugins that cannot share Rust types.
    pub vars: HashMap<String, String>,
    app: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    version: Option<Arc<str>>,
    subject: Option<Arc<str>>,
    /// The request's trace, once something needed it.
    trace: OnceLock<TraceContext>,
    /// The running `on_request` asked for the response.
    response_wanted: bool,
}

impl Ctx {
    /// A fresh context; the kernel makes one per request.
    pub fn new(request_id: RequestId, peer: SocketAddr) -> Self {
        Ctx {
            request_id,
            peer,
            // An IPv4 client on a dual-stack listener is its IPv4
            // address (`::ffff:a.b.c.d` → `a.b.c.d`) to every plugin.
            client_ip: peer.ip().to_canonical(),
            received_at: Instant::now(),
            host: None,
            base: None,
            bypass: false,
            rate_limit: None,
            cache_status: None,
            encoded_headers: crate::EncodedHeaders::default(),
            ext: crate::Extensions::new(),
            request_headers: None,
            headers_as_admitted: false,
            vars: HashMap::new(),
            app: None,
            tenant: None,
            version: None,
            subject: None,
            trace: OnceLock::new(),
            response_wanted: false,
        }
    }

    /// Asks for this request's response in this plugin's `on_response`:
    /// called from `on_request` by a plugin whose hooks name
    /// [`Hooks::RESPONSE_WHEN_ASKED`](crate::Hooks::RESPONSE_WHEN_ASKED)
    /// (for others it changes nothing). Only the plugin that asks is
    /// called, and only if the response comes back through it (the onion
    /// order: not when a plugin before it answered).
    pub fn want_response(&mut self) {
        self.response_wanted = true;
    }

    /// Whether the hook that just ran called [`Ctx::want_response`],
    /// forgotten once read: the kernel reads it after each `on_request`.
    pub fn take_response_wanted(&mut self) -> bool {
        std::mem::take(&mut self.response_wanted)
    }

    /// The request's trace, if something has needed it yet.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.get()
    }

    /// The request's trace, read from `headers` (recorded with probability
    /// `sample` when new) the first time it is asked for: an app served
    /// twice (a layered app's folder, then its runtime) continues one span.
    pub fn trace_or_read(&self, headers: &http::HeaderMap, sample: f64) -> &TraceContext {
        self.trace.get_or_init(|| TraceContext::read(headers, sample))
    }

    /// The app, tenant and version, shared (not copied): what a record
    /// that outlives the request keeps of them (the access log's).
    pub fn names(&self) -> [Option<Arc<str>>; 3] {
        [self.app.clone(), self.tenant.clone(), self.version.clone()]
    }

    /// The app this request was routed to, once known.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The tenant captured from a wildcard or pattern host, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The app version serving this request, once known.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Who the request is from, once an authentication plugin verified
    /// its credentials, unambiguous across credential kinds and issuers
    /// (authn writes `apikey:<name>` or `jwt:<iss>|<sub>`), so it can key
    /// caches and rate limits.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Sets `set` on the request as [`HeaderMap::insert`](http::HeaderMap::insert)
    /// would (each name's values in the map replaced), later: the kernel
    /// inserts them before anything reads the request's map (any later
    /// hook, the app), except for a static site when none of their names
    /// is one it reads, which then pays nothing for them (authn's identity
    /// headers on every request, two map inserts that nobody reads). A set
    /// is shared, not copied: one built per caller costs a request a
    /// reference count. `headers` is the request's map, into which a set
    /// still pending from before goes first.
    pub fn set_request_headers(&mut self, headers: &mut http::HeaderMap, set: HeaderSet) {
        self.insert_request_headers(headers);
        self.request_headers = Some(set);
        self.headers_as_admitted = false;
    }

    /// Whether no plugin can have added a request header since the kernel
    /// admitted the head (the kernel's own `x-base` and tenant headers
    /// aside): the kernel removed every header a plugin owns ([`Plugin::owned_request_headers`](crate::Plugin::owned_request_headers))
    /// on arrival, and every plugin that ran since says it adds no request
    /// header ([`Plugin::adds_request_headers`](crate::Plugin::adds_request_headers))
    /// and set none with [`Ctx::set_request_headers`]. Then no client copy
    /// of an owned header can be in the map, and its owner need not look
    /// for one. `false` for a context the kernel did not admit a head for.
    pub fn headers_as_admitted(&self) -> bool {
        self.headers_as_admitted
    }

    /// For the kernel: the request's head was admitted, its owned headers
    /// removed ([`Ctx::headers_as_admitted`] holds from now on), or
    /// (`false`) a plugin that may add request headers is about to run.
    pub fn note_headers_as_admitted(&mut self, admitted: bool) {
        self.headers_as_admitted = admitted;
    }

    /// Inserts the pending request headers ([`Ctx::set_request_headers`])
    /// into `headers`, the request's map, and forgets them: what the kernel
    /// does before anything reads that map.
    #[inline]
    pub fn insert_request_headers(&mut self, headers: &mut http::HeaderMap) {
        // Called before every hook: most find nothing pending.
        if self.request_headers.is_some() {
            self.insert_pending(headers);
        }
    }

    fn insert_pending(&mut self, headers: &mut http::HeaderMap) {
        let Some(set) = self.request_headers.take() else { return };
        // One growth of the map at most, not one per header.
        headers.reserve(set.len());
        for (name, value) in set.iter() {
            headers.insert(name, value.clone());
        }
    }

    /// The names of the pending request headers.
    pub fn pending_request_headers(&self) -> impl Iterator<Item = &http::HeaderName> {
        self.request_headers
            .iter()
            .flat_map(|set| set.iter().map(|(name, _)| name))
    }

    /// Routes the request to `app`; only the first call succeeds.
    pub fn set_app(&mut self, app: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.app, app.into(), "app")
    }

    /// Records the tenant; only the first call succeeds.
    pub fn set_tenant(&mut self, tenant: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.tenant, tenant.into(), "tenant")
    }

    /// Records the app version; only the first call succeeds.
    pub fn set_version(&mut self, version: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.version, version.into(), "version")
    }

    /// Records the verified subject; only the first call succeeds, so a
    /// later plugin cannot change who the request is from.
    pub fn set_subject(&mut self, subject: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.subject, subject.into(), "subject")
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), AlreadySet> {
    if slot.is_some() {
        return Err(AlreadySet(what));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_facts_are_write_once() {
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        cx.set_app("a").unwrap();
        assert_eq!(cx.set_app("b"), Err(AlreadySet("app")));
        assert_eq!(cx.app(), Some("a"));
        cx.set_tenant("t").unwrap();
        assert!(cx.set_tenant("u").is_err());
        cx.set_subject("ana").unwrap();
        assert_eq!(cx.set_subject("eve"), Err(AlreadySet("subject")));
        assert_eq!(cx.subject(), Some("ana"));
        assert_eq!(
            cx.client_ip,
            cx.peer.ip(),
            "the peer until a plugin resolves a proxy's client"
        );
        let mapped = Ctx::new(RequestId(2), "[::ffff:192.0.2.1]:1".parse().unwrap());
        assert_eq!(mapped.client_ip, "192.0.2.1".parse::<IpAddr>().unwrap(), "canonical");
        assert_eq!(RequestId(255).to_string(), "00000000000000ff");
    }

    #[test]
    fn request_headers_set_later_replace_the_maps_when_inserted() {
        use http::{HeaderMap, HeaderName, HeaderValue};
        let set = |v: &'static str| -> HeaderSet {
            Arc::from([(HeaderName::from_static("x-auth-sub"), HeaderValue::from_static(v))])
        };
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        let mut map = HeaderMap::new();
        map.append("x-auth-sub", HeaderValue::from_static("client"));
        map.append("x-auth-sub", HeaderValue::from_static("client2"));
        cx.set_request_headers(&mut map, set("first"));
        assert_eq!(map.get_all("x-auth-sub").iter().count(), 2, "not inserted yet");
        assert_eq!(
            cx.pending_request_headers().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-auth-sub"]
        );
        // A second set: the first goes into the map, then waits itself.
        cx.set_request_headers(&mut map, set("second"));
        assert_eq!(map.get_all("x-auth-sub").iter().collect::<Vec<_>>(), ["first"]);
        cx.insert_request_headers(&mut map);
        assert_eq!(map.get_all("x-auth-sub").iter().collect::<Vec<_>>(), ["second"]);
        assert_eq!(cx.pending_request_headers().count(), 0, "forgotten once inserted");
        cx.insert_request_headers(&mut map);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn the_trace_is_read_once_when_first_needed() {
        let cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        assert!(cx.trace().is_none(), "nothing read on arrival");
        let mut sent = http::HeaderMap::new();
        sent.insert(
            crate::trace::TRACEPARENT,
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let first = *cx.trace_or_read(&sent, 0.0);
        assert_eq!(first.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // A second reader (a layered app's runtime after its folder; the
        // access log at the end) gets the same span, whatever it passes.
        assert_eq!(*cx.trace_or_read(&http::HeaderMap::new(), 1.0), first);
    }
}
