//! One isolate: a QuickJS runtime with its own heap, the prelude, the
//! user's module, and the loop that settles a call's promise (microtasks
//! and timers) under the call's deadline.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use rquickjs::loader::{Loader, Resolver};
use rquickjs::promise::PromiseState;
use rquickjs::{Array, CaughtError, Context, Ctx, Function, Module, Object, Persistent, Runtime, TypedArray, Value};

use crate::bytecode::Compiled;
use crate::fetch::{FetchHost, Fetcher};
use crate::modules::ModuleCache;
use crate::reply_stream::{ChunkSender, Sent};
use crate::{
    Answer, Call, Exports, HeaderEdit, JsError, Kind, PluginCtx, Reply, RequestBody, RequestHook, Spec, natives,
};

/// The prelude, compiled by the process's first isolate.
pub(crate) static PRELUDE: Compiled = Compiled::new("bext:prelude", include_str!("prelude.js"));

/// The headers of a plain text Response, the prelude's `textHeaders`.
static TEXT_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(|| {
    HeaderMap::from_iter([(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    )])
});
/// The methods whose names an isolate makes as JavaScript strings once
/// ([`Handles::methods`], same order).
const STANDARD_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
];
/// QuickJS's own stack limit; the isolate's thread has more than this.
const MAX_STACK: usize = 1024 * 1024;

/// How long one run of due timers or fetch answers ([`Isolate::tick`],
/// [`Isolate::deliver`]) holds its thread before it stops between two
/// callbacks, leaving the rest for the next run: inline, the thread is an
/// HTTP worker whose other requests wait meanwhile.
const SLICE: Duration = Duration::from_millis(10);
/// The stack of an isolate thread.
pub(crate) const THREAD_STACK: usize = 4 * 1024 * 1024;
/// The key of [`Isolate::call`]'s call among request bodies (inline
/// calls are numbered from 0 up).
const DIRECT: u64 = u64::MAX;

/// The functions a call needs, kept alive across calls.
struct Handles {
    app: Persistent<Function<'static>>,
    request: Persistent<Function<'static>>,
    response: Persistent<Function<'static>>,
    next_timer: Persistent<Function<'static>>,
    run_timer: Persistent<Function<'static>>,
    /// Resolves a fetch's promise with its answer.
    fetch_done: Persistent<Function<'static>>,
    /// The prelude's shared header list of plain text responses.
    text_headers: Persistent<Value<'static>>,
    /// App: the default export; plugins: unused.
    entry: Persistent<Value<'static>>,
    /// App: `env`.
    env: Persistent<Value<'static>>,
    /// The names of [`STANDARD_METHODS`] as JavaScript strings: a request's
    /// method is a reference to one, not a new string each call.
    methods: Vec<Persistent<Value<'static>>>,
    fetch: Option<Persistent<Function<'static>>>,
    on_request: Option<Persistent<Function<'static>>>,
    on_response: Option<Persistent<Function<'static>>>,
}

