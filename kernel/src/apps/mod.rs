//! The app table and the runtimes that serve apps.

pub mod js;
pub mod proxy;
pub mod static_files;

use std::sync::Arc;

use bext_plugin_abi::{Ctx, Request, Response};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::platform::{AppConfig, RuntimeKind};

/// How an app is served.
// One per app, behind an `Arc`: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Runtime {
    /// Files under a document root.
    Static(static_files::StaticSite),
    /// One upstream.
    Proxy(proxy::ProxyApp),
    /// A JavaScript module in QuickJS isolates.
    Js(js::JsApp),
}

impl Runtime {
    /// Builds the runtime an app's configuration asks for.
    pub fn build(id: &str, cfg: &AppConfig, files: &Arc<static_files::FileCache>) -> Result<Runtime, String> {
        match cfg.runtime {
            RuntimeKind::Static => {
                let root = cfg.source.as_deref().ok_or("a static app needs `source`")?;
                static_files::StaticSite::new(root, cfg.spa_fallback, files.clone())
                    .map(Runtime::Static)
                    .map_err(|e| format!("{}: {e}", root.display()))
            }
            RuntimeKind::Proxy => {
                let upstream = proxy::parse_upstream(cfg.upstream.as_deref().unwrap_or(""))?;
                Ok(Runtime::Proxy(proxy::ProxyApp::new(
                    upstream,
                    cfg.preserve_host,
                    cfg.connect_timeout,
                    cfg.response_timeout,
                )))
            }
            RuntimeKind::Js => js::JsApp::start(id, cfg).map(Runtime::Js),
            RuntimeKind::Process => Err("runtime not available in this build".into()),
        }
    }

    /// Answers one request.
    pub async fn serve(&self, req: Request, cx: &Ctx) -> Response {
        match self {
            Runtime::Static(s) => s.serve(req, cx).await,
            Runtime::Proxy(p) => p.serve(req, cx).await,
            Runtime::Js(j) => j.serve(req, cx).await,
        }
    }

    /// Whether a reload with the same configuration may keep this runtime
    /// (a JS app whose module changed on disk may not).
    pub fn is_current(&self) -> bool {
        match self {
            Runtime::Js(j) => j.is_current(),
            _ => true,
        }
    }

    /// The runtime's name, for health and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Runtime::Static(_) => "static",
            Runtime::Proxy(_) => "proxy",
            Runtime::Js(_) => "js",
        }
    }
}

/// One app of a compiled pipeline.
pub struct App {
    /// Its id.
    pub id: Arc<str>,
    /// Its runtime, shared with the next pipeline while its configuration
    /// is unchanged.
    pub runtime: Arc<Runtime>,
    /// Response headers added to every answer.
    pub headers: HeaderMap,
    /// Its domains, for health output.
    pub domains: Vec<String>,
}

impl App {
    /// Adds the app's configured response headers.
    pub fn decorate(&self, res: &mut Response) {
        for (k, v) in &self.headers {
            res.headers_mut().insert(k, v.clone());
        }
    }
}

/// Parses configured headers (already validated by the platform loader).
pub fn header_map(headers: &std::collections::BTreeMap<String, String>) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

/// Every kernel-made answer is a short text response.
pub use bext_plugin_abi::text_response as plain;
