//! The `proxy` runtime: one upstream URL or several
//! ([`super::upstreams`]), bodies streamed both ways, over keep-alive
//! connections kept per worker ([`super::pool`]). A request that failed
//! goes to another backend when that is safe: always when it was never
//! sent (no connection), and after a 502, a 503, a reset or a timeout
//! when its method is idempotent and it has no body, within the app's
//! retry budget.

use std::sync::{Arc, Once};
use std::time::Duration;

use crate::apps::activity::{Activity, Busy};
use crate::apps::exchange::Failed;
use crate::apps::forwarded::Forwarding;
use crate::apps::plain;
use crate::apps::pool::{Counted, Lease, PoolError, PooledBody, SendFailed, WebSocketOpened};
use crate::apps::upstreams::{NoBackend, Policy, Upstreams, UpstreamsTls};
use crate::config::platform::AppConfig;
use crate::config::upstream::HealthCheck;
use bext_plugin_abi::BodyLimitError;
use bext_plugin_abi::{Body, Ctx, Request, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode, Uri, Version};

/// Requests that may wait for room when every backend is at
/// `max_connections`, when `queue` is unset.
const DEFAULT_QUEUE: u32 = 128;

/// A proxied app.
pub struct ProxyApp {
    upstreams: Arc<Upstreams>,
    connect_timeout: Duration,
    /// HTTP/2 to the upstreams: `TE: trailers` (gRPC) goes through.
    http2: bool,
    preserve_host: bool,
    response_timeout: Duration,
    body_timeout: Option<Duration>,
    /// Other backends a failed request may try.
    retries: u32,
    /// The active check, started on the first runtime that has the app.
    health: Option<(HealthCheck, Once)>,
    /// A process app with `idle_stop`: its use, which requests, their
    /// bodies and tunnels count in.
    activity: Option<Arc<Activity>>,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, and `Upgrade` outside a
/// tunnel), never forwarded.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

impl ProxyApp {
    /// The proxy an app's configuration describes (`upstream` or
    /// `upstreams`, balancing, health, retries, limits).
    pub fn from_config(id: &str, cfg: &AppConfig) -> Result<Self, String> {
        let list = crate::config::upstream::backends(cfg.upstream.as_deref(), &cfg.upstreams)?;
        let mut tls = UpstreamsTls::default();
        if list.iter().any(|(u, _)| u.tls) {
            tls.config = Some(super::upstream_tls::client_config(
                cfg.ca.as_deref(),
                cfg.insecure_skip_verify,
                cfg.http2,
            )?);
            tls.settings = match (&cfg.ca, cfg.insecure_skip_verify) {
                (_, true) => "insecure".into(),
                (Some(ca), false) => format!("ca={}", ca.display()),
                (None, false) => "system".into(),
            };
            if cfg.insecure_skip_verify {
                tracing::warn!(
                    app = id,
                    "insecure_skip_verify: the app's https:// upstreams' certificates are not verified"
                );
            }
        }
        let policy = Policy {
            balance: cfg.balance,
            hash: cfg.hash.as_deref().cloned(),
            max_connections: cfg.max_connections,
            queue: cfg.queue.unwrap_or(DEFAULT_QUEUE),
            check_interval: cfg.health.as_ref().map(|h| h.interval),
            connect_timeout: cfg.connect_wait(),
            http2: cfg.http2,
            guarded: cfg.upstream_from_bundle,
        };
        let upstreams = Arc::new(Upstreams::new(&list, policy, &tls)?);
        let app = ProxyApp {
            upstreams,
            connect_timeout: cfg.connect_wait(),
            http2: cfg.http2,
            preserve_host: cfg.preserve_host,
            response_timeout: cfg.response_wait(),
            body_timeout: cfg.body_timeout.map(|t| t.0),
            retries: cfg.retries.unwrap_or(1),
            health: cfg.health.as_deref().cloned().map(|h| (h, Once::new())),
            activity: None,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            app.start_checks();
        }
        Ok(app)
    }

