//! What the dashboard shows, read where the admin API and the metrics
//! registry already keep it: the deploy plugin's and the WAF's admin
//! routes are called in-process with their own token (so the dashboard
//! sees exactly what the API answers), the cache, canaries' answers per
//! version and certificates come from the Prometheus text
//! `/__bext/metrics` renders.

use std::sync::Arc;

use bext_plugin_abi::{Body, Ctx, Request, Response};
use http::Method;
use http::header::AUTHORIZATION;
use http_body_util::BodyExt;

use crate::metrics::{METHODS, STATUS_CLASSES};
use crate::pipeline::Pipeline;
use crate::pipeline::run::{admin_mount, serve_admin};

/// Where the deploy plugin's API is (its manifest's default `base`).
pub(super) const DEPLOY_API: &str = "/__bext/api/platform";
/// Where the WAF's audit log is (its default `base`).
pub(super) const WAF_EVENTS: &str = "/__bext/waf/events";
/// Largest admin answer the dashboard reads.
const MAX_ANSWER: usize = 8 << 20;

/// Calls a plugin's admin route in-process with its token; `None` when no
/// plugin serves `path` (the plugin is off) or its token is unset.
pub(super) async fn admin_call(pipeline: &Pipeline, cx: &mut Ctx, method: Method, path: &str) -> Option<Response> {
    let target = path.split('?').next().unwrap_or(path);
    let mount = admin_mount(pipeline, target)?;
    let token = mount.token.as_deref()?;
    let mut req: Request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("x-bext-user", "dashboard")
        .body(Body::full(""))
        .ok()?;
    Some(serve_admin(mount, &mut req, cx).await)
}

/// A response's body as JSON (`Null` when it is not).
pub(super) async fn json_of(res: Response) -> (http::StatusCode, serde_json::Value) {
    let status = res.status();
    let body = http_body_util::Limited::new(res.into_body(), MAX_ANSWER)
        .collect()
        .await;
    let value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, value)
}

/// `GET path` on a plugin's admin route, as JSON, when it answered 2xx.
pub(super) async fn admin_get(pipeline: &Pipeline, cx: &mut Ctx, path: &str) -> Option<serde_json::Value> {
    let res = admin_call(pipeline, cx, Method::GET, path).await?;
    let (status, value) = json_of(res).await;
    status.is_success().then_some(value)
}

/// Requests app `id` answered since the process started (its canaries'
/// and previews' included), from the metrics registry.
pub(super) fn requests_of(pipeline: &Pipeline, id: &str) -> u64 {
    let counters = pipeline.metrics.app(id);
    (0..STATUS_CLASSES.len())
        .flat_map(|c| (0..METHODS.len()).map(move |m| (c, m)))
        .map(|(c, m)| counters.requests(c, m))
        .sum()
}

/// The samples of one metric in a Prometheus text: each series' labels
/// (as written) and value.
pub(super) fn samples<'t>(text: &'t str, name: &str) -> Vec<(&'t str, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// A label's value in a series' labels (`a="x",b="y"`).
pub(super) fn label<'t>(labels: &'t str, name: &str) -> Option<&'t str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// The isr cache's answers by status (`HIT`, `STALE`, `MISS`, `BYPASS`)
/// and the hit ratio (hits and stale hits over all), if it answered any.
pub(super) fn cache(metrics: &str) -> (Vec<(String, u64)>, Option<f64>) {
    let mut by_status: Vec<(String, u64)> = samples(metrics, "bext_plugin_isr_responses_total")
        .into_iter()
        .filter_map(|(l, v)| Some((label(l, "status")?.to_owned(), v as u64)))
        .collect();
    // The registry's order is not stable: the cache's own order instead.
    let rank = |s: &str| ["HIT", "STALE", "MISS", "BYPASS"].iter().position(|k| *k == s);
    by_status.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
    let total: u64 = by_status.iter().map(|(_, n)| n).sum();
    let hits: u64 = by_status
        .iter()
        .filter(|(s, _)| s == "HIT" || s == "STALE")
        .map(|(_, n)| n)
        .sum();
    let ratio = (total > 0).then(|| hits as f64 / total as f64);
    (by_status, ratio)
}

/// The answers and 5xx errors version `version` of `app` gave in `role`
/// (`stable` or `canary`), from the deploy plugin's per-version metric:
/// the same numbers a Prometheus alert on canary errors reads.
pub(super) fn version_answers(metrics: &str, app: &str, version: &str, role: &str) -> (u64, u64) {
    samples(metrics, "bext_plugin_deploy_version_requests_total")
        .into_iter()
        .filter(|(l, _)| {
            label(l, "app") == Some(app) && label(l, "version") == Some(version) && label(l, "role") == Some(role)
        })
        .fold((0, 0), |(all, errors), (l, v)| {
            let n = v as u64;
            (
                all + n,
                errors + if label(l, "status_class") == Some("5xx") { n } else { 0 },
            )
        })
}

/// The certificates served: name and notAfter (Unix seconds).
pub(super) fn certificates(metrics: &str) -> Vec<(String, u64)> {
    samples(metrics, "bext_certificate_expiry_timestamp_seconds")
        .into_iter()
        .filter_map(|(l, v)| Some((label(l, "name")?.to_owned(), v as u64)))
        .collect()
}

/// The Prometheus text of the whole process.
pub(super) fn metrics_text(pipeline: &Arc<Pipeline>) -> String {
    crate::metrics::render(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        bext_plugin_isr_responses_total{status=\"MISS\"} 1\n\
        bext_plugin_isr_responses_total{status=\"HIT\"} 3\n\
        bext_plugin_isr_responses_total_created 5\n\
        bext_certificate_expiry_timestamp_seconds{name=\"*.shop.test\"} 1900000000\n";

    #[test]
    fn the_cache_ratio_and_certificates_come_from_the_text() {
        let (by, ratio) = cache(TEXT);
        assert_eq!(by, [("HIT".to_owned(), 3), ("MISS".to_owned(), 1)]);
        assert_eq!(ratio, Some(0.75));
        assert_eq!(certificates(TEXT), [("*.shop.test".to_owned(), 1_900_000_000)]);
        assert_eq!(cache("").1, None);
    }
}
