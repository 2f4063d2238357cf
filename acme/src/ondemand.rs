//! Certificates for names nobody configured (tenants' own domains), on
//! the model of Caddy's `on_demand_tls`: the first handshake for such a
//! name asks `on_demand_ask?domain=NAME`; a 200 lets one order start. A
//! name the operator vouched for ([`OnDemand::vouch`]: the tenants'
//! domains recorded with `bext domains add`) is ordered without asking;
//! without `on_demand_ask`, only those are. The
//! [`Gate`] (pure, tested without I/O) bounds it: at most N orders a
//! minute, a refused or failed name is refused again without asking for a
//! while, and a bounded number of names is pending at once. Concurrent
//! handshakes for one name wait for the same order, each up to a timeout.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::certificate::Certificate;
use crate::error::AcmeError;
use crate::manager::{Manager, OnCertificate};
use crate::names::acme_name;

/// Names being ordered at once, at most; more are refused as busy (a flood
/// of made-up SNI names must not become a flood of asks).
const MAX_PENDING: usize = 256;

/// Refused names remembered, at most; the oldest are forgotten first.
const MAX_REMEMBERED: usize = 10_000;

/// The on-demand limits, as pure state over an injected clock.
#[derive(Debug)]
pub struct Gate {
    per_minute: usize,
    remember: Duration,
    started: VecDeque<Instant>,
    refused: HashMap<Box<str>, (Instant, Arc<str>)>,
    refused_order: VecDeque<(Instant, Box<str>)>,
}

impl Gate {
    /// At most `per_minute` orders in any 60 seconds; refusals remembered
    /// for `remember`.
    pub fn new(per_minute: u32, remember: Duration) -> Gate {
        Gate {
            per_minute: per_minute.max(1) as usize,
            remember,
            started: VecDeque::new(),
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
        }
    }

    /// Why `name` is still refused at `now`, if it is.
    pub fn refused(&mut self, name: &str, now: Instant) -> Option<Arc<str>> {
        self.forget_expired(now);
        self.refused.get(name).map(|(_, why)| why.clone())
    }

    /// Remembers that `name` was refused (or failed) at `now`.
    pub fn remember(&mut self, name: &str, why: &str, now: Instant) {
        self.forget_expired(now);
        if self.remember.is_zero() {
            return;
        }
        while self.refused.len() >= MAX_REMEMBERED {
            match self.refused_order.pop_front() {
                Some((_, old)) => {
                    self.refused.remove(&old);
                }
                None => break,
            }
        }
        let until = now + self.remember;
        self.refused.insert(name.into(), (until, why.into()));
        self.refused_order.push_back((until, name.into()));
    }

    /// Forgets that `name` was refused (the operator vouched for it since).
    pub fn forget(&mut self, name: &str) {
        self.refused.remove(name);
    }

    /// Takes one order slot at `now`, if the last minute has one left.
    pub fn try_start_order(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.started.front() {
            if now.duration_since(t) >= Duration::from_secs(60) {
                self.started.pop_front();
            } else {
                break;
            }
        }
        if self.started.len() >= self.per_minute {
            return false;
        }
        self.started.push_back(now);
        true
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.refused_order.front() {
            if *until > now {
                break;
            }
            let (until, name) = self.refused_order.pop_front().expect("front exists");
            // Only if it was not refused again later.
            if self.refused.get(&name).is_some_and(|(u, _)| *u == until) {
                self.refused.remove(&name);
            }
        }
    }
}

type Outcome = Option<Result<Arc<Certificate>, Arc<AcmeError>>>;

/// On-demand issuance: [`OnDemand::certificate`] is what the TLS accept
/// path awaits for a name its SNI store does not know.
pub struct OnDemand {
    manager: Manager,
    /// `on_demand_ask`, if set: names nobody vouched for are ordered only
    /// when it answers 200.
    ask: Option<url::Url>,
    /// Names ordered without asking: tenants' domains the operator added.
    vouched: Mutex<HashSet<Box<str>>>,
    wait: Duration,
    gate: Mutex<Gate>,
    pending: Mutex<HashMap<Box<str>, watch::Receiver<Outcome>>>,
    on_cert: OnCertificate,
    /// Where asks, orders and renewals run (the kernel's control
    /// runtime), whichever worker's handshake started them.
    runtime: tokio::runtime::Handle,
    /// The renewal tasks of the names it issued, stopped when it is dropped
    /// (a reload with another `[platform.acme]` replaces it).
    keepers: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for OnDemand {
    fn drop(&mut self) {
        for keeper in self.keepers.get_mut().unwrap_or_else(PoisonError::into_inner).drain(..) {
            keeper.abort();
        }
    }
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("ask", &self.ask.as_ref().map(url::Url::as_str))
            .finish()
    }
}

