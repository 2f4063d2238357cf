//! Where an app's `fetch()` may go: its `allow` list, and the addresses
//! (loopback, private, link-local ...) no fetch reaches unless its host
//! was allowed by name. The list is checked on the URL of every hop; the
//! address rule again on the addresses DNS gave, which are the only ones
//! connected to (see `client::GuardedResolver`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An app's compiled `isolate.fetch.allow`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Policy {
    /// `api.example.com`: this name (punycode, lower case, no final dot).
    names: Vec<String>,
    /// `*.internal`: names ending in `.internal`.
    suffixes: Vec<String>,
    /// `*`: any name, but only to public addresses.
    any: bool,
    /// `127.0.0.1`, `::1`: this address, written as an address in the URL.
    addresses: Vec<IpAddr>,
}

impl Policy {
    /// Compiles `allow`; an entry that is no host name, `*.name`, `*` or
    /// address is an error naming it.
    pub(crate) fn new(allow: &[String]) -> Result<Policy, String> {
        let mut p = Policy::default();
        for entry in allow {
            let e = entry.trim();
            if e == "*" {
                p.any = true;
                continue;
            }
            let (wild, name) = match e.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, e),
            };
            let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
            let parsed = if let Ok(ip) = bare.parse::<Ipv6Addr>() {
                url::Host::Ipv6(ip)
            } else {
                url::Host::parse(name).map_err(|e| format!("isolate.fetch.allow: {entry:?}: {e}"))?
            };
            match parsed {
                url::Host::Domain(d) if !d.is_empty() => {
                    let d = d.trim_end_matches('.').to_owned();
                    if wild {
                        p.suffixes.push(format!(".{d}"));
                    } else {
                        p.names.push(d);
                    }
                }
                url::Host::Ipv4(ip) if !wild => p.addresses.push(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) if !wild => p.addresses.push(canonical(IpAddr::V6(ip))),
                _ => {
                    return Err(format!(
                        "isolate.fetch.allow: {entry:?} is not a host name, *.name, * or address"
                    ));
                }
            }
        }
        Ok(p)
    }

    /// Whether anything may be fetched at all.
    pub(crate) fn is_empty(&self) -> bool {
        !self.any && self.names.is_empty() && self.suffixes.is_empty() && self.addresses.is_empty()
    }

    /// Whether `name` is allowed by name (exactly or by `*.suffix`): then
    /// it may resolve to a private address.
    pub(crate) fn named(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name) || self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }

    /// Checks the host of a URL before anything is connected to.
    pub(crate) fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Domain(d)) => {
                if self.named(d) || self.any {
                    Ok(())
                } else {
                    Err(format!("{d} is not in isolate.fetch.allow"))
                }
            }
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip)),
            None => Err("the URL has no host".into()),
        }
    }

    fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.addresses.contains(&ip) || (self.any && is_public(ip)) {
            Ok(())
        } else if !is_public(ip) {
            Err(format!("{ip} is a private address not in isolate.fetch.allow"))
        } else {
            Err(format!("{ip} is not in isolate.fetch.allow"))
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is globally reachable, so that `*` may fetch it:
/// not in any block IANA's special-purpose address registries mark as not
/// globally reachable (loopback, private, shared, link-local, benchmarking,
/// documentation, reserved, discard, ORCHID, Teredo ...), nor multicast or
/// broadcast. The few globally reachable anycast exceptions inside such
/// blocks (192.0.0.9, 2001:1::1 ...) are refused too: nothing an app needs.
/// 6to4 and NAT64 addresses are judged by the IPv4 address they embed.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 blocks not globally reachable (RFC 6890 and IANA's registry),
/// multicast and the limited broadcast address included.
const NOT_GLOBAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and 255.255.255.255
];

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let ip = u32::from(v4);
    !NOT_GLOBAL_V4
        .iter()
        .any(|&(net, len)| ip >> (32 - len) == u32::from(net) >> (32 - len))
}

