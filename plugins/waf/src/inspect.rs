//! Inspection: every value of a request (path, arguments, cookies,
//! headers, a bounded body parsed as form, JSON, XML or multipart) made
//! canonical and run through the rules, libinjection and the protocol
//! checks. Pure: no I/O, no clock, so the corpus test and the benchmark
//! run exactly what the server runs.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use http::{HeaderMap, HeaderName, Method};
use regex::Regex;
use regex::bytes::{Regex as BytesRegex, RegexBuilder};

use crate::normalize::{canonical, resolve_path};
use crate::rules::{Category, Part, RULES};

/// What set the WAF off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Rule id (`sqli-union`, `libinjection-sqli`, `protocol-get-body`...).
    pub rule: &'static str,
    /// Its family.
    pub category: Category,
    /// Which part of the request (`arg`, `header`...).
    pub part: Part,
    /// The argument, header or cookie name, when there is one.
    pub name: String,
    /// The start of the offending value (canonical form, at most 80 chars).
    pub sample: String,
}

/// A request as the WAF sees it: the head, and the body's first bytes.
pub struct Subject<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Path as sent (still percent-encoded).
    pub path: &'a str,
    /// Query string as sent, without `?`.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The first `body_limit` bytes of the body.
    pub body: &'a [u8],
}

/// Which categories run, and which rule ids are off.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    /// Bit set of disabled [`Category`]s.
    pub off_categories: u16,
    /// Disabled rule ids.
    pub off_rules: Vec<String>,
}

impl Switches {
    fn on(&self, category: Category, rule: &str) -> bool {
        self.off_categories & category.bit() == 0 && !self.off_rules.iter().any(|r| r == rule)
    }
}

/// The compiled rule set; built once per plugin instance.
pub struct Engine {
    /// Header values already inspected and found clean.
    clean_headers: CleanCache,
    /// Trigger words of the rules for the path, the user agent and
    /// everything else: each scan only looks for words that can matter
    /// where the value came from.
    path_triggers: Triggers,
    agent_triggers: Triggers,
    other_triggers: Triggers,
    regexes: Vec<BytesRegex>,
    scanners: AhoCorasick,
    probe_paths: BytesRegex,
    restricted_ext: BytesRegex,
    content_type: Regex,
    rfi_params: Regex,
}

/// User-agent fragments of attack tools (lower case).
const SCANNER_AGENTS: &[&str] = &[
    "havij",
    "nessus",
    "zgrab",
    "nikto",
    "sqlmap",
    "nmap",
    "masscan",
    "acunetix",
    "netsparker",
    "w3af",
    "wpscan",
    "dirbuster",
    "gobuster",
    "dirb/",
    "wfuzz",
    "ffuf",
    "nuclei",
    "openvas",
    "arachni",
    "skipfish",
    "zmeu",
    "morfeus",
    "jaascois",
    "paros",
    "webinspect",
    "appscan",
    "commix",
    "xsser",
    "fimap",
    "sqlninja",
    "webshag",
    "wikto",
    "bsqlbf",
    "blackwidow",
    "black widow",
    "cgichk",
    "absinthe",
    "crimscanner",
    "datacha0s",
    "dotdotpwn",
    "grendel-scan",
    "jbrofuzz",
    "jorgee",
    "mysqloit",
    "n-stealth",
    "nasl",
    "nsauditor",
    "pmafind",
    "springenwerk",
    "teh forest lobster",
    "toata",
    "voideye",
    "webvulnscan",
    "x-scan",
    "brutus",
    "hydra",
    "medusa",
    "pangolin",
    "netlab360",
    "nmap scripting engine",
    "internet ninja",
    "inspath",
    "floodgate",
    "webbandit",
    "vega/",
    "httprint",
    "whatweb",
    "censysinspect",
    "interactsh",
    "jndi",
    "muieblackcat",
    "fuzz faster u fool",
];

/// Rules implemented in code rather than in the rule table, with their
/// families; with `RULES` these are every id `disabled_rules` accepts.
pub const CODE_RULES: &[(&str, Category)] = &[
    ("libinjection-sqli", Category::Sqli),
    ("libinjection-xss", Category::Xss),
    ("rfi-known-parameter", Category::Rfi),
    ("scanner-user-agent", Category::Scanner),
    ("scanner-probe-path", Category::Scanner),
    ("protocol-nul-byte", Category::Protocol),
    ("protocol-crlf-in-path", Category::Protocol),
    ("protocol-restricted-extension", Category::Protocol),
    ("protocol-proxy-unix-socket", Category::Protocol),
    ("protocol-get-with-body", Category::Protocol),
    ("protocol-bad-content-type", Category::Protocol),
    ("protocol-content-type-smuggling", Category::Protocol),
    ("protocol-duplicate-charset", Category::Protocol),
    ("protocol-bad-charset", Category::Protocol),
    ("protocol-long-accept-encoding", Category::Protocol),
    ("protocol-legacy-cookie", Category::Protocol),
    ("protocol-multipart-name", Category::Protocol),
];

/// The family of a rule id, or `None` if no rule has that id.
pub fn rule_category(id: &str) -> Option<Category> {
    RULES
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.category)
        .or_else(|| CODE_RULES.iter().find(|(r, _)| *r == id).map(|(_, c)| *c))
}

