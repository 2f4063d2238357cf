//! hyper's entry point: what the server settles in a request before the
//! pipeline sees it (the host, admit's checks, the body's limits), then
//! [`pipeline::run::route`], then the response with its completion.

use std::convert::Infallible;
use std::sync::Arc;

use bext_plugin_abi::{Body, Ctx, Request};
use http::StatusCode;
use http::header::CONTENT_LENGTH;
use http_body::Body as _;
use hyper::body::Incoming;

use super::ConnInfo;
use super::admit::{Rules, admit};
use super::body::LimitedBody;
use super::finish::{Finish, ResponseBody, into_mapped};
use super::host::request_host;
use crate::Kernel;
use crate::apps::{KeptFields, plain};
use crate::pipeline::run::{AfterResponse, route};

/// Serves one request hyper read: never fails; every error is a response.
pub async fn handle(
    kernel: Arc<Kernel>,
    conn: Arc<ConnInfo>,
    req: http::Request<Incoming>,
) -> Result<http::Response<ResponseBody>, Infallible> {
    let (parts, incoming) = req.into_parts();
    let head = parts.method == http::Method::HEAD;
    let res = into_mapped(handle_parts(kernel, conn, parts, Arrived::Hyper(incoming)).await);
    Ok(if head { headless(res) } else { res })
}

/// A HEAD request's answer as hyper writes it: the head a GET would get,
/// its body's length when known, and no body. hyper drops a HEAD answer's
/// body over HTTP/1.1 but sends it over HTTP/2, where its DATA frames are
/// a protocol error for the client (an app's or a plugin's answer, a 404:
/// whatever did not build a bodiless HEAD answer itself).
fn headless(res: http::Response<ResponseBody>) -> http::Response<ResponseBody> {
    let (mut parts, mut body) = res.into_parts();
    let bodiless = parts.status.is_informational()
        || matches!(
            parts.status,
            http::StatusCode::NO_CONTENT | http::StatusCode::NOT_MODIFIED
        );
    if !bodiless
        && !parts.headers.contains_key(http::header::CONTENT_LENGTH)
        && let Some(n) = http_body::Body::size_hint(&body).exact()
    {
        parts.headers.insert(http::header::CONTENT_LENGTH, n.into());
    }
    body.drop_data();
    http::Response::from_parts(parts, body)
}

/// A request's body as the server read it.
pub(super) enum Arrived {
    /// None: the HTTP/1.1 fast path's bodiless requests.
    Nothing,
    /// Whole, read by the fast path within its `Content-Length`.
    Whole(bytes::Bytes),
    /// To stream from hyper, which then writes the response (from a map).
    Hyper(Incoming),
}