    /// A process app's proxy: its instances (`http://` on loopback) are
    /// the backends, balanced, ejected and retried as a proxy app's, with
    /// the app's pool keys; its supervisors do the active checks and say
    /// which instances are in the set ([`Self::upstreams`]).
    pub(crate) fn for_instances(
        instances: &[crate::config::upstream::Upstream],
        cfg: &AppConfig,
    ) -> Result<Self, String> {
        let policy = Policy {
            balance: cfg.balance,
            hash: cfg.hash.as_deref().cloned(),
            max_connections: cfg.max_connections,
            queue: cfg.queue.unwrap_or(DEFAULT_QUEUE),
            check_interval: None,
            connect_timeout: cfg.connect_wait(),
            http2: cfg.http2,
            guarded: false,
        };
        let list: Vec<_> = instances.iter().map(|u| (u.clone(), 1)).collect();
        Ok(ProxyApp {
            upstreams: Arc::new(Upstreams::new(&list, policy, &UpstreamsTls::default())?),
            connect_timeout: cfg.connect_wait(),
            http2: cfg.http2,
            preserve_host: cfg.preserve_host,
            response_timeout: cfg.response_wait(),
            body_timeout: cfg.body_timeout.map(|t| t.0),
            retries: cfg.retries.unwrap_or(1),
            health: None,
            activity: cfg.idle_stop.is_some().then(Activity::new),
        })
    }

    /// A process app's use (with `idle_stop`).
    pub(crate) fn activity(&self) -> Option<&Arc<Activity>> {
        self.activity.as_ref()
    }

    /// Its backends, whose set a process app's supervisors replace.
    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Starts the active checks once, on the current runtime.
    fn start_checks(&self) {
        if let Some((check, started)) = &self.health {
            started.call_once(|| super::health::spawn(&self.upstreams, check.clone()));
        }
    }

