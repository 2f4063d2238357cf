//! bext's own HTTP/1.1 connection for the common case: requests with no
//! body (GET, HEAD, OPTIONS, DELETE) or a small one of a plain
//! `Content-Length` that arrived with the head (POST, PUT, PATCH up to
//! [`MAX_BODY`]), read with httparse, served by the same [`handle_parts`]
//! as hyper's, answered with a head of its own ([`encode`]) and the body
//! in the same write when it is ready: a static request costs about a
//! fifth fewer instructions than through hyper's connection
//! (bench/RESULTS.md, issue 22).
//!
//! The first request this path does not fully understand (a larger body,
//! one still on its way, any `Transfer-Encoding`, `Expect`, `Upgrade`, a
//! target that is not origin-form, bytes httparse refuses, more header
//! lines than hyper takes) hands the
//! connection, with the bytes read so far, to hyper for the rest of its
//! life ([`Rewind`]): hyper stays the judge of everything unusual, so
//! request-smuggling defences are unchanged. Plain TCP only; TLS
//! connections keep hyper.

mod encode;
pub(crate) use encode::decimal;
mod head;
mod rewind;

use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::conn_limit::ConnPermit;
use super::finish::ResponseBody;
use super::protocol::{Builders, Protocol, Replay};
use super::request::{Arrived, handle_parts};
use super::{ConnInfo, IDLE_WAKE, Live, Verdict};
use crate::Kernel;
use encode::{Answering, BodySize, Framing};
use head::{Head, Parsed};
pub(super) use rewind::Rewind;

/// Room read at a time: a browser's request head fits.
const READ_SIZE: usize = 4096;

/// Bodies at least this large are written from their own buffer, not
/// copied behind the head.
const COPY_LIMIT: usize = 16 * 1024;

/// The longest request body this path reads itself (and then only when
/// it is there whole as the head is read): what the proxy reads whole
/// before it asks an upstream (`apps::proxy`'s gather limit), so a body
/// read here is one buffer, never a stream.
const MAX_BODY: usize = 64 * 1024;

/// What became of a connection the fast path served.
enum Outcome {
    /// Closed (by either side, or on an error).
    Closed,
    /// A request for hyper starts with these bytes.
    Handoff(BytesMut),
}

/// Serves a plain HTTP/1 connection until it closes, handing it to hyper
/// at the first request this path does not serve. `replay` is what the
/// protocol sniff read.
pub(super) async fn serve(
    kernel: Arc<Kernel>,
    builders: Arc<Builders>,
    mut stream: TcpStream,
    replay: Replay,
    info: ConnInfo,
    mut stop: watch::Receiver<bool>,
    live: (Live, ConnPermit),
) {
    let info = Arc::new(info);
    let (idle_timeout, header_timeout) = (kernel.limits.idle_timeout, kernel.limits.header_read_timeout);
    let buf = BytesMut::from(replay.pending());
    let signals = Signals::default();
    let outcome = {
        let stop_seen = stop.clone();
        let mut fast = pin!(connection(&kernel, &info, &mut stream, buf, &stop_seen, &signals));
        let first_wake = header_timeout.min(idle_timeout).min(IDLE_WAKE);
        let mut timer = pin!(tokio::time::sleep(first_wake));
        let mut closing = *stop.borrow();
        loop {
            tokio::select! {
                // In this order: a busy period that began in this poll of
                // `fast` is seen by the next branch at once.
                biased;
                outcome = fast.as_mut() => break outcome,
                _ = poll_fn(|_| match signals.woke.swap(false, Ordering::Relaxed) {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                }) => {
                    // Counts `IDLE_WAKE` again for this busy period.
                    timer.as_mut().reset(tokio::time::Instant::now() + first_wake);
                }
                _ = stop.wait_for(|s| *s), if !closing => {
                    closing = true;
                    // Between requests: closed now; otherwise the response
                    // in flight says `Connection: close` and ends it.
                    if info.activity.verdict(idle_timeout, header_timeout) != Verdict::Busy {
                        return;
                    }
                }
                _ = timer.as_mut() => {
                    let next = match info.activity.verdict(idle_timeout, header_timeout) {
                        Verdict::Busy => idle_timeout.min(header_timeout).min(IDLE_WAKE),
                        // Wakes once `IDLE_WAKE` after the last response;
                        // the fast path, polled again, sees `release`
                        // and ends its busy period.
                        Verdict::Wait(left) => match idle_timeout.checked_sub(left) {
                            Some(quiet) if quiet < IDLE_WAKE => left.min(IDLE_WAKE - quiet),
                            _ => {
                                signals.release.store(true, Ordering::Relaxed);
                                left
                            }
                        },
                        // Idle for `idle_timeout`, or a head that never
                        // completes: nothing in flight, so just close.
                        Verdict::Idle | Verdict::SlowHead => {
                            tracing::debug!(peer = %info.peer, "closing an inactive connection");
                            return;
                        }
                    };
                    timer.as_mut().reset(tokio::time::Instant::now() + next);
                }
            }
        }
    };
    if let Outcome::Handoff(read) = outcome {
        let io = Rewind::new(stream, read.freeze());
        // Boxed: held inline, `drive`'s state (its own timer and waits)
        // would make every connection's task (HTTP/2 ones too) that much
        // bigger for the few that are handed over.
        Box::pin(super::drive(
            kernel,
            builders,
            (Protocol::Http1, Replay::default()),
            io,
            info,
            stop,
            live,
        ))
        .await;
    }
}

