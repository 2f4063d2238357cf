use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

/// Why the kernel cut a request body off: a runtime or plugin reading the
/// body gets it as the stream's error and answers with its `status()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyLimitError {
    /// More bytes than `max_body_bytes`.
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    /// No bytes for `body_read_timeout`.
    #[error("request body stalled for {0:?}")]
    Timeout(std::time::Duration),
    /// Still arriving after `body_total_timeout`.
    #[error("request body took longer than {0:?}")]
    TooSlow(std::time::Duration),
    /// Not a valid body: a bad chunk size, a short `Content-Length`, a
    /// broken HTTP/2 stream.
    #[error("malformed request body")]
    Malformed,
}

impl BodyLimitError {
    /// The status a client gets for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            BodyLimitError::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyLimitError::Timeout(_) | BodyLimitError::TooSlow(_) => http::StatusCode::REQUEST_TIMEOUT,
            BodyLimitError::Malformed => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// The error type carried by streaming bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body.
///
/// Empty and in-memory bodies are stored inline so the common cases
/// (redirects, errors, cached files) cost no boxing; anything else is a
/// boxed stream that is passed through without buffering.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(BoxBody<Bytes, BoxError>),
}

impl Body {
    /// A body with no bytes.
    pub const fn empty() -> Self {
        Body { kind: Kind::Empty }
    }

    /// A body held fully in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Body::empty();
        }
        Body {
            kind: Kind::Full(Some(bytes)),
        }
    }

    /// Wraps any streaming body, such as hyper's `Incoming` or a file stream.
    pub fn stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Body {
            kind: Kind::Stream(body.map_err(Into::into).boxed()),
        }
    }

    /// Reads the first `limit` bytes so a plugin can inspect them (a WAF, a
    /// signature check) and leaves the body whole for the app: what was read
    /// is replayed, then the rest streams on. A read error is replayed too,
    /// at the same place, so the kernel still answers 413/408 for it; the
    /// returned prefix is what arrived before the error.
    pub async fn peek(&mut self, limit: usize) -> Bytes {
        let stream = match &mut self.kind {
            Kind::Empty => return Bytes::new(),
            Kind::Full(b) => {
                let b = b.as_ref().cloned().unwrap_or_default();
                return b.slice(..b.len().min(limit));
            }
            Kind::Stream(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Stream(s) => s,
                _ => unreachable!("matched a stream above"),
            },
        };
        let mut stream = stream;
        let mut seen = BytesMut::new();
        let mut replay = VecDeque::new();
        let mut ended = false;
        while seen.len() < limit {
            match stream.frame().await {
                None => {
                    ended = true;
                    break;
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        seen.extend_from_slice(data);
                    }
                    replay.push_back(Ok(frame));
                }
                Some(Err(e)) => {
                    replay.push_back(Err(e));
                    ended = true;
                    break;
                }
            }
        }
        if ended && replay.iter().all(|f| f.as_ref().is_ok_and(Frame::is_data)) {
            *self = Body::full(seen.clone().freeze());
        } else {
            *self = Body::stream(Replay {
                frames: replay,
                rest: (!ended).then_some(stream),
            });
        }
        let mut seen = seen.freeze();
        seen.truncate(limit);
        seen
    }

    /// The in-memory bytes as a shared handle (no copy), if this body is
    /// fully buffered: a cache can keep the very buffer it saw.
    pub fn full_bytes(&self) -> Option<Bytes> {
        match &self.kind {
            Kind::Empty => Some(Bytes::new()),
            Kind::Full(b) => Some(b.clone().unwrap_or_default()),
            Kind::Stream(_) => None,
        }
    }

    /// The in-memory bytes, if this body is fully buffered; lets caches and
    /// tests read a body without polling it.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full(b) => Some(b.as_deref().unwrap_or(&[])),
            Kind::Stream(_) => None,
        }
    }
}

/// Frames already read by [`Body::peek`], then the rest of the stream.
struct Replay {
    frames: VecDeque<Result<Frame<Bytes>, BoxError>>,
    rest: Option<BoxBody<Bytes, BoxError>>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(frame));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body::Empty"),
            Kind::Full(b) => write!(f, "Body::Full({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Kind::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

macro_rules! body_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Body {
            fn from(v: $t) -> Self {
                Body::full(v)
            }
        }
    )*};
}
body_from!(Bytes, String, Vec<u8>, &'static str, &'static [u8]);

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn full_body_reports_exact_size_and_ends() {
        let b = Body::from("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(b.as_bytes(), Some(&b"hello"[..]));
        assert!(Body::full("").is_end_stream());
    }

    fn chunks(parts: Vec<Result<&'static str, &'static str>>) -> Body {
        let frames = parts
            .into_iter()
            .map(|p| p.map(|s| Frame::data(Bytes::from(s))).map_err(BoxError::from));
        Body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(frames)))
    }

    async fn collect(body: Body) -> Result<Bytes, BoxError> {
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn peek_reads_a_prefix_and_replays_the_whole_body() {
        let mut body = chunks(vec![Ok("abc"), Ok("def"), Ok("ghi")]);
        assert_eq!(&body.peek(4).await[..], b"abcd");
        assert_eq!(&collect(body).await.unwrap()[..], b"abcdefghi");

        let mut short = chunks(vec![Ok("ab")]);
        assert_eq!(&short.peek(10).await[..], b"ab");
        assert_eq!(
            short.as_bytes(),
            Some(&b"ab"[..]),
            "a body read to its end is kept in memory"
        );

        let mut full = Body::from("hello");
        assert_eq!(&full.peek(2).await[..], b"he");
        assert_eq!(full.as_bytes(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn peek_replays_a_read_error_where_it_happened() {
        let mut body = chunks(vec![Ok("abc"), Err("too large")]);
        assert_eq!(&body.peek(100).await[..], b"abc");
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.to_string(), "too large");
    }
}
