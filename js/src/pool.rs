//! The isolate pool callers see, and its default runner: isolates on
//! threads of their own behind one bounded queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use tokio::sync::oneshot;

use crate::backoff::backoff_delay;
use crate::inline::InlinePool;
use crate::isolate::{Isolate, THREAD_STACK};
use crate::{Answer, Call, Exports, JsError, Mode, Spec};

struct Job {
    call: Call,
    reply: oneshot::Sender<Result<Answer, JsError>>,
}

/// Isolates for one app or plugin, run as its [`Mode`] says. A module that
/// does not load is an error at start, never on a request.
pub struct IsolatePool {
    runner: Runner,
    exports: Exports,
}

enum Runner {
    Threads(Threads),
    Inline(InlinePool),
}

impl IsolatePool {
    /// Starts the pool: loads the module, and for [`Mode::Threads`] starts
    /// the isolate threads.
    pub fn start(spec: Spec) -> Result<IsolatePool, JsError> {
        let (runner, exports) = match spec.limits.mode {
            Mode::Threads => Threads::start(spec).map(|(t, e)| (Runner::Threads(t), e))?,
            Mode::Inline => InlinePool::start(spec).map(|(p, e)| (Runner::Inline(p), e))?,
        };
        Ok(IsolatePool { runner, exports })
    }

    /// The hooks the module exports.
    pub fn exports(&self) -> Exports {
        self.exports
    }

    /// What the pool is doing, for `/__bext/metrics`; `None` for an
    /// inline pool (its isolates run on the callers' threads).
    pub fn stats(&self) -> Option<PoolStats> {
        match &self.runner {
            Runner::Threads(t) => Some(t.stats()),
            Runner::Inline(_) => None,
        }
    }

    /// Runs one call. Too many calls waiting is [`JsError::Overloaded`] at
    /// once.
    pub async fn call(&self, call: Call) -> Result<Answer, JsError> {
        match &self.runner {
            Runner::Threads(t) => t.call(call).await,
            Runner::Inline(p) => p.call(call).await,
        }
    }
}

/// Isolates on threads of their own. Calls are answered in order of
/// arrival by whichever isolate is free; dropping the pool stops its
/// threads once they finish the call in hand.
struct Threads {
    tx: Sender<Job>,
    closed: Arc<AtomicBool>,
    workers: usize,
    counts: Arc<Counts>,
}

/// What a thread pool counts as it goes.
#[derive(Debug, Default)]
struct Counts {
    busy: AtomicU64,
    restarts: AtomicU64,
    limit_kills: AtomicU64,
    overloaded: AtomicU64,
}

/// A pool's state and counts since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Isolate threads.
    pub isolates: u64,
    /// Isolates running a call now.
    pub busy: u64,
    /// Calls waiting for an isolate.
    pub queued: u64,
    /// Isolates built again (after a crash, a limit, or `max_requests`).
    pub restarts: u64,
    /// Calls stopped by a limit (time or memory), whose isolate was replaced.
    pub limit_kills: u64,
    /// Calls refused because the queue was full.
    pub overloaded: u64,
}

