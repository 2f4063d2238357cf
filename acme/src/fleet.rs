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
//! fleet. A store that cannot be reached is never waited on: the instance
//! orders alone, as without a fleet. The local storage stays the truth for
//! restarts; the store is how instances learn from each other.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;
use crate::error::AcmeError;
use crate::manager::{Inner, Manager};
use crate::names::acme_name;
use crate::renewal::renew_at;
use crate::storage::{AccountFile, short_hash, sorted};

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

/// How often the holder extends its lock while its order runs.
const LOCK_EXTEND_EVERY: Duration = Duration::from_secs(10);

/// How often an instance waiting for another's order looks for the
/// certificate when no bus message woke it.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How long a store that is still connecting (at start) is waited for
/// before the instance orders alone.
const CONNECT_GRACE: Duration = Duration::from_secs(3);

/// How long a challenge answer is given to reach the other instances
/// before the ACME server is told to validate: the bus takes a
/// millisecond, a busy instance's control runtime longer; an order takes
/// seconds anyway.
pub(crate) const CHALLENGE_SPREAD: Duration = Duration::from_secs(1);

/// How long the shared account stays in the store (accounts do not
/// expire at the ACME server; each new one is stored again).
const ACCOUNT_TTL: Duration = Duration::from_secs(10 * 365 * 86400);

/// The start of every bus message of ours: not JSON, so the other bus
/// readers (ISR invalidations) ignore them.
const BUS_PREFIX: &[u8] = b"bext-acme ";

/// What instances tell each other over the bus. `from` is the sender's
/// random id, so an instance ignores its own messages.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Message {
    /// A certificate was stored under `key` (new or renewed).
    Certificate { from: u64, key: String },
    /// Answer this HTTP-01 token while the sender's order validates.
    Http01 {
        from: u64,
        token: String,
        key_authorization: String,
    },
    /// Answer TLS-ALPN-01 for `name` with this digest (hex).
    TlsAlpn01 { from: u64, name: String, digest: String },
    /// The sender's validation of `token` is over.
    Http01Done { from: u64, token: String },
    /// The sender's validation of `name` is over.
    TlsAlpn01Done { from: u64, name: String },
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        let mut out = BUS_PREFIX.to_vec();
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    fn decode(payload: &[u8]) -> Option<Message> {
        serde_json::from_slice(payload.strip_prefix(BUS_PREFIX)?).ok()
    }

    fn sender(&self) -> u64 {
        match self {
            Message::Certificate { from, .. }
            | Message::Http01 { from, .. }
            | Message::TlsAlpn01 { from, .. }
            | Message::Http01Done { from, .. }
            | Message::TlsAlpn01Done { from, .. } => *from,
        }
    }
}

/// A certificate as the store keeps it.
#[derive(Serialize, Deserialize)]
struct Shared {
    directory: String,
    names: Vec<String>,
    chain_pem: String,
    key_pem: String,
}

/// The store's keys for one set of names from one ACME directory.
pub(crate) struct Keys {
    /// The certificate.
    pub(crate) cert: String,
    /// The lock taken to order it.
    pub(crate) lock: String,
}

impl Keys {
    /// The names in any order are the same keys; another directory
    /// (staging, production) is another certificate.
    pub(crate) fn new(store: &dyn SharedStore, directory: &str, names: &[String]) -> Keys {
        let id = short_hash(&format!("{directory}\n{}", sorted(names).join(",")));
        Keys {
            cert: store.key(&format!("acme:cert:{id}")),
            lock: store.key(&format!("acme:lock:{id}")),
        }
    }
}