/// A live isolate. Fields drop in order: handles before the context, the
/// context before the runtime.
pub(crate) struct Isolate {
    handles: Handles,
    /// Calls started by [`Isolate::begin`] whose promise is still pending.
    pending: HashMap<u64, (Persistent<Value<'static>>, Shape)>,
    /// Request bodies still arriving, by the call that reads them
    /// ([`DIRECT`]: the call of [`Isolate::call`]), until the call is over.
    bodies: HashMap<u64, u64>,
    /// The body stream of the call just answered, for [`Isolate::pump`]
    /// (it holds a JavaScript value: it drops before the context).
    streaming: Option<Streaming>,
    context: Context,
    _runtime: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
    interrupted: Rc<Cell<bool>>,
    timeout: Duration,
    /// The prelude's clock (`native.now()` counts from here).
    clock: Instant,
    /// Set by the prelude while any timer is pending.
    timers_armed: Rc<Cell<bool>>,
    /// Outbound fetches of this isolate.
    fetch: Rc<FetchHost>,
}

/// A response body still being streamed from JavaScript.
struct Streaming {
    /// The prelude's `pumpOf(stream)`: `next()` and `cancel(reason)`.
    source: Persistent<Object<'static>>,
    tx: ChunkSender,
    /// The call's deadline: streaming is part of the call.
    deadline: Instant,
    /// The first `next()`, when it had not settled by the time the head
    /// was answered: the pump waits on it before asking again.
    first: Option<Persistent<Value<'static>>>,
}

impl Isolate {
    /// Starts an isolate: prelude, module, and (plugins) `onInit(config)`.
    pub(crate) fn new(
        spec: &Spec,
        modules: &Arc<ModuleCache>,
        fetcher: Option<Arc<Fetcher>>,
    ) -> Result<(Isolate, Exports), JsError> {
        let runtime = Runtime::new().map_err(|e| JsError::Load(format!("cannot create a QuickJS runtime: {e}")))?;
        runtime.set_memory_limit(spec.limits.memory_limit);
        runtime.set_max_stack_size(MAX_STACK);
        // Collect cycles every few MiB of allocation, not every 256 KiB.
        runtime.set_gc_threshold((spec.limits.memory_limit / 8).clamp(256 << 10, 8 << 20));
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let interrupted = Rc::new(Cell::new(false));
        {
            let (deadline, interrupted) = (deadline.clone(), interrupted.clone());
            runtime.set_interrupt_handler(Some(Box::new(move || match deadline.get() {
                Some(at) if Instant::now() >= at => {
                    interrupted.set(true);
                    true
                }
                _ => false,
            })));
        }
        // The entry's real directory is the root no module may leave (see
        // `modules`); the entry is named by its canonical path, so imports
        // resolve from where it really is. The pool's cache reads each file
        // once, for all its isolates.
        let entry = modules.entry().to_owned();
        runtime.set_loader(
            RootResolver {
                modules: modules.clone(),
            },
            FileLoader {
                modules: modules.clone(),
            },
        );
        let context = Context::full(&runtime).map_err(|e| JsError::Load(format!("cannot create a context: {e}")))?;

        let clock = Instant::now();
        let timers_armed = Rc::new(Cell::new(false));
        let fetch = FetchHost::new(fetcher);
        // Module evaluation and onInit get at least five seconds.
        let init_limit = spec.limits.timeout.max(Duration::from_secs(5));
        deadline.set(Some(Instant::now() + init_limit));
        let started = context.with(|ctx| -> Result<(Handles, Exports), JsError> {
            let caught = |e: rquickjs::Error| describe(&ctx, e);
            let native =
                natives::install(&ctx, spec.name.as_str().into(), clock, timers_armed.clone()).map_err(caught)?;
            crate::fetch::install(&ctx, &native, fetch.clone()).map_err(caught)?;
            crate::crypto::install(&ctx, &native).map_err(caught)?;
            crate::url_pattern::install(&ctx, &native).map_err(caught)?;
            crate::streams::install(&ctx, &native, spec.limits.memory_limit).map_err(caught)?;
            crate::multipart::install(&ctx, &native).map_err(caught)?;
            let prelude: Function<'_> = PRELUDE.function(&ctx).map_err(caught)?;
            let dispatch: Object<'_> = prelude.call((native.clone(),)).map_err(caught)?;
            let bindings = crate::bindings::install(&ctx, &native, &fetch, &spec.bindings).map_err(caught)?;
            crate::web::install(&ctx, &native).map_err(caught)?;
            let get =
                |name: &str| -> Result<Function<'_>, JsError> { dispatch.get(name).map_err(|e| describe(&ctx, e)) };
            let (app, request, response, init) = (get("app")?, get("request")?, get("response")?, get("init")?);
            let (next_timer, run_timer, fetch_done) = (get("nextTimer")?, get("runTimer")?, get("fetchDone")?);
            let text_headers: Value<'_> = dispatch.get("textHeaders").map_err(caught)?;

            let name = entry.to_string_lossy().into_owned();
            (modules.source(&name))
                .map_err(|e| JsError::Load(format!("{}: cannot read: {e}", spec.entry.display())))?;
            let module = modules.declare(&ctx, &name).map_err(caught)?;
            let (module, promise) = module.eval().map_err(caught)?;
            let driver = Driver {
                ctx: &ctx,
                next_timer: next_timer.clone(),
                run_timer: run_timer.clone(),
                fetch: &fetch,
                fetch_done: fetch_done.clone(),
                deadline: &deadline,
                interrupted: &interrupted,
                clock,
                timeout: init_limit,
            };
            driver.settle(promise.into_value())?;

            let export = |name: &str| -> Result<Option<Function<'_>>, JsError> {
                let value: Value<'_> = module.get(name).map_err(|e| describe(&ctx, e))?;
                Ok(value.into_function())
            };
            let mut exports = Exports::default();
            let mut handles = Handles {
                app: Persistent::save(&ctx, app),
                request: Persistent::save(&ctx, request),
                response: Persistent::save(&ctx, response),
                next_timer: Persistent::save(&ctx, next_timer.clone()),
                run_timer: Persistent::save(&ctx, run_timer.clone()),
                fetch_done: Persistent::save(&ctx, fetch_done.clone()),
                text_headers: Persistent::save(&ctx, text_headers),
                entry: Persistent::save(&ctx, Value::new_undefined(ctx.clone())),
                env: Persistent::save(&ctx, Value::new_undefined(ctx.clone())),
                methods: (STANDARD_METHODS.iter())
                    .map(|m| rquickjs::String::from_str(ctx.clone(), m.as_str()).map(|s| Persistent::save(&ctx, s.into_value())))
                    .collect::<rquickjs::Result<_>>()
                    .map_err(caught)?,
                fetch: None,
                on_request: None,
                on_response: None,
            };
            match spec.kind {
                Kind::App => {
                    let mut default: Value<'_> = module.get("default").map_err(caught)?;
                    fn method<'js>(v: &Value<'js>, name: &str) -> Option<Function<'js>> {
                        v.as_object()?.get::<_, Value<'js>>(name).ok()?.into_function()
                    }
                    if method(&default, "fetch").is_none() {
                        // An SSR bundle as the original bext runs it:
                        // `render(request)` exported, or on the default export.
                        let render = export("render")?.or_else(|| method(&default, "render"));
                        let Some(render) = render else {
                            return Err(JsError::Load(format!(
                                "{}: the default export has no fetch(request, env, ctx) method, and no render(request) is exported",
                                spec.entry.display()
                            )));
                        };
                        default = get("ssr")?.call((render,)).map_err(caught)?;
                    }
                    exports.fetch = true;
                    let env = ctx
                        .json_parse(serde_json::to_string(&spec.env).unwrap_or_default())
                        .map_err(caught)?;
                    crate::bindings::fill_env(&env, bindings.as_ref(), &spec.bindings).map_err(caught)?;
                    handles.entry = Persistent::save(&ctx, default);
                    handles.env = Persistent::save(&ctx, env);
                }
                Kind::Plugin => {
                    let (fetch, on_request, on_response) =
                        (export("fetch")?, export("onRequest")?, export("onResponse")?);
                    let on_init = export("onInit")?;
                    exports = Exports {
                        fetch: fetch.is_some(),
                        on_request: on_request.is_some(),
                        on_response: on_response.is_some(),
                        on_init: on_init.is_some(),
                    };
                    if !(exports.fetch || exports.on_request || exports.on_response || exports.on_init) {
                        return Err(JsError::Load(format!(
                            "{}: exports none of fetch, onRequest, onResponse, onInit",
                            spec.entry.display()
                        )));
                    }
                    handles.fetch = fetch.map(|f| Persistent::save(&ctx, f));
                    handles.on_request = on_request.map(|f| Persistent::save(&ctx, f));
                    handles.on_response = on_response.map(|f| Persistent::save(&ctx, f));
                    if let Some(on_init) = on_init {
                        let config = ctx.json_parse(spec.config.to_string()).map_err(caught)?;
                        driver.settle(init.call((on_init, config)).map_err(caught)?)?;
                    }
                }
            }
            Ok((handles, exports))
        });
        deadline.set(None);
        let (handles, exports) = started.map_err(|e| match e {
            JsError::Load(_) => e,
            other => JsError::Load(format!("{}: {other}", spec.entry.display())),
        })?;
        let isolate = Isolate {
            handles,
            pending: HashMap::new(),
            bodies: HashMap::new(),
            streaming: None,
            context,
            _runtime: runtime,
            deadline,
            interrupted,
            timeout: spec.limits.timeout,
            clock,
            timers_armed,
            fetch,
        };
        Ok((isolate, exports))
    }

    /// Runs one call to the end, or to its deadline, on this thread. An
    /// app's streamed body is then sent by [`Isolate::pump`].
    pub(crate) fn call(&mut self, call: Call) -> Result<Answer, JsError> {
        self.interrupted.set(false);
        self.streaming = None;
        let deadline_at = Instant::now() + self.timeout;
        self.deadline.set(Some(deadline_at));
        let h = &self.handles;
        let (deadline, interrupted, timeout, clock) = (&self.deadline, &self.interrupted, self.timeout, self.clock);
        let fetch = &*self.fetch;
        let streaming = &mut self.streaming;
        let mut body = None;
        let result = self.context.with(|ctx| -> Result<Answer, JsError> {
            let (out, shape) = match invoke(&ctx, h, fetch, call, true, &mut body)? {
                Invoked::Answer(answer) => return Ok(answer),
                Invoked::Value(out, shape) => (out, shape),
            };
            // Most handlers answer at once: no driver to set up then.
            let value = if out.is_promise() {
                Driver::new(&ctx, h, fetch, deadline, interrupted, clock, timeout)?.settle(out)?
            } else {
                out
            };
            if let (Shape::App, Some(source)) = (shape, stream_source(&value)) {
                let mut reply = read_reply(&ctx, h, &value, 0)?;
                let (tx, rx) = crate::reply_stream::channel();
                // A first chunk the stream already holds is taken before
                // the head is sent: one that is not bytes fails the call
                // with a 500 and its error, not an empty 200. One still
                // to come is waited for by the pump, after the head.
                let caught = |e: rquickjs::Error| describe(&ctx, e);
                let next: Function<'_> = source.get("next").map_err(caught)?;
                let first: Value<'_> = next.call(()).map_err(caught)?;
                while ctx.execute_pending_job() {}
                let first = match settled(&ctx, &first) {
                    None => Some(Persistent::save(&ctx, first)),
                    Some(chunk) => {
                        match chunk?.as_object().and_then(|o| o.as_typed_array::<u8>()) {
                            None => tx.finish(),
                            // Taken at once: the channel is empty.
                            Some(bytes) => {
                                let bytes = Bytes::from(natives::copy_bytes(bytes));
                                if !bytes.is_empty() {
                                    let _ = tx.send(bytes, deadline_at);
                                }
                                *streaming = Some(Streaming {
                                    source: Persistent::save(&ctx, source),
                                    tx,
                                    deadline: deadline_at,
                                    first: None,
                                });
                            }
                        }
                        reply.stream = Some(rx);
                        return Ok(Answer::Respond(reply));
                    }
                };
                reply.stream = Some(rx);
                *streaming = Some(Streaming {
                    source: Persistent::save(&ctx, source),
                    tx,
                    deadline: deadline_at,
                    first,
                });
                return Ok(Answer::Respond(reply));
            }
            decode(&ctx, h, shape, value)
        });
        self.deadline.set(None);
        let result = result.map_err(|e| self.classify(e));
        if let Some(id) = body {
            self.bodies.insert(DIRECT, id);
        }
        // A streamed answer may still read the body: [`Isolate::pump`]
        // lets go of it.
        if self.streaming.is_none() {
            let fatal = result.as_ref().is_err_and(JsError::is_fatal);
            self.end_body(DIRECT, !fatal);
        }
        result
    }

    /// Sends the body stream of the call just answered, chunk by chunk as
    /// JavaScript makes them, until it ends, the client goes away, or the
    /// call's deadline: the isolate is the stream's until then. A client
    /// that does not read blocks this thread (bounded memory, see
    /// `reply_stream`), never past the deadline. Without a stream: nothing.
    pub(crate) fn pump(&mut self) -> Result<(), JsError> {
        let Some(Streaming {
            source,
            tx,
            deadline: at,
            first,
        }) = self.streaming.take()
        else {
            return Ok(());
        };
        self.interrupted.set(false);
        self.deadline.set(Some(at));
        let h = &self.handles;
        let (deadline, interrupted, timeout, clock) = (&self.deadline, &self.interrupted, self.timeout, self.clock);
        let fetch = &*self.fetch;
        let result = self.context.with(|ctx| -> Result<(), JsError> {
            let caught = |e: rquickjs::Error| describe(&ctx, e);
            let source = source.restore(&ctx).map_err(caught)?;
            let next: Function<'_> = source.get("next").map_err(caught)?;
            let driver = Driver::new(&ctx, h, fetch, deadline, interrupted, clock, timeout)?;
            let mut first = match first {
                Some(first) => Some(first.restore(&ctx).map_err(caught)?),
                None => None,
            };
            loop {
                let asked = match first.take() {
                    Some(first) => first,
                    None => next.call(()).map_err(caught)?,
                };
                let chunk = driver.settle(asked)?;
                let Some(bytes) = chunk.as_object().and_then(|o| o.as_typed_array::<u8>()) else {
                    tx.finish();
                    return Ok(());
                };
                let bytes = Bytes::from(natives::copy_bytes(bytes));
                if bytes.is_empty() {
                    continue;
                }
                match tx.send(bytes, at) {
                    Sent::Ok => {}
                    Sent::Gone => {
                        // The client left: tell the stream (its `cancel`).
                        let cancel: Function<'_> = source.get("cancel").map_err(caught)?;
                        cancel.call::<_, Value<'_>>(("the client went away",)).map_err(caught)?;
                        while ctx.execute_pending_job() {}
                        return Ok(());
                    }
                    Sent::TimedOut => {
                        interrupted.set(true);
                        return Err(JsError::Timeout(timeout));
                    }
                }
            }
        });
        self.deadline.set(None);
        let result = result.map_err(|e| self.classify(e));
        self.end_body(DIRECT, !result.as_ref().is_err_and(JsError::is_fatal));
        result
    }

    /// Call `call` is over: its request body, if still arriving, is let go
    /// (the feed stops reading the client) and, with `js`, what
    /// JavaScript still holds of it fails rather than waits for ever.
    fn end_body(&mut self, call: u64, js: bool) {
        if self.bodies.is_empty() {
            return; // most calls: no hashing
        }
        let Some(id) = self.bodies.remove(&call) else {
            return;
        };
        if !self.fetch.has_body(id) {
            return; // it ended
        }
        self.fetch.abort(id);
        if !js {
            return;
        }
        let done = &self.handles.fetch_done;
        let ran = self.within(self.timeout, |ctx| {
            if let Ok(done) = done.clone().restore(&ctx) {
                let why = "the request is over: its body can no longer be read";
                if let Err(e) = done.call::<_, ()>((id as f64, why, -1)) {
                    tracing::warn!(target: "bext::js", "letting go of a request body: {}", describe(&ctx, e));
                }
                while ctx.execute_pending_job() {}
            }
        });
        if let Err(e) = ran {
            tracing::warn!(target: "bext::js", "letting go of a request body: {e}");
        }
    }

    /// Starts a call without waiting: runs it and its microtasks, then
    /// either has the answer or leaves the promise pending in the isolate
    /// under `id`, for [`Isolate::poll`] once timers have run. JavaScript
    /// may run until `deadline` at the latest.
    pub(crate) fn begin(&mut self, id: u64, call: Call, deadline: Instant) -> Option<Result<Answer, JsError>> {
        self.interrupted.set(false);
        self.deadline.set(Some(deadline));
        let (h, fetch) = (&self.handles, &*self.fetch);
        let pending = &mut self.pending;
        let mut body = None;
        let result = self.context.with(|ctx| -> Option<Result<Answer, JsError>> {
            let (out, shape) = match invoke(&ctx, h, fetch, call, false, &mut body) {
                Ok(Invoked::Answer(answer)) => return Some(Ok(answer)),
                Ok(Invoked::Value(out, shape)) => (out, shape),
                Err(e) => return Some(Err(e)),
            };
            while ctx.execute_pending_job() {}
            match settled(&ctx, &out) {
                Some(Ok(value)) => Some(decode(&ctx, h, shape, value)),
                Some(Err(e)) => Some(Err(e)),
                None => {
                    pending.insert(id, (Persistent::save(&ctx, out), shape));
                    None
                }
            }
        });
        self.deadline.set(None);
        let result = self.checked(result);
        if let Some(body) = body {
            self.bodies.insert(id, body);
        }
        if let Some(answer) = &result {
            self.end_body(id, !answer.as_ref().is_err_and(JsError::is_fatal));
        }
        result
    }

    /// The answer of the pending call `id`, once its promise has settled.
    pub(crate) fn poll(&mut self, id: u64) -> Option<Result<Answer, JsError>> {
        let (h, pending) = (&self.handles, &mut self.pending);
        let result = self.context.with(|ctx| {
            let (promise, _) = pending.get(&id)?;
            let out = promise.clone().restore(&ctx).ok()?;
            let result = settled(&ctx, &out)?;
            let (_, shape) = pending.remove(&id)?;
            Some(result.and_then(|value| decode(&ctx, h, shape, value)))
        });
        let result = self.checked(result);
        if let Some(answer) = &result {
            self.end_body(id, !answer.as_ref().is_err_and(JsError::is_fatal));
        }
        result
    }

    /// Inline isolates: who to wake when a fetch's answer arrives.
    pub(crate) fn wake_with(&self, notify: Arc<tokio::sync::Notify>) {
        self.fetch.wake_with(notify);
    }

    /// Hands the fetch answers that arrived to JavaScript, one at a time:
    /// each answer, with the microtasks it queues, may run for `budget`
    /// (as [`Isolate::tick`]'s callbacks, and for the same reason). Stops
    /// once the run has held the thread for a [`SLICE`]; the answers left
    /// wait for the next run ([`Isolate::answers_ready`]). Returns whether
    /// there were any. An `Err` (out of time or memory) means the isolate
    /// must be replaced.
    pub(crate) fn deliver(&mut self, budget: Duration) -> Result<bool, JsError> {
        if !self.fetch.has_answers() {
            return Ok(false);
        }
        let started = Instant::now();
        let mut any = false;
        loop {
            let (h, fetch) = (&self.handles, &self.fetch);
            let delivered = self.within(budget, |ctx| -> Result<bool, JsError> {
                let done = h.fetch_done.clone().restore(&ctx).map_err(|e| describe(&ctx, e))?;
                let n = fetch.deliver(&ctx, &done, 1).map_err(|e| describe(&ctx, e))?;
                while ctx.execute_pending_job() {}
                Ok(n > 0)
            })?;
            match delivered {
                Ok(true) => any = true,
                Ok(false) => break,
                // Only running out of time or memory costs the isolate.
                Err(e) if !e.is_fatal() => {
                    tracing::warn!(target: "bext::js", "delivering a fetch's answer failed: {e}");
                    any = true;
                }
                Err(e) => return Err(e),
            }
            if !self.fetch.has_answers() || started.elapsed() >= budget.min(SLICE) {
                break;
            }
        }
        Ok(any)
    }

    /// Whether fetches are in flight or answered and not yet delivered.
    pub(crate) fn fetches_pending(&self) -> bool {
        self.fetch.in_flight() > 0 || self.fetch.has_answers()
    }

    /// Whether fetch answers wait to be delivered.
    pub(crate) fn answers_ready(&self) -> bool {
        self.fetch.has_answers()
    }

    /// Where the answers of this isolate's fetches arrive.
    pub(crate) fn fetch_answers(&self) -> &crossbeam_channel::Receiver<crate::fetch::Done> {
        self.fetch.answers()
    }

    /// Gives up on the pending call `id` (it timed out, or its client left).
    pub(crate) fn forget(&mut self, id: u64) {
        self.pending.remove(&id);
        self.end_body(id, true);
    }

    /// Calls started with [`Isolate::begin`] that have not settled yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// An interruption is a timeout, whatever JavaScript made of it.
    fn checked(&self, result: Option<Result<Answer, JsError>>) -> Option<Result<Answer, JsError>> {
        match result {
            Some(Err(e)) => Some(Err(self.classify(e))),
            None if self.interrupted.get() => Some(Err(JsError::Timeout(self.timeout))),
            other => other,
        }
    }

    /// Runs `f` in the isolate's context with `budget` of time from now;
    /// a run the interrupt cut off is `Timeout(budget)` (the isolate must
    /// then be replaced). One callback's or one answer's run.
    fn within<T>(&self, budget: Duration, f: impl for<'js> FnOnce(rquickjs::Ctx<'js>) -> T) -> Result<T, JsError> {
        self.interrupted.set(false);
        self.deadline.set(Some(Instant::now() + budget));
        let out = self.context.with(f);
        self.deadline.set(None);
        if self.interrupted.get() {
            return Err(JsError::Timeout(budget));
        }
        Ok(out)
    }

    /// Fires due timers, one callback at a time: each callback, with the
    /// microtasks it queues, may run for `budget` (the CPU limit is the
    /// callback's, not the whole batch's, which may hold the timers of many
    /// calls). The run stops between callbacks once it has held the thread
    /// for a [`SLICE`]; the timers left are still due, and the returned
    /// instant says so. An interruption is an `Err`: the isolate must be
    /// replaced.
    pub(crate) fn tick(&mut self, budget: Duration) -> Result<Option<Instant>, JsError> {
        let started = Instant::now();
        // Timers set by the callbacks of this run are not due in it.
        let limit = started.saturating_duration_since(self.clock).as_secs_f64() * 1000.0;
        loop {
            let run_timer = &self.handles.run_timer;
            let fired = self.within(budget, |ctx| {
                let Ok(run) = run_timer.clone().restore(&ctx) else {
                    return false;
                };
                // Callbacks' own exceptions are reported by the prelude: an
                // error here is running out of time or memory.
                let fired = run.call::<_, bool>((limit,)).unwrap_or_else(|e| {
                    tracing::warn!(target: "bext::js", "timer failed: {}", describe(&ctx, e));
                    false
                });
                while ctx.execute_pending_job() {}
                fired
            })?;
            if !fired || started.elapsed() >= budget.min(SLICE) {
                break;
            }
        }
        Ok(self.next_due())
    }

    /// Whether any timer is pending (a flag the prelude keeps: no call
    /// into JavaScript).
    pub(crate) fn timers_armed(&self) -> bool {
        self.timers_armed.get()
    }

    /// When the earliest pending timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if !self.timers_armed.get() {
            return None;
        }
        let at = self.context.with(|ctx| {
            let next: Function<'_> = self.handles.next_timer.clone().restore(&ctx).ok()?;
            next.call::<_, f64>(()).ok()
        })?;
        (at >= 0.0).then(|| timer_due(self.clock, at))
    }

    /// Interruptions are timeouts whatever JS made of them.
    fn classify(&self, e: JsError) -> JsError {
        if self.interrupted.get() {
            JsError::Timeout(self.timeout)
        } else {
            e
        }
    }
}

