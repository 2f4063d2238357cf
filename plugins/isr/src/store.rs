//! The entries of one app: bounded by count and bytes (quick_cache's
//! CLOCK-Pro eviction, weighted by size), with the headers each key
//! `Vary`s on, the keys being fetched right now (the stampede guard), and
//! the keys being refreshed in the background.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::watch;

use crate::policy::Freshness;

/// A stored response.
pub struct Entry {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, without hop-by-hop ones, `Date` and `Age`.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Its `ETag` (the app's, or a hash of the body).
    pub etag: HeaderValue,
    /// When it was stored.
    pub stored: Instant,
    /// How long it stays fresh and then usable stale.
    pub freshness: Freshness,
    /// `Cache-Tag` / `x-bext-tags` values, for invalidation.
    pub tags: Vec<String>,
    /// The request path, for invalidation by path.
    pub path: String,
}

/// Where an entry stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Within its TTL.
    Fresh,
    /// Past it, within its stale-while-revalidate window.
    Stale,
    /// Past both; only usable if the app fails (stale-if-error).
    Expired,
}

impl Entry {
    /// Seconds since it was stored (the `Age` it is served with).
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// Fresh, stale or expired at `now`.
    pub fn state(&self, now: Instant) -> State {
        let age = self.age(now);
        if age < self.freshness.ttl {
            State::Fresh
        } else if age < self.freshness.ttl + self.freshness.swr {
            State::Stale
        } else {
            State::Expired
        }
    }

    /// Usable when the app fails at `now` (stale-if-error).
    pub fn usable_on_error(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.ttl + self.freshness.swr + self.freshness.sie
    }

    fn weight(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        (self.body.len() + headers + self.path.len() + 256) as u64
    }
}

/// An entry weighs its bytes, but never less than `floor` (the byte
/// budget over the entry limit), so both limits hold: at most
/// `max_entries` entries fit, and at most `max_bytes` bytes.
#[derive(Clone)]
struct Weight {
    floor: u64,
}

impl quick_cache::Weighter<String, Arc<Entry>> for Weight {
    fn weight(&self, key: &String, e: &Arc<Entry>) -> u64 {
        (key.len() as u64 + e.weight()).max(self.floor)
    }
}

/// The limits a cache was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries.
    pub entries: usize,
    /// Most bytes.
    pub bytes: u64,
}

/// One app's cache.
pub struct AppCache {
    limits: Limits,
    entries: quick_cache::sync::Cache<String, Arc<Entry>, Weight>,
    /// Primary key → the request headers its response varies on.
    vary: quick_cache::sync::Cache<String, Arc<[HeaderName]>>,
    /// Keys some request is fetching from the app now.
    inflight: Mutex<HashMap<String, watch::Receiver<()>>>,
    /// Keys being refreshed in the background.
    refreshing: Mutex<HashSet<String>>,
}

/// The key of the table of caches among the host's shared values.
pub const CACHES_KEY: &str = "isr:caches";

/// Every app's cache, by app id: one table for every instance of the
/// plugin (per-app configurations build separate instances), so the
/// admin endpoints reach them all; it is the host's shared value
/// [`CACHES_KEY`] (`Host::shared`), so a reload that rebuilds the
/// instances keeps what was cached.
#[derive(Default)]
pub struct Caches {
    by_app: RwLock<HashMap<String, Arc<AppCache>>>,
}

impl Caches {
    /// The cache of `app`, made with `limits` (a cache made with other
    /// limits is replaced by an empty one).
    pub fn cache_for(&self, app: &str, limits: Limits) -> Arc<AppCache> {
        if let Some(c) = self.by_app.read().unwrap_or_else(|p| p.into_inner()).get(app)
            && c.limits == limits
        {
            return c.clone();
        }
        let mut all = self.by_app.write().unwrap_or_else(|p| p.into_inner());
        match all.get(app) {
            Some(c) if c.limits == limits => c.clone(),
            _ => {
                let c = Arc::new(AppCache::new(limits));
                all.insert(app.to_owned(), c.clone());
                c
            }
        }
    }

    /// Forgets the caches of apps that are gone (a removed app, an expired
    /// deploy preview): what they held can never be asked for again.
    pub fn retain_apps(&self, apps: &[bext_plugin_abi::AppInfo]) {
        self.by_app
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| apps.iter().any(|a| a.id == *id));
    }

    /// The caches of `app`, or of every app.
    pub fn caches(&self, app: Option<&str>) -> Vec<(String, Arc<AppCache>)> {
        self.by_app
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(id, _)| app.is_none_or(|a| a == id.as_str()))
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect()
    }
}

