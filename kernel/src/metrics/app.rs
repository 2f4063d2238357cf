//! The per-app counters a request updates once, when its response ends:
//! relaxed atomics in a fixed array (no lock, no map lookup, no label
//! hashing on the request's way), summed into labels only when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;

/// Methods counted by name; any other is `other`, so a client cannot
/// create label values.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "other",
];

/// Status classes, `1xx` to `5xx`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds (seconds) of the request duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, for the request's way.
const BUCKET_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// `method`'s place in [`METHODS`].
pub fn method_index(method: &Method) -> u8 {
    // The common ones first: most requests compare once.
    if *method == Method::GET {
        0
    } else if *method == Method::HEAD {
        1
    } else if *method == Method::POST {
        2
    } else if *method == Method::PUT {
        3
    } else if *method == Method::DELETE {
        4
    } else if *method == Method::OPTIONS {
        5
    } else if *method == Method::PATCH {
        6
    } else if *method == Method::CONNECT {
        7
    } else if *method == Method::TRACE {
        8
    } else {
        9
    }
}

/// One app's traffic since the process started (it survives reloads: the
/// kernel's [`super::Metrics`] keeps it by app id).
#[derive(Debug, Default)]
pub struct AppCounters {
    /// Requests by `[status class][method]`.
    requests: [[AtomicU64; METHODS.len()]; STATUS_CLASSES.len()],
    /// Requests per duration bucket (not cumulative; one more for `+Inf`).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// Sum of durations, in microseconds.
    duration_us: AtomicU64,
    /// Response body bytes written.
    response_bytes: AtomicU64,
    /// Request body bytes read (by the app or a plugin).
    request_bytes: AtomicU64,
}

impl AppCounters {
    /// Counts a finished response.
    pub fn record(&self, method: u8, status: u16, duration: Duration, response_bytes: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let method = usize::from(method).min(METHODS.len() - 1);
        self.requests[class][method].fetch_add(1, Ordering::Relaxed);
        let us = duration.as_micros() as u64;
        let bucket = BUCKET_US.iter().position(|&b| us <= b).unwrap_or(BUCKET_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_us.fetch_add(us, Ordering::Relaxed);
        if response_bytes > 0 {
            self.response_bytes.fetch_add(response_bytes, Ordering::Relaxed);
        }
    }

    /// Counts request body bytes read.
    pub fn read(&self, bytes: u64) {
        self.request_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Request body bytes read.
    pub fn request_bytes(&self) -> u64 {
        self.request_bytes.load(Ordering::Relaxed)
    }

    /// Requests of a status class (`0` = 1xx) and method index.
    pub fn requests(&self, class: usize, method: usize) -> u64 {
        self.requests[class][method].load(Ordering::Relaxed)
    }

    /// The histogram as `prometheus-client`'s encoder wants it: sum
    /// (seconds), count, and each bucket's own count (it writes them
    /// cumulative).
    pub fn durations(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        for (i, count) in self.buckets.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            total += count;
            buckets.push((DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), count));
        }
        let sum = self.duration_us.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, total, buckets)
    }

    /// Response body bytes written.
    pub fn response_bytes(&self) -> u64 {
        self.response_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_classes_are_bounded() {
        let c = AppCounters::default();
        let odd = Method::from_bytes(b"BREW").unwrap();
        c.record(method_index(&Method::GET), 200, Duration::from_micros(700), 10);
        c.record(method_index(&odd), 404, Duration::from_secs(60), 0);
        c.record(method_index(&Method::PATCH), 999, Duration::ZERO, 5);
        c.record(method_index(&Method::PATCH), 0, Duration::ZERO, 0);
        assert_eq!(c.requests(1, 0), 1);
        assert_eq!(c.requests(3, 9), 1, "BREW is `other`");
        assert_eq!(c.requests(4, 6), 1, "999 counts as 5xx");
        assert_eq!(c.requests(0, 6), 1, "0 counts as 1xx");
        assert_eq!(c.response_bytes(), 15);
        let (sum, count, buckets) = c.durations();
        assert_eq!(count, 4);
        assert!((sum - 60.0007).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.0005, 2), "two zero durations");
        assert_eq!(buckets[1], (0.001, 1), "700 µs");
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)), "a minute is only in +Inf");
    }
}
