//! Request-body limits hyper does not have: a byte cap (413), a timeout
//! between chunks and a deadline for the whole body (408), and a body
//! the client framed badly (400, not the upstream's fault).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bext_plugin_abi::BodyLimitError;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Wraps a body with a byte cap, an inactivity timeout and a deadline.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    max: u64,
    timeout: Duration,
    total: Duration,
    deadline: Instant,
    /// Fires at the next chunk's timeout or the deadline, whichever is
    /// first: one timer for both.
    timer: Pin<Box<Sleep>>,
    /// Bytes read so far, for the app's `bext_request_bytes_total`.
    read: Option<Arc<AtomicU64>>,
}

impl<B> LimitedBody<B> {
    /// Caps `inner` at `max` bytes, with at most `timeout` between chunks
    /// and `total` for all of it.
    pub fn new(inner: B, max: u64, timeout: Duration, total: Duration) -> Self {
        let deadline = Instant::now() + total;
        LimitedBody {
            inner,
            remaining: max,
            max,
            timeout,
            total,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline.min(Instant::now() + timeout))),
            read: None,
        }
    }

    /// Adds every byte read to `read` (metrics).
    pub fn counting(mut self, read: Arc<AtomicU64>) -> Self {
        self.read = Some(read);
        self
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
                let err = if Instant::now() >= this.deadline {
                    BodyLimitError::TooSlow(this.total)
                } else {
                    BodyLimitError::Timeout(this.timeout)
                };
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(BodyLimitError::TooLarge(this.max).into())));
                    }
                    this.remaining -= n;
                    if let Some(read) = &this.read {
                        read.fetch_add(n, Ordering::Relaxed);
                    }
                }
                let next = (Instant::now() + this.timeout).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: Self::Error = e.into();
                tracing::debug!(error = %e, "malformed request body");
                Poll::Ready(Some(Err(BodyLimitError::Malformed.into())))
            }
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
