//! Driving one plugin the way the kernel does, for contract tests
//! (`plugins/<name>/tests/contract.rs`).
//!
//! A [`Harness`] builds the plugin as the kernel's compile step does
//! (strict [`decode_config`], then [`BuiltinPlugin::new`] with a
//! [`Setup`]), hands it a [`Host`] in `on_init`, then sends requests
//! through its stages in the kernel's order (`kernel/src/pipeline/run.rs`):
//!
//! owned headers stripped → `fetch` → `x-base` / `x-vhost-tenant` from
//! the context → `on_request` → `on_late_request` (if the plugin has a
//! late place) → the app (a closure the test supplies) → `on_response`
//! → the body is read to its end, as a client would → `on_complete`.
//!
//! Only the hooks [`Plugin::hooks`](crate::Plugin::hooks) names are called, as in the kernel;
//! a failing hook follows the manifest's `on_error` (read from the
//! plugin's default manifest, or set with [`Builder::on_error`]). The
//! plugin is the chain's only member, so it always saw the request: its
//! `on_response` runs whether its own hook, its late place or the app
//! answered (the onion rule), and never when `fetch` answered or set
//! `bypass`. Effects of other plugins (a verified subject, a client
//! address the WAF resolved) are set on the context beforehand with
//! [`TestRequest::ctx`].
//!
//! A panicking hook fails the test instead of becoming a 500: the kernel's
//! panic guard has its own tests, and a plugin's contract test wants to
//! see the panic.
//!
//! ```
//! use bext_plugin_abi::testing::{Harness, block_on, request};
//! # use bext_plugin_abi::{BuiltinPlugin, Hooks, Plugin, PluginError, Setup};
//! # struct Quiet;
//! # impl Plugin for Quiet { fn hooks(&self) -> Hooks { Hooks::NONE } }
//! # impl BuiltinPlugin for Quiet {
//! #     const NAME: &'static str = "quiet";
//! #     const PRIORITY: i32 = 600;
//! #     const SUMMARY: &'static str = "does nothing";
//! #     const DEFAULT_MANIFEST: &'static str = "name: quiet\n";
//! #     type Config = serde_json::Value;
//! #     fn new(_: serde_json::Value, _: &Setup<'_>) -> Result<Self, PluginError> { Ok(Quiet) }
//! # }
//! block_on(async {
//!     let h = Harness::<Quiet>::builder(serde_json::json!({})).start().await.unwrap();
//!     let ex = h
//!         .send(request("GET", "/").header("host", "example.com"), |_req, _cx| {
//!             bext_plugin_abi::text_response(http::StatusCode::OK, "hi")
//!         })
//!         .await;
//!     assert!(ex.reached_app);
//!     assert_eq!(ex.text(), "hi");
//! });
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;

use crate::{
    AppInfo, AppService, Body, BoxError, BuiltinPlugin, Completion, Ctx, Flow, Hooks, Host, PluginError, Request,
    RequestId, Response, Setup, Spawner, Task, decode_config,
};

/// What a failing hook does: the manifest's `on_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Answer with the error's status (500 by default) and the request id.
    Closed,
    /// Log and go on as if the hook had not run.
    Open,
}

/// Where in the request's way a hook ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// [`Plugin::fetch`](crate::Plugin::fetch).
    Fetch,
    /// [`Plugin::on_request`](crate::Plugin::on_request).
    Request,
    /// [`Plugin::on_late_request`](crate::Plugin::on_late_request).
    LateRequest,
    /// [`Plugin::on_response`](crate::Plugin::on_response).
    Response,
}

/// One plugin instance, built and initialised as the kernel builds it.
pub struct Harness<P> {
    plugin: P,
    host: Host,
    on_error: FailMode,
    late: bool,
    tasks: Arc<Mutex<Vec<Task>>>,
    next_id: AtomicU64,
}

/// Settings of a [`Harness`] before the plugin is built.
pub struct Builder<P> {
    config: serde_json::Value,
    apps: Vec<AppInfo>,
    data_dir: Option<PathBuf>,
    base: Option<Option<String>>,
    on_error: Option<FailMode>,
    spawner: Option<Arc<Spawner>>,
    host: Vec<Box<dyn FnOnce(Host) -> Host>>,
    plugin: PhantomData<fn() -> P>,
}

