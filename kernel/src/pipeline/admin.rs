//! bext's own endpoints, and where the admin surface answers.
//!
//! The admin surface is the detailed `/__bext/health` and every plugin's
//! admin routes (deploy's `/__bext/api/platform/...`, isr's
//! `/__bext/api/invalidate`, the WAF's `/__bext/waf/events`). It answers on
//! `admin_listen` (kernel endpoints there also without the `/__bext`
//! prefix) and, on the public listener, only on the hosts [`access`]
//! allows: `[platform] admin_hosts`, or every host when neither that nor
//! `admin_listen` is set. Any other host gets a bare liveness answer on
//! `/__bext/health`, token or not, and the 404 of an unknown path on admin
//! routes. A process app's logs (`/__bext/api/platform/apps/<id>/logs`)
//! are the kernel's, behind the admin token wherever they are asked for.
//! So is `/__bext/metrics` on the public listener (Prometheus' text format;
//! on `admin_listen` without a token, like the health details).

use std::sync::Arc;

use bext_plugin_abi::admin::{json, refuse_unless_admin};
use bext_plugin_abi::{Ctx, Request, Response};
use http::StatusCode;
use http::header::AUTHORIZATION;

use super::Pipeline;
use crate::Kernel;
use crate::config::platform::PlatformSection;

/// How much of the admin surface a request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A connection on `admin_listen`: health details without a token
    /// (plugins' admin routes still check theirs).
    Listener,
    /// An admin host of the public listener: everything, behind the admin
    /// token.
    Host,
    /// Any other host: the bare liveness answer, nothing else.
    Tenant,
}

/// What a request for `host` (the kernel's normalised host; `None` for an
/// HTTP/1.0 request without one) on the public listener may see: see the
/// module's doc. Decided before any plugin runs, on the host bext routes
/// by.
pub fn access(settings: &PlatformSection, host: Option<&str>) -> Access {
    let admin = match (&settings.admin_hosts, &settings.admin_listen) {
        (Some(hosts), _) => host.is_some_and(|h| hosts.iter().any(|a| a == h)),
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if admin { Access::Host } else { Access::Tenant }
}

/// Says at startup when the admin surface answers on every host.
pub fn warn_if_on_every_host(settings: &PlatformSection) {
    if settings.admin_hosts.is_none() && settings.admin_listen.is_none() {
        tracing::warn!(
            "admin routes and the detailed /__bext/health answer on every host (behind the admin token): \
             set [platform] admin_hosts or admin_listen to keep them off tenants' hosts"
        );
    }
}

/// Answers `path` (with the `/__bext` prefix removed) if it is a kernel
/// endpoint.
pub fn respond(
    kernel: &Kernel,
    pipeline: &Arc<Pipeline>,
    path: &str,
    req: &Request,
    cx: &Ctx,
    access: Access,
) -> Option<Response> {
    match path {
        "/health" => Some(health_answer(kernel, pipeline, req, cx, access)),
        "/metrics" => (access != Access::Tenant).then(|| metrics_answer(pipeline, req, cx, access)),
        _ => {
            let id = path.strip_prefix("/api/platform/apps/")?.strip_suffix("/logs")?;
            (access != Access::Tenant && !id.contains('/')).then(|| logs_answer(pipeline, id, req, cx))
        }
    }
}

/// `GET /__bext/metrics`: every metric in Prometheus' text format, on
/// `admin_listen`, or on an admin host behind the admin token.
fn metrics_answer(pipeline: &Arc<Pipeline>, req: &Request, cx: &Ctx, access: Access) -> Response {
    if access == Access::Host {
        let token = std::env::var(&pipeline.platform.settings.admin_token_env).ok();
        if let Some(refused) = refuse_unless_admin(req, cx, token.as_deref()) {
            return refused;
        }
    }
    let mut res = Response::new(crate::metrics::render(pipeline).into());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    res.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    res
}

/// Lines a logs request gets unless `?lines=N` asks for fewer (or more, up
/// to what is kept).
const DEFAULT_LOG_LINES: usize = 200;

/// `GET /__bext/api/platform/apps/<id>/logs[?lines=N]`: a process app's
/// state, its instances, and the last lines of their output (each with
/// `[app/instance]` in front), behind the admin token.
fn logs_answer(pipeline: &Pipeline, id: &str, req: &Request, cx: &Ctx) -> Response {
    let token = std::env::var(&pipeline.platform.settings.admin_token_env).ok();
    if let Some(refused) = refuse_unless_admin(req, cx, token.as_deref()) {
        return refused;
    }
    let Some(entry) = pipeline.apps.get(id) else {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": format!("no app `{id}`") }),
        );
    };
    let Some(app) = entry.app.runtime.process() else {
        let error = format!(
            "`{id}` is a {} app: only process apps have logs",
            entry.app.runtime.kind()
        );
        return json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": error }));
    };
    let asked = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("lines="));
    let lines = match asked.map(str::parse::<usize>) {
        None => DEFAULT_LOG_LINES,
        Some(Ok(n)) => n.min(crate::apps::process::KEPT_LINES),
        Some(Err(_)) => {
            let error = "`lines` is a number of lines";
            return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": error }));
        }
    };
    let mut answer = app.status();
    answer["app"] = id.into();
    answer["lines"] = app.logs(lines).into();
    json(StatusCode::OK, &answer)
}

