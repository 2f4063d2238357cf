//! Storing the app's answer (the `on_response` side): what the policy
//! lets keep, whole and at most `max_entry_bytes`, goes into the app's
//! cache (and, in edge mode, the fleet's L2 tier), marked `x-cache: MISS`,
//! and the requests waiting for its key are woken. A streamed answer (an
//! SSR render) reaches its client as it comes and is stored at its end. A 5xx for a key with
//! an expired entry still within its stale-if-error window is replaced by
//! that entry.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bext_plugin_abi::{Body, BoxError, CacheStatus, Ctx, Fleet, Hook, PluginError, Request, Response};
use bytes::{Bytes, BytesMut};
use http::header::ETAG;
use http::{HeaderMap, HeaderName};
use http_body::{Body as _, Frame, SizeHint};

use crate::IsrPlugin;
use crate::answer::{answer, etag_of, kept_headers, mark, strip_tags, tags_of};
use crate::l2;
use crate::policy::{Freshness, RuleSay, freshness, vary_names};
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

/// What a response that may be kept is stored as, decided from its head
/// before its body is read.
struct Keep {
    pending: Pending,
    status: http::StatusCode,
    headers: HeaderMap,
    fresh: Freshness,
    tags: Vec<String>,
    vary: Vec<HeaderName>,
}

impl StorePolicy {
    /// Marks `res` `MISS` and says whether and how it may be kept (status,
    /// Cache-Control, rule, `Vary`); `None` when it may not.
    fn keep(&self, p: Pending, res: &mut Response) -> Option<Keep> {
        mark(res.headers_mut(), "MISS");
        let tags = tags_of(res.headers());
        let fresh = freshness(
            res.status(),
            res.headers(),
            p.rule,
            self.default_ttl,
            self.default_swr,
            self.negative_ttl,
        )?;
        // Vary: *, a credential header, or a name that cannot be keyed.
        let new = vary_names(res.headers(), &self.credentials, p.caller_keyed)?;
        let vary = merge_vary(p.cache.vary_names(&p.primary).as_deref(), new);
        Some(Keep {
            status: res.status(),
            headers: kept_headers(res.headers()),
            pending: p,
            fresh,
            tags,
            vary,
        })
    }

    /// Keeps `res` if it may be kept, whole and small enough, reading its
    /// body first (a refresh or a revalidation nobody is waiting on);
    /// marks it `MISS`. True when it was stored.
    pub(crate) async fn store(&self, p: Pending, res: &mut Response) -> bool {
        match self.keep(p, res) {
            Some(keep) => self.store_read(keep, res).await,
            None => false,
        }
    }

    /// Reads `res`'s body (at most `max_entry_bytes` and one) and stores
    /// it whole, with an `ETag` added to `res` when it has none.
    async fn store_read(&self, mut keep: Keep, res: &mut Response) -> bool {
        let prefix = res.body_mut().peek(self.max_entry_bytes.saturating_add(1)).await;
        if res.body().as_bytes().is_none() || prefix.len() > self.max_entry_bytes {
            return false; // too big, or it failed midway: passed through only
        }
        if !res.headers().contains_key(ETAG) {
            // Hashed once, for the answer and the entry.
            let etag = etag_of(&prefix);
            res.headers_mut().insert(ETAG, etag.clone());
            keep.headers.insert(ETAG, etag);
        }
        self.put(keep, prefix);
        true
    }

    /// [`StorePolicy::store`] for the answer a client is waiting on. A
    /// body of known length (in memory, or a `Content-Length`) is read and
    /// stored before it is sent, as `store` does; one whose length is not
    /// known (a streamed SSR render) goes to the client as it comes and is
    /// stored when it has ended, whole and within `max_entry_bytes`
    /// (larger, cut, or with trailers: passed through only), with no
    /// `ETag` added to this first answer. The requests waiting for the
    /// key wait until then. True when it was stored or may be at its end.
    pub(crate) async fn store_streaming(self: &Arc<Self>, p: Pending, res: &mut Response) -> bool {
        let Some(keep) = self.keep(p, res) else {
            return false;
        };
        let limit = u64::try_from(self.max_entry_bytes).unwrap_or(u64::MAX);
        match res.body().size_hint().exact() {
            Some(n) if n > limit => return false,
            Some(_) => return self.store_read(keep, res).await,
            None => {}
        }
        let policy = self.clone();
        let body = std::mem::take(res.body_mut());
        *res.body_mut() = Body::stream(Filling {
            body,
            seen: BytesMut::new(),
            limit: self.max_entry_bytes,
            fill: Some(Box::new(move |whole| policy.put(keep, whole))),
        });
        true
    }

