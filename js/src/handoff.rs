//! Answers from isolate threads to the HTTP workers that asked, one
//! wake-up a batch.
//!
//! A worker runs on a current-thread tokio runtime; waking one of its
//! tasks from another thread (an isolate thread answering) writes the
//! runtime's eventfd, a system call, and makes the sleeping worker
//! runnable, on a busy core often a context switch: once per request with
//! a one-shot channel per call. A worker that runs [`relay`] gets an inbox
//! instead: an isolate thread leaves its answer there and wakes the relay
//! only if the inbox was empty; the relay, on the worker, wakes each
//! waiting request with a local wake-up (no system call). Answers that
//! arrive while the worker is busy or not yet scheduled ride on the
//! wake-up already sent. Callers on threads without a relay (tests, other
//! runtimes) are woken directly, as by a one-shot channel.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

thread_local! {
    /// The inbox of the relay running on this thread's runtime, if any.
    static INBOX: RefCell<Option<Arc<Inbox>>> = const { RefCell::new(None) };
}

/// Wakers of answered calls, left for one worker's relay.
#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    /// Wake-ups of the relay, for tests.
    #[cfg(test)]
    relay_wakes: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct InboxState {
    /// Waiting tasks whose answer has arrived.
    answered: Vec<Waker>,
    /// The relay task, once it has been polled.
    relay: Option<Waker>,
}

impl Inbox {
    /// Hands `waker` to the relay; wakes the relay only if nothing was
    /// waiting for it already (it has been woken for those).
    fn post(&self, waker: Waker) {
        let relay = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.answered.push(waker);
            if state.answered.len() > 1 {
                return;
            }
            state.relay.clone()
        };
        if let Some(relay) = relay {
            #[cfg(test)]
            self.relay_wakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            relay.wake();
        }
    }
}

/// Wakes this worker's calls answered by isolate threads, one batch per
/// wake-up of the worker. Spawn it once on each HTTP worker's runtime (a
/// current-thread runtime that lives as long as its thread); it runs until
/// that runtime stops.
pub async fn relay() {
    struct Installed(Arc<Inbox>);
    impl Drop for Installed {
        fn drop(&mut self) {
            // The runtime stops: calls made from here on wake directly.
            INBOX.with(|i| {
                let mut i = i.borrow_mut();
                if i.as_ref().is_some_and(|mine| Arc::ptr_eq(mine, &self.0)) {
                    *i = None;
                }
            });
        }
    }
    let inbox = Arc::new(Inbox::default());
    INBOX.with(|i| *i.borrow_mut() = Some(inbox.clone()));
    let installed = Installed(inbox);
    let mut batch = Vec::new();
    std::future::poll_fn(move |cx| {
        {
            let mut state = installed.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.relay.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.relay = Some(cx.waker().clone());
            }
            std::mem::swap(&mut state.answered, &mut batch);
        }
        for waker in batch.drain(..) {
            waker.wake();
        }
        Poll::<()>::Pending
    })
    .await;
}

/// Where a call's answer goes: one value, once.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    /// The caller's worker inbox, if its thread runs a [`relay`].
    inbox: Option<Arc<Inbox>>,
}

struct SlotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender is gone (sent or dropped).
    done: bool,
    /// The receiver is gone: the caller stopped waiting.
    abandoned: bool,
}

/// A channel for one answer, made on the caller's thread (its inbox is
/// looked up then).
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            value: None,
            waker: None,
            done: false,
            abandoned: false,
        }),
        inbox: INBOX.with(|i| i.borrow().clone()),
    });
    (Sender { slot: slot.clone() }, Receiver { slot })
}

/// The isolate thread's end.
pub(crate) struct Sender<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Sender<T> {
    /// Delivers the answer; false if the caller stopped waiting (the
    /// answer is dropped).
    pub(crate) fn send(self, value: T) -> bool {
        self.finish(Some(value))
    }

    /// Whether the caller stopped waiting (its client went away).
    pub(crate) fn is_closed(&self) -> bool {
        self.slot.state.lock().unwrap_or_else(PoisonError::into_inner).abandoned
    }

    /// Settles the slot once (`None`: unanswered) and wakes the caller.
    fn finish(&self, value: Option<T>) -> bool {
        let waker = {
            let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.done || state.abandoned {
                state.done = true;
                return false;
            }
            state.done = true;
            state.value = value;
            state.waker.take()
        };
        if let Some(waker) = waker {
            match &self.slot.inbox {
                Some(inbox) => inbox.post(waker),
                None => waker.wake(),
            }
        }
        true
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // Dropped unanswered (the pool stopped): the caller learns it.
        let _ = self.finish(None);
    }
}

/// The caller's end: the answer, or `Err` if it will never come.
pub(crate) struct Receiver<T> {
    slot: Arc<Slot<T>>,
}

/// The answer will not come: the sender was dropped unanswered.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T> Future for Receiver<T> {
    type Output = Result<T, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.done {
            return Poll::Ready(Err(Closed));
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.abandoned = true;
        state.value = None;
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn without_a_relay_the_caller_is_woken_directly() {
        runtime().block_on(async {
            let (tx, rx) = channel::<u32>();
            std::thread::spawn(move || assert!(tx.send(7))).join().unwrap();
            assert_eq!(rx.await.unwrap(), 7);
        });
    }

    #[test]
    fn a_sender_dropped_unanswered_closes_and_a_caller_gone_is_seen() {
        runtime().block_on(async {
            let (tx, rx) = channel::<u32>();
            drop(tx);
            assert!(rx.await.is_err());
            let (tx, rx) = channel::<u32>();
            assert!(!tx.is_closed());
            drop(rx);
            assert!(tx.is_closed());
            assert!(!tx.send(1), "nobody waits");
        });
    }

    #[test]
    fn answers_that_arrive_together_wake_the_worker_once() {
        runtime().block_on(async {
            tokio::spawn(relay());
            tokio::task::yield_now().await; // the relay installs its inbox
            let inbox = INBOX.with(|i| i.borrow().clone()).expect("the relay's inbox");
            let (senders, waiting): (Vec<_>, Vec<_>) = (0..10u32)
                .map(|i| {
                    let (tx, rx) = channel::<u32>();
                    (tx, tokio::spawn(async move { rx.await.unwrap() + i }))
                })
                .unzip();
            tokio::task::yield_now().await; // every caller waits
            // Answered from another thread while this worker is busy (it
            // blocks on the join): one wake-up of the relay for all ten.
            std::thread::spawn(move || {
                for tx in senders {
                    assert!(tx.send(100));
                }
            })
            .join()
            .unwrap();
            let mut got = Vec::new();
            for w in waiting {
                got.push(w.await.unwrap());
            }
            assert_eq!(got, (100..110).collect::<Vec<_>>());
            assert_eq!(inbox.relay_wakes.load(std::sync::atomic::Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn a_stopped_relay_leaves_its_thread_waking_directly() {
        let rt = runtime();
        rt.block_on(async {
            tokio::spawn(relay());
            tokio::task::yield_now().await;
        });
        assert!(INBOX.with(|i| i.borrow().is_some()));
        drop(rt);
        assert!(
            INBOX.with(|i| i.borrow().is_none()),
            "the relay's inbox went with its runtime"
        );
        runtime().block_on(async {
            let (tx, rx) = channel::<u32>();
            std::thread::spawn(move || tx.send(3)).join().unwrap();
            assert_eq!(rx.await.unwrap(), 3);
        });
    }
}