impl Threads {
    /// Starts the threads and waits until every isolate has loaded the
    /// module, so that a broken module is an error here, not later.
    fn start(spec: Spec) -> Result<(Threads, Exports), JsError> {
        let workers = spec.limits.workers.max(1);
        let (tx, rx) = crossbeam_channel::bounded(spec.limits.queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let closed = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let fetcher = crate::fetch::fetcher_for(&spec.limits.fetch)?;
        let spec = Arc::new(spec);
        for i in 0..workers {
            let (spec, rx, ready, closed) = (spec.clone(), rx.clone(), ready_tx.clone(), closed.clone());
            let (fetcher, counts) = (fetcher.clone(), counts.clone());
            std::thread::Builder::new()
                .name(format!("bext-js-{i}"))
                .stack_size(THREAD_STACK)
                .spawn(move || work(&spec, fetcher.as_ref(), &rx, ready, &closed, &counts))
                .map_err(|e| JsError::Load(format!("cannot start an isolate thread: {e}")))?;
        }
        drop(ready_tx);
        let mut exports = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(e)) => exports = Some(e),
                Ok(Err(e)) => {
                    closed.store(true, Ordering::Release);
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        let exports = exports.ok_or_else(|| JsError::Load("the isolate threads stopped while starting".into()))?;
        Ok((
            Threads {
                tx,
                closed,
                workers,
                counts,
            },
            exports,
        ))
    }

    fn stats(&self) -> PoolStats {
        let c = &self.counts;
        PoolStats {
            isolates: self.workers as u64,
            busy: c.busy.load(Ordering::Relaxed),
            queued: self.tx.len() as u64,
            restarts: c.restarts.load(Ordering::Relaxed),
            limit_kills: c.limit_kills.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
        }
    }

    /// Runs one call. A full queue is [`JsError::Overloaded`] at once.
    async fn call(&self, call: Call) -> Result<Answer, JsError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Job { call, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.overloaded.fetch_add(1, Ordering::Relaxed);
                return Err(JsError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => return Err(JsError::Closed),
        }
        // No timer here: the isolate bounds the call by its deadline, which
        // starts when an isolate picks the call up. Time spent waiting for
        // an isolate is not the handler's: a handler that loops must not
        // make the innocent calls queued behind it time out. The wait is
        // bounded by the queue's length (a full queue is refused at once)
        // and by the client, whose call is skipped if it went away. A pool
        // that stops drops its calls, which closes the channel.
        answer.await.unwrap_or(Err(JsError::Closed))
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// One isolate thread: build, serve, rebuild after a crash or after
/// `max_requests`, until the pool is dropped.
fn work(
    spec: &Spec,
    fetcher: Option<&Arc<crate::fetch::Fetcher>>,
    rx: &Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<Exports, JsError>>,
    closed: &AtomicBool,
    counts: &Counts,
) {
    let mut ready = Some(ready);
    let mut crashes: u32 = 0;
    while !closed.load(Ordering::Acquire) {
        let mut isolate = match Isolate::new(spec, fetcher.cloned()) {
            Ok((isolate, exports)) => {
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok(exports));
                    }
                    None => {
                        counts.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                isolate
            }
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                crashes += 1;
                tracing::error!(target: "bext::js", source = %spec.name, "isolate failed to start again: {e}");
                backoff(crashes, closed);
                continue;
            }
        };
        let mut served: u64 = 0;
        let mut next_timer = None;
        loop {
            // Fetches still in flight after their call answered (say, in
            // `ctx.waitUntil`): their answers are handed to JavaScript as
            // they arrive, between calls.
            let woken = if isolate.fetches_pending() {
                match wait_for_answer(rx, &isolate, next_timer) {
                    Wake::Answer => {
                        if let Err(e) = isolate.deliver(spec.limits.timeout) {
                            crashes += 1;
                            tracing::warn!(target: "bext::js", source = %spec.name, "replacing the isolate after a fetch's answer: {e}");
                            break;
                        }
                        next_timer = isolate.next_due();
                        continue;
                    }
                    // Another isolate may have taken the call: never block
                    // here while answers may arrive.
                    Wake::Job => match rx.try_recv() {
                        Ok(job) => Some(job),
                        Err(TryRecvError::Empty) => continue,
                        Err(TryRecvError::Disconnected) => return,
                    },
                    Wake::Timer => None,
                }
            } else {
                None
            };
            let job = match (woken, next_timer) {
                (Some(job), _) => job,
                (None, Some(at)) => match rx.recv_deadline(at) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => match isolate.tick(spec.limits.timeout) {
                        Ok(next) => {
                            next_timer = next;
                            continue;
                        }
                        Err(e) => {
                            crashes += 1;
                            tracing::warn!(target: "bext::js", source = %spec.name, "replacing the isolate after a timer: {e}");
                            break;
                        }
                    },
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                (None, None) => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            if job.reply.is_closed() {
                continue; // the client went away while the call waited
            }
            counts.busy.fetch_add(1, Ordering::Relaxed);
            let result = catch_unwind(AssertUnwindSafe(|| isolate.call(job.call)))
                .unwrap_or_else(|_| Err(JsError::Exception("internal error in the JavaScript engine".into())));
            let mut fatal = result.as_ref().err().filter(|e| e.is_fatal()).cloned();
            let _ = job.reply.send(result);
            // A streamed body: this isolate sends it before taking another
            // call (it counts in the app's `workers` until it ends).
            match catch_unwind(AssertUnwindSafe(|| isolate.pump()))
                .unwrap_or_else(|_| Err(JsError::Exception("internal error in the JavaScript engine".into())))
            {
                Ok(()) => {}
                Err(e) if e.is_fatal() => fatal = Some(e),
                Err(e) => tracing::warn!(target: "bext::js", source = %spec.name, "response stream failed: {e}"),
            }
            counts.busy.fetch_sub(1, Ordering::Relaxed);
            served += 1;
            if let Some(e) = fatal {
                counts.limit_kills.fetch_add(1, Ordering::Relaxed);
                crashes += 1;
                tracing::warn!(target: "bext::js", source = %spec.name, "replacing the isolate after: {e}");
                break;
            }
            crashes = 0;
            if spec.limits.max_requests > 0 && served >= spec.limits.max_requests {
                tracing::debug!(target: "bext::js", source = %spec.name, served, "rotating the isolate");
                break;
            }
            next_timer = isolate.next_due();
        }
        drop(isolate);
        if crashes > 1 {
            backoff(crashes - 1, closed);
        }
    }
}

/// What woke an isolate thread that has fetches in flight.
enum Wake {
    /// A fetch's answer arrived.
    Answer,
    /// A call is waiting (or the queue closed): take it as usual.
    Job,
    /// The next timer is due.
    Timer,
}

/// Waits for a call, a fetch's answer or the next timer, consuming none.
fn wait_for_answer(rx: &Receiver<Job>, isolate: &Isolate, next_timer: Option<Instant>) -> Wake {
    if isolate.answers_ready() {
        return Wake::Answer; // one already taken off the channel, held for delivery
    }
    let answers = isolate.fetch_answers();
    let mut select = crossbeam_channel::Select::new();
    let job = select.recv(rx);
    let answer = select.recv(answers);
    let ready = match next_timer {
        Some(at) => select.ready_deadline(at),
        None => Ok(select.ready()),
    };
    match ready {
        Ok(i) if i == answer => Wake::Answer,
        Ok(i) => {
            debug_assert_eq!(i, job);
            Wake::Job
        }
        Err(_) => Wake::Timer,
    }
}

/// Sleeps `backoff_delay`, waking early on shutdown.
fn backoff(attempt: u32, closed: &AtomicBool) {
    let until = Instant::now() + backoff_delay(attempt);
    while Instant::now() < until && !closed.load(Ordering::Acquire) {
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
}