/// Largest value inspected; longer ones are cut (the bound on work per
/// request, with the body limit).
const MAX_VALUE: usize = 16 * 1024;

/// Arguments and headers inspected per request, at most.
const MAX_VALUES: usize = 512;

impl Engine {
    /// Compiles the rules. The rules are constants, so a failure is a bug
    /// caught by the tests, not an operator error.
    pub fn new() -> Self {
        assert!(
            RULES.len() < SQL_GATE as usize,
            "trigger bit sets hold 126 rules and 2 gates"
        );
        let gates = [(SQL_GATE, SQL_WORDS), (XSS_GATE, &["script:"][..])];
        // ASCII classes and byte matching: canonical values are mostly
        // ASCII, and Unicode-aware `\b`/`\s`/`\w` keep the lazy DFA from
        // running (it falls back to a much slower engine).
        let regexes = RULES.iter().map(|r| ascii_regex(r.pattern)).collect();
        Engine {
            clean_headers: CleanCache::new(),
            path_triggers: Triggers::new(|p| p == Part::Path, &[]),
            agent_triggers: Triggers::new(|p| p == Part::UserAgent, &[]),
            other_triggers: Triggers::new(|p| p != Part::Path && p != Part::UserAgent, &gates),
            regexes,
            scanners: dfa(SCANNER_AGENTS.iter().copied()),
            probe_paths: ascii_regex(
                r"^/(?:phpmyadmin|pma|myadmin|mysqladmin|dbadmin|sqladmin)\d*/|^/cgi-bin/(?:php\d?|test-cgi|printenv|bash|sh)\b|^/vendor/phpunit/.*eval-stdin\.php|^/_ignition/execute-solution|^/(?:hnap1|boaform|wls-wsat|solr/admin/cores|actuator/(?:env|heapdump|gateway))\b|^/(?:shell|cmd|c99|r57|wso|b374k|alfa)\.php$|^/manager/html$|^/jmx-console|^/invoker/jmxinvokerservlet|^/console/(?:css|login)/.*\.portal",
            )
            ,
            restricted_ext: ascii_regex(
                r"\.(?:bak|backup|old|orig|original|save|swp|swo|tmp|temp|sql|sqlite3?|db|dbf|mdb|accdb|rdb|ldb|mdf|ldf|log|ini|conf|cnf|cfg|config|dat|inc|pol|sys|dll|exe|bat|cmd|ps1|vbs|vbe|wsf|cer|crt|key|pem|pfx|p12|jks|keystore|asa|asax|ascx|axd|backup|cs|csproj|vb|vbproj|resources|resx|idq|printer|htr|htw|ida|lnk|licx|rem|dist|kdbx|ovpn|npmrc|history|passwd|pwd|pass|secret|env|yml|yaml|toml|lock|git|svn|hg)$|[^/]\.\w+~(?:/|$)|~$|\.(?:php|asp|aspx|jsp|cgi|pl|py)\.(?:bak|old|orig|save|swp|txt|tmp|\d+)$",
            )
            ,
            rfi_params: Regex::new(
                r"^(?:mosconfig_absolute_path|_conf\[path\]|_server\[document_root\]|gallery_basedir|path\[docroot\]|appserv_root|config\[root_dir\]|phpbb_root_path|include_path|base_?path|root_?path|abs_?path|dir_?path|template_?path|lang_?path)$",
            )
            .expect("rfi parameters compile"),
            content_type: Regex::new(
                r#"^[\w!#$&^.+-]+/[\w!#$&^.+*-]+(?:\s*;\s*[\w!#$&^.+-]+=(?:"[^"]*"|[^\s;"]+))*\s*;?\s*$"#,
            )
            .expect("content type compiles"),
        }
    }

    /// Inspects one request; the first finding wins.
    pub fn inspect(&self, req: &Subject<'_>, on: &Switches) -> Option<Finding> {
        if let Some(f) = self.protocol(req, on) {
            return Some(f);
        }
        let json_request = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let mut visitor = Visitor {
            engine: self,
            cx: Context { on, json_request },
            budget: MAX_VALUES,
            found: None,
        };
        values(req, &mut visitor);
        visitor.found
    }

    /// Checks one value as sent (`raw`) in every decoded form an
    /// application might see: canonical, then HTML entities and JS
    /// escapes resolved, then base64 (for values that are base64).
    fn check(&self, part: Part, name: &str, raw: &[u8], plus: bool, cx: &Context<'_>) -> Option<Finding> {
        let raw = &raw[..raw.len().min(MAX_VALUE)];
        let canon = canonical(raw, plus);
        if let Some(f) = self.check_canonical(part, name, &canon, cx) {
            return Some(f);
        }
        if let Some(decoded) = unescape_entities_and_js(&canon)
            && let Some(f) = self.check_canonical(part, name, &decoded, cx)
        {
            return Some(f);
        }
        if let Some(decoded) = base64_text(raw) {
            let canon = canonical(decoded.as_bytes(), false);
            return self.check_canonical(part, name, &canon, cx);
        }
        None
    }

