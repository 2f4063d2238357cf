//! bext's embedded JavaScript.
//!
//! A JS app or a JS plugin runs in an [`IsolatePool`]: a few threads, each
//! owning one QuickJS isolate (its own heap, memory limit and per-call
//! deadline), fed from one bounded queue. A call that throws, runs out of
//! memory or time fails alone; an isolate that ran out of memory or time is
//! thrown away and rebuilt, with exponential backoff when that repeats.
//! Nothing in here can take the server down.
//! In [`Mode::Shared`] there are no threads per app: every such app's
//! isolates live on one pool of JS threads (`shared.rs`), apps taking turns.
//!
//! Web APIs come from `prelude.js` (Request, Response, Headers, URL,
//! URLSearchParams, TextEncoder/TextDecoder, atob/btoa, console, timers)
//! over a few Rust natives (`natives.rs`); loaded on first use from `web/`:
//! Web Crypto (`web/crypto.js` over `crypto/`), URLPattern
//! (`web/urlpattern.js` over `url_pattern.rs`) and the Streams API (the
//! vendored polyfill over `streams.rs`).
//! We evaluated AWS LLRT's `llrt_modules`, the ready-made option: it pins
//! rquickjs 0.11 (bext uses 0.14, the one with a working memory limit) and
//! is a beta that brings its own HTTP client and crypto stack; the prelude
//! is ~700 lines we control and test.

mod app_code;
mod backoff;
mod bindings;
mod bytecode;
mod crypto;
mod deferred;
mod fetch;
mod inline;
mod isolate;
mod modules;
mod multipart;
mod natives;
mod pool;
mod reply_stream;
mod request_body;
mod shared;
mod shared_check;
mod streams;
mod url_pattern;
mod web;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

pub use bindings::{Bindings, CacheStore, CachedResponse, KvError, KvKey, KvPage, KvQuery, KvStore, KvValue};
pub use deferred::{CheckStatus, DeferredPool, start_deferred_checks};
pub use fetch::{reaches_own_listener, set_own_listeners};
pub use pool::{IsolatePool, PoolStats};
pub use reply_stream::{CHUNKS_IN_FLIGHT, ReplyStream, StreamCut};
pub use request_body::{BodyFeed, BodyTap, RequestBody, request_body};
pub use shared::{SharedSettings, configure_shared};

/// What a pool's module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `export default { fetch(request, env, ctx) }`.
    App,
    /// Named exports `fetch`, `onRequest`, `onResponse`, `onInit`.
    Plugin,
}

/// Where an app's or plugin's isolates run (`mode = "threads" | "inline" |
/// "shared"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// On threads of their own (up to `workers` of them), fed by one
    /// queue: a handler that loops or blocks holds only its isolate. The
    /// threads start on the first call and stop after `idle_evict`.
    #[default]
    Threads,
    /// On the HTTP worker threads, one isolate per worker, with no hand-off
    /// between threads: the fastest, but JavaScript that runs without
    /// yielding holds up its worker's other requests for up to `cpu_limit`.
    Inline,
    /// On one pool of JS threads shared by every such app (one per core
    /// by default), each thread holding isolates of many apps: no thread
    /// per app. An app runs at most `workers` calls at once and never on
    /// every thread; apps with work take turns.
    Shared,
}

/// How much an app or plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Where the isolates run.
    pub mode: Mode,
    /// Isolates (threads) in the pool; [`Mode::Shared`]: calls of the app
    /// running at once on the shared threads.
    pub workers: usize,
    /// Heap limit of each isolate, in bytes.
    pub memory_limit: usize,
    /// Time a call may run, including the promises and timers it waits on.
    pub timeout: Duration,
    /// Calls an isolate serves before it is replaced (0: never).
    pub max_requests: u64,
    /// Calls that may wait for an isolate; more are refused at once. For
    /// [`Mode::Inline`]: calls one isolate may have pending at once.
    pub queue: usize,
    /// [`Mode::Inline`]: how long JavaScript may run before it yields (its
    /// call returns or awaits); past it the isolate is replaced.
    pub cpu_limit: Duration,
    /// [`Mode::Threads`] and [`Mode::Shared`]: an isolate that has served
    /// nothing for this long is dropped (with its thread in threads mode), and the app's next request starts it
    /// again, so thousands of mostly idle apps hold no memory (0: never).
    pub idle_evict: Duration,
    /// Outbound `fetch()`.
    pub fetch: FetchLimits,
}

