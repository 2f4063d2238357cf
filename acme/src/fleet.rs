//! Edge mode: instances sharing a store (the fleet's Redis, which the
//! kernel lends as a [`SharedStore`]) order each certificate once.
//!
//! Before ordering a set of names an instance takes a lock on it in the
//! store (expiring, extended while the order runs, released after); the
//! certificate it gets goes to the store and a bus message tells the
//! others, which load it instead of ordering. An instance that finds the
//! lock taken waits for the certificate (woken by the bus, polling as a
//! fallback) and tries the lock again if none comes. Challenge answers go
//! over the bus too, so whichever instance the ACME server's validation
//! reaches can answer it. The account is shared: one per directory for the
//! fleet. A store that cannot be reached is waited on 3 s at most: the instance
//! orders alone, as without a fleet. The local storage stays the truth for
//! restarts; the store is how instances learn from each other.
//!
//! - this file: the [`SharedStore`] trait, the store's keys, and
//!   [`Manager::share`];
//! - `fleet/ordering.rs`: a certificate the fleet's way (lock, wait,
//!   order, store, load) and the shared account;
//! - `fleet/bus.rs`: what instances tell each other (certificates stored,
//!   challenge answers) and the task reading it.

mod bus;
mod ordering;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;

use crate::manager::Manager;
use crate::storage::{short_hash, sorted};

pub(crate) use bus::{CHALLENGE_SPREAD, Spread};

/// The fleet's shared store as ACME needs it: keys with expiry, a lock
/// that expires, and a broadcast bus. A trait so this crate depends
/// neither on Redis nor on the kernel's client for it. Every call fails
/// soft (`None`, `false`) with a short deadline, like the fleet's store.
#[async_trait::async_trait]
pub trait SharedStore: Send + Sync {
    /// `rest` under the fleet's prefix, so fleets sharing a server stay
    /// apart.
    fn key(&self, rest: &str) -> String;

    /// Whether the last call (or the store's own probe) reached it.
    fn is_up(&self) -> bool;

    /// The value under `key`; `None` when absent or when the store fails.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Stores `value` under `key` for `ttl`; whether the store took it.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> bool;

    /// Takes the lock `key` for `ttl` with `token` unless someone holds it
    /// (`SET NX PX`): `Some(true)` taken, `Some(false)` held by another,
    /// `None` when the store failed.
    async fn lock(&self, key: &str, token: u64, ttl: Duration) -> Option<bool>;

    /// Extends the lock `key` to `ttl` if `token` still holds it; whether
    /// it did.
    async fn extend(&self, key: &str, token: u64, ttl: Duration) -> bool;

    /// Releases the lock `key` if `token` still holds it.
    async fn unlock(&self, key: &str, token: u64);

    /// Sends `payload` to every instance of the fleet (this one too).
    async fn publish(&self, payload: &[u8]) -> bool;

    /// What instances publish from now on.
    fn messages(&self) -> BoxStream<'static, Vec<u8>>;
}

/// How long a lock on a set of names lives unless its holder extends it:
/// a crashed holder blocks the others this long at most.
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(30);

/// The store's keys for one set of names from one ACME directory.
pub(crate) struct Keys {
    /// The certificate.
    pub(crate) cert: String,
    /// The lock taken to order it.
    pub(crate) lock: String,
    /// Why the fleet's last order for it failed, for a short while: the
    /// others back off instead of ordering again at once.
    pub(crate) failed: String,
}

impl Keys {
    /// The names in any order are the same keys; another directory
    /// (staging, production) is another certificate.
    pub(crate) fn new(store: &dyn SharedStore, directory: &str, names: &[String]) -> Keys {
        let id = short_hash(&format!("{directory}\n{}", sorted(names).join(",")));
        Keys {
            cert: store.key(&format!("acme:cert:{id}")),
            lock: store.key(&format!("acme:lock:{id}")),
            failed: store.key(&format!("acme:failed:{id}")),
        }
    }
}

pub(crate) fn account_key(store: &dyn SharedStore, directory: &str) -> String {
    store.key(&format!("acme:account:{}", short_hash(directory)))
}

/// The fleet's store and the follower task reading its bus.
pub(crate) struct Attached {
    pub(crate) store: Arc<dyn SharedStore>,
    follower: tokio::task::AbortHandle,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Manager {
    /// Shares certificates, orders and the account with the fleet behind
    /// `store` (edge mode), or stops sharing (`None`). The bus is read on
    /// `runtime`. The kernel calls it with each new pipeline's fleet.
    pub fn share(&self, store: Option<Arc<dyn SharedStore>>, runtime: &tokio::runtime::Handle) {
        let attached = store.map(|store| {
            // The task holds the manager weakly: the manager holds the task.
            let manager = Arc::downgrade(&self.inner);
            let follower = runtime.spawn(bus::follow(manager, store.clone())).abort_handle();
            Attached { store, follower }
        });
        let mut slot = self.inner.fleet.write().unwrap_or_else(|e| e.into_inner());
        *slot = attached;
    }

    /// The fleet's store, in edge mode.
    pub(crate) fn shared_store(&self) -> Option<Arc<dyn SharedStore>> {
        let slot = self.inner.fleet.read().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|a| a.store.clone())
    }
}
