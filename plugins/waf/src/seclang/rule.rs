//! A SecRule compiled: its variables, operator, transformations and
//! actions, and the chain of rules that must match after it.

use std::ops::RangeInclusive;
use std::path::Path;

use regex::bytes::Regex;

use super::LoadError;
use super::macros::Template;
use super::operator::{Operator, regex};
use super::parse;
use super::transform::Transform;

/// The variables the engine reads (named as SecLang names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Var {
    Args,
    ArgsNames,
    ArgsGet,
    ArgsGetNames,
    ArgsPost,
    ArgsPostNames,
    ArgsCombinedSize,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    RequestUri,
    RequestUriRaw,
    RequestFilename,
    RequestBasename,
    QueryString,
    RequestBody,
    RequestMethod,
    RequestProtocol,
    RequestLine,
    Files,
    FilesNames,
    FilesCombinedSize,
    MultipartPartHeaders,
    Tx,
    MatchedVar,
    MatchedVarName,
    MatchedVars,
    MatchedVarsNames,
    RemoteAddr,
    ReqbodyProcessor,
    ReqbodyError,
    /// Read as empty: XML XPath, GEO, IP/GLOBAL collections, durations.
    Skipped,
}

impl Var {
    fn parse(name: &str) -> Var {
        use Var::*;
        match name.to_ascii_uppercase().as_str() {
            "ARGS" => Args,
            "ARGS_NAMES" => ArgsNames,
            "ARGS_GET" => ArgsGet,
            "ARGS_GET_NAMES" => ArgsGetNames,
            "ARGS_POST" => ArgsPost,
            "ARGS_POST_NAMES" => ArgsPostNames,
            "ARGS_COMBINED_SIZE" => ArgsCombinedSize,
            "REQUEST_HEADERS" => RequestHeaders,
            "REQUEST_HEADERS_NAMES" => RequestHeadersNames,
            "REQUEST_COOKIES" => RequestCookies,
            "REQUEST_COOKIES_NAMES" => RequestCookiesNames,
            "REQUEST_URI" => RequestUri,
            "REQUEST_URI_RAW" => RequestUriRaw,
            "REQUEST_FILENAME" => RequestFilename,
            "REQUEST_BASENAME" => RequestBasename,
            "QUERY_STRING" => QueryString,
            "REQUEST_BODY" => RequestBody,
            "REQUEST_METHOD" => RequestMethod,
            "REQUEST_PROTOCOL" => RequestProtocol,
            "REQUEST_LINE" => RequestLine,
            "FILES" => Files,
            "FILES_NAMES" => FilesNames,
            "FILES_COMBINED_SIZE" => FilesCombinedSize,
            "MULTIPART_PART_HEADERS" => MultipartPartHeaders,
            "TX" => Tx,
            "MATCHED_VAR" => MatchedVar,
            "MATCHED_VAR_NAME" => MatchedVarName,
            "MATCHED_VARS" => MatchedVars,
            "MATCHED_VARS_NAMES" => MatchedVarsNames,
            "REMOTE_ADDR" => RemoteAddr,
            "REQBODY_PROCESSOR" => ReqbodyProcessor,
            "REQBODY_ERROR" => ReqbodyError,
            _ => Skipped,
        }
    }
}

/// `:name` or `:/regex/` after a collection.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    /// Lowercased: names are compared without case.
    Name(String),
    Regex(Regex),
}

impl Selector {
    fn parse(s: &str) -> Result<Selector, LoadError> {
        let s = s.trim_matches('\'');
        match s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) => Ok(Selector::Regex(regex(&format!("(?i){re}"))?)),
            None => Ok(Selector::Name(s.to_ascii_lowercase())),
        }
    }

    /// Whether an element called `name` is selected.
    pub(crate) fn selects(&self, name: &str) -> bool {
        match self {
            Selector::Name(n) => n.eq_ignore_ascii_case(name),
            Selector::Regex(re) => re.is_match(name.as_bytes()),
        }
    }
}

/// One entry of a rule's variable list.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) var: Var,
    pub(crate) selector: Option<Selector>,
    /// `&VAR`: the number of elements instead of their values.
    pub(crate) count: bool,
    /// `!VAR:name` entries: elements left out.
    pub(crate) not: Vec<Selector>,
}

impl Target {
    /// Parses `VAR`, `VAR:sel`, `&VAR:sel` (not the `!` form).
    fn parse(s: &str) -> Result<Target, LoadError> {
        let (count, s) = match s.strip_prefix('&') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (name, sel) = match s.split_once(':') {
            Some((n, sel)) => (n, Some(Selector::parse(sel)?)),
            None => (s, None),
        };
        Ok(Target {
            var: Var::parse(name),
            selector: sel,
            count,
            not: Vec::new(),
        })
    }
}

/// `setvar:` on the TX collection (others are ignored).
#[derive(Debug, Clone)]
pub(crate) enum SetVar {
    Set(String, Template),
    Add(String, Template),
    Sub(String, Template),
    Unset(String),
}

