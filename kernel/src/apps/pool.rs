//! Keep-alive connections to a proxy app's upstream, kept per worker
//! thread: each worker is a single-threaded runtime, so its idle
//! connections sit in a thread-local stack that a request takes from and
//! gives back to without a lock, a shared hash or a task of its own
//! (hyper-util's pool paid for all three: about a fifth of a proxied
//! request's instructions). A connection goes back when its response body
//! has been read to the end; one the upstream closed, or idle longer than
//! the idle timeout, is dropped when next seen. Pools outlive reloads:
//! they are keyed by the upstream's address (and TLS settings), not by
//! the app. An HTTP/2 upstream (h2c by prior knowledge, or h2 chosen by
//! ALPN) gets one multiplexed connection per worker instead, shared by
//! that worker's requests.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bext_plugin_abi::Body;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustc_hash::FxHashMap;

use super::upstreams::InFlight;

/// Idle connections kept per upstream and worker, at most; more are
/// closed as their responses end.
pub(crate) const MAX_IDLE: usize = 256;

/// How long an idle connection may wait for its next request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a worker closes its idle upstream connections that ended or
/// timed out (see [`sweep_idle_periodically`]).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Runs on each worker: every [`SWEEP_EVERY`], closes this worker's idle
/// upstream connections (hyper's and the exchange's) that the upstream
/// closed or that waited past [`IDLE_TIMEOUT`], and forgets upstreams
/// with none left. A request only looks at its own upstream's stack, so
/// without this an upstream no request names any more (a process app's
/// old instances after a deploy, an app a reload removed) would keep its
/// connections, and their descriptors, for the server's life.
pub(crate) async fn sweep_idle_periodically() {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        sweep_idle();
        super::exchange::sweep_idle();
    }
}

/// Drops this worker's hyper connections that are closed or past the
/// idle timeout.
fn sweep_idle() {
    IDLE.with_borrow_mut(|idle| {
        idle.retain(|_, stack| {
            stack.retain(|conn| !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT);
            !stack.is_empty()
        })
    })
}

thread_local! {
    /// This worker's idle connections by upstream address, the most
    /// recently used last.
    static IDLE: RefCell<FxHashMap<Arc<str>, Vec<Idle>>> = RefCell::default();
    /// This worker's HTTP/2 connection to each HTTP/2 upstream.
    static SHARED_H2: RefCell<FxHashMap<Arc<str>, SharedH2>> = RefCell::default();
}

/// A new connection: HTTP/1.1, or HTTP/2.
pub(crate) enum Sender {
    H1(SendRequest<Body>),
    H2(SharedH2),
}

/// An HTTP/2 connection, shared by the worker's requests, and what its
/// upstream said of extended CONNECT (RFC 8441): `None` until its first
/// SETTINGS frame, then whether it allows WebSockets over HTTP/2.
#[derive(Clone)]
pub(crate) struct SharedH2 {
    sender: http2::SendRequest<Body>,
    connect_protocol: tokio::sync::watch::Receiver<Option<bool>>,
}

/// What [`Pool::open_websocket`] got.
pub(crate) enum WebSocketOpened {
    /// The upstream's answer to the extended CONNECT.
    Answered(http::Response<Incoming>),
    /// The upstream does not allow extended CONNECT (its SETTINGS did not
    /// enable it, or it chose HTTP/1.1 by ALPN): nothing was sent.
    NotSupported,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// No connection within the connect timeout.
    #[error("connecting to {addr} took longer than {timeout:?}")]
    ConnectTimeout { addr: Box<str>, timeout: Duration },
    /// The connection was refused, reset or could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect { addr: Box<str>, source: std::io::Error },
    /// The TLS handshake failed (a certificate not trusted, or not for
    /// the upstream's name).
    #[error("TLS to {addr}: {source}")]
    Tls { addr: Box<str>, source: std::io::Error },
    /// The request or its response failed on the connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The request or its answer failed on bext's own exchange.
    #[error(transparent)]
    Exchange(#[from] super::exchange::ExchangeError),
}

/// A request that failed, and the request itself when it was never
/// written to a connection.
#[derive(Debug)]
pub(crate) struct SendFailed {
    pub(crate) error: PoolError,
    pub(crate) unsent: Option<Box<http::Request<Body>>>,
}

impl SendFailed {
    fn sent(error: PoolError) -> SendFailed {
        SendFailed { error, unsent: None }
    }
}

impl PoolError {
    /// Whether no connection could be made (the backend is not there).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(
            self,
            PoolError::Connect { .. } | PoolError::ConnectTimeout { .. } | PoolError::Tls { .. }
        )
    }
}

