//! Deciding the limits of a request in one of the plugin's two places:
//! early (at its priority, before authn) every limit but `by: subject`,
//! late (at `subject_priority`, after authn) the `by: subject` ones, so
//! those count by a subject authn verified. The instance's in-memory
//! store decides, or in edge mode the fleet's Redis with that store as
//! the fallback. The tightest limit of both places is kept in
//! [`Ctx::rate_limit`] for the response's headers. Refusals are counted on
//! `/__bext/metrics` as `bext_plugin_gateway_rejections_total{limit}`.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;

use bext_plugin_abi::metrics::CounterFamily;
use bext_plugin_abi::{Ctx, Fleet, Flow, Hook, PluginError, PluginMetrics, RateLimitState, Request};

use crate::answer::too_many;
use crate::config::{Config, LimitKey};
use crate::gcra::{Decision, IpPrefixes, MemoryStore, RateStore};
use crate::limits::{Limit, Pass};
use crate::shared::SharedStore;

/// Monotonic nanoseconds for the limiter, from a process-wide origin.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When the request arrived, in limiter time: the kernel read the clock
/// then, so deciding costs no second read.
fn nanos_at(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_nanos() as u64
}

/// The limits of one instance and where their buckets are kept.
pub(crate) struct Limiter {
    limits: Vec<Limit>,
    store: Arc<dyn RateStore>,
    /// In edge mode, the fleet's store; `store` is the fallback.
    shared: OnceLock<SharedStore>,
    /// How much of an address is one client.
    pub(crate) prefixes: IpPrefixes,
    /// Where `by: subject` limits decide: `Some(priority)` when there are
    /// any.
    pub(crate) late_priority: Option<i32>,
    /// Refusals by limit name, from `on_init`.
    rejections: OnceLock<CounterFamily>,
}

impl Limiter {
    /// Compiles `app_limit` (first) and `limits`; errors name the field.
    pub(crate) fn new(config: &Config) -> Result<Self, PluginError> {
        let mut limits = Vec::new();
        if let Some(app) = &config.app_limit {
            limits.push(Limit::of_app(app)?);
        }
        for (i, l) in config.limits.iter().enumerate() {
            limits.push(Limit::compile(i, l)?);
        }
        LazyLock::force(&EPOCH);
        let late_priority = limits
            .iter()
            .any(|l| l.by == LimitKey::Subject)
            .then_some(config.subject_priority);
        Ok(Limiter {
            limits,
            store: Arc::new(MemoryStore::new(config.max_keys.max(1024))),
            shared: OnceLock::new(),
            prefixes: IpPrefixes {
                v4: config.ipv4_prefix,
                v6: config.ipv6_prefix,
            },
            late_priority,
            rejections: OnceLock::new(),
        })
    }

    /// Counts refusals, by the limit's name (the operator's, so bounded),
    /// in `metrics` from now on.
    pub(crate) fn publish(&self, metrics: &PluginMetrics) -> Result<(), PluginError> {
        let rejections = metrics
            .counter_family("rejections", "Requests refused by a rate limit, by limit.")
            .map_err(|e| PluginError::Init(e.into()))?;
        let _ = self.rejections.set(rejections);
        Ok(())
    }

    /// The compiled limits, in the order [`RateLimitState::decided_by`]
    /// indexes them.
    pub(crate) fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Whether there is any limit to decide.
    pub(crate) fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Decides in the fleet's store from now on (edge mode).
    pub(crate) fn share(&self, fleet: Arc<dyn Fleet>) {
        let _ = self.shared.set(SharedStore::new(fleet));
    }

