//! `caches.default` in the isr plugin's store, for a JS app the isr
//! plugin is on for: its entries share the app's cache budget
//! (`max_entries`, `max_bytes`) and go with the isr admin endpoints'
//! invalidations by path, by tag (`Cache-Tag`, `x-bext-tags`) and by app.
//! They are kept under keys of their own (`cache-api:<url>`), which a
//! request's key never is, so isr never answers a request with them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bext_js::{CacheStore, CachedResponse};
use bext_plugin_isr::policy::Freshness;
use bext_plugin_isr::store::{AppCache, CACHES_KEY, Caches, Entry, Limits, State};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// How long an entry stored without `max-age` stays fresh (until the
/// cache needs the room, in practice).
const NO_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// One app's `caches.default` in the isr store.
pub(crate) struct IsrCache {
    caches: Arc<Caches>,
    app: String,
    limits: Limits,
}

impl IsrCache {
    /// The store of `app` in the pool's isr caches (the table the isr
    /// plugin's instances share), with the app's isr `limits`.
    pub(crate) fn new(shared: &bext_plugin_abi::SharedPool, app: &str, limits: Limits) -> IsrCache {
        IsrCache {
            caches: shared.get_or_make(CACHES_KEY, Caches::default),
            app: app.to_owned(),
            limits,
        }
    }

    /// The app's cache as the isr plugin holds it now (its limits may have
    /// changed since this app was built), else one with ours.
    fn cache(&self) -> Arc<AppCache> {
        match self.caches.caches(Some(&self.app)).into_iter().next() {
            Some((_, c)) => c,
            None => self.caches.cache_for(&self.app, self.limits),
        }
    }
}

fn key(url: &str) -> String {
    format!("cache-api:{url}")
}

#[async_trait::async_trait]
impl CacheStore for IsrCache {
    async fn get(&self, url: &str) -> Option<CachedResponse> {
        let e = self.cache().get(&key(url))?;
        if e.state(Instant::now()) != State::Fresh {
            return None;
        }
        Some(CachedResponse {
            status: e.status.as_u16(),
            headers: e
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: e.body.clone(),
        })
    }

    async fn put(&self, url: &str, response: CachedResponse, ttl: Option<Duration>) {
        let mut headers = HeaderMap::with_capacity(response.headers.len());
        for (n, v) in &response.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                headers.append(n, v);
            }
        }
        let Ok(status) = StatusCode::from_u16(response.status) else {
            return;
        };
        let etag = headers
            .get(http::header::ETAG)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("\"cache-api\""));
        let path = url
            .parse::<http::Uri>()
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let entry = Entry {
            status,
            tags: bext_plugin_isr::tags_of(&headers),
            headers,
            body: response.body,
            etag,
            stored: Instant::now(),
            freshness: Freshness {
                ttl: ttl.unwrap_or(NO_LIMIT),
                swr: Duration::ZERO,
                sie: Duration::ZERO,
            },
            path,
        };
        let k = key(url);
        self.cache().put_full(&k, Arc::from(Vec::new()), k.clone(), entry);
    }

    async fn delete(&self, url: &str) -> bool {
        self.cache().remove(&key(url))
    }
}