    /// Forwards one request and streams the answer back; an HTTP/1.1
    /// `Upgrade` (WebSocket) that the upstream accepts with 101 becomes a
    /// byte tunnel between client and upstream.
    pub(crate) async fn serve(&self, mut req: Request, cx: &Ctx, fields: &mut super::KeptFields) -> Response {
        self.start_checks();
        let mut busy = self.activity.as_ref().map(|a| a.enter());
        // A WebSocket over HTTP/2: admitted only with `:protocol
        // websocket` (RFC 8441), and already the handshake's GET.
        let over_h2 = req.extensions().get::<hyper::ext::Protocol>().is_some();
        let upgrade = if over_h2 {
            Some(HeaderValue::from_static("websocket"))
        } else if req.method() == Method::GET {
            // RFC 6455 §4.1: the opening handshake is a GET; an upgrade
            // asked with another method goes up as that method, plainly.
            upgrade_protocol(req.headers())
        } else {
            None
        };
        if upgrade.is_some() && self.http2 {
            // HTTP/2 upstreams get no HTTP/1.1 handshake: an extended
            // CONNECT instead, if they allow it.
            return self.websocket_to_http2(req, over_h2, busy, cx).await;
        }
        let mut client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (mut parts, mut body) = req.into_parts();
        if over_h2 {
            // The upstream gets the HTTP/1.1 handshake (RFC 8441 §5), with
            // a key of bext's own: HTTP/2 has none.
            parts.extensions.remove::<hyper::ext::Protocol>();
            parts.headers.insert(&SEC_WEBSOCKET_KEY, websocket_key(cx));
            body = Body::empty();
        }
        if upgrade.is_none() && parts.version <= Version::HTTP_11 {
            body = match gather(body).await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
        }
        // The kernel already dropped what the client named in `Connection`,
        // before bext added its own headers: strip only the fixed
        // hop-by-hop set here.
        parts.headers.remove(header::HOST);
        // gRPC asks `TE: trailers` and an HTTP/2 upstream (the only one
        // that may get it) insists on it.
        let te_trailers = self.http2 && asks_trailers(&parts.headers);
        strip_fixed_hop_by_hop(&mut parts.headers);
        if te_trailers {
            parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        // The host bext routed, authenticated and cached by, in its
        // canonical form (lower case, no port, no trailing dot), so an
        // upstream cannot build a page for `site.test:6666` that the
        // cache then files under `site.test`.
        let client_host = match cx.host.as_deref() {
            Some(h) if self.preserve_host => HeaderValue::from_str(h).ok(),
            _ => None,
        };
        join_cookies(&mut parts.headers);
        // bext's forwarding fields, made once for every try and written
        // where the request goes (the client's copies leave the map now,
        // so a kept head has none).
        let forwarding = Forwarding::take(&mut parts.headers, cx);
        let set = self.upstreams.current();
        let retries = if set.list.len() > 1 { self.retries as usize } else { 0 };
        if retries > 0 {
            self.upstreams.deposit();
        }
        // A request sent may be sent again (after a 502, a 503 or a
        // timeout) only when repeating it is safe and the budget has a
        // retry: only then is its head kept, before bext's own
        // per-request headers (made again for a retry), so the copy
        // shares the client's header bytes instead of copying any.
        let kept = (retries > 0
            && upgrade.is_none()
            && is_idempotent(&parts.method)
            && body.as_bytes().is_some_and(<[u8]>::is_empty)
            && self.upstreams.can_withdraw())
        .then(|| Kept::of(&parts));
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        parts.version = Version::HTTP_11;

        let key = self.upstreams.key(&parts.headers, &forwarding, cx);
        let passive = self.upstreams.passive;
        // The target as asked, kept only when the request may go to
        // another backend whose URL has another base path (an unsent
        // request comes back with the first one's).
        let asked = (retries > 0 && !set.bare_paths).then(|| parts.uri.clone());
        let mut next = Request::from_parts(parts, body);
        let mut tried: Vec<usize> = Vec::new();
        let mut last: Option<Response> = None;
        // Waiting for room counts as getting a connection.
        let mut queued_until = None;
        loop {
            let i = match self.upstreams.pick(&set, key, &tried) {
                Ok(i) => i,
                Err(_) if last.is_some() => return last.unwrap_or_default(),
                Err(NoBackend::Unhealthy(wait)) => return unavailable(cx, "no healthy upstream", wait),
                Err(NoBackend::Full) => {
                    let until = *queued_until.get_or_insert_with(|| tokio::time::Instant::now() + self.connect_timeout);
                    if Box::pin(self.upstreams.wait_for_room(until)).await {
                        continue;
                    }
                    return unavailable(cx, "every upstream is busy", Duration::from_secs(1));
                }
            };
            let backend = &set.list[i];
            // `pick` saw room; another request may have taken it since:
            // then pick again (and wait in the queue).
            let Ok(in_flight) = self.upstreams.enter(backend) else {
                continue;
            };
            let mut req = next;
            let Some(uri) = target(&backend.base_path, asked.as_ref().unwrap_or(req.uri())) else {
                return plain(StatusCode::BAD_REQUEST, "bad request target\n");
            };
            *req.uri_mut() = uri;
            let host = client_host.as_ref().unwrap_or_else(|| backend.pool.host());
            let may_retry = |tried: &[usize]| tried.len() < retries && self.upstreams.withdraw();
            let sent = if upgrade.is_none() && super::exchange::takes(&backend.pool, &req) {
                let exchange = super::exchange::send(&backend.pool, &req, host, &forwarding, self.response_timeout);
                match exchange.await {
                    Ok(answer) => Ok(Ok(Answer::Own(answer))),
                    Err(Failed::Error { error, sent }) => Ok(Err(SendFailed {
                        error,
                        unsent: (!sent).then(|| Box::new(req)),
                    })),
                    Err(Failed::TimedOut) => Err(TimedOut),
                }
            } else {
                // hyper's client takes the fields in the map.
                req.headers_mut().insert(header::HOST, host.clone());
                forwarding.insert_into(req.headers_mut());
                let sent = tokio::time::timeout(self.response_timeout, backend.pool.send(req)).await;
                let sent = sent.map_err(|_| TimedOut);
                sent.map(|sent| {
                    sent.map(|(res, lease)| Answer::Hyper(res, lease))
                        .map_err(|mut failed| {
                            // Unsent, it may go to the exchange next, which
                            // writes these itself.
                            if let Some(req) = &mut failed.unsent {
                                req.headers_mut().remove(header::HOST);
                                forwarding.remove_from(req.headers_mut());
                            }
                            failed
                        })
                })
            };
            match sent {
                Ok(Ok(answer)) => {
                    let status = answer.status();
                    if passive {
                        if status.is_server_error() {
                            set.failed(i, false);
                        } else {
                            backend.succeeded();
                        }
                    }
                    let retry = matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE)
                        && kept.is_some()
                        && may_retry(&tried);
                    let counted = Counted {
                        in_flight,
                        busy: busy.take(),
                    };
                    let answer = match answer {
                        Answer::Own(own) => own.into_response(counted, self.body_timeout, fields),
                        Answer::Hyper(res, lease) => {
                            self.relay(res, lease, counted, client_upgrade.take(), over_h2, cx)
                        }
                    };
                    match &kept {
                        Some(kept) if retry => {
                            tracing::debug!(request_id = %cx.request_id, %status, "retrying on another upstream");
                            (next, last) = (kept.request(), Some(answer));
                            tried.push(i);
                        }
                        _ => return answer,
                    }
                }
                Ok(Err(failed)) => {
                    if passive {
                        set.failed(i, failed.error.is_connect());
                    }
                    let answer = failure(&failed.error, cx);
                    let again = failed.unsent.map(|r| *r);
                    match again.or_else(|| kept.as_ref().map(Kept::request)) {
                        Some(again) if may_retry(&tried) => {
                            tracing::debug!(request_id = %cx.request_id, error = %failed.error, "retrying on another upstream");
                            (next, last) = (again, Some(answer));
                            tried.push(i);
                        }
                        _ => return answer,
                    }
                }
                Err(_) => {
                    if passive {
                        set.failed(i, false);
                    }
                    let answer = head_timed_out(cx, backend.pool.addr(), self.response_timeout);
                    match &kept {
                        Some(kept) if may_retry(&tried) => {
                            (next, last) = (kept.request(), Some(answer));
                            tried.push(i);
                        }
                        _ => return answer,
                    }
                }
            }
        }
    }
}

/// No answer head within the response timeout.
struct TimedOut;

/// An upstream's answer, from bext's own exchange or hyper's client.
enum Answer {
    Own(super::exchange::Answer),
    Hyper(http::Response<hyper::body::Incoming>, Lease),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Own(own) => own.status(),
            Answer::Hyper(res, _) => res.status(),
        }
    }
}