impl OnDemand {
    /// On-demand issuance through `manager`, gated by its configuration's
    /// `on_demand_*` keys; without `on_demand_ask`, for vouched names only.
    /// `None` when `on_demand_ask` is not a URL (the configuration check
    /// refuses it first).
    /// Each certificate it gets, and each renewal of it, goes to `on_cert`.
    /// Asks, orders and renewals run on `runtime` (the control runtime),
    /// not on the serving worker whose handshake needed the name.
    pub fn new(manager: Manager, on_cert: OnCertificate, runtime: tokio::runtime::Handle) -> Option<Arc<OnDemand>> {
        let config = manager.config();
        let ask = match config.on_demand_ask.as_deref() {
            Some(ask) => Some(url::Url::parse(ask).ok()?),
            None => None,
        };
        let gate = Gate::new(config.on_demand_orders_per_minute, config.on_demand_remember.0);
        Some(Arc::new(OnDemand {
            wait: config.on_demand_wait.0,
            manager,
            ask,
            vouched: Mutex::new(HashSet::new()),
            gate: Mutex::new(gate),
            pending: Mutex::new(HashMap::new()),
            on_cert,
            runtime,
            keepers: Mutex::new(Vec::new()),
        }))
    }

    /// Replaces the names ordered without asking (canonical, as
    /// [`acme_name`] spells them). A name that leaves the set is asked
    /// about again (refused without `on_demand_ask`) from its next order;
    /// one that joins it is no longer refused for an earlier refusal.
    pub fn vouch(&self, names: impl IntoIterator<Item = String>) {
        let names: HashSet<Box<str>> = names.into_iter().map(String::into_boxed_str).collect();
        let mut vouched = self.vouched.lock().unwrap_or_else(PoisonError::into_inner);
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        for name in names.difference(&vouched) {
            gate.forget(name);
        }
        *vouched = names;
    }

