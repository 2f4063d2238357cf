use std::future::Future;
use std::ops::BitOr;
use std::pin::Pin;
use std::time::Duration;

use http::StatusCode;

use crate::admin::AdminRoutes;
use crate::{Body, Ctx, Host, PluginError, Request, Response};

/// What a request hook decides.
///
/// Short-circuiting is explicit: `Respond` carries the answer, and no
/// status code or boolean has a hidden meaning.
#[must_use]
#[derive(Debug)]
pub enum Flow {
    /// Hand the request to the next plugin (or the app).
    Continue,
    /// Answer now; later plugins and the app never see the request.
    Respond(Response),
}

impl Flow {
    /// Answers now with an empty body.
    pub fn respond(status: StatusCode) -> Self {
        Flow::Respond(text_response(status, ""))
    }

    /// Answers now with `status` and a short text body (`reason`), the way a
    /// plugin refuses a request.
    pub fn deny(status: StatusCode, reason: &'static str) -> Self {
        Flow::Respond(text_response(status, reason))
    }
}

/// A short `text/plain` response: how plugins and the kernel refuse or
/// explain a request.
pub fn text_response(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response {
    let text = text.into();
    let empty = text.is_empty();
    let mut res = Response::new(Body::full(text));
    *res.status_mut() = status;
    if !empty {
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res
}

/// The result of a hook: ready now (no allocation), or a boxed future for
/// hooks that really wait (a network call, a lock).
///
/// Synchronous plugins return `Hook::Ready(..)`; asynchronous ones wrap an
/// `async` block with [`Hook::later`].
#[must_use]
pub enum Hook<'a, T> {
    /// The hook finished without waiting.
    Ready(T),
    /// The hook must be awaited.
    Later(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> Hook<'a, T> {
    /// Boxes an `async` block as a hook result.
    pub fn later(fut: impl Future<Output = T> + Send + 'a) -> Self {
        Hook::Later(Box::pin(fut))
    }

    /// Waits for the hook's result.
    pub async fn resolve(self) -> T {
        match self {
            Hook::Ready(v) => v,
            Hook::Later(f) => f.await,
        }
    }
}

/// Which hooks a plugin implements; a stage only calls plugins that have
/// its hook, so an absent hook costs nothing.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Hooks(u8);

impl Hooks {
    /// No hooks.
    pub const NONE: Hooks = Hooks(0);
    /// [`Plugin::on_init`].
    pub const INIT: Hooks = Hooks(1);
    /// [`Plugin::fetch`].
    pub const FETCH: Hooks = Hooks(1 << 1);
    /// [`Plugin::on_request`].
    pub const REQUEST: Hooks = Hooks(1 << 2);
    /// [`Plugin::on_response`].
    pub const RESPONSE: Hooks = Hooks(1 << 3);
    /// [`Plugin::on_complete`].
    pub const COMPLETE: Hooks = Hooks(1 << 4);
    /// [`Plugin::on_shutdown`].
    pub const SHUTDOWN: Hooks = Hooks(1 << 5);
    /// [`Plugin::admin`], at the routes [`Plugin::admin_routes`] declares.
    pub const ADMIN: Hooks = Hooks(1 << 6);
    /// [`Plugin::on_response`], but only for the requests whose
    /// `on_request` asked for their response ([`Ctx::want_response`]),
    /// instead of every request's ([`Hooks::RESPONSE`], which wins when
    /// both are named). For a plugin that needs few responses (a canary
    /// counting one app's answers): a response no hook reads keeps the
    /// cheap form the kernel has for it (an upstream's answer fields are
    /// copied to the client as they came instead of built into a map).
    pub const RESPONSE_WHEN_ASKED: Hooks = Hooks(1 << 7);

    /// Whether every hook of `other` is in `self`.
    pub const fn has(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Hooks {
    type Output = Hooks;
    fn bitor(self, rhs: Hooks) -> Hooks {
        Hooks(self.0 | rhs.0)
    }
}

/// What happened to a request, handed to `on_complete` after the response
/// was written (or the client went away).
#[derive(Debug, Clone)]
pub struct Completion {
    /// Status sent to the client.
    pub status: StatusCode,
    /// Body bytes written.
    pub body_bytes: u64,
    /// From receiving the request head to the last body byte.
    pub duration: Duration,
    /// The client disconnected before the body was fully sent.
    pub aborted: bool,
}

/// A bext plugin: an object with optional hooks.
///
/// The kernel holds plugins as `Arc<dyn Plugin>`, one instance per distinct
/// configuration, shared by every request and kept across reloads while its
/// configuration is unchanged. Every hook has a default that does nothing;
/// [`Plugin::hooks`] must name the ones the plugin overrides.
///
/// Order: request hooks run in ascending priority; if the plugin at
/// position *i* answers in `on_request`, only plugins *0..=i* see
/// `on_response`, in reverse (the onion model). `on_complete` runs for the
/// whole chain.
///
/// Errors follow the manifest's `on_error`: `closed` (the default) answers
/// 500 with the request id, `open` logs and continues. A panic in a hook is
/// caught and treated as an error.
pub trait Plugin: Send + Sync + 'static {
    /// The hooks this plugin implements.
    fn hooks(&self) -> Hooks;

    /// Runs once when the instance joins a pipeline, before it serves
    /// traffic: open files and connections, start timers. An error rejects
    /// the whole new configuration, and the previous one keeps serving.
    fn on_init<'a>(&'a self, _host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        Hook::Ready(Ok(()))
    }

    /// Pre-pipeline intercept, before any app is known: route the request
    /// (set `cx.app`, `cx.tenant`, `cx.base`) or answer it. The first
    /// `Respond` ends the request; no app chain runs.
    fn fetch<'a>(&'a self, _req: &'a mut Request, _cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::Ready(Ok(Flow::Continue))
    }

    /// Sees the request on its way to the app: edit it, or answer it.
    fn on_request<'a>(&'a self, _req: &'a mut Request, _cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::Ready(Ok(Flow::Continue))
    }

    /// A second, later place in the request chain for this same instance,
    /// at this priority: the kernel then also calls
    /// [`Plugin::on_late_request`] there. For a decision that needs what a
    /// later plugin establishes (the gateway's per-subject limits run after
    /// authn verified the subject) while the cheap part of the work stays
    /// early. `None` (the default): no late place, no cost. A late priority
    /// not after the plugin's own runs right after it.
    fn late_priority(&self) -> Option<i32> {
        None
    }

    /// Request headers only this plugin may set (authn's caller headers,
    /// renamed or not): the kernel removes client copies from every
    /// request as it arrives, for every app, also those this plugin does
    /// not run for, so no app can be handed a forged one.
    fn owned_request_headers(&self) -> &[http::HeaderName] {
        &[]
    }

    /// Whether this plugin's request hooks (`fetch`, `on_request`,
    /// `on_late_request`) may add a header to the request's map. `true`
    /// unless the plugin says otherwise; one that only reads request
    /// headers (or removes some) says `false`, so the kernel can tell the
    /// plugins after it that the map still holds only what admission left
    /// ([`Ctx::headers_as_admitted`]): authn then need not look for client
    /// copies of its headers. Headers set with
    /// [`Ctx::set_request_headers`] are counted apart.
    fn adds_request_headers(&self) -> bool {
        true
    }

    /// Whether this plugin's request hooks read `x-base` or
    /// `x-vhost-tenant` from the request's map (the kernel's copies of
    /// [`Ctx::base`] and [`Ctx::tenant`], which a hook can read there
    /// instead). `true` unless the plugin says otherwise: a static site
    /// reads neither, so for a static app the kernel writes them (an
    /// insert a request) only when a plugin of its chain may read them.
    fn reads_kernel_headers(&self) -> bool {
        true
    }

    /// Whether this plugin's `on_response` takes the headers the app and
    /// later hooks added next to the response's map
    /// ([`Ctx::encoded_headers`]) where they are. By default the kernel
    /// appends them to the map before the hook, so that it sees one map;
    /// that costs an insert a header on every response, which a hook that
    /// adds its own headers as a block need not pay. Saying `true` is a
    /// promise: the hook counts those headers as the response's (looks at
    /// their names before adding one of its own) and moves them into the
    /// map ([`EncodedHeaders::move_into`](crate::EncodedHeaders::move_into))
    /// before it changes the map.
    fn reads_encoded_headers(&self) -> bool {
        false
    }

    /// The request hook of the late place ([`Plugin::late_priority`]), with
    /// the same contract as `on_request`: `Respond` answers, and the
    /// response then goes back through every plugin before this late
    /// place (this plugin's `on_response` included). It runs only when
    /// the plugin's own `on_request` let the request on.
    fn on_late_request<'a>(&'a self, _req: &'a mut Request, _cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::Ready(Ok(Flow::Continue))
    }

    /// Sees the response on its way back: edit status, headers or body. It
    /// cannot short-circuit; an error follows the fail mode. Called for
    /// every request this plugin's `on_request` saw with
    /// [`Hooks::RESPONSE`]; with [`Hooks::RESPONSE_WHEN_ASKED`] only for
    /// those whose `on_request` called [`Ctx::want_response`].
    fn on_response<'a>(&'a self, _res: &'a mut Response, _cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        Hook::Ready(Ok(()))
    }

    /// Runs after the response is written; never delays the client. Keep it
    /// cheap, or hand work to a task spawned through [`Host::spawn`].
    fn on_complete(&self, _cx: &Ctx, _done: &Completion) {}

    /// Runs once when the last pipeline holding this instance retires.
    fn on_shutdown(&self) -> Hook<'_, ()> {
        Hook::Ready(())
    }

    /// Where this plugin's admin routes are and which token guards them,
    /// for a plugin whose [`Plugin::hooks`] has [`Hooks::ADMIN`]. The
    /// kernel mounts them under `/__bext/`, checks the token once for all
    /// plugins ([`crate::admin::refuse_unless_admin`]) and then calls
    /// [`Plugin::admin`]; no plugin matches paths or reads tokens itself.
    fn admin_routes(&self) -> Option<&AdminRoutes> {
        None
    }

    /// Answers a request for one of [`Plugin::admin_routes`], after the
    /// kernel checked the admin token (or for the operator's own `bext`
    /// command, in-process: see [`crate::admin::LocalUpload`]). It runs
    /// after the fetch stage, so `cx.client_ip` is the client behind
    /// trusted proxies. An error is answered with its status.
    fn admin<'a>(&'a self, _req: &'a mut Request, _cx: &'a Ctx) -> Hook<'a, Result<Response, PluginError>> {
        Hook::Ready(Ok(text_response(http::StatusCode::NOT_FOUND, "not found\n")))
    }
}