/// Drives a call's promise to its end: microtasks first, then timers,
/// sleeping until the next one is due, never past the deadline.
struct Driver<'a, 'js> {
    ctx: &'a Ctx<'js>,
    next_timer: Function<'js>,
    run_timer: Function<'js>,
    fetch: &'a FetchHost,
    fetch_done: Function<'js>,
    deadline: &'a Cell<Option<Instant>>,
    interrupted: &'a Cell<bool>,
    clock: Instant,
    timeout: Duration,
}

impl<'a, 'js> Driver<'a, 'js> {
    /// A driver for a call of this isolate.
    fn new(
        ctx: &'a Ctx<'js>,
        h: &Handles,
        fetch: &'a FetchHost,
        deadline: &'a Cell<Option<Instant>>,
        interrupted: &'a Cell<bool>,
        clock: Instant,
        timeout: Duration,
    ) -> Result<Driver<'a, 'js>, JsError> {
        let restore = |p: &Persistent<Function<'static>>| p.clone().restore(ctx).map_err(|e| describe(ctx, e));
        Ok(Driver {
            ctx,
            next_timer: restore(&h.next_timer)?,
            run_timer: restore(&h.run_timer)?,
            fetch,
            fetch_done: restore(&h.fetch_done)?,
            deadline,
            interrupted,
            clock,
            timeout,
        })
    }

