//! The request host's canonical form: lower case, no port, no trailing
//! dot, one spelling per IPv6 address. The kernel puts it in `cx.host`
//! before any plugin runs; the platform file's domains and admin hosts are
//! checked and compared in the same form, so a host matches whatever way
//! a client spells it.

/// Why a request's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// HTTP/1.1 without Host.
    #[error("missing Host header")]
    Missing,
    /// More than one Host header.
    #[error("more than one Host header")]
    Duplicate,
    /// An empty Host.
    #[error("empty Host header")]
    Empty,
    /// Not a host name, IPv4 or bracketed IPv6 address with optional port.
    #[error("malformed Host header")]
    Malformed,
}

/// The canonical form of `host[:port]`: a host name (letters, digits,
/// `-`, `_`, labels of at most 63 bytes, 253 in all), an IPv4 address or
/// a bracketed IPv6 one, with an optional port up to 65535.
pub fn normalise_host(raw: &[u8]) -> Result<Box<str>, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if raw[0] == b'[' {
        let end = raw.iter().position(|&b| b == b']').ok_or(HostError::Malformed)?;
        let inner = std::str::from_utf8(&raw[1..end]).map_err(|_| HostError::Malformed)?;
        let ip = inner.parse::<std::net::Ipv6Addr>().map_err(|_| HostError::Malformed)?;
        match &raw[end + 1..] {
            [] => {}
            [b':', port @ ..] => check_port(port)?,
            _ => return Err(HostError::Malformed),
        }
        // One spelling per address: `[0:0::1]` and `[::0001]` are `[::1]`.
        return Ok(format!("[{ip}]").into_boxed_str());
    }
    // One pass over the name: the port's colon, each label's length and
    // characters, and whether anything needs lowering.
    let mut end = raw.len();
    let mut label = 0usize;
    let mut upper = false;
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label += 1,
            b'A'..=b'Z' => {
                upper = true;
                label += 1;
            }
            b'.' => {
                if label == 0 {
                    // An empty label, unless it is the one trailing dot.
                    let trailing = i + 1 == raw.len() || raw[i + 1] == b':';
                    if !trailing || i == 0 {
                        return Err(HostError::Malformed);
                    }
                }
                label = 0;
            }
            b':' => {
                check_port(&raw[i + 1..])?;
                end = i;
                break;
            }
            _ => return Err(HostError::Malformed),
        }
        if label > 63 {
            return Err(HostError::Malformed);
        }
    }
    let host = &raw[..end];
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > 253 || host.ends_with(b".") {
        return Err(HostError::Malformed);
    }
    // Only ASCII letters, digits, `-`, `_` and `.` got here.
    let s = std::str::from_utf8(host).map_err(|_| HostError::Malformed)?;
    Ok(if upper {
        s.to_ascii_lowercase().into_boxed_str()
    } else {
        s.into()
    })
}

/// A port: one to five digits, at most 65535.
fn check_port(port: &[u8]) -> Result<(), HostError> {
    let digits = !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
    if digits && port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535 {
        Ok(())
    } else {
        Err(HostError::Malformed)
    }
}

