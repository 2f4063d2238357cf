//! One pool of JS threads for every app in `mode = "shared"`: the Workers
//! model, where thousands of mostly idle apps cost no thread of their own.
//!
//! QuickJS runtimes are bound to the thread that made them, so each pool
//! thread owns the isolates it built, for any number of apps; an app's
//! calls may run on any thread, each thread building the app's isolate on
//! its first call there. A thread drops an isolate idle for the app's
//! `idle_evict`, and its least recently used one when it holds
//! `isolates_per_thread` and needs another.
//!
//! Scheduling: each app has a queue, and the apps with work wait their turn
//! in one round-robin line; a thread takes one call from the app at the
//! front and puts the app back at the end. An app runs at most `workers`
//! calls at once, and never on every thread of the pool (at most all but
//! one): a handler that loops holds only the threads its app may use, and
//! the other apps keep the rest.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backoff::backoff_delay;
use crate::fetch::Fetcher;
use crate::isolate::{Isolate, THREAD_STACK};
use crate::modules::ModuleCache;
use crate::pool::{Counts, PoolStats, give_back_freed_memory};
use crate::{Answer, Call, Exports, JsError, Spec};

/// How big the shared pool is, read when its threads start (the first call
/// of a `shared` app): `[platform] js_threads` and `js_isolates_per_thread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSettings {
    /// JS threads of the pool; 0: one per CPU core.
    pub threads: usize,
    /// Isolates one thread keeps; building one more drops its least
    /// recently used.
    pub isolates_per_thread: usize,
}

impl SharedSettings {
    /// One thread per core, 256 isolates on each.
    pub const DEFAULT: SharedSettings = SharedSettings {
        threads: 0,
        isolates_per_thread: 256,
    };
}

static SETTINGS: Mutex<SharedSettings> = Mutex::new(SharedSettings::DEFAULT);
static POOL: OnceLock<Pool> = OnceLock::new();

/// Sets the shared pool's size. Only the settings in force when its
/// threads start count: a later change needs a restart.
pub fn configure_shared(settings: SharedSettings) {
    *SETTINGS.lock().unwrap_or_else(PoisonError::into_inner) = settings;
}

/// Tells apps apart on the pool's threads.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every thread needs to know of one app.
struct App {
    key: u64,
    spec: Arc<Spec>,
    modules: Arc<ModuleCache>,
    fetcher: Option<Arc<Fetcher>>,
    /// Calls of this app running at once, at most.
    limit: usize,
    /// The pool thread that last took a call of this app: woken first
    /// for its next one, so that the app keeps to the isolate it has.
    home: AtomicUsize,
    counts: Counts,
    /// Isolates of this app on all threads.
    isolates: AtomicU64,
    /// Isolates dropped after a limit, a crash or `max_requests`, not yet
    /// rebuilt: the next ones built count as restarts.
    to_rebuild: AtomicU64,
    /// Failures in a row, on any thread: the pause before the next build.
    crashes: AtomicU32,
    closed: AtomicBool,
}

struct Job {
    call: Call,
    reply: oneshot::Sender<Result<Answer, JsError>>,
}

/// One app's place in the scheduler.
struct Queue {
    app: Arc<App>,
    /// Calls of the app running at once, at most: its `workers`, and
    /// never every thread of the pool.
    limit: usize,
    jobs: VecDeque<Job>,
    running: usize,
    /// In the round-robin line.
    lined_up: bool,
    /// Failing again and again: no turn before this (its calls wait).
    not_before: Option<Instant>,
}

impl Queue {
    /// Whether the app should be in the line: it has work and room to run.
    fn wants_turn(&self) -> bool {
        !self.lined_up && !self.jobs.is_empty() && self.running < self.limit && self.not_before.is_none()
    }
}

#[derive(Default)]
struct Sched {
    queues: HashMap<u64, Queue>,
    /// Apps with work and room, in turn order.
    line: VecDeque<u64>,
    /// Apps paused after repeated failures, and until when.
    paused: Vec<(Instant, u64)>,
    /// Which pool threads wait for work (and were not woken yet).
    idle: Vec<bool>,
    /// Which pool threads run JavaScript (a call, or timers between
    /// calls); the others are idle or about to take the next call.
    busy: Vec<bool>,
}

impl Sched {
    /// Puts `key` at the end of the line if it wants a turn; true if so.
    fn line_up(&mut self, key: u64) -> bool {
        match self.queues.get_mut(&key) {
            Some(q) if q.wants_turn() => {
                q.lined_up = true;
                self.line.push_back(key);
                true
            }
            _ => false,
        }
    }

