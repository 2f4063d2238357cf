//! CORS: which origins may call an app from a browser, answered
//! preflights, and the headers on actual responses.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderValue, VARY,
};
use http::{Method, StatusCode};

use bext_plugin_abi::{Body, Ctx, Request, Response};

use crate::config::CorsConfig;

/// A compiled `cors:` block.
#[derive(Debug)]
pub struct Cors {
    any_origin: bool,
    exact: Vec<String>,
    /// `(scheme://, .suffix)` of `scheme://*.suffix` entries.
    wildcard: Vec<(String, String)>,
    methods: Vec<Method>,
    any_header: bool,
    headers: Vec<String>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

impl Cors {
    /// Validates and compiles; errors name the offending field.
    pub fn new(c: &CorsConfig) -> Result<Cors, (String, String)> {
        let mut cors = Cors {
            any_origin: false,
            exact: Vec::new(),
            wildcard: Vec::new(),
            methods: Vec::new(),
            any_header: false,
            headers: Vec::new(),
            allow_methods: HeaderValue::from_static(""),
            allow_headers: None,
            expose: None,
            credentials: c.credentials,
            max_age: HeaderValue::from(c.max_age.0.as_secs()),
        };
        for (i, o) in c.origins.iter().enumerate() {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            if o == "*" {
                cors.any_origin = true;
            } else if let Some((scheme, rest)) = o.split_once("://*.") {
                cors.wildcard.push((format!("{scheme}://"), format!(".{rest}")));
            } else if o.contains("://") && !o.contains('*') {
                cors.exact.push(o);
            } else {
                return Err((
                    format!("cors.origins[{i}]"),
                    format!("`{o}` is not an origin like https://app.example.com, https://*.example.com or *"),
                ));
            }
        }
        if cors.any_origin && c.credentials {
            return Err((
                "cors.credentials".into(),
                "browsers refuse credentials with the origin `*`; list the origins".into(),
            ));
        }
        for (i, m) in c.methods.iter().enumerate() {
            let m = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| (format!("cors.methods[{i}]"), format!("`{m}` is not a method")))?;
            cors.methods.push(m);
        }
        cors.allow_methods =
            header_list(cors.methods.iter().map(Method::as_str)).unwrap_or(HeaderValue::from_static(""));
        for h in &c.headers {
            if h == "*" {
                cors.any_header = true;
            } else {
                cors.headers.push(h.to_ascii_lowercase());
            }
        }
        cors.allow_headers = header_list(cors.headers.iter().map(String::as_str));
        cors.expose = header_list(c.expose.iter().map(String::as_str));
        Ok(cors)
    }

