//! Keep-alive connections to a proxy app's upstream, kept per worker
//! thread: each worker is a single-threaded runtime, so its idle
//! connections sit in a thread-local stack that a request takes from and
//! gives back to without a lock, a shared hash or a task of its own
//! (hyper-util's pool paid for all three: about a fifth of a proxied
//! request's instructions). A connection goes back when its response body
//! has been read to the end; one the upstream closed, or idle longer than
//! the idle timeout, is dropped when next seen. Pools outlive reloads:
//! they are keyed by the upstream's address (and TLS settings), not by
//! the app.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bext_plugin_abi::Body;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;

use super::upstreams::InFlight;

/// Idle connections kept per upstream and worker, at most; more are
/// closed as their responses end.
const MAX_IDLE: usize = 256;

/// How long an idle connection may wait for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

thread_local! {
    /// This worker's idle connections by upstream address, the most
    /// recently used last.
    static IDLE: RefCell<FxHashMap<Box<str>, Vec<Idle>>> = RefCell::default();
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
    /// `host:port`, what is connected to.
    addr: Box<str>,
    /// What keys the idle stacks: the address, and for TLS the settings
    /// its connections were verified with, so no app reuses a connection
    /// another app's laxer settings accepted.
    key: Box<str>,
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
}

/// A connection lent to one request: given back when its response body
/// ends (see [`PooledBody`]).
pub(crate) struct Lease {
    key: Box<str>,
    sender: SendRequest<Body>,
}

impl Pool {
    /// The pool of `authority` (`host[:port]`, port 80 by default, 443
    /// with `tls`): `tls` is the app's TLS client settings for an https://
    /// upstream, and the name that keys them apart from other apps'.
    pub(crate) fn new(
        authority: &http::uri::Authority,
        connect_timeout: Duration,
        tls: Option<(&std::sync::Arc<rustls::ClientConfig>, &str)>,
    ) -> Result<Pool, String> {
        let port = authority.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let addr: Box<str> = format!("{}:{port}", authority.host()).into();
        let (key, tls) = match tls {
            None => (addr.clone(), None),
            Some((config, settings)) => (
                format!("tls {settings} {addr}").into(),
                Some((config.clone(), super::upstream_tls::server_name(authority.host())?)),
            ),
        };
        Ok(Pool {
            addr,
            key,
            tls,
            host: HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value"),
            connect_timeout,
        })
    }

    /// The upstream's own `Host`.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// `host:port`, for logs (never for answers: clients are not told
    /// where upstreams are).
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
        let mut sender = match self.connect().await {
            Ok(sender) => sender,
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

    fn lease(&self, sender: SendRequest<Body>) -> Lease {
        Lease {
            key: self.key.clone(),
            sender,
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

    /// A new connection, TLS included, within the connect timeout (what
    /// health checks use, so they test what requests would get).
    pub(crate) async fn connect(&self) -> Result<SendRequest<Body>, PoolError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let tcp = match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(&*self.addr)).await {
            Err(_) => {
                return Err(PoolError::ConnectTimeout {
                    addr: self.addr.clone(),
                    timeout: self.connect_timeout,
                });
            }
            Ok(Err(source)) => {
                return Err(PoolError::Connect {
                    addr: self.addr.clone(),
                    source,
                });
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = &self.tls else {
            return self.handshake(tcp).await;
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
            Ok(Ok(tls)) => self.handshake(tls).await,
        }
    }

    /// HTTP/1.1 on a connection made.
    async fn handshake<T>(&self, io: T) -> Result<SendRequest<Body>, PoolError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        let addr = self.addr.clone();
        // On this worker's runtime; it ends when the upstream or the last
        // sender closes the connection. `with_upgrades`: a WebSocket 101
        // hands the socket to the tunnel.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream = %addr, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

impl Lease {
    /// Keeps the connection for the next request of this worker.
    fn give_back(self) {
        if self.sender.is_closed() {
            return;
        }
        IDLE.with_borrow_mut(|idle| {
            let stack = match idle.get_mut(&*self.key) {
                Some(stack) => stack,
                None => idle.entry(self.key).or_default(),
            };
            if stack.len() < MAX_IDLE {
                stack.push(Idle {
                    sender: self.sender,
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
    /// Counts the request in its backend's `in_flight` until the body
    /// ends or is dropped.
    _in_flight: Option<InFlight>,
    /// The longest pause allowed between two frames, and its timer.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

/// The upstream's response body paused longer than the app's
/// `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's response body paused longer than {0:?}")]
pub(crate) struct BodyTimedOut(Duration);

impl PooledBody {
    /// `inner`, whose end gives `lease` back; an empty body gives it back
    /// at once. `idle`: the longest pause between frames, if limited.
    pub(crate) fn new(
        inner: Incoming,
        lease: Lease,
        in_flight: Option<InFlight>,
        idle: Option<Duration>,
    ) -> PooledBody {
        let mut body = PooledBody {
            inner,
            lease: Some(lease),
            _in_flight: in_flight,
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
