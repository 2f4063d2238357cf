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
//!
//! One concern per file besides those:
//!
//! - `api.rs`: the admin API's routing and what a request asks for;
//! - `answer.rs`: its JSON answers;
//! - `shared.rs`: the state an instance's hooks, API and task share;
//! - `split.rs`: the canary traffic split, in the request hooks;
//! - `canary.rs`: a running canary's share and traffic counts;
//! - `auto.rs`: the background task (automatic decisions, expired
//!   previews);
//! - `ids.rs`: the hidden apps' ids; `error.rs`: [`DeployError`].

mod answer;
mod api;
mod auto;
pub mod bundle;
mod canary;
pub mod config;
mod error;
pub mod hooks;
mod ids;
pub mod registry;
mod remove;
mod shared;
mod split;
pub mod store;
pub mod table;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bext_plugin_abi::admin::AdminRoutes;
use bext_plugin_abi::{
    AppChange, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Reload, Request, Response, Setup,
};

use crate::config::Config;
use crate::shared::Shared;

pub use crate::api::USER_HEADER;
pub use crate::canary::VersionStats;
pub use crate::error::DeployError;
pub use crate::hooks::{DeployHooks, HookRun};
pub use crate::ids::{canary_app_id, preview_app_id};
pub use crate::registry::{
    AppRecord, CanaryPlan, CanaryRecord, DeployOptions, Deployed, DomainRecord, Event, HookRecord, PreviewRecord,
    Registry, Served, VersionRecord,
};

/// Seconds since the Unix epoch: the registry's clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The plugin instance.
pub struct DeployPlugin {
    admin: AdminRoutes,
    shared: Arc<Shared>,
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
            shared: Arc::new(Shared::new(config, setup)),
        })
    }

    fn app_changes(config: &Config, setup: &Setup<'_>) -> Result<Vec<AppChange>, PluginError> {
        let root = Registry::root_in(setup.data_dir);
        let served = Registry::served(&root).map_err(|e| PluginError::Init(e.into()))?;
        let mut changes = table::changes(served, unix_now(), setup.apps);
        for pin in &config.pinned_versions {
            let Some((app, spec)) = pin.split_once('@') else {
                continue;
            };
            let versions = Registry::versions_read_only(&root, app).map_err(|e| PluginError::Init(e.into()))?;
            match table::pinned(pin, app, spec, &versions) {
                Some(change) => changes.push(change),
                None => {
                    let known: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
                    tracing::warn!(target: "bext::deploy", pin = %pin, deployed = ?known, "no deployed version matches: its hosts answer 502");
                }
            }
        }
        Ok(changes)
    }
}

impl Plugin for DeployPlugin {
    fn hooks(&self) -> Hooks {
        // `on_response` only counts a canaried app's stable answers: asked
        // for by `on_request`, so every other response is left alone.
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE_WHEN_ASKED | Hooks::ADMIN
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let shared = &self.shared;
        let _ = shared.host.set(host.clone());
        match host.metrics("deploy").counter_family(
            "version_requests",
            "Requests of a canaried app by version, role (stable or canary) and status class.",
        ) {
            Ok(family) => {
                let _ = shared.version_requests.set(family);
            }
            Err(e) => return Hook::Ready(Err(PluginError::Init(e.into()))),
        }
        if let Some(reload) = host.service::<Reload>() {
            let _ = shared.reload.set(reload);
        }
        host.spawn(auto::decide_forever(Arc::downgrade(shared)));
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
        Hook::later(async move { Ok(api::handle(&self.shared, req, &rest).await) })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        split::on_request(&self.shared, req, cx)
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        split::on_response(&self.shared, res, cx);
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(DeployPlugin);
