//! Serving from the cache (the `on_request` side): whether a request
//! passes the cache by, its key, a fresh or stale entry answered at once
//! (from this process's memory, then the fleet's L2 tier in edge mode),
//! and the stampede guard: one request per cold key goes on to the app,
//! asking for the key's query, while the others wait for its answer.

use std::sync::Arc;
use std::time::Instant;

use bext_plugin_abi::{ArrivedOverTls, CacheStatus, Ctx, Fleet, Flow, Hook, PluginError, Request};
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue, RANGE, TRANSFER_ENCODING, USER_AGENT};
use http::uri::PathAndQuery;
use http::{Method, Uri};

use crate::IsrPlugin;
use crate::answer::{X_CACHE_TIER, answer};
use crate::key::{KeyParts, caller_digest, encode_path, is_bot, normalise_query, primary_key};
use crate::l2;
use crate::rules::Rule;
use crate::save::{Bypass, Pending, park};
use crate::store::{AppCache, Entry, State, Turn, vary_key};

/// Whether the request comes from a caller: a subject authn verified
/// (it runs before this plugin), or any credential header, which the
/// cache cannot see through.
pub(crate) fn has_caller(credentials: &[HeaderName], req: &Request, cx: &Ctx) -> bool {
    cx.subject().is_some() || credentials.iter().any(|n| req.headers().contains_key(n))
}

/// The caller's part of the key (see [`caller_digest`]).
fn caller(credentials: &[HeaderName], req: &Request, cx: &Ctx) -> String {
    let sent = credentials
        .iter()
        .flat_map(|n| req.headers().get_all(n).iter().map(move |v| (n.as_str(), v.as_bytes())));
    caller_digest(cx.subject(), sent)
}

/// The request's primary key; `query` is the request's, normalised.
fn key(req: &Request, cx: &Ctx, app: &str, caller: Option<&str>, query: Option<&str>) -> String {
    let host = cx.host.as_deref().unwrap_or("");
    let with_port;
    let host = match bext_plugin_abi::requested_port(req.uri(), req.headers()) {
        Some(port) => {
            with_port = format!("{host}:{port}");
            &with_port
        }
        None => host,
    };
    let agent = req.headers().get(USER_AGENT).map_or(&b""[..], HeaderValue::as_bytes);
    primary_key(&KeyParts {
        app,
        tenant: cx.tenant(),
        locale: cx.vars.get("locale").map_or("", String::as_str),
        bot: is_bot(agent),
        caller,
        path: req.uri().path(),
        query,
        scheme: match cx.ext.get::<ArrivedOverTls>() {
            Some(_) => "https",
            None => "http",
        },
        host,
    })
}

/// Whether a request passes the cache by, whatever its key: not a GET
/// or HEAD, a `no_store` rule, a caller's request without a rule saying
/// `authorized: true` (a caller's page is never shared, RFC 9111 §3.5),
/// a `Range`, or a body (a "fat GET": the body is not in the key, and a
/// lead request must not be one whose client can hold the key's waiters
/// by trickling it).
fn passes_by(req: &Request, rule: Option<&Rule>, has_caller: bool) -> bool {
    let authorized = rule.is_some_and(|r| r.authorized);
    !matches!(*req.method(), Method::GET | Method::HEAD)
        || rule.is_some_and(|r| r.no_store)
        || (has_caller && !authorized)
        || req.headers().contains_key(RANGE)
        || has_body(req)
}

/// Whether a GET or HEAD carries a body: a `Content-Length` other than
/// 0, any `Transfer-Encoding`, or a body the kernel did not find ended
/// with the head (an HTTP/2 request without END_STREAM on its HEADERS; the
/// kernel hands plugins an empty body exactly when `is_end_stream` held).
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| v.as_bytes() != b"0")
        || req.body().as_bytes().is_none_or(|b| !b.is_empty())
}