impl ProxyApp {
    /// The upstream's answer as the client's: a WebSocket 101 becomes a
    /// tunnel, anything else streams back without hop-by-hop headers.
    fn relay(
        &self,
        res: http::Response<hyper::body::Incoming>,
        lease: Lease,
        counted: Counted,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        over_h2: bool,
        cx: &Ctx,
    ) -> Response {
        if let (StatusCode::SWITCHING_PROTOCOLS, Some(client)) = (res.status(), client_upgrade) {
            let mut answer = tunnel(res, client, counted.busy, cx);
            if over_h2 {
                // An HTTP/2 client's WebSocket is accepted with a 200.
                *answer.status_mut() = StatusCode::OK;
                strip_fixed_hop_by_hop(answer.headers_mut());
                answer.headers_mut().remove(&SEC_WEBSOCKET_ACCEPT);
            }
            return answer;
        }
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Nobody asked to switch: relayed, it would leave the client
            // on a connection that speaks no HTTP any more.
            return plain(
                StatusCode::BAD_GATEWAY,
                format!(
                    "app `{}`: the upstream switched protocols unasked\n",
                    cx.app().unwrap_or("")
                ),
            );
        }
        if over_h2 && res.status().is_success() {
            // A 2xx would open the client's tunnel (RFC 8441 §5) with
            // nothing behind it: the upstream did not switch protocols.
            return plain(
                StatusCode::BAD_GATEWAY,
                format!(
                    "app `{}`: the upstream did not accept the WebSocket\n",
                    cx.app().unwrap_or("")
                ),
            );
        }
        let codings = res.headers().get_all(header::TRANSFER_ENCODING);
        if !codings.iter().all(|v| super::exchange::only_chunked(v.as_bytes())) {
            // hyper took the body out of its chunks; the other coding
            // would reach the client unlabelled (bext's own exchange
            // refuses it the same way).
            tracing::warn!(request_id = %cx.request_id, app = cx.app().unwrap_or(""), "the upstream's answer has a Transfer-Encoding other than chunked");
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("app `{}`: upstream unavailable\n", cx.app().unwrap_or("")),
            );
        }
        let (mut parts, body) = res.into_parts();
        if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            // Framed by its Transfer-Encoding: a Content-Length beside it
            // must not go on (RFC 9112 §6.3), or the client reads the
            // body to the wrong length.
            parts.headers.remove(header::CONTENT_LENGTH);
        } else {
            plain_content_length(&mut parts.headers);
        }
        strip_hop_by_hop(&mut parts.headers);
        // The client's connection speaks its own version; an HTTP/1.0
        // upstream's is not relayed (hyper would write it in the status
        // line and close a kept-alive connection).
        parts.version = Version::HTTP_11;
        Response::from_parts(
            parts,
            Body::stream(PooledBody::new(body, lease, counted, self.body_timeout)),
        )
    }
}

