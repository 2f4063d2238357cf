//! Pools whose module is checked after the server is up. Apps of distinct
//! code are checked one by one in an isolate (~3.5 ms each): 10,000 of
//! them kept `bext serve` from listening for half a minute. A deferred
//! pool is queued for one background thread, which starts checking once
//! [`start_deferred_checks`] is called (the kernel calls it when its
//! listeners are bound). A request to an app whose check has not run yet
//! checks it at once (that request waits for it, not for the queue); a
//! request to an app being checked waits for that check. A failed check
//! is logged and kept: the app's requests get it as their error.
//!
//! Only the first start of a server defers: `bext check` and reloads
//! start pools with [`IsolatePool::start`], which checks before it returns.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, Weak};

use tokio::sync::Notify;

use crate::{IsolatePool, JsError, Spec};

/// An isolate pool whose module check may still be queued.
pub struct DeferredPool {
    slot: Arc<Slot>,
}

/// Where a deferred pool's check is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    /// Queued or being checked.
    Pending,
    /// Checked: the pool serves.
    Passed,
    /// The module did not load; why.
    Failed(String),
}

struct Slot {
    /// Who, for the log.
    name: String,
    /// The spec until somebody takes it to check it; boxed, so that the
    /// slot, kept for the app's life, does not keep a spec's room once
    /// the pool holds it (10,000 apps: ~3 MB).
    spec: Mutex<Option<Box<Spec>>>,
    done: OnceLock<Result<IsolatePool, JsError>>,
    /// Woken when `done` is set.
    checked: Notify,
}

impl Slot {
    /// Checks the module unless somebody else took it; blocks for the check.
    fn check(&self) {
        let Some(spec) = self.spec.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let started = catch_unwind(AssertUnwindSafe(|| IsolatePool::start(*spec)))
            .unwrap_or_else(|_| Err(JsError::Load("the module check crashed".into())));
        if let Err(e) = &started {
            tracing::error!(target: "bext::js", source = %self.name, "{}: did not load, it answers 503: {e}", self.name);
        }
        let _ = self.done.set(started);
        self.checked.notify_waiters();
    }
}

/// The background queue: pools to check, held weakly (a pool a reload
/// dropped is skipped), and whether the thread may start.
#[derive(Default)]
struct Queue {
    waiting: Vec<Weak<Slot>>,
    started: bool,
    /// Run once the queue is first checked through.
    after: Option<Box<dyn FnOnce() + Send>>,
}

static QUEUE: LazyLock<Mutex<Queue>> = LazyLock::new(Mutex::default);

impl DeferredPool {
    /// Queues the pool's check for the background thread.
    pub fn queue(spec: Spec) -> DeferredPool {
        let slot = Arc::new(Slot {
            name: spec.name.clone(),
            spec: Mutex::new(Some(Box::new(spec))),
            done: OnceLock::new(),
            checked: Notify::new(),
        });
        let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
        queue.waiting.push(Arc::downgrade(&slot));
        if queue.started && queue.waiting.len() == 1 {
            spawn_checker(&mut queue);
        }
        DeferredPool { slot }
    }

    /// The pool once its module is checked: checks it here (on a blocking
    /// thread) if the background thread has not reached it yet.
    pub async fn pool(&self) -> Result<&IsolatePool, JsError> {
        loop {
            let notified = self.slot.checked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(done) = self.slot.done.get() {
                return done.as_ref().map_err(Clone::clone);
            }
            let queued = self.slot.spec.lock().unwrap_or_else(PoisonError::into_inner).is_some();
            if queued {
                let slot = self.slot.clone();
                // Carried on if this request goes away: the next one finds
                // the check done.
                let _ = tokio::task::spawn_blocking(move || slot.check()).await;
                continue;
            }
            notified.await;
        }
    }

    /// The pool, if its module is checked and loaded.
    pub fn ready(&self) -> Option<&IsolatePool> {
        self.slot.done.get().and_then(|d| d.as_ref().ok())
    }

    /// Where its check is, for health and reloads.
    pub fn status(&self) -> CheckStatus {
        match self.slot.done.get() {
            None => CheckStatus::Pending,
            Some(Ok(_)) => CheckStatus::Passed,
            Some(Err(e)) => CheckStatus::Failed(e.to_string()),
        }
    }
}

/// Lets the background thread check the queued pools, in the order they
/// were queued. Called once the server listens; later calls do nothing.
/// `after` runs once they are all checked (on the checker's thread, or
/// here when none is queued): the start's work is over then, and the
/// kernel gives back what it freed.
pub fn start_deferred_checks(after: impl FnOnce() + Send + 'static) {
    let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    if !queue.started {
        queue.started = true;
        if queue.waiting.is_empty() {
            drop(queue);
            after();
        } else {
            queue.after = Some(Box::new(after));
            spawn_checker(&mut queue);
        }
    }
}

/// Starts a thread that checks until the queue is empty (called with the
/// queue locked and not empty, so exactly one such thread runs).
fn spawn_checker(queue: &mut Queue) {
    let spawned = std::thread::Builder::new().name("bext-js-check".into()).spawn(|| {
        let mut next = 0;
        loop {
            let slot = {
                let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
                if next == queue.waiting.len() {
                    queue.waiting.clear();
                    let after = queue.after.take();
                    drop(queue);
                    if let Some(after) = after {
                        after();
                    }
                    return;
                }
                next += 1;
                queue.waiting[next - 1].upgrade()
            };
            if let Some(slot) = slot {
                slot.check();
            }
        }
    });
    if let Err(e) = spawned {
        // Each app is then checked by its first request.
        queue.waiting.clear();
        if let Some(after) = queue.after.take() {
            after();
        }
        tracing::warn!(target: "bext::js", "cannot start the background module check: {e}");
    }
}
