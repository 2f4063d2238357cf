//! SecLang operators (`@rx`, `@pm`, `@detectSQLi`...): compiled once when
//! the rules load, then run on each transformed value.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use ipnet::IpNet;
use regex::bytes::{Regex, RegexBuilder};

use super::LoadError;
use super::macros::Template;

/// A compiled operator.
#[derive(Debug)]
pub(crate) enum Operator {
    Rx(Box<Regex>),
    Pm(Box<AhoCorasick>),
    DetectSqli,
    DetectXss,
    /// String operators whose argument may hold `%{...}` macros.
    Str(StrOp, Template),
    /// Integer comparisons (ModSecurity reads both sides as integers).
    Num(NumOp, Template),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    ValidateByteRange(Box<[bool; 256]>),
    IpMatch(Vec<IpNet>),
    Unconditional,
}

/// The string comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StrOp {
    Within,
    Streq,
    BeginsWith,
    EndsWith,
    Contains,
    ContainsWord,
}

/// The integer comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NumOp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Operator {
    /// Compiles `@name argument`; `dir` is where `@pmFromFile` files are.
    pub(crate) fn compile(name: &str, arg: &str, dir: &Path) -> Result<Operator, LoadError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "rx" => Operator::Rx(Box::new(regex(arg)?)),
            "pm" => Operator::Pm(Box::new(phrases(
                arg.split_ascii_whitespace().map(str::to_owned).collect(),
            )?)),
            "pmfromfile" | "pmf" => {
                let mut words = Vec::new();
                for file in arg.split_ascii_whitespace() {
                    let path = dir.join(file);
                    let text = std::fs::read_to_string(&path).map_err(|e| LoadError::Io(path.clone(), e))?;
                    words.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_owned),
                    );
                }
                Operator::Pm(Box::new(phrases(words)?))
            }
            "detectsqli" => Operator::DetectSqli,
            "detectxss" => Operator::DetectXss,
            "within" => Operator::Str(StrOp::Within, Template::parse(arg)),
            "streq" => Operator::Str(StrOp::Streq, Template::parse(arg)),
            "beginswith" => Operator::Str(StrOp::BeginsWith, Template::parse(arg)),
            "endswith" => Operator::Str(StrOp::EndsWith, Template::parse(arg)),
            "contains" => Operator::Str(StrOp::Contains, Template::parse(arg)),
            "containsword" => Operator::Str(StrOp::ContainsWord, Template::parse(arg)),
            "eq" => Operator::Num(NumOp::Eq, Template::parse(arg)),
            "ge" => Operator::Num(NumOp::Ge, Template::parse(arg)),
            "gt" => Operator::Num(NumOp::Gt, Template::parse(arg)),
            "le" => Operator::Num(NumOp::Le, Template::parse(arg)),
            "lt" => Operator::Num(NumOp::Lt, Template::parse(arg)),
            "validateurlencoding" => Operator::ValidateUrlEncoding,
            "validateutf8encoding" => Operator::ValidateUtf8Encoding,
            "validatebyterange" => Operator::ValidateByteRange(Box::new(byte_ranges(arg)?)),
            "ipmatch" => Operator::IpMatch(
                arg.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    // As `deny`/`allow` read them: `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
                    .map(|s| {
                        crate::ip::parse_net(s).map_err(|_| LoadError::Rule(format!("@ipMatch: bad address {s:?}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "unconditionalmatch" => Operator::Unconditional,
            other => return Err(LoadError::Unsupported(format!("@{other}"))),
        })
    }

    /// Whether `value` matches; `arg` is the expanded argument of string
    /// and integer operators; `captures` gets `@rx`'s groups (TX:0-9).
    pub(crate) fn matches(&self, value: &[u8], arg: &str, captures: Option<&mut Vec<Vec<u8>>>) -> bool {
        match self {
            Operator::Rx(re) => match captures {
                Some(out) => match re.captures(value) {
                    Some(c) => {
                        out.clear();
                        out.extend(
                            c.iter()
                                .take(10)
                                .map(|m| m.map(|m| m.as_bytes().to_vec()).unwrap_or_default()),
                        );
                        true
                    }
                    None => false,
                },
                None => re.is_match(value),
            },
            Operator::Pm(ac) => match ac.find(value) {
                Some(m) => {
                    if let Some(out) = captures {
                        out.clear();
                        out.push(value[m.range()].to_vec());
                    }
                    true
                }
                None => false,
            },
            Operator::DetectSqli => libinjectionrs::detect_sqli(value).is_injection(),
            Operator::DetectXss => libinjectionrs::detect_xss(value).is_injection(),
            Operator::Str(op, _) => {
                let a = arg.as_bytes();
                match op {
                    StrOp::Within => !value.is_empty() && memchr::memmem::find(a, value).is_some(),
                    StrOp::Streq => value == a,
                    StrOp::BeginsWith => value.starts_with(a),
                    StrOp::EndsWith => value.ends_with(a),
                    StrOp::Contains => memchr::memmem::find(value, a).is_some(),
                    StrOp::ContainsWord => contains_word(value, a),
                }
            }
            Operator::Num(op, _) => {
                let (v, a) = (int(value), int(arg.as_bytes()));
                match op {
                    NumOp::Eq => v == a,
                    NumOp::Ge => v >= a,
                    NumOp::Gt => v > a,
                    NumOp::Le => v <= a,
                    NumOp::Lt => v < a,
                }
            }
            Operator::ValidateUrlEncoding => bad_url_encoding(value),
            Operator::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
            Operator::ValidateByteRange(ok) => value.iter().any(|&b| !ok[usize::from(b)]),
            Operator::IpMatch(nets) => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                .map(crate::ip::canonical_ip)
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Operator::Unconditional => true,
        }
    }

    /// The argument template of string and integer operators.
    pub(crate) fn template(&self) -> Option<&Template> {
        match self {
            Operator::Str(_, t) | Operator::Num(_, t) => Some(t),
            _ => None,
        }
    }
}

/// A PCRE pattern in the `regex` crate: bytes, `.` matching newlines, as
/// ModSecurity compiles it. PCRE-only syntax (lookaround, backreferences)
/// fails here and the rule is counted as skipped.
pub(crate) fn regex(pattern: &str) -> Result<Regex, LoadError> {
    RegexBuilder::new(&from_pcre(pattern))
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(64 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        .map_err(|e| LoadError::Unsupported(format!("@rx: {}", e.to_string().lines().last().unwrap_or(""))))
}

/// Rewrites PCRE spellings the `regex` crate reads otherwise: an escaped
/// punctuation character (`\'`) or a non-ASCII character becomes its
/// byte escapes, a `{` that starts no quantifier and a `[` or leading `]`
/// inside a class are literal, and `&`/`~` in a class are not set
/// operators.
fn from_pcre(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 16);
    let bytes = |c: char, out: &mut String| {
        let mut buf = [0; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    };
    let mut class = false;
    let mut class_start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                if n.is_ascii_alphanumeric() {
                    out.push(c);
                    out.push(n);
                } else {
                    bytes(n, &mut out);
                }
                i += 2;
                continue;
            }
            _ if !c.is_ascii() => bytes(c, &mut out),
            '[' if !class => {
                class = true;
                out.push(c);
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i + 1;
            }
            ']' if class && i == class_start => out.push_str("\\]"),
            ']' if class => {
                class = false;
                out.push(c);
            }
            '[' if class && chars.get(i + 1) != Some(&':') => out.push_str("\\["),
            '&' | '~' if class => {
                out.push('\\');
                out.push(c);
            }
            '{' if !class && !quantifier(&chars[i + 1..]) => out.push_str("\\{"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Whether the text after `{` is a PCRE quantifier: `n}`, `n,}`, `n,m}`.
fn quantifier(rest: &[char]) -> bool {
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    match rest.get(digits) {
        Some('}') => true,
        Some(',') => {
            let more = rest[digits + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            rest.get(digits + 1 + more) == Some(&'}')
        }
        _ => false,
    }
}

fn phrases(words: Vec<String>) -> Result<AhoCorasick, LoadError> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(words)
        .map_err(|e| LoadError::Rule(format!("@pm: {e}")))
}

/// ModSecurity's `atoi`: optional sign, leading digits, else 0.
fn int(v: &[u8]) -> i64 {
    let s = v.trim_ascii();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |a, &b| a.saturating_mul(10).saturating_add(i64::from(b - b'0')));
    if neg { -n } else { n }
}

fn contains_word(v: &[u8], w: &[u8]) -> bool {
    if w.is_empty() {
        return true;
    }
    let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    memchr::memmem::find_iter(v, w).any(|i| !word(i.checked_sub(1).and_then(|j| v.get(j))) && !word(v.get(i + w.len())))
}

fn bad_url_encoding(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if i + 2 >= v.len() || !v[i + 1].is_ascii_hexdigit() || !v[i + 2].is_ascii_hexdigit() {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

fn byte_ranges(arg: &str) -> Result<[bool; 256], LoadError> {
    let mut ok = [false; 256];
    for part in arg.split([',', ' ']).filter(|s| !s.is_empty()) {
        let bad = || LoadError::Rule(format!("@validateByteRange: bad range {part:?}"));
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u8 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u8 = hi.trim().parse().map_err(|_| bad())?;
        for b in lo..=hi {
            ok[usize::from(b)] = true;
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, arg: &str) -> Operator {
        Operator::compile(name, arg, Path::new(".")).unwrap()
    }

    #[test]
    fn operators() {
        let mut caps = Vec::new();
        assert!(op("rx", "(?i)un(ion)").matches(b"UNION", "", Some(&mut caps)));
        assert_eq!(caps[1], b"ION");
        assert!(op("rx", "a.b").matches(b"a\nb", "", None));
        assert!(op("pm", "select union").matches(b"x UNION y", "", None));
        assert!(!op("pm", "select union").matches(b"onion", "", None));
        assert!(op("detectSQLi", "").matches(b"1' or '1'='1", "", None));
        assert!(op("detectXSS", "").matches(b"<script>alert(1)</script>", "", None));
        assert!(op("within", "").matches(b"GET", "GET HEAD POST", None));
        assert!(!op("within", "").matches(b"PUT", "GET HEAD POST", None));
        assert!(op("streq", "").matches(b"a", "a", None));
        assert!(op("beginsWith", "").matches(b"abc", "ab", None));
        assert!(op("endsWith", "").matches(b"abc", "bc", None));
        assert!(op("contains", "").matches(b"abc", "b", None));
        assert!(op("containsWord", "").matches(b"a cat.", "cat", None));
        assert!(!op("containsWord", "").matches(b"concat", "cat", None));
        assert!(op("eq", "").matches(b"0", "0", None));
        assert!(op("ge", "").matches(b"5", "5", None));
        assert!(op("gt", "").matches(b"6", "5", None));
        assert!(op("le", "").matches(b"x", "0", None));
        assert!(op("lt", "").matches(b"-1", "0", None));
        assert!(op("validateUrlEncoding", "").matches(b"%zz", "", None));
        assert!(!op("validateUrlEncoding", "").matches(b"%41", "", None));
        assert!(op("validateUtf8Encoding", "").matches(b"\xc0\xaf", "", None));
        assert!(op("validateByteRange", "32-126").matches(b"a\x01", "", None));
        assert!(!op("validateByteRange", "32-126,9").matches(b"a\tb", "", None));
        assert!(op("ipMatch", "127.0.0.1,10.0.0.0/8").matches(b"10.1.2.3", "", None));
        // IPv4-mapped IPv6, in the list or in the value, is the IPv4 address.
        assert!(op("ipMatch", "::ffff:10.0.0.0/104").matches(b"10.1.2.3", "", None));
        assert!(op("ipMatch", "::ffff:192.0.2.7").matches(b"192.0.2.7", "", None));
        assert!(op("ipMatch", "10.0.0.0/8").matches(b"::ffff:10.1.2.3", "", None));
        assert!(!op("ipMatch", "::ffff:10.0.0.0/104").matches(b"11.1.2.3", "", None));
        assert!(!op("ipMatch", "2001:db8::/32").matches(b"10.1.2.3", "", None));
        assert!(op("unconditionalMatch", "").matches(b"", "", None));
        assert!(Operator::compile("rbl", "x", Path::new(".")).is_err());
        assert!(Operator::compile("rx", "(?=x)", Path::new(".")).is_err());
        // PCRE spellings.
        assert!(op("rx", r#"\$\{x}\'[\"\']"#).matches(b"${x}''", "", None));
        assert!(op("rx", "[]a][[]").matches(b"][", "", None));
        assert!(op("rx", "a{b}").matches(b"a{b}", "", None));
        assert!(op("rx", "\u{a0}x").matches("\u{a0}x".as_bytes(), "", None));
        assert!(op("rx", "[&~]").matches(b"~", "", None));
    }
}