    /// Runs the rules that apply to one canonical value.
    fn check_canonical(&self, part: Part, name: &str, value: &str, cx: &Context<'_>) -> Option<Finding> {
        let on = cx.on;
        let value = cut(value, MAX_VALUE);
        if value.is_empty() {
            return None;
        }
        let hit = |rule: &'static str, category| {
            Some(Finding {
                rule,
                category,
                part,
                name: cut(name, 80).to_owned(),
                sample: cut(value, 80).to_owned(),
            })
        };
        let mut woken: u128 = 0;
        let triggers = match part {
            Part::Path => &self.path_triggers,
            Part::UserAgent => &self.agent_triggers,
            _ => &self.other_triggers,
        };
        for m in triggers.words.find_overlapping_iter(value) {
            woken |= triggers.rules[m.pattern().as_usize()];
        }
        let gates = woken;
        woken &= !(1 << SQL_GATE | 1 << XSS_GATE);
        while woken != 0 {
            let i = woken.trailing_zeros() as usize;
            woken &= woken - 1;
            let rule = &RULES[i];
            if rule.parts.has(part)
                && on.on(rule.category, rule.id)
                && !(cx.json_request && rule.id == "protocol-unicode-escape")
                && self.regexes[i].is_match(value.as_bytes())
            {
                return hit(rule.id, rule.category);
            }
        }
        match part {
            Part::UserAgent if on.on(Category::Scanner, "scanner-user-agent") && self.scanners.is_match(value) => {
                return hit("scanner-user-agent", Category::Scanner);
            }
            Part::Arg
                if on.on(Category::Rfi, "rfi-known-parameter")
                    && value.as_bytes().windows(3).any(|w| w == b"://")
                    && self.rfi_params.is_match(name) =>
            {
                return hit("rfi-known-parameter", Category::Rfi);
            }
            Part::Path => return None,
            _ => {}
        }
        // A browser's user agent is full of `;` and `()`: tokenize it only
        // when it carries a quote or markup.
        let agent = matches!(part, Part::UserAgent);
        let marks = Marks::of(value);
        if on.on(Category::Sqli, "libinjection-sqli")
            && (if agent {
                value.contains(['\'', '"'])
            } else {
                gates & 1 << SQL_GATE != 0 || marks.sql
            })
            && libinjection_sqli(value)
        {
            return hit("libinjection-sqli", Category::Sqli);
        }
        if on.on(Category::Xss, "libinjection-xss")
            && (if agent {
                value.contains('<')
            } else {
                gates & 1 << XSS_GATE != 0 || marks.xss
            })
            && libinjectionrs::detect_xss(value.as_bytes()).is_injection()
        {
            return hit("libinjection-xss", Category::Xss);
        }
        None
    }

    /// Request-level protocol checks: things no single value shows.
    fn protocol(&self, req: &Subject<'_>, on: &Switches) -> Option<Finding> {
        let finding = |rule: &'static str, category: Category, part: Part, name: &str, sample: &str| {
            on.on(category, rule).then(|| Finding {
                rule,
                category,
                part,
                name: name.to_owned(),
                sample: cut(sample, 80).to_owned(),
            })
        };
        let header = |name: http::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
        let p = Category::Protocol;

        let raw_target = [req.path, req.query.unwrap_or("")];
        for raw in raw_target {
            if contains_ci(raw, "%00") {
                return finding("protocol-nul-byte", p, Part::Path, "", raw);
            }
        }
        let path = canonical(req.path.as_bytes(), false);
        if path.contains(['\r', '\n']) {
            return finding("protocol-crlf-in-path", p, Part::Path, "", &path);
        }
        // Already resolved unless it has dot segments, backslashes or `//`.
        let resolved = if path.contains(['.', '\\']) || path.as_bytes().windows(2).any(|w| w == b"//") {
            Cow::Owned(resolve_path(&path))
        } else {
            Cow::Borrowed(&*path)
        };
        if path.contains(['.', '~'])
            && (self.restricted_ext.is_match(resolved.as_bytes()) || self.restricted_ext.is_match(path.as_bytes()))
        {
            return finding("protocol-restricted-extension", p, Part::Path, "", &path);
        }
        if on.on(Category::Scanner, "scanner-probe-path") && self.probe_paths.is_match(resolved.as_bytes()) {
            return Some(Finding {
                rule: "scanner-probe-path",
                category: Category::Scanner,
                part: Part::Path,
                name: String::new(),
                sample: cut(&resolved, 80).to_owned(),
            });
        }
        if contains_ci(req.query.unwrap_or(""), "unix:") && req.query.is_some_and(|q| q.contains('|')) {
            return finding("protocol-proxy-unix-socket", p, Part::Arg, "", req.query.unwrap_or(""));
        }
        let has_body = !req.body.is_empty() || header(http::header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0");
        if has_body && (req.method == Method::GET || req.method == Method::HEAD) {
            return finding("protocol-get-with-body", p, Part::Body, "", "");
        }
        if let Some(ct) = header(http::header::CONTENT_TYPE) {
            let lower = ct.to_ascii_lowercase();
            if !self.content_type.is_match(&lower) {
                return finding("protocol-bad-content-type", p, Part::Header, "content-type", ct);
            }
            let media_types =
                lower.matches('/').count() - lower.matches("boundary=").count().min(lower.matches('/').count());
            if media_types > 1 || (lower.contains("boundary") && !lower.starts_with("multipart/")) {
                return finding("protocol-content-type-smuggling", p, Part::Header, "content-type", ct);
            }
            if lower.matches("charset").count() > 1 {
                return finding("protocol-duplicate-charset", p, Part::Header, "content-type", ct);
            }
            if let Some(cs) = charset(&lower)
                && !allowed_charset(cs)
            {
                return finding("protocol-bad-charset", p, Part::Header, "content-type", ct);
            }
        }
        if let Some(accept) = header(http::header::ACCEPT)
            && contains_ci(accept, "charset")
        {
            let lower = accept.to_ascii_lowercase();
            for range in lower.split(',') {
                if let Some(cs) = charset(range)
                    && !allowed_charset(cs)
                {
                    return finding("protocol-bad-charset", p, Part::Header, "accept", accept);
                }
            }
        }
        if header(http::header::ACCEPT_ENCODING).is_some_and(|v| v.len() > 100) {
            return finding("protocol-long-accept-encoding", p, Part::Header, "accept-encoding", "");
        }
        for cookie in req.headers.get_all(http::header::COOKIE) {
            if cookie.as_bytes().starts_with(b"$Version") || contains_ci(cookie.to_str().unwrap_or(""), "; $version") {
                return finding("protocol-legacy-cookie", p, Part::Cookie, "$Version", "");
            }
        }
        None
    }
}

