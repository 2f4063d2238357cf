//! Request-body limits hyper does not have: a byte cap (413) and a
//! timeout between chunks (408).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a request body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyLimitError {
    /// More bytes than `max_body_bytes`.
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    /// No bytes for `body_read_timeout`.
    #[error("request body stalled for {0:?}")]
    Timeout(Duration),
}

impl BodyLimitError {
    /// The status a client gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyLimitError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyLimitError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// Wraps a body with a byte cap and an inactivity timeout.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    max: u64,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<B> LimitedBody<B> {
    /// Caps `inner` at `max` bytes, with at most `timeout` between chunks.
    pub fn new(inner: B, max: u64, timeout: Duration) -> Self {
        LimitedBody {
            inner,
            remaining: max,
            max,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B> HttpBody for LimitedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyLimitError::Timeout(this.timeout).into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(BodyLimitError::TooLarge(this.max).into())));
                    }
                    this.remaining -= n;
                }
                let deadline = Instant::now() + this.timeout;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
