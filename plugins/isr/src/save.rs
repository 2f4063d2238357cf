//! Storing the app's answer (the `on_response` side): what the policy
//! lets keep, whole and at most `max_entry_bytes`, goes into the app's
//! cache (and, in edge mode, the fleet's L2 tier), marked `x-cache: MISS`,
//! and the requests waiting for its key are woken. A 5xx for a key with
//! an expired entry still within its stale-if-error window is replaced by
//! that entry.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bext_plugin_abi::{Body, Ctx, Fleet, Hook, PluginError, Request, Response};
use http::header::ETAG;
use http::{HeaderMap, HeaderName};

use crate::IsrPlugin;
use crate::answer::{answer, etag_of, kept_headers, mark, strip_tags, tags_of};
use crate::l2;
use crate::policy::{RuleSay, freshness, vary_names};
use crate::store::{AppCache, Entry, Flight};

/// The request passed the cache by (method, rule, credentials, body,
/// query): left in the context for `on_response`.
#[derive(Clone)]
pub(crate) struct Bypass;

/// What decides whether and how a response is stored; shared with the
/// background refreshes.
pub(crate) struct StorePolicy {
    /// Freshness of answers that say nothing about caching.
    pub(crate) default_ttl: Option<Duration>,
    /// Stale window of answers that say nothing about caching.
    pub(crate) default_swr: Option<Duration>,
    /// Most a 404 or 410 is kept.
    pub(crate) negative_ttl: Duration,
    /// Larger bodies are passed through, never kept.
    pub(crate) max_entry_bytes: usize,
    /// The fleet's Redis in edge mode: entries are written through.
    pub(crate) edge: OnceLock<Arc<dyn Fleet>>,
    /// Request headers that carry credentials (`credential_headers`).
    pub(crate) credentials: Vec<HeaderName>,
}

/// A request whose response may be stored: left in the context by
/// `on_request` for `on_response`.
pub(crate) struct Pending {
    /// The app's id.
    pub(crate) app: String,
    /// The app's cache.
    pub(crate) cache: Arc<AppCache>,
    /// The request's key, before the `Vary` part.
    pub(crate) primary: String,
    /// The request's headers (the `Vary` part of the key is made of them).
    pub(crate) request_headers: HeaderMap,
    /// The request's path, as entries record it (invalidation by path).
    pub(crate) path: String,
    /// What the matching rule says, if one matched.
    pub(crate) rule: Option<RuleSay>,
    /// The caller is part of `primary` (a rule with `authorized: true`):
    /// only then may the response `Vary` on a credential header.
    pub(crate) caller_keyed: bool,
    /// Held by the request that fetches the key for the others.
    pub(crate) flight: Option<Flight>,
    /// An expired entry, still good if the app fails (stale-if-error).
    pub(crate) fallback: Option<Arc<Entry>>,
}

/// Where `on_request` leaves a [`Pending`] for `on_response` (context
/// values must be `Clone`; a pending store is taken exactly once).
type PendingSlot = Arc<Mutex<Option<Pending>>>;

/// Leaves `p` in the context for `on_response`.
pub(crate) fn park(cx: &mut Ctx, p: Pending) {
    cx.ext.insert::<PendingSlot>(Arc::new(Mutex::new(Some(p))));
}

/// The names a key's entries vary on once an answer that varies on `new`
/// is stored: those its other answers varied on (`known`) stay, so two
/// answers for one URL that vary on different headers (a page and its 404
/// for another `Accept`) both stay findable; new ones are added in order.
fn merge_vary(known: Option<&[HeaderName]>, new: Vec<HeaderName>) -> Vec<HeaderName> {
    let mut vary: Vec<HeaderName> = known.map(<[HeaderName]>::to_vec).unwrap_or_default();
    for name in new {
        if !vary.contains(&name) {
            vary.push(name);
        }
    }
    vary
}

