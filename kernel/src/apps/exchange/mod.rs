//! bext's own HTTP/1.1 exchange with a plain `http://` upstream, in front
//! of hyper's client as `server/h1` is in front of hyper's server: for a
//! request whose body is already in memory (none, or gathered by the
//! proxy), the head is written into one buffer and sent with the body in
//! one write on a connection kept per worker, and the answer's head is
//! parsed in place ([`head`]); a body that came with the head is handed
//! over whole, a longer one streams from the connection ([`body`]).
//! Everything else (TLS, HTTP/2, upgrades, streamed request bodies) stays
//! with hyper's client in [`super::pool`]. This skips hyper's dispatch
//! channel, the connection task it wakes, and the body channel between
//! them: most of what a proxied request cost.

mod body;
mod head;
mod raw;

pub(crate) use head::only_chunked;
pub(crate) use raw::{KeptFields, RawFields};

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bext_plugin_abi::{Body, Request, Response};
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Version};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::forwarded::Forwarding;
use super::pool::{Counted, Pool, PoolError};
use body::{Decoder, UpstreamBody};
pub(crate) use head::HeadError;

thread_local! {
    /// This worker's idle connections by upstream address, the most
    /// recently used last.
    static IDLE: RefCell<FxHashMap<Arc<str>, Vec<Idle>>> = RefCell::default();
}

/// A connection to an upstream, what was read from it past the last
/// answer (nothing, when it is idle), and its response timer.
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// The deadline of the answer awaited: one timer for the connection's
    /// life, moved later for each request. A timer made per request costs
    /// a registration in the runtime's wheel and a removal (each under its
    /// lock); moving a registered deadline later is one atomic store (the
    /// wheel sees the new deadline when the old one comes). A deadline left
    /// behind by the last answer may wake the task that awaited it once,
    /// for nothing, while the connection idles.
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(io: TcpStream, deadline: Instant) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Where an answer's connection goes back once its body ended.
pub(crate) struct Kept {
    key: Arc<str>,
}

