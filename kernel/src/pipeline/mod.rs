//! Manifests and the platform file compiled into one immutable
//! [`Pipeline`]: the fetch stage, a plugin chain per app, and the app
//! runtimes. A reload compiles a new one and swaps it in atomically.

pub mod admin;
pub(crate) mod app_changes;
mod compile;
mod fleet;
pub mod reload;
pub mod run;
mod shortcuts;
pub mod tls;
pub(crate) mod ui;

use std::collections::HashMap;
use std::sync::Arc;

use bext_plugin_abi::admin::AdminRoutes;
use bext_plugin_abi::{Hooks, Plugin};
use rustc_hash::FxHashMap;

use crate::apps::App;
use crate::config::manifest::FailMode;
use crate::config::platform::Platform;

pub(crate) use app_changes::preview_domains;
pub use compile::{JsChecks, compile, load_manifests, load_manifests_lenient, warnings};

/// One plugin's place in a stage.
#[derive(Clone)]
pub struct Slot {
    /// The plugin's name.
    pub name: Arc<str>,
    /// The instance.
    pub plugin: Arc<dyn Plugin>,
    /// Hooks it implements.
    pub hooks: Hooks,
    /// Its effective priority.
    pub priority: i32,
    /// What a failing hook does.
    pub on_error: FailMode,
}

/// A plugin's admin routes, mounted by the kernel under `/__bext/`.
pub struct AdminMount {
    /// Where the routes are.
    pub routes: AdminRoutes,
    /// The admin token they need; `None` when its variable is unset (the
    /// routes answer 404 then).
    pub token: Option<String>,
    /// The plugin serving them.
    pub slot: Slot,
}

/// The plugins that see an app's requests, in ascending priority.
#[derive(Default)]
pub struct Chain {
    /// Sorted by (priority, name).
    pub slots: Box<[Slot]>,
    /// Whether any plugin wants `on_complete`, known at compile time so a
    /// request without such plugins keeps no state for it.
    pub completes: bool,
    /// Whether any plugin has `on_request`: without one, nothing but the
    /// app reads the request's map.
    pub requests: bool,
    /// Whether any plugin has `on_response` for every response
    /// ([`Hooks::RESPONSE`]), which reads the answer's headers as a map
    /// (those that run only when asked, [`Hooks::RESPONSE_WHEN_ASKED`],
    /// are known per request).
    pub responds: bool,
    /// The first slot with a request hook whose plugin may add request
    /// headers (`usize::MAX`: none): the slots after it no longer see
    /// [`Ctx::headers_as_admitted`](bext_plugin_abi::Ctx::headers_as_admitted).
    pub first_adder: usize,
    /// Whether a plugin with a request hook may read the kernel's
    /// `x-base` and `x-vhost-tenant` request headers.
    pub reads_kernel_headers: bool,
}

impl Chain {
    /// A chain of already sorted slots.
    pub fn new(slots: Box<[Slot]>) -> Self {
        let completes = slots.iter().any(|s| s.hooks.has(Hooks::COMPLETE));
        let requests = slots.iter().any(|s| s.hooks.has(Hooks::REQUEST));
        let responds = slots.iter().any(|s| s.hooks.has(Hooks::RESPONSE));
        let first_adder = (slots.iter())
            .position(|s| s.hooks.has(Hooks::REQUEST) && s.plugin.adds_request_headers())
            .unwrap_or(usize::MAX);
        let reads_kernel_headers =
            (slots.iter()).any(|s| s.hooks.has(Hooks::REQUEST) && s.plugin.reads_kernel_headers());
        Chain {
            slots,
            completes,
            requests,
            responds,
            first_adder,
            reads_kernel_headers,
        }
    }
}

/// An app with its plugin chain.
pub struct AppEntry {
    /// The app.
    pub app: App,
    /// The plugins that run for it.
    pub chain: Arc<Chain>,
    /// Its request counters, found on its first request.
    pub counters: LazyCounters,
}

/// An app's request counters, looked up in the process's
/// [`crate::metrics::Metrics`] on the app's first request rather than when
/// the pipeline is built: an app that never served holds none (10,000
/// configured apps: ~6 MB), and shows in `/__bext/metrics` once it served.
pub struct LazyCounters {
    /// False with `[platform.metrics] enabled = false`: nothing counted.
    metered: bool,
    counters: std::sync::OnceLock<Arc<crate::metrics::AppCounters>>,
}

impl LazyCounters {
    /// Counters that `metered` says are kept, or not.
    pub fn new(metered: bool) -> LazyCounters {
        LazyCounters {
            metered,
            counters: std::sync::OnceLock::new(),
        }
    }

