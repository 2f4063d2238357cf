//! The headers the cache writes: a stored entry as a request's answer
//! (`x-cache`, `Age`, a 304 for a matching `If-None-Match`), the `ETag`
//! an answer without one gets, the headers an entry does not keep, and
//! the tag headers (`Cache-Tag`, `x-bext-tags`), which are for the cache
//! only and never reach a client.

use std::time::Instant;

use bext_plugin_abi::{Body, Request, Response};
use http::header::{
    AGE, CACHE_CONTROL, CONNECTION, DATE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH, SET_COOKIE, TRANSFER_ENCODING,
    VARY,
};
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use crate::store::Entry;

/// How the cache dealt with a request: `HIT`, `STALE`, `MISS` or `BYPASS`.
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `L2` on an answer found in the fleet's tier.
pub(crate) static X_CACHE_TIER: HeaderName = HeaderName::from_static("x-cache-tier");
static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
static X_BEXT_TAGS: HeaderName = HeaderName::from_static("x-bext-tags");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Says how the cache dealt with the request (`x-cache: {label}`).
pub(crate) fn mark(headers: &mut HeaderMap, label: &'static str) {
    headers.insert(&X_CACHE, HeaderValue::from_static(label));
}

/// The `Cache-Tag` and `x-bext-tags` values (comma or space separated);
/// the headers are removed, they are for the cache only.
pub fn tags_of(headers: &HeaderMap) -> Vec<String> {
    [&CACHE_TAG, &X_BEXT_TAGS]
        .iter()
        .flat_map(|h| headers.get_all(*h))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ' ']))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Removes the tag headers, which are for the cache only.
pub(crate) fn strip_tags(headers: &mut HeaderMap) {
    headers.remove(&CACHE_TAG);
    headers.remove(&X_BEXT_TAGS);
}

/// The `ETag` of a body the app gave none: a quoted hex prefix of its
/// SHA-256, so one body always has one tag.
pub(crate) fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex")
}

/// The headers an entry keeps of its response: all but the hop-by-hop
/// ones, `Date` and `Age` (both are for the moment it is served),
/// `x-cache` and `Set-Cookie`.
pub(crate) fn kept_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for h in [
        CONNECTION,
        TRANSFER_ENCODING,
        KEEP_ALIVE.clone(),
        DATE,
        AGE,
        X_CACHE.clone(),
        SET_COOKIE,
    ] {
        headers.remove(h);
    }
    headers
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2).
fn not_modified(req: &Request, etag: &HeaderValue) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(etag.to_str().unwrap_or(""));
    req.headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

/// A stored entry as this request's answer.
pub(crate) fn answer(e: &Entry, req: &Request, label: &'static str) -> Response {
    let now = Instant::now();
    let mut res = if not_modified(req, &e.etag) {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        for h in [
            ETAG,
            CACHE_CONTROL,
            VARY,
            http::header::EXPIRES,
            http::header::CONTENT_LOCATION,
        ] {
            for v in e.headers.get_all(&h) {
                res.headers_mut().append(&h, v.clone());
            }
        }
        res
    } else {
        let mut res = Response::new(Body::full(e.body.clone()));
        *res.status_mut() = e.status;
        *res.headers_mut() = e.headers.clone();
        res
    };
    strip_tags(res.headers_mut());
    res.headers_mut().insert(AGE, HeaderValue::from(e.age(now).as_secs()));
    mark(res.headers_mut(), label);
    res
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::policy::Freshness;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn value<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
        headers[name].to_str().unwrap()
    }

    fn request(pairs: &[(&str, &str)]) -> Request {
        let mut req = Request::new(Body::empty());
        *req.headers_mut() = headers(pairs);
        req
    }

    fn entry(age: u64) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: headers(&[
                ("content-type", "text/html"),
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("vary", "accept-language"),
                ("cache-tag", "post-1"),
                ("x-bext-tags", "posts"),
                ("x-app", "kept"),
            ]),
            body: Bytes::from_static(b"<p>hi</p>"),
            etag: HeaderValue::from_static("\"v1\""),
            stored: Instant::now() - Duration::from_secs(age),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                swr: Duration::ZERO,
                sie: Duration::ZERO,
            },
            tags: vec!["post-1".into(), "posts".into()],
            path: "/p".into(),
        }
    }

    #[test]
    fn etags_match_weakly_in_lists_and_with_a_star() {
        let ours = HeaderValue::from_static("\"v1\"");
        for inm in ["\"v1\"", "W/\"v1\"", "\"v0\", \"v1\"", " \"v1\" ", "*", "\"v0\", *"] {
            assert!(not_modified(&request(&[("if-none-match", inm)]), &ours), "{inm}");
        }
        for inm in ["\"v2\"", "\"v1", "v1", ""] {
            assert!(!not_modified(&request(&[("if-none-match", inm)]), &ours), "{inm}");
        }
        assert!(not_modified(
            &request(&[("if-none-match", "\"a\""), ("if-none-match", "\"v1\"")]),
            &ours
        ));
        assert!(!not_modified(&request(&[]), &ours));
        let weak = HeaderValue::from_static("W/\"v1\"");
        assert!(not_modified(&request(&[("if-none-match", "\"v1\"")]), &weak));
    }

    #[test]
    fn an_entry_is_answered_with_its_age_and_label_and_without_tags() {
        let res = answer(&entry(7), &request(&[]), "HIT");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body().as_bytes(), Some(&b"<p>hi</p>"[..]));
        let h = res.headers();
        assert_eq!(
            (value(h, "x-cache"), value(h, "age"), value(h, "x-app")),
            ("HIT", "7", "kept")
        );
        assert!(!h.contains_key("cache-tag") && !h.contains_key("x-bext-tags"));
        let stale = answer(&entry(0), &request(&[]), "STALE");
        assert_eq!(
            (value(stale.headers(), "x-cache"), value(stale.headers(), "age")),
            ("STALE", "0")
        );
    }

    #[test]
    fn a_matching_etag_gets_a_304_with_the_validators_only() {
        let res = answer(&entry(3), &request(&[("if-none-match", "W/\"v1\"")]), "HIT");
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.body().as_bytes(), Some(&b""[..]));
        let mut names: Vec<&str> = res.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["age", "cache-control", "etag", "vary", "x-cache"]);
    }

    #[test]
    fn tags_are_read_from_both_headers() {
        let h = headers(&[("cache-tag", "a, b"), ("cache-tag", "c"), ("x-bext-tags", " d  e,,")]);
        assert_eq!(tags_of(&h), ["a", "b", "c", "d", "e"]);
        assert!(tags_of(&headers(&[("x-other", "a")])).is_empty());
        let mut h = h;
        strip_tags(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn generated_etags_follow_the_body() {
        let a = etag_of(b"hello");
        assert_eq!(a, etag_of(b"hello"));
        assert_ne!(a, etag_of(b"hello!"));
        let text = a.to_str().unwrap();
        assert_eq!(text.len(), 26, "{text}");
        assert!(text.starts_with('"') && text.ends_with('"'));
        assert!(
            text[1..25]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn entries_keep_neither_hop_by_hop_headers_nor_cookies() {
        let h = headers(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("date", "Tue, 01 Jul 2025 00:00:00 GMT"),
            ("age", "3"),
            ("x-cache", "MISS"),
            ("set-cookie", "a=1"),
            ("content-type", "text/html"),
            ("etag", "\"x\""),
            ("cache-tag", "kept-for-invalidation"),
        ]);
        let kept = kept_headers(&h);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["cache-tag", "content-type", "etag"]);
    }
}
