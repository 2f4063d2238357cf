//! When to renew and how long to wait after a failure. Pure functions of
//! the certificate's validity, the clock and a random number, so the
//! policy is tested without waiting.

use std::time::{Duration, SystemTime};

/// How failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// The wait after the first failure; it doubles after each next one.
    pub retry_first: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
}

impl Default for RenewalPolicy {
    /// One minute after a first failure, doubling up to six hours:
    /// Let's Encrypt's limits forgive that, and a 90-day certificate due
    /// at 30 days left gets over a hundred attempts before it expires.
    fn default() -> RenewalPolicy {
        RenewalPolicy {
            retry_first: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
        }
    }
}

/// The share of the lifetime by which the renewal time is spread, so that
/// certificates issued together are not all renewed at the same moment.
const JITTER_SHARE: u32 = 15;

/// When to renew a certificate valid from `not_before` to `not_after`:
/// when a third of its lifetime is left, moved earlier by up to a
/// fifteenth of the lifetime by `jitter` (a random number in `[0, 1)`).
/// A third is always left when it is due, whatever the jitter.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let early = (lifetime / JITTER_SHARE).mul_f64(jitter.clamp(0.0, 1.0));
    not_after.checked_sub(lifetime / 3 + early).unwrap_or(not_before)
}

/// How long to wait before the next attempt after `failures` failures in a
/// row (1 for the first): doubled each time up to the cap, then cut by up
/// to a half by `jitter` so retries from many names spread out.
pub fn retry_delay(policy: &RenewalPolicy, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let full = policy
        .retry_first
        .saturating_mul(1u32 << doublings)
        .min(policy.retry_max);
    full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
}

/// How long from `now` until `at` (zero if it is past).
pub fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

/// A random number in `[0, 1)` for the jitters.
pub fn jitter() -> f64 {
    // 53 random bits make every f64 in [0, 1) equally likely.
    (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn at(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * days as u32 + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn a_90_day_certificate_is_renewed_with_a_third_left_at_most_six_days_earlier() {
        let (nb, na) = (at(0), at(90));
        assert_eq!(renew_at(nb, na, 0.0), at(60));
        assert_eq!(renew_at(nb, na, 1.0), at(54));
        let mid = renew_at(nb, na, 0.5);
        assert!(mid < at(60) && mid > at(54));
        // Out-of-range jitter is clamped, never renews later than a third.
        assert_eq!(renew_at(nb, na, 7.0), at(54));
        assert_eq!(renew_at(nb, na, -1.0), at(60));
    }

    #[test]
    fn short_and_broken_validities_are_due_early_not_never() {
        let nb = at(10);
        let na = nb + Duration::from_secs(30);
        assert_eq!(renew_at(nb, na, 0.0), nb + Duration::from_secs(20));
        // notAfter before notBefore: due at once.
        assert_eq!(renew_at(at(10), at(9), 0.5), at(9));
        assert_eq!(until(at(5), at(4)), Duration::ZERO);
        assert_eq!(until(at(4), at(5)), DAY);
    }

    #[test]
    fn retries_double_up_to_the_cap_and_jitter_only_shortens() {
        let p = RenewalPolicy::default();
        let mins = |n: u32| retry_delay(&p, n, 0.0).as_secs() / 60;
        assert_eq!([mins(1), mins(2), mins(3), mins(4)], [1, 2, 4, 8]);
        assert_eq!(retry_delay(&p, 10, 0.0), Duration::from_secs(6 * 3600));
        assert_eq!(retry_delay(&p, u32::MAX, 0.0), Duration::from_secs(6 * 3600));
        assert_eq!(retry_delay(&p, 0, 0.0), Duration::from_secs(60));
        assert_eq!(retry_delay(&p, 1, 1.0), Duration::from_secs(30));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