    /// The counters of app `id` in `metrics`; `None` when metrics are off.
    pub fn get(&self, metrics: &crate::metrics::Metrics, id: &str) -> Option<Arc<crate::metrics::AppCounters>> {
        self.metered
            .then(|| self.counters.get_or_init(|| metrics.app(id)).clone())
    }
}

/// Key of a plugin instance: instances with the same name, base and
/// configuration are shared, and survive reloads.
pub(crate) type InstanceKey = String;

/// A compiled, immutable configuration.
pub struct Pipeline {
    /// Increases by one on each reload.
    pub generation: u64,
    /// The platform it was built from.
    pub platform: Platform,
    /// Plugins with a `fetch` hook, in order.
    pub fetch: Box<[Slot]>,
    /// Plugins' admin routes, longest base first.
    pub admin: Box<[AdminMount]>,
    /// The chain for requests no app claims.
    pub global: Arc<Chain>,
    /// Apps by id.
    pub apps: FxHashMap<Arc<str>, AppEntry>,
    pub(crate) instances: HashMap<InstanceKey, Arc<dyn Plugin>>,
    /// Request headers plugins own (beyond bext's own), stripped from every
    /// request on arrival: see `Plugin::owned_request_headers`.
    pub owned_headers: Box<[http::HeaderName]>,
    /// Hash of the files it was built from, so the watcher reloads only
    /// when their content changes.
    pub fingerprint: u64,
    /// The static file cache, handed on from pipeline to pipeline.
    pub files: Arc<crate::apps::static_files::FileCache>,
    /// Values plugins keep across reloads (`Host::shared`), handed on from
    /// pipeline to pipeline.
    pub shared: Arc<bext_plugin_abi::SharedPool>,
    /// In edge mode, the fleet's Redis, handed on from pipeline to
    /// pipeline while `[redis]` stays the same.
    pub fleet: Option<Arc<bext_edge::Edge>>,
    /// Certificates by SNI and apps' https policies.
    pub tls: tls::Tls,
    /// The process's metrics, handed on from pipeline to pipeline.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The counters of `[platform.metrics] tenants`, by tenant name.
    pub metered_tenants: Box<[(Box<str>, Arc<crate::metrics::TenantCounters>)]>,
    /// Where requests' access log lines go, handed on from pipeline to
    /// pipeline while `[platform] access_log` stays the same.
    pub access_log: crate::access_log::Sink,
    /// The OTLP exporter of `[platform.otel]`, handed on likewise.
    pub otel: Option<Arc<crate::trace::Otel>>,
}

impl Pipeline {
    /// What the end of a request served by the app with `counters`
    /// (`None`: no app served it) for `tenant` updates; nothing when
    /// metrics are off.
    pub fn record(
        &self,
        counters: Option<Arc<crate::metrics::AppCounters>>,
        tenant: Option<&str>,
    ) -> crate::metrics::Record {
        if !self.platform.settings.metrics.enabled {
            return crate::metrics::Record::default();
        }
        let tenant = match tenant {
            Some(t) if !self.metered_tenants.is_empty() => self
                .metered_tenants
                .iter()
                .find(|(name, _)| &**name == t)
                .map(|(_, c)| c.clone()),
            _ => None,
        };
        crate::metrics::Record {
            app: Some(counters.unwrap_or_else(|| self.metrics.unrouted().clone())),
            tenant,
        }
    }
}

impl Pipeline {
    /// Every plugin instance of this pipeline.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &Arc<dyn Plugin>)> {
        self.instances
            .iter()
            .map(|(k, v)| (k.split('\0').next().unwrap_or(""), v))
    }
}

#[cfg(test)]
mod lazy_counters {
    use super::LazyCounters;
    use crate::metrics::Metrics;

    /// An app's counters are made by its first request, once, and are the
    /// process's (a reload's new pipeline finds the same ones).
    #[test]
    fn counters_are_made_by_the_first_request_only() {
        let metrics = Metrics::default();
        let shop = LazyCounters::new(true);
        assert!(metrics.counted_apps().is_empty(), "no app counted before a request");
        let first = shop.get(&metrics, "shop").unwrap();
        let again = shop.get(&metrics, "shop").unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &again));
        let after_reload = LazyCounters::new(true).get(&metrics, "shop").unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &after_reload));
        assert_eq!(metrics.counted_apps(), ["shop"]);
        assert!(LazyCounters::new(false).get(&metrics, "off").is_none());
        assert_eq!(metrics.counted_apps(), ["shop"], "metrics off: nothing made");
    }
}
