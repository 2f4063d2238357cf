//! The audit log's endpoint, `GET {base}/events[?limit=N]`: the newest
//! decisions first, as JSON, for an admin (`Authorization: Bearer` and
//! the token in `audit.token_env`; without a token it does not exist).
//! Answered in the fetch stage, so it, and its throttle of wrong tokens,
//! see the client behind trusted proxies.

use std::sync::OnceLock;

use bext_plugin_abi::admin::refuse_unless_admin;
use bext_plugin_abi::{Body, Ctx, PluginError, Request, Response, text_response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};

use crate::audit::AUDIT;
use crate::config::AuditConfig;

/// Events listed when the request does not say how many.
const DEFAULT_LIMIT: usize = 100;

/// The endpoint of one plugin instance.
pub(crate) struct Admin {
    events_path: String,
    capacity: usize,
    token_env: String,
    /// Read in [`Admin::init`]; `None` inside: no token, no endpoint.
    token: OnceLock<Option<String>>,
}

impl Admin {
    /// The endpoint under `base` (the manifest's; `/__bext/waf` without).
    pub(crate) fn new(base: Option<&str>, audit: &AuditConfig) -> Result<Self, PluginError> {
        if audit.capacity == 0 {
            return Err(PluginError::config("audit.capacity", "must be at least 1"));
        }
        let base = base.unwrap_or("/__bext/waf").trim_end_matches('/');
        Ok(Admin {
            events_path: format!("{base}/events"),
            capacity: audit.capacity,
            token_env: audit.token_env.clone(),
            token: OnceLock::new(),
        })
    }

    /// Sizes the process's audit log and reads the admin token.
    pub(crate) fn init(&self) {
        AUDIT.set_capacity(self.capacity);
        let token = std::env::var(&self.token_env).ok().filter(|t| !t.is_empty());
        let _ = self.token.set(token);
    }

    /// The answer to a request for the endpoint; `None` for any other path.
    pub(crate) fn answer(&self, req: &Request, cx: &Ctx) -> Option<Response> {
        (req.uri().path() == self.events_path).then(|| self.events(req, cx))
    }

    fn events(&self, req: &Request, cx: &Ctx) -> Response {
        if let Some(refused) = refuse_unless_admin(req, cx, self.token.get().and_then(Option::as_deref)) {
            return refused;
        }
        if req.method() != Method::GET {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        let body = serde_json::json!({ "events": AUDIT.recent(limit(req.uri().query())) });
        let mut res = Response::new(Body::from(body.to_string()));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The query's `limit=N`, or [`DEFAULT_LIMIT`].
fn limit(query: Option<&str>) -> usize {
    query
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_comes_from_the_query() {
        assert_eq!(limit(None), 100);
        assert_eq!(limit(Some("limit=5")), 5);
        assert_eq!(limit(Some("a=1&limit=7&limit=9")), 7);
        assert_eq!(limit(Some("limit=-1")), 100);
        assert_eq!(limit(Some("nolimit=3")), 100);
    }

    #[test]
    fn the_path_is_under_the_base_and_capacity_is_checked() {
        let audit = AuditConfig::default();
        assert_eq!(Admin::new(None, &audit).unwrap().events_path, "/__bext/waf/events");
        assert_eq!(Admin::new(Some("/sec/"), &audit).unwrap().events_path, "/sec/events");
        let none = AuditConfig {
            capacity: 0,
            ..AuditConfig::default()
        };
        assert!(Admin::new(None, &none).is_err());
    }
}
