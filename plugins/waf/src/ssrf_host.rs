//! The host of a URL read the way a resolver reads it, so that every
//! spelling of an internal address is one address: `inet_aton`'s forms
//! (one to four parts, each decimal, `0x` hex or `0`-led octal:
//! `0x7f.1`, `017700000001`, `127.1`, `0`), IPv6 literals with an IPv4
//! address mapped into them, a trailing dot. A URL that opens the value
//! and names a loopback, private, link-local or unspecified address is
//! refused; one further into a value only when its address is spelled as
//! no person writes it (a dotted quad in plain decimal is a link someone
//! pasted: `see http://192.168.1.1 for the router`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest host looked at.
const MAX_HOST: usize = 64;

/// The host of the first URL in `canon` (canonical, lower-cased) that
/// names an internal address, as a refusal reads it.
pub(crate) fn internal_url_host(canon: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&canon.as_bytes()[from..], b"//") {
        let start = from + at + 2;
        from = start;
        let before = &canon[..start - 2];
        // `scheme://` or a value that is `//host` (scheme-relative).
        let leads = before.trim_start().is_empty();
        let scheme = before
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | ':')))
            .next()
            .unwrap_or("");
        if !(leads || (scheme.ends_with(':') && scheme.len() > 1)) {
            continue;
        }
        let opens = leads || before.trim_start() == scheme;
        let Some(host) = host_of(&canon[start..]) else {
            continue;
        };
        if let Some(disguised) = internal(host)
            && (opens || disguised)
        {
            return Some(host);
        }
    }
    None
}

/// The host part of what follows `//`: user information dropped, up to
/// the port, path, query, fragment or a space.
fn host_of(rest: &str) -> Option<&str> {
    let authority_end = rest.find(['/', '?', '#', '\\', ' ', '\t', '\n']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        &host[..host.find(']').map_or(host.len(), |i| i + 1)]
    } else {
        host.split(':').next().unwrap_or("")
    };
    (!host.is_empty() && host.len() <= MAX_HOST).then_some(host)
}

/// `Some(disguised)` when `host` is an internal address; `disguised`
/// when it is not written as a plain dotted quad.
fn internal(host: &str) -> Option<bool> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let v6 = v6.split('%').next().unwrap_or(v6);
        let ip: Ipv6Addr = v6.parse().ok()?;
        let inner = ip.to_ipv4_mapped();
        let segment = ip.segments()[0];
        let private = ip.is_loopback()
            || ip.is_unspecified()
            || (segment & 0xfe00) == 0xfc00
            || (segment & 0xffc0) == 0xfe80
            || inner.is_some_and(private_v4);
        return private.then_some(true);
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let ip = inet_aton(host)?;
    let plain = host.parse::<Ipv4Addr>().is_ok_and(|p| p.to_string() == host);
    private_v4(ip).then_some(!plain)
}

/// Loopback, unspecified, private, link-local or shared (CGNAT).
fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0 || a == 10 || a == 127 || ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b))
}

/// An address in any of the forms `inet_aton` accepts.
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host.split('.').map(number).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let high = head.iter().fold(0u64, |acc, &p| (acc << 8) | p) << room;
    Some(Ipv4Addr::from((high | last) as u32))
}

/// One part: decimal, `0x` hex or `0`-led octal.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() || part.len() > 12 {
        return None;
    }
    if let Some(hex) = part.strip_prefix("0x") {
        return if hex.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(hex, 16).ok()
        };
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok();
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::internal_url_host;

    #[test]
    fn every_spelling_of_an_internal_address_is_found() {
        for value in [
            "http://0/",
            "http://0:8080/admin",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://127.0.0.1./",
            "gopher://10.0.0.5:6379/_info",
            "//192.168.0.1/admin",
            "http://user:pw@0x0a.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[fe80::1%25eth0]/",
            "see http://0x7f000001/ now",
            "url=http://0251.0376.0251.0376/latest",
        ] {
            assert!(internal_url_host(value).is_some(), "{value}");
        }
    }

    #[test]
    fn public_addresses_names_and_pasted_links_pass() {
        for value in [
            "http://example.com/",
            "http://8.8.8.8/",
            "http://1.1/",
            "https://127.example.com/",
            "see http://192.168.1.1 for the router",
            "http://[2001:db8::1]/",
            "a // comment",
            "ratio 10//3",
            "http://300.0.0.1/",
        ] {
            assert_eq!(internal_url_host(value), None, "{value}");
        }
    }
}
