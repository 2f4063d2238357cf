//! One request's way through a pipeline, after the server has settled
//! its head (`server::request`: host, admit's checks, body limits):
//!
//! `/__bext/` (what the host may see: `admin::access`) →
//! fetch stage → app resolution → `on_request` chain → app runtime →
//! `on_response` (reverse, onion) → app headers; then the server writes
//! the response and runs [`AfterResponse`] (`on_complete`).
//!
//! The seam is one-way: the server calls [`route`]; nothing here names the
//! server.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bext_plugin_abi::admin::refuse_unless_admin;
use bext_plugin_abi::{Completion, Ctx, Flow, Hook, Hooks, PluginError, Request, Response};
use futures_util::FutureExt;
use http::header::HeaderValue;
use http::{StatusCode, Uri};

use super::{AdminMount, AppEntry, Chain, Pipeline, Slot};
use crate::Kernel;
use crate::apps::static_files::Now;
use crate::apps::{KeptFields, OverTls, Runtime, add_kernel_headers, plain};
use crate::config::manifest::FailMode;
use crate::pipeline::admin::Access;
use crate::trace::{HookSpan, HookSpans};

/// Prefix of bext's own endpoints on every host.
pub const INTERNAL_PREFIX: &str = "/__bext";

/// Runs a hook, turning a panic into an error. A hook that is ready at
/// once (most are) is answered here, with no future around it; one that
/// waits is awaited by [`wait`].
macro_rules! guard {
    ($call:expr) => {{
        let result = match start(|| $call) {
            Err(panic) => Err(panic),
            Ok(Hook::Ready(r)) => r,
            Ok(Hook::Later(fut)) => wait(fut).await,
        };
        result
    }};
}

/// Calls a hook, turning a panic into an error.
fn start<'a, T>(call: impl FnOnce() -> Hook<'a, T>) -> Result<Hook<'a, T>, PluginError> {
    std::panic::catch_unwind(AssertUnwindSafe(call)).map_err(panicked)
}

/// What a request hook said, as [`ask`] hands it back: the usual
/// `Continue` as a word and anything else boxed or as its future, so the
/// common case moves no `Flow` (a whole response wide) through
/// `catch_unwind` and the chain's loop, as [`guard!`] does for any hook.
enum Said<'a> {
    /// `Ok(Flow::Continue)` at once.
    Continue,
    /// Any other answer at once, or the hook's panic as an error.
    Other(Box<Result<Flow, PluginError>>),
    /// The hook waits.
    Later(Pin<Box<dyn Future<Output = Result<Flow, PluginError>> + Send + 'a>>),
}

/// Calls a request hook, turning a panic into an error.
fn ask<'a>(call: impl FnOnce() -> Hook<'a, Result<Flow, PluginError>>) -> Said<'a> {
    let said = std::panic::catch_unwind(AssertUnwindSafe(|| match call() {
        Hook::Ready(Ok(Flow::Continue)) => Said::Continue,
        Hook::Ready(other) => Said::Other(Box::new(other)),
        Hook::Later(fut) => Said::Later(fut),
    }));
    said.unwrap_or_else(|p| Said::Other(Box::new(Err(panicked(p)))))
}

/// Awaits a hook that waits, turning a panic into an error.
async fn wait<T>(fut: impl Future<Output = Result<T, PluginError>>) -> Result<T, PluginError> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(panicked(p)))
}

/// A hook's panic as an error, with its message.
fn panicked(p: Box<dyn std::any::Any + Send>) -> PluginError {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    PluginError::Panic(msg)
}

/// What routing a request produced: the response, and what must run once
/// it has been written.
pub struct Routed {
    /// The answer, from a plugin, the app or the kernel.
    pub response: Response,
    /// The `on_complete` hooks owed for it.
    pub after: AfterResponse,
    /// The counters its end updates.
    pub record: crate::metrics::Record,
}

/// The `on_complete` hooks of the chain that handled a request, which the
/// server runs after the last byte is handed over (or the client goes
/// away), so they never delay the client. Empty for chains without one.
#[derive(Default)]
pub struct AfterResponse(Option<Arc<Chain>>);

impl AfterResponse {
    /// What `chain` owes after its response (nothing if no plugin of it
    /// has `on_complete`: no reference kept).
    pub(crate) fn of(chain: &Arc<Chain>) -> Self {
        AfterResponse(chain.completes.then(|| chain.clone()))
    }

    /// Whether anything runs afterwards.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Runs the hooks in chain order; a panic is logged and the next hook
    /// still runs.
    pub fn run(&self, cx: &Ctx, done: &Completion) {
        let Some(chain) = &self.0 else { return };
        for slot in chain.slots.iter().filter(|s| s.hooks.has(Hooks::COMPLETE)) {
            let run = AssertUnwindSafe(|| slot.plugin.on_complete(cx, done));
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!(plugin = %slot.name, request_id = %cx.request_id, "on_complete panicked");
            }
        }
    }
}