impl ProxyApp {
    /// A WebSocket (asked over HTTP/1.1 or HTTP/2) to an app whose
    /// upstreams speak HTTP/2: an extended CONNECT with `:protocol
    /// websocket` (RFC 8441 §4) to one backend, never retried (a tunnel
    /// is not replayed). An upstream whose SETTINGS do not allow it
    /// answers nothing: the client gets 501.
    async fn websocket_to_http2(&self, mut req: Request, over_h2: bool, busy: Option<Busy>, cx: &Ctx) -> Response {
        // An HTTP/1.1 client gets `Sec-WebSocket-Accept` from bext, made
        // from its key (RFC 6455 §4.2.2); HTTP/2 has no key.
        let accept = if over_h2 {
            None
        } else {
            match req.headers().get(&SEC_WEBSOCKET_KEY).map(websocket_accept) {
                Some(accept) => Some(accept),
                None => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "WebSocket handshake without Sec-WebSocket-Key\n",
                    );
                }
            }
        };
        let client = hyper::upgrade::on(&mut req);
        let (mut parts, _) = req.into_parts();
        parts.method = Method::CONNECT;
        parts.extensions.insert(hyper::ext::Protocol::from_static("websocket"));
        parts.headers.remove(header::HOST);
        parts.headers.remove(&SEC_WEBSOCKET_KEY);
        strip_fixed_hop_by_hop(&mut parts.headers);
        join_cookies(&mut parts.headers);
        let forwarding = Forwarding::take(&mut parts.headers, cx);
        forwarding.insert_into(&mut parts.headers);

        let set = self.upstreams.current();
        let key = self.upstreams.key(&parts.headers, &forwarding, cx);
        let i = match self.upstreams.pick(&set, key, &[]) {
            Ok(i) => i,
            Err(NoBackend::Unhealthy(wait)) => return unavailable(cx, "no healthy upstream", wait),
            Err(NoBackend::Full) => return unavailable(cx, "every upstream is busy", Duration::from_secs(1)),
        };
        let backend = &set.list[i];
        let Some(uri) = target(&backend.base_path, &parts.uri) else {
            return plain(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        parts.uri = uri;
        let host = match cx.host.as_deref() {
            Some(h) if self.preserve_host => HeaderValue::from_str(h).ok(),
            _ => None,
        };
        let host = host.unwrap_or_else(|| backend.pool.host().clone());
        parts.headers.insert(header::HOST, host);
        let Ok(in_flight) = self.upstreams.enter(backend) else {
            return unavailable(cx, "every upstream is busy", Duration::from_secs(1));
        };
        let opened = tokio::time::timeout(
            self.response_timeout,
            backend.pool.open_websocket(Request::from_parts(parts, Body::empty())),
        )
        .await;
        let res = match opened {
            Ok(Ok(WebSocketOpened::Answered(res))) => res,
            Ok(Ok(WebSocketOpened::NotSupported)) => {
                return plain(
                    StatusCode::NOT_IMPLEMENTED,
                    format!(
                        "app `{}`: its upstream does not accept WebSockets over HTTP/2 (no extended CONNECT)\n",
                        cx.app().unwrap_or("")
                    ),
                );
            }
            Ok(Err(failed)) => {
                if self.upstreams.passive {
                    set.failed(i, failed.error.is_connect());
                }
                return failure(&failed.error, cx);
            }
            Err(_) => return head_timed_out(cx, backend.pool.addr(), self.response_timeout),
        };
        if !res.status().is_success() {
            // Refused (a 4xx, say): relayed as answered, no tunnel.
            let counted = Counted { in_flight, busy };
            return self.relay(res, Lease::none(), counted, None, false, cx);
        }
        let mut answer = tunnel(res, client, busy, cx);
        drop(in_flight);
        strip_hop_by_hop(answer.headers_mut());
        answer.headers_mut().remove(header::CONTENT_LENGTH);
        match accept {
            // An HTTP/2 client's WebSocket is accepted with a 200.
            None => *answer.status_mut() = StatusCode::OK,
            Some(accept) => {
                *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = answer.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                h.insert(&SEC_WEBSOCKET_ACCEPT, accept);
            }
        }
        *answer.version_mut() = Version::HTTP_11;
        answer
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: the
/// base64 SHA-1 of the key and RFC 6455's GUID.
fn websocket_accept(key: &HeaderValue) -> HeaderValue {
    use sha1::Digest as _;
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    HeaderValue::from_bytes(&base64(&sha1.finalize())).expect("base64 is a valid header value")
}

/// The upstream's request target (origin form) for a request to `uri`:
/// the request's path and query as they are (already parsed and checked)
/// when the upstream URL has no path of its own, so a request costs no
/// formatting and no parsing.
fn target(base_path: &str, uri: &Uri) -> Option<Uri> {
    let asked = uri.path_and_query();
    let path_and_query = match asked {
        Some(pq) if base_path.is_empty() => pq.clone(),
        None if base_path.is_empty() => PathAndQuery::from_static("/"),
        _ => {
            let path = asked.map_or("/", PathAndQuery::as_str);
            format!("{base_path}{path}").parse().ok()?
        }
    };
    Some(Uri::from(path_and_query))
}

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// A `Sec-WebSocket-Key` for the upstream: 16 bytes (the request id in
/// hex, unique per request), base64.
fn websocket_key(cx: &Ctx) -> HeaderValue {
    let raw = format!("{:016x}", cx.request_id.0);
    HeaderValue::from_bytes(&base64(&raw.as_bytes()[..16])).expect("base64 is a valid header value")
}

/// Standard base64 with padding, of the few bytes a WebSocket handshake
/// carries.
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

/// Whether a request's `TE` names `trailers`.
fn asks_trailers(headers: &HeaderMap) -> bool {
    (headers.get_all(header::TE).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        })
}

/// Request bodies of at most this many bytes (by their `Content-Length`)
/// are read whole before the upstream hears of the request, as nginx's
/// request buffering does: the head and body then go out in one write,
/// and an upstream connection is not held while a client is slow to send.
const GATHER_LIMIT: u64 = 64 * 1024;

/// `body` whole when an HTTP/1 client declared a length of at most
/// [`GATHER_LIMIT`] (a framing with no trailers to lose): in one buffer
/// (the frames it arrived in joined, when there were several), so the
/// upstream connection writes it behind the head in one `writev`. Any
/// other body stays a stream. A body that fails while read (too large,
/// too slow, the client gone) is answered here, as the upstream request
/// it would have broken would have been.
async fn gather(body: Body) -> Result<Body, Response> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    let small = body.size_hint().exact().filter(|&n| n > 0 && n <= GATHER_LIMIT);
    let Some(size) = small.filter(|_| body.as_bytes().is_none()) else {
        return Ok(body);
    };
    let mut first: Option<bytes::Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        match frame.map(http_body::Frame::into_data) {
            Ok(Ok(data)) if !data.is_empty() => match (&mut joined, first.take()) {
                (Some(all), _) => all.extend_from_slice(&data),
                (None, None) => first = Some(data),
                (None, Some(before)) => {
                    let mut all = bytes::BytesMut::with_capacity(size as usize);
                    all.extend_from_slice(&before);
                    all.extend_from_slice(&data);
                    joined = Some(all);
                }
            },
            // Empty frames, and no trailers come with a `Content-Length`.
            Ok(_) => {}
            Err(e) => return Err(super::body_read_failed(&e)),
        }
    }
    Ok(match joined {
        Some(all) => Body::full(all.freeze()),
        None => Body::full(first.unwrap_or_default()),
    })
}

