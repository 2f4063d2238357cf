//! Host → app matching. Pure logic: no HTTP, no I/O.
//!
//! Cost does not grow with the number of hosts: exact hosts are one hash
//! lookup, wildcards one lookup per label of the request's host (the
//! longest suffix first, so the most specific wildcard wins), and regex
//! patterns one pass of a `RegexSet`.

use std::sync::Arc;

use regex::{Regex, RegexSet};
use rustc_hash::FxHashMap;

/// One way a host can reach an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The app that serves it.
    pub app: Arc<str>,
    /// Normalised prefix (`/api`), or `None` for every path.
    pub path_prefix: Option<Box<str>>,
    /// Skip the app's plugin chain.
    pub bypass: bool,
    /// The pattern as written, for logs and error messages.
    pub pattern: Arc<str>,
    /// The tenant every request on this host is for: a tenant's own
    /// domain (`shop.customer.com` → `customer`) names it instead of
    /// capturing it from the host.
    pub tenant: Option<Arc<str>>,
}

impl Route {
    fn serves(&self, path: &str) -> bool {
        match &self.path_prefix {
            None => true,
            Some(p) => path.starts_with(&**p) && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/'),
        }
    }
}

/// A successful match: the route and, for wildcard and pattern hosts, the
/// tenant (a slice of the request's host). A tenant's own domain has its
/// tenant in [`Route::tenant`]; [`Match::tenant_name`] gives either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'m, 'h> {
    /// The matching route.
    pub route: &'m Route,
    /// The captured tenant.
    pub tenant: Option<&'h str>,
}

impl Match<'_, '_> {
    /// The request's tenant: the route's own, else the captured one.
    pub fn tenant_name(&self) -> Option<&str> {
        self.route.tenant.as_deref().or(self.tenant)
    }
}

/// A host pattern that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Why it is refused.
    pub reason: String,
}

/// All host patterns, compiled once.
#[derive(Debug, Default)]
pub struct Matcher {
    exact: FxHashMap<Box<str>, Vec<Route>>,
    /// Keyed by the suffix after `*.`.
    wildcard: FxHashMap<Box<str>, Vec<Route>>,
    regex_set: Option<RegexSet>,
    regexes: Vec<(Regex, Route)>,
}

/// Builds a [`Matcher`], checking each pattern and conflicts between them.
#[derive(Debug, Default)]
pub struct MatcherBuilder {
    matcher: Matcher,
    regex_sources: Vec<String>,
}

impl MatcherBuilder {
    /// Adds `pattern` (exact, `*.suffix`, or `~regex`) routing to `app`.
    pub fn add(
        &mut self,
        pattern: &str,
        app: &str,
        path_prefix: Option<&str>,
        bypass: bool,
    ) -> Result<(), PatternError> {
        let err = |reason: String| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        let path_prefix = normalise_prefix(path_prefix).map_err(err)?;
        let route = Route {
            app: app.into(),
            path_prefix,
            bypass,
            pattern: pattern.into(),
            tenant: None,
        };
        if let Some(re) = pattern.strip_prefix('~') {
            let anchored = format!("^(?:{re})$");
            let regex = Regex::new(&anchored).map_err(|e| err(format!("invalid regex: {e}")))?;
            self.regex_sources.push(anchored);
            self.matcher.regexes.push((regex, route));
            return Ok(());
        }
        let host = bext_plugin_abi::normalise_host_pattern(pattern).map_err(err)?;
        let (table, key) = match host.strip_prefix("*.") {
            Some(suffix) => (&mut self.matcher.wildcard, suffix),
            None => (&mut self.matcher.exact, host.as_str()),
        };
        let routes = table.entry(key.into()).or_default();
        if let Some(other) = routes.iter().find(|r| r.path_prefix == route.path_prefix) {
            if other.app == route.app {
                return Ok(()); // the same claim twice (manifest and platform file)
            }
            let at = route
                .path_prefix
                .as_deref()
                .map(|p| format!(" at {p}"))
                .unwrap_or_default();
            return Err(err(format!(
                "claimed by two apps{at}: `{}` and `{}`",
                other.app, route.app
            )));
        }
        routes.push(route);
        // Longest prefix first; the entry without a prefix last.
        routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.as_ref().map_or(0, |p| p.len() + 1)));
        Ok(())
    }

    /// Adds a tenant's own domain: the exact host `domain` reaches `app`
    /// with `tenant`, for every path. Refused when another route has the
    /// host already, exactly or by a wildcard above it (the platform
    /// file's and the manifest's claims come first), or when it is not one exact host name.
    pub fn add_tenant_domain(&mut self, domain: &str, app: &str, tenant: &str) -> Result<(), PatternError> {
        let err = |reason: String| PatternError {
            pattern: domain.to_owned(),
            reason,
        };
        let host = bext_plugin_abi::normalise_host_pattern(domain).map_err(err)?;
        if host.starts_with("*.") || host.starts_with('[') || domain.starts_with('~') {
            return Err(err("a tenant's own domain is one exact host name".into()));
        }
        if tenant.is_empty() {
            return Err(err("its tenant is empty".into()));
        }
        // Under a wildcard route, the name is that route's (with its
        // captured tenant): a tenant's domain never takes it over.
        for (i, _) in host.match_indices('.') {
            if let Some(other) = self.matcher.wildcard.get(&host[i + 1..]).and_then(|rs| rs.first()) {
                return Err(err(format!(
                    "already routed to app `{}` by `{}`",
                    other.app, other.pattern
                )));
            }
        }
        // Nor one a `~regex` route matches: the API and the platform file's
        // check do not judge regexes, so the router does.
        if let Some((_, other)) = self.matcher.regexes.iter().find(|(re, _)| re.is_match(&host)) {
            return Err(err(format!(
                "already routed to app `{}` by `{}`",
                other.app, other.pattern
            )));
        }
        let routes = self.matcher.exact.entry(host.as_str().into()).or_default();
        if let Some(other) = routes.first() {
            return Err(err(format!("already routed to app `{}`", other.app)));
        }
        routes.push(Route {
            app: app.into(),
            path_prefix: None,
            bypass: false,
            pattern: domain.into(),
            tenant: Some(tenant.into()),
        });
        Ok(())
    }

    /// Finishes the matcher.
    pub fn build(mut self) -> Result<Matcher, PatternError> {
        if !self.regex_sources.is_empty() {
            let set = RegexSet::new(&self.regex_sources).map_err(|e| PatternError {
                pattern: "~".into(),
                reason: e.to_string(),
            })?;
            self.matcher.regex_set = Some(set);
        }
        // Most hosts have one route: a pushed-to `Vec` keeps room for four
        // (~220 bytes a host; 10,000 apps: ~2 MB).
        for routes in (self.matcher.exact.values_mut()).chain(self.matcher.wildcard.values_mut()) {
            routes.shrink_to_fit();
        }
        Ok(self.matcher)
    }
}

