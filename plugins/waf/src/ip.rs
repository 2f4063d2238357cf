//! IP allow and deny lists with longest-prefix semantics, and the client
//! address behind trusted proxies.
//!
//! Prefixes are kept in one hash map per prefix length, so a lookup is a
//! handful of hash probes (one per length in use) whatever the list size;
//! the most specific matching prefix decides, so `deny 10.0.0.0/8` with
//! `allow 10.1.2.0/24` lets 10.1.2.3 in. `ipnet` parses the CIDRs.

use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// What a list says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On the allow list.
    Allow,
    /// On the deny list.
    Deny,
}

/// A set of prefixes, each with a verdict.
#[derive(Debug, Default, Clone)]
pub struct IpTable {
    /// (prefix length, masked network → verdict), longest first.
    v4: Vec<(u8, HashMap<u32, Verdict>)>,
    v6: Vec<(u8, HashMap<u128, Verdict>)>,
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a plain address (a /32 or /128).
/// An IPv4-mapped entry (`::ffff:1.2.3.4`, `::ffff:10.0.0.0/104`) is the
/// IPv4 network it spells, as lookups read mapped clients as IPv4.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
    Ok(match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).expect("96 + at most 32 bits")),
            None => net,
        },
        _ => net,
    })
}

impl IpTable {
    /// Adds a prefix; a later entry for the same prefix wins.
    pub fn insert(&mut self, net: IpNet, verdict: Verdict) {
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = u32::from(n.network());
                slot(&mut self.v4, len).insert(key, verdict);
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let key = u128::from(n.network());
                slot(&mut self.v6, len).insert(key, verdict);
            }
        }
    }

    /// The verdict of the longest prefix holding `ip`. IPv4-mapped IPv6
    /// addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<Verdict> {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&(bits & mask32(*len))).copied())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&(bits & mask128(*len))).copied())
            }
        }
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Adds every address or CIDR of a configured list with `verdict`;
    /// an error says which entry (its index) and why.
    pub fn insert_all(&mut self, list: &[String], verdict: Verdict) -> Result<(), (usize, String)> {
        for (i, net) in list.iter().enumerate() {
            self.insert(parse_net(net).map_err(|e| (i, e))?, verdict);
        }
        Ok(())
    }
}

fn slot<K>(levels: &mut Vec<(u8, HashMap<K, Verdict>)>, len: u8) -> &mut HashMap<K, Verdict> {
    let at = match levels.iter().position(|(l, _)| *l <= len) {
        Some(i) if levels[i].0 == len => i,
        Some(i) => {
            levels.insert(i, (len, HashMap::new()));
            i
        }
        None => {
            levels.push((len, HashMap::new()));
            levels.len() - 1
        }
    };
    &mut levels[at].1
}

fn mask32(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// `::ffff:1.2.3.4` as `1.2.3.4`, so one list covers dual-stack sockets.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which header a trusted proxy reports the client in. Only that one is
/// read: a client can send the other one too, and since the proxy does not
/// rewrite it, believing it would let the client name its own address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (what most proxies and
    /// load balancers write).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:443"` (RFC 7239).
    Forwarded,
}

/// The proxies whose word on the client's address is believed, and the
/// header they write it in.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    trusted: IpTable,
    header: ClientIpHeader,
}

impl Proxies {
    /// The `trusted_proxies` CIDRs and `client_ip_header`; an error says
    /// which entry (its index) and why.
    pub fn new(trusted: &[String], header: ClientIpHeader) -> Result<Self, (usize, String)> {
        let mut table = IpTable::default();
        table.insert_all(trusted, Verdict::Allow)?;
        Ok(Proxies { trusted: table, header })
    }

    /// Whether no proxy is trusted: then the client is always the peer.
    pub fn is_empty(&self) -> bool {
        self.trusted.is_empty()
    }

