//! What the kernel checks and settles in a request head before any plugin
//! sees it, so that every plugin, runtime and upstream reads one method,
//! one host, one path and one set of end-to-end headers.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, StatusCode, Uri, Version};

use crate::apps::BEXT_HEADERS;
use crate::config::platform::Limits;
use bext_plugin_abi::{EncodedSlashes, normalise_path};

/// A request head refused before routing: its status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 405 or 414.
    pub status: StatusCode,
    /// One line for the client.
    pub reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// How the kernel reads a request head: the platform's settings for it.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Sizes and timeouts.
    pub limits: &'a Limits,
    /// What `%2F` means.
    pub slashes: EncodedSlashes,
    /// Keep header names with `_` (nginx's `underscores_in_headers`).
    pub underscores_in_headers: bool,
    /// Headers plugins own besides [`BEXT_HEADERS`] (authn's renamed
    /// caller headers), dropped like them.
    pub owned: &'a [HeaderName],
}

/// What admitting a head noticed on its way, so later steps skip a
/// lookup for what most requests do not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admitted {
    /// A `traceparent` header came (it may since have been stripped):
    /// without one, the access log's trace id needs no lookup (a lookup
    /// hashes the name; the pass over the names that strips reserved
    /// ones sees it for free).
    pub traceparent: bool,
}

/// Checks the method and the target's size, makes the Host header agree
/// with the target's authority, normalises the path, refuses a second
/// `Authorization`, and drops client copies of bext's headers, names
/// with `_` and the headers the client named in `Connection`.
pub fn admit(parts: &mut Parts, rules: Rules<'_>) -> Result<Admitted, Refusal> {
    check_method(&parts.method, parts.extensions.get::<hyper::ext::Protocol>())?;
    if parts.method == Method::CONNECT {
        // An admitted extended CONNECT is a WebSocket over HTTP/2: the GET
        // of its HTTP/1.1 handshake (RFC 8441 §5), and plugins judge it as
        // that GET (authn scopes and rate limits by method). The
        // `:protocol` extension left on it marks it for the proxy.
        parts.method = Method::GET;
    }
    let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    if target_len as u64 > rules.limits.max_uri_bytes {
        return Err(Refusal::new(StatusCode::URI_TOO_LONG, "request target too long"));
    }
    // `len() == keys_len()`: no name repeats, the common case, settled
    // without a lookup.
    if parts.headers.len() != parts.headers.keys_len()
        && parts.headers.get_all(header::AUTHORIZATION).iter().nth(1).is_some()
    {
        // A singleton field: with two, a checker may verify one and the
        // app read the other.
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "more than one Authorization header",
        ));
    }
    settle_host(parts)?;
    if parts.version >= Version::HTTP_2 {
        refuse_padded_values(&parts.headers)?;
    }
    normalise_target(&mut parts.uri, &parts.method, rules.slashes)?;
    let names = strip_reserved(&mut parts.headers, &rules);
    if names.connection {
        strip_connection_options(&mut parts.headers);
    }
    Ok(Admitted {
        traceparent: names.traceparent,
    })
}

/// What the pass over a head's names saw (besides what it removed).
struct Names {
    connection: bool,
    traceparent: bool,
}