impl StorePolicy {
    /// Keeps `res` if it may be kept, whole and small enough; marks it
    /// `MISS`. True when it was stored.
    pub(crate) async fn store(&self, p: Pending, res: &mut Response) -> bool {
        mark(res.headers_mut(), "MISS");
        let tags = tags_of(res.headers());
        let Some(fresh) = freshness(
            res.status(),
            res.headers(),
            p.rule,
            self.default_ttl,
            self.default_swr,
            self.negative_ttl,
        ) else {
            return false;
        };
        let Some(new) = vary_names(res.headers(), &self.credentials, p.caller_keyed) else {
            return false; // Vary: *, a credential header, or a name that cannot be keyed
        };
        let vary = merge_vary(p.cache.vary_names(&p.primary).as_deref(), new);
        let prefix = res.body_mut().peek(self.max_entry_bytes.saturating_add(1)).await;
        if res.body().as_bytes().is_none() || prefix.len() > self.max_entry_bytes {
            return false; // too big, or it failed midway: passed through only
        }
        let etag = match res.headers().get(ETAG) {
            Some(e) => e.clone(),
            None => {
                let e = etag_of(&prefix);
                res.headers_mut().insert(ETAG, e.clone());
                e
            }
        };
        let entry = Entry {
            status: res.status(),
            headers: kept_headers(res.headers()),
            body: prefix,
            etag,
            stored: Instant::now(),
            freshness: fresh,
            tags,
            path: p.path,
        };
        let shared = self.edge.get().map(|edge| {
            let names: Vec<&str> = vary.iter().map(HeaderName::as_str).collect();
            (
                edge.clone(),
                l2::encode(&entry),
                l2::index_sets(&**edge, &p.app, &entry),
                names.join(","),
            )
        });
        let full = p.cache.put(&p.primary, &p.request_headers, vary, entry);
        drop(p.flight);
        if let Some((edge, bytes, sets, names)) = shared {
            let (entry_key, vary_record) = (l2::entry_key(&*edge, &full), l2::vary_key(&*edge, &p.primary));
            let keep = l2::keep_for(&fresh);
            // The vary record first: an instance that can see the entry
            // must be able to see which headers its key was made of.
            tokio::spawn(async move {
                if names.is_empty() || edge.put(&vary_record, names.as_bytes(), keep, &[]).await {
                    edge.put(&entry_key, &bytes, keep, &sets).await;
                }
            });
        }
        true
    }
}

impl IsrPlugin {
    /// `on_response`: `x-cache: BYPASS` on a request that passed the
    /// cache by; for one that went through it, the stale entry instead of
    /// a 5xx when stale-if-error allows, else the answer stored (if it
    /// may be) and its tag headers removed.
    pub(crate) fn save<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        if cx.ext.get::<Bypass>().is_some() {
            mark(res.headers_mut(), "BYPASS");
            self.count("BYPASS");
            return Hook::Ready(Ok(()));
        }
        let pending = cx
            .ext
            .get::<PendingSlot>()
            .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take());
        let Some(pending) = pending else {
            return Hook::Ready(Ok(()));
        };
        if res.status().is_server_error()
            && let Some(e) = pending.fallback.as_ref().filter(|e| e.usable_on_error(Instant::now()))
        {
            self.count("STALE");
            let mut stale = answer(e, &Request::new(Body::empty()), "STALE");
            std::mem::swap(res, &mut stale);
            return Hook::Ready(Ok(()));
        }
        Hook::later(async move {
            self.store.store(pending, res).await;
            self.count("MISS");
            strip_tags(res.headers_mut());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&'static str]) -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    }

    #[test]
    fn vary_names_accumulate_per_key() {
        assert_eq!(merge_vary(None, names(&["accept"])), names(&["accept"]));
        assert_eq!(merge_vary(None, vec![]), names(&[]));
        let known = names(&["accept", "accept-language"]);
        assert_eq!(
            merge_vary(Some(&known), names(&["accept-encoding", "accept"])),
            names(&["accept", "accept-language", "accept-encoding"]),
            "the names other answers varied on stay, new ones come after"
        );
        assert_eq!(
            merge_vary(Some(&known), vec![]),
            known,
            "an answer that varies on nothing"
        );
    }
}
