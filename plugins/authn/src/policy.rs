//! Which requests need a caller, and which scopes. Pure logic: a method
//! and a path in, a decision out.
//!
//! A path a scope rule covers (for the request's method) always needs a
//! verified caller with the rule's scopes, even under `public` or with
//! `required: false`. Other `public` paths need nothing; the rest need a
//! caller when `required`, and check one only if sent otherwise.

use bext_plugin_abi::{PathPattern, PluginError};
use http::Method;

use crate::config;

/// The path rules of one plugin instance.
pub(crate) struct Policy {
    required: bool,
    public: Vec<PathPattern>,
    scope_rules: Vec<ScopeRule>,
}

/// What a request needs before it reaches the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A public path: credentials are not even read.
    Public,
    /// A credential is checked if sent; anonymous callers pass.
    Optional,
    /// A verified credential (401 without).
    Required,
}

struct ScopeRule {
    path: PathPattern,
    methods: Vec<Method>,
    require: Vec<String>,
}

impl ScopeRule {
    fn covers(&self, method: &Method, path: &str) -> bool {
        self.path.matches(path) && (self.methods.is_empty() || self.methods.contains(method))
    }
}

impl Policy {
    /// Checks and compiles `required`, `public` and `scopes`.
    pub(crate) fn new(required: bool, public: &[String], scopes: &[config::ScopeRule]) -> Result<Self, PluginError> {
        let public = PathPattern::parse_all("public", public)?;
        let mut scope_rules = Vec::new();
        for (i, r) in scopes.iter().enumerate() {
            let path = PathPattern::parse(format!("scopes[{i}].path"), &r.path)?;
            let mut methods: Vec<Method> = r
                .methods
                .iter()
                .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|_| PluginError::config(format!("scopes[{i}].methods"), "not a method"))?;
            // HEAD is GET without the body: apps answer it with the GET
            // handler, so a rule for GET guards HEAD too.
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            scope_rules.push(ScopeRule {
                path,
                methods,
                require: r.require.clone(),
            });
        }
        Ok(Policy {
            required,
            public,
            scope_rules,
        })
    }

    /// What this request needs. A scope rule wins over `public` and
    /// `required: false`: a path it covers is never served to a caller
    /// without its scopes.
    pub(crate) fn access(&self, method: &Method, path: &str) -> Access {
        let guarded = self.scope_rules.iter().any(|r| r.covers(method, path));
        if !guarded && self.public.iter().any(|p| p.matches(path)) {
            Access::Public
        } else if self.required || guarded {
            Access::Required
        } else {
            Access::Optional
        }
    }

    /// Scopes this request needs that a caller with `scopes` lacks (empty
    /// when allowed).
    pub(crate) fn missing_scopes(&self, method: &Method, path: &str, scopes: &[String]) -> Vec<&str> {
        // Most configurations have no scope rules: no iterator to run.
        if self.scope_rules.is_empty() {
            return Vec::new();
        }
        self.scope_rules
            .iter()
            .filter(|r| r.covers(method, path))
            .flat_map(|r| r.require.iter())
            .filter(|s| !scopes.contains(s))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, methods: &[&str], require: &[&str]) -> config::ScopeRule {
        config::ScopeRule {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            require: require.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn policy(required: bool, public: &[&str], scopes: &[config::ScopeRule]) -> Policy {
        let public: Vec<String> = public.iter().map(|p| p.to_string()).collect();
        Policy::new(required, &public, scopes).unwrap()
    }

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn public_paths_need_nothing_unless_a_rule_covers_them() {
        let p = policy(
            true,
            &["/health", "/assets/*"],
            &[rule("/assets/private/*", &["GET"], &["staff"])],
        );
        let get = Method::GET;
        assert_eq!(p.access(&get, "/health"), Access::Public);
        assert_eq!(p.access(&get, "/assets/app.js"), Access::Public);
        assert_eq!(p.access(&get, "/assets/private/x"), Access::Required, "the rule wins");
        assert_eq!(
            p.access(&Method::POST, "/assets/private/x"),
            Access::Public,
            "not its method"
        );
        assert_eq!(p.access(&get, "/healthz"), Access::Required);
        assert_eq!(p.access(&get, "/"), Access::Required);
    }

    #[test]
    fn optional_callers_are_required_where_a_rule_covers() {
        let p = policy(false, &["/admin/login"], &[rule("/admin/*", &[], &[])]);
        assert_eq!(p.access(&Method::GET, "/"), Access::Optional);
        assert_eq!(p.access(&Method::DELETE, "/admin/users"), Access::Required);
        assert_eq!(
            p.access(&Method::GET, "/admin/login"),
            Access::Required,
            "public, but covered"
        );
        assert!(
            p.missing_scopes(&Method::GET, "/admin/users", &[]).is_empty(),
            "require: [] means any verified caller"
        );
    }

    #[test]
    fn missing_scopes_are_listed_in_rule_order() {
        let p = policy(
            true,
            &[],
            &[
                rule("/billing/*", &["post", "Put"], &["billing", "write"]),
                rule("/billing/refunds", &[], &["refunds"]),
            ],
        );
        let post = Method::POST;
        assert_eq!(
            p.missing_scopes(&post, "/billing/refunds", &[]),
            ["billing", "write", "refunds"]
        );
        assert_eq!(
            p.missing_scopes(&post, "/billing/refunds", &owned(&["write", "refunds"])),
            ["billing"]
        );
        assert!(
            p.missing_scopes(&post, "/billing/x", &owned(&["billing", "write"]))
                .is_empty()
        );
        assert!(
            p.missing_scopes(&Method::PUT, "/billing/x", &owned(&["billing", "write"]))
                .is_empty()
        );
        assert_eq!(p.missing_scopes(&Method::GET, "/billing/refunds", &[]), ["refunds"]);
        assert!(p.missing_scopes(&Method::GET, "/billing/x", &[]).is_empty());
        assert!(p.missing_scopes(&post, "/other", &[]).is_empty());
    }

    #[test]
    fn a_rule_for_get_guards_head() {
        let p = policy(false, &[], &[rule("/r", &["get"], &["read"])]);
        assert_eq!(p.access(&Method::HEAD, "/r"), Access::Required);
        assert_eq!(p.missing_scopes(&Method::HEAD, "/r", &[]), ["read"]);
        assert_eq!(p.access(&Method::OPTIONS, "/r"), Access::Optional);
        let p = policy(false, &[], &[rule("/r", &["HEAD"], &["read"])]);
        assert_eq!(
            p.access(&Method::GET, "/r"),
            Access::Optional,
            "HEAD does not guard GET"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let path = |e: PluginError| match e {
            PluginError::Config { path, .. } => path,
            other => panic!("{other:?}"),
        };
        let err = Policy::new(true, &[], &[rule("/ok", &[], &[]), rule("/x", &["GE T"], &[])]);
        assert_eq!(path(err.err().unwrap()), "scopes[1].methods");
        let err = Policy::new(true, &[], &[rule("no-slash", &[], &[])]);
        assert_eq!(path(err.err().unwrap()), "scopes[0].path");
        let err = Policy::new(true, &["/ok".into(), "bad".into()], &[]);
        assert!(path(err.err().unwrap()).starts_with("public"));
    }
}