/// The fast path's connection: busy periods, each in a box of its own
/// that holds everything a request needs (buffers, the handler's box, the
/// response being written), and between them, once the connection has
/// been quiet for `IDLE_WAKE`, a wait that holds nothing but the socket's
/// readiness. A connection's task is as large as its largest state, so
/// the busy machinery inline would cost every idle connection (and every
/// HTTP/2 one, which shares the task's type) its size; the box is
/// allocated once per busy period, not per request.
async fn connection(
    kernel: &Arc<Kernel>,
    info: &Arc<ConnInfo>,
    stream: &mut TcpStream,
    mut buf: BytesMut,
    stop: &watch::Receiver<bool>,
    signals: &Signals,
) -> Outcome {
    loop {
        match Box::pin(busy(kernel, info, stream, buf, stop, &signals.release)).await {
            Busy::Done(outcome) => return outcome,
            Busy::Quiet => {}
        }
        // The last read found nothing (readiness cleared): woken by the
        // client's next bytes or its close.
        if poll_fn(|cx| stream.poll_read_ready(cx)).await.is_err() {
            return Outcome::Closed;
        }
        signals.woke.store(true, Ordering::Relaxed);
        buf = BytesMut::new();
    }
}

/// What a connection's timer and its fast path tell each other.
#[derive(Default)]
struct Signals {
    /// Set by the timer once the connection has been quiet for
    /// `IDLE_WAKE`: the busy period ends, and its memory with it.
    release: AtomicBool,
    /// Set by the fast path when bytes start a new busy period: the timer
    /// counts `IDLE_WAKE` again (it was left at the idle timeout).
    woke: AtomicBool,
}

/// How a busy period ended.
enum Busy {
    /// The connection is done with the fast path.
    Done(Outcome),
    /// Quiet for `IDLE_WAKE` with nothing buffered: its memory can go.
    Quiet,
}