impl Matcher {
    /// Finds the route for a normalised host (lower case, no port, no
    /// trailing dot) and a request path. Exact beats wildcard, a longer
    /// wildcard suffix beats a shorter one, and regexes come last; within a
    /// host, entries whose `pathPrefix` does not cover `path` fall through.
    pub fn find<'m, 'h>(&'m self, host: &'h str, path: &str) -> Option<Match<'m, 'h>> {
        if let Some(route) = self.exact.get(host).and_then(|rs| pick(rs, path)) {
            return Some(Match { route, tenant: None });
        }
        if !self.wildcard.is_empty() {
            // Each dot splits the host into a non-empty tenant and a suffix;
            // the first (longest) suffix with a route wins.
            for (i, b) in host.bytes().enumerate() {
                if b != b'.' || i == 0 {
                    continue;
                }
                if let Some(route) = self.wildcard.get(&host[i + 1..]).and_then(|rs| pick(rs, path)) {
                    return Some(Match {
                        route,
                        tenant: Some(&host[..i]),
                    });
                }
            }
        }
        let set = self.regex_set.as_ref()?;
        for i in set.matches(host).iter() {
            let (re, route) = &self.regexes[i];
            if !route.serves(path) {
                continue;
            }
            let tenant = re
                .captures(host)
                .and_then(|c| c.name("tenant"))
                .map(|m| &host[m.range()])
                .filter(|t| !t.is_empty());
            return Some(Match { route, tenant });
        }
        None
    }

    /// How many host patterns are loaded.
    pub fn len(&self) -> usize {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .map(Vec::len)
            .sum::<usize>()
            + self.regexes.len()
    }

    /// Whether no pattern is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn pick<'m>(routes: &'m [Route], path: &str) -> Option<&'m Route> {
    routes.iter().find(|r| r.serves(path))
}

