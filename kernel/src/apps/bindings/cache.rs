//! `caches.default` in memory: a small LRU per app (its own, so apps
//! never see each other's entries), bounded in bytes, emptied when the
//! app is reloaded.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bext_js::{CacheStore, CachedResponse};

/// Bytes one app's cache may hold.
const CACHE_BYTES: u64 = 16 << 20;

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Arc<Stored>> for Weight {
    fn weight(&self, key: &String, val: &Arc<Stored>) -> u64 {
        let headers: usize = val.response.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        (key.len() + headers + val.response.body.len() + 64) as u64
    }
}

struct Stored {
    response: CachedResponse,
    until: Option<Instant>,
}

type Lru = quick_cache::sync::Cache<String, Arc<Stored>, Weight>;

/// One app's cache, made by its first `put`: an app that never caches
/// (most of 10,000 configured apps) holds no LRU (~320 bytes an app).
pub(crate) struct MemoryCache(OnceLock<Lru>);

impl MemoryCache {
    pub(crate) fn new() -> MemoryCache {
        MemoryCache(OnceLock::new())
    }

    fn lru(&self) -> &Lru {
        self.0.get_or_init(|| Lru::with_weighter(64, CACHE_BYTES, Weight))
    }
}

#[async_trait::async_trait]
impl CacheStore for MemoryCache {
    async fn get(&self, url: &str) -> Option<CachedResponse> {
        let lru = self.0.get()?;
        let stored = lru.get(url)?;
        if stored.until.is_some_and(|u| Instant::now() >= u) {
            lru.remove(url);
            return None;
        }
        Some(stored.response.clone())
    }

    async fn put(&self, url: &str, response: CachedResponse, ttl: Option<Duration>) {
        let until = ttl.map(|t| Instant::now() + t);
        self.lru().insert(url.to_owned(), Arc::new(Stored { response, until }));
    }

    async fn delete(&self, url: &str) -> bool {
        self.0.get().is_some_and(|lru| lru.remove(url).is_some())
    }
}
