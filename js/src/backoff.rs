//! How long a crashing isolate waits before it is rebuilt, for both kinds
//! of pool (isolates on threads of their own, and inline ones).

use std::time::Duration;

/// Longest pause between two attempts to rebuild a crashing isolate.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first pause; each crash in a row doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// 10 ms, 20 ms, 40 ms ... up to 5 s: the pause before the `attempt`th
/// rebuild of a crashing isolate.
pub(crate) fn backoff_delay(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_10ms_up_to_5s() {
        assert_eq!(backoff_delay(1), Duration::from_millis(10));
        assert_eq!(backoff_delay(2), Duration::from_millis(20));
        assert_eq!(backoff_delay(4), Duration::from_millis(80));
        assert_eq!(backoff_delay(20), Duration::from_secs(5));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(5));
    }
}
