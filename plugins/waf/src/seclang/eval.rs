//! Running the rules on one request, as ModSecurity does for phases 1 and
//! 2: rules in file order, chains, `skipAfter` to a marker, `setvar` on
//! the TX collection, `ctl` exclusions, and the verdict of a `deny` rule
//! (CRS's 949110 compares the anomaly score with the threshold).

use std::borrow::Cow;
use std::collections::HashMap;

/// Maps keyed by strings the client chose: foldhash, seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use super::request::{Pairs, RequestData};
use super::rule::{Ctl, Link, Rule, Selector, SetVar, Target, Var, Which};
use super::transform::Transform;
use super::{Entry, Hit, RuleSet, Verdict};

/// Matched data kept in a hit.
const SAMPLE: usize = 80;

/// Transformed request values by where they are (address, length).
type Transformed = Map<(usize, usize), Vec<u8>>;

/// One value a target stands for: borrowed from the request where it
/// can be, its full name (`ARGS:q`) made only when it matched.
struct Element<'r> {
    prefix: &'static str,
    /// The element's name in its collection; empty for a variable.
    name: Cow<'r, str>,
    value: Cow<'r, [u8]>,
}

impl Element<'_> {
    fn full_name(&self) -> String {
        match (self.prefix, self.name.as_ref()) {
            // MATCHED_VARS: the name is already whole.
            ("", name) => name.to_owned(),
            (prefix, "") if prefix != "TX" => prefix.to_owned(),
            (prefix, name) => format!("{prefix}:{name}"),
        }
    }
}

/// One transaction's state.
pub(crate) struct Tx<'r> {
    req: &'r RequestData,
    /// Phase 2 sees the body; phase 1 only the head.
    body_phase: bool,
    vars: Map<String, String>,
    ctls: Vec<Ctl>,
    matched: Vec<(String, Vec<u8>)>,
    hits: Vec<Hit>,
    /// Request values already transformed, by element and transformation
    /// list: CRS applies the same few lists to the same values in rule
    /// after rule.
    /// Keyed by where the value is in the request (it does not change
    /// while the rules run, and transformations depend on its bytes only).
    transformed: Map<Vec<Transform>, Transformed>,
}

impl<'r> Tx<'r> {
    pub(crate) fn new(req: &'r RequestData, ctls: Vec<Ctl>) -> Tx<'r> {
        Tx {
            req,
            body_phase: false,
            vars: Map::default(),
            ctls,
            matched: Vec::new(),
            hits: Vec::new(),
            transformed: Map::default(),
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

    /// Whether element `name` of target `t` is read by `rule`: its
    /// selector, the `!` exclusions and the `ctl` removals.
    fn selected(&self, t: &Target, rule: &Rule, name: &str) -> bool {
        t.selector.as_ref().is_none_or(|s| s.selects(name))
            && !t.not.iter().any(|s| s.selects(name))
            && !self.ctls.iter().any(|c| match c {
                Ctl::RemoveTarget(w, var, sel) => {
                    *var == t.var && applies(w, rule) && sel.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(name))
                }
                _ => false,
            })
    }

    /// The values a target stands for in this rule. Elements are
    /// selected before anything is copied.
    fn collect(&self, t: &Target, rule: &Rule) -> Vec<Element<'r>> {
        let r: &'r RequestData = self.req;
        let body = self.body_phase;
        static EMPTY: Pairs = Vec::new();
        let post: &'r Pairs = if body { &r.args_post } else { &EMPTY };
        let mut out = Vec::new();
        let mut pairs = |prefix: &'static str, lists: &[&'r Pairs], names: bool| {
            for (n, v) in lists.iter().flat_map(|p| p.iter()) {
                if self.selected(t, rule, n) {
                    let value = if names { n.as_bytes() } else { v.as_slice() };
                    out.push(Element {
                        prefix,
                        name: Cow::Borrowed(n.as_str()),
                        value: Cow::Borrowed(value),
                    });
                }
            }
        };
        match t.var {
            Var::Args => pairs("ARGS", &[&r.args_get, post], false),
            Var::ArgsNames => pairs("ARGS_NAMES", &[&r.args_get, post], true),
            Var::ArgsGet => pairs("ARGS_GET", &[&r.args_get], false),
            Var::ArgsGetNames => pairs("ARGS_GET_NAMES", &[&r.args_get], true),
            Var::ArgsPost => pairs("ARGS_POST", &[post], false),
            Var::ArgsPostNames => pairs("ARGS_POST_NAMES", &[post], true),
            Var::RequestHeaders => pairs("REQUEST_HEADERS", &[&r.headers], false),
            Var::RequestHeadersNames => pairs("REQUEST_HEADERS_NAMES", &[&r.headers], true),
            Var::RequestCookies => pairs("REQUEST_COOKIES", &[&r.cookies], false),
            Var::RequestCookiesNames => pairs("REQUEST_COOKIES_NAMES", &[&r.cookies], true),
            Var::Files if body => pairs("FILES", &[&r.files], false),
            Var::FilesNames if body => pairs("FILES_NAMES", &[&r.files], true),
            Var::MultipartPartHeaders if body => pairs("MULTIPART_PART_HEADERS", &[&r.part_headers], false),
            Var::Tx => {
                let tx = |n: &String| Element {
                    prefix: "TX",
                    name: Cow::Owned(n.clone()),
                    value: Cow::Owned(self.vars[n].clone().into_bytes()),
                };
                match &t.selector {
                    // The common case, `TX:paranoia_level`: one lookup.
                    Some(Selector::Name(n)) => {
                        if let Some((n, _)) = self.vars.get_key_value(n.as_str())
                            && self.selected(t, rule, n)
                        {
                            out.push(tx(n));
                        }
                    }
                    _ => {
                        let mut names: Vec<&String> = self.vars.keys().filter(|n| self.selected(t, rule, n)).collect();
                        names.sort();
                        out.extend(names.into_iter().map(tx));
                    }
                }
            }
            Var::MatchedVars => out.extend(self.matched.iter().map(|(n, v)| Element {
                prefix: "",
                name: Cow::Owned(n.clone()),
                value: Cow::Owned(v.clone()),
            })),
            Var::MatchedVarsNames => out.extend(self.matched.iter().map(|(n, _)| Element {
                prefix: "",
                name: Cow::Owned(n.clone()),
                value: Cow::Owned(n.clone().into_bytes()),
            })),
            _ => {
                if let Some((prefix, value)) = self.scalar(t.var) {
                    out.push(Element {
                        prefix,
                        name: Cow::Borrowed(""),
                        value: Cow::Owned(value),
                    });
                }
            }
        }
        if t.count {
            return vec![Element {
                prefix: "",
                name: Cow::Borrowed(""),
                value: Cow::Owned(out.len().to_string().into_bytes()),
            }];
        }
        out
    }

