//! The `js` runtime: an app module's `fetch(request, env, ctx)` in a pool
//! of QuickJS isolates.

use bext_js::{
    Answer, BodyFeed, Call, CheckStatus, DeferredPool, IsolatePool, JsError, Kind, Reply, RequestBody, Spec,
};
use bext_plugin_abi::{Body, Ctx, Request, Response};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderValue, RETRY_AFTER, TRANSFER_ENCODING};
use http::{StatusCode, uri::PathAndQuery};

use crate::apps::{add_kernel_headers, plain};
use crate::config::platform::AppConfig;

/// A JavaScript app.
pub struct JsApp {
    id: String,
    pool: Pool,
    entry: std::path::PathBuf,
    loaded: Option<Stamp>,
    /// `isolate.stream_request_body`: the handler starts before the body
    /// is in.
    streams_body: bool,
}

/// An app's isolates: checked when built, or (the first start of
/// `bext serve`) checked in the background or by the first request.
enum Pool {
    Checked(IsolatePool),
    Deferred(DeferredPool),
}

/// Size and modification time of a module file: a changed file means a
/// reload starts new isolates even when the configuration is the same.
pub(crate) type Stamp = (u64, std::time::SystemTime);

/// Refuses an entry whose real path (symlinks followed) is outside the
/// app's real source directory: `entry = "../x.js"`, or an `index.js`
/// that links out. The isolate then keeps every import inside the
/// entry's own real directory.
fn confined(source: &std::path::Path, entry: &std::path::Path) -> Result<(), String> {
    let real = |p: &std::path::Path| p.canonicalize().map_err(|e| format!("{}: {e}", p.display()));
    let (source, real_entry) = (real(source)?, real(entry)?);
    if real_entry.starts_with(&source) {
        Ok(())
    } else {
        Err(format!(
            "{}: refused: {} is outside the app's directory {}",
            entry.display(),
            real_entry.display(),
            source.display()
        ))
    }
}