impl<P: BuiltinPlugin> Harness<P> {
    /// Starts building the plugin from its `config` block, given as JSON
    /// (`Value::Null`: a manifest without `config:`, all defaults).
    pub fn builder(config: serde_json::Value) -> Builder<P> {
        Builder {
            config,
            apps: Vec::new(),
            data_dir: None,
            base: None,
            on_error: None,
            spawner: None,
            host: Vec::new(),
            plugin: PhantomData,
        }
    }

    /// The instance, for what the contract tests beyond hooks.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// The host the plugin got in `on_init`.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The tasks the plugin handed to [`Host::spawn`] so far (with the
    /// default spawner, which runs nothing itself): poll them, spawn them
    /// on a runtime, or drop them.
    pub fn take_tasks(&self) -> Vec<Task> {
        std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends `req` through the plugin; `app` answers if the plugin lets the
    /// request on. Each request gets the next request id (1, 2, ...) unless
    /// [`TestRequest::id`] gave one.
    pub async fn send(&self, req: TestRequest, app: impl FnOnce(Request, &Ctx) -> Response) -> Exchange {
        let id = req.id.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        let resolve = req.app.clone();
        let (req, mut cx) = req.into_parts();
        cx.request_id = RequestId(id);
        self.run(req, cx, resolve.as_deref(), app).await
    }

    /// [`Harness::send`] for a request and context built by hand.
    /// `resolve` is the app the kernel resolves when no `fetch` routed
    /// the request (see [`TestRequest::app`]).
    pub async fn run(
        &self,
        mut req: Request,
        cx: Ctx,
        resolve: Option<&str>,
        app: impl FnOnce(Request, &Ctx) -> Response,
    ) -> Exchange {
        let started = Instant::now();
        let hooks = self.plugin.hooks();
        let mut ex = Exchange {
            response: Response::new(Body::empty()),
            cx,
            reached_app: false,
            answered_by: None,
            errors: Vec::new(),
            completion: None,
            body_error: None,
        };
        let cx = &mut ex.cx;

        // Admission: client copies of the headers only the kernel and
        // this plugin may set never reach a hook.
        for name in self
            .plugin
            .owned_request_headers()
            .iter()
            .chain([&X_BASE, &X_VHOST_TENANT])
        {
            req.headers_mut().remove(name);
        }

        // The fetch stage: its answer ends the request, with no chain, so
        // no `on_response` and no `on_complete`.
        if hooks.has(Hooks::FETCH) {
            let flow = self.plugin.fetch(&mut req, cx).resolve().await;
            if let Some(res) = self.decide(Stage::Fetch, flow, &mut ex.errors, cx) {
                ex.answered_by = Some(Stage::Fetch);
                return ex.written(res, started, false).await;
            }
        }
        if cx.app().is_none()
            && let Some(app) = resolve
        {
            let _ = cx.set_app(app);
            cx.base.get_or_insert("/".into());
        }
        kernel_headers(&mut req, cx);
        if cx.bypass {
            // A `bypass` host: the app alone, no chain.
            ex.reached_app = true;
            let res = app(std::mem::take(&mut req), cx);
            return ex.written(res, started, false).await;
        }

        let mut answered = None;
        let mut asked = false;
        if hooks.has(Hooks::REQUEST) {
            let flow = self.plugin.on_request(&mut req, cx).resolve().await;
            asked = cx.take_response_wanted();
            answered = self
                .decide(Stage::Request, flow, &mut ex.errors, cx)
                .map(|r| (Stage::Request, r));
        }
        // The late place is a request-only slot of its own, after the
        // plugin's (the kernel's `LatePass`), so it runs whatever hooks
        // the plugin names, but only if the request got past `on_request`.
        if answered.is_none() && self.late {
            // As the kernel before any hook: what the last one set for
            // the request is in its map.
            cx.insert_request_headers(req.headers_mut());
            let flow = self.plugin.on_late_request(&mut req, cx).resolve().await;
            // The late place is a slot without `on_response`: its ask
            // counts for nothing, as in the kernel.
            cx.take_response_wanted();
            answered = self
                .decide(Stage::LateRequest, flow, &mut ex.errors, cx)
                .map(|r| (Stage::LateRequest, r));
        }
        let mut res = match answered {
            Some((stage, res)) => {
                ex.answered_by = Some(stage);
                res
            }
            None => {
                ex.reached_app = true;
                cx.insert_request_headers(req.headers_mut());
                app(std::mem::take(&mut req), cx)
            }
        };
        // `on_response` for every response, or for one its `on_request`
        // asked for (`Hooks::RESPONSE_WHEN_ASKED`), as the kernel calls it.
        if hooks.has(Hooks::RESPONSE) || (hooks.has(Hooks::RESPONSE_WHEN_ASKED) && asked) {
            let done = self.plugin.on_response(&mut res, cx).resolve().await;
            if let Err(e) = done
                && let Some(failed) = self.fail(Stage::Response, e, &mut ex.errors, cx)
            {
                cx.encoded_headers.clear();
                res = failed;
            }
            // As the kernel before whatever reads the map next.
            cx.encoded_headers.move_into(res.headers_mut());
        }
        let completes = hooks.has(Hooks::COMPLETE);
        let ex = ex.written(res, started, completes).await;
        if let Some(done) = &ex.completion {
            self.plugin.on_complete(&ex.cx, done);
        }
        ex
    }

    /// Runs `on_shutdown` (if the plugin has it), as the kernel does when
    /// the last pipeline holding the instance retires.
    pub async fn shutdown(self) {
        if self.plugin.hooks().has(Hooks::SHUTDOWN) {
            self.plugin.on_shutdown().resolve().await;
        }
    }

    /// A request hook's result: `Some(response)` when it answers, itself
    /// or by failing closed.
    fn decide(
        &self,
        stage: Stage,
        flow: Result<Flow, PluginError>,
        errors: &mut Vec<(Stage, PluginError)>,
        cx: &Ctx,
    ) -> Option<Response> {
        match flow {
            Ok(Flow::Continue) => None,
            Ok(Flow::Respond(res)) => Some(res),
            Err(e) => self.fail(stage, e, errors, cx),
        }
    }

    /// The kernel's fail mode: failing closed answers
    /// [`PluginError::answer`]; the error is kept for the test.
    fn fail(&self, stage: Stage, e: PluginError, errors: &mut Vec<(Stage, PluginError)>, cx: &Ctx) -> Option<Response> {
        let answer = (self.on_error == FailMode::Closed).then(|| e.answer(cx.request_id));
        errors.push((stage, e));
        answer
    }
}

impl<P: BuiltinPlugin> Builder<P> {
    /// The platform's apps, as `Setup::apps` and `Host::apps` give them.
    pub fn apps(mut self, apps: impl IntoIterator<Item = AppInfo>) -> Self {
        self.apps = apps.into_iter().collect();
        self
    }

