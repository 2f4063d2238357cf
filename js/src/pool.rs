//! The isolate pool callers see, and its default runner: isolates on
//! threads of their own behind one bounded queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::oneshot;

use crate::backoff::backoff_delay;
use crate::inline::InlinePool;
use crate::isolate::{Isolate, THREAD_STACK};
use crate::modules::ModuleCache;
use crate::shared::SharedApp;
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
    Shared(SharedApp),
}

impl IsolatePool {
    /// Starts the pool: loads the module once to check it. Isolates start
    /// on the first call ([`Mode::Threads`]: on their threads; inline: on
    /// each HTTP worker).
    pub fn start(spec: Spec) -> Result<IsolatePool, JsError> {
        let (runner, exports) = match spec.limits.mode {
            Mode::Threads => Threads::start(spec).map(|(t, e)| (Runner::Threads(t), e))?,
            Mode::Inline => InlinePool::start(spec).map(|(p, e)| (Runner::Inline(p), e))?,
            Mode::Shared => SharedApp::start(spec).map(|(s, e)| (Runner::Shared(s), e))?,
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
            Runner::Shared(s) => Some(s.stats()),
            Runner::Inline(_) => None,
        }
    }

    /// Runs one call. Too many calls waiting is [`JsError::Overloaded`] at
    /// once.
    pub async fn call(&self, call: Call) -> Result<Answer, JsError> {
        match &self.runner {
            Runner::Threads(t) => t.call(call).await,
            Runner::Inline(p) => p.call(call).await,
            Runner::Shared(s) => s.call(call).await,
        }
    }
}

/// Isolates on threads of their own. Calls are answered in order of
/// arrival by whichever isolate is free. No thread or isolate exists until
/// the first call; a thread whose isolate served nothing for `idle_evict`
/// stops, and a later call starts it again. Dropping the pool stops its
/// threads once they finish the call in hand.
struct Threads {
    spec: Arc<Spec>,
    modules: Arc<ModuleCache>,
    fetcher: Option<Arc<crate::fetch::Fetcher>>,
    /// The queue, made by the first call: an idle app holds no channel
    /// (~0.5 KiB an app: crossbeam pads its ends to cache lines). Its
    /// receiver is held here so that the queue stays open while no
    /// thread runs.
    queue: OnceLock<(Sender<Job>, Receiver<Job>)>,
    /// Threads running. Changed only under this lock, with the queue
    /// checked in the same section, so a thread that stops for idleness
    /// and a call that needs one cannot miss each other.
    live: Arc<Mutex<usize>>,
    closed: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

/// What a thread pool counts as it goes.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) busy: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) limit_kills: AtomicU64,
    pub(crate) overloaded: AtomicU64,
}

