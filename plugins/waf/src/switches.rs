//! Which rules run for a request: the config's `rules` (families) and
//! `disabled_rules` (ids), then the first `exclusions` entry whose path
//! (and app) matches the request, which silences more of them or all.

use bext_plugin_abi::{PathPattern, PluginError};

use crate::config::{self, Config};
use crate::inspect::{Switches, rule_category};
use crate::rules::Category;

/// The switches of every request, and the exclusions' own.
pub(crate) struct RuleSwitches {
    all: Switches,
    exclusions: Vec<Exclusion>,
}

/// A compiled `exclusions:` entry.
struct Exclusion {
    path: PathPattern,
    app: Option<String>,
    /// `None`: every rule is silenced.
    silenced: Option<Switches>,
}

impl RuleSwitches {
    /// Compiles the config's switches; an unknown family, rule id or path
    /// pattern is an error naming its field.
    pub(crate) fn new(config: &Config) -> Result<Self, PluginError> {
        let mut all = Switches::default();
        for (category, on) in &config.rules {
            if !on {
                all.off_categories |= category.bit();
            }
        }
        for (i, id) in config.disabled_rules.iter().enumerate() {
            if rule_category(id).is_none() && all.crs.remove(id, &[]).is_err() {
                return Err(PluginError::config(
                    format!("disabled_rules[{i}]"),
                    format!("unknown rule `{id}`"),
                ));
            }
        }
        all.off_rules = config.disabled_rules.clone();
        all.markdown_prose = config.markdown_prose;
        let exclusions = config
            .exclusions
            .iter()
            .enumerate()
            .map(|(i, e)| Exclusion::new(i, e, &all))
            .collect::<Result<_, _>>()?;
        Ok(RuleSwitches { all, exclusions })
    }

    /// The switches for a request to `path` (routed to `app`); `None`
    /// when every rule is silenced there.
    pub(crate) fn for_request(&self, path: &str, app: Option<&str>) -> Option<&Switches> {
        for e in &self.exclusions {
            if e.path.matches(path) && e.app.as_deref().is_none_or(|a| Some(a) == app) {
                return e.silenced.as_ref();
            }
        }
        Some(&self.all)
    }
}

impl Exclusion {
    /// Entry `i`, silencing its rules on top of `base`.
    fn new(i: usize, e: &config::Exclusion, base: &Switches) -> Result<Exclusion, PluginError> {
        let path = PathPattern::parse(format!("exclusions[{i}].path"), &e.path)?;
        let mut silenced = if e.rules.is_empty() && e.args.is_empty() {
            None
        } else if e.rules.is_empty() {
            // Every rule, in these arguments only.
            let mut every = base.clone();
            every.off_categories = u16::MAX;
            Some(with_args(base, e, every, i)?)
        } else {
            let mut s = base.clone();
            for (j, r) in e.rules.iter().enumerate() {
                match Category::ALL.iter().find(|c| c.as_str() == r) {
                    Some(c) => s.off_categories |= c.bit(),
                    None if rule_category(r).is_some() => s.off_rules.push(r.clone()),
                    None if crate::seclang::Exclusions::default().remove(r, &[]).is_ok() => {}
                    None => {
                        return Err(PluginError::config(
                            format!("exclusions[{i}].rules[{j}]"),
                            format!("`{r}` is neither a category nor a rule id"),
                        ));
                    }
                }
            }
            if e.args.is_empty() {
                Some(s)
            } else {
                Some(with_args(base, e, s, i)?)
            }
        };
        if let Some(s) = &mut silenced {
            crs_exclusions(&mut s.crs, e);
        }
        Ok(Exclusion {
            path,
            app: e.app.clone(),
            silenced,
        })
    }
}

/// `base` for the request, with `silenced` for the arguments `e.args`.
/// The CRS rules an exclusion entry silences: its CRS ids and ranges,
/// and the CRS rule files of its families (`sqli` is 942xxx); all of
/// them when it names no rule. With `args`, only in those arguments.
fn crs_exclusions(crs: &mut crate::seclang::Exclusions, e: &config::Exclusion) {
    let mut ranges: Vec<&str> = Vec::new();
    if e.rules.is_empty() {
        ranges.push("1-999999");
    }
    for r in &e.rules {
        match Category::ALL.iter().find(|c| c.as_str() == r) {
            Some(c) => ranges.extend(crs_family(*c)),
            None if rule_category(r).is_none() => ranges.push(r),
            None => {}
        }
    }
    for ids in ranges {
        // Checked by the caller: every entry here parses.
        let _ = crs.remove(ids, &e.args);
    }
}

/// The CRS 3 rule file of a native family.
fn crs_family(c: Category) -> Option<&'static str> {
    Some(match c {
        Category::Sqli => "942000-942999",
        Category::Xss => "941000-941999",
        Category::Rce => "932000-932999",
        Category::Lfi => "930000-930999",
        Category::Rfi => "931000-931999",
        Category::Php => "933000-933999",
        Category::Java => "944000-944999",
        Category::Nodejs => "934000-934999",
        Category::Protocol => "920000-921999",
        Category::Scanner => "913000-913999",
        _ => return None,
    })
}

