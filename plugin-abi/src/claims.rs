//! Who already reaches a host name: the one answer the deploy registry's
//! API, `bext domains add` (on a server or in-process), the platform
//! file's check and each reload's merge of tenants' own domains give when
//! a tenant's own domain is asked for (in the contract, so that the
//! kernel and the plugins share it without depending on one another). A name an app's `domains`, another
//! `tenant_domains` entry, the vhosts `hosts` map, `admin_hosts`, a live
//! preview or a default app's certificate already reaches is not a
//! tenant's to take: it would be routed to the tenant's app under another
//! app's name (or certificate, or admin token).

use serde::{Deserialize, Serialize};

/// A host pattern someone already holds, and who (said in an error).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// An exact host or `*.suffix` (any spelling: compared normalised);
    /// `~regex` patterns are not judged here (vhosts refuses to route a
    /// tenant's domain that a regex route matches).
    pub pattern: String,
    /// Who holds it: `app shop's domain *.shop.test`.
    pub by: String,
}

impl Claim {
    /// A claim of `pattern` by `by`.
    pub fn new(pattern: impl Into<String>, by: impl Into<String>) -> Claim {
        Claim {
            pattern: pattern.into(),
            by: by.into(),
        }
    }
}

/// The first of `claims` that reaches `host` (normalised: lower case, no
/// trailing dot): the same exact host, or a wildcard above it with one or
/// more labels in front (as the matcher routes `a.b.x.test` by `*.x.test`).
pub fn claimed_by<'a>(host: &str, claims: &'a [Claim]) -> Option<&'a Claim> {
    claims.iter().find(|c| crate::pattern_reaches(&c.pattern, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_every_name_under_a_wildcard_are_claimed() {
        let claims = [
            Claim::new("Www.Customer.com.", "site"),
            Claim::new("*.saas.example.com", "saas"),
            Claim::new("*.Mapped.TEST.", "hosts map"),
            Claim::new("~^(?P<tenant>.+)\\.re\\.test$", "re"),
            Claim::new("not a host", "broken"),
        ];
        let owner = |d: &str| claimed_by(d, &claims).map(|c| c.by.as_str());
        assert_eq!(owner("www.customer.com"), Some("site"));
        assert_eq!(owner("acme.saas.example.com"), Some("saas"));
        assert_eq!(owner("a.b.saas.example.com"), Some("saas"));
        assert_eq!(owner("x.mapped.test"), Some("hosts map"));
        assert_eq!(owner("saas.example.com"), None, "a wildcard needs a tenant");
        assert_eq!(owner(".saas.example.com"), None);
        assert_eq!(owner("xsaas.example.com"), None);
        assert_eq!(owner("shop.customer.com"), None);
        assert_eq!(owner("x.re.test"), None, "regexes are not judged");
    }
}
