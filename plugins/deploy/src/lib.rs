//! The `deploy` plugin: the app registry.
//!
//! Versions of an app are stored by content under `<data_dir>/deploy`
//! ([`store`]), recorded in a SQLite registry ([`registry`]), and served by
//! the kernel from the current version's directory: the kernel reads the
//! registry when it builds a pipeline, so switching versions is a pipeline
//! swap (atomic for new requests; requests in flight finish on the old
//! version, whose runtime is dropped once they are done). Canaries and
//! previews are hidden apps of that pipeline ([`canary_app_id`],
//! [`preview_app_id`]); this plugin's `on_request` sends a canary's share of
//! visitors to its app, and a background task makes the automatic
//! decisions and removes expired previews. [`hooks`] runs an app's
//! `pre_build` and `post_deploy` commands. [`bundle`] decides what a
//! deploy may store: regular files and directories named inside the
//! bundle, within the manifest's size and entry limits, and a
//! `bext.config.toml` whose paths stay inside it.
//!
//! The kernel adds what the registry serves to its app table before each
//! pipeline build ([`table`], through the contract's `app_changes`).
//!
//! The plugin's admin API, which the CLI uses, is mounted by the kernel at
//! the manifest's `base` (`/__bext/api/platform`) behind `Authorization:
//! Bearer $BEXT_ADMIN_TOKEN`; `manifests/deploy.yaml` lists its endpoints.
//! Changes answer once the new pipeline serves. With no server running,
//! the CLI builds this plugin and sends it the same requests in-process.

pub mod bundle;
pub mod config;
pub mod hooks;
pub mod registry;
pub mod store;
pub mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bext_plugin_abi::admin::{AdminRoutes, LocalUpload, json};
use bext_plugin_abi::{
    AppChange, AppTarget, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Reload, Request, Response,
    Setup,
};
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;

use crate::config::Config;
pub use crate::registry::{
    AppRecord, CanaryPlan, CanaryRecord, DeployOptions, Deployed, Event, HookRecord, PreviewRecord, Registry, Served,
    VersionRecord,
};

pub use crate::hooks::{DeployHooks, HookRun};

/// Seconds since the Unix epoch: the registry's clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The hidden app a preview is served as: `{app}~{name}`, on hosts of its
/// own (the platform's `preview_domain` template).
pub fn preview_app_id(app: &str, name: &str) -> String {
    format!("{app}~{name}")
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database.
    #[error("registry: {0}")]
    Db(String),
    /// The bundle, an app id or a version name is not acceptable.
    #[error("{0}")]
    Bundle(String),
    /// The bundle is larger than the deploy manifest allows
    /// (`max_bundle_bytes`, `max_bundle_entries`).
    #[error("{0}")]
    TooLarge(String),
    /// No such app or version.
    #[error("{0}")]
    NotFound(String),
    /// That version exists already.
    #[error("version exists already: {0}")]
    Exists(String),
    /// The change is recorded, but the kernel refused the configuration
    /// it makes (the previous one keeps serving).
    #[error("recorded, but the new configuration was refused: {0}")]
    Refused(String),
    /// The app's `pre_build` hook failed; nothing was stored.
    #[error("pre_build `{}` failed ({}):\n{}", .0.command, .0.exit_code.map_or("killed".to_owned(), |c| format!("exit code {c}")), .0.output.trim_end())]
    Hook(hooks::HookRun),
}

impl DeployError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DeployError {
        DeployError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn db(file: &Path, e: rusqlite::Error) -> DeployError {
        DeployError::Db(format!("{}: {e}", file.display()))
    }

