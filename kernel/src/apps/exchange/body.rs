//! An upstream answer's body as it arrives on bext's own HTTP/1.1
//! exchange: decoded from its framing (a length, chunked, or until the
//! upstream closes), streamed to the client frame by frame, and the
//! connection kept for the next request once the body ended cleanly.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::head::Framing;
use super::{Conn, Kept};
use crate::apps::pool::{BodyTimedOut, Counted};

/// The longest chunk-size line or trailer field read.
const MAX_LINE: usize = 4096;

/// The most trailer bytes read (and dropped: an HTTP/1.1 client of bext's
/// gets none, as with hyper's client before).
const MAX_TRAILERS: usize = 64 * 1024;

/// Why an answer's body could not be read to its end.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    /// The chunked framing is broken (a bad size line, no CRLF after a
    /// chunk, trailers too long).
    #[error("the upstream's chunked body is malformed: {0}")]
    Chunked(&'static str),
    /// The upstream closed the connection before the body's end.
    #[error("the upstream closed the connection mid-body")]
    Closed,
}

/// Where a body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    /// Bytes of a `Content-Length` body left.
    Length(u64),
    Chunked(Chunk),
    /// Until the connection closes.
    Close,
    /// The body ended.
    Done,
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Bytes of the current chunk left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line; the
    /// bytes read so far.
    Trailers(usize),
}

impl Decoder {
    /// The decoder for a framing.
    pub(crate) fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunk::Size),
            Framing::Close => Decoder::Close,
        }
    }

    /// The next piece of body in `buf` (taken off it, not copied), or
    /// `None` when `buf` holds no more of it (or the body ended).
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self {
                Decoder::Done => return Ok(None),
                Decoder::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (*left).min(buf.len() as u64);
                    *left -= take;
                    let data = buf.split_to(take as usize).freeze();
                    if *left == 0 {
                        *self = Decoder::Done;
                    }
                    return Ok(Some(data));
                }
                Decoder::Close => return Ok((!buf.is_empty()).then(|| buf.split().freeze())),
                Decoder::Chunked(chunk) => match chunk {
                    Chunk::Size => {
                        let Some(line) = line(buf)? else { return Ok(None) };
                        let size = chunk_size(&line)?;
                        *chunk = if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        let take = (*left).min(buf.len() as u64);
                        *left -= take;
                        if *left == 0 {
                            *chunk = Chunk::DataEnd;
                        }
                        return Ok(Some(buf.split_to(take as usize).freeze()));
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(None);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(BodyError::Chunked("no CRLF after a chunk"));
                        }
                        let _ = buf.split_to(2);
                        *chunk = Chunk::Size;
                    }
                    Chunk::Trailers(seen) => {
                        let Some(line) = line(buf)? else { return Ok(None) };
                        if line.is_empty() {
                            *self = Decoder::Done;
                        } else {
                            *seen += line.len();
                            if *seen > MAX_TRAILERS {
                                return Err(BodyError::Chunked("trailers too long"));
                            }
                        }
                    }
                },
            }
        }
    }

    /// Whether the body ended.
    pub(crate) fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// How many bytes to make room for before the next read.
    fn room(&self) -> usize {
        match self {
            Decoder::Length(left) => (*left).clamp(8 * 1024, 64 * 1024) as usize,
            _ => 16 * 1024,
        }
    }
}

/// A CRLF-ended line at the front of `buf`, taken off it without its
/// CRLF; `None` until it is whole.
fn line(buf: &mut BytesMut) -> Result<Option<BytesMut>, BodyError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE {
            Err(BodyError::Chunked("line too long"))
        } else {
            Ok(None)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' || end > MAX_LINE {
        return Err(BodyError::Chunked("a line not ended by CRLF"));
    }
    let mut line = buf.split_to(end + 1);
    line.truncate(end - 1);
    Ok(Some(line))
}

/// A chunk-size line's size: hex digits (at most 15, so no overflow),
/// then optional whitespace and extensions, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let hex = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex == 0 || hex > 15 {
        return Err(BodyError::Chunked("bad chunk size"));
    }
    let rest = line[hex..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(BodyError::Chunked("bad chunk size"));
    }
    if rest.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(BodyError::Chunked("control character in a chunk extension"));
    }
    let digit = |b: u8| (b as char).to_digit(16).map_or(0, u64::from);
    Ok(line[..hex].iter().fold(0, |n, &b| n << 4 | digit(b)))
}