/// Rule ids named by `ctl:` and `SecRuleRemoveById`.
pub(crate) type Ids = Vec<RangeInclusive<u32>>;

/// Which rules a `ctl:` applies to.
#[derive(Debug, Clone)]
pub(crate) enum Which {
    Ids(Ids),
    Tag(String),
}

/// `ctl:` actions the engine honours.
#[derive(Debug, Clone)]
pub(crate) enum Ctl {
    RemoveRules(Which),
    RemoveTarget(Which, Var, Option<String>),
    EngineOff,
}

/// One rule of a chain (the first is the rule itself).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) targets: Vec<Target>,
    pub(crate) operator: Operator,
    pub(crate) negated: bool,
    pub(crate) transforms: Vec<Transform>,
    pub(crate) multi_match: bool,
    pub(crate) capture: bool,
    pub(crate) setvars: Vec<SetVar>,
    pub(crate) ctls: Vec<Ctl>,
    /// Asks for another link after this one.
    pub(crate) chained: bool,
}

/// A rule with its chain and the actions of its first link.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: u32,
    pub(crate) phase: u8,
    pub(crate) links: Vec<Link>,
    /// `deny`/`drop`: ends the transaction refused.
    pub(crate) deny: bool,
    /// `allow`: ends the transaction accepted.
    pub(crate) allow: bool,
    pub(crate) skip_after: Option<String>,
    pub(crate) msg: Template,
    pub(crate) tags: Vec<String>,
    /// CRS's attack rules carry one; only they are reported.
    pub(crate) severity: Option<String>,
}

/// What a rule's action list says.
struct Actions {
    id: Option<u32>,
    phase: Option<u8>,
    deny: bool,
    allow: bool,
    skip_after: Option<String>,
    msg: Template,
    tags: Vec<String>,
    severity: Option<String>,
    link: LinkActions,
}

#[derive(Default)]
struct LinkActions {
    transforms: Vec<Transform>,
    multi_match: bool,
    capture: bool,
    setvars: Vec<SetVar>,
    ctls: Vec<Ctl>,
    chained: bool,
}

/// Compiles `SecRule VARIABLES OPERATOR [ACTIONS]` (or `SecAction ACTIONS`
/// when `vars` is None) into its first link and the rule's actions.
pub(crate) fn compile(
    vars: Option<&str>,
    operator: &str,
    actions: &str,
    dir: &Path,
) -> Result<(Option<Rule>, Link), LoadError> {
    let a = parse_actions(actions)?;
    let targets = match vars {
        Some(v) => targets(v)?,
        None => Vec::new(),
    };
    let (negated, name, arg) = split_operator(operator);
    let operator = match vars {
        Some(_) => Operator::compile(name, arg, dir)?,
        None => Operator::Unconditional,
    };
    let link = Link {
        targets,
        operator,
        negated,
        transforms: a.link.transforms,
        multi_match: a.link.multi_match,
        capture: a.link.capture,
        setvars: a.link.setvars,
        ctls: a.link.ctls,
        chained: a.link.chained,
    };
    let rule = a.id.map(|id| Rule {
        id,
        phase: a.phase.unwrap_or(2),
        links: Vec::new(),
        deny: a.deny,
        allow: a.allow,
        skip_after: a.skip_after,
        msg: a.msg,
        tags: a.tags,
        severity: a.severity,
    });
    Ok((rule, link))
}

/// `!@name arg`, `@name arg` or a bare regex.
fn split_operator(op: &str) -> (bool, &str, &str) {
    let (negated, op) = match op.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    match op.strip_prefix('@') {
        Some(rest) => {
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            (negated, name, arg)
        }
        None => (negated, "rx", op),
    }
}

fn targets(list: &str) -> Result<Vec<Target>, LoadError> {
    let mut out: Vec<Target> = Vec::new();
    for item in parse::variables(list) {
        if let Some(excluded) = item.strip_prefix('!') {
            let t = Target::parse(excluded)?;
            let Some(sel) = t.selector else { continue };
            for kept in out.iter_mut().filter(|k| k.var == t.var) {
                kept.not.push(sel.clone());
            }
        } else {
            out.push(Target::parse(&item)?);
        }
    }
    Ok(out)
}

