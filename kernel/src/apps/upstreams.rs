//! A proxy app's backends and how a request picks one: weighted round
//! robin, least connections or consistent (rendezvous) hashing, over the
//! backends that are healthy. A backend's health is what its answers say
//! (passive: connect errors and 5xx eject it for a time that doubles with
//! each ejection, a circuit breaker whose half-open state lets one request
//! through) and what its active checks say ([`super::health`]).
//!
//! The set sits behind an [`ArcSwap`], so it can change while requests
//! run: a `process` app's ready instances can become its backends.
//! Per-backend state is a few atomics; the connections themselves stay in
//! the per-worker stacks of [`super::pool`], keyed by address.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bext_plugin_abi::Ctx;
use http::HeaderMap;
use tokio::sync::Notify;

use super::forwarded::Forwarding;
use super::pool::Pool;
use crate::config::upstream::{Balance, HashKey, Upstream};

/// Consecutive failed answers (5xx, reset, timeout) that eject a backend
/// when no active check says otherwise.
const PASSIVE_FAILURES: u32 = 3;
/// The first ejection's length; each further one doubles it, up to
/// [`MAX_EJECTION`].
const FIRST_EJECTION: Duration = Duration::from_secs(1);
const MAX_EJECTION: Duration = Duration::from_secs(60);
/// Retry budget, in tenths of a retry: each request adds
/// [`BUDGET_PER_REQUEST`], each retry takes [`BUDGET_PER_RETRY`], so
/// retries stay under a fifth of the requests once the reserve is spent.
const BUDGET_PER_REQUEST: i64 = 2;
const BUDGET_PER_RETRY: i64 = 10;
const BUDGET_MAX: i64 = 200;

/// The clock ejections are measured on: milliseconds since the first use,
/// from 1 (0 marks a backend that is not ejected).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// One backend: where it is, its weight and what is known of its health.
pub(crate) struct Backend {
    /// Its connections.
    pub(crate) pool: Pool,
    /// Its URL's path prefix.
    pub(crate) base_path: String,
    weight: u32,
    /// Hash of its address, its place in consistent hashing: a backend
    /// added or removed moves only its own share of the keys.
    id_hash: u64,
    /// Requests sent and not yet answered to the end.
    in_flight: AtomicU32,
    /// Failed answers in a row.
    failures: AtomicU32,
    /// Ejections in a row (the next lasts twice as long).
    ejections: AtomicU32,
    /// Until when (on [`now_ms`]) it gets no request; 0 when it is in.
    ejected_until: AtomicU64,
    /// Down by its active checks.
    pub(crate) down: AtomicBool,
    /// Woken when a request ends, with `max_connections`: the app's
    /// queued requests wait on it.
    freed: Option<Arc<Notify>>,
}

impl Backend {
    fn new(
        upstream: &Upstream,
        weight: u32,
        policy: &Policy,
        tls: &UpstreamsTls,
        freed: Option<Arc<Notify>>,
    ) -> Result<Backend, String> {
        let tls = upstream.tls.then(|| (&tls.config, &*tls.settings));
        let tls = match tls {
            Some((Some(config), settings)) => Some((config, settings)),
            Some((None, _)) => return Err("an https:// upstream needs TLS settings".into()),
            None => None,
        };
        let pool = match &upstream.unix {
            Some(path) => Pool::unix(path, policy.connect_timeout, policy.http2),
            None => match Pool::new(&upstream.authority, policy.connect_timeout, tls, policy.http2)? {
                pool if policy.guarded => pool.guarded(),
                pool => pool,
            },
        };
        let mut h = rustc_hash::FxHasher::default();
        pool.addr().hash(&mut h);
        Ok(Backend {
            id_hash: mix(h.finish()),
            pool,
            base_path: upstream.base_path.clone(),
            weight,
            in_flight: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            freed,
        })
    }

