//! Edge mode: the connection to the fleet's Redis, lent to plugins as
//! plugin-abi's [`bext_plugin_abi::Fleet`]. The pipeline owns it and hands
//! it on to the next pipeline while `[redis]` stays the same; a reload
//! with another `[redis]` connects anew, and the old connection closes
//! with the last pipeline that holds it.

use std::sync::Arc;

use bext_edge::Edge;

use super::Pipeline;
use crate::config::platform::RedisSection;

/// The fleet's store for a pipeline built from `redis`: the one of
/// `previous` when its `[redis]` is the same, else a new connection
/// (made lazily: bext serves while Redis is down). Must run inside the
/// tokio runtime.
pub(crate) fn fleet_for(redis: Option<&RedisSection>, previous: Option<&Pipeline>) -> Option<Arc<Edge>> {
    let r = redis?;
    if let Some(p) = previous.filter(|p| p.platform.redis.as_ref() == Some(r)) {
        return p.fleet.clone();
    }
    match Edge::start(&r.url, &r.prefix) {
        Ok(edge) => {
            let from = if r.from_env { "REDIS_URL" } else { "[redis] url" };
            tracing::info!(target: "bext::edge", prefix = %r.prefix, from, "edge mode: sharing cache and invalidation through redis");
            Some(edge)
        }
        Err(e) => {
            tracing::error!(target: "bext::edge", error = %e, "edge mode off");
            None
        }
    }
}

/// What plugin instances built for `redis` depend on: part of their key,
/// so a changed `[redis]` builds them anew and their `on_init` sees the
/// new store.
pub(crate) fn instance_key(redis: Option<&RedisSection>) -> String {
    redis.map_or_else(String::new, |r| format!("{}\0{}", r.url, r.prefix))
}
