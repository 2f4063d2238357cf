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
pub(crate) fn fleet_for(
    redis: Option<&RedisSection>,
    previous: Option<&Pipeline>,
    shared: &[String],
) -> Option<Arc<Edge>> {
    let r = redis?;
    if let Some(p) = previous.filter(|p| p.platform.redis.as_ref() == Some(r)) {
        return p.fleet.clone();
    }
    match Edge::start(&r.url, &r.prefix) {
        Ok(edge) => {
            let from = if r.from_env { "REDIS_URL" } else { "[redis] url" };
            match shared.is_empty() {
                true => {
                    tracing::warn!(target: "bext::edge", prefix = %r.prefix, from, "edge mode: nothing is shared through redis: no app has a `cache` ([cache.isr]), `kv` or `rate_limit`, the isr and gateway plugins are off and there is no [platform.acme]; each instance runs alone")
                }
                false => {
                    tracing::info!(target: "bext::edge", prefix = %r.prefix, from, "edge mode: sharing {} through redis", shared.join(", "))
                }
            }
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

/// What instances share through `[redis]`, for the edge-mode log: the isr
/// cache, rate limits, KV namespaces and ACME certificates, each only when
/// something uses it, so a fleet sharing nothing is said to.
pub(crate) fn shared_through_redis(
    platform: &crate::config::platform::Platform,
    manifests: &[crate::config::manifest::Manifest],
) -> Vec<String> {
    let on = |name: &str| manifests.iter().any(|m| m.name == name && m.enabled);
    let apps = |has: fn(&crate::config::platform::AppConfig) -> bool| -> Vec<&str> {
        (platform.apps.iter())
            .filter(|(_, a)| has(a))
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let mut shared = Vec::new();
    for (what, plugin, ids) in [
        (
            "the isr cache and its invalidations",
            Some("isr"),
            apps(|a| a.cache.is_some()),
        ),
        ("rate limits", Some("gateway"), apps(|a| a.rate_limit.is_some())),
        ("KV namespaces", None, apps(|a| !a.kv.is_empty())),
    ] {
        if plugin.is_some_and(on) {
            shared.push(format!("{what} (every app)"));
        } else if !ids.is_empty() {
            shared.push(format!("{what} ({})", ids.join(", ")));
        }
    }
    if platform.settings.acme.is_some() {
        shared.push("ACME certificates".to_owned());
    }
    shared
}