/// The stamp of `path` now.
pub(crate) fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl JsApp {
    /// Loads the app's module into its isolates; a module that does not
    /// load is an error here, before the app takes traffic. With
    /// `sources.defer_checks` the module is checked later (see
    /// [`DeferredPool`]); a failure then answers 503 and shows in health.
    pub fn start(id: &str, cfg: &AppConfig, sources: super::bindings::Sources<'_>) -> Result<JsApp, String> {
        let defer = sources.defer_checks;
        let entry = cfg.js_entry().ok_or("a js app needs `source`")?;
        confined(cfg.source.as_deref().unwrap_or(&entry), &entry)?;
        let spec = Spec {
            name: format!("app {id}"),
            entry,
            kind: Kind::App,
            env: super::bindings::env_with_secrets(cfg)?,
            config: serde_json::Value::Null,
            limits: cfg.isolate.limits(crate::config::isolate::IsolateConfig::APP),
            bindings: super::bindings::for_app(id, cfg, sources)?,
        };
        let loaded = stamp(&spec.entry);
        let entry = spec.entry.clone();
        let pool = if defer {
            Pool::Deferred(DeferredPool::queue(spec))
        } else {
            Pool::Checked(IsolatePool::start(spec).map_err(|e| e.to_string())?)
        };
        Ok(JsApp {
            id: id.to_owned(),
            pool,
            entry,
            loaded,
            streams_body: cfg.isolate.stream_request_body.unwrap_or(false),
        })
    }

    /// Its isolate pool's state, for `/__bext/metrics`.
    pub fn pool_stats(&self) -> Option<bext_js::PoolStats> {
        match &self.pool {
            Pool::Checked(p) => p.stats(),
            Pool::Deferred(d) => d.ready()?.stats(),
        }
    }

    /// Whether its module passed its check (`Pending` while a deferred
    /// check has not run), for `/__bext/health`.
    pub fn check_status(&self) -> CheckStatus {
        match &self.pool {
            Pool::Checked(_) => CheckStatus::Passed,
            Pool::Deferred(d) => d.status(),
        }
    }

    /// Whether the module on disk is still the one loaded, and checked: a
    /// reload builds an app whose deferred check failed or has not run
    /// yet again, and checks it before it swaps (reloads stay strict).
    pub fn is_current(&self) -> bool {
        stamp(&self.entry) == self.loaded && self.check_status() == CheckStatus::Passed
    }

    /// Hands the request to an isolate with its body read whole, or (with
    /// `stream_request_body`) as soon as its head is in, the body
    /// following as it arrives (whole when it is already: none, or read
    /// by a plugin).
    pub async fn serve(&self, req: Request, cx: &Ctx) -> Response {
        let (mut parts, body) = req.into_parts();
        let (body, feed) = match body.full_bytes() {
            Some(bytes) => (RequestBody::Whole(bytes), None),
            None if !self.streams_body => match http_body_util::BodyExt::collect(body).await {
                Ok(b) => (RequestBody::Whole(b.to_bytes()), None),
                Err(e) => return super::body_read_failed(&e),
            },
            None => {
                let (feed, arriving) = bext_js::request_body();
                (arriving, Some((feed, body)))
            }
        };
        let url = request_url(&parts.uri, &parts.headers, cx);
        // The app sees one host: its URL's (lower case, no trailing dot,
        // the port the client named unless the scheme's default), which is
        // what the cache keys on, not the client's own spelling of it.
        if cx.host.is_some()
            && let Some(authority) = url.split_once("://").and_then(|(_, rest)| rest.split('/').next())
            && let Ok(h) = HeaderValue::from_str(authority)
        {
            parts.headers.insert(HOST, h);
        }
        add_kernel_headers(&mut parts.headers, cx);
        super::forwarded::vouch(&mut parts.headers, cx);
        let call = Call::App {
            method: parts.method,
            url,
            headers: parts.headers,
            body,
        };
        let pool = match &self.pool {
            Pool::Checked(p) => p,
            Pool::Deferred(d) => match d.pool().await {
                Ok(p) => p,
                Err(_) => return not_loaded(&self.id),
            },
        };
        let answer = match feed {
            None => pool.call(call).await,
            Some((feed, body)) => match call_feeding(pool, call, feed, body).await {
                Ok(answer) => answer,
                Err(refused) => return refused,
            },
        };
        match answer {
            Ok(Answer::Respond(reply)) => response(reply),
            Ok(other) => {
                tracing::error!(app = %self.id, request_id = %cx.request_id, "unexpected answer from the isolate: {other:?}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
            Err(e) => failure(&self.id, &e, cx),
        }
    }
}

/// Runs `call` while `body` is fed to it. A body the kernel cuts off (over
/// `max_body_bytes`, too slow, malformed, the client gone) before the
/// answer is answered with its status (413, 408, 400) at once; the
/// handler's read of it fails too. A streamed answer may still read the
/// body: feeding goes on beside it until the isolate lets go of it.
async fn call_feeding(
    pool: &IsolatePool,
    call: Call,
    feed: BodyFeed,
    body: Body,
) -> Result<Result<Answer, JsError>, Response> {
    let mut feeding = Box::pin(feed.pump(body));
    // One turn of the worker first, for the connection to hand over what
    // it already holds of the body (all of a small POST's, usually): the
    // isolate then takes it whole, with no stream to feed (inline, the
    // call would otherwise start before the connection has run).
    let early = tokio::select! {
        biased;
        fed = &mut feeding => Some(fed),
        () = tokio::task::yield_now() => None,
    };
    match early {
        Some(Ok(())) => return Ok(pool.call(call).await),
        Some(Err(e)) => return Err(super::body_read_failed(&e)),
        None => {}
    }
    let answer = pool.call(call);
    tokio::pin!(answer);
    tokio::select! {
        answer = &mut answer => {
            if matches!(&answer, Ok(Answer::Respond(Reply { stream: Some(_), .. }))) {
                tokio::spawn(async move {
                    let _ = feeding.await;
                });
            }
            Ok(answer)
        }
        fed = &mut feeding => match fed {
            Ok(()) => Ok(answer.await),
            Err(e) => Err(super::body_read_failed(&e)),
        },
    }
}

/// The absolute URL JavaScript sees as `request.url`: the scheme the
/// client used, the request's host and port (the port the client named,
/// unless it is the scheme's default), and its path and query.
pub(crate) fn request_url(uri: &http::Uri, headers: &http::HeaderMap, cx: &Ctx) -> String {
    let host = cx.host.as_deref().unwrap_or("localhost");
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let (scheme, default_port) = if cx.ext.get::<super::OverTls>().is_some() {
        ("https", 443)
    } else {
        ("http", 80)
    };
    let port = bext_plugin_abi::requested_port(uri, headers).and_then(|p| p.parse::<u16>().ok());
    match port.filter(|p| *p != default_port) {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}

/// A response made in JavaScript. Framing is bext's: a `content-length`,
/// `transfer-encoding` or `connection` header set by JS could contradict
/// the body actually sent, so they are dropped and hyper sets its own.
pub(crate) fn response(reply: Reply) -> Response {
    let mut headers = reply.headers;
    // One look at each of the few names JS set (a text answer has one)
    // rather than three hashed removals on every answer.
    let framing = |n: &http::HeaderName| n == CONTENT_LENGTH || n == TRANSFER_ENCODING || n == CONNECTION;
    if headers.keys().any(framing) {
        for name in [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION] {
            headers.remove(name);
        }
    }
    let body = match reply.stream {
        Some(stream) => Body::stream(stream),
        None => Body::full(reply.body),
    };
    let mut res = Response::new(body);
    *res.status_mut() = reply.status;
    *res.headers_mut() = headers;
    res
}

/// The answer of an app whose deferred check failed: 503 naming the app.
/// The reason (file paths, source lines) stays with the operator: the
/// check logged it, and `/__bext/health` shows it.
fn not_loaded(app: &str) -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("app {app} did not load (the reason is in the server's log)\n"),
    )
}

/// The status a failed call is answered with, and its log line.
pub(crate) fn failure(app: &str, e: &JsError, cx: &Ctx) -> Response {
    match e {
        JsError::Overloaded => {
            tracing::warn!(app, request_id = %cx.request_id, error = %e, "js app refused a request");
            let mut res = plain(StatusCode::SERVICE_UNAVAILABLE, "too busy, try again\n");
            res.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
        JsError::Timeout(_) => {
            tracing::error!(app, request_id = %cx.request_id, error = %e, "js app failed");
            plain(StatusCode::GATEWAY_TIMEOUT, "the app took too long\n")
        }
        _ => {
            tracing::error!(app, request_id = %cx.request_id, error = %e, "js app failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}