    /// Whether it may take a request now. An ejection that has run out
    /// lets exactly one request through (half-open): that request moves
    /// the end of the ejection on, so the others wait for its outcome.
    fn admits(&self, now: &mut Option<u64>) -> bool {
        if self.down.load(Relaxed) {
            return false;
        }
        let until = self.ejected_until.load(Relaxed);
        if until == 0 {
            return true;
        }
        let now = *now.get_or_insert_with(now_ms);
        now >= until
            && self
                .ejected_until
                .compare_exchange(
                    until,
                    now + ejection(self.ejections.load(Relaxed)).as_millis() as u64,
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
    }

    /// Its address as the platform file names it (a metrics label).
    pub(crate) fn addr(&self) -> &str {
        self.pool.addr()
    }

    /// Whether it is in service now: not down by its active checks, not
    /// ejected for failed answers (a half-open one counts as out).
    pub(crate) fn up(&self) -> bool {
        self.in_service(now_ms())
    }

    /// Requests sent to it and not yet answered to the end.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// Milliseconds until it may take requests again, if it may not now.
    fn wait_ms(&self, now: u64, check_interval: Option<Duration>) -> u64 {
        if self.down.load(Relaxed) {
            return check_interval.map_or(1000, |i| i.as_millis() as u64);
        }
        self.ejected_until.load(Relaxed).saturating_sub(now)
    }

    /// A good answer closes its circuit.
    pub(crate) fn succeeded(&self) {
        if self.failures.load(Relaxed) != 0 || self.ejected_until.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
            self.ejections.store(0, Relaxed);
            self.ejected_until.store(0, Relaxed);
        }
    }

    /// Whether it takes requests now (without taking a half-open trial).
    fn in_service(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Relaxed);
        !self.down.load(Relaxed) && (until == 0 || now >= until)
    }

    /// A failed answer: after [`PASSIVE_FAILURES`] in a row (or at once
    /// for a connection that could not be made, or a half-open trial that
    /// failed) the backend is ejected. A failed answer (5xx, timeout, not
    /// a connection that could not be made) never ejects the last backend
    /// in service (`others_in_service` false): a client that can make an
    /// app answer 5xx must not take the whole pool out (at most all but
    /// one, as Envoy's `max_ejection_percent` allows).
    pub(crate) fn failed(&self, at_once: bool, others_in_service: bool) {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        let half_open = self.ejected_until.load(Relaxed) != 0;
        if !at_once && !others_in_service && (half_open || failures >= PASSIVE_FAILURES) {
            self.failures.store(0, Relaxed);
            self.ejected_until.store(0, Relaxed);
            return;
        }
        if at_once || half_open || failures >= PASSIVE_FAILURES {
            let n = self.ejections.fetch_add(1, Relaxed);
            self.ejected_until
                .store(now_ms() + ejection(n).as_millis() as u64, Relaxed);
            self.failures.store(0, Relaxed);
            tracing::warn!(upstream = %self.pool.addr(), for_ = ?ejection(n), "upstream ejected");
        }
    }

    /// Whether it has room for one more request under `max`.
    fn has_room(&self, max: Option<u32>) -> bool {
        max.is_none_or(|m| self.in_flight.load(Relaxed) < m)
    }
}

/// The `n`th ejection in a row's length.
fn ejection(n: u32) -> Duration {
    FIRST_EJECTION.saturating_mul(1 << n.min(16)).min(MAX_EJECTION)
}

/// A request counted in its backend's `in_flight` until dropped (with the
/// response body, or when the request failed).
pub(crate) struct InFlight(Arc<Backend>);

/// Every connection `max_connections` allows to a backend is in use.
#[derive(Debug)]
pub(crate) struct Full;

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        if let Some(freed) = &self.0.freed {
            freed.notify_one();
        }
    }
}

/// The backends of one moment, and the round-robin schedule over them.
pub(crate) struct BackendSet {
    pub(crate) list: Vec<Arc<Backend>>,
    /// Backend indices, each as often as its weight, interleaved (nginx's
    /// smooth weighted round robin, computed once).
    schedule: Vec<u32>,
    /// No backend's URL has a path: a request's target is the same for
    /// each, so a retry needs no copy of the target as asked.
    pub(crate) bare_paths: bool,
}

impl BackendSet {
    /// A failed answer from `list[i]`, judged with the rest of the set
    /// (see [`Backend::failed`]).
    pub(crate) fn failed(&self, i: usize, at_once: bool) {
        let now = now_ms();
        let others = (self.list.iter().enumerate()).any(|(j, b)| j != i && b.in_service(now));
        self.list[i].failed(at_once, others);
    }

    fn new(list: Vec<Arc<Backend>>) -> BackendSet {
        let total: i64 = list.iter().map(|b| i64::from(b.weight)).sum();
        let mut current = vec![0i64; list.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, b) in current.iter_mut().zip(&list) {
                *c += i64::from(b.weight);
            }
            let best = (0..list.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            schedule.push(best as u32);
        }
        let bare_paths = list.iter().all(|b| b.base_path.is_empty());
        BackendSet {
            list,
            schedule,
            bare_paths,
        }
    }
}