impl Kept {
    /// Keeps `conn` for this worker's next request to the same upstream,
    /// if nothing was read past the answer. Its read buffer goes (the
    /// answer's bytes may still share it): an idle connection holds none.
    fn give_back(self, mut conn: Conn) {
        if !conn.buf.is_empty() {
            return;
        }
        conn.buf = BytesMut::new();
        IDLE.with_borrow_mut(|idle| {
            let stack = match idle.get_mut(&*self.key) {
                Some(stack) => stack,
                None => idle.entry(self.key).or_default(),
            };
            if stack.len() < super::pool::MAX_IDLE {
                stack.push(Idle {
                    conn,
                    since: Instant::now(),
                });
            }
        });
    }
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// Writing the request or reading the answer failed.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection without answering.
    #[error("the upstream closed the connection before answering")]
    Closed,
    /// The answer's head was refused.
    #[error(transparent)]
    Head(#[from] HeadError),
}

/// A failed exchange.
pub(crate) enum Failed {
    /// The error, and whether the request was written (one that was not
    /// may go to another backend whatever its method).
    Error { error: PoolError, sent: bool },
    /// No answer head within the response timeout.
    TimedOut,
}

/// An upstream's answer: its head, and its body whole or to stream.
pub(crate) struct Answer {
    status: StatusCode,
    fields: RawFields,
    body: Pending,
}

enum Pending {
    Whole(Bytes),
    Stream(UpstreamBody),
}

impl Answer {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The client's response: `counted` is held until the body ended (at
    /// once for a body read whole), whose pauses may last `idle`. The
    /// fields go into `kept` when it keeps them, else into the map now.
    pub(crate) fn into_response(self, counted: Counted, idle: Option<Duration>, kept: &mut KeptFields) -> Response {
        let body = match self.body {
            Pending::Whole(bytes) => Body::full(bytes),
            Pending::Stream(stream) => Body::stream(stream.with(counted, idle)),
        };
        let mut res = Response::new(body);
        *res.status_mut() = self.status;
        // The fields stay as they came until something needs the map
        // ([`KeptFields::move_into`]); bext's HTTP/1 writer copies them.
        if kept.keeps() && self.fields.in_map_order() {
            kept.keep(self.fields);
        } else {
            *res.headers_mut() = self.fields.into_map();
        }
        *res.version_mut() = Version::HTTP_11;
        res
    }
}

/// The fields of an answer head as the exchange keeps them, for tests of
/// what copies them.
#[cfg(test)]
pub(crate) fn fields_of(head: &[u8], head_request: bool) -> RawFields {
    let parsed = head::parse_response(&mut BytesMut::from(head), head_request);
    parsed.unwrap().expect("a whole head").fields
}

/// Whether [`send`] can take `req` to `pool`: a plain `http://` HTTP/1.1
/// upstream over TCP, and a body already in memory.
pub(crate) fn takes(pool: &Pool, req: &Request) -> bool {
    pool.plain_tcp_http1() && req.body().as_bytes().is_some()
}

/// Sends `req` (origin-form target, headers final but for `host` and
/// bext's forwarding fields `own`, written here; body in memory: see
/// [`takes`]) on an idle connection of this worker, or a new one, and
/// reads the answer's head within `timeout`. A kept connection the
/// upstream closed before answering anything is no failure: an idempotent
/// request goes again on a new connection (any request that was never
/// written does).
pub(crate) async fn send(
    pool: &Pool,
    req: &Request,
    host: &http::HeaderValue,
    own: &Forwarding,
    timeout: Duration,
) -> Result<Answer, Failed> {
    let deadline = Instant::now() + timeout;
    let body = req.body().full_bytes().unwrap_or_default();
    let mut head = Vec::with_capacity(256 + req.headers().len() * 48);
    head::write_request(
        &mut head,
        req.method(),
        req.uri(),
        host,
        req.headers(),
        own.fields(),
        body.len(),
    );
    let head_request = req.method() == Method::HEAD;
    let again = super::proxy::is_idempotent(req.method());
    // After a kept connection failed, the request goes once more, on a
    // new connection: never a third time.
    let mut fresh = false;
    loop {
        let idle = if fresh { None } else { take_idle(pool.key()) };
        fresh = true;
        let (mut conn, reused) = match idle {
            Some(conn) => (conn, true),
            None => match tokio::time::timeout_at(deadline, Box::pin(pool.connect_tcp())).await {
                Ok(Ok(io)) => (Conn::new(io, deadline), false),
                Ok(Err(error)) => return Err(Failed::Error { error, sent: false }),
                Err(_) => return Err(Failed::TimedOut),
            },
        };
        conn.deadline.as_mut().reset(deadline);
        let Conn {
            io,
            buf,
            deadline: timer,
        } = &mut conn;
        let exchanged = tokio::select! {
            biased;
            exchanged = exchange(io, buf, &head, &body, head_request) => exchanged,
            () = timer.as_mut() => return Err(Failed::TimedOut),
        };
        match exchanged {
            Ok(head) => {
                let kept = head.keep_alive.then(|| Kept {
                    key: pool.key().clone(),
                });
                let mut decoder = Decoder::new(head.framing);
                let body = match &mut decoder {
                    Decoder::Done => {
                        if let Some(kept) = kept {
                            kept.give_back(conn);
                        }
                        Pending::Whole(Bytes::new())
                    }
                    Decoder::Length(n) if conn.buf.len() as u64 >= *n => {
                        let bytes = conn.buf.split_to(*n as usize).freeze();
                        if let Some(kept) = kept {
                            kept.give_back(conn);
                        }
                        Pending::Whole(bytes)
                    }
                    _ => Pending::Stream(UpstreamBody::new(conn, decoder, kept)),
                };
                return Ok(Answer {
                    status: head.status,
                    fields: head.fields,
                    body,
                });
            }
            // A kept connection the upstream closed: an idempotent request
            // goes again on another connection. Part of another request
            // may have reached the upstream, so it is never sent twice.
            Err((ExchangeError::Io(_), false) | (ExchangeError::Closed, true)) if reused && again => continue,
            Err((e, _)) => {
                return Err(Failed::Error {
                    error: e.into(),
                    sent: true,
                });
            }
        }
    }
}

/// Writes the request and reads the answer's head; an error says whether
/// it came while reading (the request was written whole).
async fn exchange(
    io: &mut TcpStream,
    buf: &mut BytesMut,
    head: &[u8],
    body: &[u8],
    head_request: bool,
) -> Result<head::Head, (ExchangeError, bool)> {
    write_all(io, head, body)
        .await
        .map_err(|e| (ExchangeError::Io(e), false))?;
    read_head(io, buf, head_request).await.map_err(|e| (e, true))
}

/// The head and a body in one `writev` (the body's bytes are not copied
/// behind the head).
async fn write_all(io: &mut TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    if body.is_empty() {
        return io.write_all(head).await;
    }
    let mut written = 0;
    while written < head.len() {
        let slices = [std::io::IoSlice::new(&head[written..]), std::io::IoSlice::new(body)];
        match io.write_vectored(&slices).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => written += n,
        }
    }
    io.write_all(&body[written - head.len()..]).await
}

