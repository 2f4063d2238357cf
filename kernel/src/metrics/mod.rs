//! Prometheus metrics: what requests update on their way ([`AppCounters`],
//! relaxed atomics per app), what the kernel counts elsewhere (reloads),
//! and `/__bext/metrics`, which reads everything else (connections, process
//! apps, certificates, plugins' own metrics) when scraped. See docs/observability.md.
//!
//! Label values are bounded: app ids come from the platform file (a
//! canary `shop@v2` or a preview `shop~pr-1` counts as `shop`), methods
//! and status classes from fixed lists, tenants only from
//! `[platform.metrics] tenants`. Never a raw host or path.

mod app;
mod expose;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub use app::{AppCounters, DURATION_BUCKETS, METHODS, STATUS_CLASSES, method_index};
use bext_plugin_abi::MetricsRegistry;
pub use expose::{CONTENT_TYPE, render};

/// The `app` label of requests no app served (refused, unknown host,
/// bext's own endpoints).
pub const NO_APP: &str = "-";

/// The process's metrics, handed on from pipeline to pipeline so counters
/// never restart with a reload.
#[derive(Default)]
pub struct Metrics {
    apps: Mutex<BTreeMap<Arc<str>, Arc<AppCounters>>>,
    unrouted: Arc<AppCounters>,
    tenants: Mutex<BTreeMap<Arc<str>, Arc<TenantCounters>>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    connections: OnceLock<crate::server::Tracker>,
    /// The ACME service, whose certificates are not the pipeline's.
    acme: OnceLock<Arc<crate::server::acme::Acme>>,
    plugins: Arc<MetricsRegistry>,
    /// Access log lines a full buffer dropped (every access log's).
    pub access_log_dropped: Arc<AtomicU64>,
}

/// Requests of one allow-listed tenant, by status class.
#[derive(Debug, Default)]
pub struct TenantCounters {
    requests: [AtomicU64; STATUS_CLASSES.len()],
}

impl TenantCounters {
    /// Counts a finished response.
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The counters of app `id` (a canary's or preview's under the app it
    /// copies).
    pub fn app(&self, id: &str) -> Arc<AppCounters> {
        let base = id.split(['@', '~']).next().unwrap_or(id);
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.entry(base.into()).or_default().clone()
    }

    /// The apps that have counters, by id (the ones that served since
    /// the process started).
    #[cfg(test)]
    pub fn counted_apps(&self) -> Vec<String> {
        let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.keys().map(|k| k.to_string()).collect()
    }

    /// The counters of requests no app served.
    pub fn unrouted(&self) -> &Arc<AppCounters> {
        &self.unrouted
    }

    /// The counters of an allow-listed tenant.
    pub fn tenant(&self, name: &str) -> Arc<TenantCounters> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.entry(name.into()).or_default().clone()
    }

    /// Counts a reload (SIGHUP, the watcher or a plugin's) and its result.
    pub fn reloaded(&self, ok: bool) {
        let counter = if ok { &self.reloads_ok } else { &self.reloads_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Shows the public listeners' open connections (set once at start).
    pub fn watch_connections(&self, tracker: crate::server::Tracker) {
        let _ = self.connections.set(tracker);
    }

    /// Shows the ACME service's certificates with the pipeline's (set
    /// once at start).
    pub fn watch_acme(&self, acme: Arc<crate::server::acme::Acme>) {
        let _ = self.acme.set(acme);
    }

    /// Where plugins register their own metrics (`Host::metrics`).
    pub fn plugins(&self) -> &Arc<MetricsRegistry> {
        &self.plugins
    }
}

/// What a request's end updates: its app's counters and, for an
/// allow-listed tenant, the tenant's. `None` when metrics are off.
#[derive(Clone, Default)]
pub struct Record {
    /// The app's counters.
    pub app: Option<Arc<AppCounters>>,
    /// The tenant's, if allow-listed.
    pub tenant: Option<Arc<TenantCounters>>,
}

impl Record {
    /// Counts a finished response.
    pub fn finish(&self, method: u8, status: u16, duration: std::time::Duration, bytes: u64, read: u64) {
        if let Some(app) = &self.app {
            app.record(method, status, duration, bytes);
            if read > 0 {
                app.read(read);
            }
        }
        if let Some(tenant) = &self.tenant {
            tenant.record(status);
        }
    }

    /// Whether nothing is counted.
    pub fn is_off(&self) -> bool {
        self.app.is_none()
    }
}
