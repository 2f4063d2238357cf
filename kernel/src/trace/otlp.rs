//! OpenTelemetry export: spans posted to `[platform.otel] endpoint`'s
//! `/v1/traces` as OTLP/HTTP with JSON encoding (the protobuf-JSON mapping
//! OTLP specifies), with the setting's `headers`, by bext's own hyper
//! client (over TLS for https://, verified against the system's CAs or
//! `SSL_CERT_FILE`, as `https://` upstreams are), in batches, from a task of
//! the control runtime. A request only queues its spans; a full queue or a
//! collector that does not answer drops spans (counted), never delays one.
//! Why not the opentelemetry crates: docs/dependencies.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::hex;
use crate::config::platform::OtelSettings;

/// Spans waiting to be posted; beyond, new ones are dropped.
const QUEUE: usize = 8192;
/// Most spans in one post.
const BATCH: usize = 512;
/// Longest a span waits for its batch.
const LINGER: Duration = Duration::from_millis(500);
/// Longest a post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// Text.
    Str(Box<str>),
    /// A number.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    /// Its trace.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// Its parent's id, if any.
    pub parent: Option<[u8; 8]>,
    /// What it is (`GET shop`, `waf on_request`).
    pub name: Box<str>,
    /// OTLP's `SpanKind`: 1 internal, 2 server.
    pub kind: u8,
    /// When it began.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes.
    pub attributes: Vec<(&'static str, Attr)>,
    /// Whether it failed (a 5xx, a failed hook).
    pub error: bool,
}

/// The exporter of one `[platform.otel]` setting, handed on from pipeline
/// to pipeline while the setting stays the same.
pub struct Otel {
    /// What it was started with.
    pub settings: OtelSettings,
    queue: mpsc::Sender<Span>,
    /// Spans dropped (queue full, post failed).
    pub dropped: Arc<AtomicU64>,
    /// Spans the collector accepted.
    pub exported: Arc<AtomicU64>,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Otel({})", self.settings.endpoint)
    }
}

impl Otel {
    /// Starts the export task on the current (control) runtime.
    pub fn start(settings: &OtelSettings) -> Result<Otel, String> {
        let url = settings.traces_url()?;
        let post = Post {
            client: client(url.scheme_str() == Some("https")).map_err(|e| format!("endpoint: {e}"))?,
            headers: settings.header_map()?,
            url,
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let exported = Arc::new(AtomicU64::new(0));
        tokio::spawn(export(
            rx,
            post,
            settings.service_name.clone(),
            dropped.clone(),
            exported.clone(),
        ));
        Ok(Otel {
            settings: settings.clone(),
            queue,
            dropped,
            exported,
        })
    }

    /// The share of new traces recorded.
    pub fn sample(&self) -> f64 {
        self.settings.sample
    }

    /// Queues a span; never waits.
    pub fn record(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Where and how spans are posted.
struct Post {
    client: Client,
    url: http::Uri,
    headers: http::HeaderMap,
}

/// The client: plain HTTP, or with `tls` TLS to the system's CAs (what
/// an `https://` upstream trusts without `ca`).
fn client(tls: bool) -> Result<Client, String> {
    let config = if tls {
        let mut config = (*crate::apps::upstream_tls::client_config(None, false, false)?).clone();
        // The connector sets ALPN itself.
        config.alpn_protocols.clear();
        config
    } else {
        // Never used for a plain URL; no CA bundle needed.
        rustls::ClientConfig::builder_with_provider(bext_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

async fn export(
    mut rx: mpsc::Receiver<Span>,
    post: Post,
    service: String,
    dropped: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
) {
    let Post { client, url, headers } = post;
    let mut batch = Vec::with_capacity(BATCH);
    // Ends when the last `Otel` (every pipeline holding it) is gone.
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                _ => break,
            }
        }
        let n = batch.len() as u64;
        let body = serde_json::to_vec(&request_body(&service, &batch)).unwrap_or_default();
        batch.clear();
        let req = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(mut req) = req else { continue };
        req.headers_mut().extend(headers.clone());
        let outcome = tokio::time::timeout(POST_TIMEOUT, client.request(req)).await;
        match outcome {
            Ok(Ok(res)) if res.status().is_success() => {
                exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Ok(res)) => {
                dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(
                    status = res.status().as_u16(),
                    spans = n,
                    "the OTLP collector refused spans"
                );
            }
            Ok(Err(e)) => {
                dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(error = %e, spans = n, "cannot post spans to the OTLP collector");
            }
            Err(_) => {
                dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(spans = n, "the OTLP collector did not answer in time");
            }
        }
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn hex_string(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// An `ExportTraceServiceRequest` in OTLP's JSON mapping: ids as hex,
/// 64-bit integers as strings, enums as numbers.
pub fn request_body(service: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<Value> = s
                .attributes
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Attr::Str(s) => json!({ "stringValue": s }),
                        Attr::Int(i) => json!({ "intValue": i.to_string() }),
                    };
                    json!({ "key": k, "value": value })
                })
                .collect();
            let mut span = json!({
                "traceId": hex_string(&s.trace_id),
                "spanId": hex_string(&s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": attributes,
                "status": { "code": if s.error { 2 } else { 0 } },
            });
            if let Some(p) = s.parent {
                span["parentSpanId"] = hex_string(&p).into();
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service } }
            ]},
            "scopeSpans": [{
                "scope": { "name": "bext", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_written_in_otlp_json() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let span = Span {
            trace_id: [0xab; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: Some([9; 8]),
            name: "GET shop".into(),
            kind: 2,
            start: t,
            end: t + Duration::from_millis(2),
            attributes: vec![
                ("http.response.status_code", Attr::Int(503)),
                ("bext.app", Attr::Str("shop".into())),
            ],
            error: true,
        };
        let v = request_body("bext", &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "0102030405060708");
        assert_eq!(s["parentSpanId"], "0909090909090909");
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(s["endTimeUnixNano"], "1700000000125456789");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][0]["value"]["intValue"], "503");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "bext"
        );
    }
}