/// An answer's body read from its connection while the client takes it;
/// the connection is kept again at a clean end, closed otherwise.
pub(crate) struct UpstreamBody {
    conn: Option<Conn>,
    decoder: Decoder,
    /// Where the connection goes back, when it may.
    kept: Option<Kept>,
    /// What stays counted until the body ends or is dropped.
    counted: Option<Counted>,
    /// The longest pause allowed between two frames, and its timer.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl UpstreamBody {
    /// The rest of an answer's body on `conn`; `kept` says where the
    /// connection goes back, if the answer allows its reuse.
    pub(crate) fn new(conn: Conn, decoder: Decoder, kept: Option<Kept>) -> UpstreamBody {
        UpstreamBody {
            conn: Some(conn),
            decoder,
            kept,
            counted: None,
            idle: None,
        }
    }

    /// Holds `counted` until the body ends and limits its pauses to
    /// `idle`.
    pub(crate) fn with(mut self, counted: Counted, idle: Option<Duration>) -> UpstreamBody {
        self.counted = Some(counted);
        self.idle = idle.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        self
    }

    /// The body ended: the connection goes back when nothing follows it.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        self.counted = None;
        if let (Some(conn), Some(kept)) = (self.conn.take(), self.kept.take()) {
            kept.give_back(conn);
        }
    }

    fn fail(
        &mut self,
        error: bext_plugin_abi::BoxError,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, bext_plugin_abi::BoxError>>> {
        self.conn = None;
        self.counted = None;
        self.decoder = Decoder::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = bext_plugin_abi::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Err(e) => return this.fail(e.into()),
                Ok(Some(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    } else if let Some((limit, timer)) = &mut this.idle {
                        timer.as_mut().reset(tokio::time::Instant::now() + *limit);
                    }
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Ok(None) if this.decoder.is_done() => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            conn.buf.reserve(this.decoder.room());
            match conn.io.try_read_buf(&mut conn.buf) {
                Ok(0) if this.decoder == Decoder::Close => {
                    this.kept = None;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Closed.into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match conn.io.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return this.fail(e.into()),
                    Poll::Pending => {
                        if let Some((limit, timer)) = &mut this.idle
                            && timer.as_mut().poll(cx).is_ready()
                        {
                            let limit = *limit;
                            return this.fail(BodyTimedOut(limit).into());
                        }
                        return Poll::Pending;
                    }
                },
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.decoder {
            Decoder::Length(left) => http_body::SizeHint::with_exact(left),
            Decoder::Done => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `raw` fed in pieces of `step` bytes: the body, and whether
    /// it ended.
    fn decode_in_steps(framing: Framing, raw: &[u8], step: usize) -> Result<(Vec<u8>, bool), BodyError> {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in raw.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(data) = decoder.decode(&mut buf)? {
                body.extend_from_slice(&data);
            }
        }
        Ok((body, decoder.is_done()))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces_they_arrive_in() {
        let raw = b"2\r\nok\r\nA;name=\"v\"\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in 1..raw.len() {
            let (body, done) = decode_in_steps(Framing::Chunked, raw, step).unwrap();
            assert_eq!((body.as_slice(), done), (&b"ok0123456789"[..], true), "step {step}");
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let mut decoder = Decoder::new(Framing::Length(3));
        let mut buf = BytesMut::from(&b"abcdHTTP"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), "abc");
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"dHTTP", "what follows is not the body's");
        assert!(Decoder::new(Framing::Empty).is_done());
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for raw in [
            &b"x\r\nok\r\n0\r\n\r\n"[..],
            b"2\nok\r\n0\r\n\r\n",
            b"2\r\nokk\r\n0\r\n\r\n",
            b"-2\r\nok\r\n",
            b"2 x\r\nok\r\n",
            b"1000000000000000\r\n",
            b"2;a\0\r\nok\r\n",
        ] {
            assert!(
                decode_in_steps(Framing::Chunked, raw, raw.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let endless = vec![b'1'; MAX_LINE + 2];
        assert_eq!(
            decode_in_steps(Framing::Chunked, &endless, 512).unwrap_err(),
            BodyError::Chunked("line too long")
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILERS / 10 + 1) {
            trailers.extend_from_slice(b"X-A: 12345\r\n");
        }
        assert_eq!(
            decode_in_steps(Framing::Chunked, &trailers, 4096).unwrap_err(),
            BodyError::Chunked("trailers too long")
        );
    }
}