/// Header values (user agents, cookies, referers) recur from request to
/// request; one found clean with every rule on needs no second look.
/// Bounded, and keyed by SipHash with a per-process random key, so a
/// client cannot craft a value whose key collides with a clean one.
struct CleanCache {
    seen: quick_cache::sync::Cache<u64, ()>,
    hasher: std::hash::RandomState,
}

impl CleanCache {
    fn new() -> Self {
        CleanCache {
            seen: quick_cache::sync::Cache::new(16_384),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn key(&self, name: &str, value: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((name, value))
    }

    fn contains(&self, key: u64) -> bool {
        self.seen.get(&key).is_some()
    }

    fn insert(&self, key: u64) {
        self.seen.insert(key, ());
    }
}

/// One Aho-Corasick automaton over rules' trigger words, and for each
/// word the rules it wakes (a bit set over `RULES`, plus the gate bits).
struct Triggers {
    words: AhoCorasick,
    rules: Vec<u128>,
}

impl Triggers {
    /// The triggers of the rules that apply to a part `wanted` accepts.
    fn new(wanted: impl Fn(Part) -> bool, gates: &[(u32, &[&'static str])]) -> Self {
        const PARTS: [Part; 9] = [
            Part::Path,
            Part::ArgName,
            Part::Arg,
            Part::Cookie,
            Part::Header,
            Part::UserAgent,
            Part::Referer,
            Part::Filename,
            Part::Body,
        ];
        let mut words: Vec<&str> = Vec::new();
        let mut rules: Vec<u128> = Vec::new();
        let applicable = RULES
            .iter()
            .enumerate()
            .filter(|(_, r)| PARTS.iter().any(|p| wanted(*p) && r.parts.has(*p)))
            .map(|(i, r)| (i as u32, r.triggers));
        for (bit, triggers) in applicable.chain(gates.iter().copied()) {
            for t in triggers {
                let at = match words.iter().position(|w| w == t) {
                    Some(at) => at,
                    None => {
                        words.push(t);
                        rules.push(0);
                        words.len() - 1
                    }
                };
                rules[at] |= 1 << bit;
            }
        }
        // A DFA: more memory than an NFA, but this scan of every value is
        // the hot loop of inspection.
        let words = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&words)
            .expect("trigger words compile");
        Triggers { words, rules }
    }
}

/// A regex over bytes with ASCII classes (see the rules' regexes).
fn ascii_regex(pattern: &str) -> BytesRegex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

/// A DFA-backed matcher for a fixed word list.
fn dfa<I: IntoIterator<Item = &'static str>>(words: I) -> AhoCorasick {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .expect("word lists compile")
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

/// The charset parameter of a media type or media range.
fn charset(media: &str) -> Option<&str> {
    let at = media.find("charset")?;
    let rest = media[at + 7..].trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().trim_start_matches('"');
    let end = rest.find(['"', ';', ',', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Charsets a browser or API client sends; others (UTF-7, UTF-16, EBCDIC
/// code pages) are how filters get bypassed.
fn allowed_charset(cs: &str) -> bool {
    matches!(cs, "utf-8" | "utf8" | "us-ascii" | "ascii" | "latin1" | "*" | "")
        || cs.starts_with("iso-8859-")
        || cs.starts_with("windows-125")
        || matches!(
            cs,
            "shift_jis" | "euc-jp" | "euc-kr" | "gb2312" | "gbk" | "gb18030" | "big5" | "koi8-r" | "koi8-u"
        )
}

/// `value` with HTML character references (`&lt;`, `&#36;`, `&colon;`,
/// `&tab;`...) and JavaScript escapes (`\\u0041`, `\\x41`) resolved and
/// the whitespace they can smuggle in removed; `None` if it has neither.
fn unescape_entities_and_js(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let entities = bytes.contains(&b'&') && bytes.contains(&b';');
    let escapes = bytes.windows(2).any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'x'));
    if !entities && !escapes {
        return None;
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(['&', '\\']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (c, used) = if rest.starts_with('&') {
            entity(rest)
        } else {
            js_escape(rest)
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[..used]),
        }
        rest = &rest[used..];
    }
    out.push_str(rest);
    out.retain(|c| !matches!(c, '\t' | '\n' | '\r' | '\u{b}' | '\u{c}'));
    Some(out)
}

/// One HTML character reference at the start of `s`: the char and the
/// bytes it took (`None, 1` when it is not one).
fn entity(s: &str) -> (Option<char>, usize) {
    let end = s[..s.floor_char_boundary(12)].find(';');
    let Some(end) = end else {
        return (None, 1);
    };
    let name = &s[1..end];
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "colon" => Some(':'),
        "tab" => Some('\t'),
        "newline" => Some('\n'),
        "lpar" => Some('('),
        "rpar" => Some(')'),
        "lbrace" | "lcub" => Some('{'),
        "rbrace" | "rcub" => Some('}'),
        "lsqb" | "lbrack" => Some('['),
        "rsqb" | "rbrack" => Some(']'),
        "sol" => Some('/'),
        "bsol" => Some('\\'),
        "dollar" => Some('$'),
        "num" => Some('#'),
        "period" => Some('.'),
        "comma" => Some(','),
        "semi" => Some(';'),
        "equals" => Some('='),
        "plus" => Some('+'),
        "excl" => Some('!'),
        "grave" => Some('`'),
        n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16).ok().and_then(char::from_u32),
        n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
        _ => None,
    };
    match c {
        Some(c) => (Some(c), end + 1),
        None => (None, 1),
    }
}

/// One JavaScript escape (`\\u0041`, `\\u{41}`, `\\x41`) at the start of `s`.
fn js_escape(s: &str) -> (Option<char>, usize) {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| s.get(r).and_then(|h| u32::from_str_radix(h, 16).ok());
    match b.get(1) {
        Some(b'u') if b.get(2) == Some(&b'{') => match s[3..].find('}') {
            Some(close) if close <= 6 => (hex(3..3 + close).and_then(char::from_u32), 4 + close),
            _ => (None, 1),
        },
        Some(b'u') => match hex(2..6).and_then(char::from_u32) {
            Some(c) => (Some(c), 6),
            None => (None, 1),
        },
        Some(b'x') => match hex(2..4).and_then(char::from_u32) {
            Some(c) => (Some(c), 4),
            None => (None, 1),
        },
        _ => (None, 1),
    }
}

/// The text a base64 value stands for, when the value is base64 (16+
/// chars of its alphabet) and decodes to readable text: attackers wrap
/// payloads in base64 for apps that decode them.
fn base64_text(raw: &[u8]) -> Option<String> {
    let raw = raw.trim_ascii();
    if raw.len() < 16 || raw.len() > 8192 {
        return None;
    }
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=' | b'%');
    if !raw.iter().all(alphabet) || !raw.iter().any(u8::is_ascii_uppercase) || !raw.iter().any(u8::is_ascii_lowercase) {
        return None;
    }
    let raw = match raw.iter().position(|&b| b == b'%') {
        // `%3D` padding in a query string.
        Some(_) => crate::normalize::percent_decode(raw)?,
        None => raw.to_vec(),
    };
    let body = raw
        .strip_suffix(b"==")
        .or_else(|| raw.strip_suffix(b"="))
        .unwrap_or(&raw);
    if !body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
    {
        return None;
    }
    let has_upper = body.iter().any(u8::is_ascii_uppercase);
    let has_lower = body.iter().any(u8::is_ascii_lowercase);
    if !(has_upper && has_lower) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in body {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            _ => 63,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    let printable = text.chars().filter(|c| !c.is_control() || c.is_whitespace()).count();
    (printable * 10 >= text.chars().count() * 9).then_some(text)
}

/// libinjection's verdict, without the fingerprints that only ever fire
/// on prose: a quoted word between words (`sos`, `s&s`: `the "and" key`)
/// and a lone word before a comment (`1c`, `nc`: `x/*`).
fn libinjection_sqli(value: &str) -> bool {
    let result = libinjectionrs::detect_sqli(value.as_bytes());
    if !result.is_injection() {
        return false;
    }
    let Some(fingerprint) = result.fingerprint.map(|f| f.to_string()) else {
        return true;
    };
    // `1&1` is "20% wool and 80% cotton" as often as `1 and 1=1`; the
    // attack form has a comparison, a quote or a comment.
    let operators = value.contains(['=', '<', '>', '\'', '"', '#', '(', '-', '/']);
    !matches!(fingerprint.as_str(), "sos" | "s&s" | "1c" | "nc") && (fingerprint != "1&1" || operators)
}

/// Bits of the trigger set that are gates for libinjection, not rules.
const SQL_GATE: u32 = 126;
const XSS_GATE: u32 = 127;

/// Words that make a value worth SQL tokenizing.
const SQL_WORDS: &[&str] = &[
    "select",
    "union",
    " or ",
    " and ",
    " xor ",
    "having",
    "sleep",
    "benchmark",
    "waitfor",
    "insert",
    "update",
    "delete",
    "drop",
    "exec",
    "declare",
    "order by",
    "group by",
    "information_schema",
    "null",
    "case when",
    "extractvalue",
    "updatexml",
    "concat",
    "char(",
    "||",
    "&&",
    " like ",
    " div ",
    "1=1",
    "rlike",
    "regexp",
    "truncate",
    "alter",
    "procedure",
    "into",
    "load_file",
    "--",
    "/*",
];

/// What one byte pass over a value says about it: whether libinjection
/// (the expensive step: several parses per value) is worth running.
struct Marks {
    /// A quote, backtick, `#` or `;`: SQL string and statement breaks.
    sql: bool,
    /// Markup, or an attribute break (`="` / `='`).
    xss: bool,
}

impl Marks {
    fn of(v: &str) -> Marks {
        let (mut quote, mut markup, mut eq, mut sql) = (false, false, false, false);
        for b in v.bytes() {
            match b {
                b'\'' | b'"' => quote = true,
                b'`' => {
                    quote = true;
                    markup = true;
                }
                b'#' | b';' => sql = true,
                b'<' | b'>' => markup = true,
                b'=' => eq = true,
                _ => {}
            }
        }
        Marks {
            sql: sql || quote,
            xss: markup || (eq && quote),
        }
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The longest prefix of `s` of at most `max` bytes, on a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Headers whose values are not inspected as free text: checked
/// structurally above, or never carrying application input. Standard
/// names compare as enums, not strings.
fn skipped_header(name: &HeaderName) -> bool {
    use http::header::*;
    [
        HOST,
        CONTENT_LENGTH,
        CONTENT_TYPE,
        ACCEPT,
        ACCEPT_ENCODING,
        ACCEPT_LANGUAGE,
        CONNECTION,
        CACHE_CONTROL,
        PRAGMA,
        UPGRADE_INSECURE_REQUESTS,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        TE,
        DNT,
    ]
    .contains(name)
        || matches!(name.as_str().as_bytes(), [b's', b'e', b'c', b'-', ..])
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | "priority")
}

/// Walks a request's values, checking each; the walk stops at the first
/// finding (every method returns true then).
struct Visitor<'e> {
    engine: &'e Engine,
    cx: Context<'e>,
    budget: usize,
    found: Option<Finding>,
}

/// What a value's checks know about the whole request.
struct Context<'e> {
    on: &'e Switches,
    /// The body is JSON: `\\uXXXX` escapes are normal there.
    json_request: bool,
}

impl Visitor<'_> {
    /// Checks one value as sent; `plus` says `+` means a space (forms).
    fn value(&mut self, part: Part, name: &str, raw: &[u8], plus: bool) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        self.found = self.engine.check(part, name, raw, plus, &self.cx);
        self.found.is_some()
    }

    /// Records a structural finding (not tied to a rule's regex).
    fn flag(&mut self, rule: &'static str, category: Category, part: Part, name: &str, sample: &str) -> bool {
        if !self.cx.on.on(category, rule) {
            return false;
        }
        self.found = Some(Finding {
            rule,
            category,
            part,
            name: cut(name, 80).to_owned(),
            sample: cut(sample, 80).to_owned(),
        });
        true
    }
}

/// Visits every value of the request.
fn values(req: &Subject<'_>, v: &mut Visitor<'_>) {
    if v.value(Part::Path, "", req.path.as_bytes(), false) {
        return;
    }
    if let Some(q) = req.query
        && form(q.as_bytes(), v)
    {
        return;
    }
    let cacheable = v.cx.on.off_categories == 0 && v.cx.on.off_rules.is_empty();
    for (header, value) in req.headers {
        if skipped_header(header) {
            continue;
        }
        let bytes = value.as_bytes();
        let name = header.as_str();
        let key = cacheable.then(|| v.engine.clean_headers.key(name, bytes));
        if key.is_some_and(|k| v.engine.clean_headers.contains(k)) {
            continue;
        }
        let stop = if header == http::header::COOKIE {
            cookies(bytes, v)
        } else if header == http::header::USER_AGENT {
            v.value(Part::UserAgent, name, bytes, false)
        } else if header == http::header::REFERER {
            referer(bytes, v)
        } else if matches!(name, "x-filename" | "x_filename" | "x.filename" | "x-file-name") {
            v.value(Part::Filename, name, bytes, false) || v.value(Part::Header, name, bytes, false)
        } else {
            v.value(Part::Header, name, bytes, false)
        };
        if stop {
            return;
        }
        if let Some(k) = key
            && v.budget > 0
        {
            v.engine.clean_headers.insert(k);
        }
    }
    if req.body.is_empty() {
        return;
    }
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    body(ct, req.body, v);
}

/// Visits a body by its content type.
fn body(ct: &str, body: &[u8], v: &mut Visitor<'_>) -> bool {
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let mime = mime.as_str();
    if mime == "application/x-www-form-urlencoded" {
        return form(body, v);
    }
    if mime == "application/json" || mime.ends_with("+json") {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(doc) => json(&doc, "", v),
            Err(_) => v.value(Part::Body, "", body, false),
        };
    }
    if mime == "multipart/form-data" {
        return multipart(ct, body, v);
    }
    if mime.ends_with("/xml") || mime.ends_with("+xml") {
        return xml(body, v);
    }
    // Text and unknown types: the whole body, and its fields when it
    // looks like a form (many clients mislabel forms).
    if v.value(Part::Body, "", body, false) {
        return true;
    }
    let looks_like_form =
        body.contains(&b'=') && !body.contains(&b'\n') && !body.starts_with(b"<") && !body.starts_with(b"{");
    looks_like_form && form(body, v)
}

/// A Referer is a URL: its path and query arguments are what an app
/// might reflect; scheme and host are not inspected as input.
fn referer(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let rest = raw
        .windows(3)
        .position(|w| w == b"://")
        .map(|i| &raw[i + 3..])
        .map(|r| &r[r.iter().position(|&b| b == b'/').unwrap_or(r.len())..]);
    let Some(rest) = rest else {
        return v.value(Part::Referer, "referer", raw, false);
    };
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if !path.is_empty() && v.value(Part::Referer, "referer", path, false) {
        return true;
    }
    let Some(query) = query else { return false };
    for pair in query.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if v.value(Part::Referer, "referer", name, true) || v.value(Part::Referer, "referer", value, true) {
            return true;
        }
    }
    false
}

