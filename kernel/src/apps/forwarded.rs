//! The forwarding headers an app receives (`X-Forwarded-For`, `-Proto`,
//! `-Host`): bext's own, never the client's, for proxied and JavaScript
//! apps alike: a client's copies would reach the app as if a proxy had
//! vouched for them.

use bext_plugin_abi::Ctx;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Removes every header named in `names`: one pass over the names the
/// message has (most have none of them, and nothing is allocated then)
/// instead of a lookup for each.
pub(crate) fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in present(headers, &[names]) {
        headers.remove(name);
    }
}

/// The names `headers` has among `sets`. A name is compared only with
/// those of its length, which rules out nearly every name a message has
/// at the cost of a bit test.
fn present(headers: &HeaderMap, sets: &[&[HeaderName]]) -> Vec<HeaderName> {
    // One bit a length; names of 63 bytes and more share the last.
    let bit = |name: &HeaderName| 1u64 << name.as_str().len().min(63);
    let lengths = sets.iter().flat_map(|s| s.iter()).fold(0, |mask, n| mask | bit(n));
    let mut found = Vec::new();
    for key in headers.keys() {
        if lengths & bit(key) != 0 && sets.iter().any(|s| s.contains(key)) {
            found.push(key.clone());
        }
    }
    found
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
    Forwarding::take(headers, cx).insert_into(headers);
}

/// The fields bext writes itself: a client's copies go.
/// `X-Forwarded-For`, `-Proto` and `-Host`, in that order.
static OWN: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// bext's forwarding fields for one request, made once and kept beside
/// the request's map rather than in it: the proxy's own HTTP/1.1 exchange
/// writes them straight into the upstream's head (three map inserts,
/// each a hash and a probe, and sometimes the map's growth, saved a
/// request), hyper's client gets them in the map ([`insert_into`](Self::insert_into)),
/// and a retry reuses them.
pub(crate) struct Forwarding {
    fields: [(&'static HeaderName, HeaderValue); 3],
    /// How many of `fields` there are (`X-Forwarded-Host` needs a host).
    len: usize,
}

impl Forwarding {
    /// Removes every client copy of a forwarding field from `headers`
    /// (what [`vouch`] replaces) and makes bext's own: the client's
    /// `X-Forwarded-For` with the peer's address after it, the scheme, the
    /// host bext routed by.
    pub(crate) fn take(headers: &mut HeaderMap, cx: &Ctx) -> Forwarding {
        let prev = strip(headers);
        let xff = match prev.as_ref().and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => HeaderValue::from_str(&format!("{prev}, {}", cx.peer.ip())).ok(),
            _ => None,
        };
        let proto = if cx.ext.get::<super::OverTls>().is_some() {
            "https"
        } else {
            "http"
        };
        let [x_forwarded_for, x_forwarded_proto, x_forwarded_host] = &OWN;
        let mut fields = [
            (x_forwarded_for, xff.unwrap_or_else(|| ip_value(cx.peer.ip()))),
            (x_forwarded_proto, HeaderValue::from_static(proto)),
            (x_forwarded_host, HeaderValue::from_static("")),
        ];
        let mut len = 2;
        if let Some(h) = cx.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            fields[2].1 = h;
            len = 3;
        }
        Forwarding { fields, len }
    }

    /// The fields, in the order they are written.
    pub(crate) fn fields(&self) -> &[(&'static HeaderName, HeaderValue)] {
        &self.fields[..self.len]
    }

    /// The value bext sends for `name`, if it is one of its fields.
    pub(crate) fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.fields().iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Puts the fields into `headers`, replacing any of the same name.
    pub(crate) fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(*name, value.clone());
        }
    }

    /// Takes the fields out of `headers` again (a request hyper's client
    /// gave back unsent, which may go to the exchange next).
    pub(crate) fn remove_from(&self, headers: &mut HeaderMap) {
        for (name, _) in self.fields() {
            headers.remove(*name);
        }
    }
}

/// Removes the client's forwarding fields ([`UNVOUCHED`] and bext's
/// own three) in one pass over the names `headers` has, and returns its
/// first `X-Forwarded-For`.
fn strip(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let mut prev = None;
    for name in present(headers, &[&UNVOUCHED, &OWN]) {
        let first = headers.remove(&name);
        if name == OWN[0] {
            prev = first;
        }
    }
    prev
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