    /// Holds `key`'s calls back until `until`.
    fn pause(&mut self, key: u64, until: Instant) {
        if let Some(q) = self.queues.get_mut(&key) {
            q.not_before = Some(until);
            self.paused.push((until, key));
        }
    }

    /// Lines up the paused apps whose pause is over; returns when the next
    /// pause ends.
    fn resume(&mut self, now: Instant) -> Option<Instant> {
        let (over, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.paused)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.paused = still;
        for (_, key) in over {
            if let Some(q) = self.queues.get_mut(&key) {
                q.not_before = None;
            }
            self.line_up(key);
        }
        self.paused.iter().map(|(at, _)| *at).min()
    }

    /// The next call in turn, counted as running.
    fn take(&mut self) -> Option<(Arc<App>, Job)> {
        if !self.paused.is_empty() {
            self.resume(Instant::now());
        }
        while let Some(key) = self.line.pop_front() {
            let Some(q) = self.queues.get_mut(&key) else { continue };
            q.lined_up = false;
            let Some(job) = q.jobs.pop_front() else { continue };
            q.running += 1;
            let app = q.app.clone();
            self.line_up(key);
            return Some((app, job));
        }
        None
    }
}

/// The threads and their scheduler.
struct Pool {
    sched: Mutex<Sched>,
    /// One per thread, so that a call can wake its app's home thread.
    wakes: Vec<Condvar>,
    threads: usize,
    isolates_per_thread: usize,
}

impl Pool {
    /// Wakes `home` if it waits for work; leaves the call to it if it is
    /// about to take one; else wakes any waiting thread. Called under the
    /// scheduler's lock, for a call just lined up.
    fn wake(&self, sched: &mut Sched, home: usize) {
        let (idle, busy) = (&mut sched.idle, &sched.busy);
        let chosen = if idle.get(home) == Some(&true) {
            Some(home)
        } else if busy.get(home) == Some(&false) {
            None
        } else {
            idle.iter().position(|i| *i)
        };
        if let Some(t) = chosen {
            idle[t] = false; // woken: not counted on for the next call
            self.wakes[t].notify_one();
        }
    }
}

/// The pool, its threads started on first use.
fn pool() -> Result<&'static Pool, JsError> {
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    static STARTING: Mutex<()> = Mutex::new(());
    let _one = lock(&STARTING);
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let settings = *lock(&SETTINGS);
    let threads = match settings.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let pool = POOL.get_or_init(|| Pool {
        sched: Mutex::new(Sched {
            idle: vec![false; threads],
            busy: vec![false; threads],
            ..Sched::default()
        }),
        wakes: (0..threads).map(|_| Condvar::new()).collect(),
        threads,
        isolates_per_thread: settings.isolates_per_thread.max(1),
    });
    for i in 0..threads {
        let spawned = std::thread::Builder::new()
            .name(format!("bext-jsp-{i}"))
            .stack_size(THREAD_STACK)
            .spawn(move || serve(pool, i));
        if let Err(e) = spawned {
            tracing::error!(target: "bext::js", "cannot start shared JS thread {i}: {e}");
            if i == 0 {
                return Err(JsError::Load(format!("cannot start a shared JS thread: {e}")));
            }
        }
    }
    Ok(pool)
}

/// An app's or plugin's handle on the shared pool. Dropping it drops the
/// calls still queued, and each thread drops the app's isolates.
pub(crate) struct SharedApp {
    app: Arc<App>,
}

impl SharedApp {
    /// Loads the module once to check it; starts nothing else.
    pub(crate) fn start(spec: Spec) -> Result<(SharedApp, Exports), JsError> {
        let (fetcher, modules, exports) = crate::pool::load(&spec)?;
        let app = Arc::new(App {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            limit: spec.limits.workers.max(1),
            home: AtomicUsize::new(0),
            spec: Arc::new(spec),
            modules,
            fetcher,
            counts: Counts::default(),
            isolates: AtomicU64::new(0),
            to_rebuild: AtomicU64::new(0),
            crashes: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        });
        Ok((SharedApp { app }, exports))
    }

