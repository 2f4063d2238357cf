//! A proxy app's upstreams (`upstream`, or `upstreams` with weights) and
//! how it spreads requests over them, checked when the platform file is
//! read so that `bext check` reports a bad one at its line.

use std::time::Duration;

use bext_plugin_abi::units::Span;
use http::Uri;
use http::uri::{Authority, Scheme};
use serde::{Deserialize, Deserializer};

/// A validated upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub(crate) authority: Authority,
    /// Path prefix of the upstream URL without trailing `/` (may be empty).
    pub(crate) base_path: String,
    /// `https://`: spoken to over TLS, its certificate verified.
    pub(crate) tls: bool,
    /// A Unix socket to connect to instead of the authority's port: a
    /// process app's instance with `listen = "socket"`.
    pub(crate) unix: Option<std::path::PathBuf>,
}

impl Upstream {
    /// The server on the Unix socket at `path`; requests to it say
    /// `Host: localhost` unless the app preserves the client's.
    pub fn unix(path: &std::path::Path) -> Upstream {
        Upstream {
            authority: Authority::from_static("localhost"),
            base_path: String::new(),
            tls: false,
            unix: Some(path.to_owned()),
        }
    }
}

/// Parses an upstream URL (`http[s]://host:port[/base]`).
pub fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let uri: Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let tls = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP => false,
        Some(s) if *s == Scheme::HTTPS => true,
        _ => return Err(format!("`{url}`: an upstream URL starts with http:// or https://")),
    };
    let authority = uri.authority().cloned().ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in upstream URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: an upstream URL cannot have a query"));
    }
    Ok(Upstream {
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
        tls,
        unix: None,
    })
}

/// Heaviest weight a backend may have: a round-robin schedule holds each
/// backend as many times as its weight.
pub const MAX_WEIGHT: u32 = 100;

/// One entry of `upstreams`: a URL, or `{ url, weight }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamEntry {
    /// The backend's URL.
    pub url: String,
    /// Its share of the requests against the others' (1 by default).
    pub weight: u32,
}

impl<'de> Deserialize<'de> for UpstreamEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Url(String),
            Table(Table),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            url: String,
            #[serde(default = "one")]
            weight: u32,
        }
        fn one() -> u32 {
            1
        }
        match Either::deserialize(d)
            .map_err(|_| serde::de::Error::custom(r#"an upstream is a URL or { url = "http://...", weight = 2 }"#))?
        {
            Either::Url(url) => Ok(UpstreamEntry { url, weight: 1 }),
            Either::Table(t) => Ok(UpstreamEntry {
                url: t.url,
                weight: t.weight,
            }),
        }
    }
}

/// `balance`: how a proxy app picks the backend of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// In turn, by weight.
    #[default]
    RoundRobin,
    /// The one with the fewest requests in flight for its weight.
    LeastConnections,
    /// The same backend for the same `hash` key while it is healthy.
    ConsistentHash,
}

/// `hash`: what keeps requests on one backend under `consistent_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `"client"`: the client's address.
    Client,
    /// `"tenant"`: the tenant (`x-vhost-tenant`) the host names.
    Tenant,
    /// `"header:<name>"`: a request header's value.
    Header(http::HeaderName),
    /// `"cookie:<name>"`: a cookie's value.
    Cookie(String),
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hash_key(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `client`, `tenant`, `header:<name>` or `cookie:<name>`.
fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    let expected = r#"expected "client", "tenant", "header:<name>" or "cookie:<name>""#;
    match s.split_once(':') {
        None if s == "client" => Ok(HashKey::Client),
        None if s == "tenant" => Ok(HashKey::Tenant),
        Some(("header", name)) => http::HeaderName::from_bytes(name.trim().as_bytes())
            .map(HashKey::Header)
            .map_err(|_| format!("`{name}` is not a header name")),
        Some(("cookie", name)) if !name.trim().is_empty() && !name.contains([';', '=', ' ']) => {
            Ok(HashKey::Cookie(name.trim().to_owned()))
        }
        Some(("cookie", name)) => Err(format!("`{name}` is not a cookie name")),
        _ => Err(format!("`{s}`: {expected}")),
    }
}

/// `health`: the active check each backend gets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path asked with `GET`; a 2xx or 3xx answer is a success.
    pub path: String,
    /// Time between two checks of a backend.
    #[serde(default = "five_seconds", deserialize_with = "span")]
    pub interval: Duration,
    /// Time a check may take.
    #[serde(default = "one_second", deserialize_with = "span")]
    pub timeout: Duration,
    /// Successes in a row that bring a down backend back.
    #[serde(default = "two")]
    pub healthy: u32,
    /// Failures in a row that take a backend down.
    #[serde(default = "three")]
    pub unhealthy: u32,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn span<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Span::deserialize(d).map(|s| s.0)
}

impl HealthCheck {
    /// Why this check cannot run, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !self.path.starts_with('/') || self.path.parse::<http::uri::PathAndQuery>().is_err() {
            return Some(format!("`{}`: the path starts with `/`", self.path));
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Some("`interval` and `timeout` must be more than zero".into());
        }
        if self.healthy == 0 || self.unhealthy == 0 {
            return Some("`healthy` and `unhealthy` must be at least 1".into());
        }
        None
    }
}

