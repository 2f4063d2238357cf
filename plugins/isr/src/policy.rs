//! What may be cached and for how long (RFC 9111, RFC 5861): a path rule
//! first, else the response's `Cache-Control` (`s-maxage` over `max-age`,
//! less `Age`), else the configured default; `stale-while-revalidate` and
//! `stale-if-error` windows; never `private`, `no-store`, `no-cache`,
//! `Set-Cookie` or `Vary: *`; and a response that `Vary`s on a
//! credential header only when the caller is part of the key.

use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode};

/// The `Cache-Control` directives that matter to a shared cache.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `private` (a shared cache must not keep it).
    pub private: bool,
    /// `no-cache` (must revalidate every time; not kept here).
    pub no_cache: bool,
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage` (wins over `max-age` in a shared cache).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate`.
    pub swr: Option<u64>,
    /// `stale-if-error`.
    pub sie: Option<u64>,
}

impl Directives {
    /// Parses every `Cache-Control` header; unknown directives are ignored
    /// and a malformed number counts as absent.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for item in text.split(',') {
                let (name, arg) = match item.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (item.trim(), None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "private" => d.private = true,
                    "no-cache" => d.no_cache = true,
                    "max-age" => d.max_age = secs(),
                    "s-maxage" => d.s_maxage = secs(),
                    "stale-while-revalidate" => d.swr = secs(),
                    "stale-if-error" => d.sie = secs(),
                    _ => {}
                }
            }
        }
        d
    }
}

/// How long an entry is fresh, then usable stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Fresh for this long after it was stored.
    pub ttl: Duration,
    /// Then served stale while one request refreshes it.
    pub swr: Duration,
    /// Then still served when the app fails (5xx or no answer).
    pub sie: Duration,
}

/// A path rule's say, if a rule matched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleSay {
    /// Fixed freshness.
    pub ttl: Option<Duration>,
    /// Fixed stale window.
    pub swr: Option<Duration>,
}

/// Status codes a shared cache may keep (RFC 9110 §15.1 "heuristically
/// cacheable"), and whether they are negative answers.
fn cacheable_status(status: StatusCode) -> Option<bool> {
    match status.as_u16() {
        200 | 203 | 204 | 300 | 301 | 308 => Some(false),
        404 | 410 => Some(true),
        _ => None,
    }
}

/// How long the response may be kept, or `None` when it must not be.
pub fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    rule: Option<RuleSay>,
    default_ttl: Option<Duration>,
    default_swr: Option<Duration>,
    negative_ttl: Duration,
) -> Option<Freshness> {
    let negative = cacheable_status(status)?;
    if headers.contains_key(http::header::SET_COOKIE)
        || headers
            .get_all(http::header::VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim() == "*")))
    {
        return None;
    }
    let d = Directives::parse(headers);
    if d.no_store || d.private || d.no_cache {
        return None;
    }
    let age = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let secs = Duration::from_secs;
    let rule = rule.unwrap_or_default();
    let (ttl, said_nothing) = match (rule.ttl, d.s_maxage.or(d.max_age)) {
        (Some(ttl), _) => (ttl, false),
        (None, Some(max)) => (secs(max.saturating_sub(age)), false),
        (None, None) => (default_ttl?, true),
    };
    let swr_default = default_swr.filter(|_| said_nothing && d.swr.is_none());
    let mut f = Freshness {
        ttl,
        swr: rule.swr.or(d.swr.map(secs)).or(swr_default).unwrap_or_default(),
        sie: d.sie.map(secs).unwrap_or_default(),
    };
    if negative {
        f.ttl = f.ttl.min(negative_ttl);
        f.swr = Duration::ZERO;
    }
    (f.ttl > Duration::ZERO || f.swr > Duration::ZERO).then_some(f)
}