    /// Decides the limits of `pass`, here or in the fleet's store.
    pub(crate) fn decide<'a>(
        &'a self,
        req: &'a Request,
        cx: &'a mut Ctx,
        pass: Pass,
    ) -> Hook<'a, Result<Flow, PluginError>> {
        match self.shared.get().filter(|s| s.is_up()) {
            None => Hook::Ready(Ok(self.decide_here(req, cx, pass))),
            Some(shared) => Hook::later(async move { Ok(self.decide_shared(req, cx, shared, pass).await) }),
        }
    }

    /// The state this instance kept for the response's headers, with the
    /// limit it is of (another limiter's state is left to it).
    pub(crate) fn reported(&self, cx: &Ctx) -> Option<(RateLimitState, &Limit)> {
        self.standing(cx)
            .and_then(|r| Some((r, self.limits.get(r.decided_by.1)?)))
    }

    /// Decides every limit of `pass` that applies, in order, stopping at
    /// the first refusal, with this instance's store: no await, no future.
    fn decide_here(&self, req: &Request, cx: &mut Ctx, pass: Pass) -> Flow {
        let now = nanos_at(cx.received_at);
        let mut tightest = self.standing(cx);
        for (index, limit) in self.applying(req, pass) {
            let decision = self.store.check(&limit.key(self.prefixes, req, cx), &limit.quota, now);
            if let Some(refused) = self.count(index, limit, &decision, cx, &mut tightest) {
                return refused;
            }
        }
        Self::keep(cx, tightest)
    }

    /// The same, in edge mode: the fleet's Redis decides (this instance's
    /// store when Redis does not answer in time).
    async fn decide_shared(&self, req: &Request, cx: &mut Ctx, shared: &SharedStore, pass: Pass) -> Flow {
        let now = nanos_at(cx.received_at);
        let mut tightest = self.standing(cx);
        for (index, limit) in self.applying(req, pass) {
            let key = limit.key(self.prefixes, req, cx);
            let decision = match shared.check(&key, &limit.quota).await {
                Some(d) => d,
                None => self.store.check(&key, &limit.quota, now),
            };
            if let Some(refused) = self.count(index, limit, &decision, cx, &mut tightest) {
                return refused;
            }
        }
        Self::keep(cx, tightest)
    }

    /// The limits of `pass` that apply to the request, with their indexes.
    fn applying<'s>(&'s self, req: &'s Request, pass: Pass) -> impl Iterator<Item = (usize, &'s Limit)> + 's {
        let (method, path) = (req.method(), req.uri().path());
        self.limits
            .iter()
            .enumerate()
            .filter(move |(_, l)| pass.decides(l.by) && l.applies(method, path))
    }

    /// The tightest standing this instance already recorded for the
    /// request (the early place's, when the late one decides), so the
    /// `RateLimit-*` headers report the tightest of both.
    fn standing(&self, cx: &Ctx) -> Option<RateLimitState> {
        cx.rate_limit.filter(|r| r.decided_by.0 == self.identity())
    }

    /// Takes in one limit's decision: the 429 if it refuses (its state
    /// kept for the response's headers), else it may be the tightest.
    fn count(
        &self,
        index: usize,
        limit: &Limit,
        decision: &Decision,
        cx: &mut Ctx,
        tightest: &mut Option<RateLimitState>,
    ) -> Option<Flow> {
        let state = RateLimitState {
            limit: limit.quota.burst,
            remaining: decision.remaining,
            reset: decision.reset,
            decided_by: (self.identity(), index),
        };
        if !decision.allowed {
            tracing::info!(
                target: "bext::gateway",
                request_id = %cx.request_id,
                limit = %limit.name,
                "rate limited"
            );
            cx.rate_limit = Some(state);
            if let Some(r) = self.rejections.get() {
                r.get_or_create(&vec![("limit", limit.name.clone())]).inc();
            }
            return Some(too_many(decision));
        }
        if tightest.is_none_or(|t| decision.remaining < t.remaining) {
            *tightest = Some(state);
        }
        None
    }

    /// Keeps the tightest limit's state for the response's headers.
    fn keep(cx: &mut Ctx, tightest: Option<RateLimitState>) -> Flow {
        if tightest.is_some() {
            cx.rate_limit = tightest;
        }
        Flow::Continue
    }

    /// This instance, as [`RateLimitState::decided_by`] names it.
    fn identity(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

#[cfg(test)]
mod tests {
    use bext_plugin_abi::{Body, RequestId};

    use super::*;

    fn limiter(limits: serde_json::Value) -> Limiter {
        Limiter::new(&bext_plugin_abi::decode_config(serde_json::json!({ "limits": limits })).unwrap()).unwrap()
    }

    fn decide(l: &Limiter, cx: &mut Ctx, pass: Pass) -> bool {
        let req = http::Request::builder().uri("/").body(Body::empty()).unwrap();
        matches!(l.decide_here(&req, cx, pass), Flow::Continue)
    }

    #[test]
    fn the_tightest_of_both_places_is_kept_for_this_instance_only() {
        let l = limiter(serde_json::json!([
            { "by": "ip", "rpm": 60, "burst": 5 },
            { "by": "subject", "rpm": 60, "burst": 2 },
        ]));
        let mut cx = Ctx::new(RequestId(1), "192.0.2.1:1".parse().unwrap());
        assert!(decide(&l, &mut cx, Pass::Early));
        assert_eq!(
            l.reported(&cx).map(|(s, _)| (s.remaining, s.decided_by.1)),
            Some((4, 0))
        );
        assert!(decide(&l, &mut cx, Pass::Late));
        assert_eq!(
            l.reported(&cx).map(|(s, _)| (s.remaining, s.decided_by.1)),
            Some((1, 1))
        );
        let other = limiter(serde_json::json!([{ "rpm": 60 }]));
        assert!(other.reported(&cx).is_none(), "another instance's state");
    }

    #[test]
    fn the_first_refusal_answers_and_is_reported() {
        let l = limiter(serde_json::json!([{ "rpm": 60, "burst": 1 }, { "rpm": 600 }]));
        let mut cx = Ctx::new(RequestId(1), "192.0.2.1:1".parse().unwrap());
        assert!(decide(&l, &mut cx, Pass::Early));
        assert!(!decide(&l, &mut cx, Pass::Early), "the second within a second");
        let (state, limit) = l.reported(&cx).unwrap();
        assert_eq!((state.remaining, limit.name.as_str()), (0, "limit-0"));
        assert_eq!(l.late_priority, None, "no subject limit, no late place");
    }
}