/// A proxy app's backends, read from `upstream` or `upstreams`.
pub fn backends(upstream: Option<&str>, upstreams: &[UpstreamEntry]) -> Result<Vec<(Upstream, u32)>, String> {
    match (upstream, upstreams) {
        (Some(_), [_, ..]) => Err("set `upstream` or `upstreams`, not both".into()),
        (Some(url), []) => Ok(vec![(parse_upstream(url)?, 1)]),
        (None, []) => Err("a proxy app needs `upstream`, e.g. http://127.0.0.1:8080, or `upstreams`".into()),
        (None, list) => list
            .iter()
            .map(|e| {
                if e.weight == 0 || e.weight > MAX_WEIGHT {
                    return Err(format!("`{}`: a weight is 1 to {MAX_WEIGHT}", e.url));
                }
                Ok((parse_upstream(&e.url)?, e.weight))
            })
            .collect(),
    }
}

/// Whether `app` (resolved) sends part of its requests to an upstream
/// beside its own runtime: a `hybrid` app's `/api/*`.
pub fn forwards_api(app: &super::platform::AppConfig) -> bool {
    app.layers.as_ref().is_some_and(|l| l.api_prefix.is_some())
}

/// What is wrong with a proxy app's upstream settings, by key (a
/// `hybrid` app's `/api/*` upstream gets the same, [`forwards_api`]).
pub fn proxy_problems(app: &super::platform::AppConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Err(reason) = backends(app.upstream.as_deref(), &app.upstreams) {
        let key = if app.upstreams.is_empty() {
            "upstream"
        } else {
            "upstreams"
        };
        problems.push((key, reason));
    }
    problems.extend(pool_problems(app));
    if let Some(reason) = app.health.as_deref().and_then(HealthCheck::problem) {
        problems.push(("health", reason));
    }
    let any_https = (app.upstream.iter().map(String::as_str))
        .chain(app.upstreams.iter().map(|e| e.url.as_str()))
        .any(|u| u.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")));
    if let Some(ca) = &app.ca {
        if !any_https {
            problems.push(("ca", "`ca` is for https:// upstreams".into()));
        } else if let Err(reason) = crate::apps::upstream_tls::read_roots(ca) {
            problems.push(("ca", reason));
        }
    }
    if app.insecure_skip_verify && !any_https {
        problems.push((
            "insecure_skip_verify",
            "`insecure_skip_verify` is for https:// upstreams".into(),
        ));
    }
    problems
}

/// What is wrong with the keys that say how requests spread over a pool
/// (`balance`, `hash`, `max_connections`, `queue`, `body_timeout`): a
/// proxy app's upstreams and a process app's instances take the same.
pub fn pool_problems(app: &super::platform::AppConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if app.hash.is_some() && app.balance != Balance::ConsistentHash {
        problems.push(("hash", r#"`hash` goes with `balance = "consistent_hash"`"#.into()));
    }
    if app.max_connections == Some(0) {
        problems.push(("max_connections", "must be at least 1".into()));
    }
    if app.queue.is_some() && app.max_connections.is_none() {
        problems.push(("queue", "`queue` goes with `max_connections`".into()));
    }
    if app.body_timeout.is_some_and(|t| t.0.is_zero()) {
        problems.push(("body_timeout", "must be more than zero".into()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = parse_upstream("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(u.base_path, "/api");
        assert!(parse_upstream("https://x").unwrap().tls);
        assert!(!parse_upstream("HTTP://x").unwrap().tls);
        assert!(parse_upstream("ftp://x").is_err());
        assert!(parse_upstream("http://u:p@x").is_err());
        assert!(parse_upstream("nope").is_err());
    }

    #[test]
    fn hash_keys_and_backend_lists() {
        assert_eq!(parse_hash_key("client"), Ok(HashKey::Client));
        assert_eq!(parse_hash_key("tenant"), Ok(HashKey::Tenant));
        assert_eq!(
            parse_hash_key("header:X-User"),
            Ok(HashKey::Header(http::HeaderName::from_static("x-user")))
        );
        assert_eq!(parse_hash_key("cookie:sid"), Ok(HashKey::Cookie("sid".into())));
        for bad in ["ip", "header:bad name", "cookie:", "cookie:a=b", "Client"] {
            assert!(parse_hash_key(bad).is_err(), "{bad}");
        }
        let e = |url: &str, weight| UpstreamEntry {
            url: url.into(),
            weight,
        };
        assert!(backends(Some("http://a"), &[e("http://b", 1)]).is_err());
        assert!(backends(None, &[]).is_err());
        assert!(backends(None, &[e("http://a", 0)]).is_err());
        assert!(backends(None, &[e("http://a", 101)]).is_err());
        assert!(backends(None, &[e("http://a", 1), e("ftp://b", 1)]).is_err());
        let list = backends(None, &[e("http://a:1", 1), e("http://b:2/x", 3)]).unwrap();
        assert_eq!(list[1].1, 3);
        assert_eq!(list[1].0.base_path, "/x");
    }
}