/// Methods a server must treat as safe to repeat (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What a bodiless idempotent request needs to be sent again: its head
/// as the client sent it (hop-by-hop and forwarding fields gone), before
/// bext's own per-request headers.
struct Kept {
    method: Method,
    uri: Uri,
    /// The fields as a list: one allocation, and the client's bytes
    /// shared; a map (with its hash index) is made only for a retry.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Kept {
    fn of(parts: &http::request::Parts) -> Kept {
        let mut headers = Vec::with_capacity(parts.headers.len());
        headers.extend(parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
        Kept {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers,
        }
    }

    /// The request again (the attempt adds `Host` and bext's forwarding
    /// fields).
    fn request(&self) -> Request {
        let mut copy = Request::new(Body::empty());
        *copy.method_mut() = self.method.clone();
        *copy.uri_mut() = self.uri.clone();
        *copy.version_mut() = Version::HTTP_11;
        let headers = copy.headers_mut();
        headers.reserve(self.headers.len() + 4);
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        copy
    }
}

/// 503 with `Retry-After` (whole seconds, at least one), naming the app.
fn unavailable(cx: &Ctx, why: &str, wait: Duration) -> Response {
    let mut res = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("app `{}`: {why}\n", cx.app().unwrap_or("")),
    );
    let secs = wait.as_millis().div_ceil(1000).max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
    res
}