    fn settle(&self, value: Value<'js>) -> Result<Value<'js>, JsError> {
        let ctx = self.ctx;
        if !value.is_promise() {
            return Ok(value);
        }
        loop {
            if self.interrupted.get() {
                return Err(JsError::Timeout(self.timeout));
            }
            if let Some(result) = settled(ctx, &value) {
                return result;
            }
            if ctx.execute_pending_job() {
                continue;
            }
            if self
                .fetch
                .deliver(ctx, &self.fetch_done, usize::MAX)
                .map_err(|e| describe(ctx, e))?
                > 0
            {
                continue;
            }
            let at: f64 = self.next_timer.call(()).map_err(|e| describe(ctx, e))?;
            if at < 0.0 && self.fetch.in_flight() == 0 {
                return Err(JsError::Exception(
                    "the returned promise never settles: nothing is left to wait for".into(),
                ));
            }
            let until = self.deadline.get().unwrap_or_else(|| Instant::now() + self.timeout);
            let due = (at >= 0.0).then(|| timer_due(self.clock, at));
            let wake = due.map_or(until, |d| d.min(until));
            // Waiting for a timer or a fetch runs no JavaScript.
            match self.fetch.wait(wake) {
                Some(true) => continue,
                Some(false) => {}
                None => std::thread::sleep(wake.saturating_duration_since(Instant::now())),
            }
            if Instant::now() >= until {
                self.interrupted.set(true);
                return Err(JsError::Timeout(self.timeout));
            }
            if due.is_some_and(|d| Instant::now() >= d) {
                // The call's own deadline bounds these: it is all one call.
                let limit = self.clock.elapsed().as_secs_f64() * 1000.0;
                while self.run_timer.call::<_, bool>((limit,)).map_err(|e| describe(ctx, e))? {
                    while ctx.execute_pending_job() {}
                    if let Some(result) = settled(ctx, &value) {
                        return result;
                    }
                }
            }
        }
    }
}

/// What a call into JavaScript returned.
enum Invoked<'js> {
    /// Nothing to run (a hook the module does not export).
    Answer(Answer),
    /// The dispatcher's result, perhaps a promise, to [`decode`] once settled.
    Value(Value<'js>, Shape),
}

/// How to read a settled dispatcher result.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// `[status, flatHeaders, body]`.
    App,
    /// `[0, edits, app, tenant, vars]` or `[1, ...response]`.
    Request,
    /// `[0, edits]` or `[1, ...response]`.
    Response,
}