/// A busy period: a head, its response, the next head, until the
/// connection closes, is handed over, or has been quiet long enough.
async fn busy(
    kernel: &Arc<Kernel>,
    info: &Arc<ConnInfo>,
    stream: &mut TcpStream,
    mut buf: BytesMut,
    stop: &watch::Receiver<bool>,
    release: &AtomicBool,
) -> Busy {
    let max_head = kernel.limits.max_header_bytes as usize;
    let max_body = usize::try_from(kernel.limits.max_body_bytes).map_or(MAX_BODY, |m| m.min(MAX_BODY));
    let mut kept = Kept::default();
    // The handler's future, boxed (the busy period's state stays small)
    // in one box for the busy period, as hyper keeps it.
    let mut answer = None;
    loop {
        let Head {
            parts,
            keep_alive,
            body,
            bytes,
        } = loop {
            if !buf.is_empty() {
                match head::parse(&mut buf, max_head, max_body, &mut kept.scratch) {
                    Parsed::Fast(head) => break head,
                    Parsed::Handoff => return Busy::Done(Outcome::Handoff(buf)),
                    Parsed::TooLarge => {
                        let out = &mut kept.out;
                        out.clear();
                        encode::too_large(out);
                        super::finish::unparsed(
                            kernel,
                            info.peer.ip(),
                            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        );
                        let _ = flush(stream, out).await;
                        let _ = stream.shutdown().await;
                        return Busy::Done(Outcome::Closed);
                    }
                    Parsed::Partial => {}
                }
            }
            match read(stream, &mut buf, release).await {
                Read::Bytes => info.activity.bytes_arrived(),
                Read::Closed => return Busy::Done(Outcome::Closed),
                Read::Quiet => return Busy::Quiet,
            }
        };
        let body = match body {
            0 => Arrived::Nothing,
            n => match whole_body(stream, &mut buf, n) {
                Some(body) => Arrived::Whole(body),
                // Still on its way (or the connection ended): hyper reads
                // it, with its timeouts, from the head on.
                None => {
                    head::restore(&mut buf, &bytes);
                    return Busy::Done(Outcome::Handoff(buf));
                }
            },
        };
        drop(bytes);
        let (method, version) = (parts.method.clone(), parts.version);
        let handler = handle_parts(kernel.clone(), info.clone(), parts, body);
        let answer = match &mut answer {
            Some(boxed) => {
                Pin::set(boxed, handler);
                boxed
            }
            None => answer.insert(Box::pin(handler)),
        };
        let Some(res) = unless_closed(stream, &mut buf, answer).await else {
            return Busy::Done(Outcome::Closed);
        };
        let (mut res, mut body) = res.into_parts();
        let added = body.take_encoded();
        // An upstream's fields, copied as they came: before the map's,
        // which then holds nothing (or, should anything have skipped
        // `KeptFields::move_into`, goes into one map with them).
        let mut raw = body.fields.take();
        if !res.headers.is_empty()
            && let Some(fields) = raw.take()
        {
            fields.prepend_to(&mut res.headers);
        }
        let size = if body.is_end_stream() {
            BodySize::None
        } else {
            body.size_hint().exact().map_or(BodySize::Unknown, BodySize::Known)
        };
        let answering = Answering {
            method: &method,
            version,
            keep_alive: keep_alive && !*stop.borrow(),
        };
        let out = &mut kept.out;
        out.clear();
        let encoded = encode::encode(out, &answering, res.status, (raw.as_ref(), &res.headers, &added), size);
        drop(raw);
        let mut headers = res.headers;
        // Often empty already (a static file's headers are written from
        // its block): clearing still walks the map's whole index.
        if !headers.is_empty() {
            headers.clear();
        }
        kept.scratch.headers = Some(headers);
        let written = write_body(stream, out, body, encoded.framing).await;
        if let Err(e) = written {
            tracing::debug!(peer = %info.peer, error = %e, "response not written whole; closing");
            return Busy::Done(Outcome::Closed);
        }
        // A shutdown that began while this response was in flight (its
        // head already promised keep-alive) closes the connection now, as
        // hyper's graceful shutdown does: the drain must not wait for the
        // client's next request or the idle timeout.
        if encoded.last || *stop.borrow() {
            let _ = stream.shutdown().await;
            return Busy::Done(Outcome::Closed);
        }
    }
}