    /// The HTTP status the admin API answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            DeployError::Bundle(_) => StatusCode::BAD_REQUEST,
            DeployError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DeployError::NotFound(_) => StatusCode::NOT_FOUND,
            DeployError::Exists(_) => StatusCode::CONFLICT,
            DeployError::Hook(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::Io { .. } | DeployError::Db(_) | DeployError::Refused(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The hidden app a canary version is served as: `{app}@{version}`. The
/// kernel adds it to the app table; this plugin sends a canary's share of
/// visitors to it.
pub fn canary_app_id(app: &str, version: &str) -> String {
    format!("{app}@{version}")
}

/// The cookie that keeps a visitor on one version of `app`.
fn cookie_name(app: &str) -> String {
    format!("bext_canary_{app}")
}

/// Requests a canary must have served before its error rate is judged.
const MIN_REQUESTS: u64 = 20;
/// How often automatic promotions and rollbacks are considered.
const AUTO_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the version cookie lasts.
const COOKIE_MAX_AGE: u64 = 7 * 24 * 3600;

/// The plugin instance.
pub struct DeployPlugin {
    admin: AdminRoutes,
    shared: Arc<Shared>,
}

/// What the plugin's hooks and its background task share.
struct Shared {
    root: PathBuf,
    config: Config,
    apps: Vec<String>,
    host: OnceLock<Host>,
    reload: OnceLock<Arc<Reload>>,
    registry: Arc<Mutex<Option<Registry>>>,
    /// Running canaries by app, read on every request.
    canaries: ArcSwap<HashMap<String, Arc<Canary>>>,
    /// When the next preview expires (Unix time; `u64::MAX` with none).
    next_expiry: AtomicU64,
}

/// A running canary as the request path sees it.
struct Canary {
    record: CanaryRecord,
    /// The hidden app serving the canary version.
    target: String,
    cookie: String,
    /// Counts new visitors, to give the canary exactly its share.
    visitors: AtomicU64,
    stats: Arc<[Stats; 2]>,
}

impl Canary {
    const STABLE: usize = 0;
    const CANARY: usize = 1;

    /// Whether the `n`th new visitor goes to the canary: `n × φ mod 1`
    /// spreads evenly, so any run of visitors gets the share to within one.
    fn takes(&self, n: u64) -> bool {
        const PHI: f64 = 0.618_033_988_749_894_9;
        ((n as f64) * PHI).fract() * 100.0 < f64::from(self.record.share)
    }
}

/// Requests, 5xx answers and time spent, per version of a canaried app.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl Stats {
    fn record(&self, status: StatusCode, took: std::time::Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn snapshot(&self) -> VersionStats {
        let requests = self.requests.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let micros = self.micros.load(Ordering::Relaxed);
        VersionStats {
            requests,
            errors,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            mean_ms: if requests == 0 {
                0.0
            } else {
                micros as f64 / requests as f64 / 1000.0
            },
        }
    }
}

/// A version's traffic since its canary started (or since the server did).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct VersionStats {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Mean time to the response head, in milliseconds.
    pub mean_ms: f64,
}

/// A stable-version request of a canaried app, seen again in `on_response`.
#[derive(Clone)]
struct StableVisit {
    canary: Arc<Canary>,
    new: bool,
    started: Instant,
}

impl BuiltinPlugin for DeployPlugin {
    const NAME: &'static str = "deploy";
    const PRIORITY: i32 = 750;
    const SUMMARY: &'static str = "app registry: versions by content, deploys, rollbacks, canaries";
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/deploy.yaml");
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        Ok(DeployPlugin {
            admin: AdminRoutes::under("base", setup.base.unwrap_or("/__bext/api/platform"))?
                .token_env(config.admin_token_env.clone()),
            shared: Arc::new(Shared {
                root: Registry::root_in(setup.data_dir),
                apps: platform_apps(&config, setup),
                config,
                host: OnceLock::new(),
                reload: OnceLock::new(),
                registry: Arc::new(Mutex::new(None)),
                canaries: ArcSwap::from_pointee(HashMap::new()),
                next_expiry: AtomicU64::new(u64::MAX),
            }),
        })
    }

    fn app_changes(_config: &Config, setup: &Setup<'_>) -> Result<Vec<AppChange>, PluginError> {
        let served = Registry::served(&Registry::root_in(setup.data_dir)).map_err(|e| PluginError::Init(e.into()))?;
        Ok(table::changes(served, unix_now()))
    }
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

/// The header an admin API caller names itself in, for the registry's
/// records (`deployed_by`, the history of current versions, events): the
/// CLI sends `cli`, or `<user> (cli)`.
pub const USER_HEADER: &str = "x-bext-user";

/// Who makes an API call: what it says in [`USER_HEADER`], `api` when it
/// says nothing.
fn caller(req: &Request) -> Result<String, DeployError> {
    let Some(value) = req.headers().get(USER_HEADER) else {
        return Ok("api".into());
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| (1..=64).contains(&s.len()) && !s.contains(|c: char| c.is_control()))
        .map(str::to_owned)
        .ok_or_else(|| DeployError::Bundle(format!("{USER_HEADER}: 1 to 64 printable ASCII characters")))
}

impl Shared {
    /// Runs `f` on the registry on a blocking thread. The registry is
    /// created on first use (nothing is written for a platform that never
    /// deploys) and records the platform file's apps when opened.
    async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<T, DeployError> {
        let (registry, root, keep) = (self.registry.clone(), self.root.clone(), self.config.keep_versions);
        let (apps, limits) = (self.apps.clone(), self.config.limits());
        tokio::task::spawn_blocking(move || {
            let mut guard = registry.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                let mut opened = Registry::open(&root, keep)?;
                opened.set_limits(limits);
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
    async fn refresh(&self) -> Result<(), DeployError> {
        let (records, previews) = self.with_registry(|r| Ok((r.canaries()?, r.previews(None)?))).await?;
        let next = previews.iter().map(|p| p.expires_at).min().unwrap_or(u64::MAX);
        self.next_expiry.store(next, Ordering::Relaxed);
        let old = self.canaries.load_full();
        let next: HashMap<String, Arc<Canary>> = records
            .into_iter()
            .map(|record| {
                let kept = old.get(&record.app).filter(|c| c.record.version == record.version);
                let canary = Canary {
                    target: canary_app_id(&record.app, &record.version),
                    cookie: cookie_name(&record.app),
                    visitors: AtomicU64::new(kept.map_or(0, |c| c.visitors.load(Ordering::Relaxed))),
                    stats: kept.map_or_else(|| Arc::new(Default::default()), |c| c.stats.clone()),
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
    async fn changed(&self) -> Result<(), DeployError> {
        self.refresh().await?;
        match self.reload.get() {
            Some(reload) => reload.run().await.map(drop).map_err(DeployError::Refused),
            None => Ok(()),
        }
    }

    /// Runs `op` on the registry, then serves what it changed; its result
    /// as the answer.
    async fn change<T: serde::Serialize + Send + 'static>(
        &self,
        op: impl FnOnce(&mut Registry) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<Response, DeployError> {
        let out = self.with_registry(op).await?;
        self.changed().await?;
        Ok(json(StatusCode::OK, &out))
    }

    /// One look at expired previews and at every canary with automatic
    /// decisions.
    async fn decide(&self) {
        let now = unix_now();
        if self.next_expiry.load(Ordering::Relaxed) <= now {
            match self.with_registry(move |r| r.prune_previews(now)).await {
                Ok(_) => {
                    if let Err(e) = self.changed().await {
                        tracing::error!(target: "bext::deploy", "after removing expired previews: {e}");
                    }
                }
                Err(e) => tracing::error!(target: "bext::deploy", "removing expired previews failed: {e}"),
            }
        }
        for canary in self.canaries.load().values() {
            let r = &canary.record;
            let seen = canary.stats[Canary::CANARY].snapshot();
            let failing = r
                .max_error_rate
                .is_some_and(|max| seen.requests >= MIN_REQUESTS && seen.error_rate > max);
            let due = r.auto_promote_after.is_some_and(|after| now >= r.started_at + after) && !failing;
            let (app, version, started) = (r.app.clone(), r.version.clone(), r.started_at);
            // An instance on its way out (after a reload) may still look:
            // act only on the canary the registry runs now.
            let still = move |reg: &Registry| -> Result<bool, DeployError> {
                Ok(reg
                    .canary(&app)?
                    .is_some_and(|c| c.version == version && c.started_at == started))
            };
            let (app, version) = (r.app.clone(), r.version.clone());
            let result = if failing {
                let why = format!(
                    "auto-rollback of canary {version}: 5xx rate {:.1}% over {:.1}% ({} of {} requests)",
                    seen.error_rate * 100.0,
                    r.max_error_rate.unwrap_or(0.0) * 100.0,
                    seen.errors,
                    seen.requests
                );
                self.with_registry(move |reg| {
                    if still(reg)? {
                        reg.log(&app, &why)?;
                        reg.rollback(&app, "auto")?;
                    }
                    Ok(())
                })
                .await
            } else if due {
                let why = format!(
                    "auto-promote of canary {version}: 5xx rate {:.1}% after {} s ({} requests)",
                    seen.error_rate * 100.0,
                    now - r.started_at,
                    seen.requests
                );
                self.with_registry(move |reg| {
                    if still(reg)? {
                        reg.log(&app, &why)?;
                        reg.promote(&app, None, "auto")?;
                    }
                    Ok(())
                })
                .await
            } else {
                continue;
            };
            match result {
                Ok(()) => {
                    if let Err(e) = self.changed().await {
                        tracing::error!(target: "bext::deploy", app = %r.app, "after an automatic decision: {e}");
                    }
                }
                Err(e) => tracing::error!(target: "bext::deploy", app = %r.app, "automatic decision failed: {e}"),
            }
        }
    }
}

/// Considers automatic decisions until the plugin instance is gone.
async fn decide_forever(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(AUTO_EVERY).await;
        let Some(shared) = shared.upgrade() else { return };
        shared.decide().await;
    }
}

impl DeployPlugin {
    async fn api(&self, req: &mut Request, rest: &str) -> Response {
        let shared = &self.shared;
        // Segments arrive escaped (an app id the CLI was given is sent as
        // is, `%2F` and all, for the registry to judge).
        let parts: Vec<String> = rest
            .trim_matches('/')
            .split('/')
            .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned())
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let method = req.method().clone();
        let query = Query(req.uri().query().unwrap_or("").to_owned());
        let result = match (&method, parts.as_slice()) {
            (&Method::GET, ["apps"]) => shared
                .with_registry(|r| r.apps())
                .await
                .map(|a| json(StatusCode::OK, &a)),
            (&Method::GET, ["apps", id]) => {
                let id = (*id).to_owned();
                let stats = self.stats(&id);
                shared
                    .with_registry(move |r| {
                        let app = r.app(&id)?;
                        let versions = r.versions(&id)?;
                        Ok(json(
                            StatusCode::OK,
                            &serde_json::json!({ "app": app, "versions": versions, "canary_stats": stats }),
                        ))
                    })
                    .await
            }
            (&Method::GET, ["apps", id, "versions"]) => {
                let id = (*id).to_owned();
                shared
                    .with_registry(move |r| r.versions(&id))
                    .await
                    .map(|v| json(StatusCode::OK, &v))
            }
            (&Method::POST, ["apps", id, "deploy"]) => self.deploy(req, id, &query).await,
            (&Method::GET, ["previews"]) => shared
                .with_registry(|r| r.previews(None))
                .await
                .map(|p| json(StatusCode::OK, &p)),
            (&Method::POST, ["previews", "prune"]) => {
                let now = unix_now();
                shared.change(move |r| r.prune_previews(now)).await
            }
            (&Method::POST, ["apps", id, "promote"]) => match (query.percent("to"), caller(req)) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(to), Ok(by)) => {
                    let id = (*id).to_owned();
                    shared.change(move |r| r.promote(&id, to, &by)).await
                }
            },
            (&Method::POST, ["apps", id, "rollback"]) => match caller(req) {
                Err(e) => Err(e),
                Ok(by) => {
                    let id = (*id).to_owned();
                    shared.change(move |r| r.rollback(&id, &by)).await
                }
            },
            (&Method::DELETE, ["apps", id]) => {
                let id = (*id).to_owned();
                shared
                    .change(move |r| r.remove(&id).map(|()| serde_json::json!({ "removed": true })))
                    .await
            }
            _ => {
                return json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({ "error": "no such endpoint" }),
                );
            }
        };
        result.unwrap_or_else(|e| json(e.status(), &serde_json::json!({ "error": e.to_string() })))
    }

    /// The traffic of each version of a canaried app, if it has a canary.
    fn stats(&self, app: &str) -> Option<serde_json::Value> {
        let canaries = self.shared.canaries.load();
        let c = canaries.get(app)?;
        Some(serde_json::json!({
            "stable": c.stats[Canary::STABLE].snapshot(),
            "canary": c.stats[Canary::CANARY].snapshot(),
        }))
    }

    /// A deploy: everything it asks for is checked before its upload is
    /// read.
    async fn deploy(&self, req: &mut Request, id: &str, query: &Query) -> Result<Response, DeployError> {
        // Names arrive escaped as the CLI sends them, for the registry to judge.
        let decoded = |v: &str| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        let version = query.get("version").map(decoded);
        let preview = query.get("preview").map(decoded);
        let ttl = match (query.get("ttl"), &preview) {
            (None, _) => self.shared.config.preview_ttl.0.as_secs(),
            (Some(s), Some(_)) => s
                .parse()
                .map_err(|_| DeployError::Bundle(format!("ttl={s}: the preview's lifetime in seconds")))?,
            (Some(_), None) => {
                return Err(DeployError::Bundle(
                    "ttl is a preview's lifetime: give preview=NAME with it".into(),
                ));
            }
        };
        let canary = match query.percent("canary")? {
            Some(share) => Some(CanaryPlan {
                share,
                auto_promote_after: query
                    .get("auto_promote_after")
                    .map(|s| {
                        s.parse()
                            .map_err(|_| DeployError::Bundle(format!("auto_promote_after={s}: seconds")))
                    })
                    .transpose()?,
                max_error_rate: query
                    .get("max_error_rate")
                    .map(|s| match s.parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                        _ => Err(DeployError::Bundle(format!(
                            "max_error_rate={s}: a fraction from 0 to 1"
                        ))),
                    })
                    .transpose()?,
            }),
            None => None,
        };
        let by = caller(req)?;
        registry::check_deploy(
            id,
            &DeployOptions {
                version: version.as_deref(),
                by: &by,
                canary,
                preview: preview.as_deref().map(|name| (name, ttl)),
                hooks: None,
            },
        )?;
        // The operator's own command with no server running hands over its
        // directory; anything else uploads a tar archive.
        let local = req.extensions_mut().remove::<LocalUpload>();
        let body = match local {
            Some(_) => bytes::Bytes::new(),
            None => std::mem::take(req.body_mut())
                .collect()
                .await
                .map_err(|e| DeployError::Bundle(format!("the upload could not be read: {e}")))?
                .to_bytes(),
        };
        let id = id.to_owned();
        let hooks = self.shared.config.app_hooks.get(&id).cloned().unwrap_or_default();
        let plain = canary.is_none() && preview.is_none();
        let (app, hooks_after) = (id.clone(), hooks.clone());
        let mut deployed = self
            .shared
            .with_registry(move |r| {
                let options = DeployOptions {
                    version: version.as_deref(),
                    by: &by,
                    canary,
                    preview: preview.as_deref().map(|name| (name, ttl)),
                    hooks: Some(&hooks),
                };
                match local {
                    Some(LocalUpload { dir, progress }) => r.deploy(&id, &dir, &options, &mut |p, n| progress(p, n)),
                    None => r.deploy_tar(&id, &body, &options),
                }
            })
            .await?;
        self.shared.changed().await?;
        if plain {
            // The new version serves: its post_deploy hook may run.
            let version = deployed.version.clone();
            deployed.post_deploy = self
                .shared
                .with_registry(move |r| r.post_deploy(&app, &version, &hooks_after))
                .await?;
        }
        Ok(json(StatusCode::CREATED, &deployed))
    }
}

/// The query string of an API call.
struct Query(String);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// `key=20` or `key=20%`, 0 to 100.
    fn percent(&self, key: &str) -> Result<Option<u8>, DeployError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v.trim_end_matches("%25").trim_end_matches('%').parse::<u8>() {
            Ok(p) if p <= 100 => Ok(Some(p)),
            _ => Err(DeployError::Bundle(format!("{key}={v}: a percentage from 0 to 100"))),
        }
    }
}

/// The value of cookie `name` in the request, if sent.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

fn set_cookie(res: &mut Response, name: &str, value: &str) {
    let cookie = format!("{name}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax");
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

impl Plugin for DeployPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE | Hooks::ADMIN
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let shared = &self.shared;
        let _ = shared.host.set(host.clone());
        if let Some(reload) = host.service::<Reload>() {
            let _ = shared.reload.set(reload);
        }
        host.spawn(decide_forever(Arc::downgrade(shared)));
        if !Registry::exists(&shared.root) {
            return Hook::Ready(Ok(()));
        }
        Hook::later(async move { shared.refresh().await.map_err(|e| PluginError::Init(Box::new(e))) })
    }

