//! bext's own endpoints: under `/__bext/` on every host, and without the
//! prefix on `admin_listen`.

use std::sync::Arc;

use bext_plugin_abi::admin::{json, refuse_unless_admin};
use bext_plugin_abi::{Ctx, Request, Response};
use http::StatusCode;
use http::header::AUTHORIZATION;

use crate::Kernel;
use crate::pipeline::Pipeline;

/// Answers `path` (with the `/__bext` prefix removed) if it is a kernel
/// endpoint. `trusted` is a connection on `admin_listen`; elsewhere the
/// details need the admin token.
pub fn respond(
    kernel: &Kernel,
    pipeline: &Arc<Pipeline>,
    path: &str,
    req: &Request,
    cx: &Ctx,
    trusted: bool,
) -> Option<Response> {
    match path {
        "/health" => Some(health_answer(kernel, pipeline, req, cx, trusted)),
        _ => None,
    }
}

/// `/health`: on a public host, a bare liveness answer (a white-label
/// platform's app list is every customer's domain); the details on
/// `admin_listen` or with `Authorization: Bearer <admin token>`.
fn health_answer(kernel: &Kernel, pipeline: &Pipeline, req: &Request, cx: &Ctx, trusted: bool) -> Response {
    if !trusted && !req.headers().contains_key(AUTHORIZATION) {
        let bare = serde_json::json!({ "status": "ok", "generation": pipeline.generation });
        return json(StatusCode::OK, &bare);
    }
    if !trusted {
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
            serde_json::json!({
                "id": &*e.app.id,
                "runtime": e.app.runtime.kind(),
                "domains": e.app.domains,
            })
        })
        .collect();
    apps.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": kernel.started.elapsed().as_secs(),
        "generation": pipeline.generation,
        "redis": match crate::edge::current() {
            Some(e) if e.is_up() => "up",
            Some(_) => "down",
            None => "off",
        },
        "apps": apps,
    })
}
