//! Isolates on the HTTP worker threads themselves (`mode = "inline"`).
//!
//! Each worker thread that serves the app gets its own isolate, created on
//! its first request there, and calls run on that thread with no hand-off:
//! this is how Workers-style runtimes serve JavaScript. One isolate serves
//! many requests at once: a call whose promise waits on a timer leaves the
//! isolate free for the next request, and a driver task on the worker's
//! runtime fires the timers. JavaScript that runs without yielding stalls
//! the worker's other requests, so each run is cut off after `cpu_limit`
//! and the isolate is replaced.
//!
//! The isolates live in a thread-local table; futures only carry keys, so
//! they stay `Send` for `tokio::spawn`. Calls must come from current-thread
//! runtimes (bext's workers are), where a task never changes threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Notify;

use crate::backoff::backoff_delay;
use crate::fetch::Fetcher;
use crate::isolate::Isolate;
use crate::modules::ModuleCache;
use crate::{Answer, Call, Exports, JsError, Spec};

/// Tells pools apart in the thread-local tables.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static SLOTS: RefCell<HashMap<u64, Slot>> = RefCell::new(HashMap::new());
}

/// An app's or plugin's module, run inline on whichever thread calls it.
pub(crate) struct InlinePool {
    spec: Arc<Spec>,
    /// The module's files as read at load, for every thread's isolate.
    modules: Arc<ModuleCache>,
    /// The app's outbound client, shared by its isolates on every thread.
    fetcher: Option<Arc<Fetcher>>,
    key: u64,
    /// Cleared on drop: threads then free their isolates of this pool.
    alive: Arc<AtomicBool>,
}

impl InlinePool {
    /// Loads the module once here, so that a broken module is an error
    /// now and not on some worker's first request.
    pub(crate) fn start(spec: Spec) -> Result<(InlinePool, Exports), JsError> {
        let (fetcher, modules, exports) = crate::pool::load(&spec)?;
        let pool = InlinePool {
            modules,
            fetcher,
            spec: Arc::new(spec),
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(AtomicBool::new(true)),
        };
        Ok((pool, exports))
    }

    /// Runs one call on this thread's isolate.
    pub(crate) async fn call(&self, call: Call) -> Result<Answer, JsError> {
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::CurrentThread) => {}
            _ => {
                return Err(JsError::Exception(
                    "inline isolates must be called from a current-thread tokio runtime".into(),
                ));
            }
        }
        let deadline = Instant::now() + self.spec.limits.timeout;
        let mut call = call;
        let (id, generation, wake) = loop {
            match self.with_slot(|slot| slot.begin(call, deadline)) {
                Begun::Done(result) => return result,
                Begun::Pending { id, generation, wake } => break (id, generation, wake),
                // A crashing isolate is rebuilt after a pause; calls wait
                // for it (without holding the thread), as they would in a
                // queue.
                Begun::Later(at, back) if at < deadline => {
                    call = *back;
                    tokio::time::sleep_until(at.into()).await;
                }
                Begun::Later(..) => return Err(JsError::Timeout(self.spec.limits.timeout)),
            }
        };
        let mut guard = Forget {
            key: self.key,
            id,
            generation,
            armed: true,
        };
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.with_slot(|slot| slot.poll(id, generation)) {
                guard.armed = false;
                return result;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline.into()) => {
                    return Err(JsError::Timeout(self.spec.limits.timeout));
                }
            }
        }
    }

    fn with_slot<T>(&self, f: impl FnOnce(&mut Slot) -> T) -> T {
        SLOTS.with_borrow_mut(|slots| {
            if let Some(slot) = slots.get_mut(&self.key) {
                return f(slot);
            }
            // This pool's first call on this thread: forget the isolates of
            // pools that are gone, then start this one's slot.
            slots.retain(|_, s| s.alive.load(Ordering::Acquire));
            f(slots.entry(self.key).or_insert_with(|| {
                Slot::new(
                    self.key,
                    self.spec.clone(),
                    self.modules.clone(),
                    self.fetcher.clone(),
                    self.alive.clone(),
                )
            }))
        })
    }
}

