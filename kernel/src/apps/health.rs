//! Active health checks of a proxy app's backends: each backend gets a
//! `GET <path>` on a fresh connection every `interval`; `unhealthy`
//! failures in a row take it down, `healthy` successes in a row bring it
//! back. The checker holds its app's backends weakly and ends when the
//! app is gone (a reload that changed it).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use super::upstreams::{Backend, Upstreams};
use crate::config::upstream::HealthCheck;

/// Starts checking `upstreams` on the current Tokio runtime.
pub(crate) fn spawn(upstreams: &Arc<Upstreams>, check: HealthCheck) {
    tokio::spawn(run(Arc::downgrade(upstreams), check));
}

async fn run(upstreams: Weak<Upstreams>, check: HealthCheck) {
    // Successes (positive) or failures (negative) in a row, by address.
    let mut streaks: HashMap<Box<str>, i64> = HashMap::new();
    loop {
        let Some(set) = upstreams.upgrade().map(|u| u.current()) else {
            return;
        };
        let mut probes = tokio::task::JoinSet::new();
        for (i, backend) in set.list.iter().enumerate() {
            let (backend, check) = (backend.clone(), check.clone());
            probes.spawn(async move { (i, probe(&backend, &check).await) });
        }
        while let Some(Ok((i, outcome))) = probes.join_next().await {
            let backend = &set.list[i];
            let streak = streaks.entry(backend.pool.addr().into()).or_default();
            *streak = match (outcome.is_ok(), *streak > 0) {
                (true, true) => *streak + 1,
                (true, false) => 1,
                (false, false) => *streak - 1,
                (false, true) => -1,
            };
            let down = backend.down.load(Relaxed);
            if !down && *streak <= -i64::from(check.unhealthy) {
                let reason = outcome.err().unwrap_or_default();
                tracing::warn!(upstream = %backend.pool.addr(), %reason, "upstream down by its health check");
                backend.down.store(true, Relaxed);
            } else if down && *streak >= i64::from(check.healthy) {
                tracing::info!(upstream = %backend.pool.addr(), "upstream up by its health check");
                backend.down.store(false, Relaxed);
                backend.succeeded();
            }
        }
        streaks.retain(|addr, _| set.list.iter().any(|b| b.pool.addr() == &**addr));
        drop(set);
        tokio::time::sleep(check.interval).await;
    }
}

/// One check: `Ok` for a 2xx or 3xx answer within the timeout.
async fn probe(backend: &Backend, check: &HealthCheck) -> Result<(), String> {
    let path = format!("{}{}", backend.base_path, check.path);
    let attempt = async {
        let status = backend.pool.check(&path).await.map_err(|e| e.to_string())?;
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)))
}
