//! The app table and the runtimes that serve apps.

mod activity;
pub mod bindings;
mod exchange;
#[cfg(test)]
pub(crate) use exchange::fields_of;
pub(crate) use exchange::{KeptFields, RawFields};
pub(crate) mod forwarded;
mod health;
pub mod js;
pub mod layered;
mod pool;
pub(crate) use pool::sweep_idle_periodically;
pub mod process;
pub mod proxy;
pub mod static_files;
pub(crate) mod upstream_tls;
mod upstreams;

use std::borrow::Cow;
use std::sync::Arc;

use bext_plugin_abi::{Ctx, EncodedHeaders, Request, Response};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::config::platform::{AppConfig, RuntimeKind};

/// Headers only the kernel may set: the mount path and the tenant, for the
/// app. Client copies are removed when a request arrives.
pub(crate) static X_BASE: HeaderName = HeaderName::from_static("x-base");
pub(crate) static X_VHOST_TENANT: HeaderName = HeaderName::from_static("x-vhost-tenant");

/// Headers only bext sets: the mount path, the tenant, and the caller
/// authn verified. Client copies never reach a plugin or an app.
pub(crate) const BEXT_HEADERS: [&str; 6] = [
    "x-base",
    "x-vhost-tenant",
    "x-auth-sub",
    "x-auth-claims",
    "x-auth-scopes",
    "x-auth-key",
];

/// Marks a request that arrived over TLS: set by the server, read by
/// `https_redirect`, `hsts` and the proxy's `X-Forwarded-Proto`. A kernel
/// type, so no plugin can claim it.
pub(crate) struct OverTls;

/// How long the app's upstream (a proxy's backend, a process, a JS
/// isolate) took to answer a request's head: in `Ctx::ext`, for the
/// access log.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTime(pub std::time::Duration);

/// Tells the app where it is mounted (`x-base`) and for which tenant
/// (`x-vhost-tenant`), from the request's context.
pub(crate) fn add_kernel_headers(headers: &mut HeaderMap, cx: &Ctx) {
    // A static base (`/` for the default app) needs no copy.
    let base = match &cx.base {
        Some(Cow::Borrowed(base)) => HeaderValue::from_maybe_shared(bytes::Bytes::from_static(base.as_bytes())).ok(),
        Some(Cow::Owned(base)) => HeaderValue::from_str(base).ok(),
        None => None,
    };
    if let Some(v) = base {
        headers.insert(&X_BASE, v);
    }
    if let Some(t) = cx.tenant().and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(&X_VHOST_TENANT, t);
    }
}

/// How an app is served.
// One per app, behind an `Arc`: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Runtime {
    /// Files under a document root.
    Static(static_files::StaticSite),
    /// One upstream or several.
    Proxy(proxy::ProxyApp),
    /// A JavaScript module in QuickJS isolates.
    Js(js::JsApp),
    /// Supervised server processes of the app's own.
    Process(process::ProcessApp),
    /// A framework runtime of the original bext (`ssr`, `hybrid`,
    /// `nextjs`): one of the above behind bext's own static folders and
    /// API upstream.
    Layered(Box<layered::Layered>),
}

impl Runtime {
    /// Builds the runtime an app's configuration asks for.
    pub fn build(
        id: &str,
        cfg: &AppConfig,
        files: &Arc<static_files::FileCache>,
        sources: bindings::Sources<'_>,
    ) -> Result<Runtime, String> {
        let inner = Runtime::build_own(id, cfg, files, sources)?;
        match &cfg.layers {
            Some(layers) => layered::Layered::new(id, cfg, layers, inner, files).map(|l| Runtime::Layered(Box::new(l))),
            None => Ok(inner),
        }
    }

    /// The runtime of bext's own an app's `runtime` names.
    fn build_own(
        id: &str,
        cfg: &AppConfig,
        files: &Arc<static_files::FileCache>,
        sources: bindings::Sources<'_>,
    ) -> Result<Runtime, String> {
        match cfg.runtime {
            RuntimeKind::Static => {
                let root = cfg.source.as_deref().ok_or("a static app needs `source`")?;
                static_files::StaticSite::new(root, cfg.spa_fallback, files.clone())
                    .map(Runtime::Static)
                    .map_err(|e| format!("{}: {e}", root.display()))
            }
            RuntimeKind::Proxy => proxy::ProxyApp::from_config(id, cfg).map(Runtime::Proxy),
            RuntimeKind::Js => js::JsApp::start(id, cfg, sources).map(Runtime::Js),
            RuntimeKind::Process => process::ProcessApp::new(id, cfg).map(Runtime::Process),
            // `config::framework` turns these into the ones above when the
            // platform is loaded.
            RuntimeKind::Hono | RuntimeKind::Express | RuntimeKind::Ssr | RuntimeKind::Hybrid | RuntimeKind::Nextjs => {
                Err(format!(
                    "runtime {:?} was not resolved when the platform was loaded",
                    cfg.runtime
                ))
            }
        }
    }