/// Headers some frameworks take as the real path or method (IIS and
/// Symfony's `X-Original-URL`, the method overrides of Rails, Express and
/// ASP.NET): a request could pass rules written for one path or method
/// and be served as another. Dropped, so one request has one of each.
const OVERRIDE_HEADERS: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes client copies of [`BEXT_HEADERS`], [`OVERRIDE_HEADERS`], the
/// headers plugins own and, unless allowed, every
/// header whose name has `_`: CGI, WSGI and PHP read `X_Base` as
/// `HTTP_X_BASE`, the same variable as `x-base`, so an underscore
/// spelling would forge bext's headers there (nginx drops such names by
/// default for the same reason). One pass over the names, which also
/// tells whether the request has a `Connection` or a `traceparent` header
/// (so most requests need no lookup for them); nothing is allocated
/// unless something is removed.
fn strip_reserved(headers: &mut http::HeaderMap, rules: &Rules<'_>) -> Names {
    let doomed = |name: &HeaderName| {
        let n = name.as_str().as_bytes();
        // Byte tests first: most names are neither `x-` nor have a `_`.
        (n.starts_with(b"x-") && (BEXT_HEADERS.iter().chain(&OVERRIDE_HEADERS).any(|h| h.as_bytes() == n)))
            || (has_underscore(n) && (!rules.underscores_in_headers || forges_with_underscores(n, rules)))
            || (!rules.owned.is_empty() && rules.owned.contains(name))
    };
    let (mut any_doomed, mut connection, mut traceparent) = (false, false, false);
    for name in headers.keys() {
        any_doomed |= doomed(name);
        connection |= name == header::CONNECTION;
        traceparent |= name.as_str() == bext_plugin_abi::trace::TRACEPARENT;
    }
    if any_doomed {
        let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
    Names {
        connection,
        traceparent,
    }
}

/// Headers bext's proxy and request id set for the client, which an
/// underscore spelling must not forge either when `underscores_in_headers`
/// lets other underscore names through (with the forwarding facts bext
/// does not vouch for, [`crate::apps::forwarded::UNVOUCHED`]).
const FORWARDING_HEADERS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// With `underscores_in_headers`: whether `name` (which has a `_`) is an
/// underscore spelling of a header bext or a plugin sets (`x_vhost_tenant`,
/// `X_Forwarded_For`, a plugin's `x_user`), which CGI, WSGI and PHP would
/// read as that header. Those go even when other underscore names pass.
fn forges_with_underscores(name: &[u8], rules: &Rules<'_>) -> bool {
    let same =
        |h: &[u8]| h.len() == name.len() && h.iter().zip(name).all(|(a, b)| a == b || (*a == b'-' && *b == b'_'));
    BEXT_HEADERS
        .iter()
        .chain(&OVERRIDE_HEADERS)
        .chain(&FORWARDING_HEADERS)
        .any(|h| same(h.as_bytes()))
        || (crate::apps::forwarded::UNVOUCHED.iter())
            .chain(rules.owned)
            .any(|h| same(h.as_str().as_bytes()))
}

/// Whether a header name has `_`, eight bytes at a time: every name of
/// every request is tested, and most are 6 to 20 bytes long, where the
/// byte-by-byte search costs several times as much.
fn has_underscore(name: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const UNDERSCORES: u64 = u64::from_ne_bytes([b'_'; 8]);
    // A zero byte in `w ^ UNDERSCORES` is an `_` in the name (the classic
    // test: exact for "is there one", which is all that is asked).
    let found = |word: &[u8]| {
        let w = u64::from_ne_bytes(word.try_into().expect("eight bytes")) ^ UNDERSCORES;
        w.wrapping_sub(ONES) & !w & HIGHS != 0
    };
    if name.len() < 8 {
        if name.len() < 4 {
            return name.contains(&b'_');
        }
        // Two overlapping four-byte words.
        let found4 = |word: &[u8]| {
            let w = u32::from_ne_bytes(word.try_into().expect("four bytes")) ^ UNDERSCORES as u32;
            w.wrapping_sub(ONES as u32) & !w & HIGHS as u32 != 0
        };
        return found4(&name[..4]) || found4(&name[name.len() - 4..]);
    }
    let mut words = name.chunks_exact(8);
    if words.any(found) {
        return true;
    }
    // The tail as the last eight bytes, overlapping the words before it.
    !words.remainder().is_empty() && found(&name[name.len() - 8..])
}

/// Longer than any method in use (`VERSION-CONTROL` has 15 bytes).
const MAX_METHOD_LEN: usize = 32;

/// Methods are case-sensitive tokens (RFC 9110 §9.1): `get` is not `GET`,
/// and a proxy that forwards it lets the upstream decide what it means.
/// `CONNECT` asks bext to be a tunnel, which it is not, except for a
/// WebSocket over HTTP/2 (extended CONNECT with `:protocol websocket`,
/// RFC 8441), which a proxy app tunnels as it does an HTTP/1.1 upgrade.
fn check_method(method: &Method, protocol: Option<&hyper::ext::Protocol>) -> Result<(), Refusal> {
    let websocket = protocol.is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if method == Method::CONNECT && !websocket {
        return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported"));
    }
    if method.as_str().len() > MAX_METHOD_LEN {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "method name too long"));
    }
    let standard = matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE | Method::OPTIONS | Method::PATCH
    );
    if !standard
        && !method
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "malformed method"));
    }
    Ok(())
}

