//! bext's own SecLang engine: the subset of ModSecurity's rule language
//! the OWASP Core Rule Set uses, compiled from the CRS files on disk
//! (Debian's `modsecurity-crs`), so the WAF can run CRS with its anomaly
//! scoring and paranoia levels as a second tier behind the native rules.
//!
//! `parse.rs` reads the files, `rule.rs` compiles a `SecRule`,
//! `operator.rs`/`transform.rs`/`macros.rs` are its parts, `request.rs`
//! builds the collections of a request and `eval.rs` runs phases 1-2.
//! Rules using what is not implemented (`@rbl`, `@geoLookup`, PCRE-only
//! regex syntax, `t:sha1`...) are left out and counted in `Stats`.

mod eval;
mod macros;
mod operator;
mod parse;
mod request;
mod rule;
mod transform;

use std::path::{Path, PathBuf};

pub use request::RequestData;
use rule::{Ctl, Rule, Var, Which};
pub(crate) use transform::percent_decode;

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Rule(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("{0}: {1}")]
    At(String, Box<LoadError>),
    #[error("{0}: no REQUEST-*.conf rule files")]
    Empty(PathBuf),
}

/// The CRS settings `crs-setup.conf` would hold.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `tx.paranoia_level` (1-4).
    pub paranoia: u8,
    /// `tx.inbound_anomaly_score_threshold`.
    pub inbound_threshold: u32,
}

/// What loading left out, so conformance gaps are visible.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Rules compiled.
    pub rules: usize,
    /// Rules left out, with the reason.
    pub skipped: Vec<(u32, String)>,
    /// Rule variables read as empty (XML XPath, GEO, IP collections...).
    pub empty_variables: usize,
}

/// A compiled rule set.
pub struct RuleSet {
    /// Phase 1 and phase 2 entries, markers in both.
    phases: [Vec<Entry>; 2],
    stats: Stats,
}

enum Entry {
    Rule(Rule),
    Marker(String),
}

/// The outcome for one request.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The `deny` rule that ended it (949110 when the score reached the
    /// threshold).
    pub denied_by: Option<u32>,
    /// `tx.anomaly_score`.
    pub score: i64,
    /// The attack rules that matched, in order.
    pub hits: Vec<Hit>,
}

/// One matched rule, for the audit log.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: u32,
    pub msg: String,
    /// `ARGS:q`, `REQUEST_HEADERS:User-Agent`.
    pub var: String,
    /// The matched value (transformed), cut short.
    pub data: String,
}

/// Exclusions for one request, in CRS's terms.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    ctls: Vec<Ctl>,
}

impl Exclusions {
    /// Rules `ids` (`942100`, `942100-942199`) off for the request, or,
    /// with `args`, only for those arguments (`ctl:ruleRemoveTargetById`).
    pub fn remove(&mut self, ids: &str, args: &[String]) -> Result<(), LoadError> {
        let ids = rule::ids(ids)?;
        if args.is_empty() {
            self.ctls.push(Ctl::RemoveRules(Which::Ids(ids)));
            return Ok(());
        }
        for arg in args {
            for var in [Var::Args, Var::ArgsGet, Var::ArgsPost, Var::ArgsNames] {
                let name = Some(arg.to_ascii_lowercase());
                self.ctls.push(Ctl::RemoveTarget(Which::Ids(ids.clone()), var, name));
            }
        }
        Ok(())
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.ctls.is_empty()
    }
}