    /// The platform's data directory: give a temporary directory the test
    /// owns to a plugin that keeps files. Without one, a fresh path under
    /// the system's temporary directory that does not exist.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The manifest's `base`; by default the top-level `base:` of the
    /// plugin's default manifest, as the kernel uses it without a
    /// manifests directory.
    pub fn base(mut self, base: Option<&str>) -> Self {
        self.base = Some(base.map(str::to_owned));
        self
    }

    /// The manifest's `on_error`; by default the one of the plugin's
    /// default manifest (`closed` if it names none).
    pub fn on_error(mut self, mode: FailMode) -> Self {
        self.on_error = Some(mode);
        self
    }

    /// Runs the plugin's background tasks with `spawner` (for example
    /// `Arc::new(|t| { tokio::spawn(t); })`) instead of keeping them for
    /// [`Harness::take_tasks`].
    pub fn spawner(mut self, spawner: Arc<Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Lends the plugin a host service ([`Host::with_service`]).
    pub fn service<T: Send + Sync + 'static>(mut self, service: Arc<T>) -> Self {
        self.host.push(Box::new(move |h| h.with_service(service)));
        self
    }

    /// Lends the plugin a fleet store ([`Host::fleet`]), as in edge mode.
    pub fn fleet(mut self, fleet: Arc<dyn crate::Fleet>) -> Self {
        self.host.push(Box::new(move |h| h.with_fleet(fleet)));
        self
    }

    /// Lends the plugin a pool of shared values ([`Host::shared`]): give
    /// two harnesses one pool to see what a reload keeps.
    pub fn shared_pool(mut self, pool: Arc<crate::SharedPool>) -> Self {
        self.host.push(Box::new(move |h| h.with_shared_pool(pool)));
        self
    }