fn account_key(store: &dyn SharedStore, directory: &str) -> String {
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
            let follower = runtime.spawn(follow(manager, store.clone())).abort_handle();
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

    /// A certificate for `names` the fleet's way: one another instance
    /// stored (newer than `replacing`, not due), else an order under the
    /// fleet's lock; waits while another instance orders. Orders alone
    /// when the store cannot be reached.
    pub(crate) async fn obtain_in_fleet(
        &self,
        store: &Arc<dyn SharedStore>,
        names: &[String],
        replacing: Option<&Certificate>,
    ) -> Result<Arc<Certificate>, AcmeError> {
        let keys = Keys::new(&**store, &self.config().directory, names);
        let wait_limit = self.config().order_timeout.0 * 2 + LOCK_TTL;
        let deadline = Instant::now() + wait_limit;
        let mut news = self.inner.fleet_news.subscribe();
        let mut waiting = false;
        reachable(&**store).await;
        loop {
            if let Some(cert) = self.fleet_certificate(store, &keys, names, replacing).await {
                return Ok(cert);
            }
            let token = getrandom::u64().unwrap_or(0) | 1;
            match store.lock(&keys.lock, token, LOCK_TTL).await {
                None => {
                    tracing::warn!(names = ?names, "ACME: the fleet's store is unreachable; ordering without it");
                    return self.order_now(names).await;
                }
                Some(true) => {
                    let result = self.order_holding(store, &keys, token, names, replacing).await;
                    store.unlock(&keys.lock, token).await;
                    return result;
                }
                Some(false) => {
                    if !waiting {
                        tracing::info!(names = ?names, "ACME: another instance is ordering; waiting for its certificate");
                        waiting = true;
                    }
                    if Instant::now() > deadline {
                        return Err(AcmeError::Timeout {
                            during: "wait for the fleet's order",
                            after: wait_limit,
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                        _ = news.changed() => {}
                    }
                }
            }
        }
    }

    /// Orders `names` while holding the lock (extended as long as the order
    /// runs), then stores the certificate for the fleet and tells it.
    async fn order_holding(
        &self,
        store: &Arc<dyn SharedStore>,
        keys: &Keys,
        token: u64,
        names: &[String],
        replacing: Option<&Certificate>,
    ) -> Result<Arc<Certificate>, AcmeError> {
        // Another instance may have stored it between the look and the lock.
        if let Some(cert) = self.fleet_certificate(store, keys, names, replacing).await {
            return Ok(cert);
        }
        tracing::info!(names = ?names, "ACME: ordering for the fleet");
        let extend = async {
            loop {
                tokio::time::sleep(LOCK_EXTEND_EVERY).await;
                if !store.extend(&keys.lock, token, LOCK_TTL).await {
                    tracing::warn!(names = ?names, "ACME: could not extend the fleet's lock; another instance may order too");
                }
            }
        };
        let cert = tokio::select! {
            cert = self.order_now(names) => cert?,
            never = extend => never,
        };
        self.publish_certificate(store, keys, &cert).await;
        Ok(cert)
    }

    /// Stores `cert` for the fleet (until it expires) and tells the others.
    async fn publish_certificate(&self, store: &Arc<dyn SharedStore>, keys: &Keys, cert: &Certificate) {
        let shared = Shared {
            directory: self.config().directory.clone(),
            names: cert.names.clone(),
            chain_pem: cert.chain_pem.clone(),
            key_pem: cert.key_pem.clone(),
        };
        let ttl = cert
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        let stored = match serde_json::to_vec(&shared) {
            Ok(bytes) => store.put(&keys.cert, &bytes, ttl).await,
            Err(_) => false,
        };
        let told = stored
            && store
                .publish(
                    &Message::Certificate {
                        from: self.inner.instance,
                        key: keys.cert.clone(),
                    }
                    .encode(),
                )
                .await;
        if told {
            tracing::info!(names = ?cert.names, serial = %cert.serial(), "ACME certificate shared with the fleet");
        } else {
            tracing::warn!(names = ?cert.names, "ACME: could not share the certificate with the fleet; the others will order their own");
        }
    }

    /// The fleet's certificate for `names`, if it is one to use instead of
    /// ordering: it matches its key and names, is not due for renewal and
    /// is newer than `replacing`. Stored locally too, so a restart without
    /// the store still serves it.
    pub(crate) async fn fleet_certificate(
        &self,
        store: &Arc<dyn SharedStore>,
        keys: &Keys,
        names: &[String],
        replacing: Option<&Certificate>,
    ) -> Option<Arc<Certificate>> {
        let bytes = store.get(&keys.cert).await?;
        let directory = &self.config().directory;
        let shared: Shared = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(key = %keys.cert, error = %e, "ACME: the fleet's certificate is unreadable; ignoring it");
                return None;
            }
        };
        if shared.directory != *directory || sorted(&shared.names) != sorted(names) {
            tracing::warn!(key = %keys.cert, "ACME: the fleet's certificate is for other names; ignoring it");
            return None;
        }
        let cert = match Certificate::from_pem(names.to_vec(), shared.chain_pem, shared.key_pem) {
            Ok(c) => c,
            Err(reason) => {
                tracing::warn!(key = %keys.cert, reason, "ACME: the fleet's certificate is unusable; ignoring it");
                return None;
            }
        };
        let now = SystemTime::now();
        let due = now >= renew_at(cert.not_before, cert.not_after, 0.0);
        if due || replacing.is_some_and(|r| cert.not_after <= r.not_after) {
            return None;
        }
        if let Err(e) = self.storage().save_certificate(directory, &cert) {
            tracing::warn!(names = ?names, error = %e, "ACME: cannot store the fleet's certificate locally");
        }
        tracing::info!(names = ?names, serial = %cert.serial(), "ACME certificate loaded from the fleet");
        Some(Arc::new(cert))
    }

    /// The fleet's newer certificate for `names` after a bus message, if
    /// there is one.
    pub(crate) async fn newer_from_fleet(&self, names: &[String], current: &Certificate) -> Option<Arc<Certificate>> {
        let store = self.shared_store()?;
        let keys = Keys::new(&*store, &self.config().directory, names);
        self.fleet_certificate(&store, &keys, names, Some(current)).await
    }

    /// The fleet's account for the directory, stored locally too.
    pub(crate) async fn account_from_fleet(&self) -> Option<instant_acme::AccountCredentials> {
        let store = self.shared_store()?;
        let directory = &self.config().directory;
        let bytes = store.get(&account_key(&*store, directory)).await?;
        let parse = || {
            serde_json::from_slice::<AccountFile>(&bytes)
                .ok()
                .filter(|f| f.directory == *directory)
        };
        let (Some(local), Some(used)) = (parse(), parse()) else {
            tracing::warn!(directory, "ACME: the fleet's account is unreadable; ignoring it");
            return None;
        };
        if let Err(e) = self.storage().save_account(directory, local.credentials) {
            tracing::warn!(error = %e, "ACME: cannot store the fleet's account locally");
        }
        tracing::info!(directory, "ACME account loaded from the fleet");
        Some(used.credentials)
    }

    /// Offers a new account to the fleet.
    pub(crate) async fn share_account(&self, file: &AccountFile) {
        let Some(store) = self.shared_store() else { return };
        if let Ok(bytes) = serde_json::to_vec(file) {
            store
                .put(&account_key(&*store, &self.config().directory), &bytes, ACCOUNT_TTL)
                .await;
        }
    }
}

