//! Which names a certificate can be ordered for, in the one spelling used
//! for storage, challenges and the SNI store. SNI comes from strangers, so
//! every other spelling of a name (case, trailing dot) maps to this one and
//! anything that is not a DNS name is refused before any I/O.

use crate::error::AcmeError;

/// The canonical form of a name to order: lower case, no trailing dot, at
/// least two labels, letters, digits and `-` only; `*.` first when
/// `wildcard` is allowed. IP addresses are refused (ACME can certify them,
/// but bext serves apps by host name).
pub fn acme_name(raw: &str, wildcard: bool) -> Result<String, AcmeError> {
    let bad = |reason: &'static str| AcmeError::BadName {
        name: raw.chars().take(300).collect(),
        reason,
    };
    let (star, rest) = match raw.strip_prefix("*.") {
        Some(rest) if wildcard => (true, rest),
        Some(_) => return Err(bad("wildcards are only ordered for configured apps")),
        None => (false, raw),
    };
    if rest.contains(':') {
        return Err(bad("a port or an IP address"));
    }
    let host = bext_plugin_abi::normalise_host(rest.as_bytes()).map_err(|_| bad("not a host name"))?;
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(bad("an IP address"));
    }
    if !host.contains('.') {
        return Err(bad("a single label"));
    }
    if host.contains('_') {
        return Err(bad("`_` is not allowed in a certificate's name"));
    }
    if host.split('.').any(|l| l.starts_with('-') || l.ends_with('-')) {
        return Err(bad("a label starts or ends with `-`"));
    }
    Ok(if star { format!("*.{host}") } else { host.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_spellings_are_one_name() {
        for raw in ["Shop.Customer.COM", "shop.customer.com.", "SHOP.CUSTOMER.COM."] {
            assert_eq!(acme_name(raw, false).unwrap(), "shop.customer.com");
        }
        assert_eq!(acme_name("*.Saas.Example.com.", true).unwrap(), "*.saas.example.com");
        assert_eq!(
            acme_name("xn--bcher-kva.example", false).unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn what_is_not_a_dns_name_is_refused() {
        for raw in [
            "",
            ".",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "a.com:443",
            "a..com",
            ".a.com",
            "a_b.com",
            "-a.com",
            "a-.com",
            "a com",
            "a.com/x",
            "a.com%00",
            "bücher.example",
            "*.a.com",
            "a.*.com",
            "**.a.com",
        ] {
            assert!(acme_name(raw, false).is_err(), "{raw:?} was allowed");
        }
        assert!(acme_name("*.*.a.com", true).is_err());
        assert!(acme_name(&format!("{}.com", "a".repeat(64)), false).is_err());
    }
}