/// An app's TLS client settings for its https:// backends.
#[derive(Default)]
pub(crate) struct UpstreamsTls {
    /// `None` when no backend is https://.
    pub(crate) config: Option<Arc<rustls::ClientConfig>>,
    /// What the settings are (`ca` file, `insecure`), keeping idle
    /// connections of different settings apart.
    pub(crate) settings: String,
}

/// How an app spreads and limits its requests (its configuration).
pub(crate) struct Policy {
    pub(crate) balance: Balance,
    pub(crate) hash: Option<HashKey>,
    /// Per-backend limit of requests in flight.
    pub(crate) max_connections: Option<u32>,
    /// Requests that may wait for room when every backend is at
    /// `max_connections`.
    pub(crate) queue: u32,
    /// The active checks' interval, if there are checks.
    pub(crate) check_interval: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    /// Speak HTTP/2 to the backends.
    pub(crate) http2: bool,
    /// The backends are a deployed bundle's ([`Pool::guarded`]).
    pub(crate) guarded: bool,
}

/// How to pick among backends, and the state picking shares.
pub(crate) struct Upstreams {
    set: ArcSwap<BackendSet>,
    balance: Balance,
    hash: HashKey,
    /// Per-backend limit of requests in flight.
    max_connections: Option<u32>,
    /// Requests waiting for room, and how many may.
    queued: AtomicU32,
    queue: u32,
    /// Rung as requests end (with `max_connections`).
    freed: Arc<Notify>,
    /// Whether answers are judged to eject backends: not for a lone
    /// backend without active checks, which then fails as it always did
    /// (there is nowhere else to go).
    pub(crate) passive: bool,
    /// The active checks' interval, for `Retry-After`.
    pub(crate) check_interval: Option<Duration>,
    turn: AtomicUsize,
    budget: AtomicI64,
}

/// Why no backend was picked.
pub(crate) enum NoBackend {
    /// None is healthy: try again after this long.
    Unhealthy(Duration),
    /// Every healthy one is at `max_connections`.
    Full,
}

