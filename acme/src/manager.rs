//! The kernel's handle on ACME: one per `[platform.acme]`, holding the
//! account, the storage and the published challenges. It gets
//! certificates (stored ones first), and keeps sets of names fresh in the
//! background, handing each new certificate to a callback.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use instant_acme::{Account, NewAccount};
use tokio::sync::Mutex;

use crate::certificate::Certificate;
use crate::challenges::Challenges;
use crate::config::AcmeConfig;
use crate::error::AcmeError;
use crate::fleet::{Attached, Spread};
use crate::http::HttpClient;
use crate::names::acme_name;
use crate::order::order;
use crate::renewal::{RenewalPolicy, jitter, renew_at, retry_delay, until};
use crate::storage::{AccountFile, Storage};

/// A callback that receives each certificate to serve (stored at start,
/// then each renewal); the kernel inserts it in its SNI store.
pub type OnCertificate = Arc<dyn Fn(Arc<Certificate>) + Send + Sync>;

/// Gets and keeps certificates; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: AcmeConfig,
    storage: Storage,
    pub(crate) challenges: Arc<Challenges>,
    http: HttpClient,
    /// Loaded or made at the first order; forgotten when the ACME server
    /// no longer knows it, so the next order makes a new one.
    account: Mutex<Option<Account>>,
    pub(crate) policy: RenewalPolicy,
    /// In edge mode, the fleet's store ([`Manager::share`]).
    pub(crate) fleet: std::sync::RwLock<Option<Attached>>,
    /// The store key of each certificate another instance stored: the
    /// task keeping that certificate fresh looks for the newer one (a
    /// receiver that lagged looks in any case).
    pub(crate) fleet_news: tokio::sync::broadcast::Sender<Arc<str>>,
    /// This instance's id on the fleet's bus (random).
    pub(crate) instance: u64,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("directory", &self.inner.config.directory)
            .field("storage", &self.inner.storage.root())
            .finish()
    }
}

impl Manager {
    /// Checks `config`, reads `ca_root` and opens `storage_dir`
    /// (`data_dir/acme/`). No network: the account is made or loaded at
    /// the first order, so a down ACME server never delays start.
    pub fn new(config: AcmeConfig, storage_dir: &Path) -> Result<Manager, AcmeError> {
        config.validate()?;
        let http = HttpClient::new(config.ca_root.as_deref())?;
        let storage = Storage::open(storage_dir)?;
        Ok(Manager {
            inner: Arc::new(Inner {
                config,
                storage,
                challenges: Arc::new(Challenges::default()),
                http,
                account: Mutex::new(None),
                policy: RenewalPolicy::default(),
                fleet: std::sync::RwLock::new(None),
                fleet_news: tokio::sync::broadcast::Sender::new(64),
                instance: getrandom::u64().unwrap_or(0),
            }),
        })
    }

