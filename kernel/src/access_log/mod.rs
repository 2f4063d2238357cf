//! The dedicated access log of `[platform] access_log = { ... }`: a line
//! per request (JSON or nginx's combined). The worker only queues the
//! request's facts ([`Record`]: numbers, shared names, the head's bytes)
//! in a bounded buffer; a thread of its own dates, formats and writes them
//! in batches, so neither formatting nor a slow disk delays a request. A
//! full buffer drops the line and counts it
//! (`bext_access_log_dropped_lines_total`). SIGUSR1 reopens the file
//! (logrotate's `postrotate`).

mod format;
mod writer;

use std::sync::Arc;

pub use format::{Head, Record, TraceId, time_parts};
pub use writer::{AccessLog, close_all, record, reopen_all};

/// Where a request's access log line goes (the pipeline's, by its
/// `[platform] access_log`).
#[derive(Clone, Default)]
pub enum Sink {
    /// Nowhere.
    #[default]
    Off,
    /// A `bext::access` event in the error log.
    ErrorLog,
    /// A dedicated log.
    Dedicated(Arc<AccessLog>),
}

impl Sink {
    /// Whether requests are logged.
    pub fn is_on(&self) -> bool {
        !matches!(self, Sink::Off)
    }

    /// Whether lines are JSON: only they carry the trace id, the cache
    /// status, the app's names, the upstream time and the WAF verdict, so
    /// combined lines spare the worker those lookups.
    pub fn is_json(&self) -> bool {
        matches!(self, Sink::Dedicated(l) if matches!(l.format(), crate::config::platform::AccessLogFormat::Json))
    }
}
