//! The background task: removes expired previews, and promotes or rolls
//! back canaries with automatic decisions ([`CanaryPlan`]'s
//! `auto_promote_after` and `max_error_rate`) from the traffic this
//! instance counted.
//!
//! [`CanaryPlan`]: crate::registry::CanaryPlan

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::canary::{Canary, VersionStats};
use crate::error::DeployError;
use crate::registry::{CanaryRecord, Registry};
use crate::shared::Shared;
use crate::unix_now;

/// Requests a canary must have served before its error rate is judged.
const MIN_REQUESTS: u64 = 20;
/// How often automatic promotions and rollbacks are considered.
const AUTO_EVERY: Duration = Duration::from_secs(1);

/// What to do with a canary now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Its 5xx rate went over its `max_error_rate`.
    Rollback,
    /// Its `auto_promote_after` has passed and it is not failing.
    Promote,
}

/// The automatic decision on canary `r`, its version having served `seen`,
/// at Unix time `now`; `None`: wait.
fn verdict(r: &CanaryRecord, seen: &VersionStats, now: u64) -> Option<Verdict> {
    let failing = r
        .max_error_rate
        .is_some_and(|max| seen.requests >= MIN_REQUESTS && seen.error_rate > max);
    let due = r.auto_promote_after.is_some_and(|after| now >= r.started_at + after);
    if failing {
        Some(Verdict::Rollback)
    } else if due {
        Some(Verdict::Promote)
    } else {
        None
    }
}

/// Considers automatic decisions until the plugin instance is gone.
pub(crate) async fn decide_forever(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(AUTO_EVERY).await;
        let Some(shared) = shared.upgrade() else { return };
        decide(&shared).await;
    }
}

/// One look at expired previews and at every canary with automatic
/// decisions.
async fn decide(shared: &Shared) {
    let now = unix_now();
    if shared.next_expiry.load(Ordering::Relaxed) <= now {
        match shared.with_registry(move |r| r.prune_previews(now)).await {
            Ok(_) => {
                if let Err(e) = shared.changed().await {
                    tracing::error!(target: "bext::deploy", "after removing expired previews: {e}");
                }
            }
            Err(e) => tracing::error!(target: "bext::deploy", "removing expired previews failed: {e}"),
        }
    }
    for canary in shared.canaries.load().values() {
        let r = &canary.record;
        let seen = canary.stats[Canary::CANARY].snapshot();
        let Some(verdict) = verdict(r, &seen, now) else {
            continue;
        };
        let (app, version, started) = (r.app.clone(), r.version.clone(), r.started_at);
        // An instance on its way out (after a reload) may still look:
        // act only on the canary the registry runs now.
        let still = move |reg: &Registry| -> Result<bool, DeployError> {
            Ok(reg
                .canary(&app)?
                .is_some_and(|c| c.version == version && c.started_at == started))
        };
        let (app, version) = (r.app.clone(), r.version.clone());
        let why = match verdict {
            Verdict::Rollback => format!(
                "auto-rollback of canary {version}: 5xx rate {:.1}% over {:.1}% ({} of {} requests)",
                seen.error_rate * 100.0,
                r.max_error_rate.unwrap_or(0.0) * 100.0,
                seen.errors,
                seen.requests
            ),
            Verdict::Promote => format!(
                "auto-promote of canary {version}: 5xx rate {:.1}% after {} s ({} requests)",
                seen.error_rate * 100.0,
                now - r.started_at,
                seen.requests
            ),
        };
        let result = shared
            .with_registry(move |reg| {
                if still(reg)? {
                    reg.log(&app, &why)?;
                    match verdict {
                        Verdict::Rollback => drop(reg.rollback(&app, "auto")?),
                        Verdict::Promote => drop(reg.promote(&app, None, "auto")?),
                    }
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                if let Err(e) = shared.changed().await {
                    tracing::error!(target: "bext::deploy", app = %r.app, "after an automatic decision: {e}");
                }
            }
            Err(e) => tracing::error!(target: "bext::deploy", app = %r.app, "automatic decision failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(auto_promote_after: Option<u64>, max_error_rate: Option<f64>) -> CanaryRecord {
        CanaryRecord {
            app: "shop".into(),
            version: "v2".into(),
            path: "/d/v2".into(),
            share: 10,
            started_at: 1000,
            auto_promote_after,
            max_error_rate,
        }
    }

    fn seen(requests: u64, errors: u64) -> VersionStats {
        VersionStats::of(requests, errors, requests * 1000)
    }

    #[test]
    fn a_canary_without_automatic_decisions_waits() {
        assert_eq!(verdict(&canary(None, None), &seen(1000, 1000), u64::MAX / 2), None);
    }

    #[test]
    fn it_is_promoted_once_its_time_has_passed() {
        let c = canary(Some(60), Some(0.1));
        assert_eq!(verdict(&c, &seen(100, 1), 1059), None);
        assert_eq!(verdict(&c, &seen(100, 1), 1060), Some(Verdict::Promote));
        // Its rate at the limit is not over it.
        assert_eq!(verdict(&c, &seen(100, 10), 1060), Some(Verdict::Promote));
    }

    #[test]
    fn it_is_rolled_back_over_its_rate_once_it_served_enough() {
        let c = canary(Some(60), Some(0.1));
        assert_eq!(
            verdict(&c, &seen(MIN_REQUESTS - 1, MIN_REQUESTS - 1), 1060),
            Some(Verdict::Promote)
        );
        assert_eq!(verdict(&c, &seen(MIN_REQUESTS, 3), 1001), Some(Verdict::Rollback));
        // Failing wins over due.
        assert_eq!(verdict(&c, &seen(MIN_REQUESTS, 3), 5000), Some(Verdict::Rollback));
        assert_eq!(
            verdict(&canary(None, Some(0.0)), &seen(MIN_REQUESTS, 1), 1000),
            Some(Verdict::Rollback)
        );
    }
}
