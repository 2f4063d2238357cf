//! The state an instance's hooks, its admin API and its background task
//! share: the registry (opened on first use, on a blocking thread), the
//! running canaries the request path reads, and the way back to the
//! kernel once the registry changed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use bext_plugin_abi::admin::json;
use bext_plugin_abi::claims::Claim;
use bext_plugin_abi::{AppInfo, Host, Reload, Response, Setup};
use http::StatusCode;

use crate::canary::Canary;
use crate::config::Config;
use crate::error::DeployError;
use crate::ids::{canary_app_id, cookie_name};
use crate::registry::Registry;

/// What the plugin's hooks and its background task share.
pub(crate) struct Shared {
    /// `<data_dir>/deploy`.
    pub(crate) root: PathBuf,
    pub(crate) config: Config,
    /// The platform file's apps, recorded when the registry opens.
    apps: Vec<String>,
    /// Every host the platform already routes: the table's apps'
    /// `domains` (live previews' too) and `tenant_domains`, and the
    /// config's `reserved_hosts`. A tenant's own domain may take none.
    pub(crate) claims: Vec<Claim>,
    /// `bext_plugin_deploy_version_requests_total` (set by `on_init`).
    pub(crate) version_requests: OnceLock<bext_plugin_abi::metrics::CounterFamily>,
    /// Serves a canary's requests (set by `on_init`).
    pub(crate) host: OnceLock<Host>,
    /// Rebuilds the kernel's pipeline after a change (set by `on_init`).
    pub(crate) reload: OnceLock<Arc<Reload>>,
    registry: Arc<Mutex<Option<Registry>>>,
    /// Running canaries by app, read on every request.
    pub(crate) canaries: ArcSwap<HashMap<String, Arc<Canary>>>,
    /// When the next preview expires (Unix time; `u64::MAX` with none).
    pub(crate) next_expiry: AtomicU64,
}

impl Shared {
    /// The state of a new instance: no registry opened, no canary read.
    pub(crate) fn new(config: Config, setup: &Setup<'_>) -> Shared {
        Shared {
            root: Registry::root_in(setup.data_dir),
            version_requests: OnceLock::new(),
            apps: platform_apps(&config, setup),
            claims: claims(&config, setup.apps),
            config,
            host: OnceLock::new(),
            reload: OnceLock::new(),
            registry: Arc::new(Mutex::new(None)),
            canaries: ArcSwap::from_pointee(HashMap::new()),
            next_expiry: AtomicU64::new(u64::MAX),
        }
    }

    /// Runs `f` on the registry on a blocking thread. The registry is
    /// created on first use (nothing is written for a platform that never
    /// deploys) and records the platform file's apps when opened.
    pub(crate) async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<T, DeployError> {
        let (registry, root, keep) = (self.registry.clone(), self.root.clone(), self.config.keep_versions);
        let (apps, limits) = (self.apps.clone(), self.config.limits());
        let (keep_per_app, max_apps) = (self.config.app_keep_versions.clone(), self.config.max_apps);
        let isolates = self.config.isolates.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = registry.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                let mut opened = Registry::open(&root, keep)?;
                opened.set_limits(limits);
                opened.set_app_policies(keep_per_app, max_apps);
                opened.set_isolate_budget(isolates);
                opened.sync_platform_apps(apps.iter().map(String::as_str))?;
                *guard = Some(opened);
            }
            f(guard.as_mut().expect("opened above"))
        })
        .await
        .map_err(|e| DeployError::Db(format!("registry task failed: {e}")))?
    }

    /// Reads the running canaries again; a canary that goes on keeps its
    /// counts.
    pub(crate) async fn refresh(&self) -> Result<(), DeployError> {
        let (records, previews, stable) = self
            .with_registry(|r| {
                let records = r.canaries()?;
                let mut stable = Vec::with_capacity(records.len());
                for c in &records {
                    stable.push(r.current(&c.app)?.map(|v| v.version).unwrap_or_default());
                }
                Ok((records, r.previews(None)?, stable))
            })
            .await?;
        let next = previews.iter().map(|p| p.expires_at).min().unwrap_or(u64::MAX);
        self.next_expiry.store(next, Ordering::Relaxed);
        let old = self.canaries.load_full();
        let next: HashMap<String, Arc<Canary>> = records
            .into_iter()
            .zip(stable)
            .map(|(record, stable_version)| {
                let kept = old.get(&record.app).filter(|c| c.record.version == record.version);
                let canary = Canary {
                    target: canary_app_id(&record.app, &record.version),
                    cookie: cookie_name(&record.app),
                    visitors: AtomicU64::new(kept.map_or(0, |c| c.visitors.load(Ordering::Relaxed))),
                    stats: kept.map_or_else(|| Arc::new(Default::default()), |c| c.stats.clone()),
                    stable_version,
                    record,
                };
                (canary.record.app.clone(), Arc::new(canary))
            })
            .collect();
        self.canaries.store(Arc::new(next));
        Ok(())
    }

    /// After a change to the registry: this instance's canaries, then the
    /// kernel's pipeline. `Ok` once the new state serves.
    pub(crate) async fn changed(&self) -> Result<(), DeployError> {
        self.refresh().await?;
        match self.reload.get() {
            Some(reload) => reload.run().await.map(drop).map_err(DeployError::Refused),
            None => Ok(()),
        }
    }

    /// Runs `op` on the registry, then serves what it changed; its result
    /// as the answer.
    pub(crate) async fn change<T: serde::Serialize + Send + 'static>(
        &self,
        op: impl FnOnce(&mut Registry) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<Response, DeployError> {
        let out = self.with_registry(op).await?;
        self.changed().await?;
        Ok(json(StatusCode::OK, &out))
    }
}

