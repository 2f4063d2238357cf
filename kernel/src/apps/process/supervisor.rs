//! One instance's life: start it, wait until it is ready, route to it
//! while its `ready` check keeps passing, and when it ends on its own
//! start it again after a backoff (`restart.backoff`, 100 ms, doubling to
//! `restart.max_backoff`, 30 s), until it fails `restart.crash_loop.
//! restarts` times (5) within `restart.crash_loop.within` (60 s): a bug
//! any client can trigger (a thrown error that ends the process) must not
//! leave the app down until an operator acts, and a few starts a minute
//! is no fork storm. Then it rests for `crash_pause`, with the reason in
//! the log and the admin API (the app answers 503 with that
//! `Retry-After`), and tries again; a reload or deploy starts it at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Running, child, limits, logs, ready};

/// An instance up this long had a good run: its failures are forgotten.
const STABLE: Duration = Duration::from_secs(30);
/// How often a ready instance is checked again (the `ready` check).
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Failed checks in a row that take a ready instance out of rotation; one
/// passing check puts it back.
const UNHEALTHY_AFTER: u32 = 3;

/// How one run of an instance ended.
enum Ended {
    /// bext stopped it.
    Stopped,
    /// It failed: exited, or never got ready.
    Failed(String),
}

/// Runs instance `index` of `run` until `stop` says so (or it crash-loops).
pub(super) async fn supervise(run: Arc<Running>, index: usize, mut stop: Stop) {
    let spec = &run.spec;
    let slot = &run.slots[index];
    let app = &*spec.app;
    let policy = spec.cfg.restart;
    let mut backoff = policy.backoff;
    let mut failures: VecDeque<Instant> = VecDeque::new();
    loop {
        if stop.is_set() {
            return;
        }
        let applied = run.limits.for_run(index);
        let spawned = applied
            .as_ref()
            .map_err(|e| format!("cannot make its cgroup: {e}"))
            .and_then(|applied| child::spawn(spec, index, &slot.at, applied).map_err(|e| cannot_start(spec, &e)));
        let reason = match spawned {
            Err(reason) => {
                if let Ok(applied) = &applied {
                    applied.remove().await;
                }
                reason
            }
            Ok(mut instance) => {
                slot.starts.fetch_add(1, Ordering::Relaxed);
                slot.pid.store(instance.pid, Ordering::Relaxed);
                let what = format!("started pid {} on {}", instance.pid, slot.at);
                tracing::info!(
                    app,
                    instance = index,
                    pid = instance.pid,
                    on = %slot.at,
                    "instance started"
                );
                run.logs.event(app, index, &what);
                for stream in [
                    instance
                        .child
                        .stdout
                        .take()
                        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                    instance.child.stderr.take().map(|s| Box::new(s) as _),
                ]
                .into_iter()
                .flatten()
                {
                    tokio::spawn(logs::pump(stream, run.logs.clone(), spec.app.clone(), index));
                }
                let started = Instant::now();
                let ended = run_once(&run, index, &mut instance, &mut stop).await;
                run.set_ready(index, false);
                slot.pid.store(0, Ordering::Relaxed);
                let applied = applied.as_ref().ok();
                let out_of_memory = applied.is_some_and(limits::Applied::out_of_memory);
                if let Some(applied) = applied {
                    applied.remove().await;
                }
                match ended {
                    Ended::Stopped => return,
                    Ended::Failed(reason) => {
                        let reason = match (out_of_memory, spec.cfg.limits.and_then(|l| l.memory)) {
                            (true, Some(max)) => format!(
                                "{reason}: killed by the kernel for passing its memory limit ({} bytes)",
                                max.0
                            ),
                            _ => reason,
                        };
                        if started.elapsed() >= STABLE {
                            failures.clear();
                            backoff = policy.backoff;
                        }
                        reason
                    }
                }
            }
        };
        let now = Instant::now();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.crash_loop.within)
        {
            failures.pop_front();
        }
        if failures.len() >= policy.crash_loop.restarts as usize {
            let why = format!(
                "crash loop: failed {} times within {}s, the last: {reason}; trying again in {}s (or at a reload or deploy)",
                failures.len(),
                policy.crash_loop.within.as_secs_f64(),
                spec.cfg.crash_pause.as_secs_f64()
            );
            tracing::error!(app, instance = index, "{why}");
            run.logs.event(app, index, &why);
            *slot.gave_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            tokio::select! {
                () = tokio::time::sleep(spec.cfg.crash_pause) => {}
                () = stop.wait() => return,
            }
            *slot.gave_up.lock().unwrap_or_else(|p| p.into_inner()) = None;
            failures.clear();
            backoff = policy.backoff;
            continue;
        }
        let what = format!("{reason}; restarting in {backoff:?}");
        tracing::warn!(app, instance = index, "{what}");
        run.logs.event(app, index, &what);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.wait() => return,
        }
        backoff = backoff.saturating_mul(2).min(policy.max_backoff);
    }
}