/// IPv6 blocks not globally reachable (IANA's registry), multicast
/// included. `::/96` (IPv4-compatible, deprecated) and `::ffff:0:0/96`
/// (mapped; an address in it is checked as its IPv4 address before this)
/// are refused whole, as is `::ffff:0:0:0/96` (`::ffff:0:a.b.c.d`, SIIT
/// translated).
const NOT_GLOBAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // ::/96: unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96), // IPv4-mapped
    (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96), // ::ffff:0:0:0/96, SIIT translated
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64), // dummy IPv6 prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments: Teredo, benchmarking, ORCHID ...
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits;
    // 6to4 (2002::/16) the one in bits 16..48.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(v4(s[1], s[2]));
    }
    let ip = u128::from(v6);
    !NOT_GLOBAL_V6
        .iter()
        .any(|&(net, len)| ip >> (128 - len) == u128::from(net) >> (128 - len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        let p = Policy::new(&["api.example.com".into(), "*".into()]).unwrap();
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://100.64.0.1/",
        ] {
            let e = p.check(&url(u)).unwrap_err();
            assert!(e.contains("private address"), "{u}: {e}");
        }
        assert!(p.check(&url("http://93.184.215.14/")).is_ok(), "a public address, by *");
    }

    /// One address inside each block IANA's special-purpose registries mark
    /// as not globally reachable (and multicast, broadcast), refused by `*`.
    #[test]
    fn every_special_purpose_block_is_private() {
        for ip in [
            "0.1.2.3",
            "192.0.0.1",
            "192.0.0.9",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
            "::",
            "::1",
            "::7f00:1",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "::ffff:0:7f00:1",
            "64:ff9b:1::8.8.8.8",
            "64:ff9b::10.0.0.1",
            "64:ff9b::c000:201",
            "100::1",
            "100:0:0:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            "2002:cb00:7101::",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(!is_public(addr), "{ip} counted as public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860::8888",
            "2001:db9::1",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(is_public(addr), "{ip} counted as private");
        }
        let p = Policy::new(&["*".into()]).unwrap();
        for u in [
            "http://198.51.100.7/",
            "http://[2002:7f00:1::1]/",
            "http://[::ffff:0:7f00:1]/",
        ] {
            assert!(p.check(&url(u)).unwrap_err().contains("private address"), "{u}");
        }
    }

    #[test]
    fn names_addresses_and_wildcards() {
        let p = Policy::new(&[
            "API.Example.com.".into(),
            "*.internal".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
        ])
        .unwrap();
        assert!(p.check(&url("https://api.example.com/x")).is_ok());
        assert!(p.check(&url("https://API.EXAMPLE.COM./x")).is_ok());
        assert!(p.check(&url("http://db.internal/")).is_ok());
        assert!(p.check(&url("http://internal/")).is_err(), "*.x is not x");
        assert!(p.check(&url("http://evilinternal/")).is_err());
        assert!(p.check(&url("http://api.example.com.evil.test/")).is_err());
        assert!(
            p.check(&url("http://127.1:8080/")).is_ok(),
            "the allowed address, spelled otherwise"
        );
        assert!(p.check(&url("http://[::ffff:127.0.0.1]/")).is_ok());
        assert!(p.check(&url("http://[::1]/")).is_ok());
        assert!(p.check(&url("http://127.0.0.2/")).is_err());
        assert!(p.check(&url("http://other.example.com/")).is_err());
        assert!(p.named("db.internal.") && p.named("api.example.com") && !p.named("localhost"));
    }

    #[test]
    fn bad_entries_and_empty_lists() {
        assert!(Policy::new(&["*.127.0.0.1".into()]).is_err());
        assert!(Policy::new(&["a b".into()]).is_err());
        assert!(Policy::new(&[]).unwrap().is_empty());
        let idn = Policy::new(&["bücher.example".into()]).unwrap();
        assert!(idn.check(&url("http://xn--bcher-kva.example/")).is_ok());
    }
}