    /// The client's address, as [`client_ip`] finds it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted, self.header)
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the rightmost hop of the configured header that is not itself a
/// trusted proxy (entries to its left were written by the client and
/// prove nothing).
///
/// Walking from the right, a hop that cannot be read (garbage, an
/// obfuscated `for=_hidden`, `for=unknown`, an element without `for=`)
/// stops the walk: skipping it would let a client hide its real address
/// behind a garbage entry and be judged by a forged one further left.
/// The answer is then the last trusted hop seen (the proxy that spoke
/// to the unreadable client), or the peer when there is none; when every
/// hop is trusted, it is the leftmost one.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpTable, header: ClientIpHeader) -> IpAddr {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: IpAddr| trusted.lookup(ip) == Some(Verdict::Allow);
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let hops = match header {
        ClientIpHeader::XForwardedFor => hops(headers, "x-forwarded-for", parse_xff_element),
        ClientIpHeader::Forwarded => hops(headers, "forwarded", parse_forwarded_element),
    };
    let mut last_trusted = peer;
    for hop in hops.into_iter().rev() {
        match hop.map(canonical_ip) {
            Some(ip) if is_trusted(ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// Every hop of every `name` header line, in order; `None` for one that
/// cannot be read. Empty list elements are skipped (RFC 9110 5.6.1); a
/// line that is not visible ASCII is one unreadable hop.
fn hops(headers: &HeaderMap, name: &str, parse: fn(&str) -> Option<IpAddr>) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            out.push(None);
            continue;
        };
        for element in split_outside_quotes(value, b',') {
            if !element.trim().is_empty() {
                out.push(parse(element.trim()));
            }
        }
    }
    out
}

/// Splits on `sep`, except inside a quoted string (with `\` escapes), as
/// RFC 7239 values may quote commas and semicolons.
fn split_outside_quotes(text: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in text.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// One `X-Forwarded-For` entry: an address, with a port or brackets.
fn parse_xff_element(element: &str) -> Option<IpAddr> {
    parse_node(element)
}

/// One `Forwarded` element: its single `for=` parameter, unquoted. An
/// element with no `for=`, or with two, is unreadable.
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_outside_quotes(element, b';') {
        let (key, value) = pair.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(unquote(value.trim())?);
        }
    }
    parse_node(&found?)
}

