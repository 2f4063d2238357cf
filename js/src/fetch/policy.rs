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

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast or broadcast, nor an
/// IPv6 form of one of these.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) forms.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0; 6] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return !v6.is_unspecified() && !v6.is_loopback() && is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
                || (s[0] & 0xffc0) == 0xfec0) // fec0::/10, site-local
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)))
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