/// Awaits a response, but gives the request up if the client closes the
/// connection meanwhile (as hyper does: a proxied request then stops
/// waiting for its upstream). As hyper, it stops watching once bytes of
/// the next request are buffered: a client that pipelines requests and
/// then half-closes still gets the answer to the request in flight.
async fn unless_closed<F: Future<Output = http::Response<ResponseBody>>>(
    stream: &TcpStream,
    buf: &mut BytesMut,
    answer: &mut Pin<Box<F>>,
) -> Option<http::Response<ResponseBody>> {
    loop {
        if !buf.is_empty() {
            return Some(answer.as_mut().await);
        }
        tokio::select! {
            biased;
            res = answer.as_mut() => return Some(res),
            ready = stream.readable() => {
                ready.ok()?;
                if buf.capacity() - buf.len() < READ_SIZE / 4 {
                    buf.reserve(READ_SIZE);
                }
                match stream.try_read_buf(buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// The `n` bytes of a request body, from the buffer, and what the socket
/// has ready without waiting (a client sends a small body with its
/// head); `None` if they are not all there, or the connection ended.
fn whole_body(stream: &TcpStream, buf: &mut BytesMut, n: usize) -> Option<Bytes> {
    if buf.len() < n {
        buf.reserve(n - buf.len());
    }
    while buf.len() < n {
        match stream.try_read_buf(buf) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    Some(buf.split_to(n).freeze())
}

/// What a busy connection keeps between requests so as not to allocate
/// them for each (hyper keeps the same); it goes with the busy period.
#[derive(Default)]
struct Kept {
    /// The response head and small bodies, written at once.
    out: Vec<u8>,
    scratch: head::Scratch,
}

/// What a read found.
enum Read {
    /// Bytes, added to the buffer.
    Bytes,
    /// The end of the connection, or an error on it.
    Closed,
    /// Nothing, `release` was set and nothing is buffered: the busy period
    /// can end.
    Quiet,
}

/// Reads more of the client's bytes into `buf`, or tells that the
/// connection has been quiet a while (`release`) with nothing buffered.
/// With `poll_read`, not `try_read`: a read shorter than the room given
/// clears the socket's readiness (tokio does so on epoll), so the watch
/// for the client's close while an answer is computed ([`unless_closed`])
/// starts without a `recvfrom` that finds nothing.
async fn read(stream: &mut TcpStream, buf: &mut BytesMut, release: &AtomicBool) -> Read {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE.max(buf.len()));
    }
    poll_fn(
        |cx| match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Read::Closed),
            Poll::Ready(Ok(_)) => Poll::Ready(Read::Bytes),
            Poll::Pending if release.swap(false, Ordering::Relaxed) && buf.is_empty() => Poll::Ready(Read::Quiet),
            Poll::Pending => Poll::Pending,
        },
    )
    .await
}

/// Writes the head in `out` and the body after it, framed as the head
/// said. Small bodies go out with the head in one write; a body that is
/// not ready yet has what is buffered written first. An error means the
/// connection cannot carry another response.
async fn write_body(stream: &mut TcpStream, out: &mut Vec<u8>, body: ResponseBody, framing: Framing) -> io::Result<()> {
    let mut body = pin!(body);
    let mut left = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::UntilClose => u64::MAX,
    };
    while left > 0 {
        let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                flush(stream, out).await?;
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let mut data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(format!("response body failed: {e}"))),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers (HTTP/1.1 chunked trailers are not sent) and
                // empty chunks.
                _ => continue,
            },
        };
        if let Framing::Length(_) = framing {
            if data.len() as u64 > left {
                data.truncate(left as usize);
                push(stream, out, data).await?;
                return Err(io::Error::other("response body longer than its Content-Length"));
            }
            left -= data.len() as u64;
        }
        if framing == Framing::Chunked {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{:x}\r\n", data.len());
            push(stream, out, data).await?;
            out.extend_from_slice(b"\r\n");
        } else {
            push(stream, out, data).await?;
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(stream, out).await?;
    if let Framing::Length(n) = framing
        && left > 0
    {
        return Err(io::Error::other(format!(
            "response body ended {left} bytes short of its Content-Length {n}"
        )));
    }
    Ok(())
}

/// Adds `data` behind what is buffered, or writes both when it is large.
async fn push(stream: &mut TcpStream, out: &mut Vec<u8>, mut data: Bytes) -> io::Result<()> {
    if data.len() < COPY_LIMIT {
        out.extend_from_slice(&data);
        if out.len() >= COPY_LIMIT {
            flush(stream, out).await?;
        }
        return Ok(());
    }
    flush(stream, out).await?;
    while data.has_remaining() {
        let n = stream.write(&data).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data.advance(n);
    }
    Ok(())
}

async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