/// Hands `call` to the prelude's dispatcher. `streaming`: an app's body
/// stream comes back as a source for [`Isolate::pump`], not collected.
/// Timers due further off are woken for at this distance (and found not
/// due yet): a delay JavaScript gives (`setTimeout(f, 1e300)`, `Infinity`)
/// can be past what `Duration` and `Instant` hold, which would panic.
const FARTHEST_TIMER_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// When a timer due `at_ms` after `clock` (the prelude's `native.now()`
/// origin) fires.
fn timer_due(clock: Instant, at_ms: f64) -> Instant {
    clock + Duration::from_secs_f64((at_ms / 1000.0).min(FARTHEST_TIMER_SECS))
}

/// An app's request body still arriving is taken by this isolate's
/// `fetch` host; `body` is then its id.
fn invoke<'js>(
    ctx: &Ctx<'js>,
    h: &Handles,
    fetch: &FetchHost,
    call: Call,
    streaming: bool,
    body: &mut Option<u64>,
) -> Result<Invoked<'js>, JsError> {
    let caught = |e: rquickjs::Error| describe(ctx, e);
    let restore = |p: &Persistent<Function<'static>>| p.clone().restore(ctx).map_err(caught);
    match call {
        Call::App {
            method,
            url,
            headers,
            body: request_body,
        } => {
            let entry = h.entry.clone().restore(ctx).map_err(caught)?;
            let env = h.env.clone().restore(ctx).map_err(caught)?;
            let flat = packed_headers(ctx, &headers).map_err(caught)?;
            let data = match request_body {
                RequestBody::Whole(bytes) => js_body(ctx, &bytes).map_err(caught)?,
                RequestBody::Arriving(tap) => match tap.whole() {
                    Some(bytes) => js_body(ctx, &bytes).map_err(caught)?,
                    // The prelude reads it as it comes, by this id.
                    None => {
                        let id = fetch.take_body(tap);
                        *body = Some(id);
                        Value::new_number(ctx.clone(), id as f64)
                    }
                },
            };
            let out = restore(&h.app)?
                .call((entry, method_value(ctx, h, &method)?, url, flat, data, env, streaming))
                .map_err(caught)?;
            Ok(Invoked::Value(out, Shape::App))
        }
        Call::Request {
            hook,
            method,
            url,
            headers,
            body,
            ctx: cx,
        } => {
            let (f, name) = match hook {
                RequestHook::Fetch => (&h.fetch, "fetch"),
                RequestHook::OnRequest => (&h.on_request, "onRequest"),
            };
            let Some(f) = f else {
                return Ok(Invoked::Answer(Answer::Continue {
                    edits: Vec::new(),
                    app: cx.app,
                    tenant: cx.tenant,
                    vars: cx.vars,
                }));
            };
            let flat = packed_headers(ctx, &headers).map_err(caught)?;
            let cx = js_ctx(ctx, &cx).map_err(caught)?;
            let body = js_body(ctx, &body).map_err(caught)?;
            let out = restore(&h.request)?
                .call((restore(f)?, name, method_value(ctx, h, &method)?, url, flat, cx, body))
                .map_err(caught)?;
            Ok(Invoked::Value(out, Shape::Request))
        }
        Call::Response {
            status,
            headers,
            ctx: cx,
        } => {
            let Some(f) = &h.on_response else {
                return Ok(Invoked::Answer(Answer::KeepResponse { edits: Vec::new() }));
            };
            let flat = packed_headers(ctx, &headers).map_err(caught)?;
            let cx = js_ctx(ctx, &cx).map_err(caught)?;
            let out = restore(&h.response)?
                .call((restore(f)?, status, flat, cx))
                .map_err(caught)?;
            Ok(Invoked::Value(out, Shape::Response))
        }
    }
}