/// Routes a request whose head the server has admitted: the kernel's and
/// plugins' `/__bext/` endpoints, the fetch stage, the app and its chain.
/// `on_admin_listener` is a request on `admin_listen`. An upstream's answer
/// fields stay in `kept` when it keeps them and nothing here reads the
/// response's map (then the server's writer copies them).
pub(crate) async fn route(
    kernel: &Kernel,
    pipeline: &Arc<Pipeline>,
    on_admin_listener: bool,
    req: &mut Request,
    cx: &mut Ctx,
    kept: &mut KeptFields,
) -> Routed {
    let mut beside = Beside {
        after: AfterResponse::default(),
        served: None,
        kept,
    };
    let response = dispatch(kernel, pipeline, on_admin_listener, req, cx, &mut beside).await;
    let record = pipeline.record(beside.served, cx.tenant());
    Routed {
        response,
        after: beside.after,
        record,
    }
}

/// What [`dispatch`] settles beside the response.
struct Beside<'k> {
    /// The `on_complete` hooks owed.
    after: AfterResponse,
    /// The app's counters, when an app served.
    served: Option<Arc<crate::metrics::AppCounters>>,
    /// Where an upstream's answer fields go.
    kept: &'k mut KeptFields,
}

async fn dispatch(
    kernel: &Kernel,
    pipeline: &Arc<Pipeline>,
    on_admin_listener: bool,
    req: &mut Request,
    cx: &mut Ctx,
    beside: &mut Beside<'_>,
) -> Response {
    let Beside { after, served, kept } = beside;
    if on_admin_listener {
        return Box::pin(admin_listener(kernel, pipeline, req, cx)).await;
    }
    let path = req.uri().path();
    if path == "*" {
        // `OPTIONS *` (the only method `server::admit` lets through with
        // it) asks about the server, not an app.
        let mut res = plain(StatusCode::NO_CONTENT, "");
        res.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
        );
        return res;
    }
    let over_tls = cx.ext.get::<OverTls>().is_some();
    // The target as the client sent it (before a path route strips its
    // prefix), kept only when some app redirects plain HTTP to https.
    let asked = if !over_tls && pipeline.tls.redirects() {
        req.uri().path_and_query().cloned()
    } else {
        None
    };
    // Decided on the host the kernel normalised, before a plugin runs.
    let access =
        internal_rest(path).map(|_| crate::pipeline::admin::access(&pipeline.platform.settings, cx.host.as_deref()));

    for slot in pipeline.fetch.iter() {
        if slot.plugin.adds_request_headers() {
            cx.note_headers_as_admitted(false);
        }
        match guard!(slot.plugin.fetch(req, cx)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Respond(res)) => return res,
            Err(e) => {
                if let Some(res) = fail(slot, e, cx) {
                    return res;
                }
            }
        }
    }
    if let Some(access) = access {
        // After the fetch stage, so the admin routes (and their throttle
        // of wrong tokens) see the client the WAF resolved behind trusted
        // proxies. On a tenant's host they do not exist: the 404 of an
        // unknown path.
        // The kernel's own endpoints first: an app's logs live under the
        // deploy plugin's base.
        let rest = internal_rest(req.uri().path()).unwrap_or("").to_owned();
        // Boxed, as below: bext's own endpoints are rare, and their
        // futures held inline would size every request's.
        if let Some(res) = Box::pin(super::ui::respond(pipeline, &rest, req, cx, access)).await {
            return res;
        }
        if let Some(res) = crate::pipeline::admin::respond(kernel, pipeline, &rest, req, cx, access) {
            return res;
        }
        if access == Access::Host
            && let Some(mount) = admin_mount(pipeline, req.uri().path())
        {
            return Box::pin(serve_admin(mount, req, cx)).await;
        }
        return not_found();
    }

    let entry = match resolve_app(pipeline, req, cx) {
        Resolved::App(entry) => entry,
        Resolved::NoApp => {
            *after = AfterResponse::of(&pipeline.global);
            return run_chain(&pipeline.global, req, cx, None, kept).await;
        }
        Resolved::Answer(res) => return res,
    };
    *served = entry.counters.get(&pipeline.metrics, &entry.app.id);
    let https = pipeline.tls.https(&entry.app.id);
    // A tenant's own domain of the app (or of the app a canary copies):
    // redirected to itself, and pinned without its subdomains.
    let own_domain = https.is_some() && on_own_domain(pipeline, &entry.app.id, cx.host.as_deref());
    // A tenant's own domain bext can have no certificate for (no ACME and
    // none from a file) stays on plain HTTP rather than be sent into a
    // handshake alert.
    let reachable_over_https =
        !own_domain || kernel.acme.get().is_some() || kernel.certificate_for(cx.host.as_deref()).is_some();
    if let Some(asked) = &asked
        && https.is_some_and(|h| h.redirect)
        && reachable_over_https
    {
        return to_https(kernel, entry, asked, cx, own_domain);
    }
    // The app's mount and tenant, for the app and the plugins before it:
    // a static site reads neither, so without a plugin that may read them
    // they are not written (a map insert a request).
    if !entry.app.runtime.is_static() || (entry.chain.reads_kernel_headers && !cx.bypass) {
        add_kernel_headers(req.headers_mut(), cx);
    }
    let hsts = https.and_then(|h| {
        if own_domain {
            h.hsts_own_domain.clone()
        } else {
            h.hsts.clone()
        }
    });
    let hsts = hsts.filter(|_| over_tls);
    let decorated = entry.app.has_headers() || hsts.is_some();
    if decorated {
        kept.need_map();
    }
    let mut res = if cx.bypass {
        serve_app(entry, req, cx, kept).await
    } else {
        *after = AfterResponse::of(&entry.chain);
        run_chain(&entry.chain, req, cx, Some(entry), kept).await
    };
    // The app's configured headers and HSTS replace the upstream's and
    // the plugins' of the same name: those must be in the map first.
    if decorated {
        kept.move_into(res.headers_mut());
        cx.encoded_headers.move_into(res.headers_mut());
    }
    entry.app.decorate(&mut res);
    if let Some(hsts) = hsts {
        res.headers_mut().insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    res
}

