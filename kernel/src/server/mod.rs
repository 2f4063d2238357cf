//! Accepting connections and driving hyper: HTTP/1.1 and h2c on one port,
//! HTTPS (h2 and HTTP/1.1 by ALPN) on another with the same limits, idle
//! connections closed, and a graceful drain on shutdown.

/// `AsyncWrite` for a socket wrapper that only watches or replays reads:
/// every write goes straight to its `io` field.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
            }
        }
    };
}

pub mod acme;
pub mod admit;
pub mod body;
pub mod conn_limit;
pub mod finish;
pub(crate) mod h1;
pub mod host;
pub mod memory;
mod protocol;
pub mod request;
pub mod tls;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Kernel;
use conn_limit::{ConnPermit, ConnectionLimits};
use protocol::{Builders, Protocol, Replay};

/// What a request knows about its connection.
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Accepted on `admin_listen`: bext's endpoints without prefix, no apps.
    pub admin: bool,
    /// Arrived over TLS (`listen_tls`).
    pub tls: bool,
    /// The server name the TLS client asked for (SNI), normalised like a
    /// Host: a request for a host this connection's certificate was not
    /// chosen for is misdirected (421).
    pub sni: Option<Box<str>>,
    /// Requests in flight, for the idle timeout.
    pub activity: Activity,
}

impl ConnInfo {
    /// A connection from nowhere, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        ConnInfo {
            peer: "127.0.0.1:1".parse().expect("address"),
            admin: false,
            tls: false,
            sni: None,
            activity: Activity::new(),
        }
    }

    /// Marks a request as in flight until the returned guard drops, which
    /// happens after its response is written, or when the client cancels
    /// it (an HTTP/2 reset, a disconnect) before there was a response.
    pub fn request_started(self: &Arc<Self>, version: http::Version) -> InFlight {
        self.activity.begin(version);
        InFlight(self.clone())
    }
}

/// A request in flight on a connection; see [`ConnInfo::request_started`].
pub struct InFlight(Arc<ConnInfo>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.activity.end();
    }
}

/// Requests in flight on one connection, when it last went quiet, and
/// whether the head of a next request has started to arrive: the two
/// clocks behind `idle_timeout` and `header_read_timeout`, kept apart as
/// nginx keeps `keepalive_timeout` and `client_header_timeout`.
pub struct Activity {
    in_flight: AtomicUsize,
    quiet_since_ms: AtomicU64,
    /// 1 + milliseconds at which the first byte of the next request head
    /// arrived while nothing was in flight; 0 when no head is pending.
    head_since_ms: AtomicU64,
    /// HTTP/2 was seen: bytes on an idle connection are frames, not heads.
    multiplexed: AtomicBool,
    epoch: Instant,
}

/// What the connection loop should do about an inactive connection.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A request is in flight.
    Busy,
    /// Check again after this long.
    Wait(Duration),
    /// Nothing in flight for `idle_timeout`: close politely.
    Idle,
    /// A request head took longer than `header_read_timeout`: drop it.
    SlowHead,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            quiet_since_ms: AtomicU64::new(0),
            // A new connection is waiting for its first head.
            head_since_ms: AtomicU64::new(1),
            multiplexed: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request started (its head is complete).
    fn begin(&self, version: http::Version) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(0, Ordering::Relaxed);
        if version >= http::Version::HTTP_2 {
            self.multiplexed.store(true, Ordering::Relaxed);
        }
    }

    /// A response finished (or was abandoned).
    fn end(&self) {
        self.quiet_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes arrived from the client.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since_ms.load(Ordering::Relaxed) == 0
            && !self.multiplexed.load(Ordering::Relaxed)
        {
            self.head_since_ms.store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    fn verdict(&self, idle_timeout: Duration, header_timeout: Duration) -> Verdict {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Busy;
        }
        let now = self.now_ms();
        let head = self.head_since_ms.load(Ordering::Relaxed);
        let (since, limit, verdict) = if head > 0 && !self.multiplexed.load(Ordering::Relaxed) {
            (head - 1, header_timeout, Verdict::SlowHead)
        } else {
            (self.quiet_since_ms.load(Ordering::Relaxed), idle_timeout, Verdict::Idle)
        };
        let elapsed = Duration::from_millis(now.saturating_sub(since));
        if elapsed >= limit {
            verdict
        } else {
            Verdict::Wait(limit - elapsed)
        }
    }
}

/// The client's socket, telling [`Activity`] when bytes arrive.
struct Watched<IO> {
    io: IO,
    conn: Arc<ConnInfo>,
    /// What the protocol sniff read first.
    replay: Replay,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.replay.read_into(buf) {
            self.conn.activity.bytes_arrived();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.activity.bytes_arrived();
        }
        res
    }
}

forward_async_write!(Watched);