/// Serves one request from its head and body, the same way whoever read
/// it. An `async` block rather than an `async fn`: an `async fn` keeps a
/// second copy of its arguments in its state (the head's 224 bytes and
/// the body's among them), and the HTTP/1 fast path moves the whole state
/// into its box once a request.
#[allow(clippy::manual_async_fn)]
pub(super) fn handle_parts(
    kernel: Arc<Kernel>,
    conn: Arc<ConnInfo>,
    mut parts: http::request::Parts,
    body: Arrived,
) -> impl Future<Output = http::Response<ResponseBody>> {
    async move {
        let pipeline = kernel.pipeline.load_full();
        let in_flight = conn.request_started(parts.version);
        let mut cx = Ctx::new(kernel.next_request_id(), conn.peer);
        if conn.tls {
            cx.ext.insert(crate::apps::OverTls);
            cx.ext.insert(bext_plugin_abi::ArrivedOverTls);
        }
        // bext's HTTP/1 writer copies an upstream's answer fields as they
        // came; hyper's writes a map.
        let mut kept = KeptFields::new(!matches!(body, Arrived::Hyper(_)));
        let mut finish = Finish::new(pipeline.access_log.clone(), in_flight, &parts);
        // A head refused before admit's pass over its names: the client's
        // span is looked up (rare; admitted heads say whether they have one).
        let refuse = |mut finish: Finish, status: StatusCode, reason: String, cx: Ctx, headers: &http::HeaderMap| {
            finish.client_span(headers);
            let record = pipeline.record(None, None);
            finish.done(plain(status, reason), AfterResponse::default(), record, cx)
        };

        cx.host = match request_host(parts.version, &parts.uri, &parts.headers) {
            Ok(h) => h,
            Err(e) => {
                return refuse(finish, StatusCode::BAD_REQUEST, format!("{e}\n"), cx, &parts.headers);
            }
        };
        if let Some(sni) = &conn.sni {
            match &cx.host {
                // HTTP/1.0 without a Host: the name the handshake was for.
                None => cx.host = Some(sni.clone()),
                Some(host) if !kernel.same_certificate(host, sni) => {
                    return refuse(
                        finish,
                        StatusCode::MISDIRECTED_REQUEST,
                        format!("this connection was opened for {sni}, not {host}; open one for {host}\n"),
                        cx,
                        &parts.headers,
                    );
                }
                Some(_) => {}
            }
        }
        let limits = &kernel.limits;
        let settings = &pipeline.platform.settings;
        let rules = Rules {
            limits,
            slashes: settings.encoded_slashes,
            underscores_in_headers: settings.underscores_in_headers,
            owned: &pipeline.owned_headers,
        };
        match admit(&mut parts, rules) {
            Ok(admitted) => {
                // Its owned headers removed: no client copy is left for a
                // plugin to look for (see `Ctx::headers_as_admitted`).
                cx.note_headers_as_admitted(true);
                if admitted.traceparent {
                    finish.client_span(&parts.headers);
                }
            }
            Err(refusal) => {
                return refuse(
                    finish,
                    refusal.status,
                    format!("{}\n", refusal.reason),
                    cx,
                    &parts.headers,
                );
            }
        }
        // With an exporter, the trace is continued or started now (whether it
        // is sampled decides which hooks' spans are kept). Otherwise the
        // request's trace is read the first time something needs it: an app
        // with an upstream (`Runtime::serve`) or the access log's trace id.
        if let Some(otel) = pipeline.otel.as_ref()
            && cx.trace_or_read(&parts.headers, otel.sample()).sampled
        {
            cx.ext.insert(crate::trace::HookSpans::default());
            finish.export_to(otel.clone());
        }
        // ACME's HTTP-01 validations, on the plain listener before any plugin
        // (and before `https_redirect`): the ACME server must reach them.
        if !conn.tls
            && !conn.admin
            && let Some(acme) = kernel.acme.get()
            && let Some(answer) = acme.http01(parts.uri.path())
            && matches!(parts.method, http::Method::GET | http::Method::HEAD)
        {
            let mut res = plain(StatusCode::OK, bytes::Bytes::copy_from_slice(answer.as_bytes()));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            let record = pipeline.record(None, None);
            return finish.done(res, AfterResponse::default(), record, cx);
        }

        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return refuse(
                finish,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n".into(),
                cx,
                &parts.headers,
            );
        }
        let body = match body {
            Arrived::Hyper(incoming) if !incoming.is_end_stream() => {
                let limited = LimitedBody::new(
                    incoming,
                    limits.max_body_bytes,
                    limits.body_read_timeout,
                    limits.body_total_timeout,
                );
                if settings.metrics.enabled {
                    Body::stream(limited.counting(finish.count_body()))
                } else {
                    Body::stream(limited)
                }
            }
            Arrived::Whole(bytes) => {
                if settings.metrics.enabled {
                    finish
                        .count_body()
                        .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Body::full(bytes)
            }
            Arrived::Hyper(_) | Arrived::Nothing => Body::empty(),
        };
        let mut req = Request::from_parts(parts, body);

        let routed = route(&kernel, &pipeline, conn.admin, &mut req, &mut cx, &mut kept).await;
        let mut res = finish.done(routed.response, routed.after, routed.record, cx);
        res.body_mut().fields = kept.take();
        res
    }
}