/// `a=1&b=2`, as query strings and form bodies.
fn form(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    for pair in raw.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = canonical(name, true);
        if v.value(Part::ArgName, "", name.as_bytes(), false) || v.value(Part::Arg, &name, value, true) {
            return true;
        }
    }
    false
}

fn cookies(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    for pair in raw.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = canonical(name, false);
        if v.value(Part::Cookie, &name, name.as_bytes(), false) || v.value(Part::Cookie, &name, value, false) {
            return true;
        }
    }
    false
}

fn json(node: &serde_json::Value, key: &str, v: &mut Visitor<'_>) -> bool {
    match node {
        serde_json::Value::String(s) => v.value(Part::Arg, key, s.as_bytes(), false),
        serde_json::Value::Array(items) => items.iter().any(|i| json(i, key, v)),
        serde_json::Value::Object(map) => map.iter().any(|(k, val)| {
            let name = canonical(k.as_bytes(), false);
            v.value(Part::ArgName, "", name.as_bytes(), false) || json(val, &name, v)
        }),
        _ => false,
    }
}

/// Text nodes and attribute values of an XML document, entities decoded;
/// not a validating parser, just enough to see what the app will see.
fn xml(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let text = String::from_utf8_lossy(raw);
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let node = rest[..lt].trim();
        if !node.is_empty() && v.value(Part::Arg, "", unescape_xml(node).as_bytes(), false) {
            return true;
        }
        rest = &rest[lt..];
        let Some(gt) = find_tag_end(rest) else {
            return v.value(Part::Body, "", unescape_xml(rest).as_bytes(), false);
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.starts_with('/') {
            if tag.starts_with("![CDATA[") {
                let inner = tag.trim_start_matches("![CDATA[").trim_end_matches("]]");
                if v.value(Part::Arg, "", inner.as_bytes(), false) {
                    return true;
                }
            }
            continue;
        }
        for (name, value) in attributes(tag) {
            let name = canonical(name.as_bytes(), false);
            if v.value(Part::ArgName, "", name.as_bytes(), false)
                || v.value(Part::Arg, &name, unescape_xml(value).as_bytes(), false)
            {
                return true;
            }
        }
    }
    false
}