    /// The value of a variable that is not a collection.
    fn scalar(&self, var: Var) -> Option<(&'static str, Vec<u8>)> {
        let r = self.req;
        let body = self.body_phase;
        let v = |b: &[u8]| b.to_vec();
        Some(match var {
            Var::ArgsCombinedSize => {
                let post = if body { r.args_post.as_slice() } else { &[] };
                let size: usize = r.args_get.iter().chain(post).map(|(n, v)| n.len() + v.len()).sum();
                ("ARGS_COMBINED_SIZE", size.to_string().into_bytes())
            }
            Var::RequestUri => ("REQUEST_URI", v(r.uri.as_bytes())),
            Var::RequestUriRaw => ("REQUEST_URI_RAW", v(r.uri.as_bytes())),
            Var::RequestFilename => ("REQUEST_FILENAME", r.filename.clone()),
            Var::RequestBasename => {
                let base = r.filename.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
                ("REQUEST_BASENAME", v(base))
            }
            Var::QueryString => ("QUERY_STRING", v(r.query.as_bytes())),
            Var::RequestBody if body && !r.body.is_empty() => ("REQUEST_BODY", r.body.clone()),
            Var::RequestMethod => ("REQUEST_METHOD", v(r.method.as_bytes())),
            Var::RequestProtocol => ("REQUEST_PROTOCOL", v(r.protocol.as_bytes())),
            Var::RequestLine => ("REQUEST_LINE", self.request_line().into_bytes()),
            Var::FilesCombinedSize if body => ("FILES_COMBINED_SIZE", v(b"0")),
            Var::MatchedVar => ("MATCHED_VAR", self.matched.last()?.1.clone()),
            Var::MatchedVarName => ("MATCHED_VAR_NAME", self.matched.last()?.0.clone().into_bytes()),
            Var::RemoteAddr => ("REMOTE_ADDR", v(r.remote_addr.as_bytes())),
            Var::ReqbodyProcessor if !r.processor.is_empty() => ("REQBODY_PROCESSOR", v(r.processor.as_bytes())),
            Var::ReqbodyError if body => ("REQBODY_ERROR", v(if r.body_error { b"1" } else { b"0" })),
            _ => return None,
        })
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
            // Values that change during the transaction are not kept.
            let keep = !target.count
                && !link.transforms.is_empty()
                && !matches!(
                    target.var,
                    Var::Tx | Var::MatchedVar | Var::MatchedVarName | Var::MatchedVars | Var::MatchedVarsNames
                );
            for element in self.collect(target, rule) {
                let mut hit = None;
                let check = |v: &[u8], captures: &mut Vec<Vec<u8>>| {
                    let cap = (link.capture && !link.negated).then_some(captures);
                    link.operator.matches(v, &arg, cap) != link.negated
                };
                let value = &element.value;
                if link.multi_match {
                    let mut v = value.to_vec();
                    if check(&v, &mut captures) {
                        hit = Some(v.clone());
                    }
                    for t in &link.transforms {
                        v = t.apply(&v);
                        if hit.is_none() && check(&v, &mut captures) {
                            hit = Some(v.clone());
                        }
                    }
                } else if link.transforms.is_empty() {
                    if check(value, &mut captures) {
                        hit = Some(value.to_vec());
                    }
                } else {
                    let transform = |value: &[u8]| {
                        let (first, rest) = link.transforms.split_first().expect("not empty");
                        rest.iter().fold(first.apply(value), |v, t| t.apply(&v))
                    };
                    match value {
                        // Request values do not move while the rules run.
                        Cow::Borrowed(bytes) if keep => {
                            let chain = link.transforms.as_slice();
                            let key = (bytes.as_ptr() as usize, bytes.len());
                            let known = self.transformed.get(chain).is_some_and(|m| m.contains_key(&key));
                            if !known {
                                let v = transform(bytes);
                                self.transformed.entry(chain.to_vec()).or_default().insert(key, v);
                            }
                            let v = &self.transformed[chain][&key];
                            if check(v, &mut captures) {
                                hit = Some(v.clone());
                            }
                        }
                        _ => {
                            let v = transform(value);
                            if check(&v, &mut captures) {
                                hit = Some(v);
                            }
                        }
                    }
                }
                if let Some(v) = hit {
                    matched.push((element.full_name(), v));
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
