//! The response body hyper writes, which runs `on_complete`, the access
//! log and the request's metrics once the last byte is handed over (or the
//! client goes away).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bext_plugin_abi::{Body, CacheStatus, Completion, Ctx, EncodedHeaders, Response};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::InFlight;
use crate::access_log::{Head, Record as LogRecord, Sink, TraceId};
use crate::config::platform::AccessLogFormat;
use crate::metrics::{Record, method_index};
use crate::pipeline::run::AfterResponse;

/// What is needed after the response: who to tell, and what to log.
pub struct Finish {
    /// Dropped last: marks the request done on its connection.
    in_flight: InFlight,
    after: AfterResponse,
    log: Sink,
    method: Method,
    /// The path, for the error log's `bext::access` line.
    path: Box<str>,
    /// The head, for a dedicated access log.
    line: Option<Head>,
    /// The client's span, for the trace id a dedicated access log writes
    /// when nothing read the request's trace while its headers were there.
    parent: Option<bext_plugin_abi::trace::Parent>,
    record: Record,
    /// The request body's bytes read, when it has one and metrics count.
    read: Option<Arc<AtomicU64>>,
    /// Where the request's spans go, when it is sampled.
    otel: Option<Arc<crate::trace::Otel>>,
}

impl Finish {
    /// Begins tracking a request.
    pub fn new(log: Sink, in_flight: InFlight, parts: &http::request::Parts) -> Self {
        Finish {
            in_flight,
            after: AfterResponse::default(),
            path: if matches!(log, Sink::ErrorLog) {
                parts.uri.path().into()
            } else {
                Box::default()
            },
            line: match &log {
                Sink::Dedicated(l) => Some(Head::new(l.format(), parts)),
                _ => None,
            },
            // Set by `client_span` once the head is admitted, when it
            // has a `traceparent`.
            parent: None,
            otel: None,
            log,
            method: parts.method.clone(),
            record: Record::default(),
            read: None,
        }
    }

    /// Keeps the client's span (its only valid `traceparent`) for the
    /// trace id of a JSON access log line, should nothing else read the
    /// request's trace. Called only for a head that has a `traceparent`
    /// (or was refused before anything looked): the lookup hashes the
    /// name, and most requests have none.
    pub fn client_span(&mut self, headers: &http::HeaderMap) {
        if self.log.is_json() {
            self.parent = bext_plugin_abi::trace::Parent::of(headers);
        }
    }

    /// Where the request body's reader adds the bytes it read, counted
    /// for the app when the response ends.
    pub fn count_body(&mut self) -> Arc<AtomicU64> {
        self.read.get_or_insert_with(Arc::default).clone()
    }

    /// Exports the request's span (and its hooks') when it ends.
    pub fn export_to(&mut self, otel: Arc<crate::trace::Otel>) {
        self.otel = Some(otel);
    }

    /// Wraps the response so that `after` (and the access log and
    /// `record`'s counters) run once it is written.
    pub fn done(
        self,
        res: Response,
        after: AfterResponse,
        record: Record,
        mut cx: Ctx,
    ) -> http::Response<ResponseBody> {
        let encoded = std::mem::take(&mut cx.encoded_headers);
        let status = res.status();
        let (parts, body) = res.into_parts();
        let end = if self.log.is_on() || !after.is_empty() || self.otel.is_some() {
            let finish = Finish { after, record, ..self };
            End::Tell(Box::new(State { finish, status, cx }))
        } else {
            // Nobody to tell: the context goes now, and the end only
            // counts the request and marks it done (no box; no clock read
            // when metrics are off).
            End::Quiet {
                head: self.method == Method::HEAD,
                method: method_index(&self.method),
                status: status.as_u16(),
                received_at: cx.received_at,
                record,
                read: self.read,
                _in_flight: self.in_flight,
            }
        };
        http::Response::from_parts(
            parts,
            ResponseBody {
                inner: body,
                bytes: 0,
                end,
                encoded,
            },
        )
    }
}

struct State {
    finish: Finish,
    status: StatusCode,
    cx: Ctx,
}

