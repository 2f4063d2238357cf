//! Where an app's `fetch()` may go: its `allow` list (hosts, each with
//! its port or only the scheme's default port), and the addresses
//! (loopback, private, link-local ...) no fetch reaches unless its host
//! was allowed by name. The list is checked on the URL of every hop; the
//! address rule again on the addresses DNS gave, which are the only ones
//! connected to (see `client::GuardedResolver`); bext's own listeners are
//! refused on the connection itself (see `client::NotOurselves`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What one `allow` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `*`: any name, but only to public addresses.
    Any,
    /// `api.example.com`: this name (punycode, lower case, no final dot).
    Name(String),
    /// `*.internal`: names ending in `.internal` (kept with its dot).
    Suffix(String),
    /// `127.0.0.1`, `[::1]`: this address, written as an address in the URL.
    Address(IpAddr),
}

/// One compiled `allow` entry: a target and its port; without a port only
/// the URL scheme's default port (80 for http, 443 for https) is allowed,
/// so `localhost` never opens every loopback port.
#[derive(Debug, Clone)]
struct Rule {
    target: Target,
    port: Option<u16>,
}

impl Rule {
    fn allows_port(&self, url: &url::Url) -> bool {
        match self.port {
            // `url` leaves out a port that is its scheme's default.
            None => url.port().is_none(),
            Some(p) => url.port_or_known_default() == Some(p),
        }
    }

    fn names(&self, name: &str) -> bool {
        match &self.target {
            Target::Name(n) => n == name,
            Target::Suffix(s) => name.ends_with(s.as_str()),
            Target::Any | Target::Address(_) => false,
        }
    }
}

/// An app's compiled `isolate.fetch.allow`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// Compiles `allow`; an entry that is no host name, `*.name`, `*` or
    /// address, each with an optional `:port`, is an error naming it.
    pub(crate) fn new(allow: &[String]) -> Result<Policy, String> {
        let rules = allow.iter().map(|e| rule(e)).collect::<Result<_, _>>()?;
        Ok(Policy { rules })
    }

    /// Whether anything may be fetched at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `name` is allowed by name (exactly or by `*.suffix`, on any
    /// port): then it may resolve to a private address. [`Policy::check`]
    /// holds such a name to its own entries' ports.
    pub(crate) fn named(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.rules.iter().any(|r| r.names(&name))
    }

    /// Checks the host and port of a URL before anything is connected to.
    pub(crate) fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let name = d.trim_end_matches('.').to_ascii_lowercase();
                let own: Vec<&Rule> = self.rules.iter().filter(|r| r.names(&name)).collect();
                // A name listed by name keeps to its own entries' ports:
                // `*` must not open `localhost:80` beside `localhost:8081`.
                let candidates = if own.is_empty() {
                    self.rules.iter().filter(|r| r.target == Target::Any).collect()
                } else {
                    own
                };
                if candidates.is_empty() {
                    Err(format!("{d} is not in isolate.fetch.allow"))
                } else if candidates.iter().any(|r| r.allows_port(url)) {
                    Ok(())
                } else {
                    Err(port_refused(d, url))
                }
            }
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip), url),
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip), url),
            None => Err("the URL has no host".into()),
        }
    }

    fn check_address(&self, ip: IpAddr, url: &url::Url) -> Result<(), String> {
        let ip = canonical(ip);
        let own: Vec<&Rule> = self.rules.iter().filter(|r| r.target == Target::Address(ip)).collect();
        let candidates = if !own.is_empty() {
            own
        } else if is_public(ip) {
            self.rules.iter().filter(|r| r.target == Target::Any).collect()
        } else {
            return Err(format!("{ip} is a private address not in isolate.fetch.allow"));
        };
        if candidates.is_empty() {
            Err(format!("{ip} is not in isolate.fetch.allow"))
        } else if candidates.iter().any(|r| r.allows_port(url)) {
            Ok(())
        } else {
            Err(port_refused(&ip.to_string(), url))
        }
    }
}