/// `https_redirect`: a 308 (the method and body kept) to the same path and
/// query on https. The host is the request's own only when the app serves
/// it (else the app's first exact domain): a request that reached the app
/// as the default app, or by path, cannot send the client elsewhere. An
/// app with no domains (a default app) sends a client only to a host bext
/// holds a certificate for, never to whatever Host the client named. A
/// tenant's own domain (`own_domain`) is sent to itself: the app serves
/// it, and its certificate is ordered on demand.
fn to_https(
    kernel: &Kernel,
    entry: &AppEntry,
    asked: &http::uri::PathAndQuery,
    cx: &Ctx,
    own_domain: bool,
) -> Response {
    let host = cx
        .host
        .as_deref()
        .filter(|h| {
            if own_domain {
                true
            } else if entry.app.domains.is_empty() {
                kernel.certificate_for(Some(h)).is_some()
            } else {
                serves(&entry.app.domains, h)
            }
        })
        .map(str::to_owned)
        .or_else(|| {
            entry
                .app
                .domains
                .iter()
                .find(|d| !d.starts_with('~') && !d.starts_with("*."))
                .and_then(|d| bext_plugin_abi::normalise_host_pattern(d).ok())
        });
    let Some(host) = host else {
        return plain(
            StatusCode::BAD_REQUEST,
            "this app is served over https only; send a Host it serves\n",
        );
    };
    let port = match kernel.tls_port.get() {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let mut res = plain(StatusCode::PERMANENT_REDIRECT, "");
    match HeaderValue::from_str(&format!("https://{host}{port}{asked}")) {
        Ok(v) => {
            res.headers_mut().insert(http::header::LOCATION, v);
            res
        }
        Err(_) => plain(StatusCode::BAD_REQUEST, "bad request target\n"),
    }
}

/// Whether `host` (normalised) is one of the tenants' own domains of app
/// `id`, or of the app a canary (`app@version`) copies.
fn on_own_domain(pipeline: &Pipeline, id: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let app = id.split_once('@').map_or(id, |(app, _)| app);
    pipeline
        .platform
        .apps
        .get(app)
        .is_some_and(|a| a.tenant_domains.contains_key(host))
}

/// Whether `host` (normalised) is one of `domains` or under one of their
/// wildcards, as vhosts matches them.
fn serves(domains: &[String], host: &str) -> bool {
    domains.iter().any(|d| bext_plugin_abi::pattern_reaches(d, host))
}

/// Runs `on_request`, the app (or a 404 without one), then `on_response`
/// over the plugins that saw the request, in reverse: those with
/// [`Hooks::RESPONSE`], and those with [`Hooks::RESPONSE_WHEN_ASKED`]
/// whose `on_request` asked for this response ([`Ctx::want_response`]).
async fn run_chain(
    chain: &Chain,
    req: &mut Request,
    cx: &mut Ctx,
    app: Option<&AppEntry>,
    kept: &mut KeptFields,
) -> Response {
    let slots = &chain.slots;
    let mut answered = None;
    // The slots whose `on_request` asked for the response, as bits (the
    // 64th and later share the last: one asking calls them all).
    let mut asked = 0u64;
    // A sampled request with `[platform.otel]`: each hook becomes a span.
    let traced = cx.ext.get::<HookSpans>().is_some();
    for (i, slot) in slots.iter().enumerate() {
        if !slot.hooks.has(Hooks::REQUEST) {
            continue;
        }
        // What an earlier hook set for the request is in its map now.
        cx.insert_request_headers(req.headers_mut());
        if i > chain.first_adder {
            cx.note_headers_as_admitted(false);
        }
        let began = traced.then(SystemTime::now);
        let outcome = match ask(|| slot.plugin.on_request(req, cx)) {
            Said::Continue => None,
            Said::Other(outcome) => Some(*outcome),
            Said::Later(fut) => Some(wait(fut).await),
        };
        if let Some(began) = began {
            hook_span(cx, slot, "on_request", began, matches!(outcome, Some(Err(_))));
        }
        // Read (and reset) after every hook, so one plugin's ask is never
        // taken for the next one's.
        if cx.take_response_wanted() && slot.hooks.has(Hooks::RESPONSE_WHEN_ASKED) {
            asked |= bit(i);
        }
        match outcome {
            None | Some(Ok(Flow::Continue)) => {}
            Some(Ok(Flow::Respond(res))) => {
                answered = Some((i, res));
                break;
            }
            Some(Err(e)) => {
                if let Some(res) = fail(slot, e, cx) {
                    answered = Some((i, res));
                    break;
                }
            }
        }
    }
    let responds = |i: usize, slot: &Slot| {
        slot.hooks.has(Hooks::RESPONSE) || (slot.hooks.has(Hooks::RESPONSE_WHEN_ASKED) && asked & bit(i) != 0)
    };
    let (seen, mut res) = match answered {
        Some((i, res)) => (i + 1, res),
        None => {
            let res = match app {
                Some(entry) => {
                    // A hook will read the answer's map: the upstream's
                    // fields go into it at once.
                    if chain.responds || asked != 0 {
                        kept.need_map();
                    }
                    serve_app(entry, req, cx, kept).await
                }
                None => not_found(),
            };
            (slots.len(), res)
        }
    };
    // An upstream's fields kept as they came go into the map before the
    // first hook that runs, which sees and may change them as if they
    // had been inserted there.
    if slots[..seen].iter().enumerate().any(|(i, slot)| responds(i, slot)) {
        kept.move_into(res.headers_mut());
    }
    for (i, slot) in slots[..seen].iter().enumerate().rev() {
        if !responds(i, slot) {
            continue;
        }
        // Headers an earlier hook added next to the map go into it now:
        // this hook sees and may change them as if they had been inserted
        // there (unless it takes the added ones where they are).
        if !slot.plugin.reads_encoded_headers() {
            cx.encoded_headers.move_into(res.headers_mut());
        }
        let began = traced.then(SystemTime::now);
        let outcome = guard!(slot.plugin.on_response(&mut res, cx));
        if let Some(began) = began {
            hook_span(cx, slot, "on_response", began, outcome.is_err());
        }
        if let Err(e) = outcome
            && let Some(err_res) = fail(slot, e, cx)
        {
            // What the failed hook added was for the response replaced.
            cx.encoded_headers.clear();
            res = err_res;
        }
    }
    res
}

/// A slot's bit in a chain's set of slots that asked for the response.
fn bit(i: usize) -> u64 {
    1 << i.min(63)
}

/// Notes a hook's run for the request's trace.
fn hook_span(cx: &mut Ctx, slot: &Slot, hook: &'static str, start: SystemTime, failed: bool) {
    if let Some(spans) = cx.ext.get_mut::<HookSpans>() {
        spans.0.push(HookSpan {
            plugin: slot.name.clone(),
            hook,
            start,
            end: SystemTime::now(),
            failed,
        });
    }
}

/// The app answers; for an app with an upstream (proxy, process, JS),
/// the time it took to answer is kept for the access log.
async fn serve_app(entry: &AppEntry, req: &mut Request, cx: &mut Ctx, kept: &mut KeptFields) -> Response {
    // A static site is answered here, without the runtime's future: a
    // file held in memory is ready at once, and the request is lent, not
    // moved (a WebSocket over HTTP/2 goes to the runtime, which refuses
    // it as for every app without an upstream).
    if let Runtime::Static(site) = &*entry.app.runtime
        && req.extensions().get::<hyper::ext::Protocol>().is_none()
    {
        // The request headers plugins set for apps (authn's identity) are
        // read by no static site: they stay out of its map unless one is
        // a header it reads.
        if cx
            .pending_request_headers()
            .any(|n| crate::apps::static_files::READS.contains(n))
        {
            cx.insert_request_headers(req.headers_mut());
        }
        // The file's headers go next to the map, with the plugins'.
        let mut added = std::mem::take(&mut cx.encoded_headers);
        let now = site.answer_now(req, cx, &mut added);
        cx.encoded_headers = added;
        return match now {
            Now::Ready(res) => res,
            Now::FromDisk(file) => Box::pin(file.open()).await,
        };
    }
    if entry.app.runtime.is_static() {
        // Only a WebSocket over HTTP/2 is left here: the runtime's 405.
        let mut added = std::mem::take(&mut cx.encoded_headers);
        let res = Box::pin(entry.app.runtime.answer(std::mem::take(req), cx, &mut added, kept)).await;
        cx.encoded_headers = added;
        return res;
    }
    cx.insert_request_headers(req.headers_mut());
    let began = std::time::Instant::now();
    let res = entry.app.runtime.serve(std::mem::take(req), cx, kept).await;
    cx.ext.insert(crate::apps::UpstreamTime(began.elapsed()));
    res
}

/// A request on `admin_listen`: the kernel's endpoints with or without
/// the `/__bext` prefix, and plugins' admin routes at the paths they have
/// on the public listener (so a script or the CLI may target either). No
/// fetch stage and no apps.
async fn admin_listener(kernel: &Kernel, pipeline: &Arc<Pipeline>, req: &mut Request, cx: &mut Ctx) -> Response {
    let path = req.uri().path();
    let rest = internal_rest(path).unwrap_or(path).to_owned();
    if let Some(res) = super::ui::respond(pipeline, &rest, req, cx, Access::Listener).await {
        return res;
    }
    if let Some(res) = crate::pipeline::admin::respond(kernel, pipeline, &rest, req, cx, Access::Listener) {
        return res;
    }
    match admin_mount(pipeline, req.uri().path()) {
        Some(mount) => serve_admin(mount, req, cx).await,
        None => not_found(),
    }
}

/// The plugin admin route serving `path`, if any (mounts are longest base
/// first).
pub(crate) fn admin_mount<'p>(pipeline: &'p Pipeline, path: &str) -> Option<&'p AdminMount> {
    pipeline.admin.iter().find(|m| m.routes.rest(path).is_some())
}