impl Drop for InlinePool {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        // This thread's isolate goes now; the others go when their thread
        // next starts an isolate, or when their timer driver wakes.
        let _ = SLOTS.try_with(|slots| {
            if let Ok(mut slots) = slots.try_borrow_mut() {
                slots.remove(&self.key);
            }
        });
    }
}

/// Drops a pending call that nobody waits for any more (timed out, or the
/// client went away), so its promise does not stay in the isolate.
struct Forget {
    key: u64,
    id: u64,
    generation: u64,
    armed: bool,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let _ = SLOTS.try_with(|slots| {
            if let Ok(mut slots) = slots.try_borrow_mut()
                && let Some(slot) = slots.get_mut(&self.key)
                && slot.generation == self.generation
                && let Some(isolate) = slot.isolate.as_mut()
            {
                isolate.forget(self.id);
            }
        });
    }
}

enum Begun {
    Done(Result<Answer, JsError>),
    /// No isolate before this instant (backing off after crashes); the
    /// call is handed back (boxed: a rare path, and the enum stays small).
    Later(Instant, Box<Call>),
    Pending {
        id: u64,
        generation: u64,
        wake: Arc<Notify>,
    },
}

/// One pool's isolate on one thread.
struct Slot {
    key: u64,
    spec: Arc<Spec>,
    modules: Arc<ModuleCache>,
    fetcher: Option<Arc<Fetcher>>,
    alive: Arc<AtomicBool>,
    isolate: Option<Isolate>,
    /// Counts isolates: a pending call of a replaced isolate is lost.
    generation: u64,
    /// Why the last isolate was replaced, for the calls it took with it.
    last_failure: Option<JsError>,
    next_id: u64,
    served: u64,
    crashes: u32,
    /// After repeated failures, no new isolate before this.
    retry_at: Option<Instant>,
    /// Pending calls wait on this; it fires whenever JavaScript has run.
    wake: Arc<Notify>,
    /// The timer driver waits on this besides its next timer.
    rearm: Arc<Notify>,
    driving: bool,
}

impl Slot {
    fn new(
        key: u64,
        spec: Arc<Spec>,
        modules: Arc<ModuleCache>,
        fetcher: Option<Arc<Fetcher>>,
        alive: Arc<AtomicBool>,
    ) -> Slot {
        Slot {
            key,
            spec,
            modules,
            fetcher,
            alive,
            isolate: None,
            generation: 0,
            last_failure: None,
            next_id: 0,
            served: 0,
            crashes: 0,
            retry_at: None,
            wake: Arc::new(Notify::new()),
            rearm: Arc::new(Notify::new()),
            driving: false,
        }
    }