impl RuleSet {
    /// Loads the `REQUEST-*.conf` files of `dir` (in name order) after the
    /// settings of `options`.
    pub fn load(dir: &Path, options: &Options) -> Result<RuleSet, LoadError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| LoadError::Io(dir.to_owned(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("REQUEST-") && n.ends_with(".conf"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Empty(dir.to_owned()));
        }
        let mut texts = vec![("setup".to_owned(), setup(options))];
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| LoadError::Io(f.clone(), e))?;
            texts.push((f.display().to_string(), text));
        }
        RuleSet::compile(&texts, dir)
    }

    /// Compiles rule texts (name, text) in order; `dir` holds the data
    /// files they name.
    pub fn compile(texts: &[(String, String)], dir: &Path) -> Result<RuleSet, LoadError> {
        let mut set = RuleSet {
            phases: [Vec::new(), Vec::new()],
            stats: Stats::default(),
        };
        let mut removed = Vec::new();
        // The rule a chain is being added to, or a skipped one's id.
        let mut open: Option<Result<Rule, u32>> = None;
        for (name, text) in texts {
            for d in parse::directives(text, name).map_err(LoadError::Rule)? {
                let at = |e| LoadError::At(d.at.clone(), Box::new(e));
                match d.name.as_str() {
                    "SecRule" | "SecAction" => {
                        let (vars, op, actions) = match (d.name.as_str(), d.args.as_slice()) {
                            ("SecAction", [a]) => (None, "", a.as_str()),
                            ("SecRule", [v, o]) => (Some(v.as_str()), o.as_str(), ""),
                            ("SecRule", [v, o, a]) => (Some(v.as_str()), o.as_str(), a.as_str()),
                            _ => return Err(at(LoadError::Rule(format!("{}: wrong number of arguments", d.name)))),
                        };
                        let compiled = rule::compile(vars, op, actions, dir);
                        set.stats.empty_variables += vars.map_or(0, |v| {
                            parse::variables(v).iter().filter(|t| is_empty_variable(t)).count()
                        });
                        let chained = match &compiled {
                            Ok((_, link)) => link.chained,
                            Err(_) => actions.to_ascii_lowercase().contains("chain"),
                        };
                        open = match (open.take(), compiled) {
                            (None, Ok((Some(mut r), link))) => {
                                r.links.push(link);
                                Some(Ok(r))
                            }
                            (None, Ok((None, _))) => return Err(at(LoadError::Rule("rule without id".into()))),
                            (None, Err(e @ LoadError::Unsupported(_))) => {
                                let id = id_of(actions).ok_or_else(|| at(LoadError::Rule("rule without id".into())))?;
                                set.stats.skipped.push((id, e.to_string()));
                                Some(Err(id))
                            }
                            (None, Err(e)) => return Err(at(e)),
                            (Some(Ok(mut r)), Ok((_, link))) => {
                                r.links.push(link);
                                Some(Ok(r))
                            }
                            (Some(Ok(r)), Err(e @ LoadError::Unsupported(_))) => {
                                set.stats.skipped.push((r.id, e.to_string()));
                                Some(Err(r.id))
                            }
                            (Some(Ok(_)), Err(e)) => return Err(at(e)),
                            (Some(Err(id)), _) => Some(Err(id)),
                        };
                        if !chained {
                            if let Some(Ok(r)) = open.take() {
                                set.add(r);
                            }
                            open = None;
                        }
                    }
                    "SecMarker" => {
                        let name = d.args.first().cloned().unwrap_or_default();
                        for p in &mut set.phases {
                            p.push(Entry::Marker(name.clone()));
                        }
                    }
                    "SecRuleRemoveById" => {
                        for a in &d.args {
                            removed.extend(rule::ids(a).map_err(at)?);
                        }
                    }
                    // Settings of the host engine, not of the rules.
                    _ => {}
                }
            }
        }
        for p in &mut set.phases {
            p.retain(|e| !matches!(e, Entry::Rule(r) if removed.iter().any(|ids| ids.contains(&r.id))));
        }
        set.stats.rules = set
            .phases
            .iter()
            .flatten()
            .filter(|e| matches!(e, Entry::Rule(_)))
            .count();
        Ok(set)
    }

    fn add(&mut self, r: Rule) {
        match r.phase {
            1 => self.phases[0].push(Entry::Rule(r)),
            2 => self.phases[1].push(Entry::Rule(r)),
            // Response phases: nothing to inspect on a request.
            _ => {}
        }
    }

    /// Whether rule `id` was compiled (for conformance figures: a test
    /// of a rule these files do not have says nothing about the engine).
    pub fn has_rule(&self, id: u32) -> bool {
        self.phases
            .iter()
            .flatten()
            .any(|e| matches!(e, Entry::Rule(r) if r.id == id))
    }

    /// What loading compiled and left out.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs the request phases on `req`.
    pub fn evaluate(&self, req: &RequestData, exclusions: &Exclusions) -> Verdict {
        eval::Tx::new(req, exclusions.ctls.clone()).run(self)
    }
}

/// The settings `crs-setup.conf` would make, as SecActions (ids in CRS's
/// 900000 range, which the CRS checks for).
fn setup(o: &Options) -> String {
    format!(
        "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.paranoia_level={}\"\n\
         SecAction \"id:900110,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold={}\"\n\
         SecAction \"id:900990,phase:1,pass,nolog,setvar:tx.crs_setup_version=334\"\n",
        o.paranoia, o.inbound_threshold
    )
}

fn id_of(actions: &str) -> Option<u32> {
    parse::actions(actions)
        .into_iter()
        .find(|(n, _)| n == "id")
        .and_then(|(_, v)| v.parse().ok())
}

fn is_empty_variable(t: &str) -> bool {
    let name = t.trim_start_matches(['!', '&']);
    let name = name.split(':').next().unwrap_or("");
    matches!(
        name.to_ascii_uppercase().as_str(),
        "XML" | "GEO" | "IP" | "GLOBAL" | "SESSION" | "DURATION" | "UNIQUE_ID" | "RESPONSE_BODY"
    )
}

#[cfg(test)]
mod tests;