impl Upstreams {
    /// The backends `list` of `(upstream, weight)`.
    pub(crate) fn new(list: &[(Upstream, u32)], policy: Policy, tls: &UpstreamsTls) -> Result<Upstreams, String> {
        let freed = Arc::new(Notify::new());
        let ring = policy.max_connections.map(|_| freed.clone());
        let backends = list
            .iter()
            .map(|(u, w)| Backend::new(u, *w, &policy, tls, ring.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstreams {
            passive: backends.len() > 1 || policy.check_interval.is_some(),
            set: ArcSwap::from_pointee(BackendSet::new(backends)),
            balance: policy.balance,
            hash: policy.hash.unwrap_or(HashKey::Client),
            max_connections: policy.max_connections,
            queued: AtomicU32::new(0),
            queue: policy.queue,
            freed,
            check_interval: policy.check_interval,
            turn: AtomicUsize::new(0),
            budget: AtomicI64::new(BUDGET_MAX),
        })
    }

    /// The backends now.
    pub(crate) fn current(&self) -> Arc<BackendSet> {
        self.set.load_full()
    }

    /// Replaces the backends: a process app's instances as they get
    /// ready, fail their checks or end. Requests already running keep the
    /// set they loaded; the next ones see the new one.
    pub(crate) fn replace(&self, list: Vec<Arc<Backend>>) {
        self.set.store(Arc::new(BackendSet::new(list)));
    }

    /// Whether picking must count requests in flight.
    pub(crate) fn counts_in_flight(&self) -> bool {
        self.max_connections.is_some() || self.balance == Balance::LeastConnections
    }

    /// Counts a request in `backend`'s `in_flight` while the guard lives
    /// (`None` when the app does not count them). Within
    /// `max_connections` in one atomic step: `pick` saw room, but requests
    /// on other workers may have taken it since (`Err(Full)`).
    pub(crate) fn enter(&self, backend: &Arc<Backend>) -> Result<Option<InFlight>, Full> {
        if !self.counts_in_flight() {
            return Ok(None);
        }
        let max = self.max_connections.unwrap_or(u32::MAX);
        (backend.in_flight)
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .map(|_| Some(InFlight(backend.clone())))
            .map_err(|_| Full)
    }

    /// A request's hash key under `consistent_hash`, if it has one.
    pub(crate) fn key(&self, headers: &HeaderMap, own: &Forwarding, cx: &Ctx) -> Option<u64> {
        if self.balance != Balance::ConsistentHash {
            return None;
        }
        let mut h = rustc_hash::FxHasher::default();
        match &self.hash {
            HashKey::Client => cx.client_ip.hash(&mut h),
            HashKey::Tenant => cx.tenant()?.hash(&mut h),
            // bext's own forwarding fields are not in the map yet.
            HashKey::Header(name) => (own.get(name).or_else(|| headers.get(name)))?.as_bytes().hash(&mut h),
            HashKey::Cookie(name) => cookie(headers, name)?.hash(&mut h),
        }
        Some(mix(h.finish()))
    }

    /// The backend for a request with hash `key`, among those not yet
    /// `tried`.
    pub(crate) fn pick(&self, set: &BackendSet, key: Option<u64>, tried: &[usize]) -> Result<usize, NoBackend> {
        let mut now = None;
        let usable = |i: usize, now: &mut Option<u64>| {
            let b = &set.list[i];
            !tried.contains(&i) && b.has_room(self.max_connections) && b.admits(now)
        };
        if let [only] = &set.list[..] {
            if tried.is_empty() && only.has_room(self.max_connections) && only.admits(&mut now) {
                return Ok(0);
            }
            return Err(self.why_none(set, tried));
        }
        let found = match (self.balance, key) {
            (Balance::ConsistentHash, Some(key)) => {
                // Rendezvous hashing, weighted: highest score wins; a
                // backend out of service hands its keys to each next best.
                let mut order: Vec<(f64, usize)> =
                    (set.list.iter().enumerate()).map(|(i, b)| (score(key, b), i)).collect();
                order.sort_by(|a, b| b.0.total_cmp(&a.0));
                order.into_iter().map(|(_, i)| i).find(|&i| usable(i, &mut now))
            }
            (Balance::LeastConnections, _) => {
                let start = self.turn.fetch_add(1, Relaxed);
                let n = set.list.len();
                let mut best: Option<usize> = None;
                for i in (0..n).map(|k| (start + k) % n) {
                    let fewer = |b: usize| {
                        let (x, y) = (&set.list[i], &set.list[b]);
                        u64::from(x.in_flight.load(Relaxed)) * u64::from(y.weight)
                            < u64::from(y.in_flight.load(Relaxed)) * u64::from(x.weight)
                    };
                    if best.is_none_or(fewer) && usable(i, &mut now) {
                        best = Some(i);
                    }
                }
                best
            }
            _ => {
                let start = self.turn.fetch_add(1, Relaxed);
                let len = set.schedule.len();
                (0..len)
                    .map(|k| set.schedule[(start + k) % len] as usize)
                    .find(|&i| usable(i, &mut now))
            }
        };
        found.ok_or_else(|| self.why_none(set, tried))
    }

    fn why_none(&self, set: &BackendSet, tried: &[usize]) -> NoBackend {
        let now = now_ms();
        let waits = (set.list.iter().enumerate())
            .filter(|(i, _)| !tried.contains(i))
            .map(|(_, b)| b.wait_ms(now, self.check_interval));
        match waits.clone().min() {
            Some(0) => NoBackend::Full,
            Some(ms) => NoBackend::Unhealthy(Duration::from_millis(ms)),
            None => NoBackend::Unhealthy(Duration::from_secs(1)),
        }
    }

    /// Waits, in the bounded queue, until a request ends somewhere or
    /// `deadline` passes; `false` when the queue is full or the deadline
    /// passed (the caller answers 503).
    pub(crate) async fn wait_for_room(&self, deadline: tokio::time::Instant) -> bool {
        if self.queued.fetch_add(1, Relaxed) >= self.queue {
            self.queued.fetch_sub(1, Relaxed);
            return false;
        }
        let woken = tokio::time::timeout_at(deadline, self.freed.notified()).await.is_ok();
        self.queued.fetch_sub(1, Relaxed);
        woken
    }

    /// Counts a request into the retry budget.
    pub(crate) fn deposit(&self) {
        if self.budget.load(Relaxed) < BUDGET_MAX {
            self.budget.fetch_add(BUDGET_PER_REQUEST, Relaxed);
        }
    }

    /// Whether the budget has a retry now (without taking it): a request
    /// keeps a copy of its head for a retry only then.
    pub(crate) fn can_withdraw(&self) -> bool {
        self.budget.load(Relaxed) >= BUDGET_PER_RETRY
    }

    /// Takes one retry from the budget, if it has one.
    pub(crate) fn withdraw(&self) -> bool {
        if self.budget.fetch_sub(BUDGET_PER_RETRY, Relaxed) >= BUDGET_PER_RETRY {
            return true;
        }
        self.budget.fetch_add(BUDGET_PER_RETRY, Relaxed);
        false
    }
}

/// Weighted rendezvous score of `backend` for `key`.
fn score(key: u64, backend: &Backend) -> f64 {
    let h = mix(key ^ backend.id_hash);
    // A uniform number in (0, 1) from the top 53 bits.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(backend.weight) / -u.ln()
}

/// splitmix64's finaliser: spreads FxHash's output over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of cookie `name` in the request's `Cookie` fields.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (k.trim_ascii() == name.as_bytes()).then(|| v[1..].trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::upstream::parse_upstream;