/// `method` as a JavaScript string: a standard one's made once, another's
/// made now.
fn method_value<'js>(ctx: &Ctx<'js>, h: &Handles, method: &Method) -> Result<Value<'js>, JsError> {
    let made = match STANDARD_METHODS.iter().position(|m| m == method) {
        Some(i) => h.methods[i].clone().restore(ctx),
        None => rquickjs::String::from_str(ctx.clone(), method.as_str()).map(rquickjs::String::into_value),
    };
    made.map_err(|e| describe(ctx, e))
}

/// The value of `out` if it is not a promise or has settled; `None` while
/// it is pending.
fn settled<'js>(ctx: &Ctx<'js>, out: &Value<'js>) -> Option<Result<Value<'js>, JsError>> {
    let Some(promise) = out.as_promise() else {
        return Some(Ok(out.clone()));
    };
    match promise.state() {
        PromiseState::Pending => None,
        PromiseState::Resolved => Some(promise.result::<Value<'_>>()?.map_err(|e| describe(ctx, e))),
        PromiseState::Rejected => {
            let err = promise.result::<Value<'_>>()?.err()?;
            Some(Err(describe(ctx, err)))
        }
    }
}

/// The body source of an app's `[status, headers, pumpOf(stream)]`, if its
/// body is a stream.
fn stream_source<'js>(out: &Value<'js>) -> Option<Object<'js>> {
    let body: Value<'js> = out.as_array()?.get(2).ok()?;
    let body = body.into_object()?;
    if body.as_typed_array::<u8>().is_some() {
        return None;
    }
    body.get::<_, Value<'js>>("next").ok()?.is_function().then_some(body)
}

