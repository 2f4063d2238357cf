//! The compiled limits: the quota, the requests a limit applies to, and
//! the bucket a request counts in.

use std::borrow::Cow;

use bext_plugin_abi::{Ctx, HeaderBlock, PathPattern, PluginError, Request};
use http::{HeaderName, HeaderValue, Method};

use crate::answer::{RATELIMIT_LIMIT, RATELIMIT_POLICY};
use crate::config::{AppLimitConfig, LimitConfig, LimitKey};
use crate::gcra::{Client, IpPrefixes, Quota, RateKey};
use crate::values::lasting;

/// Which of the plugin's two places in the chain is deciding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pass {
    /// At the plugin's priority, before authn: every limit but `by:
    /// subject` (cheap refusals before authn's cryptography).
    Early,
    /// At `subject_priority`, after authn: the `by: subject` limits.
    Late,
}

impl Pass {
    /// Whether a limit counting `by` decides in this place.
    pub(crate) fn decides(self, by: LimitKey) -> bool {
        (by == LimitKey::Subject) == (self == Pass::Late)
    }
}

/// A compiled limit.
pub(crate) struct Limit {
    /// For logs and the bucket's key.
    pub(crate) name: String,
    /// Who shares a bucket.
    pub(crate) by: LimitKey,
    /// The header holding the key, for `by: header`.
    header: Option<HeaderName>,
    /// The rate and burst.
    pub(crate) quota: Quota,
    /// Only these paths (all when empty).
    routes: Vec<PathPattern>,
    /// Only these methods (all when empty).
    methods: Vec<Method>,
    /// The `RateLimit-*` values its responses share.
    pub(crate) headers: LimitHeaders,
}

/// The `RateLimit-*` values a limit's responses share, made once.
pub(crate) struct LimitHeaders {
    /// `RateLimit-Policy: <burst>;w=<window seconds>`.
    pub(crate) policy: HeaderValue,
    /// `RateLimit-Limit`.
    pub(crate) limit: HeaderValue,
    /// `RateLimit-Remaining` of a client within its rate, which is
    /// `burst - 1` on nearly every response (a large burst is beyond the
    /// table of small counts).
    pub(crate) steady_remaining: HeaderValue,
    /// `RateLimit-Limit` and `RateLimit-Policy` written out once, for a
    /// response that carries them next to its map.
    pub(crate) block: HeaderBlock,
}

impl LimitHeaders {
    fn of(quota: &Quota) -> Self {
        let policy = lasting(
            HeaderValue::from_str(&format!("{};w={}", quota.burst, quota.window().as_secs().max(1))).expect("digits"),
        );
        let limit = lasting(HeaderValue::from(quota.burst));
        let block = HeaderBlock::new(&[
            (RATELIMIT_LIMIT.clone(), limit.clone()),
            (RATELIMIT_POLICY.clone(), policy.clone()),
        ])
        .expect("two distinct names the server does not write");
        LimitHeaders {
            policy,
            limit,
            steady_remaining: lasting(HeaderValue::from(quota.burst - 1)),
            block,
        }
    }
}

impl Limit {
    /// The platform file's `[apps.<id>] rate_limit`, named `app`.
    pub(crate) fn of_app(app: &AppLimitConfig) -> Result<Limit, PluginError> {
        if app.rpm == 0 {
            return Err(PluginError::config("app_limit.rpm", "must be at least 1"));
        }
        let quota = Quota::per_minute(app.rpm, app.burst.unwrap_or(app.rpm.div_ceil(60).max(1)));
        Ok(Limit {
            name: "app".into(),
            by: app.by,
            header: None,
            quota,
            routes: Vec::new(),
            methods: Vec::new(),
            headers: LimitHeaders::of(&quota),
        })
    }