/// Reads the bus: certificates stored by others wake the tasks keeping
/// certificates fresh; challenge answers of others' orders are
/// answered here too.
async fn follow(manager: std::sync::Weak<Inner>, store: Arc<dyn SharedStore>) {
    let mut messages = store.messages();
    while let Some(payload) = messages.next().await {
        let Some(message) = Message::decode(&payload) else {
            continue;
        };
        let Some(inner) = manager.upgrade() else { return };
        if message.sender() == inner.instance {
            continue;
        }
        let challenges = inner.challenges.clone();
        let keep_for = inner.config.order_timeout.0;
        match message {
            Message::Certificate { .. } => {
                inner.fleet_news.send_modify(|n| *n = n.wrapping_add(1));
            }
            Message::Http01 {
                token,
                key_authorization,
                ..
            } => {
                if !plausible_token(&token) || !plausible_token(&key_authorization) {
                    tracing::warn!(token, "ACME: ignoring a malformed HTTP-01 answer from the fleet");
                    continue;
                }
                challenges.publish_http01(&token, &key_authorization);
                let challenges = challenges.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(keep_for).await;
                    challenges.remove_http01(&token);
                });
            }
            Message::TlsAlpn01 { name, digest, .. } => {
                let (Ok(name), Some(digest)) = (acme_name(&name, false), unhex(&digest)) else {
                    tracing::warn!(name, "ACME: ignoring a malformed TLS-ALPN-01 answer from the fleet");
                    continue;
                };
                if let Err(e) = challenges.publish_tls_alpn01(&name, &digest) {
                    tracing::warn!(name, error = %e, "ACME: cannot answer the fleet's TLS-ALPN-01 validation");
                    continue;
                }
                let challenges = challenges.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(keep_for).await;
                    challenges.remove_tls_alpn01(&name);
                });
            }
            Message::Http01Done { token, .. } => challenges.remove_http01(&token),
            Message::TlsAlpn01Done { name, .. } => challenges.remove_tls_alpn01(&name),
        }
    }
}