    /// Lets the plugin ask apps for responses ([`Host::serve_app`]).
    pub fn app_service(mut self, service: Arc<AppService>) -> Self {
        self.host.push(Box::new(move |h| h.with_app_service(service)));
        self
    }

    /// What `bext check` does: decodes the config strictly and builds the
    /// instance, no I/O. Config errors carry the field's path.
    pub fn check(&self) -> Result<P, PluginError> {
        let config = decode_config::<P::Config>(self.config.clone())?;
        let data_dir = self.data_dir_or_fresh();
        let base = self.base_or_manifest();
        let setup = Setup {
            plugin: P::NAME,
            base: base.as_deref(),
            apps: &self.apps,
            data_dir: &data_dir,
        };
        P::new(config, &setup)
    }

    /// Builds the instance and runs its `on_init` (if it has one), as a
    /// start or reload does; an `on_init` error is what would refuse the
    /// configuration.
    pub async fn start(self) -> Result<Harness<P>, PluginError> {
        let plugin = self.check()?;
        let tasks: Arc<Mutex<Vec<Task>>> = Arc::default();
        let spawner = self.spawner.clone().unwrap_or_else(|| {
            let tasks = tasks.clone();
            Arc::new(move |t| tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t))
        });
        let on_error =
            self.on_error
                .unwrap_or_else(|| match manifest_field(P::DEFAULT_MANIFEST, "on_error").as_deref() {
                    Some("open") => FailMode::Open,
                    _ => FailMode::Closed,
                });
        let mut host = Host::new(self.data_dir_or_fresh(), self.apps.into(), spawner);
        for add in self.host {
            host = add(host);
        }
        if plugin.hooks().has(Hooks::INIT) {
            plugin.on_init(&host).resolve().await?;
        }
        Ok(Harness {
            late: plugin.late_priority().is_some(),
            plugin,
            host,
            on_error,
            tasks,
            next_id: AtomicU64::new(1),
        })
    }

    fn data_dir_or_fresh(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            static N: AtomicU64 = AtomicU64::new(0);
            std::env::temp_dir().join(format!(
                "bext-harness-{}-{}-{}",
                P::NAME,
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ))
        })
    }

    fn base_or_manifest(&self) -> Option<String> {
        match &self.base {
            Some(b) => b.clone(),
            None => manifest_field(P::DEFAULT_MANIFEST, "base"),
        }
    }
}

/// A top-level scalar of a manifest (`base: /x   # comment`), without a
/// YAML parser: default manifests write these on one line.
fn manifest_field(manifest: &str, key: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = value.split(" #").next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

static X_BASE: HeaderName = HeaderName::from_static("x-base");
static X_VHOST_TENANT: HeaderName = HeaderName::from_static("x-vhost-tenant");

/// The headers the kernel sends the app once it is known (its
/// `add_kernel_headers`): the mount path and the tenant.
fn kernel_headers(req: &mut Request, cx: &Ctx) {
    if let Some(v) = cx.base.as_deref().and_then(|b| HeaderValue::from_str(b).ok()) {
        req.headers_mut().insert(&X_BASE, v);
    }
    if let Some(v) = cx.tenant().and_then(|t| HeaderValue::from_str(t).ok()) {
        req.headers_mut().insert(&X_VHOST_TENANT, v);
    }
}

/// What happened to one request.
pub struct Exchange {
    /// The response as the client gets it, its body read to the end and
    /// held in memory.
    pub response: Response,
    /// The context after the last hook.
    pub cx: Ctx,
    /// Whether the app was asked.
    pub reached_app: bool,
    /// The stage whose hook answered (itself, or by failing closed).
    pub answered_by: Option<Stage>,
    /// Hook errors, in order, whatever the fail mode made of them.
    pub errors: Vec<(Stage, PluginError)>,
    /// What `on_complete` got, when the kernel would call it (the chain
    /// ran and the plugin has the hook).
    pub completion: Option<Completion>,
    /// The response body's error, which cut it short (the client saw an
    /// aborted response).
    pub body_error: Option<BoxError>,
}

impl Exchange {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// A response header's first value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a response header.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.response
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The body's bytes.
    pub fn body(&self) -> &[u8] {
        self.response.body().as_bytes().unwrap_or_default()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// Writes `res` as hyper would: reads its body to the end (or its
    /// first error), then records what `on_complete` gets.
    async fn written(mut self, res: Response, started: Instant, completes: bool) -> Exchange {
        let (parts, mut body) = res.into_parts();
        let mut bytes = BytesMut::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                Err(e) => {
                    self.body_error = Some(e);
                    break;
                }
            }
        }
        let bytes: Bytes = bytes.freeze();
        self.completion = completes.then(|| Completion {
            status: parts.status,
            body_bytes: bytes.len() as u64,
            duration: started.elapsed(),
            aborted: self.body_error.is_some(),
        });
        self.response = Response::from_parts(parts, Body::full(bytes));
        self
    }
}

