//! Where a plugin's admin routes mount, how they answer, and the
//! operator's in-process requests: what every plugin with admin
//! endpoints used to write for itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::{Body, PluginError, Response};

/// Where the kernel mounts a plugin's admin routes ([`crate::Plugin::admin_routes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoutes {
    base: String,
    paths: Vec<&'static str>,
    token_env: Option<String>,
}

impl AdminRoutes {
    /// Every path under `base` (and `base` itself), which must be under
    /// `/__bext/` (`field` is the config field named in the error: the
    /// manifest's `base`).
    pub fn under(field: &str, base: &str) -> Result<AdminRoutes, PluginError> {
        let base = base.trim_end_matches('/');
        match base.strip_prefix("/__bext/") {
            Some(rest) if !rest.is_empty() => Ok(AdminRoutes {
                base: base.to_owned(),
                paths: Vec::new(),
                token_env: None,
            }),
            _ => Err(PluginError::config(
                field,
                format!("`{base}`: admin routes mount under /__bext/ (like /__bext/api/<plugin>)"),
            )),
        }
    }

    /// Only these paths under the base (`/invalidate`), each exactly.
    pub fn only(mut self, paths: &[&'static str]) -> AdminRoutes {
        self.paths = paths.to_vec();
        self
    }

    /// Guarded by the token in this environment variable (the plugin's own
    /// `admin_token_env` setting) instead of the platform's `admin_token_env`.
    pub fn token_env(mut self, env: impl Into<String>) -> AdminRoutes {
        self.token_env = Some(env.into());
        self
    }

    /// The base path (`/__bext/api/platform`), without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The token's environment variable, when the plugin names its own.
    pub fn token_env_name(&self) -> Option<&str> {
        self.token_env.as_deref()
    }

    /// The part of `path` after the base (`""`, `/apps/blog`) when `path`
    /// is one of these routes.
    pub fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.base.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        (self.paths.is_empty() || self.paths.contains(&rest)).then_some(rest)
    }
}

/// An admin answer: `value` as JSON (one line and a newline), never
/// stored by a cache.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    body.push(b'\n');
    let mut res = Response::new(Body::full(bytes::Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Hears of each file a [`LocalUpload`] stores: its path and size.
pub type Progress = dyn Fn(&Path, u64) + Send + Sync;

/// An admin request the operator's own `bext` command makes in-process,
/// when no server runs: the kernel's CLI puts it in the request's
/// extensions, where no network request can put anything. `dir` stands in
/// for an uploaded archive, so the plugin reads the operator's directory
/// where it is (and reports each file it stores to `progress`) instead of
/// unpacking a copy.
#[derive(Clone)]
pub struct LocalUpload {
    /// The directory the command was given.
    pub dir: PathBuf,
    /// Called for each file stored.
    pub progress: Arc<Progress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_under_their_base_only() {
        let all = AdminRoutes::under("base", "/__bext/api/platform/").unwrap();
        assert_eq!(all.base(), "/__bext/api/platform");
        assert_eq!(all.rest("/__bext/api/platform"), Some(""));
        assert_eq!(all.rest("/__bext/api/platform/apps/x"), Some("/apps/x"));
        assert_eq!(all.rest("/__bext/api/platformx"), None);
        assert_eq!(all.rest("/__bext/api"), None);
        let two = AdminRoutes::under("base", "/__bext/api")
            .unwrap()
            .only(&["/invalidate", "/revalidate"])
            .token_env("CACHE_TOKEN");
        assert_eq!(two.rest("/__bext/api/invalidate"), Some("/invalidate"));
        assert_eq!(two.rest("/__bext/api/invalidate/x"), None);
        assert_eq!(two.rest("/__bext/api/platform/apps"), None);
        assert_eq!(two.token_env_name(), Some("CACHE_TOKEN"));
        assert_eq!(all.token_env_name(), None);
    }

    #[test]
    fn routes_outside_bext_are_refused() {
        for base in ["/admin", "/__bext", "/__bext/", "/__bextra/x", "api"] {
            let err = AdminRoutes::under("base", base).unwrap_err();
            assert!(
                matches!(err, PluginError::Config { ref path, .. } if path == "base"),
                "{base}"
            );
        }
    }

    #[test]
    fn json_answers_are_json_and_not_stored() {
        let res = json(StatusCode::CREATED, &serde_json::json!({ "a": 1 }));
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(res.body().as_bytes().unwrap(), b"{\"a\":1}\n");
    }
}
