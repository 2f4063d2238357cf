//! The audit log: every decision the WAF takes, in a bounded ring buffer
//! readable at `GET /__bext/waf/events`, and as a log line.
//!
//! One log per process, shared by every instance of the plugin (per-app
//! configurations build separate instances), so the endpoint shows all
//! apps' decisions and a reload keeps the history.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The request id (as in the access log and error pages).
    pub request_id: String,
    /// `block`, `detect`, `deny_ip`, `rate_limit`, `challenge` or `bot`.
    pub action: &'static str,
    /// The client address the decision was about.
    pub client_ip: String,
    /// Request method.
    pub method: String,
    /// Host header.
    pub host: String,
    /// Request path (at most 200 bytes).
    pub path: String,
    /// App the request was routed to.
    pub app: Option<String>,
    /// Rule id, when a rule decided.
    pub rule: Option<&'static str>,
    /// Rule family.
    pub category: Option<&'static str>,
    /// Where the match was (`arg`, `header`, `path`...).
    pub part: Option<&'static str>,
    /// The argument, header or cookie name.
    pub name: Option<String>,
    /// Start of the matching value, as the rule saw it.
    pub sample: Option<String>,
}

/// A bounded, newest-last list of events.
pub struct AuditLog {
    events: Mutex<VecDeque<Event>>,
    capacity: AtomicUsize,
}

/// The process-wide audit log.
pub static AUDIT: LazyLock<AuditLog> = LazyLock::new(|| AuditLog {
    events: Mutex::new(VecDeque::new()),
    capacity: AtomicUsize::new(1000),
});

impl AuditLog {
    /// Sets how many events are kept (the newest configuration wins).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
    }

    /// Records an event, dropping the oldest beyond capacity.
    pub fn push(&self, event: Event) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        while events.len() >= capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The newest `limit` events, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().rev().take(limit).cloned().collect()
    }
}

/// Seconds since the epoch, for event times.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            time: n,
            request_id: n.to_string(),
            action: "block",
            client_ip: "127.0.0.1".into(),
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            app: None,
            rule: None,
            category: None,
            part: None,
            name: None,
            sample: None,
        }
    }

    #[test]
    fn keeps_only_the_newest() {
        let log = AuditLog {
            events: Mutex::new(VecDeque::new()),
            capacity: AtomicUsize::new(3),
        };
        for n in 0..5 {
            log.push(event(n));
        }
        let times: Vec<u64> = log.recent(10).iter().map(|e| e.time).collect();
        assert_eq!(times, vec![4, 3, 2]);
        assert_eq!(log.recent(1).len(), 1);
    }
}
