//! Where a JS app's bindings live: its KV namespaces (SQLite under the
//! data dir on one instance, the fleet's Redis in edge mode), its
//! `caches.default` (the isr plugin's store when the plugin is on for the
//! app, else memory) and its secrets (bext's environment).

mod cache;
mod isr;
mod redis;
mod sqlite;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bext_js::{Bindings, KvStore};

use crate::config::platform::AppConfig;

/// What an app's bindings are built from.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The platform's data dir (KV in SQLite: `kv.sqlite3` in it).
    pub data_dir: &'a Path,
    /// Edge mode's Redis (KV there instead).
    pub fleet: Option<&'a Arc<bext_edge::Edge>>,
    /// The pool plugins share values through (the isr plugin's caches).
    pub shared: &'a bext_plugin_abi::SharedPool,
    /// The limits of the isr plugin's cache for this app, when the plugin
    /// is on for it: `caches.default` is kept in that cache then.
    pub isr: Option<bext_plugin_isr::store::Limits>,
    /// Whether a JS app's module is checked after the server is up rather
    /// than before this returns: only the first start of `bext serve`, so
    /// that thousands of apps do not keep it from listening.
    pub defer_checks: bool,
}

/// The app whose KV namespaces app `id` reads and writes: a canary or a
/// pinned version (`app@v2`) is the app itself serving another version, so
/// it shares the app's data (what its visitors write is still there once
/// it is promoted or rolled back); a preview (`app~name`) is another app.
fn kv_owner(id: &str) -> &str {
    id.split_once('@').map_or(id, |(app, _)| app)
}

/// The KV namespaces and cache of app `id`.
pub(crate) fn for_app(id: &str, cfg: &AppConfig, sources: Sources<'_>) -> Result<Bindings, String> {
    let mut kv: Vec<(String, Arc<dyn KvStore>)> = Vec::with_capacity(cfg.kv.len());
    if !cfg.kv.is_empty() {
        let owner = kv_owner(id);
        match sources.fleet {
            Some(edge) => {
                for ns in &cfg.kv {
                    kv.push((ns.clone(), Arc::new(redis::RedisKv::new(edge.clone(), owner, ns))));
                }
            }
            None => {
                let db = sqlite::KvDb::open(sources.data_dir)?;
                for ns in &cfg.kv {
                    kv.push((ns.clone(), Arc::new(sqlite::SqliteKv::new(db.clone(), owner, ns))));
                }
            }
        }
    }
    let cache: Arc<dyn bext_js::CacheStore> = match sources.isr {
        Some(limits) => Arc::new(isr::IsrCache::new(sources.shared, id, limits)),
        None => Arc::new(cache::MemoryCache::new()),
    };
    Ok(Bindings { kv, cache: Some(cache) })
}

/// `env` with the app's secrets added, read from bext's environment now;
/// a secret that is not set fails the app's load, naming it.
pub(crate) fn env_with_secrets(cfg: &AppConfig) -> Result<BTreeMap<String, String>, String> {
    let mut env = cfg.env.clone();
    for name in &cfg.secrets {
        match std::env::var(name) {
            Ok(value) => {
                env.insert(name.clone(), value);
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("secrets: `{name}` is not set in bext's environment"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("secrets: `{name}` in bext's environment is not UTF-8"));
            }
        }
    }
    Ok(env)
}
