//! ACME in the kernel: one service per `[platform.acme]`, owned by the
//! [`Kernel`](crate::Kernel) rather than by a pipeline, so certificates,
//! renewals and pending orders survive reloads. It answers HTTP-01 on the
//! plain listener, lends its TLS-ALPN-01 challenges to the TLS listener,
//! keeps the certificates of apps with `tls = "acme"` fresh on the control
//! runtime, and orders on-demand certificates for tenants' own domains
//! (`bext domains add`) and for names nobody configured when
//! `on_demand_ask` allows them. How it works inside: `docs/acme.md`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bext_acme::{AcmeConfig, AcmeError, Certificate, Challenges, Manager, OnCertificate, OnDemand};
use bext_tls::CertifiedKey;
use rustc_hash::FxHashMap;

use crate::config::platform::{AppTls, Platform};

mod fleet;

/// Issued certificates by the exact name they serve (ACME certificates
/// have no wildcard: neither challenge can validate one).
type Issued = FxHashMap<Box<str>, Arc<CertifiedKey>>;

/// The kernel's ACME service.
pub struct Acme {
    manager: Manager,
    challenges: Arc<Challenges>,
    /// Read at every handshake the pipeline's certificates do not cover;
    /// written when a certificate is loaded, issued or renewed.
    issued: Arc<ArcSwap<Issued>>,
    on_cert: OnCertificate,
    on_demand: Option<Arc<OnDemand>>,
    control: tokio::runtime::Handle,
    /// The sets of names being kept fresh and the task doing it.
    keeping: Mutex<Option<(Vec<Vec<String>>, tokio::task::AbortHandle)>>,
    /// The configuration it was started with (a reload that changes it
    /// takes effect after a restart).
    config: AcmeConfig,
    /// In edge mode, the fleet's Redis it shares certificates through
    /// (see `acme/fleet.rs`).
    fleet: Mutex<Option<Arc<bext_edge::Edge>>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").field("manager", &self.manager).finish()
    }
}

impl Acme {
    /// Opens the storage under `data_dir/acme/` and reads `ca_root`; no
    /// network (a down ACME server never delays start). Background work
    /// runs on `control`, never on a worker.
    pub fn start(config: AcmeConfig, data_dir: &Path, control: tokio::runtime::Handle) -> Result<Arc<Acme>, AcmeError> {
        let manager = Manager::new(config.clone(), &data_dir.join("acme"))?;
        let issued: Arc<ArcSwap<Issued>> = Arc::default();
        let on_cert: OnCertificate = {
            let issued = issued.clone();
            Arc::new(move |cert: Arc<Certificate>| {
                issued.rcu(|map| {
                    let mut map = Issued::clone(map);
                    for name in &cert.names {
                        map.insert(name.as_str().into(), cert.key.clone());
                    }
                    map
                });
                tracing::info!(names = ?cert.names, serial = %cert.serial(), "ACME certificate in service");
            })
        };
        let on_demand = OnDemand::new(manager.clone(), on_cert.clone(), control.clone());
        Ok(Arc::new(Acme {
            challenges: manager.challenges(),
            manager,
            issued,
            on_cert,
            on_demand,
            control,
            keeping: Mutex::new(None),
            config,
            fleet: Mutex::new(None),
        }))
    }