/// A plugin's admin route: the one token check, then the plugin. Its
/// errors are answered whatever its fail mode (an admin request has no app
/// to go on to).
pub(crate) async fn serve_admin(mount: &AdminMount, req: &mut Request, cx: &mut Ctx) -> Response {
    if let Some(refused) = refuse_unless_admin(req, cx, mount.token.as_deref()) {
        return refused;
    }
    let cx = &*cx;
    match guard!(mount.slot.plugin.admin(req, cx)) {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(plugin = %mount.slot.name, request_id = %cx.request_id, error = %e, "admin route failed");
            e.answer(cx.request_id)
        }
    }
}

/// The path under `/__bext`, when the request is for bext's own endpoints.
fn internal_rest(path: &str) -> Option<&str> {
    path.strip_prefix(INTERNAL_PREFIX)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Where app resolution sends a request.
enum Resolved<'p> {
    /// To this app.
    App(&'p AppEntry),
    /// Nowhere: the global chain and a 404.
    NoApp,
    /// Answered by the kernel (a redirect, a 502 for a missing app).
    Answer(Response),
}

/// Finds the app: set by a fetch plugin (vhosts), else the first path
/// segment (`/{app}/...`, stripped), else `default_app`.
fn resolve_app<'p>(pipeline: &'p Pipeline, req: &mut Request, cx: &mut Ctx) -> Resolved<'p> {
    if let Some(app) = cx.app() {
        return match pipeline.apps.get(app) {
            Some(e) => Resolved::App(e),
            None => Resolved::Answer(plain(
                StatusCode::BAD_GATEWAY,
                format!("Virtual host app not found: {app}\n"),
            )),
        };
    }
    let first = req.uri().path().get(1..).unwrap_or("").split('/').next().unwrap_or("");
    // Only declared apps are reachable by path: the hidden ones a deploy
    // adds (a canary `app@v3`, a preview `app~pr-1`) are reached through
    // their own hosts or the deploy plugin's choice, never `/{id}/`.
    let routed = (!first.is_empty() && crate::config::platform::valid_app_id(first))
        .then(|| pipeline.apps.get_key_value(first))
        .flatten();
    if let Some((id, entry)) = routed {
        let rest = &req.uri().path()[1 + id.len()..];
        if rest.is_empty() {
            // `/{app}` → `/{app}/`, so the app's relative links resolve.
            let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            let mut res = plain(StatusCode::PERMANENT_REDIRECT, "");
            if let Ok(v) = HeaderValue::from_str(&format!("/{id}/{query}")) {
                res.headers_mut().insert(http::header::LOCATION, v);
            }
            return Resolved::Answer(res);
        }
        let stripped = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = stripped.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        cx.base = Some(format!("/{id}/").into());
        let _ = cx.set_app(id.clone());
        return Resolved::App(entry);
    }
    if let Some(default) = &pipeline.platform.settings.default_app
        && let Some((id, entry)) = pipeline.apps.get_key_value(default.as_str())
    {
        cx.base = Some("/".into());
        let _ = cx.set_app(id.clone());
        return Resolved::App(entry);
    }
    Resolved::NoApp
}