/// 504 naming the app, never the upstream's address.
fn timed_out(cx: &Ctx) -> Response {
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        format!("app `{}`: upstream timed out\n", cx.app().unwrap_or("")),
    )
}

/// [`timed_out`] for an upstream that sent no response head within
/// `response_timeout`, with the address in the log for the operator.
fn head_timed_out(cx: &Ctx, upstream: &str, after: Duration) -> Response {
    tracing::warn!(
        request_id = %cx.request_id,
        app = cx.app().unwrap_or(""),
        upstream,
        response_timeout = ?after,
        "upstream timed out: no response head"
    );
    timed_out(cx)
}

/// The protocol a request asks to upgrade to, when it carries both
/// `Connection: upgrade` and `Upgrade: websocket`. Only WebSocket is
/// tunnelled: after an `h2c` (or any other) upgrade, the requests inside
/// the tunnel would reach the upstream without passing bext's plugins
/// (h2c smuggling), so such an `Upgrade` is dropped and the request
/// forwarded as a plain one.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE)?;
    (asks
        && headers.get_all(header::UPGRADE).iter().count() == 1
        && upgrade.as_bytes().eq_ignore_ascii_case(b"websocket"))
    .then(|| upgrade.clone())
}

/// HTTP/2 clients may send `cookie` as several fields; an HTTP/1.1
/// upstream gets them as one line joined by `; ` (RFC 9113 §8.2.3), so it
/// reads the same cookies the plugins read.
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Answers 101 to the client and splices the two upgraded connections.
fn tunnel(
    mut upstream: http::Response<hyper::body::Incoming>,
    client: hyper::upgrade::OnUpgrade,
    busy: Option<Busy>,
    cx: &Ctx,
) -> Response {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    let request_id = cx.request_id;
    tokio::spawn(async move {
        // An open tunnel keeps an idle_stop app awake.
        let _busy = busy;
        let (client, upstream) = match tokio::try_join!(client, upstream_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(%request_id, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%request_id, error = %e, "upgraded connection ended");
        }
    });
    let (parts, _) = upstream.into_parts();
    Response::from_parts(parts, Body::empty())
}

