//! Whether an app is in use, for `idle_stop`: requests in flight until
//! their response body is done, WebSocket tunnels while they are open,
//! and when the last of them ended. A long download or an open WebSocket
//! keeps an app awake as much as a stream of requests does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// An app's use: what is in flight, and since when nothing is.
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// When the last use ended (or began), in ms since `born`.
    last: AtomicU64,
    born: Instant,
}

/// One use of the app, counted until dropped.
pub(crate) struct Busy(Arc<Activity>);

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// Counts a use (a request, its response body, a tunnel) until the
    /// guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    fn touch(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Release);
    }

    /// How long nothing has used the app; `None` while something does.
    pub(crate) fn quiet_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Acquire));
        Some(self.born.elapsed().saturating_sub(last))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_while_a_guard_lives_quiet_after() {
        let a = Activity::new();
        let one = a.enter();
        let two = a.enter();
        assert_eq!(a.quiet_for(), None);
        drop(one);
        assert_eq!(a.quiet_for(), None, "one use left");
        drop(two);
        assert!(a.quiet_for().is_some_and(|d| d < Duration::from_secs(60)));
    }
}