/// `/health`: a bare liveness answer (a white-label platform's app list is
/// every customer's domain), always on a tenant's host and without an
/// `Authorization` header on an admin host; the details on `admin_listen`,
/// or on an admin host with `Authorization: Bearer <admin token>`.
fn health_answer(kernel: &Kernel, pipeline: &Pipeline, req: &Request, cx: &Ctx, access: Access) -> Response {
    let bare = match access {
        Access::Listener => false,
        Access::Host => !req.headers().contains_key(AUTHORIZATION),
        Access::Tenant => true,
    };
    if bare {
        let bare = serde_json::json!({ "status": "ok", "generation": pipeline.generation });
        return json(StatusCode::OK, &bare);
    }
    if access == Access::Host {
        let token = std::env::var(&pipeline.platform.settings.admin_token_env).ok();
        if let Some(refused) = refuse_unless_admin(req, cx, token.as_deref()) {
            return refused;
        }
    }
    json(StatusCode::OK, &health(kernel, pipeline))
}

fn health(kernel: &Kernel, pipeline: &Pipeline) -> serde_json::Value {
    let mut apps: Vec<_> = pipeline
        .apps
        .values()
        .map(|e| {
            let mut app = serde_json::json!({
                "id": &*e.app.id,
                "runtime": e.app.runtime.kind(),
                "domains": e.app.domains,
            });
            if let Some(p) = e.app.runtime.process() {
                let status = p.status();
                app["state"] = status["state"].clone();
                app["reason"] = status["reason"].clone();
            }
            if let Some(js) = e.app.runtime.js() {
                // A module checked after start (the first `bext serve`).
                app["state"] = match js.check_status() {
                    bext_js::CheckStatus::Pending => "checking".into(),
                    bext_js::CheckStatus::Passed => "ready".into(),
                    bext_js::CheckStatus::Failed(reason) => {
                        app["reason"] = reason.into();
                        "failed".into()
                    }
                };
            }
            app
        })
        .collect();
    apps.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": kernel.started.elapsed().as_secs(),
        "generation": pipeline.generation,
        "redis": match &pipeline.fleet {
            Some(e) if bext_plugin_abi::Fleet::is_up(&**e) => "up",
            Some(_) => "down",
            None => "off",
        },
        "apps": apps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: Option<&[&str]>, listen: Option<&str>) -> PlatformSection {
        PlatformSection {
            admin_hosts: hosts.map(|h| h.iter().map(|s| (*s).to_owned()).collect()),
            admin_listen: listen.map(Into::into),
            ..PlatformSection::default()
        }
    }

    #[test]
    fn admin_hosts_then_admin_listen_then_every_host() {
        let open = settings(None, None);
        assert_eq!(access(&open, Some("acme.tenant.test")), Access::Host);
        assert_eq!(access(&open, None), Access::Host);

        let listener = settings(None, Some("127.0.0.1:3070"));
        assert_eq!(access(&listener, Some("acme.tenant.test")), Access::Tenant);
        assert_eq!(access(&listener, Some("localhost")), Access::Tenant);

        let hosts = ["admin.test"];
        for s in [
            settings(Some(&hosts), None),
            settings(Some(&hosts), Some("127.0.0.1:3070")),
        ] {
            assert_eq!(access(&s, Some("admin.test")), Access::Host);
            assert_eq!(access(&s, Some("acme.tenant.test")), Access::Tenant);
            assert_eq!(access(&s, Some("admin.test.evil.test")), Access::Tenant);
            assert_eq!(access(&s, None), Access::Tenant, "HTTP/1.0 without a host");
        }
        assert_eq!(access(&settings(Some(&[]), None), Some("admin.test")), Access::Tenant);
    }
}