/// Tells the fleet about the challenge answers one order publishes, and
/// that they are over.
pub(crate) struct Spread {
    store: Arc<dyn SharedStore>,
    from: u64,
}

impl Spread {
    /// The spreading of `manager`'s orders, in edge mode.
    pub(crate) fn of(manager: &Manager) -> Option<Spread> {
        manager.shared_store().map(|store| Spread {
            store,
            from: manager.inner.instance,
        })
    }

    /// Asks the others to answer an HTTP-01 validation.
    pub(crate) async fn http01(&self, token: &str, key_authorization: &str) {
        let m = Message::Http01 {
            from: self.from,
            token: token.to_owned(),
            key_authorization: key_authorization.to_owned(),
        };
        self.store.publish(&m.encode()).await;
    }

    /// Asks the others to answer a TLS-ALPN-01 validation.
    pub(crate) async fn tls_alpn01(&self, name: &str, digest: &[u8]) {
        let m = Message::TlsAlpn01 {
            from: self.from,
            name: name.to_owned(),
            digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
        };
        self.store.publish(&m.encode()).await;
    }

    /// Withdraws the answers (in the background: called from a drop).
    pub(crate) fn withdraw(&self, tokens: &[String], names: &[String]) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let from = self.from;
        let messages: Vec<Vec<u8>> = tokens
            .iter()
            .map(|t| Message::Http01Done { from, token: t.clone() }.encode())
            .chain(
                names
                    .iter()
                    .map(|n| Message::TlsAlpn01Done { from, name: n.clone() }.encode()),
            )
            .collect();
        if messages.is_empty() {
            return;
        }
        let store = self.store.clone();
        runtime.spawn(async move {
            for m in messages {
                store.publish(&m).await;
            }
        });
    }
}

/// Waits a little for a store that is still connecting (the kernel's
/// connection is lazy), so the first orders at start go through it.
async fn reachable(store: &dyn SharedStore) {
    let deadline = Instant::now() + CONNECT_GRACE;
    while !store.is_up() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What an HTTP-01 token or key authorization may be: base64url and the
/// dot between its two halves, not too long (RFC 8555 section 8.1).
fn plausible_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A SHA-256 digest in hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_other_payloads_are_not_ours() {
        let m = Message::TlsAlpn01 {
            from: 7,
            name: "a.bext.test".into(),
            digest: "ab".repeat(32),
        };
        assert_eq!(Message::decode(&m.encode()), Some(m));
        // An ISR invalidation (JSON) and a spoofed prefix with junk.
        assert_eq!(Message::decode(br#"{"kind":"certificate","from":1,"key":"k"}"#), None);
        assert_eq!(Message::decode(b"bext-acme {not json"), None);
        assert_eq!(Message::decode(b"bext-acme {\"kind\":\"launch\",\"from\":1}"), None);
    }

    #[test]
    fn answers_from_the_bus_are_checked_before_use() {
        assert!(plausible_token(
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
        ));
        for bad in ["", "../../etc", "a b", "tok\nen", &"a".repeat(300)] {
            assert!(!plausible_token(bad), "{bad:?}");
        }
        assert_eq!(unhex(&"0f".repeat(32)), Some(vec![15; 32]));
        assert_eq!(unhex("0f"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}
