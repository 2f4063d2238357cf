//! A certificate the fleet's way: the one another instance stored, else
//! an order under the fleet's lock (extended while it runs, released
//! after), stored for the others; waiting while another instance orders;
//! ordering alone when the store cannot be reached. And the account the
//! fleet shares.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::bus::Message;
use super::{Keys, LOCK_TTL, SharedStore, account_key};
use crate::certificate::Certificate;
use crate::error::AcmeError;
use crate::manager::Manager;
use crate::renewal::renew_at;
use crate::storage::{AccountFile, sorted};

/// How often the holder extends its lock while its order runs.
const LOCK_EXTEND_EVERY: Duration = Duration::from_secs(10);

/// How often an instance waiting for another's order looks for the
/// certificate when no bus message woke it.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How long a store that is still connecting (at start) is waited for
/// before the instance orders alone.
const CONNECT_GRACE: Duration = Duration::from_secs(3);

/// How long the shared account stays in the store (accounts do not
/// expire at the ACME server; each new one is stored again).
const ACCOUNT_TTL: Duration = Duration::from_secs(10 * 365 * 86400);

/// A certificate as the store keeps it.
#[derive(Serialize, Deserialize)]
struct Shared {
    directory: String,
    names: Vec<String>,
    chain_pem: String,
    key_pem: String,
}

impl Manager {
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
            if let Some(reason) = store.get(&keys.failed).await {
                return Err(AcmeError::FleetFailed {
                    reason: String::from_utf8_lossy(&reason).into_owned(),
                });
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
                    // Woken early when the awaited certificate is stored.
                    let _ = tokio::time::timeout(POLL_EVERY, async {
                        loop {
                            match news.recv().await {
                                Ok(key) if *key != *keys.cert => continue,
                                _ => return,
                            }
                        }
                    })
                    .await;
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
        let ordered = tokio::select! {
            cert = self.order_now(names) => cert,
            never = extend => never,
        };
        let cert = match ordered {
            Ok(cert) => cert,
            Err(e) => {
                // The others wait as long as this instance's first retry.
                let backoff = self.inner.policy.retry_first;
                store.put(&keys.failed, e.to_string().as_bytes(), backoff).await;
                return Err(e);
            }
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

    /// The fleet's newer certificate for `names` after a bus message about
    /// the certificate `stored_under` (`None`: at start, or messages were
    /// missed), if there is one. Another set of names' message costs no
    /// lookup.
    pub(crate) async fn newer_from_fleet(
        &self,
        names: &[String],
        current: &Certificate,
        stored_under: Option<&str>,
    ) -> Option<Arc<Certificate>> {
        let store = self.shared_store()?;
        let keys = Keys::new(&*store, &self.config().directory, names);
        match stored_under {
            Some(key) if key != keys.cert => return None,
            Some(_) => {}
            // At start the connection may still be being made.
            None => reachable(&*store).await,
        }
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

/// Waits a little for a store that is still connecting (the kernel's
/// connection is lazy), so the first orders at start go through it.
async fn reachable(store: &dyn SharedStore) {
    let deadline = Instant::now() + CONNECT_GRACE;
    while !store.is_up() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