    /// Whether it serves files itself (no upstream to time).
    pub fn is_static(&self) -> bool {
        matches!(self, Runtime::Static(_))
    }

    /// Answers one request. An upstream's answer fields go into `kept`
    /// when it keeps them ([`KeptFields::new`]), else into the map.
    pub(crate) async fn serve(&self, req: Request, cx: &Ctx, kept: &mut KeptFields) -> Response {
        let mut added = EncodedHeaders::default();
        let mut res = self.answer(req, cx, &mut added, kept).await;
        added.move_into(res.headers_mut());
        res
    }

    /// [`serve`](Self::serve), with the headers a static site prepares
    /// per file added next to the response's map in `added`: for the
    /// pipeline, which moves them into the map wherever one is needed
    /// (`Ctx::encoded_headers`).
    pub(crate) async fn answer(
        &self,
        mut req: Request,
        cx: &Ctx,
        added: &mut EncodedHeaders,
        kept: &mut KeptFields,
    ) -> Response {
        // The upstream (a backend, a process, JavaScript) continues the
        // request's trace under bext's span; a static app forwards nothing.
        // The first read fixes it: a layered app serves twice, one span.
        // A proxy app writes it with its forwarding fields
        // (`forwarded::Forwarding`), not in the map.
        if !self.is_static() && !matches!(self, Runtime::Proxy(_)) {
            let trace = cx.trace_or_read(req.headers(), 0.0);
            trace.apply(req.headers_mut());
        }
        // Only a proxy app tunnels a WebSocket over HTTP/2 (extended
        // CONNECT); for the others it is a method they do not have.
        if req.extensions().get::<hyper::ext::Protocol>().is_some()
            && !matches!(self, Runtime::Proxy(_) | Runtime::Process(_) | Runtime::Layered(_))
        {
            return plain(http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        // The others' futures boxed: held inline, the largest (a proxy's
        // exchange) sized every request's future, which the HTTP/1 fast
        // path moves into its box per request (7 KiB, bench/RESULTS.md,
        // static22); a box costs those requests one allocation.
        match self {
            Runtime::Static(s) => match s.answer_now(&mut req, cx, added) {
                static_files::Now::Ready(res) => res,
                static_files::Now::FromDisk(file) => Box::pin(file.open()).await,
            },
            Runtime::Proxy(p) => Box::pin(p.serve(req, cx, kept)).await,
            Runtime::Js(j) => Box::pin(j.serve(req, cx)).await,
            Runtime::Process(p) => Box::pin(p.serve(req, cx, kept)).await,
            Runtime::Layered(l) => Box::pin(l.serve(req, cx, kept)).await,
        }
    }

    /// Whether a reload with the same configuration may keep this runtime
    /// (a JS app whose module changed on disk may not).
    pub fn is_current(&self) -> bool {
        match self {
            Runtime::Js(j) => j.is_current(),
            Runtime::Process(p) => p.is_current(),
            Runtime::Layered(l) => l.inner.is_current(),
            _ => true,
        }
    }

    /// The runtime's name, for health and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Runtime::Static(_) => "static",
            Runtime::Proxy(_) => "proxy",
            Runtime::Js(_) => "js",
            Runtime::Process(_) => "process",
            Runtime::Layered(l) => l.kind(),
        }
    }

    /// The process app this runtime is, if it is one: started, waited for
    /// and stopped by the pipeline's lifecycle.
    pub fn process(&self) -> Option<&process::ProcessApp> {
        match self {
            Runtime::Process(p) => Some(p),
            Runtime::Layered(l) => l.inner.process(),
            _ => None,
        }
    }

    /// The JS app, if it is one (its isolate pool's metrics).
    pub fn js(&self) -> Option<&js::JsApp> {
        match self {
            Runtime::Js(j) => Some(j),
            _ => None,
        }
    }

    /// The proxy app, if it is one (its backends' health).
    pub fn proxy(&self) -> Option<&proxy::ProxyApp> {
        match self {
            Runtime::Proxy(p) => Some(p),
            _ => None,
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
    /// Whether [`decorate`](Self::decorate) writes anything: headers
    /// plugins added next to the map must be in it first.
    pub fn has_headers(&self) -> bool {
        !self.headers.is_empty()
    }

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

/// The answer to a request body that failed while it was read: the status
/// of the limit that cut it (413, 408), else 400 (the client broke off or
/// sent a bad framing).
pub fn body_read_failed(e: &bext_plugin_abi::BoxError) -> Response {
    match e.downcast_ref::<bext_plugin_abi::BodyLimitError>() {
        Some(limit) => plain(limit.status(), "request body refused\n"),
        None => plain(http::StatusCode::BAD_REQUEST, "request body could not be read\n"),
    }
}