    fn admin_routes(&self) -> Option<&AdminRoutes> {
        Some(&self.admin)
    }

    fn admin<'a>(&'a self, req: &'a mut Request, _cx: &'a Ctx) -> Hook<'a, Result<Response, PluginError>> {
        let rest = self.admin.rest(req.uri().path()).unwrap_or_default().to_owned();
        Hook::later(async move { Ok(self.api(req, &rest).await) })
    }

    /// A canaried app: the visitor's version by its cookie; a new visitor
    /// gets the canary's share. Canary requests are answered here, by the
    /// canary version's runtime (the plugins outside this one still see
    /// them); the rest go on to the current version.
    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let canaries = self.shared.canaries.load();
        let Some(canary) = cx.app().and_then(|app| canaries.get(app)).cloned() else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        let (to_canary, new) = match cookie(req, &canary.cookie) {
            Some(v) => (v == canary.record.version, false),
            None => (canary.takes(canary.visitors.fetch_add(1, Ordering::Relaxed)), true),
        };
        let started = Instant::now();
        if !to_canary {
            cx.ext.insert(StableVisit { canary, new, started });
            return Hook::Ready(Ok(Flow::Continue));
        }
        let Some(host) = self.shared.host.get() else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        let target = AppTarget {
            app: canary.target.clone(),
            host: cx.host.as_deref().map(str::to_owned),
            tenant: cx.tenant().map(str::to_owned),
            base: cx.base.as_deref().map(str::to_owned),
        };
        let request = std::mem::replace(req, Request::new(bext_plugin_abi::Body::empty()));
        Hook::later(async move {
            let Some(mut res) = host.serve_app(target, request).await else {
                return Err(PluginError::hook(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("canary app {} is not served", canary.target),
                ));
            };
            canary.stats[Canary::CANARY].record(res.status(), started.elapsed());
            if new {
                set_cookie(&mut res, &canary.cookie, &canary.record.version);
            }
            Ok(Flow::Respond(res))
        })
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        if let Some(visit) = cx.ext.remove::<StableVisit>() {
            visit.canary.stats[Canary::STABLE].record(res.status(), visit.started.elapsed());
            if visit.new {
                set_cookie(res, &visit.canary.cookie, "stable");
            }
        }
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(DeployPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn with_user(value: Option<&[u8]>) -> Request {
        let mut req = Request::new(bext_plugin_abi::Body::empty());
        if let Some(v) = value {
            req.headers_mut()
                .insert(USER_HEADER, http::HeaderValue::from_bytes(v).unwrap());
        }
        req
    }

    #[test]
    fn the_caller_is_who_the_request_says_or_api() {
        assert_eq!(caller(&with_user(None)).unwrap(), "api");
        assert_eq!(caller(&with_user(Some(b"ci-bot"))).unwrap(), "ci-bot");
        assert_eq!(caller(&with_user(Some(b" alice (cli) "))).unwrap(), "alice (cli)");
        for bad in [&b""[..], b"  ", b"a\tb", "é".as_bytes(), &[b'x'; 65]] {
            let err = caller(&with_user(Some(bad))).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