/// The connections to one upstream address.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// `host:port`, what is connected to, or `unix:PATH`.
    addr: Box<str>,
    /// The Unix socket connected to instead of `addr`: an address of
    /// another kind, keyed apart by its `unix:` prefix.
    unix: Option<Box<std::path::Path>>,
    /// What keys the idle stacks: the address, and for TLS the settings
    /// its connections were verified with, so no app reuses a connection
    /// another app's laxer settings accepted. Shared: every request's
    /// lease carries it (a count, not a copy).
    key: Arc<str>,
    /// For https:// upstreams: the app's TLS settings and the name the
    /// certificate must have.
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// The `Host` a request gets when the app does not preserve the
    /// client's.
    host: HeaderValue,
    connect_timeout: Duration,
    /// `http2`: h2c by prior knowledge on http://, h2 offered by ALPN
    /// (HTTP/1.1 if the upstream declines) on https://.
    http2: bool,
    /// Named by a deployed bundle, not the platform file: a connection
    /// that reaches bext's own listeners or a link-local address (a
    /// cloud's metadata service) is refused (see [`Pool::guarded`]).
    guarded: bool,
}

/// 169.254.0.0/16 and fe80::/10 (an IPv4 address written as IPv6 counts
/// as itself), where clouds answer metadata and credentials.
fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => v6.is_unicast_link_local(),
        },
    }
}

/// A connection lent to one request: given back when its response body
/// ends (see [`PooledBody`]). An HTTP/2 stream has nothing to give back.
pub(crate) struct Lease {
    /// The idle stack's key and the connection.
    kept: Option<(Arc<str>, SendRequest<Body>)>,
}

impl Pool {
    /// The pool of `authority` (`host[:port]`, port 80 by default, 443
    /// with `tls`): `tls` is the app's TLS client settings for an https://
    /// upstream, and the name that keys them apart from other apps'.
    pub(crate) fn new(
        authority: &http::uri::Authority,
        connect_timeout: Duration,
        tls: Option<(&std::sync::Arc<rustls::ClientConfig>, &str)>,
        http2: bool,
    ) -> Result<Pool, String> {
        let port = authority.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let addr: Box<str> = format!("{}:{port}", authority.host()).into();
        let (key, tls) = match tls {
            None => (Arc::from(&*addr), None),
            Some((config, settings)) => (
                Arc::from(format!("tls {settings} {addr}")),
                Some((config.clone(), super::upstream_tls::server_name(authority.host())?)),
            ),
        };
        Ok(Pool {
            addr,
            unix: None,
            key,
            tls,
            host: HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value"),
            connect_timeout,
            http2,
            guarded: false,
        })
    }

    /// The pool for an upstream a deployed bundle names (`[server]
    /// upstream` of a `hybrid` bundle): whoever may deploy must not make
    /// bext forward anonymous requests to its own admin listener or to a
    /// link-local address. Checked on each new connection's peer, after
    /// DNS, so no spelling or later answer of a name gets around it; its
    /// connections are kept apart from unguarded pools'.
    pub(crate) fn guarded(mut self) -> Pool {
        self.guarded = true;
        self.key = Arc::from(format!("guarded {}", self.key));
        self
    }

    /// The pool of the server on the Unix socket at `path` (HTTP/1.1, or
    /// h2c with `http2`; `Host: localhost`): a process app's instance.
    pub(crate) fn unix(path: &std::path::Path, connect_timeout: Duration, http2: bool) -> Pool {
        let addr: Box<str> = format!("unix:{}", path.display()).into();
        Pool {
            key: Arc::from(&*addr),
            addr,
            unix: Some(path.into()),
            tls: None,
            host: HeaderValue::from_static("localhost"),
            connect_timeout,
            http2,
            guarded: false,
        }
    }

    /// The upstream's own `Host`.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// What keys this upstream's idle connections.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// Whether requests may take bext's own HTTP/1.1 exchange
    /// ([`super::exchange`]): plain `http://` over TCP, not HTTP/2.
    pub(crate) fn plain_tcp_http1(&self) -> bool {
        !self.http2 && self.tls.is_none() && self.unix.is_none()
    }