fn parse_actions(list: &str) -> Result<Actions, LoadError> {
    let mut a = Actions {
        id: None,
        phase: None,
        deny: false,
        allow: false,
        skip_after: None,
        msg: Template::default(),
        tags: Vec::new(),
        severity: None,
        link: LinkActions::default(),
    };
    for (name, value) in parse::actions(list) {
        match name.as_str() {
            "id" => {
                a.id = Some(
                    value
                        .parse()
                        .map_err(|_| LoadError::Rule(format!("bad id {value:?}")))?,
                )
            }
            "phase" => {
                a.phase = Some(match value.as_str() {
                    "request" => 2,
                    "response" => 4,
                    "logging" => 5,
                    n => n.parse().map_err(|_| LoadError::Rule(format!("bad phase {n:?}")))?,
                })
            }
            "deny" | "drop" => a.deny = true,
            "allow" => a.allow = true,
            "skipafter" => a.skip_after = Some(value),
            "msg" => a.msg = Template::parse(&value),
            "tag" => a.tags.push(value),
            "severity" => a.severity = Some(value),
            "t" => match Transform::parse(&value)? {
                Some(t) => a.link.transforms.push(t),
                None => a.link.transforms.clear(),
            },
            "multimatch" => a.link.multi_match = true,
            "capture" => a.link.capture = true,
            "chain" => a.link.chained = true,
            "setvar" => {
                if let Some(sv) = setvar(&value) {
                    a.link.setvars.push(sv);
                }
            }
            "ctl" => {
                if let Some(ctl) = ctl(&value)? {
                    a.link.ctls.push(ctl);
                }
            }
            // Logging, metadata and actions with no effect on the verdict.
            _ => {}
        }
    }
    Ok(a)
}

fn setvar(v: &str) -> Option<SetVar> {
    let (unset, v) = match v.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (name, value) = v.split_once('=').unwrap_or((v, "1"));
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("tx.")?.to_owned();
    if unset {
        return Some(SetVar::Unset(name));
    }
    Some(match value.as_bytes().first() {
        Some(b'+') => SetVar::Add(name, Template::parse(&value[1..])),
        Some(b'-') => SetVar::Sub(name, Template::parse(&value[1..])),
        _ => SetVar::Set(name, Template::parse(value)),
    })
}

/// Rule ids and ranges: `942100`, `942100-942199`, several separated by
/// spaces or commas.
pub(crate) fn ids(s: &str) -> Result<Ids, LoadError> {
    s.split([' ', ','])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let bad = || LoadError::Rule(format!("bad rule id {p:?}"));
            let (lo, hi) = p.split_once('-').unwrap_or((p, p));
            Ok(lo.trim().parse().map_err(|_| bad())?..=hi.trim().parse().map_err(|_| bad())?)
        })
        .collect()
}

fn ctl(v: &str) -> Result<Option<Ctl>, LoadError> {
    let Some((name, value)) = v.split_once('=') else {
        return Ok(None);
    };
    let target = |spec: &str| {
        let (var, sel) = spec.split_once(':').unwrap_or((spec, ""));
        let sel = (!sel.is_empty()).then(|| sel.to_ascii_lowercase());
        (Var::parse(var), sel)
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "ruleremovebyid" => Some(Ctl::RemoveRules(Which::Ids(ids(value)?))),
        "ruleremovebytag" => Some(Ctl::RemoveRules(Which::Tag(value.to_owned()))),
        "ruleremovetargetbyid" | "ruleremovetargetbytag" => {
            let Some((which, spec)) = value.split_once(';') else {
                return Ok(None);
            };
            let which = if name.eq_ignore_ascii_case("ruleremovetargetbyid") {
                Which::Ids(ids(which)?)
            } else {
                Which::Tag(which.to_owned())
            };
            let (var, sel) = target(spec);
            Some(Ctl::RemoveTarget(which, var, sel))
        }
        "ruleengine" if value.eq_ignore_ascii_case("off") => Some(Ctl::EngineOff),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_a_rule() {
        let (rule, link) = compile(
            Some("ARGS|!ARGS:pass|&TX:x|REQUEST_HEADERS:/^x-/|XML:/*"),
            "!@rx ^a",
            "id:5,phase:1,deny,t:none,t:lowercase,t:urlDecodeUni,capture,chain,setvar:'tx.score=+%{tx.critical}',\
             setvar:!tx.y,ctl:ruleRemoveTargetById=942100;ARGS:q,skipAfter:END,msg:'m',severity:'CRITICAL'",
            Path::new("."),
        )
        .unwrap();
        let rule = rule.unwrap();
        assert_eq!((rule.id, rule.phase, rule.deny), (5, 1, true));
        assert_eq!(rule.skip_after.as_deref(), Some("END"));
        assert!(link.negated && link.capture && link.chained);
        assert_eq!(link.transforms, [Transform::Lowercase, Transform::UrlDecodeUni]);
        assert_eq!(link.targets.len(), 4);
        assert_eq!(link.targets[0].not.len(), 1);
        assert!(link.targets[1].count);
        assert!(link.targets[2].selector.as_ref().unwrap().selects("X-Forwarded"));
        assert_eq!(link.targets[3].var, Var::Skipped);
        assert!(matches!(&link.setvars[0], SetVar::Add(n, _) if n == "score"));
        assert!(matches!(&link.setvars[1], SetVar::Unset(n) if n == "y"));
        assert!(matches!(&link.ctls[0], Ctl::RemoveTarget(Which::Ids(_), Var::Args, Some(s)) if s == "q"));
        assert_eq!(ids("1-3 7").unwrap(), vec![1..=3, 7..=7]);
    }
}
