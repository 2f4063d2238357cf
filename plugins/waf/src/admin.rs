//! The audit log's endpoint, `GET {base}/events[?limit=N]`: the newest
//! decisions first, as JSON, for an admin. The kernel mounts it and
//! checks the token (`Authorization: Bearer` and the token in
//! `audit.token_env`; without a token it does not exist) after the fetch
//! stage, where this plugin resolves the client behind trusted proxies.

use bext_plugin_abi::admin::{AdminRoutes, json};
use bext_plugin_abi::{PluginError, Request, Response, text_response};
use http::{Method, StatusCode};

use crate::audit::AuditLog;
use crate::config::AuditConfig;

/// Events listed when the request does not say how many.
const DEFAULT_LIMIT: usize = 100;

/// The endpoint of one plugin instance.
pub(crate) struct Admin {
    routes: AdminRoutes,
    capacity: usize,
}

impl Admin {
    /// The endpoint under `base` (the manifest's; `/__bext/waf` without).
    pub(crate) fn new(base: Option<&str>, audit: &AuditConfig) -> Result<Self, PluginError> {
        if audit.capacity == 0 {
            return Err(PluginError::config("audit.capacity", "must be at least 1"));
        }
        let routes = AdminRoutes::under("base", base.unwrap_or("/__bext/waf"))?
            .only(&["/events"])
            .token_env(audit.token_env.clone());
        Ok(Admin {
            routes,
            capacity: audit.capacity,
        })
    }

    /// Where the endpoint is, for the kernel.
    pub(crate) fn routes(&self) -> &AdminRoutes {
        &self.routes
    }

    /// Sizes the instances' audit log (the newest configuration wins).
    pub(crate) fn init(&self, log: &AuditLog) {
        log.set_capacity(self.capacity);
    }

    /// The events of `log` (the kernel checked the token).
    pub(crate) fn events(&self, req: &Request, log: &AuditLog) -> Response {
        if req.method() != Method::GET {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        let body = serde_json::json!({ "events": log.recent(limit(req.uri().query())) });
        json(StatusCode::OK, &body)
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
        let events = |base| {
            Admin::new(base, &audit)
                .unwrap()
                .routes
                .rest("/__bext/waf/events")
                .is_some()
        };
        assert!(events(None));
        assert!(!events(Some("/__bext/sec/")));
        let moved = Admin::new(Some("/__bext/sec/"), &audit).unwrap();
        assert_eq!(moved.routes.rest("/__bext/sec/events"), Some("/events"));
        assert!(
            Admin::new(Some("/sec/"), &audit).is_err(),
            "admin routes live under /__bext/"
        );
        let none = AuditConfig {
            capacity: 0,
            ..AuditConfig::default()
        };
        assert!(Admin::new(None, &none).is_err());
    }
}