/// The `>` that closes a tag, skipping quoted attribute values.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name="value"` pairs of a tag.
fn attributes(tag: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = tag.split_once(char::is_whitespace).map_or("", |(_, r)| r);
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            out.push((name, &after[..end]));
            rest = &after[end..];
            continue;
        };
        let body = &after[1..];
        let end = body.find(q).unwrap_or(body.len());
        out.push((name, &body[..end]));
        rest = body.get(end + 1..).unwrap_or("");
    }
    out
}

/// XML's five named entities and numeric character references.
fn unescape_xml(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.floor_char_boundary(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let c = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Fields of a `multipart/form-data` body: names, file names, and the
/// content of each part by its own type. Malformed names (quotes,
/// semicolons: the classic parser-confusion bypass) are findings.
fn multipart(ct: &str, raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let Some(boundary) = ct
        .split(';')
        .filter_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim().eq_ignore_ascii_case("boundary").then_some(value.trim())
        })
        .next()
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
    else {
        return v.value(Part::Body, "", raw, false);
    };
    let text = String::from_utf8_lossy(raw);
    let delimiter = format!("--{boundary}");
    for section in text.split(delimiter.as_str()).skip(1) {
        if section.starts_with("--") {
            break;
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .unwrap_or(section);
        let (head, content) = match section.find("\r\n\r\n") {
            Some(i) => (&section[..i], &section[i + 4..]),
            None => match section.find("\n\n") {
                Some(i) => (&section[..i], &section[i + 2..]),
                None => (section, ""),
            },
        };
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut part_type = String::new();
        let mut field = String::new();
        for line in head.lines() {
            let (hname, hvalue) = line.split_once(':').unwrap_or((line, ""));
            let hname = hname.trim().to_ascii_lowercase();
            if hname == "content-type" {
                part_type = hvalue.trim().to_ascii_lowercase();
            } else if hname == "content-disposition" {
                for (key, value) in disposition_params(hvalue) {
                    if suspicious_multipart_name(&value) {
                        return v.flag(
                            "protocol-multipart-name",
                            Category::Protocol,
                            Part::Filename,
                            &key,
                            &value,
                        );
                    }
                    let canon = canonical(value.as_bytes(), false);
                    let stop = match key.as_str() {
                        "filename" | "filename*" => v.value(Part::Filename, "filename", value.as_bytes(), false),
                        "name" => {
                            field = canon.to_string();
                            v.value(Part::ArgName, "", value.as_bytes(), false)
                        }
                        _ => false,
                    };
                    if stop {
                        return true;
                    }
                }
            } else if v.value(Part::Header, &hname, hvalue.as_bytes(), false) {
                return true;
            }
        }
        let stop = if part_type.is_empty() || part_type.starts_with("text/plain") {
            v.value(Part::Arg, &field, content.as_bytes(), false)
        } else if part_type.starts_with("text/") || part_type.contains("json") || part_type.contains("xml") {
            body(&part_type, content.as_bytes(), v)
        } else {
            false
        };
        if stop {
            return true;
        }
    }
    false
}

/// A field or file name that multipart parsers read differently: quotes,
/// `;`, `=` or backslashes once HTML entities (`&auml;`) are set aside.
fn suspicious_multipart_name(value: &str) -> bool {
    let mut rest = value;
    let mut plain = String::with_capacity(value.len());
    while let Some(amp) = rest.find('&') {
        plain.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity_len = rest[1..]
            .find(';')
            .filter(|&n| n > 0 && n <= 10 && rest[1..1 + n].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#'));
        match entity_len {
            Some(n) => rest = &rest[n + 2..],
            None => {
                plain.push('&');
                rest = &rest[1..];
            }
        }
    }
    plain.push_str(rest);
    plain.contains(['"', '\'', ';', '=', '\\'])
}

/// `name="x"; filename="y"` of a Content-Disposition, quotes removed.
fn disposition_params(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit([';', ' '])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            // The value runs to the closing quote that ends the parameter.
            let end = q.find("\";").or_else(|| q.rfind('"')).unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value.to_owned()));
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(method: &'a Method, target: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> Subject<'a> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Subject {
            method,
            path,
            query,
            headers,
            body,
        }
    }

    fn rule_for(target: &str) -> Option<&'static str> {
        let engine = Engine::new();
        let headers = HeaderMap::new();
        engine
            .inspect(&subject(&Method::GET, target, &headers, b""), &Switches::default())
            .map(|f| f.rule)
    }

    #[test]
    fn entities_next_to_multibyte_chars_do_not_panic() {
        // Found by tests/fuzz.rs: a reference cut inside a UTF-8 sequence.
        assert_eq!(entity("&\\u00<<\u{fffd}\u{fffd}"), (None, 1));
        assert!(unescape_entities_and_js("&\\u00<<\u{fffd}\u{fffd}\u{fffd}").is_some());
        assert_eq!(unescape_xml("&abcdefghij\u{fffd}"), "&abcdefghij\u{fffd}");
    }

    #[test]
    fn every_rule_compiles() {
        let _ = Engine::new();
    }

    #[test]
    fn classic_attacks_are_found() {
        assert!(rule_for("/?id=1%27%20OR%20%271%27=%271").is_some());
        assert!(rule_for("/?q=%3Cscript%3Ealert(1)%3C/script%3E").is_some());
        assert!(rule_for("/?f=..%2f..%2fetc%2fpasswd").is_some());
        assert!(rule_for("/?c=;cat%20/etc/passwd").is_some());
        assert!(rule_for("/?x=${jndi:ldap://a/b}").is_some());
    }

    #[test]
    fn plain_requests_pass() {
        assert_eq!(rule_for("/products/42?page=2&sort=price"), None);
        assert_eq!(rule_for("/search?q=union+station+parking"), None);
        assert_eq!(rule_for("/search?q=O%27Brien"), None);
    }

    #[test]
    fn multipart_and_xml_fields_are_reached() {
        let engine = Engine::new();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "multipart/form-data; boundary=XyZ".parse().unwrap());
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n<script>alert(1)</script>\r\n--XyZ--\r\n";
        let f = engine.inspect(&subject(&Method::POST, "/", &headers, body), &Switches::default());
        assert_eq!(f.map(|f| f.category), Some(Category::Xss));

        headers.insert("content-type", "application/xml".parse().unwrap());
        let body = b"<?xml version=\"1.0\"?><r><a p=\"x&amp;&amp;cat /etc/passwd\"/></r>";
        let f = engine.inspect(&subject(&Method::POST, "/", &headers, body), &Switches::default());
        assert!(f.is_some());
    }
}