impl State {
    fn complete(self, bytes: u64, aborted: bool) {
        let State {
            finish: f,
            status,
            mut cx,
        } = self;
        // From the request's arrival, as plugins see it (`cx.received_at`).
        let duration = cx.received_at.elapsed();
        let read = f.read.as_ref().map_or(0, |r| r.load(Ordering::Relaxed));
        f.record
            .finish(method_index(&f.method), status.as_u16(), duration, bytes, read);
        if let Some(otel) = &f.otel {
            export_spans(otel, &f.method, status, bytes, duration, aborted, &mut cx);
        }
        if !f.after.is_empty() {
            let done = Completion {
                status,
                body_bytes: bytes,
                duration,
                aborted,
            };
            f.after.run(&cx, &done);
        }
        // Last: the record takes what it can from the context.
        match f.log {
            Sink::Off => {}
            Sink::ErrorLog => tracing::info!(
                target: "bext::access",
                method = %f.method,
                host = cx.host.as_deref().unwrap_or("-"),
                path = %f.path,
                status = status.as_u16(),
                app = cx.app().unwrap_or("-"),
                tenant = cx.tenant().unwrap_or("-"),
                bytes,
                duration_us = duration.as_micros() as u64,
                aborted,
                request_id = %cx.request_id,
            ),
            Sink::Dedicated(log) => {
                if let Some(head) = f.line {
                    // Drawn by the log's thread when nothing read it.
                    let trace_id = match cx.trace() {
                        Some(t) => TraceId::Known(t.trace_id),
                        None => TraceId::Unread(f.parent),
                    };
                    // Combined lines carry none of these: no lookups.
                    let json = matches!(log.format(), AccessLogFormat::Json);
                    let [app, tenant, version] = if json { cx.names() } else { Default::default() };
                    log.push(LogRecord {
                        head,
                        method: f.method,
                        received_at: cx.received_at,
                        client: cx.client_ip,
                        host: cx.host.take(),
                        status: status.as_u16(),
                        bytes,
                        duration,
                        upstream: if json {
                            cx.ext.get::<crate::apps::UpstreamTime>().map(|u| u.0)
                        } else {
                            None
                        },
                        app,
                        tenant,
                        version,
                        // The cache plugin's decision, as it wrote `x-cache`.
                        cache: cx.cache_status.filter(|_| json).map(CacheStatus::as_str),
                        // Most requests have no vars: no hashing then.
                        waf: if !json || cx.vars.is_empty() {
                            None
                        } else {
                            cx.vars.remove("waf")
                        },
                        request_id: cx.request_id.0,
                        trace_id,
                        aborted,
                    });
                }
            }
        }
    }
}

/// The request's span (kind server) and its hooks' (children of it).
fn export_spans(
    otel: &crate::trace::Otel,
    method: &Method,
    status: StatusCode,
    bytes: u64,
    duration: std::time::Duration,
    aborted: bool,
    cx: &mut Ctx,
) {
    use crate::trace::{Attr, HookSpans, Span, random_span};
    let Some(trace) = cx.trace().copied() else {
        return;
    };
    let end = std::time::SystemTime::now();
    let start = end.checked_sub(duration).unwrap_or(end);
    let mut attributes = vec![
        ("http.request.method", Attr::Str(method.as_str().into())),
        ("http.response.status_code", Attr::Int(i64::from(status.as_u16()))),
        (
            "http.response.body.size",
            Attr::Int(i64::try_from(bytes).unwrap_or(i64::MAX)),
        ),
        ("bext.request_id", Attr::Str(cx.request_id.to_string().into())),
    ];
    for (key, value) in [
        ("server.address", cx.host.as_deref()),
        ("bext.app", cx.app()),
        ("bext.tenant", cx.tenant()),
        ("bext.version", cx.version()),
    ] {
        if let Some(v) = value {
            attributes.push((key, Attr::Str(v.into())));
        }
    }
    if aborted {
        attributes.push(("bext.aborted", Attr::Int(1)));
    }
    let name = match cx.app() {
        Some(app) => format!("{method} {app}"),
        None => method.to_string(),
    };
    otel.record(Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.parent,
        name: name.into(),
        kind: 2,
        start,
        end,
        attributes,
        error: status.is_server_error(),
    });
    for hook in cx.ext.remove::<HookSpans>().map(|h| h.0).unwrap_or_default() {
        otel.record(Span {
            trace_id: trace.trace_id,
            span_id: random_span(),
            parent: Some(trace.span_id),
            name: format!("{} {}", hook.plugin, hook.hook).into(),
            kind: 1,
            start: hook.start,
            end: hook.end,
            attributes: vec![
                ("bext.plugin", Attr::Str(hook.plugin.as_ref().into())),
                ("bext.hook", Attr::Str(hook.hook.into())),
            ],
            error: hook.failed,
        });
    }
}

/// What happens when a response ends.
enum End {
    /// `on_complete` hooks or the access log run.
    Tell(Box<State>),
    /// The request is counted, and the connection learns it is done
    /// (when this drops).
    Quiet {
        _in_flight: InFlight,
        head: bool,
        method: u8,
        status: u16,
        received_at: std::time::Instant,
        /// Taken once counted.
        record: Record,
        read: Option<Arc<AtomicU64>>,
    },
    /// Done already.
    Done,
}

/// A response whose added headers are all in its map: what hyper writes
/// (HTTP/2, and HTTP/1 off the fast path).
pub fn into_mapped(res: http::Response<ResponseBody>) -> http::Response<ResponseBody> {
    let (mut parts, mut body) = res.into_parts();
    body.encoded.move_into(&mut parts.headers);
    http::Response::from_parts(parts, body)
}

