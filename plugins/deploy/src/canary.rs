//! A running canary as the request path sees it: the share of new visitors
//! it takes, and the traffic of both versions, which the automatic
//! decisions (`auto.rs`) and `GET {base}/apps/{id}` read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::registry::CanaryRecord;

/// A running canary: what the registry records, and its counts.
pub(crate) struct Canary {
    pub(crate) record: CanaryRecord,
    /// The hidden app serving the canary version.
    pub(crate) target: String,
    /// The cookie that keeps a visitor on one version.
    pub(crate) cookie: String,
    /// Counts new visitors, to give the canary exactly its share.
    pub(crate) visitors: AtomicU64,
    /// The traffic of each version, by [`Canary::STABLE`] and
    /// [`Canary::CANARY`]; kept while the same canary goes on.
    pub(crate) stats: Arc<[Stats; 2]>,
    /// The app's current version, which the other visitors get.
    pub(crate) stable_version: String,
}

impl Canary {
    /// The current version's place in [`Canary::stats`].
    pub(crate) const STABLE: usize = 0;
    /// The canary version's place in [`Canary::stats`].
    pub(crate) const CANARY: usize = 1;

    /// Whether the `n`th new visitor goes to the canary: `n × φ mod 1`
    /// spreads evenly, so any run of visitors gets the share to within a
    /// visitor or two.
    pub(crate) fn takes(&self, n: u64) -> bool {
        takes(self.record.share, n)
    }
}

/// Whether the `n`th new visitor goes to a canary of `share` percent.
fn takes(share: u8, n: u64) -> bool {
    const PHI: f64 = 0.618_033_988_749_894_9;
    ((n as f64) * PHI).fract() * 100.0 < f64::from(share)
}

/// Requests, 5xx answers and time spent, per version of a canaried app.
#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl Stats {
    /// Counts one answer.
    pub(crate) fn record(&self, status: StatusCode, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts so far, with their rates.
    pub(crate) fn snapshot(&self) -> VersionStats {
        let requests = self.requests.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let micros = self.micros.load(Ordering::Relaxed);
        VersionStats::of(requests, errors, micros)
    }
}

/// A version's traffic since its canary started (or since the server did).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct VersionStats {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Mean time to the response head, in milliseconds.
    pub mean_ms: f64,
}

impl VersionStats {
    /// From the counts: `requests`, of which `errors`, taking `micros` in
    /// all; both rates are 0 before the first request.
    pub(crate) fn of(requests: u64, errors: u64, micros: u64) -> VersionStats {
        let per_request = |n: u64| if requests == 0 { 0.0 } else { n as f64 / requests as f64 };
        VersionStats {
            requests,
            errors,
            error_rate: per_request(errors),
            mean_ms: per_request(micros) / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_run_of_new_visitors_gets_the_share_to_within_two() {
        for share in [0u8, 1, 10, 25, 50, 90, 100] {
            for start in [0u64, 7, 1000, 123_456] {
                for len in [10u64, 100, 1000, 10_000] {
                    let taken = (start..start + len).filter(|&n| takes(share, n)).count() as f64;
                    let expected = len as f64 * f64::from(share) / 100.0;
                    assert!(
                        (taken - expected).abs() <= 2.0 + 1e-9,
                        "share {share}%, visitors {start}..+{len}: {taken} taken"
                    );
                }
            }
        }
        assert!((0..1000).all(|n| !takes(0, n)));
        assert!((0..1000).all(|n| takes(100, n)));
    }

    #[test]
    fn stats_count_5xx_and_mean_time() {
        let stats = Stats::default();
        assert_eq!(
            stats.snapshot(),
            VersionStats {
                requests: 0,
                errors: 0,
                error_rate: 0.0,
                mean_ms: 0.0
            }
        );
        stats.record(StatusCode::OK, Duration::from_millis(2));
        stats.record(StatusCode::NOT_FOUND, Duration::from_millis(4));
        stats.record(StatusCode::BAD_GATEWAY, Duration::from_millis(6));
        stats.record(StatusCode::INTERNAL_SERVER_ERROR, Duration::from_millis(8));
        let seen = stats.snapshot();
        assert_eq!((seen.requests, seen.errors), (4, 2));
        assert!((seen.error_rate - 0.5).abs() < 1e-12);
        assert!((seen.mean_ms - 5.0).abs() < 1e-9);
    }
}