    /// A new TCP connection within the connect timeout.
    pub(crate) async fn connect_tcp(&self) -> Result<tokio::net::TcpStream, PoolError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let tcp =
            self.connected(tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(&*self.addr)).await)?;
        let _ = tcp.set_nodelay(true);
        self.allowed(tcp)
    }

    /// `tcp`, unless the pool is [guarded](Pool::guarded) and its peer is
    /// bext itself or link-local.
    fn allowed(&self, tcp: tokio::net::TcpStream) -> Result<tokio::net::TcpStream, PoolError> {
        if !self.guarded {
            return Ok(tcp);
        }
        let (Ok(peer), Ok(local)) = (tcp.peer_addr(), tcp.local_addr()) else {
            return Ok(tcp);
        };
        let why = if bext_js::reaches_own_listener(peer, local.ip()) {
            "it is one of bext's own listeners"
        } else if is_link_local(peer.ip()) {
            "it is a link-local address (a cloud's metadata service lives there)"
        } else {
            return Ok(tcp);
        };
        Err(PoolError::Connect {
            addr: self.addr.clone(),
            source: std::io::Error::other(format!(
                "refused: a deployed bundle's upstream reaches {peer}, and {why}; name such an upstream in the platform file"
            )),
        })
    }

    /// `host:port` or `unix:PATH`, for logs (never for answers: clients
    /// are not told where upstreams are).
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` (origin-form target, headers final) on an idle
    /// connection, or a new one. A request an idle connection could not
    /// take (the upstream closed it meanwhile) is sent again on a fresh
    /// connection: it was not written, so resending is safe for any
    /// method.
    /// A request no connection could be made for comes back unsent, so
    /// it can go to another backend whatever its method.
    pub(crate) async fn send(
        &self,
        mut req: http::Request<Body>,
    ) -> Result<(http::Response<Incoming>, Lease), SendFailed> {
        if self.http2
            && let Some(shared) = self.ready_h2().await
        {
            return Box::pin(self.send_h2(shared.sender, req)).await;
        }
        while let Some(mut sender) = self.take_idle() {
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => return Ok((res, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendFailed::sent(e.into_error().into())),
                },
            }
        }
        // Boxed: a new connection's future (TLS handshake included) is
        // large, and every request's future would carry its size.
        let mut sender = match Box::pin(self.connect()).await {
            Ok(Sender::H1(sender)) => sender,
            Ok(Sender::H2(shared)) => {
                SHARED_H2.with_borrow_mut(|h2| h2.insert(self.key.clone(), shared.clone()));
                return Box::pin(self.send_h2(shared.sender, req)).await;
            }
            Err(error) => {
                return Err(SendFailed {
                    error,
                    unsent: Some(Box::new(req)),
                });
            }
        };
        match sender.send_request(req).await {
            Ok(res) => Ok((res, self.lease(sender))),
            Err(e) => Err(SendFailed::sent(e.into())),
        }
    }

    /// This worker's HTTP/2 connection to the upstream, open and ready
    /// for a stream; one that is not is forgotten.
    async fn ready_h2(&self) -> Option<SharedH2> {
        let mut shared = self.shared_h2()?;
        if shared.sender.ready().await.is_ok() {
            return Some(shared);
        }
        SHARED_H2.with_borrow_mut(|h2| h2.remove(&*self.key));
        None
    }

    /// Opens a WebSocket over HTTP/2 with the upstream: `req` (an
    /// HTTP/1.1-shaped `CONNECT` carrying `:protocol`) goes on this
    /// worker's HTTP/2 connection once the upstream's SETTINGS say it
    /// allows extended CONNECT (RFC 8441 §3), which a new connection
    /// waits for (within the connect timeout).
    pub(crate) async fn open_websocket(&self, req: http::Request<Body>) -> Result<WebSocketOpened, SendFailed> {
        let shared = match self.ready_h2().await {
            Some(shared) => shared,
            None => match Box::pin(self.connect()).await {
                Ok(Sender::H2(shared)) => {
                    SHARED_H2.with_borrow_mut(|h2| h2.insert(self.key.clone(), shared.clone()));
                    shared
                }
                Ok(Sender::H1(_)) => return Ok(WebSocketOpened::NotSupported),
                Err(error) => {
                    return Err(SendFailed {
                        error,
                        unsent: Some(Box::new(req)),
                    });
                }
            },
        };
        let mut said = shared.connect_protocol.clone();
        let allowed = tokio::time::timeout(self.connect_timeout, said.wait_for(Option::is_some))
            .await
            .is_ok_and(|said| said.is_ok_and(|said| *said == Some(true)));
        if !allowed {
            return Ok(WebSocketOpened::NotSupported);
        }
        let (res, _) = Box::pin(self.send_h2(shared.sender, req)).await?;
        Ok(WebSocketOpened::Answered(res))
    }

    /// One request on an HTTP/2 connection.
    async fn send_h2(
        &self,
        mut sender: http2::SendRequest<Body>,
        req: http::Request<Body>,
    ) -> Result<(http::Response<Incoming>, Lease), SendFailed> {
        match sender.send_request(self.h2_request(req)).await {
            Ok(res) => Ok((res, Lease::none())),
            Err(e) => Err(SendFailed::sent(e.into())),
        }
    }

    /// An HTTP/1.1-shaped request as HTTP/2 wants it: the target in
    /// absolute form (its authority becomes `:authority`, from the `Host`
    /// the proxy chose), no `Host` and no connection-specific headers.
    fn h2_request(&self, mut req: http::Request<Body>) -> http::Request<Body> {
        let host = req.headers_mut().remove(http::header::HOST);
        let authority = host
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .or_else(|| http::uri::Authority::try_from(self.host.as_bytes()).ok());
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = authority;
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = http::Uri::from_parts(parts).unwrap_or_default();
        *req.version_mut() = http::Version::HTTP_2;
        let headers = req.headers_mut();
        headers.remove(http::header::CONNECTION);
        headers.remove(http::header::UPGRADE);
        req
    }

    /// This worker's HTTP/2 connection to the upstream, if open.
    fn shared_h2(&self) -> Option<SharedH2> {
        SHARED_H2.with_borrow(|h2| h2.get(&*self.key).filter(|s| !s.sender.is_closed()).cloned())
    }

    /// `GET path` on a new connection: a health check, which tests what
    /// a request would get (TLS, the protocol).
    pub(crate) async fn check(&self, path: &str) -> Result<http::StatusCode, PoolError> {
        let req = || {
            http::Request::get(path)
                .header(http::header::HOST, self.host.clone())
                .header(http::header::USER_AGENT, "bext-health-check")
                .body(Body::empty())
                .unwrap_or_default()
        };
        let res = match self.connect().await? {
            Sender::H1(mut sender) => sender.send_request(req()).await?,
            Sender::H2(mut shared) => shared.sender.send_request(self.h2_request(req())).await?,
        };
        Ok(res.status())
    }

    fn lease(&self, sender: SendRequest<Body>) -> Lease {
        Lease {
            kept: Some((self.key.clone(), sender)),
        }
    }

    /// The most recently used idle connection that is still open; older
    /// ones past the idle timeout are closed on the way.
    fn take_idle(&self) -> Option<SendRequest<Body>> {
        IDLE.with_borrow_mut(|idle| {
            let stack = idle.get_mut(&*self.key)?;
            while let Some(conn) = stack.pop() {
                if !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT {
                    return Some(conn.sender);
                }
            }
            None
        })
    }

    /// A new connection, TLS included, within the connect timeout.
    async fn connect(&self) -> Result<Sender, PoolError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        if let Some(path) = &self.unix {
            let stream =
                self.connected(tokio::time::timeout_at(deadline, tokio::net::UnixStream::connect(path)).await)?;
            return self.handshake(stream, self.http2).await;
        }
        let tcp =
            self.connected(tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(&*self.addr)).await)?;
        let _ = tcp.set_nodelay(true);
        let tcp = self.allowed(tcp)?;
        let Some((config, name)) = &self.tls else {
            return self.handshake(tcp, self.http2).await;
        };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        match tokio::time::timeout_at(deadline, connector.connect(name.clone(), tcp)).await {
            Err(_) => Err(PoolError::ConnectTimeout {
                addr: self.addr.clone(),
                timeout: self.connect_timeout,
            }),
            Ok(Err(source)) => Err(PoolError::Tls {
                addr: self.addr.clone(),
                source,
            }),
            Ok(Ok(tls)) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.handshake(tls, h2).await
            }
        }
    }

    /// A connection attempt's outcome, its failure named.
    fn connected<S>(&self, attempt: Result<std::io::Result<S>, tokio::time::error::Elapsed>) -> Result<S, PoolError> {
        match attempt {
            Err(_) => Err(PoolError::ConnectTimeout {
                addr: self.addr.clone(),
                timeout: self.connect_timeout,
            }),
            Ok(Err(source)) => Err(PoolError::Connect {
                addr: self.addr.clone(),
                source,
            }),
            Ok(Ok(stream)) => Ok(stream),
        }
    }

    /// HTTP/1.1, or HTTP/2 when `h2`, on a connection made.
    async fn handshake<T>(&self, io: T, h2: bool) -> Result<Sender, PoolError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let addr = self.addr.clone();
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(io))
                .await?;
            let (said, connect_protocol) = tokio::sync::watch::channel(None);
            tokio::spawn(async move {
                if let Err(e) = (WatchSettings { conn, said }).await {
                    tracing::debug!(upstream = %addr, error = %e, "upstream h2 connection ended");
                }
            });
            return Ok(Sender::H2(SharedH2 {
                sender,
                connect_protocol,
            }));
        }
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        // On this worker's runtime; it ends when the upstream or the last
        // sender closes the connection. `with_upgrades`: a WebSocket 101
        // hands the socket to the tunnel.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream = %addr, error = %e, "upstream connection ended");
            }
        });
        Ok(Sender::H1(sender))
    }
}

pin_project_lite::pin_project! {
    /// An upstream HTTP/2 connection's task, which tells its senders what
    /// the upstream's first SETTINGS frame said of extended CONNECT once
    /// the connection has read it (dropped with the connection, it tells
    /// them there is no answer to wait for).
    struct WatchSettings<C> {
        #[pin]
        conn: C,
        said: tokio::sync::watch::Sender<Option<bool>>,
    }
}

/// What [`WatchSettings`] needs of a connection: hyper's HTTP/2 client
/// connection, whatever its transport.
trait RemoteSettings {
    /// Whether the upstream allows extended CONNECT, once its SETTINGS
    /// have been applied (`cx` is woken then).
    fn poll_connect_protocol(&self, cx: &mut Context<'_>) -> Poll<bool>;
}

impl<T> RemoteSettings for http2::Connection<TokioIo<T>, Body, TokioExecutor>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn poll_connect_protocol(&self, cx: &mut Context<'_>) -> Poll<bool> {
        self.poll_remote_settings(cx)
            .map(|()| self.is_extended_connect_protocol_enabled())
    }
}

impl<C: Future + RemoteSettings> Future for WatchSettings<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        let polled = this.conn.as_mut().poll(cx);
        // The borrow ends before the send, which would wait for it.
        let unknown = this.said.borrow().is_none();
        if unknown && let Poll::Ready(allowed) = this.conn.poll_connect_protocol(cx) {
            this.said.send_replace(Some(allowed));
        }
        polled
    }
}

impl Lease {
    /// No connection to give back (an HTTP/2 stream's).
    pub(crate) fn none() -> Lease {
        Lease { kept: None }
    }

    /// Keeps the connection for the next request of this worker.
    fn give_back(self) {
        let Some((key, sender)) = self.kept.filter(|(_, s)| !s.is_closed()) else {
            return;
        };
        IDLE.with_borrow_mut(|idle| {
            let stack = match idle.get_mut(&*key) {
                Some(stack) => stack,
                None => idle.entry(key).or_default(),
            };
            if stack.len() < MAX_IDLE {
                stack.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        });
    }
}

/// An upstream's response body that gives its connection back once read
/// to the end (a body dropped before its end closes the connection, whose
/// rest hyper could not skip).
pub(crate) struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
    /// What stays counted until the body ends or is dropped.
    _counted: Counted,
    /// The longest pause allowed between two frames, and its timer.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

/// What a proxied request keeps counted until its response is done.
#[derive(Default)]
pub(crate) struct Counted {
    /// The request in its backend's `in_flight` (with `max_connections`
    /// or `least_connections`).
    #[expect(dead_code, reason = "held for its Drop, never read")]
    pub(crate) in_flight: Option<InFlight>,
    /// A process app's use, which keeps it from `idle_stop`.
    pub(crate) busy: Option<super::activity::Busy>,
}

/// The upstream's response body paused longer than the app's
/// `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's response body paused longer than {0:?}")]
pub(crate) struct BodyTimedOut(pub(crate) Duration);

