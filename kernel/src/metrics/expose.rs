//! `/__bext/metrics` in the text format, built when scraped from the
//! counters and from what the kernel already knows (connections, process
//! apps, the pipeline's generation), then every plugin's metrics.

use std::fmt::Write as _;
use std::sync::Arc;

use bext_plugin_abi::metrics::prometheus_client;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet, text::encode};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{AppCounters, METHODS, NO_APP, STATUS_CLASSES};
use crate::pipeline::Pipeline;

/// The `Content-Type` of the answer: OpenMetrics' text format, which
/// Prometheus scrapes (and which `prometheus-client` writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// States a process app reports (`apps::process`'s status).
const PROCESS_STATES: [&str; 5] = ["running", "starting", "crash-loop", "idle", "stopped"];

/// The scrape's text.
pub fn render(pipeline: &Arc<Pipeline>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(pipeline.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// One scrape of one pipeline.
struct Scrape(Arc<Pipeline>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrape of generation {}", self.0.generation)
    }
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let pipeline = &*self.0;
        let metrics = &*pipeline.metrics;
        let apps: Vec<(Arc<str>, Arc<AppCounters>)> = {
            let known = metrics.apps.lock().unwrap_or_else(|e| e.into_inner());
            let mut apps: Vec<_> = known.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            apps.push((NO_APP.into(), metrics.unrouted.clone()));
            apps
        };

        let mut m = encoder.encode_descriptor(
            "bext_requests",
            "Requests answered, by app, status class and method.",
            None,
            MetricType::Counter,
        )?;
        for (app, c) in &apps {
            for (class, class_name) in STATUS_CLASSES.iter().enumerate() {
                for (method, method_name) in METHODS.iter().enumerate() {
                    let n = c.requests(class, method);
                    if n > 0 {
                        let labels = [("app", &**app), ("status_class", class_name), ("method", method_name)];
                        counter(&mut m.encode_family(&labels)?, n)?;
                    }
                }
            }
        }

        let mut m = encoder.encode_descriptor(
            "bext_request_duration_seconds",
            "Time from a request's arrival to its response's last byte, by app.",
            None,
            MetricType::Histogram,
        )?;
        for (app, c) in &apps {
            let (sum, count, buckets) = c.durations();
            m.encode_family(&[("app", &**app)])?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        let mut m = encoder.encode_descriptor(
            "bext_response_bytes",
            "Response body bytes written, by app.",
            None,
            MetricType::Counter,
        )?;
        for (app, c) in &apps {
            counter(&mut m.encode_family(&[("app", &**app)])?, c.response_bytes())?;
        }
        let mut m = encoder.encode_descriptor(
            "bext_request_bytes",
            "Request body bytes read (by the app or a plugin), by app.",
            None,
            MetricType::Counter,
        )?;
        for (app, c) in &apps {
            counter(&mut m.encode_family(&[("app", &**app)])?, c.request_bytes())?;
        }

        let tenants: Vec<_> = {
            let t = metrics.tenants.lock().unwrap_or_else(|e| e.into_inner());
            t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        if !tenants.is_empty() {
            let mut m = encoder.encode_descriptor(
                "bext_tenant_requests",
                "Requests of the tenants `[platform.metrics] tenants` names, by status class.",
                None,
                MetricType::Counter,
            )?;
            for (tenant, c) in &tenants {
                for (class, class_name) in STATUS_CLASSES.iter().enumerate() {
                    let n = c.requests[class].load(std::sync::atomic::Ordering::Relaxed);
                    counter(
                        &mut m.encode_family(&[("tenant", &**tenant), ("status_class", class_name)])?,
                        n,
                    )?;
                }
            }
        }

        let mut m = encoder.encode_descriptor(
            "bext_reloads",
            "Pipeline reloads (SIGHUP, file watcher, deploys), by result.",
            None,
            MetricType::Counter,
        )?;
        let ok = metrics.reloads_ok.load(std::sync::atomic::Ordering::Relaxed);
        let failed = metrics.reloads_failed.load(std::sync::atomic::Ordering::Relaxed);
        counter(&mut m.encode_family(&[("result", "ok")])?, ok)?;
        counter(&mut m.encode_family(&[("result", "error")])?, failed)?;

        let generation = i64::try_from(pipeline.generation).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "bext_pipeline_generation",
            "The serving pipeline's generation (1 at start, one more per reload).",
            generation,
        )?;
        if let Some(tracker) = metrics.connections.get() {
            let open = i64::try_from(tracker.live()).unwrap_or(i64::MAX);
            gauge(
                &mut encoder,
                "bext_connections_open",
                "Client connections open on the public listeners.",
                open,
            )?;
        }

        let mut m = encoder.encode_descriptor(
            "bext_access_log_dropped_lines",
            "Access log lines dropped because the log's buffer was full (the disk was slower than the traffic).",
            None,
            MetricType::Counter,
        )?;
        counter(
            &mut m,
            metrics.access_log_dropped.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        if let Some(otel) = &pipeline.otel {
            let mut m = encoder.encode_descriptor(
                "bext_otel_spans",
                "Spans sent to the OTLP collector, by result (`dropped`: queue full, or the post failed).",
                None,
                MetricType::Counter,
            )?;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            counter(&mut m.encode_family(&[("result", "exported")])?, load(&otel.exported))?;
            counter(&mut m.encode_family(&[("result", "dropped")])?, load(&otel.dropped))?;
        }

        certificates(pipeline, &mut encoder)?;
        process_apps(pipeline, &mut encoder)?;
        upstreams(pipeline, &mut encoder)?;
        js_pools(pipeline, &mut encoder)?;
        metrics.plugins.encode(&mut encoder)
    }
}

/// When each certificate expires, by the name it is served for: the
/// pipeline's (from files, or self-signed) and those the ACME service
/// issued (for the platform file's names, or on demand for names its
/// `on_demand_ask` allowed: bounded either way). A name with both is
/// served the pipeline's, so that one is shown.
fn certificates(pipeline: &Pipeline, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let expiry = |name: &str, key: &bext_tls::CertifiedKey| {
        let der = key.cert.first()?;
        let info = bext_tls::CertInfo::parse(std::path::Path::new(name), der).ok()?;
        Some(info.not_after)
    };
    let mut expiries: std::collections::BTreeMap<String, i64> = pipeline
        .tls
        .certs
        .served()
        .filter_map(|(name, key)| {
            let not_after = expiry(&name, key)?;
            Some((name, not_after))
        })
        .collect();
    if let Some(acme) = pipeline.metrics.acme.get() {
        for (name, key) in acme.issued() {
            if !expiries.contains_key(&*name)
                && let Some(not_after) = expiry(&name, &key)
            {
                expiries.insert(name.into(), not_after);
            }
        }
    }
    if expiries.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(
        "bext_certificate_expiry_timestamp_seconds",
        "When the certificate served for a name expires (Unix seconds).",
        None,
        MetricType::Gauge,
    )?;
    for (name, not_after) in &expiries {
        m.encode_family(&[("name", name.as_str())])?.encode_gauge(not_after)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut m = encoder.encode_descriptor(
        "bext_certificate_expires_in_seconds",
        "Seconds until the certificate served for a name expires (negative: expired).",
        None,
        MetricType::Gauge,
    )?;
    for (name, not_after) in &expiries {
        m.encode_family(&[("name", name.as_str())])?
            .encode_gauge(&not_after.saturating_sub(now))?;
    }
    Ok(())
}

/// Process apps' state (one series per state, 1 for the current one),
/// their instances' readiness and starts, read from the status model the
/// admin API shows.
fn process_apps(pipeline: &Pipeline, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let mut statuses: Vec<(&str, serde_json::Value)> = pipeline
        .apps
        .iter()
        .filter_map(|(id, e)| Some((&**id, e.app.runtime.process()?.status())))
        .collect();
    if statuses.is_empty() {
        return Ok(());
    }
    statuses.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = encoder.encode_descriptor(
        "bext_process_app_state",
        "A process app's state: 1 for the state it is in.",
        None,
        MetricType::Gauge,
    )?;
    for (app, status) in &statuses {
        for state in PROCESS_STATES {
            let on = i64::from(status["state"] == state);
            m.encode_family(&[("app", *app), ("state", state)])?.encode_gauge(&on)?;
        }
    }
    let instances = |status: &serde_json::Value| -> Vec<(String, bool, u64)> {
        status["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let mut n = String::new();
                let _ = write!(n, "{}", i["instance"].as_u64().unwrap_or(0));
                (
                    n,
                    i["ready"].as_bool().unwrap_or(false),
                    i["starts"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let mut m = encoder.encode_descriptor(
        "bext_process_instance_ready",
        "1 when a process app's instance answers its ready check.",
        None,
        MetricType::Gauge,
    )?;
    for (app, status) in &statuses {
        for (i, ready, _) in instances(status) {
            m.encode_family(&[("app", *app), ("instance", &i)])?
                .encode_gauge(&i64::from(ready))?;
        }
    }
    let mut m = encoder.encode_descriptor(
        "bext_process_instance_starts",
        "Times a process app's instance was started (restarts are starts after the first).",
        None,
        MetricType::Counter,
    )?;
    for (app, status) in &statuses {
        for (i, _, starts) in instances(status) {
            counter(&mut m.encode_family(&[("app", *app), ("instance", &i)])?, starts)?;
        }
    }
    Ok(())
}

/// Proxy apps' backends: in service or not, and requests in flight, by
/// the address the platform file gives (bounded).
fn upstreams(pipeline: &Pipeline, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let mut rows: Vec<(&str, String, bool, u32)> = Vec::new();
    for (id, e) in &pipeline.apps {
        if let Some(proxy) = e.app.runtime.proxy() {
            for b in &proxy.upstreams().current().list {
                rows.push((&**id, b.addr().to_owned(), b.up(), b.in_flight()));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort();
    let mut m = encoder.encode_descriptor(
        "bext_upstream_up",
        "1 when a proxy app's backend takes requests (not down by its checks, not ejected for failures).",
        None,
        MetricType::Gauge,
    )?;
    for (app, upstream, up, _) in &rows {
        m.encode_family(&[("app", *app), ("upstream", upstream.as_str())])?
            .encode_gauge(&i64::from(*up))?;
    }
    let mut m = encoder.encode_descriptor(
        "bext_upstream_in_flight",
        "Requests sent to a proxy app's backend and not yet answered to the end.",
        None,
        MetricType::Gauge,
    )?;
    for (app, upstream, _, n) in &rows {
        m.encode_family(&[("app", *app), ("upstream", upstream.as_str())])?
            .encode_gauge(&i64::from(*n))?;
    }
    Ok(())
}

/// JS apps' isolate pools (a canary's or preview's under its own id:
/// they have their own pools, and live ones only).
fn js_pools(pipeline: &Pipeline, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let mut pools: Vec<(&str, bext_js::PoolStats)> = pipeline
        .apps
        .iter()
        .filter_map(|(id, e)| Some((&**id, e.app.runtime.js()?.pool_stats()?)))
        .collect();
    if pools.is_empty() {
        return Ok(());
    }
    pools.sort_by(|a, b| a.0.cmp(b.0));
    type Field = fn(&bext_js::PoolStats) -> u64;
    let families: [(&str, &str, MetricType, Field); 6] = [
        (
            "bext_js_isolates",
            "Isolates of a JS app's pool.",
            MetricType::Gauge,
            |s| s.isolates,
        ),
        (
            "bext_js_isolates_busy",
            "Isolates running a call now.",
            MetricType::Gauge,
            |s| s.busy,
        ),
        (
            "bext_js_queue_length",
            "Calls waiting for an isolate.",
            MetricType::Gauge,
            |s| s.queued,
        ),
        (
            "bext_js_isolate_restarts",
            "Isolates built again (after a crash, a limit, or max_requests).",
            MetricType::Counter,
            |s| s.restarts,
        ),
        (
            "bext_js_limit_kills",
            "Calls stopped by the isolate's time or memory limit (the isolate is replaced).",
            MetricType::Counter,
            |s| s.limit_kills,
        ),
        (
            "bext_js_overloaded",
            "Calls refused because the pool's queue was full (503).",
            MetricType::Counter,
            |s| s.overloaded,
        ),
    ];
    for (name, help, kind, field) in families {
        let is_counter = matches!(kind, MetricType::Counter);
        let mut m = encoder.encode_descriptor(name, help, None, kind)?;
        for (app, stats) in &pools {
            let labels = [("app", *app)];
            let mut f = m.encode_family(&labels)?;
            let v = field(stats);
            if is_counter {
                counter(&mut f, v)?;
            } else {
                f.encode_gauge(&i64::try_from(v).unwrap_or(i64::MAX))?;
            }
        }
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder<'_>, n: u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, _, u64>(&n, None)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}
