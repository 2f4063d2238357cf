//! Accepting connections and driving hyper: HTTP/1.1 and h2c on one port,
//! limits, idle connections closed, and a graceful drain on shutdown.

pub mod body;
pub mod finish;
pub mod host;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Kernel;
use crate::platform::Limits;

/// What a request knows about its connection.
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Accepted on `admin_listen`: bext's endpoints without prefix, no apps.
    pub admin: bool,
    /// Requests in flight, for the idle timeout.
    pub activity: Activity,
}

/// Requests in flight on one connection and when it last went quiet.
pub struct Activity {
    in_flight: AtomicUsize,
    quiet_since_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            quiet_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// A request started.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A response finished (or was abandoned).
    pub fn end(&self) {
        self.quiet_since_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// How long the connection has had nothing in flight, if so.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = self.quiet_since_ms.load(Ordering::Relaxed);
        Some(self.epoch.elapsed().saturating_sub(Duration::from_millis(since)))
    }
}

/// hyper's connection builder with bext's limits applied.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192) as usize)
        .keep_alive(true)
        .writev(false);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as u64) as u32)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

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
/// 0, every worker gets the port the first one was given.
pub fn bind_workers(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(workers > 1)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        socket.listen(4096)?.into_std()
    };
    let first = bind(addr)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind(actual)?);
    }
    Ok(all)
}

/// Accepts connections on `listener` until `stop` turns true.
pub async fn accept_loop(
    kernel: Arc<Kernel>,
    listener: TcpListener,
    admin: bool,
    mut stop: watch::Receiver<bool>,
    tracker: Tracker,
) {
    let builder = Arc::new(builder(&kernel.limits));
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
        let _ = stream.set_nodelay(true);
        let live = tracker.enter();
        tokio::spawn(serve_connection(
            kernel.clone(),
            builder.clone(),
            stream,
            peer,
            admin,
            stop.clone(),
            live,
        ));
    }
}

async fn serve_connection(
    kernel: Arc<Kernel>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    admin: bool,
    mut stop: watch::Receiver<bool>,
    _live: Live,
) {
    let info = Arc::new(ConnInfo {
        peer,
        admin,
        activity: Activity::new(),
    });
    let idle_timeout = kernel.limits.idle_timeout;
    let svc_info = info.clone();
    let svc =
        hyper::service::service_fn(move |req| crate::pipeline::run::handle(kernel.clone(), svc_info.clone(), req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle, if !closing => {
                match info.activity.idle_for() {
                    Some(quiet) if quiet >= idle_timeout => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(quiet) => idle.as_mut().reset(tokio::time::Instant::now() + (idle_timeout - quiet)),
                    None => idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout),
                }
            }
        }
    }
}