fn port_refused(host: &str, url: &url::Url) -> String {
    let port = url.port_or_known_default().unwrap_or(0);
    format!(
        "{host}: port {port} is not in isolate.fetch.allow (an entry without a :port allows only 80 for http and 443 for https)"
    )
}

/// Parses one `allow` entry: `*`, `name`, `*.name`, an address
/// (`127.0.0.1`, `::1`, `[::1]`), each but a bare IPv6 address with an
/// optional `:port`.
fn rule(entry: &str) -> Result<Rule, String> {
    let bad = |why: &str| format!("isolate.fetch.allow: {entry:?}: {why}");
    let e = entry.trim();
    // A bare IPv6 address has colons but no port.
    if let Ok(ip) = e.parse::<Ipv6Addr>() {
        return Ok(Rule {
            target: Target::Address(canonical(IpAddr::V6(ip))),
            port: None,
        });
    }
    let (host, port) = if let Some(rest) = e.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("expected :port after ]"))?),
        };
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
        return Ok(Rule {
            target: Target::Address(canonical(IpAddr::V6(ip))),
            port: port.map(|p| parse_port(p).map_err(|w| bad(&w))).transpose()?,
        });
    } else {
        match e.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (e, None),
        }
    };
    let port = port.map(|p| parse_port(p).map_err(|w| bad(&w))).transpose()?;
    if host == "*" {
        return Ok(Rule {
            target: Target::Any,
            port,
        });
    }
    let (wild, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let target = match url::Host::parse(name).map_err(|e| bad(&e.to_string()))? {
        url::Host::Domain(d) if !d.is_empty() && !d.contains(['*', ':']) => {
            let d = d.trim_end_matches('.').to_owned();
            if wild {
                Target::Suffix(format!(".{d}"))
            } else {
                Target::Name(d)
            }
        }
        url::Host::Ipv4(ip) if !wild => Target::Address(IpAddr::V4(ip)),
        _ => {
            return Err(bad(
                "not a host name, *.name, * or address (each with an optional :port)",
            ));
        }
    };
    Ok(Rule { target, port })
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
        Ok(n) => Ok(n),
    }
}