/// With an absolute-form target (HTTP/1.1) or `:authority` (HTTP/2), the
/// target's authority is the host (RFC 9112 §3.2.2) and the Host header
/// is made to say the same, so routing and forwarding agree. HTTP/2 with
/// a `host` that differs from `:authority` is malformed (RFC 9113 §8.3.1).
fn settle_host(parts: &mut Parts) -> Result<(), Refusal> {
    if let Some(scheme) = parts.uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "not an http target"));
    }
    let Some(authority) = parts.uri.authority() else {
        return Ok(());
    };
    let same = parts
        .headers
        .get(header::HOST)
        .is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(authority.as_str().as_bytes()));
    if same {
        return Ok(());
    }
    if parts.version >= Version::HTTP_2 && parts.headers.contains_key(header::HOST) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "host and :authority differ"));
    }
    let value = HeaderValue::from_str(authority.as_str())
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "malformed authority"))?;
    parts.headers.insert(header::HOST, value);
    Ok(())
}

/// HTTP/1.1's parser drops the whitespace around a field value; HTTP/2
/// carries values as sent and calls one that starts or ends with a space
/// or tab malformed (RFC 9113 §8.2.1). Refused, so that a check which
/// compares ` admin` with `admin` (a role, an API key, a tenant) and an
/// app or upstream that trims it never read two different values.
fn refuse_padded_values(headers: &http::HeaderMap) -> Result<(), Refusal> {
    let padded = |v: &HeaderValue| {
        let b = v.as_bytes();
        matches!(b.first(), Some(b' ' | b'\t')) || matches!(b.last(), Some(b' ' | b'\t'))
    };
    if headers.values().any(padded) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a header value starts or ends with whitespace",
        ));
    }
    Ok(())
}

/// Rewrites the target's path into its canonical form (see
/// [`bext_plugin_abi::normalise_path`]); the query is kept as sent.
fn normalise_target(uri: &mut Uri, method: &Method, slashes: EncodedSlashes) -> Result<(), Refusal> {
    let path = uri.path();
    if path == "*" && method != Method::OPTIONS {
        // `*` names the server, and only for OPTIONS (RFC 9112 §3.2.4).
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "`*` is a target for OPTIONS only",
        ));
    }
    let canonical = normalise_path(path, slashes).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if canonical == path {
        return Ok(());
    }
    let target = match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.into_owned(),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(
        PathAndQuery::from_maybe_shared(bytes::Bytes::from(target))
            .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "malformed request target"))?,
    );
    *uri = Uri::from_parts(parts).map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "malformed request target"))?;
    Ok(())
}

/// Options of `Connection` that name no header.
fn is_connection_option(token: &str) -> bool {
    ["close", "keep-alive", "upgrade"]
        .iter()
        .any(|o| token.eq_ignore_ascii_case(o))
}

/// Headers a client may not remove by naming them in `Connection`: the
/// ones framing and routing this very request.
fn is_protected(name: &HeaderName) -> bool {
    *name == header::HOST || *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING
}

