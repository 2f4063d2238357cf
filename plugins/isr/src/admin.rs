//! The admin endpoints under the manifest's `base`, which the kernel
//! mounts behind the admin token: `POST {base}/invalidate` drops entries by tag, path or app
//! (here and across the fleet), and `POST {base}/revalidate` drops one
//! path's entries and has the app render it again into the cache.

use bext_plugin_abi::admin::json;
use bext_plugin_abi::{
    AppInfo, AppTarget, ArrivedOverTls, Body, EncodedSlashes, PathError, Request, Response, normalise_host,
    normalise_path, pattern_reaches, text_response,
};
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};

use crate::IsrPlugin;
use crate::invalidate::AdminOrder;
use crate::key::{IgnoredParams, KeyParts, encode_path, normalise_query, primary_key};
use crate::save::Pending;

/// Where the admin endpoints live when the manifest names no `base`.
pub(crate) const DEFAULT_BASE: &str = "/__bext/api";

/// The endpoints under the base.
pub(crate) const PATHS: &[&str] = &["/invalidate", "/revalidate"];

/// An admin endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `{base}/invalidate`.
    Invalidate,
    /// `{base}/revalidate`.
    Revalidate,
}

impl Action {
    /// The endpoint `path` names under `base` (given without a trailing
    /// `/`), if any.
    pub(crate) fn of(base: &str, path: &str) -> Option<Action> {
        match path.strip_prefix(base) {
            Some("/invalidate") => Some(Action::Invalidate),
            Some("/revalidate") => Some(Action::Revalidate),
            _ => None,
        }
    }
}

/// Why a path given to an admin endpoint names no entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BadPath {
    /// It has a query or a fragment (`invalidate` takes paths only).
    NotAPath(String),
    /// The kernel would refuse it as a request path.
    Refused(String, PathError),
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadPath::NotAPath(p) => write!(f, "path {p:?}: give a path without `?` or `#`"),
            BadPath::Refused(p, e) => write!(f, "path {p:?}: {e}"),
        }
    }
}

/// A path an admin endpoint was given, in the form entries record: bytes
/// a request target cannot carry raw percent-encoded (`/café` is
/// `/caf%C3%A9`), then the kernel's canonical form
/// ([`normalise_path`]: `%c3` is `%C3`, `%61` is `a`, `//` and `..` gone).
fn admin_path(given: &str) -> Result<String, BadPath> {
    if given.contains(['?', '#']) {
        return Err(BadPath::NotAPath(given.to_owned()));
    }
    let encoded = encode_path(given);
    match normalise_path(&encoded, EncodedSlashes::Reject) {
        Ok(p) => Ok(p.into_owned()),
        Err(e) => Err(BadPath::Refused(given.to_owned(), e)),
    }
}

