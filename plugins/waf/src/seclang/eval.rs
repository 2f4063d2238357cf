//! Running the rules on one request, as ModSecurity does for phases 1 and
//! 2: rules in file order, chains, `skipAfter` to a marker, `setvar` on
//! the TX collection, `ctl` exclusions, and the verdict of a `deny` rule
//! (CRS's 949110 compares the anomaly score with the threshold).

use std::collections::HashMap;

use super::request::{Pairs, RequestData};
use super::rule::{Ctl, Link, Rule, SetVar, Target, Var, Which};
use super::{Entry, Hit, RuleSet, Verdict};

/// Matched data kept in a hit.
const SAMPLE: usize = 80;

/// One transaction's state.
pub(crate) struct Tx<'r> {
    req: &'r RequestData,
    /// Phase 2 sees the body; phase 1 only the head.
    body_phase: bool,
    vars: HashMap<String, String>,
    ctls: Vec<Ctl>,
    matched: Vec<(String, Vec<u8>)>,
    hits: Vec<Hit>,
}

impl<'r> Tx<'r> {
    pub(crate) fn new(req: &'r RequestData, ctls: Vec<Ctl>) -> Tx<'r> {
        Tx {
            req,
            body_phase: false,
            vars: HashMap::new(),
            ctls,
            matched: Vec::new(),
            hits: Vec::new(),
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(tx) = name.strip_prefix("tx.") {
            return self.vars.get(tx).cloned();
        }
        match name {
            "matched_var" => self.matched.last().map(|m| String::from_utf8_lossy(&m.1).into_owned()),
            "matched_var_name" => self.matched.last().map(|m| m.0.clone()),
            "remote_addr" => Some(self.req.remote_addr.clone()),
            "request_line" => Some(self.request_line()),
            _ => name.strip_prefix("request_headers.").and_then(|h| {
                self.req
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(h))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            }),
        }
    }

    fn request_line(&self) -> String {
        format!("{} {} {}", self.req.method, self.req.uri, self.req.protocol)
    }

    fn removed(&self, rule: &Rule) -> bool {
        self.ctls
            .iter()
            .any(|c| matches!(c, Ctl::RemoveRules(w) if applies(w, rule)))
    }

    /// The values a target stands for in this rule: (full name, value).
    fn collect(&self, t: &Target, rule: &Rule) -> Vec<(String, Vec<u8>)> {
        let r = self.req;
        let body = self.body_phase;
        let empty = Pairs::new();
        let post = if body { &r.args_post } else { &empty };
        let named = |prefix: &str, pairs: &[&Pairs]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .flat_map(|p| p.iter())
                .map(|(n, v)| (format!("{prefix}:{n}"), v.clone()))
                .collect()
        };
        let names = |prefix: &str, pairs: &[&Pairs]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .flat_map(|p| p.iter())
                .map(|(n, _)| (format!("{prefix}:{n}"), n.clone().into_bytes()))
                .collect()
        };
        let one = |name: &str, v: &[u8]| vec![(name.to_owned(), v.to_vec())];
        let mut values = match t.var {
            Var::Args => named("ARGS", &[&r.args_get, post]),
            Var::ArgsNames => names("ARGS_NAMES", &[&r.args_get, post]),
            Var::ArgsGet => named("ARGS_GET", &[&r.args_get]),
            Var::ArgsGetNames => names("ARGS_GET_NAMES", &[&r.args_get]),
            Var::ArgsPost => named("ARGS_POST", &[post]),
            Var::ArgsPostNames => names("ARGS_POST_NAMES", &[post]),
            Var::ArgsCombinedSize => {
                let size: usize = r.args_get.iter().chain(post).map(|(n, v)| n.len() + v.len()).sum();
                one("ARGS_COMBINED_SIZE", size.to_string().as_bytes())
            }
            Var::RequestHeaders => named("REQUEST_HEADERS", &[&r.headers]),
            Var::RequestHeadersNames => names("REQUEST_HEADERS_NAMES", &[&r.headers]),
            Var::RequestCookies => named("REQUEST_COOKIES", &[&r.cookies]),
            Var::RequestCookiesNames => names("REQUEST_COOKIES_NAMES", &[&r.cookies]),
            Var::RequestUri => one("REQUEST_URI", r.uri.as_bytes()),
            Var::RequestUriRaw => one("REQUEST_URI_RAW", r.uri.as_bytes()),
            Var::RequestFilename => one("REQUEST_FILENAME", &r.filename),
            Var::RequestBasename => {
                let base = r.filename.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
                one("REQUEST_BASENAME", base)
            }
            Var::QueryString => one("QUERY_STRING", r.query.as_bytes()),
            Var::RequestBody if body && !r.body.is_empty() => one("REQUEST_BODY", &r.body),
            Var::RequestMethod => one("REQUEST_METHOD", r.method.as_bytes()),
            Var::RequestProtocol => one("REQUEST_PROTOCOL", r.protocol.as_bytes()),
            Var::RequestLine => one("REQUEST_LINE", self.request_line().as_bytes()),
            Var::Files if body => named("FILES", &[&r.files]),
            Var::FilesNames if body => names("FILES_NAMES", &[&r.files]),
            Var::FilesCombinedSize if body => one("FILES_COMBINED_SIZE", b"0"),
            Var::MultipartPartHeaders if body => named("MULTIPART_PART_HEADERS", &[&r.part_headers]),
            Var::Tx => {
                let mut v: Vec<_> = self
                    .vars
                    .iter()
                    .map(|(n, v)| (format!("TX:{n}"), v.clone().into_bytes()))
                    .collect();
                v.sort();
                v
            }
            Var::MatchedVar => self
                .matched
                .last()
                .map(|m| vec![("MATCHED_VAR".into(), m.1.clone())])
                .unwrap_or_default(),
            Var::MatchedVarName => self
                .matched
                .last()
                .map(|m| vec![("MATCHED_VAR_NAME".into(), m.0.clone().into_bytes())])
                .unwrap_or_default(),
            Var::MatchedVars => self.matched.clone(),
            Var::MatchedVarsNames => self
                .matched
                .iter()
                .map(|(n, _)| (n.clone(), n.clone().into_bytes()))
                .collect(),
            Var::RemoteAddr => one("REMOTE_ADDR", r.remote_addr.as_bytes()),
            Var::ReqbodyProcessor if !r.processor.is_empty() => one("REQBODY_PROCESSOR", r.processor.as_bytes()),
            Var::ReqbodyError if body => one("REQBODY_ERROR", if r.body_error { b"1" } else { b"0" }),
            _ => Vec::new(),
        };
        let element = |full: &str| full.split_once(':').map_or("", |(_, n)| n).to_owned();
        if let Some(sel) = &t.selector {
            values.retain(|(n, _)| sel.selects(&element(n)));
        }
        values.retain(|(n, _)| {
            let e = element(n);
            !t.not.iter().any(|s| s.selects(&e))
                && !self.ctls.iter().any(|c| match c {
                    Ctl::RemoveTarget(w, var, sel) => {
                        *var == t.var && applies(w, rule) && sel.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(&e))
                    }
                    _ => false,
                })
        });
        if t.count {
            return vec![(String::new(), values.len().to_string().into_bytes())];
        }
        values
    }

    /// Whether one link matches; its matches become MATCHED_VAR(S) and
    /// its captures TX:0-9.
    fn link(&mut self, link: &Link, rule: &Rule) -> bool {
        // SecAction: no variables, always applies.
        if link.targets.is_empty() {
            return true;
        }
        let arg = link
            .operator
            .template()
            .map(|t| t.expand(|v| self.lookup(v)))
            .unwrap_or_default();
        let mut matched = Vec::new();
        let mut captures = Vec::new();
        for target in &link.targets {
            for (name, value) in self.collect(target, rule) {
                let mut hit = None;
                let check = |v: &[u8], captures: &mut Vec<Vec<u8>>| {
                    let cap = (link.capture && !link.negated).then_some(captures);
                    link.operator.matches(v, &arg, cap) != link.negated
                };
                if link.multi_match {
                    let mut v = value.clone();
                    if check(&v, &mut captures) {
                        hit = Some(v.clone());
                    }
                    for t in &link.transforms {
                        v = t.apply(&v);
                        if hit.is_none() && check(&v, &mut captures) {
                            hit = Some(v.clone());
                        }
                    }
                } else {
                    let v = link.transforms.iter().fold(value, |v, t| t.apply(&v));
                    if check(&v, &mut captures) {
                        hit = Some(v);
                    }
                }
                if let Some(v) = hit {
                    matched.push((name, v));
                }
            }
        }
        if matched.is_empty() {
            return false;
        }
        if link.capture {
            for (i, c) in captures.iter().enumerate() {
                self.vars.insert(i.to_string(), String::from_utf8_lossy(c).into_owned());
            }
        }
        self.matched = matched;
        true
    }

    /// Runs a rule; true when it (and its chain) matched.
    fn rule(&mut self, rule: &Rule) -> bool {
        for link in &rule.links {
            if !self.link(link, rule) {
                return false;
            }
        }
        for link in &rule.links {
            for sv in &link.setvars {
                self.setvar(sv);
            }
            self.ctls.extend(link.ctls.iter().cloned());
        }
        if rule.severity.is_some() {
            let (var, data) = self
                .matched
                .last()
                .map(|(n, v)| {
                    let s = String::from_utf8_lossy(v);
                    (n.clone(), s[..s.floor_char_boundary(SAMPLE)].to_owned())
                })
                .unwrap_or_default();
            self.hits.push(Hit {
                id: rule.id,
                msg: rule.msg.expand(|v| self.lookup(v)),
                var,
                data,
            });
        }
        true
    }

    fn setvar(&mut self, sv: &SetVar) {
        let num = |s: &str| s.trim().parse::<i64>().unwrap_or(0);
        match sv {
            SetVar::Set(n, t) => {
                let v = t.expand(|v| self.lookup(v));
                self.vars.insert(n.clone(), v);
            }
            SetVar::Add(n, t) | SetVar::Sub(n, t) => {
                let delta = num(&t.expand(|v| self.lookup(v)));
                let old = self.vars.get(n).map_or(0, |v| num(v));
                let new = if matches!(sv, SetVar::Add(..)) {
                    old + delta
                } else {
                    old - delta
                };
                self.vars.insert(n.clone(), new.to_string());
            }
            SetVar::Unset(n) => {
                self.vars.remove(n);
            }
        }
    }

    /// Phases 1 and 2 of `set`.
    pub(crate) fn run(mut self, set: &RuleSet) -> Verdict {
        let mut blocked = None;
        'phases: for (phase, entries) in set.phases.iter().enumerate() {
            self.body_phase = phase == 1;
            let mut i = 0;
            while i < entries.len() {
                let Entry::Rule(rule) = &entries[i] else {
                    i += 1;
                    continue;
                };
                i += 1;
                if self.removed(rule) || !self.rule(rule) {
                    continue;
                }
                if self.ctls.iter().any(|c| matches!(c, Ctl::EngineOff)) {
                    blocked = None;
                    break 'phases;
                }
                if rule.deny {
                    blocked = Some(rule.id);
                    break 'phases;
                }
                if rule.allow {
                    break 'phases;
                }
                if let Some(marker) = &rule.skip_after {
                    i = entries[i..]
                        .iter()
                        .position(|e| matches!(e, Entry::Marker(m) if m == marker))
                        .map_or(entries.len(), |p| i + p + 1);
                }
            }
        }
        let score = self.vars.get("anomaly_score").and_then(|s| s.parse().ok()).unwrap_or(0);
        Verdict {
            denied_by: blocked,
            score,
            hits: self.hits,
        }
    }
}

fn applies(which: &Which, rule: &Rule) -> bool {
    match which {
        Which::Ids(ids) => ids.iter().any(|r| r.contains(&rule.id)),
        Which::Tag(tag) => rule.tags.iter().any(|t| t == tag),
    }
}