    /// Queues one call. A full queue is [`JsError::Overloaded`] at once.
    pub(crate) async fn call(&self, call: Call) -> Result<Answer, JsError> {
        let pool = pool()?;
        if self.app.closed.load(Ordering::Acquire) {
            return Err(JsError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut sched = lock(&pool.sched);
            let app = &self.app;
            let q = sched.queues.entry(app.key).or_insert_with(|| Queue {
                app: app.clone(),
                // Never every thread: the other apps keep one.
                limit: app.limit.min(pool.threads.saturating_sub(1).max(1)),
                jobs: VecDeque::new(),
                running: 0,
                lined_up: false,
                not_before: None,
            });
            if q.jobs.len() >= app.spec.limits.queue.max(1) {
                app.counts.overloaded.fetch_add(1, Ordering::Relaxed);
                return Err(JsError::Overloaded);
            }
            q.jobs.push_back(Job { call, reply });
            if sched.line_up(app.key) {
                pool.wake(&mut sched, app.home.load(Ordering::Relaxed));
            }
        }
        // As in threads mode, no timer here: the call's `timeout` starts
        // when a thread picks it up, so waiting behind a looping app is not
        // charged to this handler; the wait is bounded by the queue.
        answer.await.unwrap_or(Err(JsError::Closed))
    }

    /// The app's share of the pool, for `/__bext/metrics`.
    pub(crate) fn stats(&self) -> PoolStats {
        let (app, c) = (&self.app, &self.app.counts);
        let queued = POOL.get().map_or(0, |pool| {
            lock(&pool.sched).queues.get(&app.key).map_or(0, |q| q.jobs.len())
        });
        PoolStats {
            isolates: app.isolates.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            queued: queued as u64,
            restarts: c.restarts.load(Ordering::Relaxed),
            limit_kills: c.limit_kills.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
        }
    }
}

impl Drop for SharedApp {
    fn drop(&mut self) {
        self.app.closed.store(true, Ordering::Release);
        if let Some(pool) = POOL.get() {
            // Its queued calls are dropped (their callers get `Closed`);
            // threads drop its isolates when they next look.
            let queue = lock(&pool.sched).queues.remove(&self.app.key);
            drop(queue);
            pool.wakes.iter().for_each(Condvar::notify_all);
        }
    }
}

/// An isolate a thread holds for one app.
struct Held {
    app: Arc<App>,
    isolate: Isolate,
    last_used: Instant,
    served: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.app.isolates.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One pool thread: take the next call in turn, run it on this thread's
/// isolate of its app, and between calls fire timers, deliver fetch
/// answers and drop idle isolates.
fn serve(pool: &'static Pool, me: usize) {
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut next_look = Instant::now();
    loop {
        let taken = {
            let mut sched = lock(&pool.sched);
            let taken = sched.take();
            if let Some((app, _)) = &taken {
                app.home.store(me, Ordering::Relaxed);
            }
            // Between calls (timers, evictions) it counts as free: its
            // apps' calls wait for it rather than build isolates elsewhere.
            sched.busy[me] = taken.is_some();
            // More in line: wake another thread for it (a call queued
            // behind one already in line woke nobody).
            if taken.is_some()
                && let Some(next) = sched.line.front().and_then(|k| sched.queues.get(k))
            {
                let home = next.app.home.load(Ordering::Relaxed);
                pool.wake(&mut sched, home);
            }
            taken
        };
        let Some((app, job)) = taken else {
            next_look = look_after(&mut held);
            let mut sched = lock(&pool.sched);
            let now = Instant::now();
            let wake = sched.resume(now).map_or(next_look, |at| at.min(next_look));
            if sched.line.is_empty() {
                let wait = wake.saturating_duration_since(now);
                sched.idle[me] = true;
                let (mut sched, _) = (pool.wakes[me].wait_timeout(sched, wait)).unwrap_or_else(PoisonError::into_inner);
                sched.idle[me] = false;
            }
            continue;
        };
        run(pool, &mut held, &app, job);
        {
            let mut sched = lock(&pool.sched);
            if let Some(q) = sched.queues.get_mut(&app.key) {
                q.running -= 1;
            }
            sched.busy[me] = false;
            // Its next call is this thread's own next take (which wakes
            // another thread if more wait in line).
            sched.line_up(app.key);
        }
        if Instant::now() >= next_look {
            next_look = look_after(&mut held);
        }
    }
}

/// Runs one call on this thread's isolate of `app`, building it if needed.
fn run(pool: &Pool, held: &mut HashMap<u64, Held>, app: &Arc<App>, job: Job) {
    if job.reply.is_closed() {
        return; // the client went away while the call waited
    }
    let spec = &app.spec;
    if !held.contains_key(&app.key) {
        if held.len() >= pool.isolates_per_thread
            && let Some(lru) = held.values().min_by_key(|h| h.last_used).map(|h| h.app.key)
        {
            tracing::debug!(target: "bext::js", source = %spec.name, "dropping the least recently used isolate of this thread");
            held.remove(&lru);
        }
        let built = catch_unwind(AssertUnwindSafe(|| {
            Isolate::new(spec, &app.modules, app.fetcher.clone())
        }))
        .unwrap_or(Err(JsError::Crashed));
        match built {
            Ok((isolate, _)) => {
                app.isolates.fetch_add(1, Ordering::Relaxed);
                let rebuilt = app
                    .to_rebuild
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                if rebuilt.is_ok() {
                    app.counts.restarts.fetch_add(1, Ordering::Relaxed);
                }
                let h = Held {
                    app: app.clone(),
                    isolate,
                    last_used: Instant::now(),
                    served: 0,
                };
                held.insert(app.key, h);
            }
            Err(e) => {
                tracing::error!(target: "bext::js", source = %spec.name, "isolate failed to start: {e}");
                failed(pool, app);
                let _ = job.reply.send(Err(e));
                return;
            }
        }
    }
    let h = held.get_mut(&app.key).expect("built above");
    app.counts.busy.fetch_add(1, Ordering::Relaxed);
    let isolate = &mut h.isolate;
    // Answers of fetches its earlier calls left behind (`waitUntil`).
    let mut fatal = isolate.deliver(spec.limits.timeout).err();
    if fatal.is_some() {
        let _ = job.reply.send(Err(JsError::Exception(
            "the isolate was replaced before this call, after a fetch's answer".into(),
        )));
    } else {
        let result = catch_unwind(AssertUnwindSafe(|| isolate.call(job.call))).unwrap_or(Err(JsError::Crashed));
        fatal = result.as_ref().err().filter(|e| e.is_fatal()).cloned();
        let _ = job.reply.send(result);
        // A streamed body holds the thread until it ends (it counts in
        // the app's `workers`), as in threads mode.
        match catch_unwind(AssertUnwindSafe(|| isolate.pump())).unwrap_or(Err(JsError::Crashed)) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => fatal = Some(e),
            Err(e) => tracing::warn!(target: "bext::js", source = %spec.name, "response stream failed: {e}"),
        }
    }
    app.counts.busy.fetch_sub(1, Ordering::Relaxed);
    h.served += 1;
    h.last_used = Instant::now();
    if let Some(e) = fatal {
        if !matches!(e, JsError::Crashed) {
            app.counts.limit_kills.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(target: "bext::js", source = %spec.name, "replacing the isolate after: {e}");
        held.remove(&app.key);
        app.to_rebuild.fetch_add(1, Ordering::Relaxed);
        failed(pool, app);
        return;
    }
    app.crashes.store(0, Ordering::Relaxed);
    if spec.limits.max_requests > 0 && h.served >= spec.limits.max_requests {
        tracing::debug!(target: "bext::js", source = %spec.name, served = h.served, "rotating the isolate");
        held.remove(&app.key);
        app.to_rebuild.fetch_add(1, Ordering::Relaxed);
    }
}

/// One more failure in a row: from the second on, the app's calls wait
/// in its queue for a pause (10 ms, doubling up to 5 s) before the next
/// isolate is built, as a crashing thread backs off in threads mode, but
/// without holding a thread of the pool.
fn failed(pool: &Pool, app: &App) {
    let crashes = app.crashes.fetch_add(1, Ordering::Relaxed) + 1;
    if crashes > 1 {
        lock(&pool.sched).pause(app.key, Instant::now() + backoff_delay(crashes - 1));
    }
}

/// Longest a thread sleeps without looking at its isolates.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Drops isolates of closed apps and those idle for their `idle_evict`,
/// fires due timers and delivers fetch answers; returns when to look next.
fn look_after(held: &mut HashMap<u64, Held>) -> Instant {
    let now = Instant::now();
    let mut next = now + LOOK_EVERY;
    let before = held.len();
    held.retain(|_, h| {
        let limits = &h.app.spec.limits;
        if h.app.closed.load(Ordering::Acquire) {
            return false;
        }
        let outcome = h.isolate.deliver(limits.timeout).and_then(|_| match h.isolate.next_due() {
            Some(at) if at <= now => h.isolate.tick(limits.timeout).map(|_| ()),
            _ => Ok(()),
        });
        if let Err(e) = outcome {
            tracing::warn!(target: "bext::js", source = %h.app.spec.name, "replacing the isolate after a timer or a fetch's answer: {e}");
            h.app.to_rebuild.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let busy_later = h.isolate.timers_armed() || h.isolate.fetches_pending();
        if let Some(at) = h.isolate.next_due() {
            next = next.min(at);
        }
        // A run stops after a slice: what it left is for the next look.
        if h.isolate.answers_ready() {
            next = now;
        }
        let idle = limits.idle_evict;
        if idle.is_zero() || busy_later {
            return true;
        }
        let expires = h.last_used + idle;
        if expires <= now {
            tracing::debug!(target: "bext::js", source = %h.app.spec.name, "isolate evicted after {idle:?} idle");
            return false;
        }
        next = next.min(expires);
        true
    });
    if held.len() < before {
        give_back_freed_memory();
    }
    next
}