/// Why an instance could not start, worded for the usual cause: a
/// program that is not on the `PATH` it gets (a typo, a tool not
/// installed), or a path to one that does not exist in `source`.
fn cannot_start(spec: &super::Spec, e: &std::io::Error) -> String {
    let (program, dir) = (&spec.command[0], spec.dir.display());
    if e.kind() != std::io::ErrorKind::NotFound {
        return format!("cannot start `{program}` in {dir}: {e}");
    }
    if program.contains('/') {
        return format!("cannot start `{program}`: no such file (relative to {dir})");
    }
    let path = (spec.env.get("PATH").cloned())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    format!(
        "cannot start `{program}`: no program of that name on PATH ({path}); install it or give its full path in `command`"
    )
}

/// One run of a started instance: until it is ready, then until it ends.
async fn run_once(run: &Running, index: usize, instance: &mut child::Instance, stop: &mut Stop) -> Ended {
    enum Event {
        Ready(Result<(), ready::NotReady>),
        Exited(String),
        Stop,
    }
    let spec = &run.spec;
    let slot = &run.slots[index];
    let app = &*spec.app;
    let limit = spec.ready.timeout;
    let first = tokio::select! {
        outcome = ready::wait(&slot.at, spec.ready.path.as_deref(), limit) => {
            slot.checked(&outcome);
            Event::Ready(outcome)
        }
        status = instance.child.wait() => Event::Exited(exit_reason(status)),
        () = stop.wait() => Event::Stop,
    };
    match first {
        Event::Ready(Ok(())) => {}
        Event::Ready(Err(_)) => {
            child::stop(instance, spec.stop_timeout).await;
            return Ended::Failed(format!(
                "not ready after {}s: {}",
                limit.as_secs_f32(),
                slot.why_not_ready()
            ));
        }
        Event::Exited(reason) => {
            child::clean_up_after(instance.pid);
            return Ended::Failed(reason);
        }
        Event::Stop => return graceful(run, index, instance).await,
    }
    run.set_ready(index, true);
    tracing::info!(app, instance = index, on = %slot.at, "instance ready");
    run.logs.event(app, index, "ready");
    let then = tokio::select! {
        status = instance.child.wait() => Event::Exited(exit_reason(status)),
        () = stop.wait() => Event::Stop,
        () = watch_health(run, index) => Event::Stop,
    };
    run.set_ready(index, false);
    match then {
        Event::Exited(reason) => {
            child::clean_up_after(instance.pid);
            Ended::Failed(reason)
        }
        _ => graceful(run, index, instance).await,
    }
}

/// Runs the `ready` check on a ready instance every [`HEALTH_EVERY`]: one
/// that stops answering (a server stuck but alive) is out of rotation
/// after [`UNHEALTHY_AFTER`] failures in a row, and back at the first
/// pass. Never returns.
async fn watch_health(run: &Running, index: usize) {
    let (spec, slot) = (&run.spec, &run.slots[index]);
    let app = &*spec.app;
    let mut failed = 0;
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        let outcome = ready::probe(&slot.at, spec.ready.path.as_deref()).await;
        slot.checked(&outcome);
        if outcome.is_ok() {
            if failed >= UNHEALTHY_AFTER {
                tracing::info!(
                    app,
                    instance = index,
                    "instance passes its check again: back in rotation"
                );
                run.logs.event(app, index, "passes its check again: back in rotation");
                run.set_ready(index, true);
            }
            failed = 0;
            continue;
        }
        failed += 1;
        if failed == UNHEALTHY_AFTER {
            // Said before it is done, so whoever sees it out of rotation
            // finds the reason already written.
            let what = format!(
                "failed its check {UNHEALTHY_AFTER} times in a row: out of rotation ({})",
                slot.why_not_ready()
            );
            tracing::warn!(app, instance = index, "{what}");
            run.logs.event(app, index, &what);
            run.set_ready(index, false);
        }
    }
}

/// Stops an instance because bext asked (reload, deploy, exit).
async fn graceful(run: &Running, index: usize, instance: &mut child::Instance) -> Ended {
    let (app, grace) = (&*run.spec.app, run.spec.stop_timeout);
    let what = if child::stop(instance, grace).await {
        format!(
            "stopped: SIGKILL after stop_timeout ({}s) as SIGTERM did not end it",
            grace.as_secs_f32()
        )
    } else {
        "stopped by SIGTERM".to_owned()
    };
    tracing::info!(app, instance = index, "{what}");
    run.logs.event(app, index, &what);
    Ended::Stopped
}

/// What tells one run's supervisors to stop: the app's generation moved
/// on (its instances stop for want of traffic, `idle_stop`) or the app
/// stops for good ([`super::STOPPED`]).
pub(super) struct Stop {
    pub(super) rx: watch::Receiver<u64>,
    pub(super) generation: u64,
}

impl Stop {
    fn is_set(&self) -> bool {
        *self.rx.borrow() != self.generation
    }

    /// Resolves once the supervisors must stop (or the sender is gone).
    async fn wait(&mut self) {
        while *self.rx.borrow_and_update() == self.generation {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => format!("exited ({s})"),
        Err(e) => format!("lost: {e}"),
    }
}
