use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use crate::{Fleet, SharedPool};

/// An app as plugins see it at build time: enough to route to it without
/// reaching into the kernel's app table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppInfo {
    /// The app's id (`[apps.<id>]`).
    pub id: String,
    /// Domains the platform file gives it (exact or `*.` wildcards).
    pub domains: Vec<String>,
    /// Tenants' own domains (`shop.customer.com` → `customer`): exact
    /// hosts that reach the app as that tenant, as a wildcard host would.
    /// Kept apart from `domains` so that nothing orders certificates for
    /// them up front or templates them for previews.
    pub tenant_domains: std::collections::BTreeMap<String, String>,
}

/// What a plugin may know while its configuration is checked and built:
/// pure data, no I/O, so `bext check` can run it.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The plugin's name from its manifest.
    pub plugin: &'a str,
    /// The manifest's `base`: where the plugin's own HTTP routes mount.
    pub base: Option<&'a str>,
    /// Every app of the platform.
    pub apps: &'a [AppInfo],
    /// The platform's data directory.
    pub data_dir: &'a Path,
}

/// A background task handed to the kernel's runtime.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs tasks on the kernel's runtime.
pub type Spawner = dyn Fn(Task) + Send + Sync;

/// Services the kernel lends a plugin in `on_init`; the plugin may keep it.
///
/// Later versions add more services (metrics, say) as new methods, so
/// plugins never need the kernel as a dependency.
#[derive(Clone)]
pub struct Host {
    data_dir: PathBuf,
    apps: Arc<[AppInfo]>,
    spawner: Arc<Spawner>,
    app_service: Option<Arc<AppService>>,
    services: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    shared: Arc<SharedPool>,
    fleet: Option<Arc<dyn Fleet>>,
    metrics: Arc<crate::MetricsRegistry>,
}

/// Whom a request a plugin makes itself is for: the app, and what the
/// kernel would have resolved for a client's request (host, tenant, mount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppTarget {
    /// The app's id.
    pub app: String,
    /// The request's host.
    pub host: Option<String>,
    /// The tenant of a wildcard host.
    pub tenant: Option<String>,
    /// The mount path (`x-base`).
    pub base: Option<String>,
}

/// A response from an app's runtime, asked for by a plugin.
pub type AppResponse = Pin<Box<dyn Future<Output = Option<crate::Response>> + Send>>;

/// Serves a request with an app's runtime, no plugins in between; `None`
/// when the app does not exist (any more).
pub type AppService = dyn Fn(AppTarget, crate::Request) -> AppResponse + Send + Sync;

/// Rebuilds the kernel's pipeline from its configuration, as SIGHUP does,
/// for plugins that change what is served (the deploy registry): new
/// requests go to the new pipeline, requests in flight finish on theirs.
/// A host service: `host.service::<Reload>()`.
pub struct Reload(Box<dyn Fn() -> Reloading + Send + Sync>);

/// A reload under way: the new pipeline's generation, or why it was refused.
pub type Reloading = Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

impl Reload {
    /// Wraps the kernel's reload.
    pub fn new(f: impl Fn() -> Reloading + Send + Sync + 'static) -> Self {
        Reload(Box::new(f))
    }

    /// Resolves once the new pipeline serves, with its generation, or with
    /// why the configuration was refused (the old pipeline keeps serving).
    pub async fn run(&self) -> Result<u64, String> {
        (self.0)().await
    }
}

impl Host {
    /// Built by the kernel; tests may build one too.
    pub fn new(data_dir: PathBuf, apps: Arc<[AppInfo]>, spawner: Arc<Spawner>) -> Self {
        Host {
            data_dir,
            apps,
            spawner,
            app_service: None,
            services: Vec::new(),
            shared: Arc::default(),
            fleet: None,
            metrics: Arc::default(),
        }
    }

    /// Lends plugins the kernel's pool of shared values ([`Host::shared`]),
    /// the same for every pipeline; a new host has a pool of its own.
    pub fn with_shared_pool(mut self, pool: Arc<SharedPool>) -> Self {
        self.shared = pool;
        self
    }

    /// A value that outlives a reload: the one of type `T` under `key` that
    /// an instance of a live pipeline holds (the instance this one
    /// replaces, or another instance of the plugin: per-app configurations
    /// are instances of their own), else `make()`. Keep the `Arc` in the
    /// instance: the value lives while some instance holds it and is
    /// dropped with the last one (reference-counted, as Caddy's
    /// `UsagePool`). Start `key` with the plugin's name (`"waf:audit"`).
    pub fn shared<T: Send + Sync + 'static>(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        self.shared.get_or_make(key, make)
    }

    /// Lends plugins the kernel's metrics registry ([`Host::metrics`]),
    /// the one `/__bext/metrics` shows; a new host has a registry of its own.
    pub fn with_metrics(mut self, registry: Arc<crate::MetricsRegistry>) -> Self {
        self.metrics = registry;
        self
    }

    /// Where plugin `plugin` (its manifest name) publishes metrics: every
    /// name gets the prefix `bext_plugin_<plugin>_`, and shows on
    /// `/__bext/metrics`.
    pub fn metrics(&self, plugin: &str) -> crate::PluginMetrics {
        self.metrics.for_plugin(plugin)
    }

    /// Lends plugins the store an edge fleet shares ([`Host::fleet`]).
    pub fn with_fleet(mut self, fleet: Arc<dyn Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// In edge mode, the store the instances of the fleet share (the L2
    /// cache, invalidation, shared limits); `None` for a lone instance.
    pub fn fleet(&self) -> Option<&Arc<dyn Fleet>> {
        self.fleet.as_ref()
    }

    /// Lends plugins a shared service of the kernel's ([`Reload`], for
    /// one), found again by its type with [`Host::service`].
    pub fn with_service<T: Send + Sync + 'static>(mut self, service: Arc<T>) -> Self {
        self.services.push(service);
        self
    }

    /// The service of type `T`, if the kernel runs one (for example
    /// [`Reload`]).
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.services.iter().find_map(|s| s.clone().downcast::<T>().ok())
    }

    /// Lets plugins ask apps for responses themselves (see [`Host::serve_app`]).
    pub fn with_app_service(mut self, service: Arc<AppService>) -> Self {
        self.app_service = Some(service);
        self
    }

    /// Has an app's runtime answer `req` directly, with no plugin in
    /// between: a cache refreshing an entry in the background, or
    /// re-rendering a page on demand. `None` without an app service or
    /// without that app. A request carrying [`crate::ArrivedOverTls`] in
    /// its extensions is served as one that arrived over TLS: the app
    /// sees the `https` scheme, as the client the answer is for did.
    pub fn serve_app(&self, to: AppTarget, req: crate::Request) -> AppResponse {
        match &self.app_service {
            Some(service) => service(to, req),
            None => Box::pin(async { None }),
        }
    }

    /// Where the plugin may keep files (create a subfolder named after it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The same services with an empty app table: what the kernel lends a
    /// plugin that does not read the table
    /// ([`crate::BuiltinPlugin::READS_APP_TABLE`]).
    pub fn without_apps(mut self) -> Self {
        self.apps = Arc::new([]);
        self
    }

    /// Every app of the platform; none for a plugin that does not read the
    /// table ([`crate::BuiltinPlugin::READS_APP_TABLE`]).
    pub fn apps(&self) -> &[AppInfo] {
        &self.apps
    }

    /// Runs a background task on the kernel's runtime (timers, refreshers).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        (self.spawner)(Box::pin(task))
    }
}