/// Applies a plugin's fail mode: `Some(response)` when it fails closed.
fn fail(slot: &Slot, e: PluginError, cx: &Ctx) -> Option<Response> {
    tracing::error!(plugin = %slot.name, request_id = %cx.request_id, error = %e, "plugin hook failed");
    match slot.on_error {
        FailMode::Open => None,
        FailMode::Closed => Some(e.answer(cx.request_id)),
    }
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bext_plugin_abi::{Body, Plugin, RequestId};

    use super::*;

    /// [`run_chain`] without an app, its kept fields going into the map.
    async fn run_alone(chain: &Chain, req: &mut Request, cx: &mut Ctx) -> Response {
        run_chain(chain, req, cx, None, &mut KeptFields::map_only()).await
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Act {
        Pass,
        Respond,
        Fail,
        Panic,
        Later,
    }

    struct Recorder {
        name: &'static str,
        act: Act,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Plugin for Recorder {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST | Hooks::RESPONSE
        }
        fn on_request<'a>(&'a self, _req: &'a mut Request, _cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            self.log.lock().unwrap().push(format!("req {}", self.name));
            match self.act {
                Act::Pass => Hook::Ready(Ok(Flow::Continue)),
                Act::Respond => Hook::Ready(Ok(Flow::deny(StatusCode::TOO_MANY_REQUESTS, "slow down"))),
                Act::Fail => Hook::Ready(Err(PluginError::hook(StatusCode::FORBIDDEN, "nope"))),
                Act::Panic => panic!("plugin bug"),
                Act::Later => Hook::later(async {
                    tokio::task::yield_now().await;
                    Ok(Flow::Continue)
                }),
            }
        }
        fn on_response<'a>(&'a self, res: &'a mut Response, _cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
            self.log.lock().unwrap().push(format!("res {}", self.name));
            res.headers_mut().append("x-seen", HeaderValue::from_static(self.name));
            Hook::Ready(Ok(()))
        }
    }

    fn chain(plugins: &[(&'static str, Act, FailMode)], log: &Arc<Mutex<Vec<String>>>) -> Chain {
        let slots = plugins
            .iter()
            .enumerate()
            .map(|(i, (name, act, on_error))| {
                let plugin: Arc<dyn Plugin> = Arc::new(Recorder {
                    name,
                    act: *act,
                    log: log.clone(),
                });
                Slot {
                    name: (*name).into(),
                    hooks: plugin.hooks(),
                    plugin,
                    priority: i as i32,
                    on_error: *on_error,
                }
            })
            .collect();
        Chain::new(slots)
    }

    async fn run(plugins: &[(&'static str, Act, FailMode)]) -> (Response, Vec<String>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let chain = chain(plugins, &log);
        let mut req = Request::new(Body::empty());
        let mut cx = Ctx::new(RequestId(0xabc), "127.0.0.1:1".parse().unwrap());
        let res = run_alone(&chain, &mut req, &mut cx).await;
        let log = log.lock().unwrap().clone();
        (res, log)
    }

    const C: FailMode = FailMode::Closed;

    #[tokio::test]
    async fn requests_ascend_and_responses_descend() {
        let (res, log) = run(&[("a", Act::Pass, C), ("b", Act::Later, C), ("c", Act::Pass, C)]).await;
        assert_eq!(log, ["req a", "req b", "req c", "res c", "res b", "res a"]);
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "no app: the kernel's 404");
    }

    #[tokio::test]
    async fn a_short_circuit_is_seen_only_by_the_plugins_before_it() {
        let (res, log) = run(&[
            ("cors", Act::Pass, C),
            ("limit", Act::Respond, C),
            ("cache", Act::Pass, C),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(log, ["req cors", "req limit", "res limit", "res cors"]);
        let seen: Vec<_> = res.headers().get_all("x-seen").iter().collect();
        assert_eq!(seen, ["limit", "cors"]);
    }

    #[tokio::test]
    async fn failures_follow_the_fail_mode() {
        let (res, log) = run(&[("a", Act::Pass, C), ("b", Act::Fail, C), ("c", Act::Pass, C)]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(log, ["req a", "req b", "res b", "res a"]);
        assert!(
            res.body()
                .as_bytes()
                .is_some_and(|b| String::from_utf8_lossy(b).contains("0000000000000abc"))
        );

        let (res, log) = run(&[("a", Act::Fail, FailMode::Open), ("b", Act::Pass, C)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(log, ["req a", "req b", "res b", "res a"]);
    }

    /// Adds `x-added: <name>` next to the map and notes what the map
    /// held of it; fails after adding if `fail`.
    struct Adds {
        name: &'static str,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    /// Logs `<plugin> saw <values>`: the values of `field` a hook found.
    fn note_seen(log: &Mutex<Vec<String>>, plugin: &str, headers: &http::HeaderMap, field: &str) {
        let held: Vec<_> = headers.get_all(field).iter().map(|v| v.to_str().unwrap()).collect();
        log.lock().unwrap().push(format!("{plugin} saw {}", held.join(",")));
    }

    impl Plugin for Adds {
        fn hooks(&self) -> Hooks {
            Hooks::RESPONSE
        }
        fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
            note_seen(&self.log, self.name, res.headers(), "x-added");
            let block = bext_plugin_abi::HeaderBlock::new(&[(
                http::HeaderName::from_static("x-added"),
                HeaderValue::from_static(self.name),
            )])
            .unwrap();
            cx.encoded_headers.push_block(&block).unwrap();
            Hook::Ready(if self.fail {
                Err(PluginError::hook(StatusCode::FORBIDDEN, "nope"))
            } else {
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn headers_added_next_to_the_map_are_in_it_for_every_later_hook() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slot = |i: i32, name: &'static str, fail: bool| {
            let plugin: Arc<dyn Plugin> = Arc::new(Adds {
                name,
                fail,
                log: log.clone(),
            });
            Slot {
                name: name.into(),
                hooks: plugin.hooks(),
                plugin,
                priority: i,
                on_error: C,
            }
        };
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        let chain = Chain::new([slot(0, "a", false), slot(1, "b", false), slot(2, "c", false)].into());
        let res = run_alone(&chain, &mut Request::new(Body::empty()), &mut cx).await;
        assert_eq!(*log.lock().unwrap(), ["c saw ", "b saw c", "a saw c,b"]);
        let in_map: Vec<_> = res.headers().get_all("x-added").iter().collect();
        assert_eq!(in_map, ["c", "b"], "the last hook's stay next to the map");
        let last: Vec<_> = cx.encoded_headers.blocks().map(|b| b.lines().to_vec()).collect();
        assert_eq!(last, [b"x-added: a\r\n".to_vec()]);

        // A hook that fails after adding: its headers go with the
        // response its failure replaces.
        let mut cx = Ctx::new(RequestId(2), "127.0.0.1:1".parse().unwrap());
        let chain = Chain::new([slot(0, "a", true)].into());
        let res = run_alone(&chain, &mut Request::new(Body::empty()), &mut cx).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(cx.encoded_headers.is_empty());
        assert!(res.headers().get("x-added").is_none());
    }

    /// [`Adds`], taking the headers added next to the map where they are.
    struct AddsWhereTheyAre(Adds);

    impl Plugin for AddsWhereTheyAre {
        fn hooks(&self) -> Hooks {
            Hooks::RESPONSE
        }
        fn reads_encoded_headers(&self) -> bool {
            true
        }
        fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
            let next_to: Vec<_> = cx.encoded_headers.names().map(|n| n.as_str().to_owned()).collect();
            self.0
                .log
                .lock()
                .unwrap()
                .push(format!("{} next to the map: {}", self.0.name, next_to.join(",")));
            self.0.on_response(res, cx)
        }
    }

    #[tokio::test]
    async fn a_hook_that_reads_added_headers_where_they_are_gets_them_there() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let adds = |name| Adds {
            name,
            fail: false,
            log: log.clone(),
        };
        let plugins: [Arc<dyn Plugin>; 3] = [
            Arc::new(adds("a")),
            Arc::new(AddsWhereTheyAre(adds("b"))),
            Arc::new(adds("c")),
        ];
        let slots = (plugins.into_iter().enumerate())
            .map(|(i, plugin)| Slot {
                name: format!("{i}").into(),
                hooks: plugin.hooks(),
                plugin,
                priority: i as i32,
                on_error: C,
            })
            .collect();
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        let res = run_alone(&Chain::new(slots), &mut Request::new(Body::empty()), &mut cx).await;
        assert_eq!(
            *log.lock().unwrap(),
            ["c saw ", "b next to the map: x-added", "b saw ", "a saw c,b"]
        );
        let in_map: Vec<_> = res.headers().get_all("x-added").iter().collect();
        assert_eq!(in_map, ["c", "b"]);
    }

    /// Sets `x-set: <name>` next to the request's map and notes what the
    /// map held of it.
    struct Sets {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Plugin for Sets {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST
        }
        fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            note_seen(&self.log, self.name, req.headers(), "x-set");
            let set: bext_plugin_abi::HeaderSet = Arc::from([(
                http::HeaderName::from_static("x-set"),
                HeaderValue::from_static(self.name),
            )]);
            cx.set_request_headers(req.headers_mut(), set);
            Hook::Ready(Ok(Flow::Continue))
        }
    }

    #[tokio::test]
    async fn request_headers_set_next_to_the_map_are_in_it_for_every_later_hook() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slots = ["a", "b", "c"]
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let plugin: Arc<dyn Plugin> = Arc::new(Sets { name, log: log.clone() });
                Slot {
                    name: name.into(),
                    hooks: plugin.hooks(),
                    plugin,
                    priority: i as i32,
                    on_error: C,
                }
            })
            .collect();
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        let mut req = Request::new(Body::empty());
        req.headers_mut().insert("x-set", HeaderValue::from_static("client"));
        run_alone(&Chain::new(slots), &mut req, &mut cx).await;
        assert_eq!(*log.lock().unwrap(), ["a saw client", "b saw a", "c saw b"]);
        let pending: Vec<_> = cx.pending_request_headers().map(|n| n.as_str()).collect();
        assert_eq!(pending, ["x-set"], "the last hook's wait for a reader");
    }

    /// Logs its hooks; calls `want_response` from `on_request` when
    /// `asks` and the request has `x-ask`.
    struct Asks {
        name: &'static str,
        response: Hooks,
        asks: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Plugin for Asks {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST | self.response
        }
        fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            self.log.lock().unwrap().push(format!("req {}", self.name));
            if self.asks && req.headers().contains_key("x-ask") {
                cx.want_response();
            }
            Hook::Ready(Ok(Flow::Continue))
        }
        fn on_response<'a>(&'a self, _res: &'a mut Response, _cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
            self.log.lock().unwrap().push(format!("res {}", self.name));
            Hook::Ready(Ok(()))
        }
    }

    /// Notes whether its hook found the map as admitted; says it adds no
    /// request header unless `adds`.
    struct Reads {
        name: &'static str,
        adds: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Plugin for Reads {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST
        }
        fn adds_request_headers(&self) -> bool {
            self.adds
        }
        fn on_request<'a>(&'a self, _req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            let seen = if cx.headers_as_admitted() {
                "as admitted"
            } else {
                "touched"
            };
            self.log.lock().unwrap().push(format!("{} {seen}", self.name));
            Hook::Ready(Ok(Flow::Continue))
        }
    }

    /// [`Sets`], declaring it adds no request header to the map.
    struct SetsSayingNoAdds(Sets);

    impl Plugin for SetsSayingNoAdds {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST
        }
        fn adds_request_headers(&self) -> bool {
            false
        }
        fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            self.0.on_request(req, cx)
        }
    }

    #[tokio::test]
    async fn a_hook_that_runs_when_asked_sees_only_the_responses_it_asked_for() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slot = |i: i32, name: &'static str, response: Hooks, asks: bool| {
            let plugin: Arc<dyn Plugin> = Arc::new(Asks {
                name,
                response,
                asks,
                log: log.clone(),
            });
            Slot {
                name: name.into(),
                hooks: plugin.hooks(),
                plugin,
                priority: i,
                on_error: C,
            }
        };
        let chain = Chain::new(
            [
                slot(0, "asked", Hooks::RESPONSE_WHEN_ASKED, true),
                // Asks, but has no `on_response`: its ask is no one else's.
                slot(1, "no-hook", Hooks::NONE, true),
                slot(2, "unasked", Hooks::RESPONSE_WHEN_ASKED, false),
                slot(3, "always", Hooks::RESPONSE, false),
            ]
            .into(),
        );
        assert!(chain.responds, "a hook for every response");
        for (ask, want) in [
            (false, ["res always"].as_slice()),
            (true, ["res always", "res asked"].as_slice()),
        ] {
            log.lock().unwrap().clear();
            let mut req = Request::new(Body::empty());
            if ask {
                req.headers_mut().insert("x-ask", HeaderValue::from_static("1"));
            }
            let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
            run_alone(&chain, &mut req, &mut cx).await;
            let log = log.lock().unwrap();
            assert_eq!(log[..4], ["req asked", "req no-hook", "req unasked", "req always"]);
            assert_eq!(log[4..], *want, "asked: {ask}");
        }
        let only_asked = Chain::new([slot(0, "asked", Hooks::RESPONSE_WHEN_ASKED, true)].into());
        assert!(!only_asked.responds, "known per request");
    }

    #[tokio::test]
    async fn headers_stay_as_admitted_only_until_a_plugin_that_may_add_one() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slot = |i: i32, plugin: Arc<dyn Plugin>| Slot {
            name: format!("{i}").into(),
            hooks: plugin.hooks(),
            plugin,
            priority: i,
            on_error: C,
        };
        let reads = |name, adds| -> Arc<dyn Plugin> {
            Arc::new(Reads {
                name,
                adds,
                log: log.clone(),
            })
        };
        let sets: Arc<dyn Plugin> = Arc::new(SetsSayingNoAdds(Sets {
            name: "sets",
            log: Arc::new(Mutex::new(Vec::new())),
        }));
        let runs = [
            vec![reads("a", false), reads("b", true), reads("c", false)],
            vec![reads("a", false), reads("b", false)],
            // Setting next to the map counts, whatever the plugin says.
            vec![reads("a", false), sets, reads("c", false)],
        ];
        for plugins in runs {
            let slots = plugins
                .into_iter()
                .enumerate()
                .map(|(i, p)| slot(i as i32, p))
                .collect();
            let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
            cx.note_headers_as_admitted(true);
            run_alone(&Chain::new(slots), &mut Request::new(Body::empty()), &mut cx).await;
        }
        // A context no admission vouched for.
        let chain = Chain::new([slot(0, reads("z", false))].into());
        let mut cx = Ctx::new(RequestId(2), "127.0.0.1:1".parse().unwrap());
        run_alone(&chain, &mut Request::new(Body::empty()), &mut cx).await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "a as admitted",
                "b as admitted",
                "c touched",
                "a as admitted",
                "b as admitted",
                "a as admitted",
                "c touched",
                "z touched",
            ]
        );
    }

    #[tokio::test]
    async fn a_panicking_hook_is_a_500_not_a_crash() {
        let (res, _) = run(&[("a", Act::Pass, C), ("bug", Act::Panic, C)]).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let (res, log) = run(&[("bug", Act::Panic, FailMode::Open), ("b", Act::Pass, C)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(log.last().map(String::as_str), Some("res bug"));
    }
}
