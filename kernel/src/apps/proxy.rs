//! The `proxy` runtime: one upstream URL, bodies streamed both ways,
//! over keep-alive connections kept per worker ([`super::pool`]).

use std::time::Duration;

use crate::apps::plain;
use crate::apps::pool::{Pool, PoolError, PooledBody};
use crate::config::upstream::Upstream;
use bext_plugin_abi::BodyLimitError;
use bext_plugin_abi::{Body, Ctx, Request, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{StatusCode, Uri, Version};

/// A proxied app.
pub struct ProxyApp {
    upstream: Upstream,
    pool: Pool,
    preserve_host: bool,
    response_timeout: Duration,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, and `Upgrade` outside a
/// tunnel), never forwarded.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

impl ProxyApp {
    /// A proxy to `upstream`, on the connections its workers keep.
    pub fn new(upstream: Upstream, preserve_host: bool, connect_timeout: Duration, response_timeout: Duration) -> Self {
        ProxyApp {
            pool: Pool::new(&upstream.authority, connect_timeout),
            upstream,
            preserve_host,
            response_timeout,
        }
    }

    /// The upstream's request target (origin form) for a request to `uri`:
    /// the request's path and query as they are (already parsed and
    /// checked) when the upstream URL has no path of its own, so a request
    /// costs no formatting and no parsing.
    fn target(&self, uri: &Uri) -> Option<Uri> {
        let asked = uri.path_and_query();
        let path_and_query = match asked {
            Some(pq) if self.upstream.base_path.is_empty() => pq.clone(),
            None if self.upstream.base_path.is_empty() => PathAndQuery::from_static("/"),
            _ => {
                let path = asked.map_or("/", PathAndQuery::as_str);
                format!("{}{path}", self.upstream.base_path).parse().ok()?
            }
        };
        Some(Uri::from(path_and_query))
    }

    /// Forwards one request and streams the answer back; an HTTP/1.1
    /// `Upgrade` (WebSocket) that the upstream accepts with 101 becomes a
    /// byte tunnel between client and upstream.
    pub async fn serve(&self, mut req: Request, cx: &Ctx) -> Response {
        let upgrade = upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let Some(uri) = self.target(&parts.uri) else {
            return plain(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        // The kernel already dropped what the client named in `Connection`,
        // before bext added its own headers: strip only the fixed
        // hop-by-hop set here.
        parts.headers.remove(header::HOST);
        strip_fixed_hop_by_hop(&mut parts.headers);
        // The host bext routed, authenticated and cached by, in its
        // canonical form (lower case, no port, no trailing dot), so an
        // upstream cannot build a page for `site.test:6666` that the
        // cache then files under `site.test`.
        let host = match cx.host.as_deref() {
            Some(h) if self.preserve_host => HeaderValue::from_str(h).ok(),
            _ => None,
        };
        parts
            .headers
            .insert(header::HOST, host.unwrap_or_else(|| self.pool.host().clone()));
        join_cookies(&mut parts.headers);
        super::forwarded::vouch(&mut parts.headers, cx);
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let upstream_req = Request::from_parts(parts, body);

        let (res, lease) = match tokio::time::timeout(self.response_timeout, self.pool.send(upstream_req)).await {
            Err(_) => return plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
            Ok(Err(e)) => return failure(&e, cx),
            Ok(Ok(answer)) => answer,
        };
        if let (StatusCode::SWITCHING_PROTOCOLS, Some(client)) = (res.status(), client_upgrade) {
            return tunnel(res, client, cx);
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The client's connection speaks its own version; an HTTP/1.0
        // upstream's is not relayed (hyper would write it in the status
        // line and close a kept-alive connection).
        parts.version = Version::HTTP_11;
        Response::from_parts(parts, Body::stream(PooledBody::new(body, lease)))
    }
}

/// The protocol a request asks to upgrade to, when it carries both
/// `Connection: upgrade` and `Upgrade: websocket`. Only WebSocket is
/// tunnelled: after an `h2c` (or any other) upgrade, the requests inside
/// the tunnel would reach the upstream without passing bext's plugins
/// (h2c smuggling), so such an `Upgrade` is dropped and the request
/// forwarded as a plain one.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE)?;
    (asks
        && headers.get_all(header::UPGRADE).iter().count() == 1
        && upgrade.as_bytes().eq_ignore_ascii_case(b"websocket"))
    .then(|| upgrade.clone())
}

/// HTTP/2 clients may send `cookie` as several fields; an HTTP/1.1
/// upstream gets them as one line joined by `; ` (RFC 9113 §8.2.3), so it
/// reads the same cookies the plugins read.
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Answers 101 to the client and splices the two upgraded connections.
fn tunnel(
    mut upstream: http::Response<hyper::body::Incoming>,
    client: hyper::upgrade::OnUpgrade,
    cx: &Ctx,
) -> Response {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    let request_id = cx.request_id;
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(%request_id, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%request_id, error = %e, "upgraded connection ended");
        }
    });
    let (parts, _) = upstream.into_parts();
    Response::from_parts(parts, Body::empty())
}

fn failure(e: &PoolError, cx: &Ctx) -> Response {
    let mut timed_out = matches!(e, PoolError::ConnectTimeout { .. });
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(limit) = err.downcast_ref::<BodyLimitError>() {
            return plain(limit.status(), "request body refused\n");
        }
        timed_out |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        source = err.source();
    }
    tracing::warn!(request_id = %cx.request_id, app = cx.app().unwrap_or(""), error = ?e, "upstream request failed");
    if timed_out {
        plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
    } else {
        plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`: an
/// upstream's answer, which no plugin has touched yet.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // `keep-alive` and `close`, what most answers name, go anyway.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.eq_ignore_ascii_case("keep-alive") && !name.eq_ignore_ascii_case("close"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    strip_fixed_hop_by_hop(headers);
}

/// Removes the headers that are hop-by-hop by definition.
fn strip_fixed_hop_by_hop(headers: &mut HeaderMap) {
    super::forwarded::remove_all(headers, &HOP_BY_HOP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_is_tunnelled_and_cookies_are_one_line() {
        let ask = |up: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static(up));
            upgrade_protocol(&h)
        };
        assert!(ask("websocket").is_some() && ask("WebSocket").is_some());
        for other in ["h2c", "websocket, h2c", "TLS/1.2"] {
            assert!(ask(other).is_none(), "{other}");
        }
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    }

    #[test]
    fn the_request_target_keeps_path_and_query_and_adds_the_base() {
        let app = |url: &str| {
            ProxyApp::new(
                crate::config::upstream::parse_upstream(url).unwrap(),
                false,
                Duration::from_secs(1),
                Duration::from_secs(1),
            )
        };
        let uri: Uri = "/a/b?x=1&y=%20".parse().unwrap();
        assert_eq!(app("http://127.0.0.1:9").target(&uri).unwrap(), "/a/b?x=1&y=%20");
        assert_eq!(
            app("http://up.test:81/api/").target(&uri).unwrap(),
            "/api/a/b?x=1&y=%20"
        );
        let absolute: Uri = "http://other.test/x?q".parse().unwrap();
        assert_eq!(app("http://127.0.0.1:9").target(&absolute).unwrap(), "/x?q");
    }

    #[test]
    fn every_fixed_hop_by_hop_and_unvouched_header_goes_whatever_its_place() {
        let mut h = HeaderMap::new();
        for name in HOP_BY_HOP.iter().chain(&crate::apps::forwarded::UNVOUCHED).rev() {
            h.append(name, HeaderValue::from_static("1"));
            h.append(name, HeaderValue::from_static("2"));
        }
        // Names as long as removed ones, and longer than any, stay.
        let long = "x-".repeat(40);
        for kept in ["x-kept", "x-forwarded-xyz", "forwardee", "x-upgrade", long.as_str()] {
            h.insert(
                HeaderName::from_bytes(kept.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        strip_fixed_hop_by_hop(&mut h);
        crate::apps::forwarded::remove_all(&mut h, &crate::apps::forwarded::UNVOUCHED);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort();
        assert_eq!(
            left,
            ["forwardee", "x-forwarded-xyz", "x-kept", "x-upgrade", long.as_str()]
        );
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(long.as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        crate::apps::forwarded::remove_all(&mut h, &[HeaderName::from_bytes(long.as_bytes()).unwrap()]);
        assert!(h.is_empty(), "a long name in the set is removed too");
    }

    #[test]
    fn connection_listed_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