impl PooledBody {
    /// `inner`, whose end gives `lease` back; an empty body gives it back
    /// at once. `idle`: the longest pause between frames, if limited.
    pub(crate) fn new(inner: Incoming, lease: Lease, counted: Counted, idle: Option<Duration>) -> PooledBody {
        let mut body = PooledBody {
            inner,
            lease: Some(lease),
            _counted: counted,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        };
        body.give_back_at_end();
        body
    }

    fn give_back_at_end(&mut self) {
        if http_body::Body::is_end_stream(&self.inner)
            && let Some(lease) = self.lease.take()
        {
            lease.give_back();
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = bytes::Bytes;
    type Error = bext_plugin_abi::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(lease) = self.lease.take() {
                    lease.give_back();
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                self.give_back_at_end();
                if let Some((limit, timer)) = &mut self.idle {
                    timer.as_mut().reset(tokio::time::Instant::now() + *limit);
                }
            }
            Poll::Ready(Some(Err(_))) => self.lease = None,
            Poll::Pending => {
                if let Some((limit, timer)) = &mut self.idle
                    && timer.as_mut().poll(cx).is_ready()
                {
                    let limit = *limit;
                    self.lease = None;
                    return Poll::Ready(Some(Err(BodyTimedOut(limit).into())));
                }
            }
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