    /// Starts `call`, unless the isolate is backing off.
    fn begin(&mut self, call: Call, deadline: Instant) -> Begun {
        let limits = &self.spec.limits;
        let rotate = limits.max_requests > 0 && self.served >= limits.max_requests;
        if rotate && self.isolate.as_ref().is_some_and(|i| i.pending() == 0) {
            tracing::debug!(target: "bext::js", source = %self.spec.name, served = self.served, "rotating the isolate");
            self.isolate = None;
        }
        if self.isolate.is_none() {
            if let Some(at) = self.retry_at.filter(|at| Instant::now() < *at) {
                return Begun::Later(at, Box::new(call));
            }
            match Isolate::new(&self.spec, &self.modules, self.fetcher.clone()) {
                Ok((isolate, _)) => {
                    isolate.wake_with(self.wake.clone());
                    self.isolate = Some(isolate);
                    self.generation += 1;
                    self.served = 0;
                    self.retry_at = None;
                }
                Err(e) => {
                    tracing::error!(target: "bext::js", source = %self.spec.name, "isolate failed to start again: {e}");
                    self.failed(e.clone());
                    return Begun::Done(Err(e));
                }
            }
        }
        // Answers of fetches that outlived their call (`waitUntil`).
        if let Err(e) = self.isolate.as_mut().expect("started above").deliver(limits.cpu_limit) {
            tracing::warn!(target: "bext::js", source = %self.spec.name, "replacing the isolate after a fetch's answer: {e}");
            self.failed(e.clone());
            return Begun::Done(Err(e));
        }
        let isolate = self.isolate.as_mut().expect("started above");
        if isolate.pending() >= limits.queue {
            return Begun::Done(Err(JsError::Overloaded));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.served += 1;
        let result = isolate.begin(id, call, deadline.min(Instant::now() + limits.cpu_limit));
        // A run cut off is reported with the limit that cut it.
        let result = result.map(|r| {
            r.map_err(|e| match e {
                JsError::Timeout(_) => JsError::Timeout(limits.cpu_limit.min(limits.timeout)),
                other => other,
            })
        });
        let begun = match result {
            Some(Err(e)) if e.is_fatal() => {
                tracing::warn!(target: "bext::js", source = %self.spec.name, "replacing the isolate after: {e}");
                self.failed(e.clone());
                Begun::Done(Err(e))
            }
            Some(result) => {
                self.crashes = 0;
                Begun::Done(result)
            }
            None => Begun::Pending {
                id,
                generation: self.generation,
                wake: self.wake.clone(),
            },
        };
        self.ran();
        begun
    }

    fn poll(&mut self, id: u64, generation: u64) -> Option<Result<Answer, JsError>> {
        // Answers of fetches first: they may settle this call, or others
        // (woken by `ran`), and may set timers.
        if self.generation == generation
            && let Some(isolate) = self.isolate.as_mut()
        {
            match isolate.deliver(self.spec.limits.cpu_limit) {
                Ok(true) => self.ran(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(target: "bext::js", source = %self.spec.name, "replacing the isolate after a fetch's answer: {e}");
                    self.failed(e);
                }
            }
        }
        match self.isolate.as_mut() {
            Some(isolate) if self.generation == generation => isolate.poll(id),
            _ => Some(Err(JsError::Exception(match &self.last_failure {
                Some(e) => format!("the isolate was replaced while this call waited, after: {e}"),
                None => "the isolate was replaced while this call waited".into(),
            }))),
        }
    }

    /// Fires due timers; a run past `cpu_limit` replaces the isolate.
    fn tick(&mut self) {
        let Some(isolate) = self.isolate.as_mut() else { return };
        if let Err(e) = isolate.tick(self.spec.limits.cpu_limit) {
            tracing::warn!(target: "bext::js", source = %self.spec.name, "replacing the isolate after a timer: {e}");
            self.failed(e);
        }
        self.ran();
    }

    /// When this isolate's next timer is due.
    fn next_due(&self) -> Option<Instant> {
        self.isolate.as_ref()?.next_due()
    }

    /// After JavaScript ran: wake the waiting calls, and make sure someone
    /// fires the timers it may have set.
    fn ran(&mut self) {
        if self.isolate.as_ref().is_some_and(|i| i.pending() > 0) {
            self.wake.notify_waiters();
        }
        if !self.isolate.as_ref().is_some_and(Isolate::timers_armed) {
            return;
        }
        if self.driving {
            self.rearm.notify_one();
        } else if let Ok(handle) = Handle::try_current() {
            self.driving = true;
            handle.spawn(drive(self.key, self.rearm.clone()));
        }
    }

    fn failed(&mut self, e: JsError) {
        self.isolate = None;
        self.last_failure = Some(e);
        self.crashes += 1;
        self.retry_at = (self.crashes > 1).then(|| Instant::now() + backoff_delay(self.crashes - 1));
        self.wake.notify_waiters();
    }
}

/// Fires one pool's timers on this thread until none is left.
async fn drive(key: u64, rearm: Arc<Notify>) {
    loop {
        let next = SLOTS.with_borrow_mut(|slots| {
            let slot = slots.get_mut(&key)?;
            let next = slot.next_due().filter(|_| slot.alive.load(Ordering::Acquire));
            if next.is_none() {
                slot.driving = false;
            }
            next
        });
        let Some(at) = next else { return };
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => {
                SLOTS.with_borrow_mut(|slots| {
                    if let Some(slot) = slots.get_mut(&key) {
                        slot.tick();
                    }
                });
            }
            () = rearm.notified() => {}
        }
    }
}