/// How long after its last response a keep-alive connection's task is
/// woken once more (then at twice its quiet time each, until
/// `idle_timeout`), so that hyper for HTTP/1.1 and h2 for HTTP/2 (both
/// patched, see vendor/hyper/BEXT-PATCH.md and vendor/h2/BEXT-PATCH.md) see
/// it idle and give back its read and write buffers.
const IDLE_WAKE: Duration = Duration::from_secs(3);

/// Tracks live connections so shutdown can wait for them.
#[derive(Clone, Default)]
pub struct Tracker {
    live: Arc<AtomicUsize>,
    drained: Arc<tokio::sync::Notify>,
}

struct Live(Tracker);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Tracker {
    fn enter(&self) -> Live {
        self.live.fetch_add(1, Ordering::AcqRel);
        Live(self.clone())
    }

    /// Connections still open.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until no connection is left.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Binds `addr` once per worker with `SO_REUSEPORT`, so the kernel spreads
/// connections over workers that share nothing (nginx's model). With port
/// 0, every worker gets the port the first one was given. A port another
/// process listens on is refused ("address in use") even when that process
/// set `SO_REUSEPORT` too (a second bext, or a forgotten one, would
/// otherwise take half the connections).
pub fn bind_workers(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let bind = |addr: SocketAddr, reuseport: bool| -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(reuseport)?;
        socket.bind(addr)?;
        socket.listen(4096)?.into_std()
    };
    if workers > 1 && addr.port() != 0 {
        // Without SO_REUSEPORT, the probe fails if anyone listens there.
        drop(bind(addr, false)?);
    }
    let first = bind(addr, workers > 1)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind(actual, true)?);
    }
    Ok(all)
}

/// What a listener serves.
#[derive(Clone)]
pub enum Listener {
    /// `listen`: plain HTTP/1.1 and h2c.
    Plain,
    /// `admin_listen`: bext's endpoints, plain.
    Admin,
    /// `listen_tls`: HTTPS with this acceptor.
    Tls(tokio_rustls::TlsAcceptor),
}

/// Accepts connections on `listener` until `stop` turns true; one over
/// `caps` is closed at once.
pub async fn accept_loop(
    kernel: Arc<Kernel>,
    listener: TcpListener,
    kind: Listener,
    mut stop: watch::Receiver<bool>,
    tracker: Tracker,
    caps: Arc<ConnectionLimits>,
) {
    let builders = Arc::new(Builders::new(&kernel.limits));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let permit = match caps.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                tracing::debug!(%peer, reason = %refused, "connection closed at accept");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let live = tracker.enter();
        tokio::spawn(serve_connection(
            kernel.clone(),
            builders.clone(),
            stream,
            peer,
            kind.clone(),
            stop.clone(),
            (live, permit),
        ));
    }
}

async fn serve_connection(
    kernel: Arc<Kernel>,
    builders: Arc<Builders>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    mut stop: watch::Receiver<bool>,
    live: (Live, ConnPermit),
) {
    let info = |admin, sni: Option<Option<Box<str>>>| ConnInfo {
        peer,
        admin,
        tls: sni.is_some(),
        sni: sni.flatten(),
        activity: Activity::new(),
    };
    let admin = match kind {
        Listener::Plain => false,
        Listener::Admin => true,
        // In an allocation of its own: the handshake's and the TLS
        // stream's states are several times a plain connection's, which
        // would otherwise pay for them in every task.
        Listener::Tls(acceptor) => {
            return Box::pin(async move {
                let limit = kernel.limits.header_read_timeout;
                if let Some(stream) = tls::handshake(&kernel, stream, &acceptor, limit, peer).await {
                    let session = stream.get_ref().1;
                    let sni = (session.server_name()).and_then(|n| bext_plugin_abi::normalise_host(n.as_bytes()).ok());
                    let protocol = (Protocol::by_alpn(session.alpn_protocol()), Replay::default());
                    let info = Arc::new(info(false, Some(sni)));
                    // In a task of its own, as below: the handshake's
                    // room goes with this one.
                    tokio::spawn(drive(kernel, builders, protocol, stream, info, stop, live));
                }
            })
            .await;
        }
    };
    // The first bytes, within the head's time (a client that sends none
    // holds a connection like a slow head) and not past a drain.
    // Boxed, and gone once the protocol is known: the timer and the two
    // futures would otherwise stay in the task for the connection's life.
    let mut stream = stream;
    let sniffed = Box::pin(async {
        tokio::select! {
            sniffed = tokio::time::timeout(kernel.limits.header_read_timeout, Protocol::sniff(&mut stream)) => sniffed.ok(),
            _ = stop.wait_for(|s| *s) => None,
        }
    })
    .await;
    let Some(protocol) = sniffed else { return };
    // Each path in an allocation of its own, made once the protocol is
    // known: the task is as large as its largest path, so held inline the
    // fast path's state would be paid again by every HTTP/2 connection
    // (and hyper's path by every fast-path one).
    if protocol.0 == Protocol::Http1 && kernel.pipeline.load().platform.settings.http1_fast_path {
        return Box::pin(h1::serve(
            kernel,
            builders,
            stream,
            protocol.1,
            info(admin, None),
            stop,
            live,
        ))
        .await;
    }
    // hyper's path (HTTP/2, or HTTP/1.1 without the fast path) runs in a
    // task of its own with `drive` inline, and this one ends: an idle
    // HTTP/2 connection then holds one allocation where it held two (this
    // task and a box for `drive`, 640 and 656 bytes in a debug build) and
    // no room for the sniff (issue 22, bench/RESULTS.md).
    tokio::spawn(drive(
        kernel,
        builders,
        protocol,
        stream,
        Arc::new(info(admin, None)),
        stop,
        live,
    ));
}

