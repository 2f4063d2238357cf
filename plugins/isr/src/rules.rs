//! What the manifest's `rules` and `credential_headers` compile to, once,
//! when the plugin is built: the first rule whose `path` matches a
//! request applies to it.

use bext_plugin_abi::{PathPattern, PluginError};
use http::HeaderName;

use crate::config::RuleConfig;
use crate::policy::RuleSay;

/// One compiled `rules[]` entry.
pub(crate) struct Rule {
    /// The paths it covers.
    pub(crate) path: PathPattern,
    /// Its fixed freshness, if it gives one.
    pub(crate) say: RuleSay,
    /// Its paths are never cached.
    pub(crate) no_store: bool,
    /// Callers' requests are cached, each under the caller's own key.
    pub(crate) authorized: bool,
}

/// The rules, in manifest order.
pub(crate) struct Rules(Vec<Rule>);

impl Rules {
    /// Compiles `rules[]`; an error names the field (`rules[2].path`).
    pub(crate) fn compile(rules: &[RuleConfig]) -> Result<Self, PluginError> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            out.push(Rule {
                path: PathPattern::parse(format!("rules[{i}].path"), &r.path)?,
                say: RuleSay {
                    ttl: r.ttl.map(|s| s.0),
                    swr: r.swr.map(|s| s.0),
                },
                no_store: r.no_store,
                authorized: r.authorized,
            });
        }
        Ok(Rules(out))
    }

    /// The rule that applies to `path`: the first that matches.
    pub(crate) fn find(&self, path: &str) -> Option<&Rule> {
        self.0.iter().find(|r| r.path.matches(path))
    }
}

/// `credential_headers` as header names (surrounding blanks ignored,
/// case-insensitive); an error names the entry (`credential_headers[1]`).
pub(crate) fn credential_names(names: &[String]) -> Result<Vec<HeaderName>, PluginError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| PluginError::config(format!("credential_headers[{i}]"), "is not a header name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules(json: serde_json::Value) -> Result<Rules, PluginError> {
        let list: Vec<RuleConfig> = serde_json::from_value(json).unwrap();
        Rules::compile(&list)
    }

    fn config_path(e: PluginError) -> String {
        match e {
            PluginError::Config { path, .. } => path,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let r = rules(serde_json::json!([
            {"path": "/account/*", "authorized": true},
            {"path": "/account/settings", "no_store": true},
            {"path": "/posts/*", "ttl": "5m", "swr": "1h"},
        ]))
        .unwrap();
        let settings = r.find("/account/settings").unwrap();
        assert!(settings.authorized && !settings.no_store, "the earlier rule wins");
        let post = r.find("/posts/1").unwrap();
        assert_eq!(post.say.ttl, Some(Duration::from_secs(300)));
        assert_eq!(post.say.swr, Some(Duration::from_secs(3600)));
        assert!(!post.no_store && !post.authorized);
        assert!(r.find("/account").is_some(), "`/x/*` covers `/x` too");
        assert!(r.find("/other").is_none());
        assert!(rules(serde_json::json!([])).unwrap().find("/").is_none());
    }

    #[test]
    fn bad_rules_and_header_names_name_their_field() {
        let e = rules(serde_json::json!([{"path": "/ok"}, {"path": "relative"}]));
        assert_eq!(config_path(e.err().unwrap()), "rules[1].path");
        let names = |list: &[&str]| credential_names(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            names(&[" Cookie ", "X-Api-Key"]).unwrap(),
            [HeaderName::from_static("cookie"), HeaderName::from_static("x-api-key")]
        );
        assert_eq!(
            config_path(names(&["cookie", "bad name"]).unwrap_err()),
            "credential_headers[1]"
        );
        assert_eq!(config_path(names(&[""]).unwrap_err()), "credential_headers[0]");
    }
}