    /// `limits[i]`; an error names its field.
    pub(crate) fn compile(i: usize, l: &LimitConfig) -> Result<Limit, PluginError> {
        let at = |field: &str| format!("limits[{i}].{field}");
        let quota = match (l.rpm, l.rps) {
            (Some(rpm), None) if rpm > 0 => Quota::per_minute(rpm, l.burst.unwrap_or(rpm.div_ceil(60).max(1))),
            (None, Some(rps)) if rps > 0 => Quota::per_second(rps, l.burst.unwrap_or(rps.max(1))),
            (Some(_), Some(_)) => return Err(PluginError::config(at("rps"), "give `rpm` or `rps`, not both")),
            _ => {
                return Err(PluginError::config(
                    at("rpm"),
                    "a limit needs `rpm` or `rps` of at least 1",
                ));
            }
        };
        let header = match (l.by, &l.header) {
            (LimitKey::Header, Some(h)) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| PluginError::config(at("header"), "not a header name"))?,
            ),
            (LimitKey::Header, None) => return Err(PluginError::config(at("header"), "`by: header` needs `header`")),
            _ => None,
        };
        let mut methods = Vec::new();
        for (j, m) in l.methods.iter().enumerate() {
            methods.push(
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| PluginError::config(at(&format!("methods[{j}]")), "not a method"))?,
            );
        }
        let routes = PathPattern::parse_all(&at("routes"), &l.routes)?;
        Ok(Limit {
            name: l.name.clone().unwrap_or_else(|| format!("limit-{i}")),
            by: l.by,
            header,
            quota,
            routes,
            methods,
            headers: LimitHeaders::of(&quota),
        })
    }

    /// Whether a request of `method` to `path` counts against this limit.
    pub(crate) fn applies(&self, method: &Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && (self.routes.is_empty() || self.routes.iter().any(|r| r.matches(path)))
    }

    /// The bucket this request counts in: per app, and per client as
    /// `by` says (the client's network when the key is missing).
    pub(crate) fn key<'r>(&'r self, prefixes: IpPrefixes, req: &'r Request, cx: &'r Ctx) -> RateKey<'r> {
        let ip = Client::Ip(prefixes.bucket(cx.client_ip));
        let client = match self.by {
            LimitKey::App => Client::All,
            LimitKey::Ip => ip,
            // An empty value is no key: all who send one would share a
            // bucket anyone could drain for the others. Spaces and tabs
            // around it are no part of it (HTTP/1.1's parser drops them,
            // HTTP/2 hands them over), so a blank one is empty too.
            LimitKey::Header => match self.header.as_ref().and_then(|h| req.headers().get(h)) {
                Some(v) if !v.as_bytes().trim_ascii().is_empty() => Client::Key(v.as_bytes().trim_ascii()),
                _ => ip,
            },
            // Only a subject authn verified: a claim read from an unsigned
            // token names whoever the caller likes.
            LimitKey::Subject => match cx.subject() {
                Some(sub) => Client::Subject(Cow::Borrowed(sub)),
                None => ip,
            },
        };
        RateKey {
            limit: &self.name,
            app: cx.app().unwrap_or(""),
            client,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use bext_plugin_abi::{Body, RequestId};

    use super::*;

    fn limit(config: serde_json::Value) -> Result<Limit, PluginError> {
        Limit::compile(3, &serde_json::from_value(config).unwrap())
    }

    fn field_of(err: Result<Limit, PluginError>) -> String {
        match err {
            Err(PluginError::Config { path, .. }) => path,
            Err(other) => panic!("{other}"),
            Ok(l) => panic!("{} accepted", l.name),
        }
    }

    fn request(method: &str, path: &str, header: Option<(&'static str, &'static str)>) -> Request {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some((n, v)) = header {
            b = b.header(n, v);
        }
        b.body(Body::empty()).unwrap()
    }

    fn ctx(ip: &str) -> Ctx {
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        cx.client_ip = ip.parse().unwrap();
        cx
    }

    #[test]
    fn only_subject_limits_decide_late() {
        for by in [LimitKey::Ip, LimitKey::App, LimitKey::Header] {
            assert!(Pass::Early.decides(by) && !Pass::Late.decides(by), "{by:?}");
        }
        assert!(Pass::Late.decides(LimitKey::Subject) && !Pass::Early.decides(LimitKey::Subject));
    }

    #[test]
    fn quotas_and_their_headers() {
        let l = limit(serde_json::json!({ "rpm": 600 })).unwrap();
        assert_eq!((l.name.as_str(), l.quota), ("limit-3", Quota::per_minute(600, 10)));
        assert_eq!(l.headers.policy, "10;w=1");
        assert_eq!(l.headers.limit, "10");
        assert_eq!(l.headers.steady_remaining, "9");
        let l = limit(serde_json::json!({ "name": "s", "rps": 5, "burst": 20 })).unwrap();
        assert_eq!((l.name.as_str(), l.quota), ("s", Quota::per_second(5, 20)));
        assert_eq!(l.headers.policy, "20;w=4");
        let app = Limit::of_app(&serde_json::from_value(serde_json::json!({ "rpm": 30 })).unwrap()).unwrap();
        assert_eq!(
            (app.name.as_str(), app.by, app.quota),
            ("app", LimitKey::App, Quota::per_minute(30, 1))
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(limit(serde_json::json!({}))), "limits[3].rpm");
        assert_eq!(field_of(limit(serde_json::json!({ "rps": 0 }))), "limits[3].rpm");
        assert_eq!(
            field_of(limit(serde_json::json!({ "rpm": 1, "rps": 1 }))),
            "limits[3].rps"
        );
        assert_eq!(
            field_of(limit(serde_json::json!({ "by": "header", "rpm": 1 }))),
            "limits[3].header"
        );
        assert_eq!(
            field_of(limit(serde_json::json!({ "by": "header", "header": "a b", "rpm": 1 }))),
            "limits[3].header"
        );
        assert_eq!(
            field_of(limit(serde_json::json!({ "rpm": 1, "methods": ["GET", "B@D"] }))),
            "limits[3].methods[1]"
        );
        let zero = Limit::of_app(&serde_json::from_value(serde_json::json!({ "rpm": 0 })).unwrap());
        assert_eq!(field_of(zero), "app_limit.rpm");
    }

    #[test]
    fn routes_and_methods_narrow_a_limit() {
        let l = limit(serde_json::json!({ "rpm": 1, "routes": ["/api/*", "/login"], "methods": ["post"] })).unwrap();
        assert!(l.applies(&Method::POST, "/api/x"));
        assert!(l.applies(&Method::POST, "/login"));
        assert!(!l.applies(&Method::GET, "/api/x"), "another method");
        assert!(!l.applies(&Method::POST, "/login/more"), "an exact route");
        let all = limit(serde_json::json!({ "rpm": 1 })).unwrap();
        assert!(all.applies(&Method::DELETE, "/anything"));
    }

    #[test]
    fn keys_fall_back_to_the_clients_network() {
        let prefixes = IpPrefixes::default();
        let net: IpAddr = "2001:db8::".parse().unwrap();
        let cx = ctx("2001:db8::7");
        let plain = request("GET", "/", None);
        let keyed = request("GET", "/", Some(("x-api-key", "k1")));

        let by_key = limit(serde_json::json!({ "by": "header", "header": "x-api-key", "rpm": 1 })).unwrap();
        assert_eq!(by_key.key(prefixes, &keyed, &cx).client, Client::Key(b"k1"));
        assert_eq!(by_key.key(prefixes, &plain, &cx).client, Client::Ip(net));
        for blank in ["", " ", "\t", " \t "] {
            let empty = request("GET", "/", Some(("x-api-key", blank)));
            assert_eq!(
                by_key.key(prefixes, &empty, &cx).client,
                Client::Ip(net),
                "an empty key is no key: {blank:?}"
            );
        }
        let spaced = request("GET", "/", Some(("x-api-key", " k1\t")));
        assert_eq!(
            by_key.key(prefixes, &spaced, &cx).client,
            Client::Key(b"k1"),
            "as HTTP/1.1 reads it"
        );

        let by_subject = limit(serde_json::json!({ "by": "subject", "rpm": 1 })).unwrap();
        assert_eq!(
            by_subject.key(prefixes, &plain, &cx).client,
            Client::Ip(net),
            "no verified subject"
        );
        let mut verified = ctx("2001:db8::7");
        verified.set_subject("ana").unwrap();
        verified.set_app("shop").unwrap();
        let key = by_subject.key(prefixes, &plain, &verified);
        assert_eq!((key.limit, key.app), ("limit-3", "shop"));
        assert_eq!(key.client, Client::Subject(Cow::Borrowed("ana")));

        let by_app = limit(serde_json::json!({ "by": "app", "rpm": 1 })).unwrap();
        assert_eq!(by_app.key(prefixes, &plain, &cx).client, Client::All);
    }
}
