//! Edge mode for the ACME service: the pipeline owns the fleet's Redis
//! ([`bext_edge::Edge`]); the kernel lends it to the ACME service, which
//! outlives pipelines, as bext-acme's [`SharedStore`] each time a
//! pipeline is swapped in. bext-acme so depends on neither Redis nor
//! plugin-abi's `Fleet`; the lock is a Lua script here.

use std::sync::Arc;
use std::time::Duration;

use bext_acme::SharedStore;
use bext_edge::Edge;
use bext_plugin_abi::Fleet;
use futures_util::stream::BoxStream;

use super::Acme;

/// Takes the lock unless someone holds it (`SET NX PX`).
const LOCK: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end return {0}";

/// Extends the lock only for its holder.
const EXTEND: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1} end return {0}";

/// Releases the lock only for its holder (a holder whose lock expired
/// must not release the next holder's).
const UNLOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return {1} end return {0}";

impl Acme {
    /// Shares certificates and orders with the fleet of the pipeline just
    /// swapped in (edge mode), or stops sharing when it has none. A
    /// pipeline that keeps the same `[redis]` keeps the same connection:
    /// nothing changes then.
    pub fn use_fleet(&self, fleet: Option<&Arc<Edge>>) {
        let mut current = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        let same = match (&*current, fleet) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        *current = fleet.cloned();
        let store = fleet.map(|edge| Arc::new(EdgeStore(edge.clone())) as Arc<dyn SharedStore>);
        if store.is_some() {
            tracing::info!("ACME: sharing certificates, orders and the account with the fleet");
        }
        self.manager.share(store, &self.control);
    }
}

/// The fleet's Redis as ACME's shared store.
struct EdgeStore(Arc<Edge>);

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

#[async_trait::async_trait]
impl SharedStore for EdgeStore {
    fn key(&self, rest: &str) -> String {
        self.0.key(rest)
    }

    fn is_up(&self) -> bool {
        self.0.is_up()
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.get(key).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        self.0.put(key, value, ttl, &[]).await
    }

    async fn lock(&self, key: &str, token: u64, ttl: Duration) -> Option<bool> {
        let r = self
            .0
            .run_script(LOCK, &[key.as_bytes()], &[token, millis(ttl)])
            .await?;
        Some(r.first() == Some(&1))
    }

    async fn extend(&self, key: &str, token: u64, ttl: Duration) -> bool {
        let r = self
            .0
            .run_script(EXTEND, &[key.as_bytes()], &[token, millis(ttl)])
            .await;
        r.is_some_and(|r| r.first() == Some(&1))
    }

    async fn unlock(&self, key: &str, token: u64) {
        self.0.run_script(UNLOCK, &[key.as_bytes()], &[token]).await;
    }

    async fn publish(&self, payload: &[u8]) -> bool {
        self.0.publish(payload).await
    }

    fn messages(&self) -> BoxStream<'static, Vec<u8>> {
        let bus = self.0.messages();
        Box::pin(futures_util::stream::unfold(bus, |mut bus| async move {
            let message = bus.next().await?;
            Some((message, bus))
        }))
    }
}