/// `uri` with `query` (the normalised one) as its query; none when it is
/// empty. `None` if that is not a valid target (it always is: it is a
/// subset of a valid one).
fn with_query(uri: &Uri, query: Option<&str>) -> Option<Uri> {
    if uri.query() == query && query.is_none_or(|q| !q.is_empty()) {
        return Some(uri.clone()); // the common case: nothing to take out
    }
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    if uri.path_and_query().map(PathAndQuery::as_str) == Some(target.as_str()) {
        return Some(uri.clone());
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(parts).ok()
}

impl IsrPlugin {
    /// `on_request`: answers from the cache, or lets the request go on to
    /// the app (marked [`Bypass`], or with a [`Pending`] store parked for
    /// `on_response`).
    pub(crate) fn lookup<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let Some(app) = cx.app().map(str::to_owned) else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        let rule = self.rules.find(req.uri().path());
        let has_caller = has_caller(&self.store.credentials, req, cx);
        // Past this, a caller's request (under `authorized: true`) is kept
        // under the caller's own key.
        let bypass = passes_by(req, rule, has_caller);
        // The query as keyed; what goes to the app through the cache is
        // exactly that (ignored parameters gone). A query the key cannot
        // describe for every app (a `;`) passes by, unrewritten.
        let keyed = (!bypass)
            .then(|| {
                let query = req
                    .uri()
                    .query()
                    .map(|q| normalise_query(q, &self.ignored))
                    .transpose()
                    .ok()?;
                let target = with_query(req.uri(), query.as_deref())?;
                Some((query, target))
            })
            .flatten();
        let Some((query, target)) = keyed else {
            cx.ext.insert(Bypass);
            return Hook::Ready(Ok(Flow::Continue));
        };
        let say = rule.map(|r| r.say);
        let cache = self.caches().cache_for(&app, self.limits);
        let caller = has_caller.then(|| caller(&self.store.credentials, req, cx));
        let caller_keyed = caller.is_some();
        let primary = key(req, cx, &app, caller.as_deref(), query.as_deref());
        let full = cache.full_key(&primary, req.headers());
        let mut fallback = None;
        if let Some(e) = cache.get(&full) {
            match e.state(Instant::now()) {
                State::Fresh => {
                    self.count(cx, CacheStatus::Hit);
                    return Hook::Ready(Ok(Flow::Respond(answer(&e, req, "HIT"))));
                }
                State::Stale => {
                    self.refresh(&cache, primary, &full, req, target, cx, say);
                    self.count(cx, CacheStatus::Stale);
                    return Hook::Ready(Ok(Flow::Respond(answer(&e, req, "STALE"))));
                }
                State::Expired => fallback = Some(e),
            }
        }
        if *req.method() == Method::HEAD {
            // A HEAD answer has no body to keep; it is served from entries
            // a GET stored, and passes by otherwise.
            cx.ext.insert(Bypass);
            return Hook::Ready(Ok(Flow::Continue));
        }
        // From here the answer may be stored under `primary`: the app gets
        // the key's query.
        *req.uri_mut() = target;
        let pending = |flight| Pending {
            app: app.clone(),
            cache: cache.clone(),
            primary: primary.clone(),
            request_headers: req.headers().clone(),
            path: encode_path(req.uri().path()).into_owned(),
            rule: say,
            caller_keyed,
            flight,
            fallback: fallback.clone(),
        };
        match cache.take_turn(&full) {
            Turn::Lead(flight) => {
                let p = pending(Some(flight));
                let Some(edge) = self.store.edge.get().filter(|e| e.is_up()) else {
                    park(cx, p);
                    return Hook::Ready(Ok(Flow::Continue));
                };
                Hook::later(async move {
                    if let Some(e) = lookup_l2(&**edge, &p.cache, &p.primary, req).await {
                        drop(p); // wakes the requests waiting for this key
                        self.count(cx, CacheStatus::Hit);
                        let mut res = answer(&e, req, "HIT");
                        res.headers_mut().insert(&X_CACHE_TIER, HeaderValue::from_static("L2"));
                        return Ok(Flow::Respond(res));
                    }
                    park(cx, p);
                    Ok(Flow::Continue)
                })
            }
            Turn::Wait(mut done) => {
                let p = pending(None);
                Hook::later(async move {
                    let _ = tokio::time::timeout(self.wait_timeout, done.changed()).await;
                    let full = p.cache.full_key(&p.primary, req.headers());
                    if let Some(e) = p.cache.get(&full)
                        && e.state(Instant::now()) != State::Expired
                    {
                        self.count(cx, CacheStatus::Hit);
                        return Ok(Flow::Respond(answer(&e, req, "HIT")));
                    }
                    park(cx, p);
                    Ok(Flow::Continue)
                })
            }
        }
    }
}

/// Looks `primary` up in the L2 tier after an L1 miss; a hit is
/// promoted to L1.
async fn lookup_l2(edge: &dyn Fleet, cache: &AppCache, primary: &str, req: &Request) -> Option<Arc<Entry>> {
    let names: Arc<[HeaderName]> = match cache.vary_names(primary) {
        Some(n) => n,
        None => match edge.get(&l2::vary_key(edge, primary)).await {
            Some(record) => String::from_utf8_lossy(&record)
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect(),
            None => Arc::from([]),
        },
    };
    let full = if names.is_empty() {
        primary.to_owned()
    } else {
        vary_key(primary, &names, req.headers())
    };
    let entry = l2::decode(&edge.get(&l2::entry_key(edge, &full)).await?)?;
    if entry.state(Instant::now()) == State::Expired {
        return None;
    }
    cache.put_full(primary, names, full.clone(), entry);
    cache.get(&full)
}

#[cfg(test)]
mod tests {
    use bext_plugin_abi::{Body, RequestId};

    use super::*;
    use crate::config::RuleConfig;
    use crate::key::IgnoredParams;
    use crate::rules::Rules;

    fn get(uri: &str, headers: &[(&str, &str)], body: Body) -> Request {
        let mut req = Request::new(body);
        *req.uri_mut() = uri.parse().unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        req
    }

    fn cx(host: &str) -> Ctx {
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        cx.host = Some(host.into());
        cx
    }

    fn credentials() -> Vec<HeaderName> {
        ["authorization", "cookie", "x-api-key"]
            .map(HeaderName::from_static)
            .to_vec()
    }