    /// The same manager with another retry policy (tests use short waits).
    /// Call before cloning it.
    pub fn with_policy(mut self, policy: RenewalPolicy) -> Manager {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.policy = policy;
        }
        self
    }

    /// The challenge answers the listeners must serve.
    pub fn challenges(&self) -> Arc<Challenges> {
        self.inner.challenges.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &AcmeConfig {
        &self.inner.config
    }

    /// The storage directory.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The certificate stored for `names`, if there is a usable one. A
    /// damaged one is logged and treated as absent.
    pub fn stored(&self, names: &[String]) -> Option<Arc<Certificate>> {
        match self.inner.storage.load_certificate(names) {
            Ok(found) => found.map(Arc::new),
            Err(e) => {
                tracing::warn!(names = ?names, error = %e, "stored ACME certificate unusable; a new one will be ordered");
                None
            }
        }
    }

    /// A certificate for `names`: the stored one unless it is due for
    /// renewal, else a new order.
    pub async fn certificate(&self, names: &[String]) -> Result<Arc<Certificate>, AcmeError> {
        let names = canonical(names)?;
        if let Some(cert) = self.stored(&names)
            && SystemTime::now() < renew_at(cert.not_before, cert.not_after, 0.0)
        {
            return Ok(cert);
        }
        self.obtain(&names).await
    }

    /// A new certificate for `names`, stored; only a stored certificate is
    /// returned, so what is served survives a restart. In edge mode, one
    /// another instance stored is used when it is not due, and the order
    /// is placed under the fleet's lock ([`Manager::share`]).
    pub async fn obtain(&self, names: &[String]) -> Result<Arc<Certificate>, AcmeError> {
        let names = canonical(names)?;
        self.replace(&names, None).await
    }

    /// [`Manager::obtain`] for canonical `names`, in place of `replacing`
    /// (a certificate from the fleet must be newer than it).
    async fn replace(&self, names: &[String], replacing: Option<&Certificate>) -> Result<Arc<Certificate>, AcmeError> {
        match self.shared_store() {
            Some(store) => self.obtain_in_fleet(&store, names, replacing).await,
            None => self.order_now(names).await,
        }
    }

    /// Orders a certificate for canonical `names` now and stores it.
    pub(crate) async fn order_now(&self, names: &[String]) -> Result<Arc<Certificate>, AcmeError> {
        let names = names.to_vec();
        let config = &self.inner.config;
        let limit = config.order_timeout.0;
        let mut fresh_account = false;
        let ordered = loop {
            let account = self.account(fresh_account).await?;
            let result = tokio::time::timeout(
                limit,
                order(
                    &account,
                    &self.inner.challenges,
                    Spread::of(self),
                    config.challenge,
                    &names,
                    limit,
                ),
            )
            .await
            .map_err(|_| AcmeError::Timeout {
                during: "order",
                after: limit,
            })
            .and_then(|r| r);
            match result {
                // The server forgot the stored account (a reset staging or
                // test server, a deactivated account): make a new one, once.
                Err(e) if !fresh_account && is_unknown_account(&e) => {
                    tracing::warn!(directory = %config.directory, error = %e, "ACME account unknown to the server; making a new one");
                    fresh_account = true;
                }
                other => break other?,
            }
        };
        self.inner.storage.save_certificate(&config.directory, &ordered)?;
        tracing::info!(names = ?names, serial = %ordered.serial(), "ACME certificate issued and stored");
        Ok(Arc::new(ordered))
    }

    /// Keeps the certificate for `names` fresh, forever: serves the stored
    /// one at once (no order at restart), orders when there is none or it
    /// is due, renews when a third of its lifetime is left, retries
    /// failures with capped exponential backoff. Each new certificate goes
    /// to `on_cert` only once stored; until then the old one stays in use.
    /// Failures are logged with the ACME server's problem document. Cancel
    /// it by dropping the future (abort the task).
    pub async fn keep_fresh(&self, names: Vec<String>, on_cert: OnCertificate) {
        let names = match canonical(&names) {
            Ok(names) => names,
            Err(e) => {
                tracing::error!(error = %e, "ACME: not keeping a certificate");
                return;
            }
        };
        // An expired certificate is not handed over: it would fail every
        // handshake anyway; it is replaced at once.
        let current = self.stored(&names).filter(|c| c.not_after > SystemTime::now());
        if let Some(cert) = &current {
            on_cert(cert.clone());
        }
        self.keep_fresh_from(names, current, on_cert).await;
    }

    /// [`Manager::keep_fresh`] for a certificate the caller already has
    /// (on-demand issuance hands over the one it just got).
    pub(crate) async fn keep_fresh_from(
        &self,
        names: Vec<String>,
        mut current: Option<Arc<Certificate>>,
        on_cert: OnCertificate,
    ) {
        let mut spread = jitter();
        let mut failures = 0u32;
        let mut fleet_news = self.inner.fleet_news.subscribe();
        // In edge mode, the fleet may have renewed while this instance was
        // down: its certificate replaces the one from disk at once.
        if let Some(cert) = &current
            && let Some(newer) = self.newer_from_fleet(&names, cert, None).await
        {
            on_cert(newer.clone());
            current = Some(newer);
        }
        loop {
            if failures == 0
                && let Some(cert) = &current
            {
                let due = renew_at(cert.not_before, cert.not_after, spread);
                // Sleep in steps of at most an hour, so a suspended
                // machine or a clock change is noticed.
                let wait = until(SystemTime::now(), due).min(std::time::Duration::from_secs(3600));
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        // Another instance of the fleet stored a
                        // certificate: a renewal of ours is served at once.
                        news = fleet_news.recv() => {
                            let key = match news {
                                Ok(key) => Some(key),
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => continue,
                            };
                            if let Some(newer) = self.newer_from_fleet(&names, cert, key.as_deref()).await {
                                spread = jitter();
                                on_cert(newer.clone());
                                current = Some(newer);
                            }
                        }
                    }
                    continue;
                }
            }
            match self.replace(&names, current.as_deref()).await {
                Ok(cert) => {
                    failures = 0;
                    spread = jitter();
                    on_cert(cert.clone());
                    current = Some(cert);
                }
                Err(e) => {
                    failures += 1;
                    let wait = retry_delay(&self.inner.policy, failures, jitter());
                    let expires = current.as_ref().map(|c| c.not_after);
                    tracing::warn!(
                        names = ?names,
                        error = %e,
                        problem_type = e.problem().and_then(|p| p.kind.as_deref()).unwrap_or(""),
                        problem_detail = e.problem().and_then(|p| p.detail.as_deref()).unwrap_or(""),
                        failures,
                        retry_in = ?wait,
                        still_serving_until = ?expires,
                        "ACME order failed",
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Keeps every set of names fresh (one [`Manager::keep_fresh`] each),
    /// forever; the kernel spawns it on its control runtime.
    pub async fn run(&self, sets: Vec<Vec<String>>, on_cert: OnCertificate) {
        let tasks = sets.into_iter().map(|names| self.keep_fresh(names, on_cert.clone()));
        futures_util::future::join_all(tasks).await;
    }

    /// The ACME account: the one in use, else the stored one, else a new
    /// one (stored). `fresh` skips the first two.
    async fn account(&self, fresh: bool) -> Result<Account, AcmeError> {
        let mut slot = self.inner.account.lock().await;
        if !fresh && let Some(account) = &*slot {
            return Ok(account.clone());
        }
        let config = &self.inner.config;
        let storage = &self.inner.storage;
        let builder = || Account::builder_with_http(Box::new(self.inner.http.clone()));
        // The fleet's account when this instance has none (edge mode).
        let known = match (fresh, storage.load_account(&config.directory)?) {
            (true, _) => None,
            (false, Some(credentials)) => Some(credentials),
            (false, None) => self.account_from_fleet().await,
        };
        if let Some(credentials) = known {
            let account = builder()
                .from_credentials(credentials)
                .await
                .map_err(AcmeError::acme("account"))?;
            *slot = Some(account.clone());
            return Ok(account);
        }
        let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                config.directory.clone(),
                None,
            )
            .await
            .map_err(AcmeError::acme("new account"))?;
        let file = AccountFile {
            directory: config.directory.clone(),
            credentials,
        };
        self.share_account(&file).await;
        storage.save_account(&config.directory, file.credentials)?;
        tracing::info!(directory = %config.directory, id = %account.id(), "ACME account created");
        *slot = Some(account.clone());
        Ok(account)
    }
}

/// Whether the ACME server refused a new order because it does not know
/// (or no longer accepts) the account that signed it.
fn is_unknown_account(e: &AcmeError) -> bool {
    let AcmeError::Problem {
        during: "new order",
        problem,
    } = e
    else {
        return false;
    };
    match problem.kind.as_deref() {
        Some("urn:ietf:params:acme:error:accountDoesNotExist") => true,
        Some("urn:ietf:params:acme:error:unauthorized") => problem
            .detail
            .as_deref()
            .is_some_and(|d| d.to_ascii_lowercase().contains("account")),
        _ => false,
    }
}

fn canonical(names: &[String]) -> Result<Vec<String>, AcmeError> {
    if names.is_empty() {
        return Err(AcmeError::BadName {
            name: String::new(),
            reason: "no name to order",
        });
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let n = acme_name(n, true)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}