    /// Whether `name` (canonical) is ordered without asking.
    pub fn is_vouched(&self, name: &str) -> bool {
        self.vouched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    /// The certificate for `server_name` (a ClientHello's SNI, any
    /// spelling): the stored one, or a new order if the ask allows it.
    /// Waits at most `on_demand_wait`; the order goes on after a timeout.
    pub async fn certificate(self: &Arc<Self>, server_name: &str) -> Result<Arc<Certificate>, Arc<AcmeError>> {
        let name = acme_name(server_name, false).map_err(Arc::new)?;
        if self.ask.is_none() && !self.is_vouched(&name) {
            // Nothing to ask and nobody vouched: refused at once, and not
            // remembered (it may be vouched for by the next reload).
            return Err(Arc::new(AcmeError::Refused {
                name,
                reason: "not a tenant's domain, and no on_demand_ask to ask".into(),
            }));
        }
        let mut rx = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get(name.as_str()) {
                Some(rx) => rx.clone(),
                None => {
                    let refused = self
                        .gate
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .refused(&name, Instant::now());
                    if let Some(why) = refused {
                        return Err(Arc::new(AcmeError::Refused {
                            name,
                            reason: format!("{why} (remembered)"),
                        }));
                    }
                    if pending.len() >= MAX_PENDING {
                        return Err(Arc::new(AcmeError::Busy {
                            name,
                            reason: format!("{MAX_PENDING} names are already being ordered"),
                        }));
                    }
                    let (tx, rx) = watch::channel(None);
                    pending.insert(name.as_str().into(), rx.clone());
                    self.runtime.spawn(self.clone().issue(name.clone(), tx));
                    rx
                }
            }
        };
        let waited = tokio::time::timeout(self.wait, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(outcome)) => outcome.clone().expect("waited for Some"),
            Ok(Err(_)) => Err(Arc::new(AcmeError::Protocol {
                during: "on-demand order",
                reason: "the ordering task ended without an answer".into(),
            })),
            Err(_) => Err(Arc::new(AcmeError::Timeout {
                during: "on-demand certificate wait",
                after: self.wait,
            })),
        }
    }

    /// Asks, orders, publishes the outcome to every waiter, then keeps the
    /// new certificate fresh.
    async fn issue(self: Arc<Self>, name: String, tx: watch::Sender<Outcome>) {
        let names = vec![name.clone()];
        let outcome = match self.manager.stored(&names) {
            // Issued before (a restart): serve it; its keeper renews it.
            Some(cert) if cert.not_after > std::time::SystemTime::now() => Ok(cert),
            _ => self.ask_and_order(&name).await,
        };
        let outcome = outcome.map_err(Arc::new);
        match &outcome {
            Ok(cert) => (self.on_cert)(cert.clone()),
            Err(e) if !matches!(**e, AcmeError::Busy { .. }) => {
                tracing::warn!(name = %name, error = %e, "on-demand certificate refused or failed");
                self.gate.lock().unwrap_or_else(PoisonError::into_inner).remember(
                    &name,
                    &e.to_string(),
                    Instant::now(),
                );
            }
            Err(e) => tracing::warn!(name = %name, error = %e, "on-demand certificate not ordered"),
        }
        // Out of `pending` before the waiters hear: a handshake that comes
        // after them finds the refusal remembered (or the certificate in
        // the kernel's store), never a finished entry.
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name.as_str());
        let _ = tx.send(Some(outcome.clone()));
        if let Ok(cert) = outcome {
            // Its own task, holding no `Arc<OnDemand>`, so dropping the
            // `OnDemand` can stop it.
            let (manager, on_cert) = (self.manager.clone(), self.on_cert.clone());
            let keeper = self
                .runtime
                .spawn(async move { manager.keep_fresh_from(names, Some(cert), on_cert).await });
            let mut keepers = self.keepers.lock().unwrap_or_else(PoisonError::into_inner);
            keepers.retain(|k| !k.is_finished());
            keepers.push(keeper.abort_handle());
        }
    }

    async fn ask_and_order(&self, name: &str) -> Result<Arc<Certificate>, AcmeError> {
        if !self.is_vouched(name) {
            self.ask(name).await?;
        }
        let allowed = self
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_start_order(Instant::now());
        if !allowed {
            return Err(AcmeError::Busy {
                name: name.to_owned(),
                reason: format!(
                    "at most {} on-demand orders a minute",
                    self.manager.config().on_demand_orders_per_minute
                ),
            });
        }
        self.manager.obtain(&[name.to_owned()]).await
    }

    /// Whether `on_demand_ask` allows `name`: `Ok` for a 200.
    async fn ask(&self, name: &str) -> Result<(), AcmeError> {
        let refused = |reason: String| AcmeError::Refused {
            name: name.to_owned(),
            reason,
        };
        let Some(ask) = &self.ask else {
            return Err(refused(
                "no longer a tenant's domain, and no on_demand_ask to ask".into(),
            ));
        };
        let mut url = ask.clone();
        url.query_pairs_mut().append_pair("domain", name);
        let status = self
            .manager
            .http()
            .get_status(url.as_str())
            .await
            .map_err(|e| refused(format!("the ask {ask} failed: {e}")))?;
        if status != http::StatusCode::OK {
            return Err(refused(format!("the ask answered {}", status.as_u16())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_orders_in_any_minute() {
        let t0 = Instant::now();
        let mut g = Gate::new(3, Duration::from_secs(600));
        assert!(g.try_start_order(t0));
        assert!(g.try_start_order(t0 + Duration::from_secs(10)));
        assert!(g.try_start_order(t0 + Duration::from_secs(20)));
        assert!(!g.try_start_order(t0 + Duration::from_secs(30)));
        assert!(!g.try_start_order(t0 + Duration::from_secs(59)));
        // The first slot frees a minute after it was taken, not before.
        assert!(g.try_start_order(t0 + Duration::from_secs(60)));
        assert!(!g.try_start_order(t0 + Duration::from_secs(69)));
        assert!(g.try_start_order(t0 + Duration::from_secs(70)));
    }

    #[test]
    fn refusals_are_remembered_for_a_while_then_forgotten() {
        let t0 = Instant::now();
        let mut g = Gate::new(10, Duration::from_secs(600));
        g.remember("a.test", "ask answered 403", t0);
        assert_eq!(
            g.refused("a.test", t0 + Duration::from_secs(599)).as_deref(),
            Some("ask answered 403")
        );
        assert_eq!(g.refused("b.test", t0), None);
        assert_eq!(g.refused("a.test", t0 + Duration::from_secs(600)), None);
        // Refused again later: the newer memory counts, not the first.
        g.remember("b.test", "first", t0);
        g.remember("b.test", "second", t0 + Duration::from_secs(300));
        assert_eq!(
            g.refused("b.test", t0 + Duration::from_secs(700)).as_deref(),
            Some("second")
        );
        assert_eq!(g.refused("b.test", t0 + Duration::from_secs(900)), None);
    }

    #[test]
    fn a_forgotten_refusal_is_not_refused_again() {
        let t0 = Instant::now();
        let mut g = Gate::new(10, Duration::from_secs(600));
        g.remember("a.test", "no", t0);
        g.forget("a.test");
        assert_eq!(g.refused("a.test", t0), None);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut g = Gate::new(10, Duration::from_secs(600));
        for i in 0..MAX_REMEMBERED + 5 {
            g.remember(&format!("n{i}.test"), "no", t0);
        }
        assert!(g.refused.len() <= MAX_REMEMBERED);
        assert_eq!(g.refused("n0.test", t0), None, "the oldest went first");
        assert!(g.refused(&format!("n{}.test", MAX_REMEMBERED + 4), t0).is_some());
        let mut off = Gate::new(1, Duration::ZERO);
        off.remember("a.test", "no", t0);
        assert_eq!(off.refused("a.test", t0), None);
    }
}
