//! Tenants' own domains (`shop.customer.com` → app `saas`, tenant
//! `customer`): what the registry keeps of them, and which names it
//! accepts. A name is stored in one spelling (lower case, no trailing
//! dot), so that the one vhosts compares with `cx.host` and the one the
//! ACME service orders for are that spelling; any other is refused with
//! its reason, never guessed at.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Registry, unix_now};
use crate::DeployError;

/// The longest host name DNS carries (without its trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;

/// One tenant's own domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DomainRecord {
    /// The host, normalised.
    pub domain: String,
    /// The app it reaches.
    pub app: String,
    /// The tenant the app is told of (`x-vhost-tenant`).
    pub tenant: String,
    /// Unix time it was added.
    pub added_at: u64,
    /// Who added it.
    pub added_by: String,
}

/// `raw` as the one spelling the registry keeps: lower case, without the
/// trailing dot. Refused, with the reason, when it is not one DNS host
/// name a certificate can be ordered for: a wildcard, a pattern, a port,
/// an IP address, a single label, non-ASCII (its punycode `xn--` form is
/// accepted: bext has no IDN mapping of its own to get it right), a label
/// out of `a-z 0-9 -` or longer than 63, a name longer than 253.
pub fn normalise_domain(raw: &str) -> Result<String, DeployError> {
    let bad = |why: &str| DeployError::Bundle(format!("domain {:?}: {why}", raw.chars().take(80).collect::<String>()));
    if !raw.is_ascii() {
        return Err(bad(
            "not ASCII: give an internationalised name in its punycode form (xn--...)",
        ));
    }
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.starts_with('~') {
        return Err(bad("a pattern: a tenant's domain is one exact host name"));
    }
    if name.contains('*') {
        return Err(bad("a wildcard: a tenant's domain is one exact host name"));
    }
    if name.starts_with('[') || name.contains(':') {
        return Err(bad("a port or an IP address: give the host name alone"));
    }
    if name.len() > MAX_DOMAIN_LEN {
        return Err(bad("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("a single label: give a full domain (shop.customer.com)"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label is 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("not a host name: use a-z 0-9 - and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with `-`"));
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("an IP address: give a host name"));
    }
    Ok(name.to_owned())
}

/// `raw` as a tenant name: what a wildcard host captures (`customer`, or
/// `eu.customer`), lower case. Dot-separated labels of `a-z 0-9 - _`, at
/// most 253 characters.
pub fn normalise_tenant(raw: &str) -> Result<String, DeployError> {
    let tenant = raw.to_ascii_lowercase();
    let ok = (1..=MAX_DOMAIN_LEN).contains(&tenant.len())
        && tenant.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(tenant)
    } else {
        Err(DeployError::Bundle(format!(
            "tenant {:?}: use what a wildcard host captures: labels of a-z 0-9 - _ joined by dots, 1 to 253 characters",
            raw.chars().take(80).collect::<String>()
        )))
    }
}

pub use bext_plugin_abi::claims::{Claim, claimed_by};

impl Registry {
    /// Every tenant's own domain, by name.
    pub fn domains(&self) -> Result<Vec<DomainRecord>, DeployError> {
        domains(&self.db).map_err(|e| self.db_err(e))
    }