    fn upstreams(weights: &[u32], balance: Balance) -> Upstreams {
        let list: Vec<_> = (weights.iter().enumerate())
            .map(|(i, &w)| (parse_upstream(&format!("http://10.0.0.{i}:80")).unwrap(), w))
            .collect();
        limited(&list, balance, None)
    }

    fn limited(list: &[(Upstream, u32)], balance: Balance, max_connections: Option<u32>) -> Upstreams {
        let policy = Policy {
            balance,
            hash: None,
            max_connections,
            queue: 0,
            check_interval: None,
            connect_timeout: Duration::from_secs(1),
            http2: false,
            guarded: false,
        };
        Upstreams::new(list, policy, &UpstreamsTls::default()).unwrap()
    }

    fn picks(u: &Upstreams, n: usize, key: Option<u64>) -> Vec<usize> {
        let set = u.current();
        (0..n).map(|_| u.pick(&set, key, &[]).ok().unwrap()).collect()
    }

    #[test]
    fn round_robin_follows_the_weights_smoothly() {
        let u = upstreams(&[1, 2], Balance::RoundRobin);
        let p = picks(&u, 6, None);
        assert_eq!(p.iter().filter(|&&i| i == 1).count(), 4);
        // Smooth: the heavy backend never gets three in a row.
        assert!(!p.windows(3).any(|w| w == [1, 1, 1]), "{p:?}");
    }

    #[test]
    fn an_ejected_backend_gets_nothing_until_its_half_open_trial() {
        let u = upstreams(&[1, 1], Balance::RoundRobin);
        let set = u.current();
        set.list[0].failed(true, true);
        assert_eq!(picks(&u, 4, None), [1, 1, 1, 1]);
        set.list[1].failed(true, false);
        match u.pick(&set, None, &[]) {
            Err(NoBackend::Unhealthy(wait)) => assert!(wait <= Duration::from_secs(2) && !wait.is_zero()),
            _ => panic!("both are ejected"),
        }
        // Run the first ejection out: one request may try, the next not.
        set.list[0].ejected_until.store(1, Relaxed);
        assert_eq!(u.pick(&set, None, &[]).ok(), Some(0));
        assert!(u.pick(&set, None, &[]).is_err());
        // Its failure ejects it again, twice as long.
        set.list[0].failed(false, true);
        assert_eq!(set.list[0].ejections.load(Relaxed), 2);
        set.list[0].ejected_until.store(1, Relaxed);
        assert_eq!(u.pick(&set, None, &[]).ok(), Some(0));
        set.list[0].succeeded();
        assert_eq!(picks(&u, 2, None), [0, 0]);
        // Three failed answers in a row eject, a success between resets.
        for _ in 0..2 {
            set.list[0].failed(false, true);
        }
        set.list[0].succeeded();
        set.list[0].failed(false, true);
        assert_eq!(set.list[0].ejected_until.load(Relaxed), 0);
    }

    #[test]
    fn failed_answers_never_eject_the_last_backend_in_service() {
        let u = upstreams(&[1, 1], Balance::RoundRobin);
        let set = u.current();
        // 5xx answers from both (a client asking for a page that fails):
        // the first to reach three goes, the other stays.
        for _ in 0..PASSIVE_FAILURES {
            set.failed(0, false);
            set.failed(1, false);
        }
        assert_ne!(set.list[0].ejected_until.load(Relaxed), 0);
        assert_eq!(set.list[1].ejected_until.load(Relaxed), 0, "the last one stays");
        assert_eq!(picks(&u, 3, None), [1, 1, 1]);
        // A connection that cannot be made is the backend's own fault.
        set.failed(1, true);
        assert!(u.pick(&set, None, &[]).is_err(), "both out after a connect error");
    }