/// Where and how much an app may `fetch()`. Nothing is allowed by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLimits {
    /// Hosts that may be fetched: names (`api.example.com`), `*.suffix`,
    /// `*` (any public host) or addresses (`127.0.0.1`), each with an
    /// optional `:port` (without one: only 80/443, so `localhost` is not
    /// every loopback port). Private and loopback addresses are reached
    /// only through a name or address listed here, never through `*`.
    pub allow: Vec<String>,
    /// Fetches in flight at once for the whole app; more fail at once.
    pub max_concurrent: usize,
    /// Largest response body a fetch may read.
    pub max_response_bytes: u64,
    /// Time one fetch may take, redirects and body included (the call's
    /// own `timeout` still bounds it).
    pub timeout: Duration,
}

impl FetchLimits {
    /// No host allowed; 16 in flight, 10 MiB, 30 s.
    pub const DEFAULT: FetchLimits = FetchLimits {
        allow: Vec::new(),
        max_concurrent: 16,
        max_response_bytes: 10 << 20,
        timeout: Duration::from_secs(30),
    };
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits::DEFAULT
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mode: Mode::Threads,
            workers: 2,
            memory_limit: 64 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_requests: 0,
            queue: 256,
            cpu_limit: Duration::from_millis(100),
            idle_evict: Duration::ZERO,
            fetch: FetchLimits::DEFAULT,
        }
    }
}

/// Everything needed to start a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Who this is in logs: `app shop`, `plugin js-hello`.
    pub name: String,
    /// The module to load. Its real directory (symlinks followed) is the
    /// root no module, entry or import, may be loaded from outside of.
    pub entry: PathBuf,
    /// App or plugin.
    pub kind: Kind,
    /// Apps: the `env` argument of `fetch`.
    pub env: BTreeMap<String, String>,
    /// Plugins: the argument of `onInit`.
    pub config: serde_json::Value,
    /// Resource limits.
    pub limits: Limits,
    /// Apps: KV namespaces in `env` and `caches.default`.
    pub bindings: Bindings,
}

/// Which hooks a plugin module exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// `fetch(request, ctx)`, the pre-pipeline stage.
    pub fetch: bool,
    /// `onRequest(request, ctx)`.
    pub on_request: bool,
    /// `onResponse(response, ctx)`.
    pub on_response: bool,
    /// `onInit(config)`.
    pub on_init: bool,
}

/// The request context a plugin sees as `ctx`.
#[derive(Debug, Clone, Default)]
pub struct PluginCtx {
    /// The app chosen so far.
    pub app: Option<String>,
    /// The tenant chosen so far.
    pub tenant: Option<String>,
    /// The mount path prefix.
    pub base: String,
    /// The request id.
    pub request_id: String,
    /// The client's address (`ctx.clientIp`), as the kernel settled it:
    /// behind trusted proxies the one they report, IPv4-mapped as IPv4.
    pub client_ip: String,
    /// String values plugins share for this request (`ctx.vars`).
    pub vars: HashMap<String, String>,
}

/// Which request hook to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestHook {
    /// `fetch(request, ctx)`.
    Fetch,
    /// `onRequest(request, ctx)`.
    OnRequest,
}

/// One unit of work for an isolate.
#[derive(Debug)]
pub enum Call {
    /// An app's `fetch(request, env, ctx)`.
    App {
        /// Request method.
        method: Method,
        /// Absolute URL.
        url: String,
        /// Request headers.
        headers: HeaderMap,
        /// The request body: whole, or still arriving (the handler is
        /// called as soon as the head is in).
        body: RequestBody,
    },
    /// A plugin's `fetch` or `onRequest`.
    Request {
        /// Which one.
        hook: RequestHook,
        /// Request method.
        method: Method,
        /// Absolute URL.
        url: String,
        /// Request headers (the plugin may change them).
        headers: HeaderMap,
        /// The request body, read up to the plugin's `max_body_bytes`
        /// (empty: none, or the plugin does not read bodies). The plugin
        /// reads a copy: the app still gets the body as sent.
        body: Bytes,
        /// Context values (the plugin may change app and tenant).
        ctx: PluginCtx,
    },
    /// A plugin's `onResponse`.
    Response {
        /// Response status.
        status: u16,
        /// Response headers (the plugin may change them).
        headers: HeaderMap,
        /// Context values.
        ctx: PluginCtx,
    },
}