/// Who already reaches which host: every app's `domains` (a live
/// preview's are its preview hosts), every app's `tenant_domains` (the
/// platform file's and the registry's), and what the kernel reserves.
fn claims(config: &Config, apps: &[AppInfo]) -> Vec<Claim> {
    let by = |id: &str| match id.split_once('~') {
        Some((app, preview)) => format!("preview {preview} of app {app}"),
        None => format!("app {id}'s domain"),
    };
    let domains = apps
        .iter()
        .flat_map(|a| a.domains.iter().map(move |d| Claim::new(d.clone(), by(&a.id))));
    let tenants = apps.iter().flat_map(|a| {
        (a.tenant_domains.iter()).map(|(d, t)| Claim::new(d.clone(), format!("tenant {t} of app {}", a.id)))
    });
    domains
        .chain(tenants)
        .chain(config.reserved_hosts.iter().cloned())
        .collect()
}

/// The apps the platform file declares: what the kernel passes on as
/// `platform_apps`. Without it, the app table less the hidden apps this
/// plugin adds (whose ids no platform file may use), which may still hold
/// apps created by deploys.
fn platform_apps(config: &Config, setup: &Setup<'_>) -> Vec<String> {
    match &config.platform_apps {
        Some(ids) => ids.clone(),
        None => setup
            .apps
            .iter()
            .map(|a| a.id.clone())
            .filter(|id| !id.contains(['~', '@']))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the API refuses: apps' and previews' domains, platform and
    /// registry tenant domains, and the kernel's reserved hosts.
    #[test]
    fn claims_are_the_table_s_hosts_and_the_reserved_ones() {
        let app = |id: &str, domains: &[&str], tenants: &[(&str, &str)]| AppInfo {
            id: id.into(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            tenant_domains: tenants
                .iter()
                .map(|(d, t)| ((*d).to_owned(), (*t).to_owned()))
                .collect(),
        };
        let apps = [
            app("saas", &["*.saas.test"], &[("static.cust.test", "static")]),
            app("blog", &["blog.test"], &[]),
            app("blog~pr-1", &["pr-1.preview.blog.test"], &[]),
            app("blog@v2", &[], &[]),
        ];
        let config: Config = serde_json::from_value(serde_json::json!({
            "reserved_hosts": [{ "pattern": "*.mapped.test", "by": "the vhosts hosts map (app other)" }]
        }))
        .unwrap();
        let claims = claims(&config, &apps);
        let by = |host: &str| bext_plugin_abi::claims::claimed_by(host, &claims).map(|c| c.by.clone());
        assert_eq!(by("x.saas.test").as_deref(), Some("app saas's domain"));
        assert_eq!(by("static.cust.test").as_deref(), Some("tenant static of app saas"));
        assert_eq!(
            by("pr-1.preview.blog.test").as_deref(),
            Some("preview pr-1 of app blog")
        );
        assert_eq!(by("y.mapped.test").as_deref(), Some("the vhosts hosts map (app other)"));
        assert_eq!(by("free.cust.test"), None);
    }

    #[test]
    fn platform_apps_are_the_config_s_or_the_table_less_hidden_apps() {
        let apps: Vec<AppInfo> = ["shop", "shop@v2", "shop~pr-1", "blog"]
            .into_iter()
            .map(|id| AppInfo {
                id: id.into(),
                domains: Vec::new(),
                tenant_domains: Default::default(),
            })
            .collect();
        let setup = Setup {
            plugin: "deploy",
            base: None,
            apps: &apps,
            data_dir: std::path::Path::new("/nonexistent"),
        };
        let config = |v| bext_plugin_abi::decode_config::<Config>(v).unwrap();
        assert_eq!(platform_apps(&config(serde_json::json!({})), &setup), ["shop", "blog"]);
        assert_eq!(
            platform_apps(&config(serde_json::json!({ "platform_apps": ["docs"] })), &setup),
            ["docs"]
        );
    }
}
