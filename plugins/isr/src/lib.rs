//! The `isr` plugin: whole responses cached per app, served without
//! touching the app.
//!
//! On the request (GET/HEAD without a body and without `;` in the query,
//! from no caller unless a rule allows it: no subject verified by authn,
//! none of `credential_headers` such as `Authorization`, `Cookie`,
//! `x-api-key`; see RFC 9111 §3.5):
//! a fresh entry is answered at once (`x-cache: HIT`, `Age`, `ETag`, 304
//! for a matching `If-None-Match`); a stale one within its
//! stale-while-revalidate window too (`STALE`) while one background request
//! refreshes it; on a miss exactly one request per key goes on to the app
//! while the others wait for its answer (the stampede guard), asking the
//! app for the key's query (ignored parameters removed). On the
//! response: what may be kept (see [`policy`]) is stored, up to
//! `max_entry_bytes`, and the waiting requests are woken.
//!
//! Admin endpoints under the manifest's `base` (`/__bext/api`), mounted by
//! the kernel: `POST {base}/invalidate` (`{"tags": [], "paths": [], "app":
//! ""}`) and `POST {base}/revalidate` (`{"app": "", "path": "", "host":
//! ""}`), with `Authorization: Bearer $BEXT_ADMIN_TOKEN`.
//!
//! One file per concern: [`config`] (the manifest's block), `rules` (what
//! it compiles to), `lookup` (the request side: bypass, key, hits, the
//! stampede guard), `save` (the response side: storing), `refresh`
//! (stale-while-revalidate in the background), `answer` (the headers the
//! cache writes: `x-cache`, `Age`, ETags, 304s), `admin` and `invalidate`
//! (the endpoints, and dropping entries here and across the fleet);
//! [`key`], [`policy`], [`store`] and [`l2`] are the pure parts they share.

mod admin;
mod answer;
pub mod config;
mod invalidate;
pub mod key;
pub mod l2;
mod lookup;
pub mod policy;
mod refresh;
mod rules;
mod save;
pub mod store;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bext_plugin_abi::admin::AdminRoutes;
use bext_plugin_abi::{
    BuiltinPlugin, CacheStatus, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Request, Response, Setup,
};

use crate::config::Config;
use crate::invalidate::Listener;
use crate::key::IgnoredParams;
use crate::rules::Rules;
use crate::save::StorePolicy;
use crate::store::{CACHES_KEY, Caches, Limits};

/// The tags of a response (`Cache-Tag`, `x-bext-tags`): also what the
/// kernel files JS apps' `caches.default` entries under.
pub use crate::answer::tags_of;

/// The plugin instance.
pub struct IsrPlugin {
    /// Each app's cache is made with these.
    limits: Limits,
    /// What decides whether and how a response is stored.
    store: Arc<StorePolicy>,
    /// How long requests for a key being fetched wait for the first one.
    wait_timeout: Duration,
    /// Query parameters left out of keys.
    ignored: IgnoredParams,
    /// The compiled `rules`.
    rules: Rules,
    /// Where the admin endpoints live, and whose token guards them.
    admin: AdminRoutes,
    /// The kernel's services, from `on_init`.
    host: OnceLock<Host>,
    /// Every app's id (invalidating a path everywhere names each app's set).
    apps: Vec<String>,
    /// Every app's cache: the host's shared table, from `on_init`.
    caches: OnceLock<Arc<Caches>>,
    /// In edge mode, the task applying the fleet's invalidations to
    /// `caches`, held so that it runs while this instance lives.
    _listener: OnceLock<Arc<Listener>>,
    /// Answers by cache status on `/__bext/metrics`
    /// (`bext_plugin_isr_responses_total{status}`), from `on_init`.
    statuses: OnceLock<bext_plugin_abi::metrics::CounterFamily>,
}

impl BuiltinPlugin for IsrPlugin {
    const NAME: &'static str = "isr";
    const PRIORITY: i32 = 800;
    const SUMMARY: &'static str = "whole-response cache: rules, Cache-Control, stale-while-revalidate, ETags, tags";
    // Rebuilt when the app table changes: it keeps one cache per app of the table.
    const READS_APP_TABLE: bool = true;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/isr.yaml");
    type Config = Config;

    fn new(c: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        if c.max_entries == 0 {
            return Err(PluginError::config("max_entries", "must be at least 1"));
        }
        let credentials = rules::credential_names(&c.credential_headers)?;
        let rules = Rules::compile(&c.rules)?;
        Ok(IsrPlugin {
            limits: Limits {
                entries: c.max_entries,
                bytes: c.max_bytes.0,
            },
            store: Arc::new(StorePolicy {
                default_ttl: c.default_ttl.map(|s| s.0),
                default_swr: c.default_swr.map(|s| s.0),
                negative_ttl: c.negative_ttl.0,
                max_entry_bytes: usize::try_from(c.max_entry_bytes.0).unwrap_or(usize::MAX),
                edge: OnceLock::new(),
                credentials,
            }),
            wait_timeout: c.wait_timeout.0,
            ignored: IgnoredParams::new(&c.ignore_params),
            rules,
            admin: AdminRoutes::under("base", setup.base.unwrap_or(admin::DEFAULT_BASE))?
                .only(admin::PATHS)
                .token_env(c.admin_token_env),
            host: OnceLock::new(),
            apps: setup.apps.iter().map(|a| a.id.clone()).collect(),
            caches: OnceLock::new(),
            _listener: OnceLock::new(),
            statuses: OnceLock::new(),
        })
    }
}

impl IsrPlugin {
    /// Every app's cache: the shared table, or (before `on_init`) the
    /// instance's own.
    fn caches(&self) -> &Arc<Caches> {
        self.caches.get_or_init(Default::default)
    }

    /// Counts an answer's `x-cache` status (`HIT`, `STALE`, `MISS`,
    /// `BYPASS`) and records it in the request's context, where the
    /// access log reads it (no search of the response's headers).
    pub(crate) fn count(&self, cx: &mut Ctx, status: CacheStatus) {
        cx.cache_status = Some(status);
        if let Some(s) = self.statuses.get() {
            s.get_or_create(&vec![("status", status.as_str().to_owned())]).inc();
        }
    }
}

impl Plugin for IsrPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE | Hooks::ADMIN
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let _ = self.host.set(host.clone());
        match host
            .metrics(Self::NAME)
            .counter_family("responses", "Answers of cached paths, by x-cache status.")
        {
            Ok(s) => {
                let _ = self.statuses.set(s);
            }
            Err(e) => return Hook::Ready(Err(PluginError::Init(e.into()))),
        }
        let _ = self.caches.set(host.shared(CACHES_KEY, Caches::default));
        let caches = self.caches();
        caches.retain_apps(host.apps());
        if let Some(edge) = host.fleet().cloned() {
            let _ = self._listener.set(invalidate::listen(host, &edge, caches));
            let _ = self.store.edge.set(edge);
        }
        Hook::Ready(Ok(()))
    }

    fn admin_routes(&self) -> Option<&AdminRoutes> {
        Some(&self.admin)
    }

    fn admin<'a>(&'a self, req: &'a mut Request, _cx: &'a Ctx) -> Hook<'a, Result<Response, PluginError>> {
        let Some(action) = admin::Action::of(self.admin.base(), req.uri().path()) else {
            return Hook::Ready(Ok(bext_plugin_abi::text_response(
                http::StatusCode::NOT_FOUND,
                "not found\n",
            )));
        };
        Hook::later(async move { Ok(self.serve_admin(req, action).await) })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        self.lookup(req, cx)
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        self.save(res, cx)
    }
}

bext_plugin_abi::register!(IsrPlugin);