/// The body hyper writes for every response.
pub struct ResponseBody {
    inner: Body,
    bytes: u64,
    end: End,
    /// Headers the plugins added next to the response's map: bext's
    /// HTTP/1 writer copies them as they are; [`into_mapped`] moves them
    /// into the map for every other writer.
    encoded: EncodedHeaders,
}

impl ResponseBody {
    /// The headers to write after the map's, taken (the body keeps none).
    pub(super) fn take_encoded(&mut self) -> EncodedHeaders {
        std::mem::take(&mut self.encoded)
    }

    fn finish(&mut self, aborted: bool) {
        match &mut self.end {
            End::Quiet {
                method,
                status,
                received_at,
                record,
                read,
                ..
            } => {
                if !record.is_off() {
                    let read = read.as_ref().map_or(0, |r| r.load(Ordering::Relaxed));
                    std::mem::take(record).finish(*method, *status, received_at.elapsed(), self.bytes, read);
                }
            }
            End::Tell(_) => {
                if let End::Tell(state) = std::mem::replace(&mut self.end, End::Done) {
                    state.complete(self.bytes, aborted);
                }
            }
            End::Done => {}
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = bext_plugin_abi::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
            }
            Poll::Ready(None) => this.finish(false),
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // HEAD answers and empty bodies are never polled: not an abort.
        let head = match &self.end {
            End::Tell(s) => s.finish.method == Method::HEAD,
            End::Quiet { head, .. } => *head,
            End::Done => true,
        };
        let aborted = !self.inner.is_end_stream() && !head;
        self.finish(aborted);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bext_plugin_abi::{Hooks, Plugin, RequestId};
    use http_body_util::BodyExt;

    use super::*;
    use crate::config::manifest::FailMode;
    use crate::pipeline::{Chain, Slot};
    use crate::server::ConnInfo;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u16, u64, bool)>>);

    impl Plugin for Recorder {
        fn hooks(&self) -> Hooks {
            Hooks::COMPLETE
        }
        fn on_complete(&self, _cx: &Ctx, done: &Completion) {
            self.0
                .lock()
                .unwrap()
                .push((done.status.as_u16(), done.body_bytes, done.aborted));
        }
    }

    fn response(recorder: &Arc<Recorder>, body: &'static str) -> http::Response<ResponseBody> {
        let conn = Arc::new(ConnInfo::for_tests());
        let parts = http::Request::new(()).into_parts().0;
        let finish = Finish::new(Sink::Off, conn.request_started(http::Version::HTTP_11), &parts);
        let plugin: Arc<dyn Plugin> = recorder.clone();
        let after = AfterResponse::of(&Arc::new(Chain::new(
            vec![Slot {
                name: "recorder".into(),
                hooks: plugin.hooks(),
                plugin,
                priority: 0,
                on_error: FailMode::Closed,
            }]
            .into(),
        )));
        let cx = Ctx::new(RequestId(7), "127.0.0.1:1".parse().unwrap());
        finish.done(Response::new(Body::from(body)), after, Record::default(), cx)
    }

    #[tokio::test]
    async fn on_complete_runs_once_after_the_last_byte() {
        let recorder = Arc::new(Recorder::default());
        let res = response(&recorder, "hello");
        assert!(recorder.0.lock().unwrap().is_empty(), "ran before the body was written");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        assert_eq!(*recorder.0.lock().unwrap(), [(200, 5, false)]);
    }

    #[tokio::test]
    async fn a_response_is_counted_once_with_its_bytes_whichever_way_it_ends() {
        let counters = Arc::new(crate::metrics::AppCounters::default());
        let quiet = |method: &str, body: &'static str| {
            let conn = Arc::new(ConnInfo::for_tests());
            let req = http::Request::builder().method(method).body(()).unwrap();
            let finish = Finish::new(
                Sink::Off,
                conn.request_started(http::Version::HTTP_11),
                &req.into_parts().0,
            );
            let record = Record {
                app: Some(counters.clone()),
                tenant: None,
            };
            let cx = Ctx::new(RequestId(7), "127.0.0.1:1".parse().unwrap());
            finish.done(Response::new(Body::from(body)), AfterResponse::default(), record, cx)
        };
        // Written to the end, then dropped: once.
        let body = quiet("GET", "hello").into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        // A HEAD answer is never polled: counted when dropped.
        drop(quiet("HEAD", ""));
        // Abandoned by the client: counted, with what was written (nothing).
        drop(quiet("POST", "never sent"));
        assert_eq!(counters.requests(1, 0), 1, "GET 2xx");
        assert_eq!(counters.requests(1, 1), 1, "HEAD 2xx");
        assert_eq!(counters.requests(1, 2), 1, "POST 2xx");
        assert_eq!(counters.response_bytes(), 5);
        assert_eq!(counters.durations().1, 3);
    }

    #[tokio::test]
    async fn an_abandoned_body_completes_as_aborted() {
        let recorder = Arc::new(Recorder::default());
        drop(response(&recorder, "never sent"));
        assert_eq!(*recorder.0.lock().unwrap(), [(200, 0, true)]);
    }
}
