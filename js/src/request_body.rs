//! An app's request body, handed to JavaScript as it arrives.
//!
//! The kernel calls the handler as soon as the request's head is in and
//! pumps the client's body into a [`BodyFeed`] meanwhile; the call carries
//! the other end, a [`BodyTap`]. When an isolate picks the call up, a body
//! that has all arrived (most small POSTs) is handed over whole, as one
//! `Uint8Array`; otherwise its chunks reach JavaScript through the
//! isolate's fetch channel, as a streamed fetch response's do, so waiting
//! for them runs no JavaScript (no `cpu_limit`; the call's `timeout`
//! holds) and an inline isolate serves other requests meanwhile. At most
//! [`WINDOW`] bytes wait between the socket and JavaScript: a handler that
//! does not read holds the client back, it does not make bext buffer the
//! upload.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{Notify, Semaphore};

use crate::fetch::{BodyEvent, BodySink};

/// Bytes of a request body that may wait for JavaScript to read them.
pub(crate) const WINDOW: usize = 256 << 10;

/// The body of an app's request ([`crate::Call::App`]).
#[derive(Debug)]
pub enum RequestBody {
    /// All of it, known before the call (empty: none). A body a Rust
    /// plugin already read whole is passed this way, as one chunk.
    Whole(Bytes),
    /// Still arriving, from the [`BodyFeed`] made with it ([`request_body`]).
    Arriving(BodyTap),
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Whole(Bytes::new())
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        RequestBody::Whole(bytes)
    }
}

/// A body to be fed as it arrives: the feed for the kernel to pump, and
/// the body for the call.
pub fn request_body() -> (BodyFeed, RequestBody) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        window: Arc::new(Semaphore::new(WINDOW)),
        gone: Notify::new(),
    });
    (
        BodyFeed { shared: shared.clone() },
        RequestBody::Arriving(BodyTap { shared }),
    )
}

struct Shared {
    state: Mutex<State>,
    /// Bytes the feed may pass on before JavaScript has read them; closed
    /// when the isolate lets go of the body.
    window: Arc<Semaphore>,
    /// Wakes a feed waiting on the client once the isolate let go.
    gone: Notify,
}

#[derive(Default)]
struct State {
    /// Chunks that arrived before an isolate took the body.
    early: Vec<Bytes>,
    /// How the body ended, if it did before an isolate took it.
    ended: Option<Result<(), String>>,
    /// Where the chunks go once an isolate took the body.
    sink: Option<BodySink>,
    /// The isolate let go of the body (its call is over): the feed stops.
    dropped: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The kernel's end: [`BodyFeed::pump`] the client's body into it.
pub struct BodyFeed {
    shared: Arc<Shared>,
}

impl BodyFeed {
    /// Reads `body` into the call's body as JavaScript makes room, until
    /// it ends, fails (the error is returned, after JavaScript has been
    /// told), or the isolate lets go of it (then `Ok`: the rest is never
    /// read).
    pub async fn pump<B>(self, mut body: B) -> Result<(), B::Error>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        loop {
            let frame = tokio::select! {
                biased;
                () = self.shared.gone.notified() => return Ok(()),
                frame = body.frame() => frame,
            };
            let data = match frame {
                None => {
                    self.push(BodyEvent::End);
                    return Ok(());
                }
                Some(Err(e)) => {
                    self.push(BodyEvent::Failed(e.to_string()));
                    return Err(e);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue, // trailers, empty frames
                },
            };
            let want = u32::try_from(data.len().min(WINDOW)).unwrap_or(u32::MAX);
            match self.shared.window.acquire_many(want).await {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()), // closed: the isolate let go
            }
            if !self.push(BodyEvent::Chunk(data)) {
                return Ok(());
            }
        }
    }

    /// Hands `event` on, or keeps it until an isolate takes the body;
    /// false once nobody will read it.
    fn push(&self, event: BodyEvent) -> bool {
        let mut state = self.shared.state();
        if state.dropped {
            return false;
        }
        if let Some(sink) = &state.sink {
            sink.send(event);
            return true;
        }
        match event {
            BodyEvent::Chunk(data) => state.early.push(data),
            BodyEvent::End => state.ended = Some(Ok(())),
            BodyEvent::Failed(why) => state.ended = Some(Err(why)),
        }
        true
    }
}

/// The isolate's end of a body still arriving. Dropping it (the call is
/// over, or was never run) stops the feed.
pub struct BodyTap {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BodyTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyTap")
    }
}

impl BodyTap {
    /// The whole body, if all of it arrived (and nothing failed) before
    /// an isolate took the call.
    pub(crate) fn whole(&self) -> Option<Bytes> {
        let mut state = self.shared.state();
        if !matches!(state.ended, Some(Ok(()))) {
            return None;
        }
        let early = std::mem::take(&mut state.early);
        Some(match <[Bytes; 1]>::try_from(early) {
            Ok([one]) => one,
            Err(parts) => {
                let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                parts.iter().for_each(|p| all.extend_from_slice(p));
                all.freeze()
            }
        })
    }

    /// Bytes JavaScript reads are given back here (`fetchCredit`).
    pub(crate) fn window(&self) -> Arc<Semaphore> {
        self.shared.window.clone()
    }

    /// Sends the body to `sink` from now on: what arrived already first.
    pub(crate) fn attach(&self, sink: BodySink) {
        let mut state = self.shared.state();
        for chunk in std::mem::take(&mut state.early) {
            sink.send(BodyEvent::Chunk(chunk));
        }
        match state.ended.take() {
            Some(Ok(())) => sink.send(BodyEvent::End),
            Some(Err(why)) => sink.send(BodyEvent::Failed(why)),
            None => state.sink = Some(sink),
        }
    }
}

impl Drop for BodyTap {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.dropped = true;
        state.sink = None;
        state.early.clear();
        drop(state);
        self.shared.window.close();
        self.shared.gone.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// A body of `n` chunks of `size` bytes, counting what was read.
    fn chunks(
        n: usize,
        size: usize,
        read: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames = (0..n).map(move |_| {
            read.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            Ok(http_body::Frame::data(Bytes::from(vec![7u8; size])))
        });
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_small_body_that_has_arrived_is_taken_whole() {
        let (feed, body) = request_body();
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        feed.pump(chunks(3, 10, read)).await.unwrap();
        let RequestBody::Arriving(tap) = body else {
            panic!("a tap")
        };
        assert_eq!(tap.whole().map(|b| b.len()), Some(30));
    }

    #[tokio::test]
    async fn nobody_reading_holds_the_client_back_at_the_window() {
        let (feed, body) = request_body();
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut pump = Box::pin(feed.pump(chunks(1000, 16 << 10, read.clone())));
        // Polled until it can go no further: it waits for JavaScript.
        for _ in 0..100 {
            let polled = pump.as_mut().now_or_never();
            assert!(polled.is_none(), "a 16 MB body is not taken in whole");
            tokio::task::yield_now().await;
        }
        let taken = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(taken <= WINDOW + (16 << 10), "{taken} bytes read");
        let RequestBody::Arriving(tap) = body else {
            panic!("a tap")
        };
        assert!(tap.whole().is_none(), "not all of it is in");
        // The isolate lets go: the feed stops without reading on.
        drop(tap);
        assert!(pump.await.is_ok());
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), taken);
    }
}