/// Reads a settled dispatcher result as the answer of its kind of call.
fn decode<'js>(ctx: &Ctx<'js>, h: &Handles, shape: Shape, out: Value<'js>) -> Result<Answer, JsError> {
    let caught = |e: rquickjs::Error| describe(ctx, e);
    if let Shape::App = shape {
        return read_reply(ctx, h, &out, 0).map(Answer::Respond);
    }
    let out = out
        .into_array()
        .ok_or_else(|| JsError::BadAnswer("not an array".into()))?;
    if out.get::<i32>(0).map_err(caught)? == 1 {
        return read_reply(ctx, h, out.as_value(), 1).map(Answer::Respond);
    }
    let edits = read_edits(&out.get(1).map_err(caught)?)?;
    if let Shape::Response = shape {
        return Ok(Answer::KeepResponse { edits });
    }
    Ok(Answer::Continue {
        edits,
        app: out.get(2).map_err(caught)?,
        tenant: out.get(3).map_err(caught)?,
        vars: read_vars(&out.get(4).map_err(caught)?)?,
    })
}

/// An engine error as a [`JsError`], with the exception's message and stack.
fn describe(ctx: &Ctx<'_>, e: rquickjs::Error) -> JsError {
    match CaughtError::from_error(ctx, e) {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            if message.contains("out of memory") {
                return JsError::OutOfMemory;
            }
            let name: String = ex.get("name").unwrap_or_else(|_| "Error".into());
            match ex.stack().filter(|s| !s.trim().is_empty()) {
                Some(stack) => JsError::Exception(format!("{name}: {message}\n{}", stack.trim_end())),
                None => JsError::Exception(format!("{name}: {message}")),
            }
        }
        // QuickJS throws `null` when it cannot even allocate its "out of
        // memory" error (a heap full of small objects), and the unwinding
        // frees the heap again, so nothing else tells the two apart: an
        // uncaught `null` is reported as the limit (an app's own `throw
        // null` too, which only costs it a fresh isolate).
        CaughtError::Value(v) if v.is_null() => JsError::OutOfMemory,
        CaughtError::Value(v) => {
            let shown = ctx
                .json_stringify(v.clone())
                .ok()
                .flatten()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{v:?}"));
            JsError::Exception(format!("uncaught {shown}"))
        }
        CaughtError::Error(rquickjs::Error::Allocation) => JsError::OutOfMemory,
        CaughtError::Error(e) => JsError::Exception(e.to_string()),
    }
}

/// The request's headers as one string, `name\nvalue\nname\nvalue`: one
/// JavaScript string for the prelude to split if the handler reads the
/// headers (most hello-world-like handlers never do), where an array of
/// two strings a header cost an allocation each on every request.
/// Neither names nor values can hold a line feed (`HeaderValue` refuses
/// control characters), so the split gives back exactly these pairs.
fn packed_headers<'js>(ctx: &Ctx<'js>, headers: &HeaderMap) -> rquickjs::Result<rquickjs::String<'js>> {
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 2).sum();
    let mut packed = String::with_capacity(size);
    for (name, value) in headers {
        if !packed.is_empty() {
            packed.push('\n');
        }
        packed.push_str(name.as_str());
        packed.push('\n');
        // `from_utf8` checks ASCII a word at a time where `to_str` looks at
        // every byte; a value with other bytes is the same text either way
        // (valid UTF-8 as is, else with replacement characters).
        match std::str::from_utf8(value.as_bytes()) {
            Ok(v) => packed.push_str(v),
            Err(_) => packed.push_str(&String::from_utf8_lossy(value.as_bytes())),
        }
    }
    rquickjs::String::from_str(ctx.clone(), &packed)
}