fn failure(e: &PoolError, cx: &Ctx) -> Response {
    let mut timed_out = matches!(e, PoolError::ConnectTimeout { .. });
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(limit) = err.downcast_ref::<BodyLimitError>() {
            return plain(limit.status(), "request body refused\n");
        }
        timed_out |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        source = err.source();
    }
    tracing::warn!(request_id = %cx.request_id, app = cx.app().unwrap_or(""), error = ?e, "upstream request failed");
    if timed_out {
        self::timed_out(cx)
    } else {
        plain(
            StatusCode::BAD_GATEWAY,
            format!("app `{}`: upstream unavailable\n", cx.app().unwrap_or("")),
        )
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`: an
/// upstream's answer, which no plugin has touched yet.
/// One `Content-Length` in its plain form: hyper accepts a list of equal
/// lengths (`5, 5`) or leading zeros and would relay them as written,
/// which HTTP/2 clients refuse (RFC 9110 §8.6 allows folding them to one).
fn plain_content_length(headers: &mut HeaderMap) {
    let mut lengths = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|v| std::str::from_utf8(v).ok().and_then(|v| v.trim().parse::<u64>().ok()));
    let Some(Some(first)) = lengths.next() else {
        return;
    };
    if lengths.all(|n| n == Some(first)) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(first));
    } else {
        headers.remove(header::CONTENT_LENGTH);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // `keep-alive` and `close`, what most answers name, go anyway.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.eq_ignore_ascii_case("keep-alive") && !name.eq_ignore_ascii_case("close"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    strip_fixed_hop_by_hop(headers);
}

/// Removes the headers that are hop-by-hop by definition.
fn strip_fixed_hop_by_hop(headers: &mut HeaderMap) {
    super::forwarded::remove_all(headers, &HOP_BY_HOP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_is_tunnelled_and_cookies_are_one_line() {
        let ask = |up: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static(up));
            upgrade_protocol(&h)
        };
        assert!(ask("websocket").is_some() && ask("WebSocket").is_some());
        for other in ["h2c", "websocket, h2c", "TLS/1.2"] {
            assert!(ask(other).is_none(), "{other}");
        }
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    }

    #[test]
    fn the_request_target_keeps_path_and_query_and_adds_the_base() {
        let base = |url: &str| crate::config::upstream::parse_upstream(url).unwrap().base_path;
        let uri: Uri = "/a/b?x=1&y=%20".parse().unwrap();
        assert_eq!(target(&base("http://127.0.0.1:9"), &uri).unwrap(), "/a/b?x=1&y=%20");
        assert_eq!(
            target(&base("http://up.test:81/api/"), &uri).unwrap(),
            "/api/a/b?x=1&y=%20"
        );
        let absolute: Uri = "http://other.test/x?q".parse().unwrap();
        assert_eq!(target(&base("http://127.0.0.1:9"), &absolute).unwrap(), "/x?q");
    }

    #[test]
    fn every_fixed_hop_by_hop_and_unvouched_header_goes_whatever_its_place() {
        let mut h = HeaderMap::new();
        for name in HOP_BY_HOP.iter().chain(&crate::apps::forwarded::UNVOUCHED).rev() {
            h.append(name, HeaderValue::from_static("1"));
            h.append(name, HeaderValue::from_static("2"));
        }
        // Names as long as removed ones, and longer than any, stay.
        let long = "x-".repeat(40);
        for kept in ["x-kept", "x-forwarded-xyz", "forwardee", "x-upgrade", long.as_str()] {
            h.insert(
                HeaderName::from_bytes(kept.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        strip_fixed_hop_by_hop(&mut h);
        crate::apps::forwarded::remove_all(&mut h, &crate::apps::forwarded::UNVOUCHED);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort();
        assert_eq!(
            left,
            ["forwardee", "x-forwarded-xyz", "x-kept", "x-upgrade", long.as_str()]
        );
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(long.as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        crate::apps::forwarded::remove_all(&mut h, &[HeaderName::from_bytes(long.as_bytes()).unwrap()]);
        assert!(h.is_empty(), "a long name in the set is removed too");
    }

    #[test]
    fn the_websocket_key_is_16_bytes_in_base64() {
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        assert_eq!(websocket_key(&cx), "MDAwMDAwMDAwMDAwMDAwMQ==");
        let cx = Ctx::new(bext_plugin_abi::RequestId(u64::MAX), "127.0.0.1:1".parse().unwrap());
        assert_eq!(websocket_key(&cx), "ZmZmZmZmZmZmZmZmZmZmZg==");
    }

    #[test]
    fn the_websocket_accept_is_rfc_6455s() {
        // RFC 6455 §1.3's example.
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(websocket_accept(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        let te = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::TE, HeaderValue::from_static(v));
            asks_trailers(&h)
        };
        assert!(te("trailers") && te("gzip, Trailers") && te("trailers;q=1"));
        assert!(!te("gzip") && !te("trailersx"));
    }

    #[test]
    fn connection_listed_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
