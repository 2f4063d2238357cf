//! A request body JavaScript streams into a fetch (`body: readableStream`,
//! or `request.body` passed through): pulled, not pushed. Each time the
//! connection wants the next chunk, the isolate is asked for one
//! (`fetchDone(id, null, -2)`) and reads it from the stream then, so at
//! most one chunk waits in bext and a stream that produces gigabytes is
//! never held whole in the isolate's heap or here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use tokio::sync::mpsc;

/// What JavaScript hands over for a streamed request body.
pub(crate) enum Piece {
    /// The next chunk.
    Data(Bytes),
    /// The stream ended.
    End,
    /// The stream failed (it errored, or gave a chunk that is not bytes).
    Failed(String),
}

/// Where JavaScript's pieces go.
pub(crate) type PieceSender = mpsc::UnboundedSender<Piece>;

/// The request body of a fetch: whole, or streamed from JavaScript.
pub(crate) enum Sending {
    /// Bytes JavaScript had whole (a string, a buffer, a form).
    Whole(Bytes),
    /// A stream, until it is handed to the connection (it cannot be sent
    /// twice: a redirect that keeps the body fails the fetch).
    Stream(Option<Upload>),
}

impl std::fmt::Debug for Sending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sending::Whole(b) => write!(f, "Whole({} bytes)", b.len()),
            Sending::Stream(u) => write!(f, "Stream(sent: {})", u.is_none()),
        }
    }
}

/// The body type of bext's outbound requests.
pub(crate) type OutBody = Either<Full<Bytes>, Upload>;

/// A streamed request body as the connection reads it.
pub(crate) struct Upload {
    pieces: mpsc::UnboundedReceiver<Piece>,
    /// Asks the isolate for the next chunk.
    ask: Box<dyn Fn() + Send + Sync>,
    asked: bool,
    /// The fetch's `timeout` bounds the upload too: a stream that stops
    /// producing does not hold the connection past it. Started on the
    /// first read (a timer needs the fetch runtime).
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Upload {
    /// An upload and the sender JavaScript's chunks go to; `ask` is called
    /// whenever the connection is ready for the next one.
    pub(crate) fn new(ask: Box<dyn Fn() + Send + Sync>, timeout: Duration) -> (Upload, PieceSender) {
        let (tx, pieces) = mpsc::unbounded_channel();
        let upload = Upload {
            pieces,
            ask,
            asked: false,
            timeout,
            deadline: None,
            done: false,
        };
        (upload, tx)
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.asked {
            this.asked = true;
            (this.ask)();
        }
        match this.pieces.poll_recv(cx) {
            Poll::Ready(Some(Piece::Data(data))) => {
                this.asked = false;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Piece::End)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Piece::Failed(why))) => {
                this.done = true;
                Poll::Ready(Some(Err(format!("the request body stream failed: {why}").into())))
            }
            // The fetch was aborted or answered: a body cut short must not
            // look complete.
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(Some(Err("the request body stream was abandoned".into())))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    return Poll::Ready(Some(Err(format!(
                        "the request body stream gave nothing for {timeout:?} (isolate.fetch.timeout)"
                    )
                    .into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn chunks_are_asked_for_one_at_a_time_and_an_abandoned_body_is_an_error() {
        let asks = Arc::new(AtomicUsize::new(0));
        let counted = asks.clone();
        let (mut upload, tx) = Upload::new(
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
            Duration::from_secs(5),
        );
        tx.send(Piece::Data(Bytes::from_static(b"ab"))).unwrap();
        let first = upload.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!((&first[..], asks.load(Ordering::SeqCst)), (&b"ab"[..], 1));
        drop(tx);
        let err = upload.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
        assert_eq!(asks.load(Ordering::SeqCst), 2, "asked again for the second chunk");
        assert!(upload.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_failed_stream_and_a_silent_one_are_errors() {
        let (mut upload, tx) = Upload::new(Box::new(|| {}), Duration::from_secs(5));
        tx.send(Piece::Failed("not bytes".into())).unwrap();
        let err = upload.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("not bytes"), "{err}");

        let (mut silent, _tx) = Upload::new(Box::new(|| {}), Duration::from_millis(10));
        let err = silent.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("gave nothing"), "{err}");
    }
}