    /// Whether `origin` may call the app.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.to_ascii_lowercase();
        self.exact.contains(&origin)
            || self.wildcard.iter().any(|(scheme, suffix)| {
                origin
                    .strip_prefix(scheme.as_str())
                    .is_some_and(|host| host.ends_with(suffix.as_str()) && host.len() > suffix.len())
            })
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-
    /// Method`), or `None` if the request is not one. A preflight never
    /// reaches the app; a refused one gets no CORS headers, so the browser
    /// stops there.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<(StatusCode, HeaderMap)> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
        let wanted = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut out = HeaderMap::new();
        out.insert(
            VARY,
            HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        );
        let method_ok = Method::from_bytes(wanted.as_bytes()).is_ok_and(|m| self.methods.contains(&m));
        let asked: Vec<String> = headers
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let headers_ok = self.any_header || asked.iter().all(|h| self.headers.contains(h));
        if !(self.allows_origin(origin) && method_ok && headers_ok) {
            return Some((StatusCode::NO_CONTENT, out));
        }
        self.origin_headers(origin, &mut out);
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
        let allow_headers = if self.any_header {
            header_list(asked.iter().map(String::as_str))
        } else {
            self.allow_headers.clone()
        };
        if let Some(h) = allow_headers {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, h);
        }
        out.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        Some((StatusCode::NO_CONTENT, out))
    }

    /// On the request: the answer to a preflight; otherwise the request's
    /// `Origin`, if any, kept for [`respond`](Self::respond).
    pub fn request(&self, req: &Request, cx: &mut Ctx) -> Option<Response> {
        if let Some((status, headers)) = self.preflight(req.method(), req.headers()) {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = status;
            *res.headers_mut() = headers;
            return Some(res);
        }
        // Most requests (same-origin navigations) carry no Origin:
        // nothing to keep for them.
        if let Some(origin) = req.headers().get(http::header::ORIGIN) {
            cx.ext.insert(RequestOrigin(origin.clone()));
        }
        None
    }

    /// On the response: [`decorate`](Self::decorate) for the `Origin`
    /// [`request`](Self::request) kept.
    pub fn respond(&self, cx: &Ctx, res: &mut HeaderMap) {
        let origin = cx.ext.get::<RequestOrigin>().and_then(|o| o.0.to_str().ok());
        self.decorate(origin, res);
    }

    /// Adds CORS headers to an actual response for `origin` (the request's
    /// `Origin`), if allowed; `Vary: Origin` either way, so caches keep
    /// answers for different origins apart.
    pub fn decorate(&self, origin: Option<&str>, res: &mut HeaderMap) {
        if self.varies() {
            vary_on_origin(res);
        }
        self.allowed_origin(origin, res);
    }

    /// Whether every actual response gets `Vary: Origin`: unless any
    /// origin gets the same `*` answer.
    pub(crate) fn varies(&self) -> bool {
        !self.any_origin || self.credentials
    }

    /// [`respond`](Self::respond) without `Vary`, which the caller adds
    /// (see [`varies`](Self::varies) and [`vary_on_origin`]).
    pub(crate) fn respond_but_vary(&self, cx: &Ctx, res: &mut HeaderMap) {
        if let Some(origin) = cx.ext.get::<RequestOrigin>() {
            self.allowed_origin(origin.0.to_str().ok(), res);
        }
    }

    /// The headers of an allowed `origin`; nothing for another.
    fn allowed_origin(&self, origin: Option<&str>, res: &mut HeaderMap) {
        let Some(origin) = origin.filter(|o| self.allows_origin(o)) else {
            return;
        };
        self.origin_headers(origin, res);
        if let Some(e) = &self.expose {
            res.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }

    fn origin_headers(&self, origin: &str, out: &mut HeaderMap) {
        let value = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.credentials {
            out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
}

/// The request's `Origin`, kept for the response's CORS headers.
#[derive(Clone)]
struct RequestOrigin(HeaderValue);

/// Adds `Origin` to the response's `Vary`. The static runtime's and the
/// compress plugin's `Vary: accept-encoding` becomes one prebuilt value,
/// as a second `Vary` line would cost the header map an allocation on
/// every response; a `Vary` that already lists `Origin` (a preflight's
/// answer) or `*` is left as it is, so no answer names `Origin` twice;
/// other values get a second line (the same to a cache).
pub(crate) fn vary_on_origin(res: &mut HeaderMap) {
    // One lookup, then an insert or an append: an entry costs http's map
    // more, and most responses have no Vary at all.
    let mut values = res.get_all(VARY).iter();
    match (values.next(), values.next()) {
        (None, _) => {}
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"accept-encoding") => {
            res.insert(VARY, HeaderValue::from_static("accept-encoding, Origin"));
            return;
        }
        _ if res.get_all(VARY).iter().any(lists_origin) => return,
        _ => {}
    }
    res.append(VARY, HeaderValue::from_static("Origin"));
}

/// Whether a `Vary` value names `Origin` (in any case) or `*`.
fn lists_origin(value: &HeaderValue) -> bool {
    (value.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|name| name == b"*" || name.eq_ignore_ascii_case(b"origin"))
}

/// `a, b, c` as a header value; `None` when empty.
fn header_list<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let joined = items.collect::<Vec<_>>().join(", ");
    (!joined.is_empty())
        .then(|| HeaderValue::from_str(&joined).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::new(&CorsConfig {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: vec!["GET".into(), "PUT".into()],
            headers: vec!["content-type".into(), "x-token".into()],
            expose: vec!["x-request-id".into()],
            credentials,
            max_age: bext_plugin_abi::units::Span(std::time::Duration::from_secs(60)),
        })
        .unwrap()
    }

    #[test]
    fn matches_exact_and_wildcard_origins() {
        let c = cors(&["https://app.example.com", "https://*.example.org"], false);
        assert!(c.allows_origin("https://app.example.com"));
        assert!(c.allows_origin("https://a.b.example.org"));
        assert!(
            !c.allows_origin("https://example.org"),
            "the wildcard needs a subdomain"
        );
        assert!(!c.allows_origin("http://a.example.org"), "the scheme counts");
        assert!(!c.allows_origin("https://evil-example.org"));
        assert!(!c.allows_origin("https://app.example.com.evil.test"));
    }

    #[test]
    fn preflights_are_answered_and_refusals_carry_nothing() {
        let c = cors(&["https://app.example.com"], true);
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://app.example.com"));
        h.insert("access-control-request-method", HeaderValue::from_static("PUT"));
        h.insert(
            "access-control-request-headers",
            HeaderValue::from_static("Content-Type, X-Token"),
        );
        let (status, out) = c.preflight(&Method::OPTIONS, &h).unwrap();
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(out["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert_eq!(out["access-control-max-age"], "60");

        h.insert("access-control-request-method", HeaderValue::from_static("DELETE"));
        let (_, out) = c.preflight(&Method::OPTIONS, &h).unwrap();
        assert!(out.get("access-control-allow-origin").is_none());
        assert!(c.preflight(&Method::GET, &h).is_none());
    }

    #[test]
    fn the_requests_origin_is_kept_for_its_response() {
        let c = cors(&["https://app.example.com"], false);
        let mut cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        let get = http::Request::builder()
            .header("origin", "https://app.example.com")
            .body(Body::empty())
            .unwrap();
        assert!(c.request(&get, &mut cx).is_none(), "not a preflight");
        let mut out = HeaderMap::new();
        c.respond(&cx, &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://app.example.com");
        let preflight = http::Request::builder()
            .method("OPTIONS")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .unwrap();
        let res = c.request(&preflight, &mut cx).expect("answered here");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()["access-control-allow-methods"], "GET, PUT");
    }

    #[test]
    fn origin_joins_the_responses_vary() {
        let c = cors(&["https://app.example.com"], false);
        let vary = |existing: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in existing {
                h.append(VARY, HeaderValue::from_static(v));
            }
            c.decorate(None, &mut h);
            h.get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[]), ["Origin"]);
        assert_eq!(vary(&["accept-encoding"]), ["accept-encoding, Origin"]);
        assert_eq!(vary(&["Accept-Encoding"]), ["accept-encoding, Origin"]);
        assert_eq!(vary(&["Cookie"]), ["Cookie", "Origin"]);
        assert_eq!(vary(&["a", "b"]), ["a", "b", "Origin"]);
        // Already there (a preflight's answer), or everything varies.
        let preflight = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
        assert_eq!(vary(&[preflight]), [preflight]);
        assert_eq!(vary(&["cookie", "accept, origin"]), ["cookie", "accept, origin"]);
        assert_eq!(vary(&["*"]), ["*"]);
        assert_eq!(vary(&["x-origin, origins"]), ["x-origin, origins", "Origin"]);
    }

    #[test]
    fn star_with_credentials_is_refused() {
        let err = Cors::new(&CorsConfig {
            origins: vec!["*".into()],
            methods: vec![],
            headers: vec![],
            expose: vec![],
            credentials: true,
            max_age: bext_plugin_abi::units::Span(std::time::Duration::from_secs(1)),
        })
        .unwrap_err();
        assert_eq!(err.0, "cors.credentials");
    }
}
