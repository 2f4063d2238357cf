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
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an IP address or CIDR"))
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
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the last address in `Forwarded` / `X-Forwarded-For` that is not itself
/// a trusted proxy (the rightmost untrusted hop; entries to its left were
/// written by the client and prove nothing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpTable) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.lookup(ip) == Some(Verdict::Allow);
    if trusted.is_empty() || !is_trusted(peer) {
        return canonical_ip(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    let forwarded = headers.get_all(http::header::FORWARDED);
    if forwarded.iter().next().is_some() {
        for value in forwarded {
            let Ok(value) = value.to_str() else { continue };
            for element in value.split(',') {
                let Some(for_) = element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .map(|(_, v)| v.trim().trim_matches('"'))
                else {
                    continue;
                };
                if let Some(ip) = parse_forwarded_node(for_) {
                    hops.push(ip);
                }
            }
        }
    } else {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { continue };
            hops.extend(value.split(',').filter_map(|h| parse_forwarded_node(h.trim())));
        }
    }
    hops.into_iter()
        .rev()
        .map(canonical_ip)
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(canonical_ip(peer))
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1`.
fn parse_forwarded_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
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
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = table(&[("127.0.0.0/8", Verdict::Allow), ("10.0.0.0/8", Verdict::Allow)]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.5".parse().unwrap());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(lo, &h, &trusted), "1.2.3.4".parse::<IpAddr>().unwrap());
        let outsider: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(outsider, &h, &trusted), outsider, "spoofed header ignored");

        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2".parse().unwrap(),
        );
        assert_eq!(client_ip(lo, &h, &trusted), "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(lo, &HeaderMap::new(), &trusted), lo);
    }
}