    /// M3: a GET with a body in any framing is told apart.
    #[test]
    fn bodies_are_found_in_every_framing() {
        assert!(!has_body(&get("/", &[], Body::empty())));
        assert!(!has_body(&get("/", &[("content-length", "0")], Body::empty())));
        assert!(has_body(&get("/", &[("content-length", "5")], Body::empty())));
        assert!(has_body(&get("/", &[("transfer-encoding", "chunked")], Body::empty())));
        assert!(has_body(&get("/", &[], Body::full("x=1"))));
        // The kernel hands on a stream exactly when the body had not ended
        // with the head (HTTP/2 without END_STREAM, or a framing above).
        let stream = Body::stream(String::from("x=1"));
        assert!(has_body(&get("/", &[], stream)));
    }

    #[test]
    fn the_app_is_asked_for_the_keyed_query() {
        let uri: Uri = "/p?utm_source=x&b=2&a=1".parse().unwrap();
        let ig = IgnoredParams::new(&["utm_*".into()]);
        let q = normalise_query(uri.query().unwrap(), &ig).unwrap();
        assert_eq!(with_query(&uri, Some(&q)).unwrap(), "/p?a=1&b=2");
        assert_eq!(with_query(&uri, Some("")).unwrap(), "/p");
        assert_eq!(with_query(&uri, None).unwrap(), "/p");
        let absolute: Uri = "http://shop.test/p?utm_x=1".parse().unwrap();
        assert_eq!(with_query(&absolute, Some("")).unwrap(), "http://shop.test/p");
        let clean: Uri = "/p?a=1".parse().unwrap();
        assert_eq!(with_query(&clean, Some("a=1")).unwrap(), "/p?a=1");
        let bare: Uri = "/p?".parse().unwrap();
        assert_eq!(with_query(&bare, Some("")).unwrap(), "/p", "an empty query is dropped");
    }

    #[test]
    fn what_passes_the_cache_by() {
        let rules = Rules::compile(
            &serde_json::from_value::<Vec<RuleConfig>>(serde_json::json!([
                {"path": "/account/*", "authorized": true},
                {"path": "/live", "no_store": true},
            ]))
            .unwrap(),
        )
        .unwrap();
        let by = |method: Method, path: &str, headers: &[(&str, &str)], caller: bool| {
            let mut req = get(path, headers, Body::empty());
            *req.method_mut() = method;
            passes_by(&req, rules.find(path), caller)
        };
        assert!(!by(Method::GET, "/", &[], false));
        assert!(!by(Method::HEAD, "/", &[], false));
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(by(m.clone(), "/", &[], false), "{m}");
        }
        assert!(by(Method::GET, "/live", &[], false), "no_store");
        assert!(by(Method::GET, "/", &[], true), "a caller without a rule");
        assert!(!by(Method::GET, "/account/me", &[], true), "authorized: true");
        assert!(by(Method::GET, "/", &[("range", "bytes=0-1")], false));
        assert!(by(Method::GET, "/", &[("content-length", "3")], false));
    }

    #[test]
    fn callers_are_found_by_subject_or_credential_header() {
        let creds = credentials();
        let anonymous = get("/", &[("accept", "*/*")], Body::empty());
        assert!(!has_caller(&creds, &anonymous, &cx("a.test")));
        let cookie = get("/", &[("Cookie", "sid=1")], Body::empty());
        assert!(has_caller(&creds, &cookie, &cx("a.test")));
        assert!(
            !has_caller(&[], &cookie, &cx("a.test")),
            "only the configured headers count"
        );
        let mut verified = cx("a.test");
        verified.set_subject("apikey:ci").unwrap();
        assert!(has_caller(&creds, &anonymous, &verified));
        // The subject wins over whatever credential carried it.
        assert_eq!(
            caller(&creds, &cookie, &verified),
            caller(&creds, &anonymous, &verified)
        );
        let other = get("/", &[("cookie", "sid=2")], Body::empty());
        assert_ne!(
            caller(&creds, &cookie, &cx("a.test")),
            caller(&creds, &other, &cx("a.test"))
        );
    }

    #[test]
    fn keys_hold_host_tenant_locale_bot_and_caller() {
        let req = get("/p", &[], Body::empty());
        let plain = key(&req, &cx("shop.test"), "shop", None, Some("a=1"));
        assert_eq!(plain, "a:shop:l::b:0:p:/p?a=1@http://shop.test");
        let mut tenant = cx("acme.shop.test");
        tenant.set_tenant("acme").unwrap();
        tenant.vars.insert("locale".into(), "fr".into());
        assert_eq!(
            key(&req, &tenant, "shop", None, None),
            "a:shop:t:acme:l:fr:b:0:p:/p?@http://acme.shop.test"
        );
        let bot = get("/p", &[("user-agent", "Googlebot/2.1")], Body::empty());
        assert_eq!(
            key(&bot, &cx("shop.test"), "shop", Some("abc"), None),
            "a:shop:l::b:1:u:abc:p:/p?@http://shop.test"
        );
        let mut no_host = cx("x");
        no_host.host = None;
        assert!(key(&req, &no_host, "shop", None, None).ends_with("@http://"));
    }
}