    /// Stores `body` as `keep` says (and in edge mode writes it through to
    /// the fleet), then wakes the requests waiting for its key.
    fn put(&self, keep: Keep, body: Bytes) {
        let Keep {
            pending: p,
            status,
            mut headers,
            fresh,
            tags,
            vary,
        } = keep;
        let etag = match headers.get(ETAG) {
            Some(e) => e.clone(),
            None => {
                let e = etag_of(&body);
                headers.insert(ETAG, e.clone());
                e
            }
        };
        let entry = Entry {
            status,
            headers,
            body,
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
    }
}

/// Stores the bytes of a body that ended whole.
type Fill = Box<dyn FnOnce(Bytes) + Send + Sync>;

/// A MISS's streamed body: each frame passes on to the client as it
/// arrives and is copied aside; when the body ends whole within `limit`
/// bytes, `fill` stores the copy. Past the limit, on an error or on
/// trailers the copy is dropped and nothing is stored.
struct Filling {
    body: Body,
    seen: BytesMut,
    limit: usize,
    /// `None` once stored or given up.
    fill: Option<Fill>,
}

impl Filling {
    fn give_up(&mut self) {
        self.fill = None;
        self.seen = BytesMut::new();
    }
}

impl http_body::Body for Filling {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(_) if this.fill.is_none() => {}
                Some(data) if this.seen.len() + data.len() > this.limit => this.give_up(),
                Some(data) => this.seen.extend_from_slice(data),
                None => this.give_up(), // trailers: an entry has none
            },
            Poll::Ready(Some(Err(_))) => this.give_up(),
            Poll::Ready(None) => {
                if let Some(fill) = this.fill.take() {
                    fill(std::mem::take(&mut this.seen).freeze());
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Until stored, the end is polled for (that is where it is stored).
        self.fill.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
            self.count(cx, CacheStatus::Bypass);
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
            self.count(cx, CacheStatus::Stale);
            let mut stale = answer(e, &Request::new(Body::empty()), "STALE");
            std::mem::swap(res, &mut stale);
            return Hook::Ready(Ok(()));
        }
        Hook::later(async move {
            self.store.store_streaming(pending, res).await;
            self.count(cx, CacheStatus::Miss);
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

    /// A body of these frames, in order.
    struct Frames(std::collections::VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    /// What a client gets of `frames` through a [`Filling`] of `limit`
    /// bytes, and what it stored.
    async fn through(frames: Vec<Result<Frame<Bytes>, BoxError>>, limit: usize) -> (Vec<u8>, Option<Bytes>) {
        let stored = Arc::new(Mutex::new(None));
        let mut body = Filling {
            body: Body::stream(Frames(frames.into())),
            seen: BytesMut::new(),
            limit,
            fill: Some(Box::new({
                let stored = stored.clone();
                move |b| *stored.lock().unwrap() = Some(b)
            })),
        };
        let mut sent = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            match frame {
                Ok(f) => sent.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
                Err(_) => break,
            }
        }
        let kept = stored.lock().unwrap().take();
        (sent, kept)
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from(s)))
    }

    #[tokio::test]
    async fn a_streamed_body_passes_whole_and_is_kept_only_whole_and_small() {
        let (sent, kept) = through(vec![data("<p>a</p>"), data("<p>b</p>")], 16).await;
        assert_eq!(
            (sent.as_slice(), kept.as_deref()),
            (&b"<p>a</p><p>b</p>"[..], Some(&b"<p>a</p><p>b</p>"[..]))
        );
        let (sent, kept) = through(vec![data("<p>a</p>"), data("<p>b</p>")], 15).await;
        assert_eq!(
            (sent.as_slice(), kept),
            (&b"<p>a</p><p>b</p>"[..], None),
            "over the limit: passed on only"
        );
        let (sent, kept) = through(vec![data("<p>a</p>"), Err("cut".into())], 100).await;
        assert_eq!((sent.as_slice(), kept), (&b"<p>a</p>"[..], None), "cut midway");
        let trailers = Ok(Frame::trailers(HeaderMap::new()));
        let (_, kept) = through(vec![data("<p>a</p>"), trailers], 100).await;
        assert_eq!(kept, None, "an entry has no trailers");
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