    #[test]
    fn consistent_hash_keeps_a_key_and_moves_only_the_lost_backends_keys() {
        let u = upstreams(&[1, 1, 1], Balance::ConsistentHash);
        let set = u.current();
        let before: Vec<usize> = (0..300u64).map(|k| picks(&u, 1, Some(mix(k)))[0]).collect();
        for k in 0..300u64 {
            assert_eq!(picks(&u, 3, Some(mix(k))), [before[k as usize]; 3]);
        }
        for i in 0..3 {
            let share = before.iter().filter(|&&b| b == i).count();
            assert!((60..140).contains(&share), "backend {i} got {share} of 300");
        }
        set.list[1].down.store(true, Relaxed);
        for k in 0..300u64 {
            let now = picks(&u, 1, Some(mix(k)))[0];
            if before[k as usize] != 1 {
                assert_eq!(now, before[k as usize], "key {k} moved though its backend is up");
            } else {
                assert_ne!(now, 1);
            }
        }
    }

    #[test]
    fn least_connections_and_max_connections() {
        let u = upstreams(&[1, 1], Balance::LeastConnections);
        let set = u.current();
        let _busy = u.enter(&set.list[0]).unwrap();
        assert_eq!(picks(&u, 3, None), [1, 1, 1]);
        let list = [1, 2].map(|i| (parse_upstream(&format!("http://10.0.0.{i}:80")).unwrap(), 1));
        let u = limited(&list, Balance::RoundRobin, Some(1));
        let set = u.current();
        let _a = u.enter(&set.list[0]).unwrap();
        let b = u.enter(&set.list[1]).unwrap();
        assert!(matches!(u.pick(&set, None, &[]), Err(NoBackend::Full)));
        drop(b);
        assert_eq!(picks(&u, 2, None), [1, 1]);
    }

    /// Two requests that both saw room for the last connection: only one
    /// gets it, however their steps interleave across workers.
    #[test]
    fn the_last_connection_goes_to_one_request_only() {
        let list = [(parse_upstream("http://10.0.0.1:80").unwrap(), 1)];
        let u = limited(&list, Balance::RoundRobin, Some(1));
        let set = u.current();
        let (first, second) = (u.pick(&set, None, &[]), u.pick(&set, None, &[]));
        assert_eq!((first.ok(), second.ok()), (Some(0), Some(0)), "both saw room");
        let held = u.enter(&set.list[0]).unwrap();
        assert!(held.is_some());
        assert!(u.enter(&set.list[0]).is_err(), "the second finds it taken");
        drop(held);
        // Eight at once, each keeping what it got: one connection.
        let all = std::thread::scope(|s| {
            let tries: Vec<_> = (0..8)
                .map(|_| s.spawn(|| u.enter(&set.list[0]).ok().flatten()))
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(all.iter().filter(|g| g.is_some()).count(), 1);
    }

    #[test]
    fn a_replaced_set_is_what_the_next_pick_sees() {
        let u = upstreams(&[1, 1], Balance::RoundRobin);
        let all = u.current().list.clone();
        u.replace(vec![all[1].clone()]);
        let set = u.current();
        assert_eq!(set.list.len(), 1);
        assert!(Arc::ptr_eq(&set.list[u.pick(&set, None, &[]).ok().unwrap()], &all[1]));
        u.replace(Vec::new());
        let empty = u.current();
        assert!(matches!(u.pick(&empty, None, &[]), Err(NoBackend::Unhealthy(_))));
        u.replace(all.clone());
        assert_eq!(picks(&u, 4, None).iter().filter(|&&i| i == 0).count(), 2);
    }

    #[test]
    fn the_retry_budget_runs_out_and_refills_with_requests() {
        let u = upstreams(&[1, 1], Balance::RoundRobin);
        let mut granted = 0;
        while u.withdraw() {
            granted += 1;
        }
        assert_eq!(granted, BUDGET_MAX / BUDGET_PER_RETRY);
        for _ in 0..5 {
            u.deposit();
        }
        assert!(u.withdraw());
        assert!(!u.withdraw());
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, "xsid=1; sid = abc ;b=2".parse().unwrap());
        assert_eq!(cookie(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(cookie(&h, "b"), Some(&b"2"[..]));
        assert_eq!(cookie(&h, "si"), None);
    }
}
