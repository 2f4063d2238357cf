//! bext: many web apps behind one address.
//!
//! A small kernel (hyper + tokio) accepts HTTP, finds the app a request
//! belongs to and runs a pipeline of plugins around that app's runtime.
//! Everything a user would call a feature is a plugin (`bext-plugin-abi`),
//! switched on and configured by a YAML manifest. See `docs/hooks.md` for
//! the request's way through.

pub mod access_log;
pub mod apps;
pub mod cli;
pub mod config;
mod loader;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod trace;

#[cfg(test)]
mod hostile_input_tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use bext_plugin_abi::RequestId;

use crate::config::diag::Diagnostics;
use crate::config::platform::{Limits, Platform};
use crate::pipeline::Pipeline;

/// Where the configuration comes from, so a reload reads it again.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `bext serve --config FILE`.
    File(PathBuf),
    /// `bext run DIR [--listen ADDR]`.
    Dir {
        /// The directory served.
        dir: PathBuf,
        /// `--listen`, which beats `bext.config.toml`.
        listen: Option<String>,
        /// `--tls`: HTTPS there too, with a self-signed certificate.
        listen_tls: Option<String>,
    },
}

impl ConfigSource {
    /// Reads and validates the platform.
    pub fn load(&self) -> Result<Platform, Diagnostics> {
        match self {
            ConfigSource::File(f) => Platform::load(f),
            ConfigSource::Dir {
                dir,
                listen,
                listen_tls,
            } => Platform::for_dir(dir, listen.as_deref(), listen_tls.as_deref()),
        }
    }
}

/// The running server's shared state.
pub struct Kernel {
    /// The live pipeline; each request loads it once.
    pub pipeline: ArcSwap<Pipeline>,
    /// Where the configuration comes from.
    pub source: ConfigSource,
    /// Limits fixed at start (listeners are built with them).
    pub limits: Limits,
    /// Start time, for `uptime_secs`.
    pub started: Instant,
    request_ids: AtomicU64,
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// How plugins reach this kernel to ask for a reload.
    pub(crate) cell: KernelCell,
    /// The port `listen_tls` got, once bound: where `https_redirect`
    /// sends plain-HTTP requests.
    pub tls_port: std::sync::OnceLock<u16>,
    /// The ACME service of `[platform.acme]`, set once at start: it
    /// outlives every pipeline, so renewals and orders survive reloads.
    pub acme: std::sync::OnceLock<std::sync::Arc<server::acme::Acme>>,
}

/// The kernel as plugins' reload requests reach it, with the control
/// runtime reloads run on: filled in once the kernel exists, after the
/// first pipeline (whose plugins already hold it) was built.
pub(crate) type KernelCell = std::sync::Arc<std::sync::OnceLock<(std::sync::Weak<Kernel>, tokio::runtime::Handle)>>;

impl Kernel {
    /// The certificate bext serves for a server name: the live pipeline's
    /// (files, self-signed) first, then one the ACME service issued. What
    /// the TLS handshake serves, and where `https_redirect` may send a
    /// client of an app with no domains.
    pub(crate) fn certificate_for(&self, name: Option<&str>) -> Option<std::sync::Arc<bext_tls::CertifiedKey>> {
        let key = self.pipeline.load().tls.certs.resolve(name);
        if key.is_some() {
            return key;
        }
        self.acme.get()?.resolve(name?)
    }

    /// Whether a request for `host` may be served on a connection whose
    /// handshake was for `sni`: the same name, or a name bext serves with
    /// the very certificate that connection got (HTTP/2 clients reuse a
    /// connection for every name its certificate covers, RFC 9113 §9.1.1).
    /// Otherwise the request is misdirected: its Host would pick an app
    /// whose certificate the client never checked.
    pub(crate) fn same_certificate(&self, host: &str, sni: &str) -> bool {
        host == sni
            || match (self.certificate_for(Some(host)), self.certificate_for(Some(sni))) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(&a, &b),
                _ => false,
            }
    }

    /// A kernel serving `pipeline`.
    pub(crate) fn new(pipeline: Pipeline, source: ConfigSource, cell: KernelCell) -> Self {
        // Seed ids with the start time so ids differ across restarts.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
            << 20;
        Kernel {
            limits: pipeline.platform.settings.limits,
            pipeline: ArcSwap::from_pointee(pipeline),
            source,
            started: Instant::now(),
            request_ids: AtomicU64::new(seed),
            reload_lock: tokio::sync::Mutex::new(()),
            cell,
            tls_port: std::sync::OnceLock::new(),
            acme: std::sync::OnceLock::new(),
        }
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> RequestId {
        RequestId(self.request_ids.fetch_add(1, Ordering::Relaxed))
    }
}