fn js_body<'js>(ctx: &Ctx<'js>, body: &Bytes) -> rquickjs::Result<Value<'js>> {
    if body.is_empty() {
        return Ok(Value::new_null(ctx.clone()));
    }
    Ok(TypedArray::<u8>::new_copy(ctx.clone(), body)?.into_value())
}

fn js_ctx<'js>(ctx: &Ctx<'js>, cx: &PluginCtx) -> rquickjs::Result<Array<'js>> {
    let a = Array::new(ctx.clone())?;
    a.set(0, cx.app.as_deref())?;
    a.set(1, cx.tenant.as_deref())?;
    a.set(2, cx.base.as_str())?;
    a.set(3, cx.request_id.as_str())?;
    let vars = Object::new(ctx.clone())?;
    for (k, v) in &cx.vars {
        vars.set(k.as_str(), v.as_str())?;
    }
    a.set(4, vars)?;
    a.set(5, cx.client_ip.as_str())?;
    Ok(a)
}

fn read_headers(flat: &Array<'_>) -> Result<HeaderMap, JsError> {
    let mut headers = HeaderMap::with_capacity(flat.len() / 2);
    let mut i = 0;
    while i + 1 < flat.len() {
        let name: String = flat.get(i).map_err(|e| JsError::BadAnswer(e.to_string()))?;
        let value: String = flat.get(i + 1).map_err(|e| JsError::BadAnswer(e.to_string()))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| JsError::BadAnswer(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| JsError::BadAnswer(format!("invalid value for header {name}")))?;
        headers.append(name, value);
        i += 2;
    }
    Ok(headers)
}

/// `ctx.vars` as strings (values are converted with `String(v)`).
fn read_vars(vars: &Value<'_>) -> Result<std::collections::HashMap<String, String>, JsError> {
    let mut out = std::collections::HashMap::new();
    let Some(obj) = vars.as_object() else { return Ok(out) };
    for entry in obj.props::<String, rquickjs::Coerced<String>>() {
        let (k, v) = entry.map_err(|e| JsError::BadAnswer(format!("ctx.vars: {e}")))?;
        out.insert(k, v.0);
    }
    Ok(out)
}

/// `[op, name, value, ...]` triples: 0 set, 1 append, 2 delete.
fn read_edits(flat: &Array<'_>) -> Result<Vec<HeaderEdit>, JsError> {
    let bad = |e: rquickjs::Error| JsError::BadAnswer(e.to_string());
    let mut edits = Vec::with_capacity(flat.len() / 3);
    let mut i = 0;
    while i + 2 < flat.len() {
        let op: i32 = flat.get(i).map_err(bad)?;
        let name: String = flat.get(i + 1).map_err(bad)?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| JsError::BadAnswer(format!("invalid header name {name:?}")))?;
        let value = || -> Result<HeaderValue, JsError> {
            let v: String = flat.get(i + 2).map_err(bad)?;
            HeaderValue::from_str(&v).map_err(|_| JsError::BadAnswer(format!("invalid value for header {name}")))
        };
        edits.push(match op {
            0 => HeaderEdit::Set(name.clone(), value()?),
            1 => HeaderEdit::Append(name.clone(), value()?),
            _ => HeaderEdit::Remove(name),
        });
        i += 3;
    }
    Ok(edits)
}

/// `[status, flatHeaders, body]` from `at` on.
fn read_reply<'js>(ctx: &Ctx<'js>, h: &Handles, out: &Value<'js>, at: usize) -> Result<Reply, JsError> {
    let caught = |e: rquickjs::Error| describe(ctx, e);
    let out = out
        .as_array()
        .ok_or_else(|| JsError::BadAnswer("not an array".into()))?;
    let status: u16 = out.get::<i32>(at).map_err(caught)?.try_into().unwrap_or(500);
    let status = StatusCode::from_u16(status).map_err(|_| JsError::BadAnswer(format!("invalid status {status}")))?;
    let flat: Value<'_> = out.get(at + 1).map_err(caught)?;
    let headers = if h.text_headers.clone().restore(ctx).is_ok_and(|t| t == flat) {
        TEXT_HEADERS.clone()
    } else {
        read_headers(
            &flat
                .into_array()
                .ok_or_else(|| JsError::BadAnswer("headers: not an array".into()))?,
        )?
    };
    let body: Value<'_> = out.get(at + 2).map_err(caught)?;
    let body = if let Some(s) = body.as_string() {
        Bytes::from(s.to_string().map_err(caught)?)
    } else if let Some(obj) = body.as_object().and_then(|o| o.as_typed_array::<u8>()) {
        Bytes::from(natives::copy_bytes(obj))
    } else {
        Bytes::new()
    };
    Ok(Reply {
        status,
        headers,
        body,
        stream: None,
    })
}

/// Resolves imports relative to the importing module, to canonical paths
/// inside the entry's directory only (see [`crate::modules::resolve`]).
struct RootResolver {
    modules: Arc<ModuleCache>,
}

impl Resolver for RootResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        match self.modules.resolve(base, name) {
            Ok(path) => Ok(path),
            Err(e) => Err(rquickjs::Error::new_resolving_message(base, name, e.to_string())),
        }
    }
}

/// Reads modules from disk, under the entry's directory only, checking
/// again at load time that the resolved path is still canonical and
/// inside; once per pool (see [`ModuleCache`]), compiled once per code
/// version (see [`crate::app_code`]).
struct FileLoader {
    modules: Arc<ModuleCache>,
}

impl Loader for FileLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
        self.modules.declare(ctx, name)
    }
}