    /// The validations being answered (the TLS listener's
    /// `ChallengeResolver` reads them).
    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.challenges
    }

    /// The key authorization for an HTTP-01 request path; `None` for any
    /// other path (the common case costs a prefix comparison).
    pub fn http01(&self, path: &str) -> Option<Arc<str>> {
        self.challenges.http01_for_path(path)
    }

    /// The issued certificate for a server name (any case, an optional
    /// trailing dot), if there is one.
    pub fn resolve(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.issued.load();
        if map.is_empty() {
            return None;
        }
        if let Some(key) = map.get(server_name) {
            return Some(key.clone());
        }
        let name = bext_plugin_abi::normalise_host(server_name.as_bytes()).ok()?;
        map.get(&*name).cloned()
    }

    /// Every issued certificate in service, by the name it serves (for
    /// the certificate expiry metric).
    pub fn issued(&self) -> Vec<(Box<str>, Arc<CertifiedKey>)> {
        self.issued.load().iter().map(|(n, k)| (n.clone(), k.clone())).collect()
    }

    /// On-demand issuance: tenants' own domains, and names
    /// `on_demand_ask` allows when it is set.
    pub fn on_demand(&self) -> Option<&Arc<OnDemand>> {
        self.on_demand.as_ref()
    }

    /// Whether `name` is one of the configured apps' names (their order
    /// may still be running): such a name never goes to on-demand.
    pub fn is_kept(&self, name: &str) -> bool {
        let Ok(name) = bext_plugin_abi::normalise_host(name.as_bytes()) else {
            return false;
        };
        let keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        keeping
            .as_ref()
            .is_some_and(|(sets, _)| sets.iter().flatten().any(|n| **n == *name))
    }

    /// Whether `config` differs from the one the service runs with.
    pub fn config_changed(&self, config: Option<&AcmeConfig>) -> bool {
        config.is_none_or(|c| format!("{c:?}") != format!("{:?}", self.config))
    }

    /// Keeps the certificates of `platform`'s `tls = "acme"` apps fresh:
    /// stored ones are served at once (a restart orders nothing), and the
    /// background task is restarted only when the sets of names changed
    /// (a reload that touches nothing ACME cares about costs nothing).
    pub fn keep(&self, platform: &Platform) {
        if let Some(on_demand) = &self.on_demand {
            on_demand.vouch(tenant_domains(platform));
        }
        let sets = names_to_keep(platform);
        let mut keeping = self.keeping.lock().unwrap_or_else(|e| e.into_inner());
        if keeping.as_ref().is_some_and(|(kept, _)| *kept == sets) {
            return;
        }
        if let Some((old, task)) = keeping.take() {
            task.abort();
            // Names no app has any more stop being served (a name nobody
            // serves gets a handshake alert, not a leftover certificate).
            let gone: Vec<&String> = old
                .iter()
                .flatten()
                .filter(|n| !sets.iter().flatten().any(|k| k == *n))
                .collect();
            if !gone.is_empty() {
                self.issued.rcu(|map| {
                    let mut map = Issued::clone(map);
                    for name in &gone {
                        map.remove(name.as_str());
                    }
                    map
                });
                tracing::info!(names = ?gone, "ACME: no longer serving or renewing these names");
            }
        }
        let now = std::time::SystemTime::now();
        for names in &sets {
            if let Some(cert) = self.manager.stored(names).filter(|c| c.not_after > now) {
                (self.on_cert)(cert);
            }
        }
        if sets.is_empty() {
            return;
        }
        tracing::info!(sets = ?sets, "ACME: keeping certificates fresh");
        let (manager, on_cert, run) = (self.manager.clone(), self.on_cert.clone(), sets.clone());
        let task = self.control.spawn(async move { manager.run(run, on_cert).await });
        *keeping = Some((sets, task.abort_handle()));
    }
}

impl Drop for Acme {
    fn drop(&mut self) {
        if let Some((_, task)) = self.keeping.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// The apps' tenants' own domains, in ACME's spelling: ordered on demand
/// at their first handshake without asking `on_demand_ask` (the operator
/// vouched for them by adding them), never up front (their DNS may not
/// point at bext yet).
fn tenant_domains(platform: &Platform) -> Vec<String> {
    platform
        .apps
        .values()
        .flat_map(|app| app.tenant_domains.keys())
        .filter_map(|domain| bext_acme::acme_name(domain, false).ok())
        .collect()
}

/// One set of names per app with `tls = "acme"`: its exact domains,
/// normalised. Wildcards and `~regex` domains are left out (an ACME
/// certificate for a wildcard needs DNS-01, which bext does not do; its
/// tenants can get theirs on demand).
fn names_to_keep(platform: &Platform) -> Vec<Vec<String>> {
    let mut sets = Vec::new();
    for (id, app) in &platform.apps {
        if app.tls != Some(AppTls::Acme) {
            continue;
        }
        let mut names = Vec::new();
        for domain in &app.domains {
            if domain.starts_with('~') {
                continue;
            }
            match bext_acme::acme_name(domain, false) {
                Ok(name) if !names.contains(&name) => names.push(name),
                Ok(_) => {}
                Err(e) => tracing::warn!(app = %id, domain, error = %e, "ACME: no certificate ordered for this domain"),
            }
        }
        if names.is_empty() {
            tracing::warn!(app = %id, "ACME: the app has no exact domain to order a certificate for");
        } else {
            sets.push(names);
        }
    }
    sets
}
