//! A response body JavaScript streams: the isolate's thread pushes chunks
//! into a small bounded channel and the HTTP side sends them as they come.
//! A client that stops reading fills the channel, and the isolate then
//! waits (runs no JavaScript, so the stream's `pull` is not called and
//! its writer's `ready` stays pending): memory stays bounded by
//! [`CHUNKS_IN_FLIGHT`] chunks, each already counted in the isolate's heap
//! when it was made.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

/// Chunks made but not yet taken by the connection.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// Why a streamed body ended before its end.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the app's response stream was cut: {0}")]
pub struct StreamCut(pub String);

/// The receiving end: an `http_body::Body` for the response.
pub struct ReplyStream {
    rx: mpsc::Receiver<Bytes>,
    /// Set by the isolate once the stream ended normally; a channel closed
    /// without it is a cut, which the connection must show (no final
    /// chunk on HTTP/1.1, a reset on h2), not a short but clean body.
    complete: Arc<AtomicBool>,
    ended: bool,
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream").finish_non_exhaustive()
    }
}

impl http_body::Body for ReplyStream {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(StreamCut("it failed or ran out of time".into()))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// The isolate's end.
pub(crate) struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    complete: Arc<AtomicBool>,
}

/// What became of a chunk.
pub(crate) enum Sent {
    /// Taken.
    Ok,
    /// The client went away.
    Gone,
    /// The call's deadline passed while the client was not reading.
    TimedOut,
}

/// A new stream's two ends.
pub(crate) fn channel() -> (ChunkSender, ReplyStream) {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let complete = Arc::new(AtomicBool::new(false));
    (
        ChunkSender {
            tx,
            complete: complete.clone(),
        },
        ReplyStream {
            rx,
            complete,
            ended: false,
        },
    )
}

impl ChunkSender {
    /// Sends one chunk, blocking this (isolate) thread while the channel is
    /// full, until `deadline` at most.
    pub(crate) fn send(&self, chunk: Bytes, deadline: Instant) -> Sent {
        match block_until(self.tx.send(chunk), deadline) {
            Some(Ok(())) => Sent::Ok,
            Some(Err(_)) => Sent::Gone,
            None => Sent::TimedOut,
        }
    }

    /// The stream ended normally: closing the channel ends the body.
    pub(crate) fn finish(self) {
        self.complete.store(true, Ordering::Release);
    }
}

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` on this thread, parked between polls, until `deadline`.
/// The isolate's threads are not tokio's: this is how they wait for the
/// connection to take a chunk.
fn block_until<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;

    #[test]
    fn a_full_channel_blocks_until_the_deadline_then_the_body_shows_a_cut() {
        let (tx, mut body) = channel();
        let soon = Instant::now() + Duration::from_millis(50);
        for _ in 0..CHUNKS_IN_FLIGHT {
            assert!(matches!(tx.send(Bytes::from_static(b"x"), soon), Sent::Ok));
        }
        assert!(matches!(tx.send(Bytes::from_static(b"x"), soon), Sent::TimedOut));
        drop(tx);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for _ in 0..CHUNKS_IN_FLIGHT {
                assert!(body.frame().await.unwrap().is_ok());
            }
            assert!(
                body.frame().await.unwrap().is_err(),
                "a stream that did not finish is an error"
            );
        });
    }

    #[test]
    fn a_finished_stream_ends_cleanly_and_a_dropped_body_is_gone() {
        let (tx, mut body) = channel();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(matches!(tx.send(Bytes::from_static(b"a"), later), Sent::Ok));
        tx.finish();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "a");
            assert!(body.frame().await.is_none());
        });
        let (tx, body) = channel();
        drop(body);
        assert!(matches!(tx.send(Bytes::from_static(b"a"), later), Sent::Gone));
    }
}
