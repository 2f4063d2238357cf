//! bext's own endpoints: under `/__bext/` on every host, and without the
//! prefix on `admin_listen`.

use std::sync::Arc;

use bext_plugin_abi::{Body, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::Kernel;
use crate::pipeline::Pipeline;

/// Answers `path` (with the `/__bext` prefix removed) if it is a kernel
/// endpoint.
pub fn respond(kernel: &Kernel, pipeline: &Arc<Pipeline>, path: &str) -> Option<Response> {
    match path {
        "/health" => Some(json(StatusCode::OK, &health(kernel, pipeline))),
        _ => None,
    }
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

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
