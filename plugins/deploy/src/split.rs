//! The traffic split of a canaried app, in the request hooks: a visitor
//! keeps the version its cookie names; a new visitor gets the canary's
//! share. Canary requests are answered in `on_request`, by the canary
//! version's runtime (the plugins outside this one still see them); the
//! rest go on to the current version and are counted in `on_response`,
//! which is asked for only by them (`Hooks::RESPONSE_WHEN_ASKED`): other
//! apps' responses never reach it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bext_plugin_abi::{AppTarget, Ctx, Flow, Hook, PluginError, Request, Response};
use http::{StatusCode, header};

use crate::canary::Canary;
use crate::shared::Shared;

/// How long the version cookie lasts.
const COOKIE_MAX_AGE: u64 = 7 * 24 * 3600;

/// A stable-version request of a canaried app, seen again in `on_response`.
#[derive(Clone)]
struct StableVisit {
    canary: Arc<Canary>,
    new: bool,
    started: Instant,
}

/// `on_request`: a canary request answered by the canary's app; any other
/// request of a canaried app marked to be counted on its way back.
pub(crate) fn on_request<'a>(
    shared: &'a Shared,
    req: &'a mut Request,
    cx: &'a mut Ctx,
) -> Hook<'a, Result<Flow, PluginError>> {
    let canaries = shared.canaries.load();
    let Some(canary) = cx.app().and_then(|app| canaries.get(app)).cloned() else {
        return Hook::Ready(Ok(Flow::Continue));
    };
    let (to_canary, new) = match cookie(req, &canary.cookie) {
        Some(v) => (v == canary.record.version, false),
        None => (canary.takes(canary.visitors.fetch_add(1, Ordering::Relaxed)), true),
    };
    let started = Instant::now();
    let version = if to_canary {
        &canary.record.version
    } else {
        &canary.stable_version
    };
    if !version.is_empty() {
        let _ = cx.set_version(version.as_str());
    }
    if !to_canary {
        cx.ext.insert(StableVisit { canary, new, started });
        cx.want_response();
        return Hook::Ready(Ok(Flow::Continue));
    }
    let Some(host) = shared.host.get() else {
        return Hook::Ready(Ok(Flow::Continue));
    };
    let target = AppTarget {
        app: canary.target.clone(),
        host: cx.host.as_deref().map(str::to_owned),
        tenant: cx.tenant().map(str::to_owned),
        base: cx.base.as_deref().map(str::to_owned),
    };
    let request = std::mem::replace(req, Request::new(bext_plugin_abi::Body::empty()));
    Hook::later(async move {
        let Some(mut res) = host.serve_app(target, request).await else {
            return Err(PluginError::hook(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("canary app {} is not served", canary.target),
            ));
        };
        canary.stats[Canary::CANARY].record(res.status(), started.elapsed());
        count(&shared.version_requests, &canary, Canary::CANARY, res.status());
        if new {
            set_cookie(&mut res, &canary.cookie, &canary.record.version);
        }
        Ok(Flow::Respond(res))
    })
}

/// `on_response`: a stable-version answer of a canaried app counted, and
/// a new visitor kept on that version.
pub(crate) fn on_response(shared: &Shared, res: &mut Response, cx: &mut Ctx) {
    if let Some(visit) = cx.ext.remove::<StableVisit>() {
        visit.canary.stats[Canary::STABLE].record(res.status(), visit.started.elapsed());
        count(&shared.version_requests, &visit.canary, Canary::STABLE, res.status());
        if visit.new {
            set_cookie(res, &visit.canary.cookie, "stable");
        }
    }
}

/// Counts an answer on `/__bext/metrics` by app, version, role and
/// status class: bounded, since an app has one canary at a time and its
/// labels come from the registry, never from the request.
fn count(
    family: &std::sync::OnceLock<bext_plugin_abi::metrics::CounterFamily>,
    canary: &Canary,
    role: usize,
    status: StatusCode,
) {
    const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let Some(family) = family.get() else { return };
    let (role, version) = if role == Canary::CANARY {
        ("canary", &canary.record.version)
    } else {
        ("stable", &canary.stable_version)
    };
    let class = CLASSES[usize::from(status.as_u16() / 100).clamp(1, 5) - 1];
    let labels = vec![
        ("app", canary.record.app.clone()),
        ("version", version.clone()),
        ("role", role.to_owned()),
        ("status_class", class.to_owned()),
    ];
    family.get_or_create(&labels).inc();
}

/// The value of cookie `name` in the request, if sent.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Keeps the visitor on version `value` (`stable`: the current one).
fn set_cookie(res: &mut Response, name: &str, value: &str) {
    let cookie = format!("{name}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax");
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(values: &[&str]) -> Request {
        let mut req = Request::new(bext_plugin_abi::Body::empty());
        for v in values {
            req.headers_mut()
                .append(header::COOKIE, http::HeaderValue::from_str(v).unwrap());
        }
        req
    }

    #[test]
    fn the_version_cookie_is_found_among_others() {
        let name = "bext_canary_shop";
        assert_eq!(cookie(&with_cookies(&[]), name), None);
        assert_eq!(
            cookie(&with_cookies(&["a=1; bext_canary_shop=v2; b=2"]), name),
            Some("v2")
        );
        assert_eq!(
            cookie(&with_cookies(&["a=1", "bext_canary_shop=stable"]), name),
            Some("stable")
        );
        // Another app's cookie, or one whose name merely starts the same, is not it.
        assert_eq!(
            cookie(&with_cookies(&["bext_canary_shopping=v9; bext_canary_blog=v1"]), name),
            None
        );
    }

    #[test]
    fn the_set_cookie_keeps_the_visitor_a_week() {
        let mut res = Response::new(bext_plugin_abi::Body::empty());
        set_cookie(&mut res, "bext_canary_shop", "v2");
        set_cookie(&mut res, "bext_canary_blog", "stable");
        let set: Vec<_> = res.headers().get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(
            set,
            [
                "bext_canary_shop=v2; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax",
                "bext_canary_blog=stable; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax"
            ]
        );
    }
}