/// Serves one connection's requests with hyper until it closes, is idle
/// too long, or the server drains.
async fn drive<IO>(
    kernel: Arc<Kernel>,
    builders: Arc<Builders>,
    (protocol, replay): (Protocol, Replay),
    stream: IO,
    info: Arc<ConnInfo>,
    mut stop: watch::Receiver<bool>,
    _live: (Live, ConnPermit),
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (idle_timeout, header_timeout) = (kernel.limits.idle_timeout, kernel.limits.header_read_timeout);
    let svc_info = info.clone();
    let svc_kernel = kernel.clone();
    let svc = hyper::service::service_fn(move |req| request::handle(svc_kernel.clone(), svc_info.clone(), req));
    let io = Watched {
        io: stream,
        conn: info.clone(),
        replay,
    };
    let mut conn = builders.serve(protocol, TokioIo::new(io), svc);
    drop(builders);
    let timer = tokio::time::sleep(header_timeout.min(idle_timeout).min(IDLE_WAKE));
    tokio::pin!(timer);
    let mut closing = *stop.borrow();
    if closing {
        conn.graceful_shutdown();
    }
    // Told to close for its idle timeout (draining or not).
    let mut idled = false;
    loop {
        tokio::select! {
            res = &mut conn => {
                if let Err(e) = res {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                    if let Some(status) = finish::unparsed_status(&e) {
                        finish::unparsed(&kernel, info.peer.ip(), status);
                    }
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.graceful_shutdown();
            }
            _ = &mut timer => {
                let next = match info.activity.verdict(idle_timeout, header_timeout) {
                    Verdict::Busy => idle_timeout.min(header_timeout).min(IDLE_WAKE),
                    // Once more after `IDLE_WAKE` of quiet: hyper gives an
                    // idle connection's buffers back when it is polled then.
                    // Then at twice the quiet time each (6 s, 12 s...): h2
                    // releases only after 2 s with no stream, which a loaded
                    // server can miss at the first wake, and idle HTTP/2
                    // connections are no longer woken by pings.
                    Verdict::Wait(left) => match idle_timeout.checked_sub(left) {
                        Some(quiet) if quiet < IDLE_WAKE => left.min(IDLE_WAKE - quiet),
                        Some(quiet) => left.min(quiet),
                        None => left,
                    },
                    Verdict::Idle if !idled => {
                        (closing, idled) = (true, true);
                        conn.idle_shutdown();
                        header_timeout
                    }
                    // A head that never completes, or a connection that
                    // would not close politely: drop it.
                    Verdict::Idle | Verdict::SlowHead => {
                        tracing::debug!(peer = %info.peer, "closing a connection that sent no complete request in time");
                        return;
                    }
                };
                timer.as_mut().reset(tokio::time::Instant::now() + next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_another_process_listens_on_is_refused_even_with_reuseport() {
        let first = bind_workers("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let taken = first[0].local_addr().unwrap();
        let second = bind_workers(taken, 2).expect_err("the port is taken");
        assert_eq!(second.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        assert_eq!(bind_workers(taken, 2).unwrap().len(), 2, "free again");
    }

    #[test]
    fn idle_and_head_clocks_are_separate() {
        let a = Activity::new();
        let (idle, head) = (Duration::from_secs(60), Duration::ZERO);
        // A new connection waits for its first head under the head clock.
        assert_eq!(a.verdict(idle, head), Verdict::SlowHead);
        a.begin(http::Version::HTTP_11);
        assert_eq!(a.verdict(idle, head), Verdict::Busy);
        a.end();
        // Quiet keep-alive: the idle clock, however short the head clock.
        assert!(matches!(a.verdict(idle, head), Verdict::Wait(_)));
        assert_eq!(a.verdict(Duration::ZERO, head), Verdict::Idle);
        // The first byte of the next head starts the head clock.
        a.bytes_arrived();
        assert_eq!(a.verdict(idle, head), Verdict::SlowHead);
        assert!(matches!(a.verdict(idle, Duration::from_secs(10)), Verdict::Wait(_)));
    }

    #[test]
    fn http2_frames_are_not_heads() {
        let a = Activity::new();
        a.begin(http::Version::HTTP_2);
        a.end();
        a.bytes_arrived();
        assert!(matches!(
            a.verdict(Duration::from_secs(60), Duration::ZERO),
            Verdict::Wait(_)
        ));
    }
}