/// Whether a connection to `peer` (made from `local`) reaches one of
/// bext's own listeners, `own`: never allowed, whatever `allow` says (the
/// admin listener answers health details without a token). `peer` is on
/// this host when it is a loopback or unspecified address or the
/// connection's own local address (how the kernel routes to itself); a
/// listener on `0.0.0.0`/`::` is then reached on its port.
pub(crate) fn is_own_listener(peer: SocketAddr, local: Option<IpAddr>, own: &[SocketAddr]) -> bool {
    let ip = canonical(peer.ip());
    let this_host = ip.is_loopback() || ip.is_unspecified() || local.map(canonical) == Some(ip);
    own.iter().any(|o| {
        let at = canonical(o.ip());
        o.port() == peer.port() && (at == ip || (this_host && (at.is_unspecified() || ip.is_unspecified())))
    })
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
            p.check(&url("http://127.1/")).is_ok(),
            "the allowed address, spelled otherwise"
        );
        assert!(p.check(&url("http://[::ffff:127.0.0.1]/")).is_ok());
        assert!(p.check(&url("http://[::1]/")).is_ok());
        assert!(p.check(&url("http://127.0.0.2/")).is_err());
        assert!(p.check(&url("http://other.example.com/")).is_err());
        assert!(p.named("db.internal.") && p.named("api.example.com") && !p.named("localhost"));
    }

    /// An entry without a port allows only the scheme's default port, for
    /// every kind of target; with one, only that port, however the URL
    /// spells it.
    #[test]
    fn entries_allow_their_port_or_only_the_default_one() {
        let p = Policy::new(&[
            "localhost".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
            "*.internal".into(),
            "api.example.com".into(),
            "*".into(),
        ])
        .unwrap();
        for ok in [
            "http://localhost/",
            "http://localhost:80/",
            "https://localhost/",
            "https://localhost:443/",
            "http://127.0.0.1/",
            "https://[::1]/",
            "http://db.internal/",
            "https://api.example.com/",
            "https://93.184.215.14/",
            "http://public.example.org/",
        ] {
            assert!(p.check(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://localhost:8081/",
            "http://LOCALHOST.:8081/",
            "http://localhost:443/",
            "https://localhost:80/",
            "http://127.0.0.1:8081/",
            "http://127.1:8081/",
            "http://2130706433:22/",
            "http://[::ffff:127.0.0.1]:6379/",
            "http://[::1]:8081/",
            "http://db.internal:5432/",
            "https://api.example.com:8443/",
            "http://93.184.215.14:25/",
            "http://public.example.org:8080/",
        ] {
            let e = p.check(&url(refused)).unwrap_err();
            assert!(e.contains("is not in isolate.fetch.allow"), "{refused}: {e}");
        }

        let p = Policy::new(&[
            "localhost:8081".into(),
            "127.0.0.1:9000".into(),
            "[::1]:8081".into(),
            "*.internal:443".into(),
            "*:8443".into(),
        ])
        .unwrap();
        for ok in [
            "http://localhost:8081/",
            "https://localhost:8081/",
            "http://127.0.0.1:9000/",
            "http://0x7f.1:9000/",
            "http://[::ffff:7f00:1]:9000/",
            "http://[::1]:8081/",
            "https://db.internal/",
            "http://db.internal:443/",
            "https://93.184.215.14:8443/",
        ] {
            assert!(p.check(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://localhost/",
            "http://localhost:8082/",
            "http://127.0.0.1/",
            "http://127.0.0.1:8081/",
            "http://[::1]/",
            "http://db.internal/",
            "https://93.184.215.14/",
            // `*` does not widen a name listed by name to other ports.
            "https://localhost:8443/",
        ] {
            assert!(p.check(&url(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn bext_s_own_listeners_are_recognised_in_every_form() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let own = [
            sa("127.0.0.1:8080"),
            sa("0.0.0.0:8443"),
            sa("10.0.0.5:9000"),
            sa("[::]:7000"),
        ];
        for (peer, local) in [
            ("127.0.0.1:8080", ip("127.0.0.1")),
            ("[::ffff:127.0.0.1]:8080", ip("127.0.0.1")),
            ("127.0.0.1:8443", ip("127.0.0.1")),
            ("127.0.0.9:8443", ip("127.0.0.1")),
            ("[::1]:8443", ip("::1")),
            ("192.168.1.4:8443", ip("192.168.1.4")),
            ("10.0.0.5:9000", ip("10.0.0.5")),
            ("10.0.0.5:9000", None),
            ("127.0.0.1:7000", ip("127.0.0.1")),
            ("0.0.0.0:8080", None),
        ] {
            assert!(is_own_listener(sa(peer), local, &own), "{peer} from {local:?}");
        }
        for (peer, local) in [
            ("127.0.0.1:8081", ip("127.0.0.1")),
            ("127.0.0.2:8080", ip("127.0.0.1")),
            ("192.168.1.9:8443", ip("192.168.1.4")),
            ("93.184.215.14:8443", ip("192.168.1.4")),
            ("10.0.0.6:9000", ip("10.0.0.5")),
        ] {
            assert!(!is_own_listener(sa(peer), local, &own), "{peer} from {local:?}");
        }
    }

    #[test]
    fn bad_entries_and_empty_lists() {
        assert!(Policy::new(&["*.127.0.0.1".into()]).is_err());
        for bad in [
            "a b",
            "localhost:",
            "localhost:0",
            "localhost:65536",
            "localhost:http",
            "http://localhost",
            "[::1",
            "[::1]8081",
            "[localhost]:80",
            "a.*.com",
            "*.[::1]",
        ] {
            let e = Policy::new(&[bad.into()]).unwrap_err();
            assert!(e.contains("isolate.fetch.allow") && e.contains(bad), "{bad}: {e}");
        }
        assert!(Policy::new(&["::1".into(), "*:443".into(), "*.internal:8443".into()]).is_ok());
        assert!(Policy::new(&[]).unwrap().is_empty());
        let idn = Policy::new(&["bücher.example".into()]).unwrap();
        assert!(idn.check(&url("http://xn--bcher-kva.example/")).is_ok());
    }
}