/// Removes the headers the client listed in `Connection` (RFC 9110 §7.6.1)
/// as the request arrives, before bext adds its own, so a client can drop
/// only its own headers, never `x-vhost-tenant`, `x-base` or the caller
/// headers authn adds. `Connection` keeps only its options (`upgrade`...).
fn strip_connection_options(headers: &mut http::HeaderMap) {
    let mut values = headers.get_all(header::CONNECTION).iter();
    let Some(first) = values.next() else {
        return;
    };
    // The common cases (`keep-alive`, `close`, `Upgrade`) name no header.
    if values.next().is_none()
        && first
            .to_str()
            .is_ok_and(|v| v.split(',').all(|t| is_connection_option(t.trim())))
    {
        return;
    }
    let mut options: Vec<String> = Vec::new();
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for token in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            if is_connection_option(token) {
                options.push(token.to_ascii_lowercase());
            } else if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
                && !is_protected(&name)
            {
                named.push(name);
            }
        }
    }
    for name in &named {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if !options.is_empty()
        && let Ok(v) = HeaderValue::from_str(&options.join(", "))
    {
        headers.insert(header::CONNECTION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, headers: &[(&str, &str)], version: Version) -> Parts {
        let mut b = http::Request::builder().method(method).uri(target).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn run(p: &mut Parts) -> Result<(), StatusCode> {
        let owned = [HeaderName::from_static("x-user")];
        let rules = Rules {
            limits: &Limits::default(),
            slashes: EncodedSlashes::Reject,
            underscores_in_headers: false,
            owned: &owned,
        };
        admit(p, rules).map(|_| ()).map_err(|r| r.status)
    }

    #[test]
    fn a_traceparent_is_noticed_however_its_name_is_spelled() {
        let rules = Rules {
            limits: &Limits::default(),
            slashes: EncodedSlashes::Reject,
            underscores_in_headers: false,
            owned: &[],
        };
        let seen = |headers: &[(&str, &str)]| {
            let mut p = parts("GET", "/", headers, Version::HTTP_11);
            admit(&mut p, rules).unwrap().traceparent
        };
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(seen(&[("traceparent", value)]));
        assert!(seen(&[("TraceParent", value), ("accept", "*/*")]));
        assert!(seen(&[("TRACEPARENT", "not valid"), ("TRACEPARENT", value)]));
        assert!(!seen(&[
            ("accept", "*/*"),
            ("tracestate", "a=b"),
            ("traceparents", value)
        ]));
        assert!(!seen(&[]));
    }

    #[test]
    fn client_copies_of_bext_headers_and_underscore_names_are_dropped() {
        let mut p = parts(
            "GET",
            "/",
            &[
                ("X-Base", "/spoof/"),
                ("x-vhost-tenant", "victim"),
                ("X-Auth-Sub", "root"),
                ("x-auth-claims", "{}"),
                ("X_Vhost_Tenant", "victim"),
                ("x_auth_sub", "root"),
                ("X_Forwarded_For", "1.2.3.4"),
                ("X-User", "renamed caller header"),
                ("X-Original-URL", "/admin/x"),
                ("x-http-method-override", "GET"),
                ("X-Method-Override", "GET"),
                ("x-kept", "1"),
                ("x-auth-token", "app's own"),
            ],
            Version::HTTP_11,
        );
        run(&mut p).unwrap();
        let mut names: Vec<&str> = p.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x-auth-token", "x-kept"]);
    }

    /// `underscores_in_headers` lets an app's own underscore names pass,
    /// never an underscore spelling of what bext, its proxy or a plugin
    /// sets (a CGI backend reads both as the same variable).
    #[test]
    fn allowed_underscores_never_forge_bext_forwarding_or_plugin_headers() {
        let owned = [HeaderName::from_static("x-user")];
        let rules = Rules {
            limits: &Limits::default(),
            slashes: EncodedSlashes::Reject,
            underscores_in_headers: true,
            owned: &owned,
        };
        let mut p = parts(
            "GET",
            "/",
            &[
                ("x_vhost_tenant", "admin"),
                ("X_BASE", "/evil"),
                ("x_forwarded_for", "6.6.6.6"),
                ("X_Real_IP", "6.6.6.6"),
                ("x_original_url", "/admin"),
                ("x_user", "root"),
                ("x_request_id", "forged"),
                ("X-Request_Id", "forged"),
                ("x_forwarded_prefix", "/evil"),
                ("front_end_https", "on"),
                ("x_app_flag", "kept"),
                ("x_vhost_tenants", "not ours"),
            ],
            Version::HTTP_11,
        );
        admit(&mut p, rules).unwrap();
        let mut names: Vec<&str> = p.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x_app_flag", "x_vhost_tenants"]);
    }

    #[test]
    fn underscores_are_found_anywhere_in_a_name() {
        for len in 1..40 {
            let clean = "a".repeat(len);
            assert!(!has_underscore(clean.as_bytes()), "{clean}");
            for at in 0..len {
                let mut name = clean.clone().into_bytes();
                name[at] = b'_';
                assert!(has_underscore(&name), "{len} {at}");
            }
        }
        // Bytes next to `_` (0x5e, 0x60) and with the high bit are not it.
        assert!(!has_underscore(b"^^^^````\x7f\xdf\xdf\xdf"));
    }

    #[test]
    fn a_second_authorization_is_refused() {
        let mut p = parts(
            "GET",
            "/",
            &[("authorization", "Bearer a"), ("Authorization", "Bearer b")],
            Version::HTTP_11,
        );
        assert_eq!(run(&mut p), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn methods() {
        for ok in ["GET", "POST", "PROPFIND", "M-SEARCH", "PURGE"] {
            assert_eq!(run(&mut parts(ok, "/", &[], Version::HTTP_11)), Ok(()), "{ok}");
        }
        let long = "A".repeat(33);
        for bad in ["get", "Get", "pOST", "G.T", long.as_str()] {
            assert_eq!(
                run(&mut parts(bad, "/", &[], Version::HTTP_11)),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        assert_eq!(
            run(&mut parts("CONNECT", "a.test:443", &[], Version::HTTP_11)),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        // Extended CONNECT: only for a WebSocket.
        for (protocol, allowed) in [("websocket", true), ("WebSocket", true), ("connect-udp", false)] {
            let mut p = parts("CONNECT", "http://a.test/chat", &[], Version::HTTP_2);
            p.extensions.insert(hyper::ext::Protocol::from_static(protocol));
            let want = if allowed {
                Ok(())
            } else {
                Err(StatusCode::METHOD_NOT_ALLOWED)
            };
            assert_eq!(run(&mut p), want, "{protocol}");
            if allowed {
                assert_eq!(p.method, Method::GET, "plugins see the handshake's GET");
            }
        }
        assert_eq!(run(&mut parts("OPTIONS", "*", &[], Version::HTTP_11)), Ok(()));
        for method in ["GET", "POST"] {
            assert_eq!(
                run(&mut parts(method, "*", &[], Version::HTTP_11)),
                Err(StatusCode::BAD_REQUEST),
                "{method} *"
            );
        }
        assert_eq!(
            run(&mut parts("GET", "ftp://a.test/x", &[], Version::HTTP_11)),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn long_targets_are_414() {
        let long = format!("/{}", "a".repeat(10 * 1024));
        assert_eq!(
            run(&mut parts("GET", &long, &[], Version::HTTP_11)),
            Err(StatusCode::URI_TOO_LONG)
        );
        let long_authority = format!("http://{}.test/{}", "a".repeat(60), "b".repeat(8 * 1024 - 60));
        assert_eq!(
            run(&mut parts("GET", &long_authority, &[], Version::HTTP_11)),
            Err(StatusCode::URI_TOO_LONG)
        );
        let long_query = format!("/?q={}", "a".repeat(10 * 1024));
        assert_eq!(
            run(&mut parts("GET", &long_query, &[], Version::HTTP_11)),
            Err(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn the_target_authority_is_the_host() {
        let mut p = parts("GET", "http://pa.test/x", &[("host", "evil.test")], Version::HTTP_11);
        run(&mut p).unwrap();
        assert_eq!(p.headers[header::HOST], "pa.test");
        let mut p = parts("GET", "http://pa.test/x", &[("host", "evil.test")], Version::HTTP_2);
        assert_eq!(run(&mut p), Err(StatusCode::BAD_REQUEST));
        let mut p = parts(
            "GET",
            "http://pa.test:8080/x",
            &[("host", "PA.test:8080")],
            Version::HTTP_2,
        );
        assert_eq!(run(&mut p), Ok(()));
        let mut p = parts("GET", "http://pa.test/x", &[], Version::HTTP_2);
        run(&mut p).unwrap();
        assert_eq!(p.headers[header::HOST], "pa.test");
    }

    #[test]
    fn http2_values_with_whitespace_at_an_edge_are_malformed() {
        for value in [" admin", "admin ", "\tadmin", "admin\t"] {
            let mut p = parts("GET", "http://pa.test/x", &[("x-role", value)], Version::HTTP_2);
            assert_eq!(run(&mut p), Err(StatusCode::BAD_REQUEST), "{value:?}");
        }
        let mut p = parts(
            "GET",
            "http://pa.test/x",
            &[("x-role", "an admin"), ("x-empty", "")],
            Version::HTTP_2,
        );
        assert_eq!(run(&mut p), Ok(()));
    }

    #[test]
    fn paths_are_rewritten_and_queries_kept() {
        let mut p = parts("GET", "//%61dmin/./x?a=%2e%2e/b", &[], Version::HTTP_11);
        run(&mut p).unwrap();
        assert_eq!(p.uri.path_and_query().unwrap().as_str(), "/admin/x?a=%2e%2e/b");
        let mut p = parts("GET", "http://pa.test/a/../b", &[], Version::HTTP_11);
        run(&mut p).unwrap();
        assert_eq!(p.uri.to_string(), "http://pa.test/b");
        for bad in ["/../x", "/a%00", "/a%2fb", "/a%5Cb"] {
            assert_eq!(
                run(&mut parts("GET", bad, &[], Version::HTTP_11)),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
    }

    #[test]
    fn connection_names_only_the_clients_headers() {
        let mut p = parts(
            "GET",
            "/",
            &[
                ("connection", "X-Vhost-Tenant, x-base ,upgrade"),
                ("connection", "x-secret, host, content-length"),
                ("upgrade", "websocket"),
                ("x-secret", "1"),
                ("x-base", "/spoof/"),
                ("content-length", "0"),
                ("x-kept", "1"),
            ],
            Version::HTTP_11,
        );
        run(&mut p).unwrap();
        let h = &p.headers;
        assert!(!h.contains_key("x-secret") && !h.contains_key("x-base"));
        assert!(h.contains_key("x-kept") && h.contains_key("content-length"));
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");

        let mut p = parts("GET", "/", &[("connection", "keep-alive")], Version::HTTP_11);
        run(&mut p).unwrap();
        assert_eq!(p.headers[header::CONNECTION], "keep-alive");
    }
}