/// The port a request's client wrote with its host, as written: the
/// absolute-form target's (or HTTP/2 `:authority`'s), which wins over the
/// `Host` header as the kernel's host does, else `Host`'s. The host is
/// normalised without it; the app sees it in its URL, and the cache keys
/// on it, so both read it here.
pub fn requested_port<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    let authority = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let (_, port) = authority.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// The canonical form of a host pattern in configuration (an app's
/// `domains`, vhosts' `hosts`): a host name, `*.suffix` for every
/// subdomain, or a bracketed IPv6 address; no port. Lower case, no
/// trailing dot, one spelling per IPv6 address, so that it compares equal
/// to the `cx.host` of every request for it.
pub fn normalise_host_pattern(pattern: &str) -> Result<String, String> {
    if let Some(bare) = bare_host(pattern) {
        return Err(format!(
            "a domain is a bare host, without scheme, path or port: write \"{bare}\""
        ));
    }
    let host = pattern.trim().to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.starts_with('[') {
        let inner = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .ok_or("an IPv6 literal is written `[addr]` with no port")?;
        let ip = inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
        return Ok(format!("[{ip}]"));
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    if name.contains('*') {
        return Err("a wildcard is only allowed as the whole first label (`*.example.com`)".into());
    }
    if name.contains(':') {
        return Err("ports are not part of host matching; drop `:port`".into());
    }
    if name.split('.').any(|label| {
        label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err("not a valid host name".into());
    }
    Ok(host)
}

/// The host inside a URL-like pattern (`http://a.test`, `a.test/`,
/// `a.test:8080`, `https://a.test:8443/app`), which users write for a
/// domain as they would for a link; `None` when there is nothing to take
/// off (or no host left to suggest).
fn bare_host(pattern: &str) -> Option<String> {
    let pattern = pattern.trim();
    let rest = pattern.split_once("://").map_or(pattern, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = match rest.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or(v6)),
        None => rest.split(':').next().unwrap_or(rest).to_owned(),
    };
    let host = host.to_ascii_lowercase();
    (host != pattern.to_ascii_lowercase() && !host.is_empty() && host != "[]").then_some(host)
}

/// Whether a configured host pattern reaches `host` (normalised, as
/// `cx.host`): the same name, or for `*.suffix` a name with at least one
/// label before the suffix (tenants may contain dots). `~regex` patterns
/// and unusable ones reach nothing here: vhosts judges regexes itself.
/// One rule for routing, certificates, redirects and claims.
pub fn pattern_reaches(pattern: &str, host: &str) -> bool {
    if pattern.starts_with('~') {
        return false;
    }
    let Ok(p) = normalise_host_pattern(pattern) else {
        return false;
    };
    match p.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|head| !head.is_empty()),
        None => p == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_reach_their_name_or_any_name_below_their_wildcard() {
        for (pattern, host, reaches) in [
            ("Shop.test.", "shop.test", true),
            ("*.shop.test", "a.shop.test", true),
            ("*.shop.test", "a.b.shop.test", true),
            ("*.shop.test", "shop.test", false),
            ("*.shop.test", "xshop.test", false),
            ("*.shop.test", ".shop.test", false),
            ("shop.test", "a.shop.test", false),
            ("~^shop\\.test$", "shop.test", false),
            ("*.*.test", "a.b.test", false),
        ] {
            assert_eq!(pattern_reaches(pattern, host), reaches, "{pattern} {host}");
        }
    }

    fn host(v: &[u8]) -> Result<Box<str>, HostError> {
        normalise_host(v)
    }

    #[test]
    fn normalises_case_port_and_trailing_dot() {
        assert_eq!(&*host(b"Example.COM:8080").unwrap(), "example.com");
        assert_eq!(&*host(b"example.com.").unwrap(), "example.com");
        assert_eq!(&*host(b"[::1]:3000").unwrap(), "[::1]");
        assert_eq!(&*host(b"[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(&*host(b"[0:0:0:0:0:0:0:1]").unwrap(), "[::1]");
        assert_eq!(&*host(b"[::0001]:80").unwrap(), "[::1]");
        assert_eq!(&*host(b"localhost").unwrap(), "localhost");
        assert_eq!(&*host(b"127.0.0.1:80").unwrap(), "127.0.0.1");
        assert_eq!(&*host(b"x:65535").unwrap(), "x");
    }

    #[test]
    fn the_requested_port_is_the_targets_else_the_host_headers() {
        let mut headers = http::HeaderMap::new();
        let origin: http::Uri = "/x".parse().unwrap();
        assert_eq!(requested_port(&origin, &headers), None);
        for (host, port) in [
            ("a.test:0443", Some("0443")),
            ("a.test", None),
            ("[::1]", None),
            ("[::1]:8080", Some("8080")),
        ] {
            headers.insert(http::header::HOST, host.parse().unwrap());
            assert_eq!(requested_port(&origin, &headers), port, "{host}");
        }
        let absolute: http::Uri = "http://a.test:7777/x".parse().unwrap();
        assert_eq!(requested_port(&absolute, &headers), Some("7777"), "the target wins");
    }

    #[test]
    fn refuses_malformed_hosts() {
        assert_eq!(host(b""), Err(HostError::Empty));
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"a@b",
            b"[::1",
            b"[zz]",
            b"a:xyz",
            b"a:",
            b":80",
            b"a..b",
            b"a\\b",
            b"\xff",
            b"a%2eb",
            b"[::1]x",
            b"x:99999",
            b"x:65536",
            b"[::1]:70000",
        ] {
            assert_eq!(
                host(bad),
                Err(HostError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn patterns_take_the_form_of_request_hosts() {
        let p = |s: &str| normalise_host_pattern(s);
        assert_eq!(p("Example.COM.").unwrap(), "example.com");
        assert_eq!(p("*.Tenants.Example.com").unwrap(), "*.tenants.example.com");
        assert_eq!(p("[0:0::1]").unwrap(), "[::1]");
        assert_eq!(p("[0:0::1]").unwrap(), &*normalise_host(b"[::0001]:8080").unwrap());
        // A URL's host is what to write instead, said as such.
        for (url, host) in [
            ("http://a.test", "a.test"),
            ("HTTPS://Shop.Example.com:8443/app?x", "shop.example.com"),
            ("a.test/", "a.test"),
            ("a.test:8080", "a.test"),
            ("*.t.test:80", "*.t.test"),
            ("http://[::1]:80/", "[::1]"),
            ("http://user@a.test", "a.test"),
        ] {
            let err = p(url).unwrap_err();
            assert!(err.contains(&format!("write \"{host}\"")), "{url}: {err}");
        }
        for bad in [
            "",
            "a.*.b",
            "example.com:80",
            "a..b",
            "bad domain.test",
            "[::1]:80",
            "[zz]",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
