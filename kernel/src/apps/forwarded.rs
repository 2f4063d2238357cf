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
/// client sent of [`UNVOUCHED`] goes, `X-Forwarded-For`, `-Proto` and
/// `-Host` say what bext saw, and `traceparent` names bext's span.
pub(crate) fn vouch(headers: &mut HeaderMap, cx: &Ctx) {
    Forwarding::take(headers, cx).insert_into(headers);
}

/// The forwarding fields bext writes itself: a client's copies go.
/// `X-Forwarded-For`, `-Proto` and `-Host`, in that order.
static OWN: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// `traceparent`, which bext writes with its own span, and `tracestate`,
/// which goes with a client's `traceparent` that was not valid.
static TRACE: [HeaderName; 2] = [
    HeaderName::from_static(bext_plugin_abi::trace::TRACEPARENT),
    HeaderName::from_static(bext_plugin_abi::trace::TRACESTATE),
];

/// bext's own fields for one request to an app's upstream (its
/// `X-Forwarded-*` and the request's `traceparent` with bext's span),
/// made once and kept beside the request's map rather than in it: the
/// proxy's own HTTP/1.1 exchange writes them straight into the upstream's
/// head (four map inserts, each a hash and a probe, and sometimes the
/// map's growth, saved a request), hyper's client gets them in the map
/// ([`insert_into`](Self::insert_into)), and a retry reuses them.
pub(crate) struct Forwarding {
    fields: [(&'static HeaderName, HeaderValue); 4],
    /// How many of `fields` there are (`X-Forwarded-Host` needs a host).
    len: usize,
}

impl Forwarding {
    /// Removes every client copy of bext's fields from `headers` (the
    /// unvouched forwarding facts, `X-Forwarded-*`, `traceparent`, and
    /// `tracestate` when the client's `traceparent` was not valid) and
    /// makes bext's own: the client's `X-Forwarded-For` with the peer's
    /// address after it, the scheme, the host bext routed by, the trace.
    pub(crate) fn take(headers: &mut HeaderMap, cx: &Ctx) -> Forwarding {
        // Read before the client's `traceparent` goes.
        let trace = cx.trace_or_read(headers, 0.0);
        let trace_fields = if trace.parent.is_some() {
            &TRACE[..1]
        } else {
            &TRACE[..]
        };
        let prev = strip(headers, trace_fields);
        // The peer as the rest of bext names it: an IPv4 client of a
        // dual-stack listener as IPv4.
        let peer = cx.peer.ip().to_canonical();
        let xff = match prev {
            Some(prev) if !prev.trim().is_empty() => HeaderValue::from_str(&format!("{prev}, {peer}")).ok(),
            _ => None,
        };
        let proto = if cx.ext.get::<super::OverTls>().is_some() {
            "https"
        } else {
            "http"
        };
        let [x_forwarded_for, x_forwarded_proto, x_forwarded_host] = &OWN;
        let mut own = Forwarding {
            fields: std::array::from_fn(|_| (x_forwarded_for, HeaderValue::from_static(""))),
            len: 0,
        };
        own.push(x_forwarded_for, xff.unwrap_or_else(|| ip_value(peer)));
        own.push(x_forwarded_proto, HeaderValue::from_static(proto));
        if let Some(h) = cx.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            own.push(x_forwarded_host, h);
        }
        own.push(&TRACE[0], trace.traceparent());
        own
    }

    fn push(&mut self, name: &'static HeaderName, value: HeaderValue) {
        self.fields[self.len] = (name, value);
        self.len += 1;
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

/// Removes the client's copies of bext's fields ([`UNVOUCHED`], bext's
/// own three, and `trace`) in one pass over the names `headers` has, and
/// returns its `X-Forwarded-For` lines as one list (a proxy in front may
/// add a line of its own rather than extend the last; lines that are not
/// text are left out).
fn strip(headers: &mut HeaderMap, trace: &[HeaderName]) -> Option<String> {
    let mut prev = None;
    for name in present(headers, &[&UNVOUCHED, &OWN, trace]) {
        if name == OWN[0] {
            let lines = headers.get_all(&name).iter().filter_map(|v| v.to_str().ok());
            prev = Some(lines.collect::<Vec<_>>().join(", "));
        }
        headers.remove(&name);
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

    /// The client's forwarding fields all leave the map; bext's own are
    /// the client's `X-Forwarded-For` with the peer after it, the scheme
    /// and the routed host, and no host means no `X-Forwarded-Host`.
    #[test]
    fn the_clients_forwarding_fields_go_and_bexts_are_made_once() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "host=evil.test"),
            ("x-real-ip", "1.2.3.4"),
            ("x-kept", "1"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        let mut cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:9".parse().unwrap());
        cx.host = Some("site.test".into());
        let own = Forwarding::take(&mut h, &cx);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-kept"]);
        let fields: Vec<(&str, &str)> = own
            .fields()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields[..3],
            [
                ("x-forwarded-for", "203.0.113.9, 198.51.100.1, 127.0.0.1"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "site.test"),
            ]
        );
        assert_eq!(fields[3].0, "traceparent");
        assert_eq!(fields[3].1, cx.trace().unwrap().traceparent());
        own.insert_into(&mut h);
        assert_eq!(h.len(), 5);
        own.remove_from(&mut h);
        assert_eq!(h.len(), 1);

        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.test"));
        let cx = Ctx::new(bext_plugin_abi::RequestId(2), "127.0.0.1:9".parse().unwrap());
        let own = Forwarding::take(&mut h, &cx);
        assert!(h.is_empty());
        assert_eq!(own.fields().len(), 3);
        assert_eq!(own.get(&OWN[0]).unwrap(), "127.0.0.1");
        assert!(own.get(&OWN[2]).is_none());
    }

    /// An IPv4 client of a dual-stack listener is written as IPv4, as
    /// bext's log and plugins name it, after the client's list.
    #[test]
    fn a_mapped_peer_is_written_as_ipv4() {
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "[::ffff:127.0.0.1]:9".parse().unwrap());
        let own = Forwarding::take(&mut HeaderMap::new(), &cx);
        assert_eq!(own.get(&OWN[0]).unwrap(), "127.0.0.1");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        assert_eq!(
            Forwarding::take(&mut h, &cx).get(&OWN[0]).unwrap(),
            "6.6.6.6, 127.0.0.1"
        );
    }

    /// A valid `traceparent` is continued under bext's span and its
    /// `tracestate` kept; an invalid one goes with its `tracestate`.
    #[test]
    fn the_clients_trace_is_continued_or_replaced() {
        const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:9".parse().unwrap());
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(PARENT));
        h.insert("tracestate", HeaderValue::from_static("v=1"));
        let own = Forwarding::take(&mut h, &cx);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["tracestate"]);
        let sent = own.get(&TRACE[0]).unwrap().to_str().unwrap();
        assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && sent.ends_with("-01"));
        assert_ne!(sent, PARENT, "bext's span is the parent");

        let cx = Ctx::new(bext_plugin_abi::RequestId(2), "127.0.0.1:9".parse().unwrap());
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("00-zz-b7ad6b7169203331-01"));
        h.insert("tracestate", HeaderValue::from_static("v=1"));
        let own = Forwarding::take(&mut h, &cx);
        assert!(h.is_empty(), "{h:?}");
        assert!(!own.get(&TRACE[0]).unwrap().to_str().unwrap().contains("zz"));
    }

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