    /// Records `domain` for `tenant` of `app` (both checked and
    /// normalised); `claims` are every host the platform already routes
    /// (see [`bext_plugin_abi::claims`]), none of which may reach it. Taken names are refused, never
    /// moved: remove one first.
    pub fn add_domain(
        &mut self,
        domain: &str,
        app: &str,
        tenant: &str,
        by: &str,
        claims: &[Claim],
    ) -> Result<DomainRecord, DeployError> {
        let domain = normalise_domain(domain)?;
        let tenant = normalise_tenant(tenant)?;
        super::check(&super::APP_ID, app)?;
        let _lock = self.lock()?;
        let known: bool = self
            .db
            .query_row("SELECT EXISTS (SELECT 1 FROM apps WHERE id = ?1)", [app], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        if !known {
            return Err(DeployError::NotFound(format!(
                "no app {app}: declare it in the platform file or deploy it first"
            )));
        }
        let taken: Option<(String, String)> = self
            .db
            .query_row("SELECT app, tenant FROM domains WHERE domain = ?1", [&domain], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        if let Some((app, tenant)) = taken {
            return Err(DeployError::Taken(format!(
                "{domain} is already the domain of tenant {tenant} of app {app}: remove it first"
            )));
        }
        if let Some(claim) = claimed_by(&domain, claims) {
            return Err(DeployError::Taken(format!(
                "{domain} already reaches {} ({})",
                claim.by, claim.pattern
            )));
        }
        let record = DomainRecord {
            domain,
            app: app.to_owned(),
            tenant,
            added_at: unix_now().try_into().unwrap_or(0),
            added_by: by.to_owned(),
        };
        self.db
            .execute(
                "INSERT INTO domains (domain, app, tenant, added_at, added_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.domain, record.app, record.tenant, unix_now(), record.added_by],
            )
            .map_err(|e| self.db_err(e))?;
        self.log(
            app,
            &format!("domain {} added for tenant {} by {by}", record.domain, record.tenant),
        )?;
        Ok(record)
    }

    /// Forgets `domain` (any spelling the registry accepts); what it was.
    pub fn remove_domain(&mut self, domain: &str, by: &str) -> Result<DomainRecord, DeployError> {
        let domain = normalise_domain(domain)?;
        let _lock = self.lock()?;
        let record = domains(&self.db)
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .find(|d| d.domain == domain)
            .ok_or_else(|| DeployError::NotFound(format!("no tenant domain {domain}")))?;
        self.db
            .execute("DELETE FROM domains WHERE domain = ?1", [&domain])
            .map_err(|e| self.db_err(e))?;
        self.log(&record.app, &format!("domain {domain} removed by {by}"))?;
        Ok(record)
    }
}

/// Every domain in `db`, by name.
pub(super) fn domains(db: &rusqlite::Connection) -> rusqlite::Result<Vec<DomainRecord>> {
    let mut q = db.prepare("SELECT domain, app, tenant, added_at, added_by FROM domains ORDER BY domain")?;
    q.query_map([], |r| {
        Ok(DomainRecord {
            domain: r.get(0)?,
            app: r.get(1)?,
            tenant: r.get(2)?,
            added_at: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
            added_by: r.get(4)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_spellings_of_a_domain_are_one_name() {
        for raw in ["shop.customer.com", "Shop.Customer.COM.", "SHOP.CUSTOMER.COM"] {
            assert_eq!(normalise_domain(raw).unwrap(), "shop.customer.com", "{raw}");
        }
        assert_eq!(
            normalise_domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(normalise_domain(&longest).unwrap().len(), 253);
        assert_eq!(normalise_domain(&format!("{longest}.")).unwrap().len(), 253);
    }

    #[test]
    fn what_is_not_one_host_name_is_refused_with_its_reason() {
        let too_long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62)
        );
        for (raw, why) in [
            ("", "empty"),
            (".", "empty"),
            ("shop.customer.com:443", "port"),
            ("*.x.com", "wildcard"),
            ("a.*.com", "wildcard"),
            ("~^x$", "pattern"),
            ("1.2.3.4", "IP address"),
            ("1.2.3.4.", "IP address"),
            ("[::1]", "IP address"),
            ("::1", "IP address"),
            ("localhost", "single label"),
            ("bücher.example", "punycode"),
            ("shop.customer.com\u{0}", "not a host name"),
            ("shop .customer.com", "not a host name"),
            ("shop.customer.com/x", "not a host name"),
            ("shop_1.customer.com", "not a host name"),
            ("shop..customer.com", "1 to 63"),
            (".shop.customer.com", "1 to 63"),
            ("shop.customer.com..", "1 to 63"),
            ("-shop.customer.com", "starts or ends"),
            ("shop-.customer.com", "starts or ends"),
            (too_long.as_str(), "longer than 253"),
        ] {
            let err = normalise_domain(raw).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{raw:?}");
            assert!(err.to_string().contains(why), "{raw:?}: {err}");
        }
        let label = format!("{}.com", "a".repeat(64));
        assert!(normalise_domain(&label).unwrap_err().to_string().contains("1 to 63"));
    }

    #[test]
    fn tenants_are_what_a_wildcard_captures() {
        assert_eq!(normalise_tenant("customer").unwrap(), "customer");
        assert_eq!(normalise_tenant("Customer").unwrap(), "customer");
        assert_eq!(normalise_tenant("eu.acme_1-x").unwrap(), "eu.acme_1-x");
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a/b",
            "a:b",
            "ü",
            "a\nb",
            &"a".repeat(254),
        ] {
            let err = normalise_tenant(bad).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    fn claims() -> Vec<Claim> {
        vec![
            Claim::new("www.customer.com", "app site's domain"),
            Claim::new("*.mapped.test", "the vhosts hosts map (app other)"),
            Claim::new("admin.lab.test", "admin_hosts"),
        ]
    }

    #[test]
    fn domains_are_added_once_listed_removed_and_kept_across_opens() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        r.sync_platform_apps(["saas", "site"]).unwrap();
        let added = r
            .add_domain("Shop.Customer.COM.", "saas", "Customer", "alice", &claims())
            .unwrap();
        assert_eq!(
            (
                added.domain.as_str(),
                added.app.as_str(),
                added.tenant.as_str(),
                added.added_by.as_str()
            ),
            ("shop.customer.com", "saas", "customer", "alice")
        );
        for (domain, app, tenant, status, why) in [
            (
                "shop.customer.com",
                "saas",
                "other",
                409,
                "already the domain of tenant customer of app saas",
            ),
            ("SHOP.customer.com.", "site", "x", 409, "already the domain"),
            (
                "www.customer.com",
                "saas",
                "x",
                409,
                "already reaches app site's domain",
            ),
            (
                "X.Mapped.Test.",
                "saas",
                "evil",
                409,
                "already reaches the vhosts hosts map",
            ),
            ("admin.lab.test", "saas", "x", 409, "already reaches admin_hosts"),
            ("new.customer.com", "nope", "x", 404, "no app nope"),
            ("new.customer.com", "../x", "x", 400, "app id"),
            ("new.customer.com", "saas", "", 400, "tenant"),
            ("*.customer.com", "saas", "x", 400, "wildcard"),
        ] {
            let err = r.add_domain(domain, app, tenant, "alice", &claims()).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{domain} {app} {tenant}: {err}");
            assert!(err.to_string().contains(why), "{domain}: {err}");
        }
        r.add_domain("a.other.test", "site", "other", "bob", &claims()).unwrap();
        drop(r);
        let mut r = Registry::open(root.path(), 3).unwrap();
        let names: Vec<String> = r.domains().unwrap().into_iter().map(|d| d.domain).collect();
        assert_eq!(names, ["a.other.test", "shop.customer.com"]);
        let served = Registry::served(root.path()).unwrap();
        assert_eq!(served.domains.len(), 2);
        let gone = r.remove_domain("SHOP.CUSTOMER.COM.", "alice").unwrap();
        assert_eq!(gone.tenant, "customer");
        let err = r.remove_domain("shop.customer.com", "alice").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND, "{err}");
        assert_eq!(
            r.remove_domain("1.2.3.4", "alice").unwrap_err().status(),
            http::StatusCode::BAD_REQUEST
        );
        assert!(
            r.events("saas", 10).unwrap()[0]
                .what
                .contains("domain shop.customer.com removed")
        );
    }

    /// A platform app's domains outlive its removal from the registry (it
    /// is served from its source again); a deploy app's go with it.
    #[test]
    fn removing_an_app_removes_its_domains_only_when_it_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        r.sync_platform_apps(["saas"]).unwrap();
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("index.html"), "x").unwrap();
        let options = super::super::DeployOptions {
            by: "t",
            ..Default::default()
        };
        r.deploy("made", site.path(), &options, &mut |_, _| {}).unwrap();
        r.add_domain("a.customer.test", "saas", "a", "t", &[]).unwrap();
        r.add_domain("b.customer.test", "made", "b", "t", &[]).unwrap();
        r.remove("saas").unwrap();
        r.remove("made").unwrap();
        let names: Vec<String> = r.domains().unwrap().into_iter().map(|d| d.domain).collect();
        assert_eq!(names, ["a.customer.test"]);
    }

    /// An app that left the platform file with no versions is gone at the
    /// registry's next open, with its tenants' domains: a later deploy of
    /// an app with its id does not inherit them. One with versions stays
    /// (a deploy app now), and keeps them.
    #[test]
    fn the_domains_of_an_app_that_is_gone_are_dropped_at_the_next_open() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        r.sync_platform_apps(["saas", "gone", "kept"]).unwrap();
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("index.html"), "x").unwrap();
        let options = super::super::DeployOptions {
            by: "t",
            ..Default::default()
        };
        r.deploy("kept", site.path(), &options, &mut |_, _| {}).unwrap();
        for (domain, app) in [
            ("a.cust.test", "saas"),
            ("g.cust.test", "gone"),
            ("k.cust.test", "kept"),
        ] {
            r.add_domain(domain, app, "t", "t", &[]).unwrap();
        }
        drop(r);
        let mut r = Registry::open(root.path(), 3).unwrap();
        r.sync_platform_apps(["saas"]).unwrap();
        let names: Vec<String> = r.domains().unwrap().into_iter().map(|d| d.domain).collect();
        assert_eq!(names, ["a.cust.test", "k.cust.test"]);
        r.deploy("gone", site.path(), &options, &mut |_, _| {}).unwrap();
        assert!(r.domains().unwrap().iter().all(|d| d.app != "gone"));
        let served = Registry::served(root.path()).unwrap();
        assert!(served.domains.iter().all(|d| d.app != "gone"));
    }
}