/// `revalidate`'s `path` as a request through the cache is keyed: the
/// path in the kernel's form, and the query normalised (ignored
/// parameters gone, `None` when nothing is left). The error is the 400's
/// text.
fn keyed_target(path: &str, ignored: &IgnoredParams) -> Result<(String, Option<String>), String> {
    let (path_only, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let path_only = admin_path(path_only).map_err(|e| format!("{e}\n"))?;
    let query = query
        .map(|q| normalise_query(&encode_path(q), ignored))
        .transpose()
        .map_err(|e| format!("`path` {path:?}: {e}\n"))?
        .filter(|q| !q.is_empty());
    Ok((path_only, query))
}

/// The host a `revalidate` names, in the kernel's form (lower case, no
/// port, no trailing dot: what entries are keyed by), with the tenant the
/// router gives a request on it (a tenant's own domain's, or what a
/// wildcard domain captures: `w` of `w.shop.test` under `*.shop.test`),
/// refused (the 400's text, naming it) when `app` does not answer on it,
/// or when `tenant` is given and is not the host's: the order drops every
/// entry of the path before the app renders it again, so a made-up host or
/// tenant would empty the path's cache and store a page no client asks
/// for. A host reaches the app when one of its domains (or tenants'
/// domains) does; an app without domains (the default app) answers any
/// host that no other app's domains claim. An app unknown here is left to
/// `serve_app`'s 404; one with a `~` pattern is given the benefit of the
/// doubt (this plugin has no regex engine), its tenant as given.
fn check_host(
    apps: &[AppInfo],
    app: &str,
    given: &str,
    tenant: Option<&str>,
) -> Result<(Box<str>, Option<String>), String> {
    let host = normalise_host(given.as_bytes()).map_err(|e| format!("`host` {given:?}: {e}\n"))?;
    // A canary (`app@version`) answers on its app's domains.
    let id = app.split_once('@').map_or(app, |(id, _)| id);
    let Some(info) = apps.iter().find(|a| a.id == id) else {
        return Ok((host, tenant.map(str::to_owned)));
    };
    let reaches =
        |a: &AppInfo| a.domains.iter().any(|d| pattern_reaches(d, &host)) || a.tenant_domains.contains_key(&*host);
    let regex = info.domains.iter().any(|d| d.starts_with('~'));
    let default_app = info.domains.is_empty() && info.tenant_domains.is_empty();
    let served = if default_app {
        !apps.iter().any(|a| a.id != id && reaches(a))
    } else {
        reaches(info) || regex
    };
    if !served {
        return Err(format!(
            "`host` {given:?}: app {app:?} does not answer on it (its domains: {:?})\n",
            info.domains
        ));
    }
    // As the router finds it: an exact domain, a tenant's own domain, then
    // the longest wildcard suffix (the shortest tenant).
    let exact = info
        .domains
        .iter()
        .any(|d| !d.starts_with("*.") && pattern_reaches(d, &host));
    let own = info.tenant_domains.get(&*host).cloned();
    let captured = (!exact && own.is_none())
        .then(|| {
            host.match_indices('.').find_map(|(i, _)| {
                let suffix = &host[i + 1..];
                info.domains
                    .iter()
                    .any(|d| {
                        d.strip_prefix("*.")
                            .is_some_and(|w| w.eq_ignore_ascii_case(suffix.trim_end_matches('.')))
                    })
                    .then(|| host[..i].to_owned())
            })
        })
        .flatten();
    let derived = own.or(captured);
    match (tenant, derived) {
        (Some(t), Some(d)) if t != d => Err(format!("`tenant` {t:?}: a request on {host:?} is for tenant {d:?}\n")),
        (Some(t), None) if !(regex || default_app) => {
            Err(format!("`tenant` {t:?}: a request on {host:?} has no tenant\n"))
        }
        (Some(t), _) => Ok((host, Some(t.to_owned()))),
        (None, d) => Ok((host, d)),
    }
}

impl IsrPlugin {
    /// Answers `{base}/invalidate` and `{base}/revalidate` (the kernel
    /// checked the token).
    pub(crate) async fn serve_admin(&self, req: &mut Request, action: Action) -> Response {
        if req.method() != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        let body = req.body_mut().peek(64 << 10).await;
        let mut order: AdminOrder = match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}\n")),
        };
        // Paths in the form entries record (the kernel's canonical one), so
        // `/café`, `/caf%c3%a9` and `/caf%C3%A9` name the same entries.
        for path in &mut order.paths {
            match admin_path(path) {
                Ok(canonical) => *path = canonical,
                Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        match action {
            Action::Invalidate => {
                if order.tags.is_empty() && order.paths.is_empty() && order.app.is_none() {
                    return text_response(StatusCode::BAD_REQUEST, "give `tags`, `paths` or `app`\n");
                }
                let removed = self.invalidate_everywhere(&order).await;
                json(StatusCode::OK, &serde_json::json!({ "removed": removed }))
            }
            Action::Revalidate => self.revalidate(order).await,
        }
    }

    /// Drops the entries of `order.path` and has the app render it again
    /// into the cache, as a request through the cache would ask for it.
    async fn revalidate(&self, mut order: AdminOrder) -> Response {
        let (Some(app), Some(path)) = (order.app.clone(), order.path.clone()) else {
            return text_response(StatusCode::BAD_REQUEST, "give `app` and `path`\n");
        };
        let over_tls = match order.scheme.as_deref() {
            None | Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("`scheme` {other:?}: give \"http\" or \"https\"\n"),
                );
            }
        };
        let Some(host) = self.host.get() else {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n");
        };
        if let Some(given) = order.host.as_deref() {
            match check_host(host.apps(), &app, given, order.tenant.as_deref()) {
                Ok((h, tenant)) => {
                    order.host = Some(h.into());
                    order.tenant = tenant;
                }
                Err(e) => return text_response(StatusCode::BAD_REQUEST, e),
            }
        }
        // The app is asked for what the key will say, as for any request
        // that goes through the cache.
        let (path_only, query) = match keyed_target(&path, &self.ignored) {
            Ok(t) => t,
            Err(e) => return text_response(StatusCode::BAD_REQUEST, e),
        };
        let target = match &query {
            Some(q) => format!("{path_only}?{q}"),
            None => path_only.clone(),
        };
        let removed = self
            .invalidate_everywhere(&AdminOrder {
                paths: vec![path_only.clone()],
                ..order.clone()
            })
            .await;
        let Ok(uri) = target.parse::<http::Uri>() else {
            return text_response(StatusCode::BAD_REQUEST, "`path` is not a request path\n");
        };
        let mut fetch = Request::new(Body::empty());
        *fetch.uri_mut() = uri;
        if let Some(h) = order.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            fetch.headers_mut().insert(http::header::HOST, h);
        }
        if over_tls {
            fetch.extensions_mut().insert(ArrivedOverTls);
        }
        let target = AppTarget {
            app: app.clone(),
            host: order.host.clone(),
            tenant: order.tenant.clone(),
            base: None,
        };
        let Some(mut res) = host.serve_app(target, fetch).await else {
            return text_response(StatusCode::NOT_FOUND, "no such app\n");
        };
        let status = res.status().as_u16();
        let primary = primary_key(&KeyParts {
            app: &app,
            tenant: order.tenant.as_deref(),
            locale: "",
            bot: false,
            caller: None,
            path: &path_only,
            query: query.as_deref(),
            scheme: if over_tls { "https" } else { "http" },
            host: order.host.as_deref().unwrap_or(""),
        });
        let rule = self.rules.find(&path_only).map(|r| r.say);
        let pending = Pending {
            app: app.clone(),
            cache: self.caches().cache_for(&app, self.limits),
            primary,
            request_headers: HeaderMap::new(),
            path: path_only,
            rule,
            caller_keyed: false,
            flight: None,
            fallback: None,
        };
        let stored = self.store.store(pending, &mut res).await;
        json(
            StatusCode::OK,
            &serde_json::json!({ "status": status, "stored": stored, "removed": removed }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revalidated_host_must_be_one_the_app_answers_on() {
        let app = |id: &str, domains: &[&str]| AppInfo {
            id: id.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            tenant_domains: [("shop.customer.com".to_string(), "customer".to_string())]
                .into_iter()
                .filter(|_| id == "shop")
                .collect(),
        };
        let apps = [
            app("shop", &["shop.test", "*.shop.test"]),
            app("blog", &["blog.test"]),
            app("site", &[]),
        ];
        for (given, keyed) in [
            ("shop.test", "shop.test"),
            ("SHOP.test.", "shop.test"),
            ("a.shop.test", "a.shop.test"),
            ("shop.customer.com", "shop.customer.com"),
            ("shop.test:8080", "shop.test"),
        ] {
            assert_eq!(
                check_host(&apps, "shop", given, None).map(|(h, _)| h).as_deref(),
                Ok(keyed),
                "{given}"
            );
        }
        assert!(check_host(&apps, "shop@v2", "shop.test", None).is_ok(), "a canary");
        let refused = check_host(&apps, "shop", "evil.test", None).unwrap_err();
        assert!(
            refused.contains("\"evil.test\"") && refused.contains("\"shop\""),
            "{refused}"
        );
        assert!(check_host(&apps, "shop", "blog.test", None).is_err(), "another app's");
        assert!(check_host(&apps, "shop", "bad host", None).is_err());
        // The default app answers hosts no other app claims.
        assert!(check_host(&apps, "site", "anything.test", None).is_ok());
        assert!(check_host(&apps, "site", "blog.test", None).is_err());
        assert!(
            check_host(&apps, "unknown", "x.test", None).is_ok(),
            "left to serve_app"
        );
        // The tenant a request on the host is for: captured by a wildcard,
        // a tenant's own domain's, none on an exact domain; a given one
        // that differs is refused.
        let tenant = |host, given| check_host(&apps, "shop", host, given).map(|(_, t)| t);
        assert_eq!(tenant("w.shop.test", None), Ok(Some("w".into())));
        assert_eq!(tenant("a.b.shop.test", None), Ok(Some("a.b".into())));
        assert_eq!(tenant("shop.customer.com", None), Ok(Some("customer".into())));
        assert_eq!(tenant("shop.test", None), Ok(None));
        assert_eq!(tenant("w.shop.test", Some("w")), Ok(Some("w".into())));
        assert!(tenant("w.shop.test", Some("victim")).is_err());
        assert!(tenant("shop.test", Some("victim")).is_err());
        assert!(tenant("shop.customer.com", Some("other")).is_err());
    }

    /// L9: every spelling of a path names the entries the kernel's form does.
    #[test]
    fn admin_paths_take_the_kernel_form() {
        for given in ["/caf%C3%A9", "/caf%c3%a9", "/café", "//caf%c3%a9", "/x/../caf%C3%A9"] {
            assert_eq!(admin_path(given).as_deref(), Ok("/caf%C3%A9"), "{given}");
        }
        assert_eq!(admin_path("/%61b").as_deref(), Ok("/ab"));
        assert_eq!(
            admin_path("/a%2Fb"),
            Err(BadPath::Refused("/a%2Fb".into(), PathError::EncodedSlash))
        );
        assert_eq!(
            admin_path("/../x"),
            Err(BadPath::Refused("/../x".into(), PathError::AboveRoot))
        );
        assert_eq!(admin_path("/p?x=1"), Err(BadPath::NotAPath("/p?x=1".into())));
        assert!(admin_path("p").is_err());
        assert!(
            BadPath::Refused("/a%2Fb".into(), PathError::EncodedSlash)
                .to_string()
                .contains("\"/a%2Fb\"")
        );
    }

    #[test]
    fn endpoints_are_found_under_the_base_only() {
        let base = DEFAULT_BASE;
        assert_eq!(Action::of(base, "/__bext/api/invalidate"), Some(Action::Invalidate));
        assert_eq!(Action::of(base, "/__bext/api/revalidate"), Some(Action::Revalidate));
        for path in [
            "/__bext/api/invalidate/",
            "/__bext/api/invalidatex",
            "/__bext/api",
            "/__bext/apix/invalidate",
            "/invalidate",
            "/other/__bext/api/invalidate",
        ] {
            assert_eq!(Action::of(base, path), None, "{path}");
        }
        assert_eq!(Action::of("/ops", "/ops/revalidate"), Some(Action::Revalidate));
    }

    #[test]
    fn revalidation_asks_for_the_keyed_target() {
        let ig = IgnoredParams::new(&["utm_*".into()]);
        assert_eq!(
            keyed_target("/p?utm_source=x&b=2&a=1", &ig),
            Ok(("/p".into(), Some("a=1&b=2".into())))
        );
        assert_eq!(keyed_target("/p?utm_source=x", &ig), Ok(("/p".into(), None)));
        assert_eq!(keyed_target("/p?", &ig), Ok(("/p".into(), None)));
        assert_eq!(
            keyed_target("/café?q=é", &ig),
            Ok(("/caf%C3%A9".into(), Some("q=%C3%A9".into())))
        );
        let semicolon = keyed_target("/p?a=1;b=2", &ig).unwrap_err();
        assert!(semicolon.starts_with("`path` \"/p?a=1;b=2\": `;`"), "{semicolon}");
        assert!(semicolon.ends_with('\n'));
        let slash = keyed_target("/a%2Fb?x=1", &ig).unwrap_err();
        assert!(slash.starts_with("path \"/a%2Fb\": "), "{slash}");
    }
}