/// A token, or a quoted string with its `\` escapes undone.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443`, `[2001:db8::1]` or
/// `2001:db8::1`. Obfuscated identifiers (`_hidden`), `unknown`, zones
/// and anything after a port are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let port_ok = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = ip.parse().ok()?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok)).then_some(IpAddr::V6(ip));
    }
    let (ip, port) = node.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    port_ok(port).then_some(IpAddr::V4(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, Verdict)]) -> IpTable {
        let mut t = IpTable::default();
        for (net, v) in entries {
            t.insert(parse_net(net).unwrap(), *v);
        }
        t
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[
            ("10.0.0.0/8", Verdict::Deny),
            ("10.1.2.0/24", Verdict::Allow),
            ("10.1.2.3", Verdict::Deny),
            ("2001:db8::/32", Verdict::Deny),
            ("2001:db8:1::/48", Verdict::Allow),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(Verdict::Deny));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(Verdict::Allow));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(Verdict::Deny));
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("::ffff:10.9.9.9")), Some(Verdict::Deny));
        assert_eq!(t.lookup(ip("2001:db8:1::5")), Some(Verdict::Allow));
        assert_eq!(t.lookup(ip("2001:db8:2::5")), Some(Verdict::Deny));
        assert_eq!(
            table(&[("0.0.0.0/0", Verdict::Deny)]).lookup(ip("8.8.8.8")),
            Some(Verdict::Deny)
        );
        assert_eq!(parse_net("::ffff:127.0.0.4").unwrap(), parse_net("127.0.0.4").unwrap());
        assert_eq!(
            parse_net("::ffff:8.8.8.0/120").unwrap(),
            parse_net("8.8.8.0/24").unwrap()
        );
        assert_eq!(
            parse_net("0:0:0:0:0:ffff:9.9.9.9/128").unwrap(),
            parse_net("9.9.9.9").unwrap()
        );
        assert_eq!(parse_net("::ffff:0:0/80").unwrap().to_string(), "::ffff:0.0.0.0/80");
        let mut t = IpTable::default();
        t.insert(parse_net("::ffff:8.8.8.0/120").unwrap(), Verdict::Deny);
        for client in ["8.8.8.8", "::ffff:8.8.8.8"] {
            assert_eq!(t.lookup(client.parse().unwrap()), Some(Verdict::Deny), "{client}");
        }
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }

    #[test]
    fn configured_lists_name_the_bad_entry() {
        let mut t = IpTable::default();
        t.insert_all(&["10.0.0.0/8".into(), "192.0.2.7".into()], Verdict::Deny)
            .unwrap();
        assert_eq!(t.lookup(ip("10.2.3.4")), Some(Verdict::Deny));
        assert_eq!(t.lookup(ip("192.0.2.7")), Some(Verdict::Deny));
        let err = t.insert_all(&["10.0.0.1".into(), "bad".into()], Verdict::Allow);
        assert_eq!(err, Err((1, "`bad` is not an IP address or CIDR".into())));
        assert_eq!(Proxies::new(&["x".into()], ClientIpHeader::Forwarded).unwrap_err().0, 0);
    }

    #[test]
    fn proxies_find_the_client() {
        let proxies = Proxies::new(&["10.0.0.0/8".into()], ClientIpHeader::XForwardedFor).unwrap();
        let h = lines(&[("x-forwarded-for", "203.0.113.7, 10.0.0.9")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        assert_eq!(proxies.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        assert_eq!(Proxies::default().client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Headers from `(name, value)` lines, each its own line.
    fn lines(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn proxies() -> IpTable {
        table(&[
            ("127.0.0.0/8", Verdict::Allow),
            ("10.0.0.0/8", Verdict::Allow),
            ("2001:db8:ffff::/48", Verdict::Allow),
        ])
    }

    const LO: &str = "127.0.0.1";

    fn xff(pairs: &[(&str, &str)]) -> IpAddr {
        client_ip(ip(LO), &lines(pairs), &proxies(), ClientIpHeader::XForwardedFor)
    }

    fn fwd(pairs: &[(&str, &str)]) -> IpAddr {
        client_ip(ip(LO), &lines(pairs), &proxies(), ClientIpHeader::Forwarded)
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let h = lines(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.5")]);
        let t = proxies();
        assert_eq!(client_ip(ip(LO), &h, &t, ClientIpHeader::XForwardedFor), ip("1.2.3.4"));
        let outsider = ip("9.9.9.9");
        assert_eq!(
            client_ip(outsider, &h, &t, ClientIpHeader::XForwardedFor),
            outsider,
            "spoofed header ignored"
        );
        assert_eq!(
            client_ip(ip(LO), &h, &IpTable::default(), ClientIpHeader::XForwardedFor),
            ip(LO),
            "no trusted proxies: the peer"
        );
        assert_eq!(xff(&[]), ip(LO), "no header: the peer");
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &t, ClientIpHeader::XForwardedFor),
            ip("1.2.3.4"),
            "an IPv4-mapped peer is the IPv4 proxy"
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // The attack: behind a proxy that appends to X-Forwarded-For, the
        // client sends its own Forwarded, which the proxy passes on.
        let both = [("x-forwarded-for", "198.51.100.20"), ("forwarded", "for=203.0.113.7")];
        assert_eq!(xff(&both), ip("198.51.100.20"), "Forwarded is the client's word");
        assert_eq!(fwd(&both), ip("203.0.113.7"), "and the other way round");
        assert_eq!(xff(&[("forwarded", "for=203.0.113.7")]), ip(LO));
        assert_eq!(fwd(&[("x-forwarded-for", "203.0.113.7")]), ip(LO));
        assert_eq!(
            xff(&[("X-Forwarded-For", "198.51.100.20"), ("FORWARDED", "for=203.0.113.7")]),
            ip("198.51.100.20"),
            "header names in any case"
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_over_lines_and_lists() {
        // Several lines are one list, in order.
        assert_eq!(
            xff(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "198.51.100.20, 10.0.0.1")
            ]),
            ip("198.51.100.20")
        );
        assert_eq!(
            xff(&[
                ("x-forwarded-for", "203.0.113.7, 198.51.100.20"),
                ("x-forwarded-for", "10.0.0.1")
            ]),
            ip("198.51.100.20")
        );
        assert_eq!(
            xff(&[("x-forwarded-for", "203.0.113.7,,198.51.100.20,")]),
            ip("198.51.100.20")
        );
        assert_eq!(xff(&[("x-forwarded-for", " 198.51.100.20 ")]), ip("198.51.100.20"));
        assert_eq!(xff(&[("x-forwarded-for", "198.51.100.20:4711")]), ip("198.51.100.20"));
        assert_eq!(xff(&[("x-forwarded-for", "[2001:db8::7]:443")]), ip("2001:db8::7"));
        assert_eq!(xff(&[("x-forwarded-for", "2001:db8::7")]), ip("2001:db8::7"));
        assert_eq!(
            xff(&[("x-forwarded-for", "::ffff:198.51.100.20")]),
            ip("198.51.100.20"),
            "IPv4-mapped IPv6 is the IPv4 address"
        );
        assert_eq!(
            xff(&[("x-forwarded-for", "203.0.113.7, ::ffff:10.0.0.9")]),
            ip("203.0.113.7"),
            "a mapped trusted proxy is still trusted"
        );
        assert_eq!(
            xff(&[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]),
            ip("10.0.0.9"),
            "all hops trusted: the leftmost"
        );
        assert_eq!(
            xff(&[("x-forwarded-for", "203.0.113.7, 2001:db8:ffff::1")]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk() {
        // The client's garbage where the proxy's entry for it would be
        // must never let a forged address further left decide.
        for garbage in [
            "unknown",
            "_hidden",
            "nope",
            "1.2.3",
            "198.51.100.20:port",
            "198.51.100.20:80:80",
            "[2001:db8::7]x",
            "fe80::1%eth0",
            "\"198.51.100.20\"",
            "999.1.1.1",
        ] {
            let list = format!("203.0.113.7, {garbage}");
            assert_eq!(xff(&[("x-forwarded-for", &list)]), ip(LO), "{garbage}: the peer");
            let list = format!("203.0.113.7, {garbage}, 10.0.0.5");
            assert_eq!(
                xff(&[("x-forwarded-for", &list)]),
                ip("10.0.0.5"),
                "{garbage}: the last trusted hop"
            );
        }
        // A line that is not visible ASCII is one unreadable hop.
        let h = lines(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "h\u{e9}llo")]);
        assert_eq!(client_ip(ip(LO), &h, &proxies(), ClientIpHeader::XForwardedFor), ip(LO));
        // Garbage to the left of the real client changes nothing.
        assert_eq!(xff(&[("x-forwarded-for", "junk, 198.51.100.20")]), ip("198.51.100.20"));
    }

    #[test]
    fn forwarded_spellings() {
        assert_eq!(
            fwd(&[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2")]),
            ip("2001:db8::7")
        );
        assert_eq!(fwd(&[("forwarded", "For=198.51.100.20")]), ip("198.51.100.20"));
        assert_eq!(fwd(&[("forwarded", "for = 198.51.100.20")]), ip("198.51.100.20"));
        assert_eq!(fwd(&[("forwarded", "for=\"198.51.100.20:80\"")]), ip("198.51.100.20"));
        assert_eq!(fwd(&[("forwarded", "for=\"198.51.100.20\"")]), ip("198.51.100.20"));
        assert_eq!(
            fwd(&[("forwarded", "for=\"[::ffff:198.51.100.20]\"")]),
            ip("198.51.100.20")
        );
        assert_eq!(
            fwd(&[("forwarded", "proto=http;for=198.51.100.20;by=10.0.0.1;host=x")]),
            ip("198.51.100.20")
        );
        assert_eq!(
            fwd(&[
                ("forwarded", "for=203.0.113.7"),
                ("forwarded", "for=198.51.100.20, for=10.0.0.3")
            ]),
            ip("198.51.100.20"),
            "several lines"
        );
        // A quoted comma does not split the element: this is one hop
        // with an unreadable address, not two.
        assert_eq!(fwd(&[("forwarded", "for=\"203.0.113.7, 198.51.100.20\"")]), ip(LO));
        // Unreadable elements where the walk stops: the peer, or the
        // last trusted hop.
        for garbage in [
            "for=_hidden",
            "for=unknown",
            "for=\"_x\"",
            "proto=https",
            "for=198.51.100.20;for=203.0.113.7",
            "for=198.51.100.20\"x\"",
            "garbage",
            "for=[2001:db8::7]:x",
        ] {
            let list = format!("for=203.0.113.7, {garbage}");
            assert_eq!(fwd(&[("forwarded", &list)]), ip(LO), "{garbage}");
            let list = format!("for=203.0.113.7, {garbage}, for=10.0.0.5");
            assert_eq!(fwd(&[("forwarded", &list)]), ip("10.0.0.5"), "{garbage}");
        }
        // An unclosed quote swallows the rest of its line (here the
        // proxy's own entry): unreadable, so the peer.
        assert_eq!(
            fwd(&[("forwarded", "for=203.0.113.7, for=\"198.51.100.20, for=10.0.0.5")]),
            ip(LO)
        );
    }
}