/// The request headers a response `Vary`s on, which become part of its
/// key; `None` when it must not be shared: `Vary: *`, a name that is not a
/// header name (it could not be keyed), or a credential header (`Cookie`,
/// `Authorization`...) unless `caller_keyed` (the caller is in the key
/// already, under a rule with `authorized: true`).
pub fn vary_names(headers: &HeaderMap, credentials: &[HeaderName], caller_keyed: bool) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        let text = value.to_str().ok()?;
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(item.as_bytes()).ok()?;
            if !caller_keyed && credentials.contains(&name) {
                return None;
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn f(status: u16, pairs: &[(&str, &str)], rule: Option<RuleSay>) -> Option<Freshness> {
        freshness(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            rule,
            None,
            None,
            Duration::from_secs(10),
        )
    }

    #[test]
    fn default_swr_is_for_answers_that_say_nothing() {
        let ok = StatusCode::OK;
        let (ttl, swr) = (Some(S(60)), Some(S(3600)));
        let quiet = freshness(ok, &headers(&[]), None, ttl, swr, S(10)).unwrap();
        assert_eq!((quiet.ttl, quiet.swr), (S(60), S(3600)));
        let said = freshness(ok, &headers(&[("cache-control", "max-age=5")]), None, ttl, swr, S(10)).unwrap();
        assert_eq!((said.ttl, said.swr), (S(5), S(0)));
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn cache_control_decides_without_a_rule() {
        let max = f(200, &[("cache-control", "public, max-age=60")], None).unwrap();
        assert_eq!((max.ttl, max.swr), (S(60), S(0)));
        let shared = f(
            200,
            &[(
                "cache-control",
                "max-age=5, s-maxage=120, stale-while-revalidate=30, stale-if-error=600",
            )],
            None,
        )
        .unwrap();
        assert_eq!(
            shared,
            Freshness {
                ttl: S(120),
                swr: S(30),
                sie: S(600)
            }
        );
        let aged = f(200, &[("cache-control", "max-age=60"), ("age", "45")], None).unwrap();
        assert_eq!(aged.ttl, S(15), "Age is what the upstream cache already used");
        assert_eq!(f(200, &[], None), None, "no headers, no default: not kept");
        assert_eq!(f(200, &[("cache-control", "max-age=abc")], None), None);
    }

    #[test]
    fn some_responses_are_never_kept() {
        for cc in [
            "private, max-age=60",
            "no-store",
            "no-cache, max-age=60",
            "max-age=60, No-Store",
        ] {
            assert_eq!(f(200, &[("cache-control", cc)], None), None, "{cc}");
        }
        let ttl = Some(RuleSay {
            ttl: Some(S(60)),
            swr: None,
        });
        assert_eq!(
            f(200, &[("set-cookie", "sid=1")], ttl),
            None,
            "a rule never stores a cookie"
        );
        assert_eq!(f(200, &[("vary", "Accept, *")], ttl), None);
        assert_eq!(f(500, &[], ttl), None);
        assert_eq!(f(206, &[], ttl), None);
    }

    #[test]
    fn a_vary_on_credentials_is_not_shared() {
        let creds: Vec<HeaderName> = ["authorization", "cookie", "x-api-key"]
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect();
        let names = |vary: &[&str], keyed: bool| {
            let pairs: Vec<(&str, &str)> = vary.iter().map(|v| ("vary", *v)).collect();
            vary_names(&headers(&pairs), &creds, keyed)
                .map(|n| n.iter().map(|h| h.as_str().to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(names(&[], false), Some(vec![]));
        assert_eq!(
            names(&["Accept-Encoding,  ACCEPT", "accept"], false),
            Some(vec!["accept-encoding".to_owned(), "accept".to_owned()])
        );
        for vary in [
            "Cookie",
            "accept, COOKIE",
            "Authorization",
            "x-API-key",
            "*",
            "accept, *",
            "bad name",
        ] {
            assert_eq!(names(&[vary], false), None, "{vary}");
        }
        assert_eq!(names(&["Cookie"], true), Some(vec!["cookie".to_owned()]));
        assert_eq!(names(&["*"], true), None, "Vary: * is never shared");
    }

    #[test]
    fn rules_override_and_404s_are_short() {
        let rule = Some(RuleSay {
            ttl: Some(S(300)),
            swr: Some(S(60)),
        });
        let r = f(200, &[("cache-control", "max-age=5")], rule).unwrap();
        assert_eq!((r.ttl, r.swr), (S(300), S(60)));
        let nf = f(404, &[("cache-control", "max-age=3600")], None).unwrap();
        assert_eq!(
            (nf.ttl, nf.swr),
            (S(10), S(0)),
            "negative answers capped at negative_ttl"
        );
    }
}
