//! `/__bext/ui/events`: server-sent events for the overview's live parts.
//! Every second a `traffic` event (requests per second per app, from the
//! metrics registry) and one `waf` event per audit event newer than the
//! stream's start. The stream ends after [`STREAM_FOR`] (the browser's
//! `EventSource` reconnects), so a long-open page never holds a reloaded
//! pipeline for long, and at once when the server starts shutting down
//! ([`stop_streams`]), so an open dashboard does not hold up the drain.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bext_plugin_abi::{Body, Ctx, Response};
use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use serde_json::Value;

use super::data::{self, WAF_EVENTS};
use super::pages::app_ids;
use crate::pipeline::Pipeline;

/// How often the stream speaks.
const EVERY: Duration = Duration::from_secs(1);
/// How long one stream lasts before the browser reconnects.
const STREAM_FOR: Duration = Duration::from_secs(300);
/// Audit events read per tick.
const WAF_PER_TICK: usize = 50;

/// What a stream remembers between ticks.
struct State {
    pipeline: Arc<Pipeline>,
    cx: Ctx,
    counts: HashMap<String, u64>,
    at: Instant,
    started: Instant,
    last_waf: Option<String>,
    interval: tokio::time::Interval,
}

/// Set once the server is shutting down.
fn stopping() -> &'static tokio::sync::watch::Sender<bool> {
    static STOPPING: OnceLock<tokio::sync::watch::Sender<bool>> = OnceLock::new();
    STOPPING.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// Ends every event stream (called when a shutdown starts draining).
pub(crate) fn stop_streams() {
    stopping().send_replace(true);
}

/// The `text/event-stream` response.
pub(super) async fn stream(pipeline: &Arc<Pipeline>, cx: &Ctx) -> Response {
    let mut own = Ctx::new(cx.request_id, cx.peer);
    own.client_ip = cx.client_ip;
    let mut state = State {
        pipeline: pipeline.clone(),
        cx: own,
        counts: HashMap::new(),
        at: Instant::now(),
        started: Instant::now(),
        last_waf: None,
        interval: tokio::time::interval(EVERY),
    };
    state.counts = counts(&state.pipeline);
    state.last_waf = newest_waf(&mut state).await.first().map(id_of);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"retry: 1000\n: bext dashboard\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut stop = stopping().subscribe();
        while state.started.elapsed() < STREAM_FOR {
            tokio::select! {
                _ = state.interval.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let chunk = tick(&mut state).await;
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return; // the browser went away
            }
        }
    });
    let mut res = Response::new(Body::stream(Events(rx)));
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

fn counts(pipeline: &Pipeline) -> HashMap<String, u64> {
    app_ids(pipeline)
        .into_iter()
        .map(|id| {
            let n = data::requests_of(pipeline, &id);
            (id, n)
        })
        .collect()
}

fn id_of(event: &Value) -> String {
    format!("{}/{}", event["time"], event["request_id"])
}

async fn newest_waf(s: &mut State) -> Vec<Value> {
    let path = format!("{WAF_EVENTS}?limit={WAF_PER_TICK}");
    let events = data::admin_get(&s.pipeline, &mut s.cx, &path).await;
    events.and_then(|v| v["events"].as_array().cloned()).unwrap_or_default()
}

/// One second's events.
async fn tick(s: &mut State) -> String {
    let now = Instant::now();
    let secs = now.duration_since(s.at).as_secs_f64().max(0.001);
    let counts = counts(&s.pipeline);
    let rates: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(id, n)| {
            let before = s.counts.get(id).copied().unwrap_or(*n);
            (id.clone(), (n.saturating_sub(before) as f64 / secs).into())
        })
        .collect();
    let totals: serde_json::Map<String, Value> = counts.iter().map(|(id, n)| (id.clone(), (*n).into())).collect();
    s.counts = counts;
    s.at = now;
    let mut out = format!(
        "event: traffic\ndata: {}\n\n",
        serde_json::json!({ "rps": rates, "requests": totals })
    );
    let events = newest_waf(s).await;
    let fresh: Vec<&Value> = events
        .iter()
        .take_while(|e| s.last_waf.as_deref() != Some(id_of(e).as_str()))
        .collect();
    if let Some(first) = events.first() {
        s.last_waf = Some(id_of(first));
    }
    for e in fresh.into_iter().rev() {
        out.push_str(&format!("event: waf\ndata: {e}\n\n"));
    }
    out
}

/// The stream's body: what the ticking task sends, until it stops.
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