/// A request as the kernel hands it to the first hook: see [`request`].
pub struct TestRequest {
    req: Request,
    cx: Ctx,
    id: Option<u64>,
    app: Option<String>,
}

/// A request for `target` (origin form `/path?query`, or absolute form
/// `http://host/path`, whose authority becomes the Host, as the kernel
/// makes it), from `127.0.0.1:40000`. Panics on a method or target the
/// kernel would refuse before any plugin: tests give well-formed ones.
pub fn request(method: &str, target: &str) -> TestRequest {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method.parse().expect("a method");
    *req.uri_mut() = target.parse().expect("a request target");
    TestRequest {
        req,
        cx: Ctx::new(RequestId(0), SocketAddr::from(([127, 0, 0, 1], 40000))),
        id: None,
        app: None,
    }
}

impl TestRequest {
    /// Adds a header (repeat for several values).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        self.req
            .headers_mut()
            .append(name, HeaderValue::from_str(value).expect("a header value"));
        self
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        *self.req.body_mut() = body.into();
        self
    }

    /// The TCP peer, `ip:port` or a bare IP; also the client address until
    /// a plugin (the WAF) resolves another.
    pub fn peer(mut self, addr: &str) -> Self {
        let peer = addr
            .parse::<SocketAddr>()
            .or_else(|_| addr.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 40000)))
            .expect("an address");
        self.cx.peer = peer;
        self.cx.client_ip = peer.ip();
        self
    }

    /// The request id (by default the harness counts 1, 2, ...).
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// The app the kernel resolves if no `fetch` hook routes the request,
    /// as `default_app` does: `cx.app` and a base of `/`.
    pub fn app(mut self, app: &str) -> Self {
        self.app = Some(app.to_owned());
        self
    }

    /// Edits the context before the first hook: what other plugins would
    /// have set (`cx.set_subject(..)`, `cx.client_ip`, `cx.ext`).
    pub fn ctx(mut self, edit: impl FnOnce(&mut Ctx)) -> Self {
        edit(&mut self.cx);
        self
    }

    /// The request and its context, with `cx.host` as the kernel sets it
    /// (the target's authority, else the Host header: lower case, no port,
    /// no trailing dot), for driving hooks by hand.
    pub fn into_parts(self) -> (Request, Ctx) {
        let TestRequest {
            mut req, mut cx, id, ..
        } = self;
        if let Some(id) = id {
            cx.request_id = RequestId(id);
        }
        if let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) {
            let value = HeaderValue::from_str(&authority).expect("an authority");
            req.headers_mut().insert(http::header::HOST, value);
        }
        if cx.host.is_none() {
            cx.host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| crate::normalise_host(h.as_bytes()).ok());
        }
        (req, cx)
    }
}