/// A pool's state and counts since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Isolates running now (none before the first call and after an
    /// `idle_evict`): in threads mode one per thread; shared, the app's
    /// isolates on all the pool's threads.
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
    /// Loads the module once, in an isolate built and dropped on a loader
    /// thread, so that a broken module is an error here, not on the first
    /// request. Starts no isolate thread.
    fn start(spec: Spec) -> Result<(Threads, Exports), JsError> {
        let (fetcher, modules, exports) = crate::pool::load(&spec)?;
        let threads = Threads {
            spec: Arc::new(spec),
            modules,
            fetcher,
            queue: OnceLock::new(),
            live: Arc::new(Mutex::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
            counts: Arc::new(Counts::default()),
        };
        Ok((threads, exports))
    }

    fn stats(&self) -> PoolStats {
        let c = &self.counts;
        PoolStats {
            isolates: *self.live.lock().unwrap_or_else(PoisonError::into_inner) as u64,
            busy: c.busy.load(Ordering::Relaxed),
            queued: self.queue.get().map_or(0, |(tx, _)| tx.len()) as u64,
            restarts: c.restarts.load(Ordering::Relaxed),
            limit_kills: c.limit_kills.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
        }
    }

    /// Runs one call. A full queue is [`JsError::Overloaded`] at once.
    async fn call(&self, call: Call) -> Result<Answer, JsError> {
        let (reply, answer) = oneshot::channel();
        // Unbounded in the channel, bounded here: a bounded channel
        // allocates every slot up front (256 calls, ~79 KiB an app before
        // any traffic), a list channel a block at a time as calls come.
        let (tx, rx) = self.queue.get_or_init(crossbeam_channel::unbounded);
        // Checked, then sent: callers racing past the check at once can
        // add one call each over `queue` (at most one per HTTP worker).
        if tx.len() >= self.spec.limits.queue.max(1) {
            self.counts.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(JsError::Overloaded);
        }
        if tx.send(Job { call, reply }).is_err() {
            return Err(JsError::Closed);
        }
        self.staff(rx)?;
        // No timer here: the isolate bounds the call by its deadline, which
        // starts when an isolate picks the call up. Time spent waiting for
        // an isolate is not the handler's: a handler that loops must not
        // make the innocent calls queued behind it time out. The wait is
        // bounded by the queue's length (a full queue is refused at once),
        // by the module's evaluation limit on a cold start, and by the
        // client, whose call is skipped if it went away. A pool that stops
        // drops its calls, which closes the channel.
        answer.await.unwrap_or(Err(JsError::Closed))
    }

    /// Starts threads until `workers` run. Called after a call is queued.
    fn staff(&self, rx: &Receiver<Job>) -> Result<(), JsError> {
        let workers = self.spec.limits.workers.max(1);
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        while *live < workers {
            // Counted from when the thread runs: a closure dropped because
            // the thread could not start must not uncount (nor lock `live`,
            // held here).
            let mut seat = Seat {
                live: self.live.clone(),
                counted: false,
            };
            let (spec, rx, closed) = (self.spec.clone(), rx.clone(), self.closed.clone());
            let modules = self.modules.clone();
            let (fetcher, counts) = (self.fetcher.clone(), self.counts.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("bext-js-{}", *live))
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    seat.counted = true;
                    work(&spec, &modules, fetcher.as_ref(), &rx, seat, &closed, &counts);
                });
            match spawned {
                Ok(_) => *live += 1,
                Err(e) if *live == 0 => {
                    return Err(JsError::Load(format!("cannot start an isolate thread: {e}")));
                }
                Err(e) => {
                    tracing::warn!(target: "bext::js", source = %self.spec.name, "cannot start another isolate thread: {e}");
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A module to check on the loader thread, and where to say how it went.
type Probe = (
    Arc<Spec>,
    Arc<ModuleCache>,
    std::sync::mpsc::Sender<Result<Exports, JsError>>,
);

/// What every runner needs before its first call: the app's outbound
/// client, its module files read once, and the module checked.
pub(crate) type Loaded = (Option<Arc<crate::fetch::Fetcher>>, Arc<ModuleCache>, Exports);

/// Loads `spec` for a runner ([`Loaded`]); a broken module is an error
/// here, not on some request.
pub(crate) fn load(spec: &Spec) -> Result<Loaded, JsError> {
    let fetcher = crate::fetch::fetcher_for(&spec.limits.fetch)?;
    let modules = ModuleCache::for_spec(spec)?;
    let exports = probe(spec, &modules)?;
    Ok((fetcher, modules, exports))
}

/// Checks the module: once for apps with the same code and settings
/// ([`crate::shared_check`]), else in an isolate of its own.
pub(crate) fn probe(spec: &Spec, modules: &Arc<ModuleCache>) -> Result<Exports, JsError> {
    crate::shared_check::check(spec, modules, || probe_alone(spec, modules))
}

/// Builds the module's isolate on the one loader thread, and drops it.
/// One long-lived thread for every app's check: its allocator arena is
/// reused from one module to the next, where a thread per check would
/// leave each check's freed heap behind in an arena of its own.
fn probe_alone(spec: &Spec, modules: &Arc<ModuleCache>) -> Result<Exports, JsError> {
    static LOADER: Mutex<Option<Sender<Probe>>> = Mutex::new(None);
    let (reply, answer) = std::sync::mpsc::channel();
    let job: Probe = (Arc::new(spec.clone()), modules.clone(), reply);
    {
        let mut loader = LOADER.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = match loader.as_ref() {
            Some(tx) => tx.clone(),
            None => loader.insert(start_loader()?).clone(),
        };
        if let Err(crossbeam_channel::SendError(job)) = tx.send(job) {
            // The thread ended: start another.
            let tx = loader.insert(start_loader()?);
            tx.send(job)
                .map_err(|_| JsError::Load("the loader thread stopped".into()))?;
        }
    }
    answer
        .recv()
        .unwrap_or_else(|_| Err(JsError::Load("the loader thread stopped".into())))
}

/// Starts the loader thread.
fn start_loader() -> Result<Sender<Probe>, JsError> {
    let (tx, rx) = crossbeam_channel::unbounded::<Probe>();
    std::thread::Builder::new()
        .name("bext-js-load".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            for (spec, modules, reply) in rx {
                let checked = catch_unwind(AssertUnwindSafe(|| Isolate::new(&spec, &modules, None)))
                    .unwrap_or_else(|_| Err(JsError::Load("the module crashed the loader".into())));
                let _ = reply.send(checked.map(|(_, exports)| exports));
            }
        })
        .map_err(|e| JsError::Load(format!("cannot start the loader thread: {e}")))?;
    Ok(tx)
}

/// An isolate thread's place in `live`: given up when the thread stops
/// for idleness, or when it ends any other way (even by a panic).
struct Seat {
    live: Arc<Mutex<usize>>,
    counted: bool,
}

impl Seat {
    /// Gives the place up unless a call is waiting; true if given up.
    fn leave_if_idle(&mut self, rx: &Receiver<Job>) -> bool {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if !rx.is_empty() {
            return false;
        }
        *live -= 1;
        self.counted = false;
        true
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if self.counted {
            *self.live.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        }
    }
}

/// One isolate thread: build, serve, rebuild after a crash or after
/// `max_requests`, until the pool is dropped or nothing came for
/// `idle_evict`.
fn work(
    spec: &Spec,
    modules: &Arc<ModuleCache>,
    fetcher: Option<&Arc<crate::fetch::Fetcher>>,
    rx: &Receiver<Job>,
    mut seat: Seat,
    closed: &AtomicBool,
    counts: &Counts,
) {
    let mut crashes: u32 = 0;
    let mut first = true;
    while !closed.load(Ordering::Acquire) {
        let mut isolate = match Isolate::new(spec, modules, fetcher.cloned()) {
            Ok((isolate, _)) => {
                if !std::mem::replace(&mut first, false) {
                    counts.restarts.fetch_add(1, Ordering::Relaxed);
                }
                isolate
            }
            Err(e) => {
                crashes += 1;
                tracing::error!(target: "bext::js", source = %spec.name, "isolate failed to start: {e}");
                // The calls waiting for it fail now rather than wait out
                // the backoff.
                while let Ok(job) = rx.try_recv() {
                    let _ = job.reply.send(Err(e.clone()));
                }
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
                (None, None) => match next_job(rx, spec.limits.idle_evict) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) if seat.leave_if_idle(rx) => {
                        tracing::debug!(target: "bext::js", source = %spec.name, "isolate evicted after {:?} idle", spec.limits.idle_evict);
                        drop(isolate);
                        give_back_freed_memory();
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            if job.reply.is_closed() {
                continue; // the client went away while the call waited
            }
            counts.busy.fetch_add(1, Ordering::Relaxed);
            let result = catch_unwind(AssertUnwindSafe(|| isolate.call(job.call))).unwrap_or(Err(JsError::Crashed));
            let mut fatal = result.as_ref().err().filter(|e| e.is_fatal()).cloned();
            let _ = job.reply.send(result);
            // A streamed body: this isolate sends it before taking another
            // call (it counts in the app's `workers` until it ends).
            match catch_unwind(AssertUnwindSafe(|| isolate.pump())).unwrap_or(Err(JsError::Crashed)) {
                Ok(()) => {}
                Err(e) if e.is_fatal() => fatal = Some(e),
                Err(e) => tracing::warn!(target: "bext::js", source = %spec.name, "response stream failed: {e}"),
            }
            counts.busy.fetch_sub(1, Ordering::Relaxed);
            served += 1;
            if let Some(e) = fatal {
                if !matches!(e, JsError::Crashed) {
                    counts.limit_kills.fetch_add(1, Ordering::Relaxed);
                }
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

/// Waits for a call, at most `idle` (zero: for ever): a timeout is an
/// isolate that served nothing for `idle_evict`.
fn next_job(rx: &Receiver<Job>, idle: Duration) -> Result<Job, RecvTimeoutError> {
    if idle.is_zero() {
        rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
    } else {
        rx.recv_timeout(idle)
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

/// Returns the heap an evicted isolate freed to the system. QuickJS
/// allocates with the C library's `malloc`, whose per-thread arenas keep
/// freed pages mapped: without this, a thousand apps touched once and
/// evicted would keep their RSS (bench/js-many.sh).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn give_back_freed_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` has no preconditions: it releases
    // free memory at the top of each arena and whole free pages inside
    // them, under the arenas' own locks.
    unsafe {
        malloc_trim(0);
    }
}

/// Other C libraries: nothing to ask.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn give_back_freed_memory() {}

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
