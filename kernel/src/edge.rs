//! Edge mode for the process: one connection to the fleet's Redis, made
//! when the first pipeline is initialised and lent to plugins through
//! [`bext_plugin_abi::Host::service`]. A later reload with another
//! `[redis]` keeps the first (a warning says so): changing Redis needs a
//! restart.

use std::sync::{Arc, OnceLock};

use bext_edge::Edge;

use crate::config::platform::RedisSection;

static EDGE: OnceLock<Option<(RedisSection, Arc<Edge>)>> = OnceLock::new();

/// The process's edge connection, started on first use from `redis`.
pub fn edge_for(redis: Option<&RedisSection>) -> Option<Arc<Edge>> {
    let started = EDGE.get_or_init(|| {
        let r = redis?;
        match Edge::start(&r.url, &r.prefix) {
            Ok(edge) => {
                tracing::info!(target: "bext::edge", prefix = %r.prefix, "edge mode: sharing cache and invalidation through redis");
                Some((r.clone(), edge))
            }
            Err(e) => {
                tracing::error!(target: "bext::edge", error = %e, "edge mode off");
                None
            }
        }
    });
    if let Some((first, _)) = started
        && redis.is_some_and(|r| r != first)
    {
        tracing::warn!(target: "bext::edge", "a changed [redis] section takes effect after a restart");
    }
    started.as_ref().map(|(_, e)| e.clone())
}

/// The edge connection, if one was started (for health).
pub fn current() -> Option<Arc<Edge>> {
    EDGE.get().and_then(|e| e.as_ref()).map(|(_, e)| e.clone())
}