/// Runs a future to its end on this thread, with no runtime: enough for
/// plugins whose hooks wait on nothing but other futures (most hooks are
/// ready at once). A hook that needs tokio (timers, sockets,
/// `tokio::spawn`) needs `#[tokio::test]` instead.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{Hook, Plugin, text_response};

    /// A plugin that logs each hook into `cx.vars["log"]` and answers
    /// where its config says.
    struct Probe {
        cfg: ProbeConfig,
        base: Option<String>,
        apps: usize,
        completed: Mutex<Vec<Completion>>,
        init: Mutex<Option<PathBuf>>,
    }

    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct ProbeConfig {
        /// `fetch`, `request`, `late`, `fail-request`, `fail-response`,
        /// `bypass`, `route`.
        #[serde(default)]
        act: String,
        #[serde(default)]
        late: bool,
        /// Names `on_request` only.
        #[serde(default)]
        bare: bool,
        /// `on_response` only when asked: `on_request` (and the late
        /// place) ask when the request has `x-ask`.
        #[serde(default)]
        when_asked: bool,
    }

    fn log(cx: &mut Ctx, what: &str) {
        let log = cx.vars.entry("log".into()).or_default();
        if !log.is_empty() {
            log.push(' ');
        }
        log.push_str(what);
    }

    impl Probe {
        fn answer(&self, stage: &str, cx: &mut Ctx) -> Hook<'static, Result<Flow, PluginError>> {
            log(cx, stage);
            let flow = match self.cfg.act.as_str() {
                a if a == stage => Ok(Flow::deny(StatusCode::FORBIDDEN, "no")),
                a if a == format!("fail-{stage}") => Err(PluginError::hook(StatusCode::BAD_GATEWAY, "broken")),
                _ => Ok(Flow::Continue),
            };
            // Waits once, as a hook that waits on something would.
            Hook::later(async move {
                let mut once = false;
                std::future::poll_fn(|cx| {
                    if once {
                        Poll::Ready(())
                    } else {
                        once = true;
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                })
                .await;
                flow
            })
        }
    }

    impl Plugin for Probe {
        fn hooks(&self) -> Hooks {
            if self.cfg.bare {
                return Hooks::REQUEST;
            }
            let response = if self.cfg.when_asked {
                Hooks::RESPONSE_WHEN_ASKED
            } else {
                Hooks::RESPONSE
            };
            Hooks::INIT | Hooks::FETCH | Hooks::REQUEST | response | Hooks::COMPLETE | Hooks::SHUTDOWN
        }
        fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
            *self.init.lock().unwrap() = Some(host.data_dir().to_owned());
            host.spawn(async {});
            Hook::Ready(Ok(()))
        }
        fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            assert!(req.headers().get("x-owned").is_none(), "stripped before any hook");
            match self.cfg.act.as_str() {
                "bypass" => cx.bypass = true,
                "route" => {
                    cx.set_app("shop").unwrap();
                    cx.set_tenant("acme").unwrap();
                    cx.base = Some("/".into());
                }
                _ => {}
            }
            self.answer("fetch", cx)
        }
        fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            if req.headers().contains_key("x-ask") {
                cx.want_response();
            }
            self.answer("request", cx)
        }
        fn late_priority(&self) -> Option<i32> {
            self.cfg.late.then_some(700)
        }
        fn owned_request_headers(&self) -> &[HeaderName] {
            static OWNED: [HeaderName; 1] = [HeaderName::from_static("x-owned")];
            &OWNED
        }
        fn on_late_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
            if req.headers().contains_key("x-late-ask") {
                cx.want_response();
            }
            self.answer("late", cx)
        }
        fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
            log(cx, "response");
            res.headers_mut().insert("x-probe", HeaderValue::from_static("seen"));
            if self.cfg.act == "fail-response" {
                return Hook::Ready(Err(PluginError::hook(StatusCode::BAD_GATEWAY, "broken")));
            }
            Hook::Ready(Ok(()))
        }
        fn on_complete(&self, _cx: &Ctx, done: &Completion) {
            self.completed.lock().unwrap().push(done.clone());
        }
    }

    impl BuiltinPlugin for Probe {
        const NAME: &'static str = "probe";
        const PRIORITY: i32 = 600;
        const SUMMARY: &'static str = "logs its hooks";
        const DEFAULT_MANIFEST: &'static str =
            "name: probe\npriority: 600\nbase: /__probe   # its own routes\non_error: open\nconfig:\n  base: nested\n";
        type Config = ProbeConfig;
        fn new(cfg: ProbeConfig, setup: &Setup<'_>) -> Result<Self, PluginError> {
            if cfg.act == "bad" {
                return Err(PluginError::config("act", "not an act"));
            }
            Ok(Probe {
                cfg,
                base: setup.base.map(str::to_owned),
                apps: setup.apps.len(),
                completed: Mutex::default(),
                init: Mutex::default(),
            })
        }
    }

    async fn probe(config: serde_json::Value) -> Harness<Probe> {
        Harness::<Probe>::builder(config)
            .on_error(FailMode::Closed)
            .start()
            .await
            .unwrap()
    }

    fn app(req: Request, cx: &Ctx) -> Response {
        let mut res = text_response(StatusCode::OK, "from the app");
        for h in ["x-base", "x-vhost-tenant"] {
            if let Some(v) = req.headers().get(h) {
                res.headers_mut().insert(HeaderName::from_static(h), v.clone());
            }
        }
        res.headers_mut()
            .insert("x-app-saw", HeaderValue::from_str(&cx.vars["log"]).unwrap());
        res
    }

    fn get() -> TestRequest {
        request("GET", "/x").header("host", "Example.COM.:8080")
    }

    #[test]
    fn hooks_run_in_the_kernels_order() {
        block_on(async {
            let h = probe(serde_json::json!({"late": true})).await;
            let ex = h.send(get().header("x-owned", "forged"), app).await;
            assert!(ex.reached_app);
            assert_eq!(ex.answered_by, None);
            assert_eq!(ex.header("x-app-saw"), Some("fetch request late"));
            assert_eq!(ex.cx.vars["log"], "fetch request late response");
            assert_eq!(ex.header("x-probe"), Some("seen"));
            assert_eq!(ex.text(), "from the app");
            assert_eq!(ex.cx.host.as_deref(), Some("example.com"));
            assert_eq!(ex.cx.request_id, RequestId(1));
            let done = ex.completion.as_ref().unwrap();
            assert_eq!(
                (done.status, done.body_bytes, done.aborted),
                (StatusCode::OK, 12, false)
            );
            assert_eq!(h.plugin().completed.lock().unwrap().len(), 1, "on_complete ran");
            assert_eq!(h.send(get(), app).await.cx.request_id, RequestId(2));

            let h = probe(serde_json::json!({})).await;
            let ex = h.send(get(), app).await;
            assert_eq!(
                ex.cx.vars["log"], "fetch request response",
                "no late place, no late hook"
            );

            // `on_response` only for the requests `on_request` asked for
            // (an ask from the late place counts for nothing).
            let h = probe(serde_json::json!({"when_asked": true, "late": true})).await;
            for (ask, log) in [
                (None, "fetch request late"),
                (Some("x-late-ask"), "fetch request late"),
                (Some("x-ask"), "fetch request late response"),
            ] {
                let req = match ask {
                    Some(name) => get().header(name, "1"),
                    None => get(),
                };
                assert_eq!(h.send(req, app).await.cx.vars["log"], log, "{ask:?}");
            }

            let h = probe(serde_json::json!({"bare": true})).await;
            let ex = h.send(get(), app).await;
            assert_eq!(ex.cx.vars["log"], "request", "only the hooks it names");
            assert!(ex.header("x-probe").is_none() && ex.completion.is_none());
            assert!(h.plugin().init.lock().unwrap().is_none(), "no INIT, no on_init");
        });
    }

    #[test]
    fn answers_follow_the_onion() {
        block_on(async {
            let h = probe(serde_json::json!({"act": "fetch"})).await;
            let ex = h.send(get(), app).await;
            assert_eq!(
                (ex.status(), ex.answered_by, ex.reached_app),
                (StatusCode::FORBIDDEN, Some(Stage::Fetch), false)
            );
            assert_eq!(ex.cx.vars["log"], "fetch", "a fetch answer: no chain");
            assert!(ex.completion.is_none() && h.plugin().completed.lock().unwrap().is_empty());

            for (act, stage, log) in [
                ("request", Stage::Request, "fetch request response"),
                ("late", Stage::LateRequest, "fetch request late response"),
            ] {
                let h = probe(serde_json::json!({"act": act, "late": true})).await;
                let ex = h.send(get(), app).await;
                assert_eq!(
                    (ex.status(), ex.answered_by, ex.reached_app),
                    (StatusCode::FORBIDDEN, Some(stage), false)
                );
                assert_eq!(ex.cx.vars["log"], log);
                assert_eq!(
                    ex.header("x-probe"),
                    Some("seen"),
                    "its own answer goes back through it"
                );
                assert!(ex.completion.is_some());
            }

            let h = probe(serde_json::json!({"act": "bypass"})).await;
            let ex = h.send(get(), app).await;
            assert!(ex.reached_app);
            assert_eq!(ex.cx.vars["log"], "fetch", "bypass: the app alone");
            assert!(ex.header("x-probe").is_none() && ex.completion.is_none());
        });
    }

    #[test]
    fn failures_follow_the_fail_mode() {
        block_on(async {
            let h = probe(serde_json::json!({"act": "fail-request"})).await;
            let ex = h.send(get().id(0xabc), app).await;
            assert_eq!(ex.status(), StatusCode::BAD_GATEWAY);
            assert_eq!(ex.text(), "Bad Gateway (request id 0000000000000abc)\n");
            assert_eq!(ex.answered_by, Some(Stage::Request));
            assert!(matches!(ex.errors[..], [(Stage::Request, PluginError::Hook { .. })]));
            assert_eq!(ex.header("x-probe"), Some("seen"));

            let open = Harness::<Probe>::builder(serde_json::json!({"act": "fail-request"}))
                .start()
                .await
                .unwrap();
            let ex = open.send(get(), app).await;
            assert_eq!(ex.status(), StatusCode::OK, "the default manifest says open");
            assert!(ex.reached_app && ex.errors.len() == 1);

            let h = probe(serde_json::json!({"act": "fail-response"})).await;
            let ex = h.send(get(), app).await;
            assert_eq!(ex.status(), StatusCode::BAD_GATEWAY);
            assert!(ex.reached_app);
            assert_eq!(ex.errors[0].0, Stage::Response);
        });
    }

    #[test]
    fn kernel_headers_routing_and_setup() {
        block_on(async {
            let h = probe(serde_json::json!({"act": "route"})).await;
            let ex = h.send(get().header("x-base", "/forged").app("other"), app).await;
            assert_eq!(ex.cx.app(), Some("shop"), "fetch routed it: no resolution");
            assert_eq!(
                (ex.header("x-base"), ex.header("x-vhost-tenant")),
                (Some("/"), Some("acme"))
            );

            let h = probe(serde_json::json!({})).await;
            let ex = h.send(request("GET", "http://a.test:81/p").app("blog"), app).await;
            assert_eq!((ex.cx.app(), ex.header("x-base")), (Some("blog"), Some("/")));
            assert_eq!(ex.cx.host.as_deref(), Some("a.test"), "the authority is the host");
            let ex = h.send(request("GET", "/").header("host", "[0:0::1]:3000"), app).await;
            assert_eq!(ex.cx.host.as_deref(), Some("[::1]"));
            let (_, cx) = request("GET", "/").peer("2001:db8::7").into_parts();
            assert_eq!((cx.client_ip, cx.host), ("2001:db8::7".parse().unwrap(), None));

            assert_eq!(
                h.plugin().base.as_deref(),
                Some("/__probe"),
                "the default manifest's base"
            );
            assert_eq!(h.take_tasks().len(), 1, "kept, not run");
            assert!(h.take_tasks().is_empty());
            let dir = h.plugin().init.lock().unwrap().clone().unwrap();
            assert_eq!(&dir, h.host().data_dir());

            let b = Harness::<Probe>::builder(serde_json::Value::Null)
                .base(None)
                .data_dir("/srv/data")
                .apps([AppInfo {
                    id: "a".into(),
                    domains: vec![],
                    tenant_domains: Default::default(),
                }]);
            let p = b.check().unwrap();
            assert_eq!((p.base, p.apps), (None, 1));
            let h = b.start().await.unwrap();
            assert_eq!(h.host().data_dir(), std::path::Path::new("/srv/data"));
            assert_eq!(h.host().apps().len(), 1);
            h.shutdown().await;
        });
    }

    #[test]
    fn config_errors_carry_their_path() {
        let err = Harness::<Probe>::builder(serde_json::json!({"akt": 1}))
            .check()
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field `akt`"), "{err}");
        match Harness::<Probe>::builder(serde_json::json!({"act": "bad"})).check() {
            Err(PluginError::Config { path, .. }) => assert_eq!(path, "act"),
            _ => panic!("accepted"),
        }
        assert!(block_on(Harness::<Probe>::builder(serde_json::json!({"act": "bad"})).start()).is_err());
    }

    #[test]
    fn a_body_error_is_an_aborted_completion() {
        block_on(async {
            let h = probe(serde_json::json!({})).await;
            let ex = h
                .send(get(), |_, _| {
                    let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = vec![
                        Ok(http_body::Frame::data(Bytes::from_static(b"half"))),
                        Err("reset".into()),
                    ];
                    Response::new(Body::stream(http_body_util::StreamBody::new(
                        futures_util::stream::iter(frames),
                    )))
                })
                .await;
            assert_eq!(ex.body(), b"half");
            assert_eq!(
                ex.body_error.as_ref().map(ToString::to_string).as_deref(),
                Some("reset")
            );
            let done = ex.completion.unwrap();
            assert!(done.aborted && done.body_bytes == 4);
        });
    }
}
