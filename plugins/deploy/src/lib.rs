//! The `deploy` plugin: the app registry.
//!
//! Versions of an app are stored by content under `<data_dir>/deploy`
//! ([`store`]), recorded in a SQLite registry ([`registry`]), and served by
//! the kernel from the current version's directory: the kernel reads the
//! registry when it builds a pipeline, so switching versions is a pipeline
//! swap (atomic for new requests; requests in flight finish on the old
//! version, whose runtime is dropped once they are done).
//!
//! The plugin serves the admin API the CLI uses when a server runs, at its
//! manifest's `base` (`/__bext/api/platform`), behind
//! `Authorization: Bearer $BEXT_ADMIN_TOKEN`:
//!
//! | method and path | does |
//! |---|---|
//! | `GET {base}/apps` | every app with its current version |
//! | `GET {base}/apps/{id}` | one app, with its versions |
//! | `GET {base}/apps/{id}/versions` | its versions, newest first |
//! | `POST {base}/apps/{id}/deploy?version=V` | a tar of the bundle as the body: store it, make it current |
//! | `POST {base}/apps/{id}/rollback` | make the previous version current |
//! | `DELETE {base}/apps/{id}` | forget the app and its versions |
//!
//! Changes answer once the new pipeline serves.

pub mod config;
pub mod registry;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bext_plugin_abi::admin::refuse_unless_admin;
use bext_plugin_abi::{
    BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Reload, Request, Response, Setup,
};
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;

use crate::config::Config;
pub use crate::registry::{AppRecord, Deployed, Registry, VersionRecord};

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
    /// No such app or version.
    #[error("{0}")]
    NotFound(String),
    /// That version exists already.
    #[error("version exists already: {0}")]
    Exists(String),
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
            DeployError::NotFound(_) => StatusCode::NOT_FOUND,
            DeployError::Exists(_) => StatusCode::CONFLICT,
            DeployError::Io { .. } | DeployError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The plugin instance.
pub struct DeployPlugin {
    base: String,
    root: PathBuf,
    config: Config,
    apps: Vec<String>,
    token: OnceLock<Option<String>>,
    reload: OnceLock<Arc<Reload>>,
    registry: Arc<Mutex<Option<Registry>>>,
}

impl BuiltinPlugin for DeployPlugin {
    const NAME: &'static str = "deploy";
    const PRIORITY: i32 = 20;
    const SUMMARY: &'static str = "app registry: versions by content, deploys, rollbacks";
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/deploy.yaml");
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        Ok(DeployPlugin {
            base: setup
                .base
                .unwrap_or("/__bext/api/platform")
                .trim_end_matches('/')
                .to_owned(),
            root: Registry::root_in(setup.data_dir),
            apps: setup.apps.iter().map(|a| a.id.clone()).collect(),
            config,
            token: OnceLock::new(),
            reload: OnceLock::new(),
            registry: Arc::new(Mutex::new(None)),
        })
    }
}

impl DeployPlugin {
    /// Runs `f` on the registry on a blocking thread. The registry is
    /// created on first use (nothing is written for a platform that never
    /// deploys) and records the platform file's apps when opened.
    async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<T, DeployError> {
        let (registry, root, keep) = (self.registry.clone(), self.root.clone(), self.config.keep_versions);
        let apps = self.apps.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = registry.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                let mut opened = Registry::open(&root, keep)?;
                opened.sync_platform_apps(apps.iter().map(String::as_str))?;
                *guard = Some(opened);
            }
            f(guard.as_mut().expect("opened above"))
        })
        .await
        .map_err(|e| DeployError::Db(format!("registry task failed: {e}")))?
    }

    async fn api(&self, req: &mut Request, rest: &str) -> Response {
        if let Some(refused) = refuse_unless_admin(req, self.token.get().and_then(Option::as_deref)) {
            return refused;
        }
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let method = req.method().clone();
        let result = match (&method, parts.as_slice()) {
            (&Method::GET, ["apps"]) => self.with_registry(|r| r.apps()).await.map(|a| json_ok(&a)),
            (&Method::GET, ["apps", id]) => {
                let id = (*id).to_owned();
                self.with_registry(move |r| {
                    let app = r.app(&id)?;
                    let versions = r.versions(&id)?;
                    Ok(json_ok(&serde_json::json!({ "app": app, "versions": versions })))
                })
                .await
            }
            (&Method::GET, ["apps", id, "versions"]) => {
                let id = (*id).to_owned();
                self.with_registry(move |r| r.versions(&id)).await.map(|v| json_ok(&v))
            }
            (&Method::POST, ["apps", id, "deploy"]) => self.deploy(req, id).await,
            (&Method::POST, ["apps", id, "rollback"]) => {
                let id = (*id).to_owned();
                match self.with_registry(move |r| r.rollback(&id)).await {
                    Ok(v) => self.reloaded(json_ok(&v)).await,
                    Err(e) => Err(e),
                }
            }
            (&Method::DELETE, ["apps", id]) => {
                let id = (*id).to_owned();
                match self.with_registry(move |r| r.remove(&id)).await {
                    Ok(()) => self.reloaded(json_ok(&serde_json::json!({ "removed": true }))).await,
                    Err(e) => Err(e),
                }
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

    async fn deploy(&self, req: &mut Request, id: &str) -> Result<Response, DeployError> {
        let version = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("version=")))
            .map(str::to_owned);
        let by = req
            .headers()
            .get("x-bext-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("api")
            .to_owned();
        let body = std::mem::take(req.body_mut())
            .collect()
            .await
            .map_err(|e| DeployError::Bundle(format!("the upload could not be read: {e}")))?
            .to_bytes();
        let id = id.to_owned();
        let deployed = self
            .with_registry(move |r| r.deploy_tar(&id, &body, version.as_deref(), &by))
            .await?;
        let mut res = self.reloaded(json_ok(&deployed)).await?;
        if res.status() == StatusCode::OK {
            *res.status_mut() = StatusCode::CREATED;
        }
        Ok(res)
    }

    /// `answer`, once the kernel serves what the registry now says.
    async fn reloaded(&self, answer: Response) -> Result<Response, DeployError> {
        let Some(reload) = self.reload.get() else {
            return Ok(answer);
        };
        match reload.run().await {
            Ok(_) => Ok(answer),
            Err(e) => Ok(json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({ "error": format!("recorded, but the new configuration was refused: {e}") }),
            )),
        }
    }
}

impl Plugin for DeployPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::FETCH
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let _ = self.token.set(
            std::env::var(&self.config.admin_token_env)
                .ok()
                .filter(|t| !t.is_empty()),
        );
        if let Some(reload) = host.service::<Reload>() {
            let _ = self.reload.set(reload);
        }
        if !Registry::exists(&self.root) {
            return Hook::Ready(Ok(()));
        }
        Hook::later(async move {
            self.with_registry(|_| Ok(()))
                .await
                .map_err(|e| PluginError::Init(Box::new(e)))
        })
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, _cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let Some(rest) = req.uri().path().strip_prefix(self.base.as_str()) else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Hook::Ready(Ok(Flow::Continue));
        }
        let rest = rest.to_owned();
        Hook::later(async move { Ok(Flow::Respond(self.api(req, &rest).await)) })
    }
}

fn json_ok(value: &impl serde::Serialize) -> Response {
    json(StatusCode::OK, value)
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut res = Response::new(bext_plugin_abi::Body::full(bytes::Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

bext_plugin_abi::register!(DeployPlugin);