/// Held by the one request fetching a key; dropping it (stored or not,
/// finished or cancelled) wakes the requests waiting for that key.
pub struct Flight {
    cache: Arc<AppCache>,
    key: String,
    _done: watch::Sender<()>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.cache
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// What a request should do about a key nobody has stored.
pub enum Turn {
    /// Fetch it; others wait for this request.
    Lead(Flight),
    /// Another request is fetching it: wait for that.
    Wait(watch::Receiver<()>),
}

/// Held while a key is refreshed in the background.
pub struct Refresh {
    cache: Arc<AppCache>,
    key: String,
}

impl Drop for Refresh {
    fn drop(&mut self) {
        self.cache
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl AppCache {
    fn new(limits: Limits) -> Self {
        let (entries, bytes) = (limits.entries.max(1), limits.bytes.max(1));
        let entries = quick_cache::sync::Cache::with(
            entries,
            bytes,
            Weight {
                floor: bytes / entries as u64,
            },
            Default::default(),
            Default::default(),
        );
        AppCache {
            limits,
            entries,
            vary: quick_cache::sync::Cache::new(limits.entries.max(1)),
            inflight: Mutex::default(),
            refreshing: Mutex::default(),
        }
    }

    /// The full key of a request: its primary key and the values of the
    /// headers its stored response varies on.
    pub fn full_key(&self, primary: &str, request: &HeaderMap) -> String {
        match self.vary.get(primary) {
            Some(names) if !names.is_empty() => vary_key(primary, &names, request),
            _ => primary.to_owned(),
        }
    }

    /// The entry under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// Stores a response for the request with `primary` key and headers
    /// `request`; its `Vary` names become part of the key, which is
    /// returned.
    pub fn put(&self, primary: &str, request: &HeaderMap, vary: Vec<HeaderName>, entry: Entry) -> String {
        let key = if vary.is_empty() {
            primary.to_owned()
        } else {
            vary_key(primary, &vary, request)
        };
        self.put_full(primary, vary.into(), key.clone(), entry);
        key
    }

    /// Stores an entry under its full key (an entry from the L2 tier).
    pub fn put_full(&self, primary: &str, vary: Arc<[HeaderName]>, full: String, entry: Entry) {
        self.vary.insert(primary.to_owned(), vary);
        self.entries.insert(full, Arc::new(entry));
    }

    /// The request headers the entries of `primary` vary on, if known.
    pub fn vary_names(&self, primary: &str) -> Option<Arc<[HeaderName]>> {
        self.vary.get(primary)
    }

    /// Takes the lead on fetching `key`, or the means to wait for the
    /// request that has it.
    pub fn take_turn(self: &Arc<Self>, key: &str) -> Turn {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = inflight.get(key) {
            return Turn::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        inflight.insert(key.to_owned(), rx);
        Turn::Lead(Flight {
            cache: self.clone(),
            key: key.to_owned(),
            _done: tx,
        })
    }

    /// Claims the background refresh of `key`; `None` when one runs.
    pub fn start_refresh(self: &Arc<Self>, key: &str) -> Option<Refresh> {
        let mut refreshing = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        refreshing.insert(key.to_owned()).then(|| Refresh {
            cache: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Drops the entry under `key`; whether there was one.
    pub fn remove(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Drops every entry `doomed` picks; how many went.
    pub fn remove_where(&self, doomed: impl Fn(&Entry) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| !doomed(e));
        before - self.entries.len()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The full key of a request whose response varies on `names`.
pub fn vary_key(primary: &str, names: &[HeaderName], request: &HeaderMap) -> String {
    let mut key = primary.to_owned();
    for name in names {
        key.push('\n');
        key.push_str(name.as_str());
        key.push('=');
        for (i, v) in request.get_all(name).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: usize) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            etag: HeaderValue::from_static("\"e\""),
            stored: Instant::now(),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                swr: Duration::ZERO,
                sie: Duration::ZERO,
            },
            tags: Vec::new(),
            path: "/".into(),
        }
    }

    #[test]
    fn both_the_entry_and_the_byte_limits_hold() {
        let few = AppCache::new(Limits {
            entries: 100,
            bytes: 64 << 20,
        });
        for i in 0..1_000 {
            few.put(&format!("k{i}"), &HeaderMap::new(), Vec::new(), entry(10));
        }
        assert!(few.len() <= 100, "{} entries", few.len());
        assert!(
            few.len() >= 50,
            "small pages still fill the entry budget: {}",
            few.len()
        );

        let small = AppCache::new(Limits {
            entries: 10_000,
            bytes: 1 << 20,
        });
        for i in 0..1_000 {
            small.put(&format!("k{i}"), &HeaderMap::new(), Vec::new(), entry(10 << 10));
        }
        let held: usize = (0..1_000)
            .filter_map(|i| small.get(&format!("k{i}")))
            .map(|e| e.body.len())
            .sum();
        assert!(held <= 1 << 20, "{held} bytes held");
        assert!(held >= 512 << 10, "the byte budget is used: {held}");
    }

    #[test]
    fn entries_are_fresh_then_stale_then_usable_only_on_error() {
        let mut e = entry(1);
        e.freshness = Freshness {
            ttl: Duration::from_secs(10),
            swr: Duration::from_secs(5),
            sie: Duration::from_secs(20),
        };
        let at = |secs: u64| e.stored + Duration::from_secs(secs);
        assert_eq!(e.state(at(0)), State::Fresh);
        assert_eq!(e.state(at(9)), State::Fresh);
        assert_eq!(e.state(at(10)), State::Stale, "the TTL is exclusive");
        assert_eq!(e.state(at(14)), State::Stale);
        assert_eq!(e.state(at(15)), State::Expired);
        assert!(e.usable_on_error(at(34)));
        assert!(!e.usable_on_error(at(35)), "ttl + swr + sie");
        assert_eq!(e.age(at(7)), Duration::from_secs(7));
        assert_eq!(
            e.age(e.stored - Duration::from_secs(1)),
            Duration::ZERO,
            "a clock before storing"
        );
        assert_eq!(e.state(e.stored - Duration::from_secs(1)), State::Fresh);
        e.freshness.swr = Duration::ZERO;
        assert_eq!(e.state(at(10)), State::Expired, "no window, no stale answers");
    }

    fn small() -> Arc<AppCache> {
        Arc::new(AppCache::new(Limits {
            entries: 10,
            bytes: 1 << 20,
        }))
    }

    #[tokio::test]
    async fn one_request_per_key_leads_and_the_others_wait_for_it() {
        let cache = small();
        let Turn::Lead(flight) = cache.take_turn("k") else {
            panic!("the first request leads");
        };
        let Turn::Wait(mut waiter) = cache.take_turn("k") else {
            panic!("the second waits");
        };
        assert!(matches!(cache.take_turn("other"), Turn::Lead(_)), "keys are apart");
        drop(flight);
        let woken = tokio::time::timeout(Duration::from_secs(5), waiter.changed()).await;
        assert!(woken.is_ok(), "dropping the flight wakes the waiters");
        assert!(matches!(cache.take_turn("k"), Turn::Lead(_)), "the key is free again");
    }

    #[test]
    fn one_background_refresh_per_key() {
        let cache = small();
        let claim = cache.start_refresh("k").unwrap();
        assert!(cache.start_refresh("k").is_none());
        assert!(cache.start_refresh("j").is_some());
        drop(claim);
        assert!(cache.start_refresh("k").is_some());
    }

    #[test]
    fn vary_names_make_the_full_key() {
        let cache = small();
        let names = [
            HeaderName::from_static("accept"),
            HeaderName::from_static("accept-language"),
        ];
        let mut request = HeaderMap::new();
        request.append("accept", HeaderValue::from_static("text/html"));
        request.append("accept", HeaderValue::from_static("*/*"));
        assert_eq!(
            vary_key("p", &names, &request),
            "p\naccept=text/html,*/*\naccept-language="
        );
        assert_eq!(cache.full_key("p", &request), "p", "nothing stored: the primary key");
        let full = cache.put("p", &request, names.to_vec(), entry(1));
        assert_eq!(full, vary_key("p", &names, &request));
        assert_eq!(cache.full_key("p", &request), full);
        assert!(cache.get(&full).is_some() && cache.get("p").is_none());
        assert_eq!(cache.vary_names("p").as_deref(), Some(&names[..]));
        assert_eq!(cache.put("q", &request, vec![], entry(1)), "q");
    }

    #[test]
    fn caches_of_apps_that_are_gone_are_forgotten() {
        let limits = Limits {
            entries: 10,
            bytes: 1 << 20,
        };
        let caches = Caches::default();
        let kept = caches.cache_for("kept", limits);
        caches.cache_for("gone~pr-1", limits);
        assert!(
            Arc::ptr_eq(&kept, &caches.cache_for("kept", limits)),
            "one cache per app"
        );
        let info = |id: &str| bext_plugin_abi::AppInfo {
            id: id.into(),
            domains: vec![],
            tenant_domains: Default::default(),
        };
        caches.retain_apps(&[info("kept"), info("new")]);
        assert_eq!(caches.caches(Some("kept")).len(), 1);
        assert!(caches.caches(Some("gone~pr-1")).is_empty());
        assert_eq!(caches.caches(None).len(), 1, "retaining makes no cache");
        let bigger = Limits { entries: 20, ..limits };
        assert!(
            !Arc::ptr_eq(&kept, &caches.cache_for("kept", bigger)),
            "other limits, a new cache"
        );
    }
}
