//! Edge mode: several bext instances sharing one Redis, for the L2 cache
//! tier, cache invalidation across the fleet and the gateway's shared
//! rate limits.
//!
//! Redis trouble must never take a site down, so every call here has a
//! short deadline and fails soft (`None`, `false`, `0`): callers fall back
//! to what they have locally. The connection is re-established in the
//! background; [`Fleet::is_up`] says how the last call or health probe
//! went, for `/__bext/health`.
//!
//! Plugins see it only as plugin-abi's [`Fleet`], which [`Edge`]
//! implements: they depend neither on Redis nor on this crate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bext_plugin_abi::{Fleet, FleetMessages};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::broadcast;

mod kv;
pub use kv::{KvEntry, KvListed};

/// Longest a cache read or write may wait for Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);

/// How often the connection is probed while Redis is down (and up).
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Why edge mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The URL is not a Redis URL.
    #[error("redis url `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks that `url` is a Redis URL `Edge::start` can use, without
/// connecting: a configuration's `[redis] url` is refused at load with
/// what to write instead, rather than edge mode silently staying off.
pub fn check_url(url: &str) -> Result<(), String> {
    if !url.contains("://") {
        return Err(format!(
            "`{url}` has no scheme: write \"redis://{url}\" (or \"rediss://{url}\" for TLS)"
        ));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("`{url}` is not a Redis URL ({e}): write it like \"redis://host:6379/0\""))
}

/// The shared Redis of an edge fleet.
pub struct Edge {
    prefix: String,
    conn: ConnectionManager,
    up: AtomicBool,
    messages: broadcast::Sender<Vec<u8>>,
    /// Lua scripts by the address of their source.
    scripts: Mutex<HashMap<usize, redis::Script>>,
}

impl Edge {
    /// Connects lazily to `url`: bext starts (and serves from its own
    /// memory) even when Redis is down, and connects when it comes up.
    /// Keys and channels all start with `prefix`. Must be called inside a
    /// tokio runtime; the probe and subscriber tasks run on it.
    pub fn start(url: &str, prefix: &str) -> Result<Arc<Edge>, EdgeError> {
        let client = redis::Client::open(url).map_err(|e| EdgeError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| EdgeError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let (messages, _) = broadcast::channel(1024);
        let edge = Arc::new(Edge {
            prefix: prefix.to_owned(),
            conn,
            up: AtomicBool::new(false),
            messages,
            scripts: Mutex::default(),
        });
        tokio::spawn(probe(Arc::downgrade(&edge)));
        tokio::spawn(subscribe(Arc::downgrade(&edge), client));
        Ok(edge)
    }

    fn mark<T>(&self, r: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match r {
            Ok(Ok(v)) => {
                self.up.store(true, Ordering::Relaxed);
                Some(v)
            }
            Ok(Err(e)) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(target: "bext::edge", error = %e, "redis unreachable; serving from local memory");
                }
                None
            }
            Err(_) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(target: "bext::edge", "redis too slow; serving from local memory");
                }
                None
            }
        }
    }

    /// `script` ready to run by its hash: hashed once per script, not per
    /// call (plugins pass the same `&'static str` each time).
    fn script(&self, source: &'static str) -> redis::Script {
        let mut scripts = self.scripts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts
            .entry(source.as_ptr() as usize)
            .or_insert_with(|| redis::Script::new(source))
            .clone()
    }
}

#[async_trait::async_trait]
impl Fleet for Edge {
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut c = self.conn.clone();
        let r = tokio::time::timeout(CALL_TIMEOUT, c.get::<_, Option<Vec<u8>>>(key)).await;
        self.mark(r).flatten()
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration, sets: &[String]) -> bool {
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(ms).ignore();
        for s in sets {
            pipe.cmd("SADD").arg(s).arg(key).ignore();
            pipe.cmd("PEXPIRE").arg(s).arg(ms).arg("GT").ignore();
            pipe.cmd("PEXPIRE").arg(s).arg(ms).arg("NX").ignore();
        }
        let mut c = self.conn.clone();
        let r = tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut c)).await;
        self.mark(r).is_some()
    }

    async fn delete_listed(&self, sets: &[String]) -> usize {
        let mut c = self.conn.clone();
        let mut removed = 0;
        for s in sets {
            let r = tokio::time::timeout(CALL_TIMEOUT, c.smembers::<_, Vec<String>>(s)).await;
            let Some(keys) = self.mark(r) else { return removed };
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("DEL").arg(k).ignore();
            }
            pipe.cmd("DEL").arg(s).ignore();
            let r = tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut c)).await;
            if self.mark(r).is_some() {
                removed += keys.len();
            }
        }
        removed
    }

    async fn run_script(&self, script: &'static str, keys: &[&[u8]], args: &[u64]) -> Option<Vec<i64>> {
        let script = self.script(script);
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(*k);
        }
        for a in args {
            call.arg(*a);
        }
        let mut c = self.conn.clone();
        let r = tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<Vec<i64>>(&mut c)).await;
        self.mark(r)
    }

    async fn publish(&self, payload: &[u8]) -> bool {
        let mut c = self.conn.clone();
        let channel = self.key("bus");
        let r = tokio::time::timeout(CALL_TIMEOUT, c.publish::<_, _, ()>(channel, payload)).await;
        self.mark(r).is_some()
    }

    fn messages(&self) -> Box<dyn FleetMessages> {
        Box::new(Bus(self.messages.subscribe()))
    }
}

/// One listener's place on the bus.
struct Bus(broadcast::Receiver<Vec<u8>>);

#[async_trait::async_trait]
impl FleetMessages for Bus {
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.0.recv().await {
                Ok(message) => return Some(message),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Pings Redis so health is right even when no request uses it, and so a
/// lazy connection is made as soon as Redis is there.
async fn probe(edge: std::sync::Weak<Edge>) {
    let mut first = true;
    loop {
        let Some(e) = edge.upgrade() else { return };
        let mut c = e.conn.clone();
        let r = tokio::time::timeout(CALL_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut c)).await;
        let was = e.is_up();
        match e.mark(r).is_some() {
            true if !was => tracing::info!(target: "bext::edge", "redis reachable"),
            // `mark` warns only when Redis goes away: one that never
            // answered is said once too, not left to look shared.
            false if first => tracing::warn!(
                target: "bext::edge",
                "redis unreachable at start; serving from local memory until it answers"
            ),
            _ => {}
        }
        first = false;
        drop(e);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Listens on the bus channel, resubscribing after any failure.
async fn subscribe(edge: std::sync::Weak<Edge>, client: redis::Client) {
    loop {
        let Some(channel) = edge.upgrade().map(|e| e.key("bus")) else {
            return;
        };
        let connected = tokio::time::timeout(Duration::from_millis(500), client.get_async_pubsub()).await;
        if let Ok(Ok(mut pubsub)) = connected
            && pubsub.subscribe(&channel).await.is_ok()
        {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let Some(e) = edge.upgrade() else { return };
                let _ = e.messages.send(msg.get_payload_bytes().to_vec());
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