fn normalise_prefix(prefix: Option<&str>) -> Result<Option<Box<str>>, String> {
    let Some(p) = prefix else { return Ok(None) };
    if !p.starts_with('/') {
        return Err(format!("pathPrefix `{p}` must start with `/`"));
    }
    let p = p.trim_end_matches('/');
    Ok((!p.is_empty()).then(|| p.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(entries: &[(&str, &str, Option<&str>)]) -> Matcher {
        let mut b = MatcherBuilder::default();
        for (p, app, prefix) in entries {
            b.add(p, app, *prefix, false).unwrap();
        }
        b.build().unwrap()
    }

    fn app<'a>(m: &'a Matcher, host: &'a str, path: &str) -> Option<(&'a str, Option<&'a str>)> {
        m.find(host, path).map(|m| (&*m.route.app, m.tenant))
    }

    /// 10,000 apps are 10,000 hosts of one route each: the router keeps
    /// no spare room per host.
    #[test]
    fn a_host_keeps_room_for_its_routes_only() {
        let m = matcher(&[
            ("a.example.com", "a", None),
            ("*.b.example.com", "b", None),
            ("c.example.com", "c", Some("/api")),
            ("c.example.com", "c2", None),
        ]);
        for routes in m.exact.values().chain(m.wildcard.values()) {
            assert_eq!(routes.capacity(), routes.len(), "{routes:?}");
        }
        assert_eq!(app(&m, "c.example.com", "/api/x"), Some(("c", None)));
    }

    #[test]
    fn exact_beats_wildcard() {
        let m = matcher(&[("*.example.com", "saas", None), ("www.example.com", "site", None)]);
        assert_eq!(app(&m, "www.example.com", "/"), Some(("site", None)));
        assert_eq!(app(&m, "acme.example.com", "/"), Some(("saas", Some("acme"))));
    }

    #[test]
    fn most_specific_wildcard_wins_and_tenant_may_contain_dots() {
        let m = matcher(&[("*.example.com", "global", None), ("*.eu.example.com", "eu", None)]);
        assert_eq!(app(&m, "acme.eu.example.com", "/"), Some(("eu", Some("acme"))));
        assert_eq!(app(&m, "a.b.eu.example.com", "/"), Some(("eu", Some("a.b"))));
        assert_eq!(app(&m, "acme.us.example.com", "/"), Some(("global", Some("acme.us"))));
    }

    #[test]
    fn wildcard_needs_a_non_empty_tenant() {
        let m = matcher(&[("*.example.com", "saas", None)]);
        assert_eq!(app(&m, "example.com", "/"), None);
        assert_eq!(app(&m, ".example.com", "/"), None);
        assert_eq!(app(&m, "notexample.com", "/"), None);
    }

    #[test]
    fn path_prefix_matches_whole_segments_and_falls_through() {
        let m = matcher(&[
            ("example.com", "api", Some("/api/")),
            ("example.com", "web", None),
            ("*.example.com", "tenant-api", Some("/api")),
        ]);
        assert_eq!(app(&m, "example.com", "/api"), Some(("api", None)));
        assert_eq!(app(&m, "example.com", "/api/users"), Some(("api", None)));
        assert_eq!(app(&m, "example.com", "/apix"), Some(("web", None)));
        assert_eq!(app(&m, "example.com", "/"), Some(("web", None)));
        assert_eq!(app(&m, "t.example.com", "/api/x"), Some(("tenant-api", Some("t"))));
        assert_eq!(
            app(&m, "t.example.com", "/other"),
            None,
            "falls through to the pipeline"
        );
    }

    #[test]
    fn exact_prefix_entry_falls_through_to_wildcard() {
        let m = matcher(&[
            ("shop.example.com", "admin", Some("/admin")),
            ("*.example.com", "saas", None),
        ]);
        assert_eq!(app(&m, "shop.example.com", "/admin/x"), Some(("admin", None)));
        assert_eq!(app(&m, "shop.example.com", "/cart"), Some(("saas", Some("shop"))));
    }

    #[test]
    fn regex_patterns_capture_a_named_tenant() {
        let m = matcher(&[
            (r"~(?P<tenant>[a-z0-9]+)-shop\.example\.net", "shop", None),
            ("~static\\d+\\.cdn\\.net", "cdn", None),
        ]);
        assert_eq!(app(&m, "acme-shop.example.net", "/"), Some(("shop", Some("acme"))));
        assert_eq!(app(&m, "static3.cdn.net", "/"), Some(("cdn", None)));
        assert_eq!(app(&m, "xstatic3.cdn.net.evil", "/"), None, "regexes are anchored");
    }

    #[test]
    fn wildcards_beat_regexes() {
        let m = matcher(&[("~.*", "catch-all", None), ("*.example.com", "saas", None)]);
        assert_eq!(app(&m, "a.example.com", "/"), Some(("saas", Some("a"))));
        assert_eq!(app(&m, "other.org", "/"), Some(("catch-all", None)));
    }

    #[test]
    fn ipv6_and_localhost_hosts() {
        let m = matcher(&[
            ("[::1]", "v6", None),
            ("localhost", "local", None),
            ("*.localhost", "dev", None),
        ]);
        assert_eq!(app(&m, "[::1]", "/"), Some(("v6", None)));
        assert_eq!(app(&m, "localhost", "/"), Some(("local", None)));
        assert_eq!(app(&m, "blog.localhost", "/"), Some(("dev", Some("blog"))));
    }

    #[test]
    fn patterns_are_normalised() {
        let m = matcher(&[("Example.COM.", "site", None)]);
        assert_eq!(app(&m, "example.com", "/"), Some(("site", None)));
    }

    #[test]
    fn two_apps_on_one_exact_domain_is_an_error_naming_both() {
        let mut b = MatcherBuilder::default();
        b.add("example.com", "blog", None, false).unwrap();
        b.add("example.com", "blog", None, false).unwrap();
        let e = b.add("example.com", "shop", None, false).unwrap_err();
        assert!(
            e.to_string().contains("`blog`") && e.to_string().contains("`shop`"),
            "{e}"
        );
        b.add("example.com", "shop", Some("/shop"), false).unwrap();
    }

    #[test]
    fn bad_patterns_are_refused_with_reasons() {
        let mut b = MatcherBuilder::default();
        for bad in [
            "",
            "foo.*.com",
            "example.com:8080",
            "exa mple.com",
            "[::1",
            "[nope]",
            "a..b",
        ] {
            assert!(b.add(bad, "x", None, false).is_err(), "{bad:?} accepted");
        }
        assert!(b.add("~(", "x", None, false).is_err());
        assert!(b.add("example.com", "x", Some("api"), false).is_err());
    }

    #[test]
    fn lookup_cost_does_not_depend_on_host_count() {
        let mut b = MatcherBuilder::default();
        for i in 0..10_000 {
            b.add(&format!("site{i}.example.com"), &format!("app{i}"), None, false)
                .unwrap();
            b.add(&format!("*.t{i}.example.org"), &format!("tenant{i}"), None, false)
                .unwrap();
        }
        let m = b.build().unwrap();
        assert_eq!(m.len(), 20_000);
        assert_eq!(app(&m, "site9999.example.com", "/"), Some(("app9999", None)));
        assert_eq!(app(&m, "acme.t42.example.org", "/"), Some(("tenant42", Some("acme"))));
    }

    #[test]
    fn a_tenant_domain_is_an_exact_host_with_its_tenant_named() {
        let mut b = MatcherBuilder::default();
        b.add("*.saas.test", "saas", None, false).unwrap();
        b.add("www.customer.test", "site", None, false).unwrap();
        b.add_tenant_domain("Shop.Customer.TEST.", "saas", "customer").unwrap();
        b.add("*.mapped.test", "other", None, false).unwrap();
        b.add(r"~(?P<tenant>[a-z]+)-rx\.test", "rx", None, false).unwrap();
        // A name under a wildcard is that wildcard's tenant's, even under
        // the tenant's own app's wildcard: never re-tenanted; so is a name
        // a regex route matches.
        for (taken, by) in [
            ("acme.saas.test", "saas"),
            ("ACME.saas.test.", "saas"),
            ("a.b.saas.test", "saas"),
            ("x.mapped.test", "other"),
            ("abc-rx.test", "rx"),
            ("ABC-rx.Test.", "rx"),
        ] {
            let e = b.add_tenant_domain(taken, "saas", "evil").unwrap_err();
            assert!(
                e.to_string().contains(&format!("already routed to app `{by}`")),
                "{taken}: {e}"
            );
        }
        b.add_tenant_domain("mapped.test", "saas", "t").unwrap();
        let e = b
            .add_tenant_domain("www.customer.test", "saas", "customer")
            .unwrap_err();
        assert!(e.to_string().contains("already routed to app `site`"), "{e}");
        for bad in ["*.customer.test", "[::1]", "shop.customer.test:443", "~x", ""] {
            assert!(b.add_tenant_domain(bad, "saas", "c").is_err(), "{bad:?} accepted");
        }
        assert!(b.add_tenant_domain("x.test", "saas", "").is_err());
        let m = b.build().unwrap();
        let tenant = |host: &str| {
            m.find(host, "/any/path")
                .map(|m| (m.route.app.to_string(), m.tenant_name().map(str::to_owned)))
        };
        assert_eq!(
            tenant("shop.customer.test"),
            Some(("saas".into(), Some("customer".into())))
        );
        assert_eq!(tenant("acme.saas.test"), Some(("saas".into(), Some("acme".into()))));
        assert_eq!(tenant("x.mapped.test"), Some(("other".into(), Some("x".into()))));
        assert_eq!(tenant("mapped.test"), Some(("saas".into(), Some("t".into()))));
        assert_eq!(tenant("bob.saas.test"), Some(("saas".into(), Some("bob".into()))));
        assert_eq!(tenant("www.customer.test"), Some(("site".into(), None)));
        assert_eq!(tenant("x.shop.customer.test"), None, "no wildcard below it");
        assert_eq!(tenant("abc-rx.test"), Some(("rx".into(), Some("abc".into()))));
    }
}