/// A complete response produced in JavaScript.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, collected.
    pub body: Bytes,
    /// A body the app streams (`new Response(readableStream)`); `body`
    /// is then empty. The isolate stays with the stream until it ends,
    /// the client leaves, or the call's `timeout`.
    pub stream: Option<ReplyStream>,
}

/// What a call produced.
#[derive(Debug)]
pub enum Answer {
    /// Send this response (an app's answer, or a plugin answering early).
    Respond(Reply),
    /// Request hook: go on, with these header edits and context values.
    Continue {
        /// What the hook did to the request's headers, in order.
        edits: Vec<HeaderEdit>,
        /// `ctx.app` after the hook.
        app: Option<String>,
        /// `ctx.tenant` after the hook.
        tenant: Option<String>,
        /// `ctx.vars` after the hook.
        vars: HashMap<String, String>,
    },
    /// Response hook: keep the response, with these header edits.
    KeepResponse {
        /// What the hook did to the response's headers, in order.
        edits: Vec<HeaderEdit>,
    },
}

/// One change a hook made to a message's headers. Hooks report edits, not
/// whole header sets, so an untouched message costs nothing to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// `headers.set(name, value)`.
    Set(HeaderName, HeaderValue),
    /// `headers.append(name, value)`.
    Append(HeaderName, HeaderValue),
    /// `headers.delete(name)`.
    Remove(HeaderName),
}

impl HeaderEdit {
    /// Applies `edits` in order.
    pub fn apply(edits: Vec<HeaderEdit>, headers: &mut HeaderMap) {
        for edit in edits {
            match edit {
                HeaderEdit::Set(n, v) => {
                    headers.insert(n, v);
                }
                HeaderEdit::Append(n, v) => {
                    headers.append(n, v);
                }
                HeaderEdit::Remove(n) => {
                    headers.remove(n);
                }
            }
        }
    }
}

/// Why a call or a pool failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JsError {
    /// The module could not be loaded, evaluated or initialised.
    #[error("{0}")]
    Load(String),
    /// User code threw.
    #[error("{0}")]
    Exception(String),
    /// The isolate reached its memory limit: the message names the key
    /// that sets it, the one thing the app's owner can change.
    #[error(
        "out of memory: the isolate ran out of its memory limit (an app's `isolate.memory_limit`, a JS plugin's `limits.memory_limit`): raise it or keep less in the heap"
    )]
    OutOfMemory,
    /// The call ran past its time limit.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The queue is full.
    #[error("too many requests waiting for an isolate")]
    Overloaded,
    /// The pool is shutting down.
    #[error("the isolate pool is shut down")]
    Closed,
    /// User code answered with something that is not a valid HTTP message.
    #[error("invalid answer: {0}")]
    BadAnswer(String),
    /// The engine panicked (caught): the isolate is in no known state, so it
    /// is rebuilt as after a limit.
    #[error("internal error in the JavaScript engine")]
    Crashed,
}

impl JsError {
    /// Whether the isolate must be rebuilt after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, JsError::OutOfMemory | JsError::Timeout(_) | JsError::Crashed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolate_is_rebuilt_after_a_limit_or_a_caught_panic_only() {
        for fatal in [
            JsError::OutOfMemory,
            JsError::Timeout(Duration::from_secs(1)),
            JsError::Crashed,
        ] {
            assert!(fatal.is_fatal(), "{fatal}");
        }
        for kept in [
            JsError::Exception("threw".into()),
            JsError::BadAnswer("not an array".into()),
            JsError::Overloaded,
        ] {
            assert!(!kept.is_fatal(), "{kept}");
        }
    }
}
