//! Choosing a certificate by SNI, with the rules vhosts uses for hosts.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by the host patterns they serve. Exact names beat
/// wildcards; among wildcards the longest suffix wins (`*.eu.shop.test`
/// over `*.shop.test`); a wildcard needs a non-empty label before its
/// suffix. Names are compared normalised (lower case, no trailing dot),
/// as `bext_plugin_abi::normalise_host` makes them.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: FxHashMap<Box<str>, Arc<CertifiedKey>>,
    wildcard: FxHashMap<Box<str>, Arc<CertifiedKey>>,
}

impl CertStore {
    /// Serves `key` for `pattern` (`shop.test`, `*.shop.test`), normalised
    /// with `bext_plugin_abi::normalise_host_pattern`. A pattern already
    /// present keeps its first certificate and `false` is returned.
    pub fn insert(&mut self, pattern: &str, key: Arc<CertifiedKey>) -> Result<bool, String> {
        let pattern = bext_plugin_abi::normalise_host_pattern(pattern)?;
        let (map, name) = match pattern.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, pattern.as_str()),
        };
        if map.contains_key(name) {
            return Ok(false);
        }
        map.insert(name.into(), key);
        Ok(true)
    }

    /// The certificate for a ClientHello's server name; `None` (so the
    /// handshake fails) without SNI or for a name nobody serves.
    pub fn resolve(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let host = bext_plugin_abi::normalise_host(server_name?.as_bytes()).ok()?;
        if let Some(key) = self.exact.get(&*host) {
            return Some(key.clone());
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // Longest suffix first: after the first label, then the second...
        host.match_indices('.')
            .find_map(|(i, _)| {
                if i == 0 {
                    None
                } else {
                    self.wildcard.get(&host[i + 1..])
                }
            })
            .cloned()
    }

    /// Every pattern served (`shop.test`, `*.shop.test`) with its
    /// certificate, in no order: what `/__bext/metrics` reports expiry for.
    pub fn served(&self) -> impl Iterator<Item = (String, &Arc<CertifiedKey>)> {
        let exact = self.exact.iter().map(|(name, key)| (name.to_string(), key));
        let wildcard = self.wildcard.iter().map(|(suffix, key)| (format!("*.{suffix}"), key));
        exact.chain(wildcard)
    }

    /// How many patterns are served.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether no pattern is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        CertStore::resolve(self, hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        crate::self_signed(&[name.into()]).unwrap().key
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_wildcard_wins() {
        let (exact, shop, eu) = (key("a.shop.test"), key("*.shop.test"), key("*.eu.shop.test"));
        let mut s = CertStore::default();
        assert_eq!(s.insert("A.Shop.Test.", exact.clone()), Ok(true));
        assert_eq!(s.insert("*.shop.test", shop.clone()), Ok(true));
        assert_eq!(s.insert("*.eu.shop.test", eu.clone()), Ok(true));
        assert_eq!(s.insert("*.SHOP.test", key("x")), Ok(false), "first one stays");
        let pick = |n: &str| s.resolve(Some(n));
        assert!(Arc::ptr_eq(&pick("a.shop.test").unwrap(), &exact));
        assert!(Arc::ptr_eq(&pick("A.SHOP.TEST.").unwrap(), &exact));
        assert!(Arc::ptr_eq(&pick("b.shop.test").unwrap(), &shop));
        assert!(Arc::ptr_eq(&pick("x.y.shop.test").unwrap(), &shop));
        assert!(Arc::ptr_eq(&pick("b.eu.shop.test").unwrap(), &eu));
        assert!(Arc::ptr_eq(&pick("b.eu.shop.test.").unwrap(), &eu));
    }

    #[test]
    fn nobody_s_name_and_no_name_get_nothing() {
        let mut s = CertStore::default();
        s.insert("*.shop.test", key("*.shop.test")).unwrap();
        s.insert("exact.test", key("exact.test")).unwrap();
        for name in [
            "shop.test",
            ".shop.test",
            "other.test",
            "shop.test.evil",
            "xshop.test",
            "exact.test.shop",
            "",
            "a..shop.test",
        ] {
            assert!(s.resolve(Some(name)).is_none(), "{name:?}");
        }
        assert!(s.resolve(None).is_none());
    }
}
