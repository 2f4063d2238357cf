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
use crate::access_log::{AccessLog, Record as LogRecord, Sink, TraceId};
use crate::apps::RawFields;
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
    /// A dedicated access log's record, its head filled in on arrival.
    line: Option<Box<LogRecord>>,
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
                Sink::Dedicated(l) => {
                    let mut line = crate::access_log::record();
                    line.head.fill(l.format(), parts);
                    Some(line)
                }
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
        let end = if matches!(self.log, Sink::ErrorLog) || !after.is_empty() || self.otel.is_some() {
            let finish = Finish { after, record, ..self };
            End::Tell(Box::new(State { finish, status, cx }))
        } else {
            // Nobody to tell but a dedicated access log: its record is
            // taken from the context now (nothing reads the context after
            // the head is answered), and the context goes; the end fills
            // in the numbers and queues it (no boxed state, no moves of
            // the context; no clock read when neither counts).
            let log = match (self.log, self.line) {
                (Sink::Dedicated(log), Some(line)) => {
                    let line = log_record(&log, line, self.method.clone(), self.parent, status, &mut cx);
                    Some((log, line))
                }
                _ => None,
            };
            End::Quiet {
                head: self.method == Method::HEAD,
                method: method_index(&self.method),
                status: status.as_u16(),
                received_at: cx.received_at,
                record,
                read: self.read,
                log,
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
                fields: None,
            },
        )
    }
}

/// A request answered before it had a head to read: hyper's 400 (a
/// malformed request line or field), 431 or 414 (a head or target over
/// its limits), or the fast path's 431. No plugin or app saw it, but
/// nginx logs such requests and so does bext, so that probes and
/// smuggling attempts leave a trace: an access log line (method `-`, no
/// path) and a count among the requests no app served.
pub(super) fn unparsed(kernel: &crate::Kernel, peer: std::net::IpAddr, status: StatusCode) {
    let pipeline = kernel.pipeline.load();
    // No method was read: `other`, the last of `METHODS`.
    let other = (crate::metrics::METHODS.len() - 1) as u8;
    (pipeline.record(None, None)).finish(other, status.as_u16(), std::time::Duration::ZERO, 0, 0);
    match &pipeline.access_log {
        Sink::Off => {}
        Sink::ErrorLog => tracing::info!(
            target: "bext::access",
            method = "-",
            client = %peer,
            status = status.as_u16(),
            "a request with no readable head"
        ),
        Sink::Dedicated(log) => {
            let mut line = crate::access_log::record();
            line.fill_unparsed(peer, status.as_u16(), kernel.next_request_id().0);
            log.push(line);
        }
    }
}

/// The status hyper answered a connection's error with, when the error
/// is a request it could not parse (see `role.rs`'s `on_error` in
/// vendor/hyper); `None` for every other end of a connection.
pub(super) fn unparsed_status(error: &hyper::Error) -> Option<StatusCode> {
    if !error.is_parse() || error.is_parse_version_h2() {
        return None;
    }
    Some(if !error.is_parse_too_large() {
        StatusCode::BAD_REQUEST
    } else if error.to_string().contains("URI too long") {
        // hyper's public API tells a long target from a long head only
        // in its message.
        StatusCode::URI_TOO_LONG
    } else {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    })
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
                if let Some(line) = f.line {
                    let mut line = log_record(&log, line, f.method, f.parent, status, &mut cx);
                    line.bytes = bytes;
                    line.duration = duration;
                    line.aborted = aborted;
                    log.push(line);
                }
            }
        }
    }
}