fn with_args(base: &Switches, e: &config::Exclusion, silenced: Switches, i: usize) -> Result<Switches, PluginError> {
    let mut s = base.clone();
    for (j, arg) in e.args.iter().enumerate() {
        if arg.is_empty() {
            return Err(PluginError::config(
                format!("exclusions[{i}].args[{j}]"),
                "an argument name cannot be empty",
            ));
        }
        s.args.push((arg.to_ascii_lowercase(), silenced.clone()));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switches(config: serde_json::Value) -> Result<RuleSwitches, PluginError> {
        RuleSwitches::new(&serde_json::from_value(config).unwrap())
    }

    fn field(err: PluginError) -> String {
        match err {
            PluginError::Config { path, .. } => path,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn families_and_rules_are_switched_off_everywhere() {
        let s = switches(serde_json::json!({
            "rules": {"php": false, "sqli": true},
            "disabled_rules": ["libinjection-xss"],
        }))
        .unwrap();
        let on = s.for_request("/any", None).unwrap();
        assert!(!on.on(Category::Php, "php-open-tag"));
        assert!(on.on(Category::Sqli, "sqli-union"));
        assert!(!on.on(Category::Xss, "libinjection-xss"));
        assert!(on.on(Category::Xss, "xss-script-tag"));
    }

    #[test]
    fn the_first_matching_exclusion_decides() {
        let s = switches(serde_json::json!({
            "disabled_rules": ["libinjection-xss"],
            "exclusions": [
                {"path": "/editor/*", "rules": ["xss", "sqli-union"]},
                {"path": "/console", "app": "tools"},
                {"path": "/editor/raw"},
            ],
        }))
        .unwrap();
        let editor = s.for_request("/editor/page", Some("site")).unwrap();
        assert!(!editor.on(Category::Xss, "xss-script-tag"));
        assert!(!editor.on(Category::Sqli, "sqli-union"));
        assert!(editor.on(Category::Sqli, "sqli-tautology"));
        // The first entry matched, so the third one never silences all.
        assert!(s.for_request("/editor/raw", None).is_some());
        // An app's exclusion holds for that app only.
        assert!(s.for_request("/console", Some("tools")).is_none());
        let elsewhere = s.for_request("/console", Some("site")).unwrap();
        assert!(elsewhere.on(Category::Sqli, "sqli-union"));
        assert!(!elsewhere.on(Category::Xss, "libinjection-xss"));
    }

    /// `args`: silenced in those arguments' values only, under every
    /// spelling of the name; the rest of the request is inspected, and no
    /// verdict reached there is remembered for requests elsewhere.
    #[test]
    fn exclusions_by_argument_silence_only_those_values() {
        use crate::inspect::{Engine, Subject};
        use http::{HeaderMap, HeaderValue, Method};

        let s = switches(serde_json::json!({
            "exclusions": [
                {"path": "/comments", "args": ["body"], "rules": ["rce", "xss"]},
                {"path": "/notes", "args": ["text"]},
            ],
        }))
        .unwrap();
        let engine = Engine::new();
        let form = |path: &str, body: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            let on = s.for_request(path, None).expect("inspected");
            engine
                .inspect(
                    &Subject {
                        method: &Method::POST,
                        path,
                        query: None,
                        headers: &headers,
                        body: body.as_bytes(),
                    },
                    on,
                )
                .map(|f| f.rule)
        };
        let code = "body=Run+%60ls+-la%60";
        assert_eq!(form("/comments", code), None);
        assert_eq!(form("/comments", "BODY=Run+%60ls+-la%60"), None, "names in any case");
        // The same value in another argument, or on another path, is found.
        assert!(form("/comments", "title=Run+%60ls+-la%60").is_some());
        assert!(form("/elsewhere", code).is_some());
        // Only the families named: SQLi in the excluded argument is found.
        assert!(form("/comments", "body=1%27+union+select+password+from+users--").is_some());
        // No rules named: every rule, in that argument only.
        assert_eq!(form("/notes", "text=%3Cscript%3Ealert(1)%3C/script%3E"), None);
        assert!(form("/notes", "title=%3Cscript%3Ealert(1)%3C/script%3E").is_some());
        // A query found clean under the exclusion is not remembered as clean.
        let get = |path: &str| {
            let headers = HeaderMap::new();
            let on = s.for_request(path, None).expect("inspected");
            engine
                .inspect(
                    &Subject {
                        method: &Method::GET,
                        path,
                        query: Some("text=%3Cscript%3Ealert(1)%3C/script%3E"),
                        headers: &headers,
                        body: b"",
                    },
                    on,
                )
                .map(|f| f.rule)
        };
        assert_eq!(get("/notes"), None);
        assert!(get("/elsewhere").is_some());

        let err = switches(serde_json::json!({"exclusions": [{"path": "/a", "args": ["ok", ""]}]}));
        assert_eq!(field(err.err().unwrap()), "exclusions[0].args[1]");
    }

    #[test]
    fn unknown_names_are_refused_with_their_field() {
        let err = switches(serde_json::json!({"disabled_rules": ["sqli-union", "nope"]}));
        assert_eq!(field(err.err().unwrap()), "disabled_rules[1]");
        let err = switches(serde_json::json!({"exclusions": [{"path": "/a", "rules": ["xss", "nope"]}]}));
        assert_eq!(field(err.err().unwrap()), "exclusions[0].rules[1]");
        let err = switches(serde_json::json!({"exclusions": [{"path": "no-slash"}]}));
        assert_eq!(field(err.err().unwrap()), "exclusions[0].path");
    }
}
