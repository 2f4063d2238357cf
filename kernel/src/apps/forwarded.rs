//! The forwarding headers an app receives (`X-Forwarded-For`, `-Proto`,
//! `-Host`): bext's own, never the client's, for proxied and JavaScript
//! apps alike: a client's copies would reach the app as if a proxy had
//! vouched for them.

use bext_plugin_abi::Ctx;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes every header named in `names`: one pass over the names the
/// message has (most have none of them, and nothing is allocated then)
/// instead of a lookup for each. A name is compared only with those of
/// its length, which rules out nearly every name a message has at the
/// cost of a bit test.
pub(crate) fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    // One bit a length; names of 63 bytes and more share the last.
    let bit = |name: &HeaderName| 1u64 << name.as_str().len().min(63);
    let lengths = names.iter().fold(0, |mask, n| mask | bit(n));
    let mut found: Vec<HeaderName> = Vec::new();
    for key in headers.keys() {
        if lengths & bit(key) != 0 && names.contains(key) {
            found.push(key.clone());
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// Forwarding facts bext does not write: a client's copies would reach
/// the upstream as if a proxy had vouched for them (a framework that
/// honours `Forwarded: host=` builds pages for that host, which the cache
/// then shares). The upstream learns the client, scheme and host from
/// bext's own `X-Forwarded-*` only.
pub(crate) static UNVOUCHED: [HeaderName; 12] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-real-ip"),
    // Other spellings of "this came over HTTPS" that frameworks honour
    // (Rack and Spring read `X-Forwarded-Ssl` before `X-Forwarded-Proto`).
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-protocol"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("x-scheme"),
    HeaderName::from_static("cf-visitor"),
];

/// Replaces the client's forwarding headers with bext's own: what the
/// client sent of [`UNVOUCHED`] goes, and `X-Forwarded-For`, `-Proto` and
/// `-Host` say what bext saw.
pub(crate) fn vouch(headers: &mut HeaderMap, cx: &Ctx) {
    remove_all(headers, &UNVOUCHED);
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => HeaderValue::from_str(&format!("{prev}, {}", cx.peer.ip())).ok(),
        _ => Some(ip_value(cx.peer.ip())),
    };
    if let Some(v) = xff {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    let proto = if cx.ext.get::<super::OverTls>().is_some() {
        "https"
    } else {
        "http"
    };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(h) = cx.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(&X_FORWARDED_HOST, h);
    }
}

/// An address as a header value, written without the formatting machinery
/// for IPv4 (every proxied request has one).
fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    let std::net::IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).expect("an address is a valid header value");
    };
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            out[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&out[..len]).expect("digits and dots are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.1.9",
            "::1",
            "2001:db8::7",
        ] {
            let parsed: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(parsed), parsed.to_string(), "{ip}");
        }
    }
}