/// A request's access log record, filled in from its context once the
/// response's head is answered; the end fills in the bytes, the duration
/// and whether it was aborted. Boxed (and a written one used again): the
/// worker moves a pointer to the queue, not the record.
fn log_record(
    log: &AccessLog,
    mut line: Box<LogRecord>,
    method: Method,
    parent: Option<bext_plugin_abi::trace::Parent>,
    status: StatusCode,
    cx: &mut Ctx,
) -> Box<LogRecord> {
    // Drawn by the log's thread when nothing read it.
    let trace_id = match cx.trace() {
        Some(t) => TraceId::Known(t.trace_id),
        None => TraceId::Unread(parent),
    };
    // Combined lines carry none of these: no lookups.
    let json = matches!(log.format(), AccessLogFormat::Json);
    // Field by field into the boxed record (a cleared one: its names are
    // `None`), not a new record built and copied in: no 230-byte copy,
    // no drop of the old one's fields.
    let l = &mut *line;
    l.method = method;
    l.received_at = cx.received_at;
    l.client = cx.client_ip;
    l.host = cx.host.take();
    l.status = status.as_u16();
    // `bytes`, `duration` and `aborted` are the end's to fill in.
    l.upstream = if json {
        cx.ext.get::<crate::apps::UpstreamTime>().map(|u| u.0)
    } else {
        None
    };
    [l.app, l.tenant, l.version] = if json { cx.names() } else { Default::default() };
    // The cache plugin's decision, as it wrote `x-cache`.
    l.cache = cx.cache_status.filter(|_| json).map(CacheStatus::as_str);
    // Most requests have no vars: no hashing then.
    l.waf = if !json || cx.vars.is_empty() {
        None
    } else {
        cx.vars.remove("waf")
    };
    l.request_id = cx.request_id.0;
    l.trace_id = trace_id;
    line
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
    /// `on_complete` hooks, OTLP or the error log's line run.
    Tell(Box<State>),
    /// The request is counted and its access log record queued, and the
    /// connection learns it is done (when this drops).
    Quiet {
        _in_flight: InFlight,
        head: bool,
        method: u8,
        status: u16,
        received_at: std::time::Instant,
        /// Taken once counted.
        record: Record,
        read: Option<Arc<AtomicU64>>,
        /// The access log and the request's record, taken once queued.
        log: Option<(Arc<AccessLog>, Box<LogRecord>)>,
    },
    /// Done already.
    Done,
}

/// A response whose headers are all in its map (an upstream's fields
/// kept as they came, then what plugins added): what hyper writes
/// (HTTP/2, and HTTP/1 off the fast path).
pub fn into_mapped(res: http::Response<ResponseBody>) -> http::Response<ResponseBody> {
    let (mut parts, mut body) = res.into_parts();
    if let Some(fields) = body.fields.take() {
        fields.prepend_to(&mut parts.headers);
    }
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
    /// An upstream's answer fields kept as they came (`KeptFields`): the
    /// HTTP/1 writer copies them before the map's; [`into_mapped`] puts
    /// them into it.
    pub(super) fields: Option<RawFields>,
}

impl ResponseBody {
    /// Lets go of the data (a HEAD answer's), keeping what the end of the
    /// response tells: it ends at once, with no bytes sent.
    pub(super) fn drop_data(&mut self) {
        self.inner = Body::empty();
    }

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
                log,
                ..
            } => {
                let counted = !record.is_off();
                if !counted && log.is_none() {
                    return;
                }
                let duration = received_at.elapsed();
                if counted {
                    let read = read.as_ref().map_or(0, |r| r.load(Ordering::Relaxed));
                    std::mem::take(record).finish(*method, *status, duration, self.bytes, read);
                }
                if let Some((log, mut line)) = log.take() {
                    line.bytes = self.bytes;
                    line.duration = duration;
                    line.aborted = aborted;
                    log.push(line);
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
    async fn a_logged_response_s_line_has_its_bytes_and_an_abandoned_one_says_aborted() {
        use crate::config::platform::AccessLogConfig;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let config = AccessLogConfig {
            format: AccessLogFormat::Json,
            path: Some(path.clone()),
            buffer: bext_plugin_abi::units::ByteSize(1 << 20),
        };
        let log = Arc::new(AccessLog::open(&config, Arc::default()).unwrap());
        // Only the log to tell, metrics off: the end without boxed state.
        let logged = |body: &'static str| {
            let conn = Arc::new(ConnInfo::for_tests());
            let parts = http::Request::builder().uri("/x").body(()).unwrap().into_parts().0;
            let finish = Finish::new(
                Sink::Dedicated(log.clone()),
                conn.request_started(http::Version::HTTP_11),
                &parts,
            );
            let cx = Ctx::new(RequestId(7), "127.0.0.1:1".parse().unwrap());
            finish.done(
                Response::new(Body::from(body)),
                AfterResponse::default(),
                Record::default(),
                cx,
            )
        };
        let body = logged("hello").into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        drop(logged("never sent"));
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!((&lines[0]["path"], &lines[0]["bytes"]), (&"/x".into(), &5.into()));
        assert!(lines[0].get("aborted").is_none(), "{text}");
        assert_eq!((&lines[1]["bytes"], &lines[1]["aborted"]), (&0.into(), &true.into()));
    }

    #[tokio::test]
    async fn an_abandoned_body_completes_as_aborted() {
        let recorder = Arc::new(Recorder::default());
        drop(response(&recorder, "never sent"));
        assert_eq!(*recorder.0.lock().unwrap(), [(200, 0, true)]);
    }
}