/// Reads until the answer's head is whole.
async fn read_head(io: &mut TcpStream, buf: &mut BytesMut, head_request: bool) -> Result<head::Head, ExchangeError> {
    loop {
        if let Some(head) = head::parse_response(buf, head_request)? {
            return Ok(head);
        }
        buf.reserve(8 * 1024);
        if io.read_buf(buf).await? == 0 {
            return Err(ExchangeError::Closed);
        }
    }
}

/// The most recently used idle connection that is still open; older
/// ones past the idle timeout, or that the upstream closed, are dropped
/// on the way.
fn take_idle(key: &Arc<str>) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        let stack = idle.get_mut(&**key)?;
        while let Some(Idle { conn, since }) = stack.pop() {
            if since.elapsed() < super::pool::IDLE_TIMEOUT && still_open(&conn.io) {
                return Some(conn);
            }
        }
        None
    })
}

/// Closes this worker's idle connections that the upstream closed or
/// that waited past the idle timeout, and forgets upstreams with none
/// left. [`take_idle`] only sees the upstream a request goes to, so
/// without this a connection to an upstream no request names any more
/// (a process app's old instance after a deploy, an app removed by a
/// reload) would hold its descriptor, closed by the peer, for the
/// server's life.
pub(super) fn sweep_idle() {
    IDLE.with_borrow_mut(|idle| {
        idle.retain(|_, stack| {
            stack.retain(|Idle { conn, since }| since.elapsed() < super::pool::IDLE_TIMEOUT && still_open(&conn.io));
            !stack.is_empty()
        })
    })
}

/// Whether an idle connection is still open and clean: nothing arrived
/// on it since its last answer. Anything that did (a FIN, or bytes an
/// upstream sent after an answer's end, which must never be read as the
/// next client's answer) drops it. The runtime's readiness may not have
/// seen bytes already in the socket, so this asks the kernel each time
/// with one non-blocking peek.
fn still_open(io: &TcpStream) -> bool {
    use rustix::net::{RecvFlags, recv};
    let mut probe = [0u8; 1];
    matches!(
        recv(io, &mut probe, RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Err(rustix::io::Errno::AGAIN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Bytes an upstream sent after an answer's end, already in the
    /// socket but not yet seen by the runtime, and a FIN, each make a kept
    /// connection unusable: never read as the next client's answer.
    #[tokio::test]
    async fn a_kept_connection_is_reused_only_when_nothing_arrived_on_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let io = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut upstream, _) = listener.accept().unwrap();
        assert!(still_open(&io));
        upstream.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        // No await in between: the runtime has not polled for readiness.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!still_open(&io), "bytes waiting in the socket");

        let io = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (upstream, _) = listener.accept().unwrap();
        assert!(still_open(&io));
        drop(upstream);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!still_open(&io), "closed by the upstream");
    }

    /// A kept connection the upstream closed is closed by the sweep even
    /// when no request names that upstream again; an open one stays.
    #[tokio::test]
    async fn the_sweep_closes_idle_connections_the_upstream_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let keep = |key: &str, io: TcpStream| Kept { key: Arc::from(key) }.give_back(Conn::new(io, Instant::now()));
        let idle_count = || IDLE.with_borrow(|idle| idle.values().map(Vec::len).sum::<usize>());
        keep("gone", TcpStream::connect(addr).await.unwrap());
        let (closed_by_upstream, _) = listener.accept().unwrap();
        keep("open", TcpStream::connect(addr).await.unwrap());
        let (_still_open, _) = listener.accept().unwrap();
        assert_eq!(idle_count(), 2);

        drop(closed_by_upstream);
        std::thread::sleep(Duration::from_millis(20));
        sweep_idle();
        assert_eq!(idle_count(), 1, "the closed connection went");
        IDLE.with_borrow(|idle| assert!(idle.contains_key("open") && !idle.contains_key("gone")));
    }
}
