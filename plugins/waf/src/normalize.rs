//! Turning what an attacker sent into what the application will see, so
//! one rule catches every encoding of an attack: percent-encoding (also
//! doubled, and IIS `%uXXXX`), `+` for space in forms, overlong UTF-8,
//! NUL bytes, backslashes and dot segments in paths, and letter case;
//! and the second views rules also look at: HTML entities, JavaScript
//! escapes and base64.

use std::borrow::Cow;

/// How many rounds of percent-decoding a value gets: enough for double
/// and triple encoding, bounded so a hostile value cannot make it loop.
const DECODE_ROUNDS: usize = 3;

/// A value made ready for the rules: decoded until stable, overlong UTF-8
/// folded to ASCII, NUL bytes removed, odd blanks (controls, NBSP, Unicode
/// spaces) made spaces, lower-cased.
pub fn canonical(raw: &[u8], plus_is_space: bool) -> Cow<'_, str> {
    canonical_shaped(raw, Shape::of(raw), plus_is_space).0
}

/// [`canonical`] of a value whose shape is known, with the shape of the
/// result: the common values (nothing to decode) need no second pass.
pub(crate) fn canonical_shaped(raw: &[u8], shape: Shape, plus_is_space: bool) -> (Cow<'_, str>, Shape) {
    let decode = shape.has(Shape::NOT_PLAIN) || (plus_is_space && shape.has(Shape::PLUS));
    let plain = !decode;
    if plain && !shape.has(Shape::UPPER) {
        // The common case: nothing to decode, nothing to fold.
        let text = std::str::from_utf8(raw).expect("plain bytes are ASCII");
        return (Cow::Borrowed(text), shape);
    }
    if plain {
        // Only upper case to fold (a user agent, a mixed-case token).
        let lower = String::from_utf8(raw.to_ascii_lowercase()).expect("plain bytes are ASCII");
        return (Cow::Owned(lower), shape.lower_cased());
    }
    let mut bytes = if plus_is_space {
        raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect()
    } else {
        raw.to_vec()
    };
    for _ in 0..DECODE_ROUNDS {
        match percent_decode(&bytes) {
            Some(decoded) => bytes = decoded,
            None => break,
        }
    }
    let bytes = fold_overlong(&bytes);
    let bytes = blanks_to_spaces(&bytes);
    let mut out = String::from_utf8_lossy(&bytes).into_owned();
    out.retain(|c| c != '\0');
    out.make_ascii_lowercase();
    let shape = Shape::of(out.as_bytes());
    (Cow::Owned(out), shape)
}

/// Which kinds of bytes a value holds, from one table-driven pass: what
/// decoding, folding and the expensive checks need to know, so none of
/// them has to scan the value again to learn it has nothing for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape(u16);

impl Shape {
    /// A byte that needs decoding or folding: `%`, controls, non-ASCII.
    pub(crate) const NOT_PLAIN: u16 = 1;
    pub(crate) const UPPER: u16 = 1 << 1;
    pub(crate) const LOWER: u16 = 1 << 2;
    pub(crate) const PLUS: u16 = 1 << 3;
    /// `'` or `"`.
    pub(crate) const QUOTE: u16 = 1 << 4;
    pub(crate) const BACKTICK: u16 = 1 << 5;
    /// `#` or `;`.
    pub(crate) const STATEMENT: u16 = 1 << 6;
    /// `<` or `>`.
    pub(crate) const MARKUP: u16 = 1 << 7;
    pub(crate) const EQUALS: u16 = 1 << 8;
    pub(crate) const AMPERSAND: u16 = 1 << 9;
    pub(crate) const SEMICOLON: u16 = 1 << 10;
    pub(crate) const BACKSLASH: u16 = 1 << 11;
    /// `$`: shell expansions.
    pub(crate) const DOLLAR: u16 = 1 << 12;
    /// A space or `(`: where a path segment could hold SQL.
    pub(crate) const BLANK_OR_PAREN: u16 = 1 << 13;

    const TABLE: [u16; 256] = {
        let mut t = [0u16; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            let mut f = 0;
            if !(c.is_ascii_graphic() && c != b'%' || c == b' ') {
                f |= Shape::NOT_PLAIN;
            }
            if c.is_ascii_uppercase() {
                f |= Shape::UPPER;
            }
            if c.is_ascii_lowercase() {
                f |= Shape::LOWER;
            }
            f |= match c {
                b'+' => Shape::PLUS,
                b'\'' | b'"' => Shape::QUOTE,
                b'`' => Shape::BACKTICK,
                b'#' => Shape::STATEMENT,
                b';' => Shape::STATEMENT | Shape::SEMICOLON,
                b'<' | b'>' => Shape::MARKUP,
                b'=' => Shape::EQUALS,
                b'&' => Shape::AMPERSAND,
                b'\\' => Shape::BACKSLASH,
                b'$' => Shape::DOLLAR,
                b' ' | b'(' => Shape::BLANK_OR_PAREN,
                _ => 0,
            };
            t[b] = f;
            b += 1;
        }
        t
    };

    /// The shape of `value`.
    pub(crate) fn of(value: &[u8]) -> Shape {
        Shape(value.iter().fold(0, |acc, &b| acc | Shape::TABLE[b as usize]))
    }

    pub(crate) fn has(self, flag: u16) -> bool {
        self.0 & flag != 0
    }

    /// The shape once ASCII letters are lower-cased.
    fn lower_cased(self) -> Shape {
        match self.has(Shape::UPPER) {
            true => Shape(self.0 & !Shape::UPPER | Shape::LOWER),
            false => self,
        }
    }
}

/// Whether `c` is a character some database, shell or browser reads as
/// a blank though the rules' `\s` (ASCII: tab to CR, space) does not:
/// MSSQL takes every C0 control for whitespace, MySQL 0xA0 (sqlmap's
/// `space2mssqlblank`, `space2mysqlblank`), and Unicode-aware parsers
/// (JSON, Latin-1 forms) the Unicode spaces.
fn is_odd_blank(c: char) -> bool {
    matches!(
        c,
        '\u{1}'..='\u{8}'
            | '\u{e}'..='\u{1f}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

/// `bytes` with every odd blank ([`is_odd_blank`]) made a space, so
/// `union\x01select` reads as `union select` to every rule and detector;
/// a lone 0x85 or 0xA0 byte (Latin-1 NEL and NBSP, not UTF-8) too. NUL
/// and `\t`..`\r` are left as they are (removed, and `\s`, already).
fn blanks_to_spaces(bytes: &[u8]) -> Cow<'_, [u8]> {
    // The byte test first: most values have no such control and no
    // non-ASCII byte, and pay only this.
    let odd = |b: u8| matches!(b, 0x01..=0x08 | 0x0e..=0x1f) || b >= 0x80;
    let Some(first) = bytes.iter().position(|&b| odd(b)) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            out.push(if odd(b) { b' ' } else { b });
            i += 1;
            continue;
        }
        let len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 1,
        };
        let seq = bytes.get(i..i + len).and_then(|s| std::str::from_utf8(s).ok());
        match seq.and_then(|s| s.chars().next()) {
            Some(c) => {
                if is_odd_blank(c) {
                    out.push(b' ');
                } else {
                    out.extend_from_slice(&bytes[i..i + len]);
                }
                i += len;
            }
            None => {
                out.push(if matches!(b, 0x85 | 0xa0) { b' ' } else { b });
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// One round of percent-decoding (`%41`, and IIS's `%u0041`); `None` when
/// there was nothing to decode.
pub fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let first = input.iter().position(|&b| b == b'%')?;
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    let mut changed = false;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let Some(v) = hex2(input.get(i + 1..i + 3)) {
                out.push(v);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U'))
                && let (Some(hi), Some(lo)) = (hex2(input.get(i + 2..i + 4)), hex2(input.get(i + 4..i + 6)))
            {
                let c = char::from_u32(u32::from(hi) << 8 | u32::from(lo)).unwrap_or('\u{fffd}');
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

fn hex2(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    let hi = (pair[0] as char).to_digit(16)?;
    let lo = (pair[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Folds overlong UTF-8 encodings of ASCII (`C0 AF` for `/`, `E0 80 AE`
/// for `.`) to the byte they stand for, the classic way around a filter
/// that looks for `../`.
fn fold_overlong(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| b == 0xc0 || b == 0xc1 || b == 0xe0) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let cont = |j: usize| input.get(j).filter(|&&c| c & 0xc0 == 0x80).copied();
        if (b == 0xc0 || b == 0xc1)
            && let Some(c1) = cont(i + 1)
        {
            out.push(((b & 0x1f) << 6) | (c1 & 0x3f));
            i += 2;
            continue;
        }
        if b == 0xe0
            && let (Some(c1), Some(c2)) = (cont(i + 1), cont(i + 2))
            && c1 < 0xa0
        {
            let v = (u32::from(c1 & 0x3f) << 6) | u32::from(c2 & 0x3f);
            if v < 0x80 {
                out.push(v as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// A path as a file system would resolve it: backslashes as slashes,
/// repeated slashes collapsed, `.` and `..` segments applied (never above
/// the root). Used to match protected files however the path was dressed.
pub fn resolve_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    out
}

/// `value` with HTML character references (`&lt;`, `&#36;`, `&colon;`,
/// `&tab;`...) and JavaScript escapes (`\\u0041`, `\\x41`) resolved and
/// the whitespace they can smuggle in removed; `None` if it has neither.
pub(crate) fn unescape_entities_and_js(value: &str, shape: Shape) -> Option<String> {
    let bytes = value.as_bytes();
    let entities = shape.has(Shape::AMPERSAND) && shape.has(Shape::SEMICOLON);
    let escapes = shape.has(Shape::BACKSLASH) && bytes.windows(2).any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'x'));
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

/// `s` with every character reference resolved, as an XML parser (or an
/// HTML one) reports text and attribute values: see [`entity`].
pub(crate) fn unescape_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let (c, used) = entity(rest);
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[..used]),
        }
        rest = &rest[used..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The one decoder of character references, for HTML views and XML
/// bodies alike: the reference at the start of `s` (which starts with
/// `&`), as the char and the bytes it took, or `None, 1` when it is not
/// one. Known are XML's five names, the HTML names that spell the
/// punctuation of an attack (`&colon;`, `&lpar;`, `&tab;`...), all in
/// lower case (the HTML views are of canonical, lower-cased values; an
/// XML body's text gets an HTML view too), and decimal (`&#36;`) and hexadecimal
/// (`&#x24;`, `&#X24;`) references, leading zeros allowed; a reference
/// ends at a `;` within its first 12 bytes.
pub(crate) fn entity(s: &str) -> (Option<char>, usize) {
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
        n if n.starts_with("#x") || n.starts_with("#X") => {
            u32::from_str_radix(&n[2..], 16).ok().and_then(char::from_u32)
        }
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

/// A value with its string literals joined where JavaScript or PHP joins
/// them: `'pro'+'cess'`, `"sys" . "tem"` are `'process'` and `"system"`,
/// the name a filter looks for. `None` when nothing is joined (no quote,
/// or no quote, `+` or `.` and the same quote in a row).
pub(crate) fn strings_joined(canon: &str, shape: Shape) -> Option<String> {
    if !shape.has(Shape::QUOTE | Shape::BACKTICK) {
        return None;
    }
    let b = canon.as_bytes();
    // The length of a junction at `i`: a quote, blanks, `+` or `.`,
    // blanks and the same quote.
    let junction = |i: usize| {
        let q = b[i];
        if !matches!(q, b'\'' | b'"' | b'`') {
            return 0;
        }
        let blanks = |j: usize| b[j..].iter().take_while(|c| **c == b' ').count();
        let mut j = i + 1;
        j += blanks(j);
        if !matches!(b.get(j), Some(b'+' | b'.')) {
            return 0;
        }
        j += 1;
        j += blanks(j);
        if b.get(j) == Some(&q) { j + 1 - i } else { 0 }
    };
    let first = memchr::memchr3_iter(b'\'', b'"', b'`', b).find(|&i| junction(i) > 0)?;
    let mut out = String::with_capacity(canon.len());
    out.push_str(&canon[..first]);
    let mut i = first;
    while i < b.len() {
        let len = junction(i);
        if len > 0 {
            i += len;
            continue;
        }
        let ch = canon[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    Some(out)
}

/// A value as a shell reads it once its no-op insertions are gone: `$@`
/// and `$*` (empty without arguments), empty quote pairs, empty command
/// substitutions (`` `` ``, `$()`), and backslashes before letters, which
/// turn `c$@at /et''c/pas\\swd` into `cat /etc/passwd`. `None` when the
/// value has none of them (the common case: no `$`, quote, backtick or
/// backslash).
pub(crate) fn shell_unquoted(canon: &str, shape: Shape) -> Option<String> {
    if !shape.has(Shape::QUOTE | Shape::BACKSLASH | Shape::BACKTICK | Shape::DOLLAR) {
        return None;
    }
    let bytes = canon.as_bytes();
    // Most values with a quote or a `$` have nothing to undo (`O'Neil`,
    // `$5`): a look at each pair of bytes, before anything is built.
    let removable = |w: &[u8]| {
        matches!(w, b"$@" | b"$*" | b"''" | b"\"\"" | b"``" | b"$(") || (w[0] == b'\\' && w[1].is_ascii_alphanumeric())
    };
    if !bytes.windows(2).any(removable) {
        return None;
    }
    let mut out = String::with_capacity(canon.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'$', Some(b'@' | b'*')) | (b'\'', Some(b'\'')) | (b'"', Some(b'"')) | (b'`', Some(b'`')) => i += 2,
            (b'$', Some(b'(')) if bytes.get(i + 2) == Some(&b')') => i += 3,
            (b'\\', Some(next)) if next.is_ascii_alphanumeric() => i += 1,
            _ => {
                let ch = canon[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    (out.len() != canon.len()).then_some(out)
}

/// The text a base64 value stands for, when the value is base64 (16+
/// chars of its alphabet) and decodes to readable text: attackers wrap
/// payloads in base64 for apps that decode them.
pub(crate) fn base64_text(raw: &[u8], shape: Shape) -> Option<String> {
    // Base64 of text has both cases.
    if !(shape.has(Shape::UPPER) && shape.has(Shape::LOWER)) {
        return None;
    }
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
        Some(_) => percent_decode(raw)?,
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
        let v = sextet(b);
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

/// A base64 character's six bits, in either alphabet (`+`/`-` are 62,
/// anything else 63), for decoders that read past what is not base64.
pub(crate) fn sextet(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        _ => 63,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_layer() {
        assert_eq!(canonical(b"%2527%2520OR", false), "' or");
        assert_eq!(canonical(b"a+b%2Bc", true), "a b+c");
        assert_eq!(canonical(b"a+b", false), "a+b");
        assert_eq!(canonical(b"%u003cscript%u003E", false), "<script>");
        assert_eq!(canonical(b"..%c0%af..%c0%afetc", false), "../../etc");
        assert_eq!(canonical(b"%e0%80%ae%e0%80%ae/", false), "../");
        assert_eq!(canonical(b"ab%00cd", false), "abcd");
        assert_eq!(canonical(b"100%", false), "100%");
        assert_eq!(canonical(b"%zz%4", false), "%zz%4");
        assert!(matches!(canonical(b"plain-value_1.2", true), Cow::Borrowed(_)));
        assert!(matches!(canonical(b"a+b", false), Cow::Borrowed(_)));
        assert_eq!(canonical(b"Mozilla/5.0 (X11)", false), "mozilla/5.0 (x11)");
    }

    #[test]
    fn a_shape_is_what_a_second_pass_would_find() {
        for v in [
            &b"Mozilla/5.0 (X11; Linux)"[..],
            b"a%2Bb",
            b"x=\"1\"&y=<b>;#`\\u0041",
            b"\xc0\xafetc",
            b"",
        ] {
            let (canon, shape) = canonical_shaped(v, Shape::of(v), true);
            assert_eq!(shape, Shape::of(canon.as_bytes()), "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn every_form_of_character_reference_is_decoded() {
        // XML's five names, and the HTML names of attack punctuation.
        for (text, c) in [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&apos;", '\''),
            ("&colon;", ':'),
            ("&tab;", '\t'),
            ("&newline;", '\n'),
            ("&lpar;", '('),
            ("&rpar;", ')'),
            ("&lcub;", '{'),
            ("&rbrace;", '}'),
            ("&lsqb;", '['),
            ("&rbrack;", ']'),
            ("&sol;", '/'),
            ("&bsol;", '\\'),
            ("&dollar;", '$'),
            ("&num;", '#'),
            ("&period;", '.'),
            ("&comma;", ','),
            ("&semi;", ';'),
            ("&equals;", '='),
            ("&plus;", '+'),
            ("&excl;", '!'),
            ("&grave;", '`'),
            // Decimal and hexadecimal, either `x`, leading zeros.
            ("&#60;", '<'),
            ("&#0000060;", '<'),
            ("&#x3c;", '<'),
            ("&#X3C;", '<'),
            ("&#x00003c;", '<'),
            ("&#x1F600;", '\u{1F600}'),
        ] {
            assert_eq!(entity(text), (Some(c), text.len()), "{text}");
            assert_eq!(entity(&format!("{text}rest")), (Some(c), text.len()), "{text}");
        }
        // Not references: `&` alone is taken as itself.
        for text in [
            "&",
            "&lt",
            "&unknown;",
            "&LT;",
            "&#;",
            "&#x;",
            "&#xzz;",
            "&#xd800;",
            "&#1114112;",
            "&#00000000060;",
            "& lt;",
        ] {
            assert_eq!(entity(text), (None, 1), "{text}");
        }
    }

    #[test]
    fn whole_values_have_their_references_resolved() {
        assert!(matches!(unescape_entities("no references"), Cow::Borrowed(_)));
        assert_eq!(unescape_entities("Tom &amp; Jerry"), "Tom & Jerry");
        assert_eq!(unescape_entities("x&amp;&amp;cat /etc/passwd"), "x&&cat /etc/passwd");
        assert_eq!(unescape_entities("&#49;&#39; or &#X31;&#x3d;1"), "1' or 1=1");
        assert_eq!(unescape_entities("java&Tab;script&colon;"), "java&Tab;script:");
        // One level only: `&amp;lt;` is `&lt;` to the app.
        assert_eq!(unescape_entities("&amp;lt;"), "&lt;");
        assert_eq!(unescape_entities("a & b &c"), "a & b &c");
    }

    #[test]
    fn the_html_view_resolves_references_and_js_escapes() {
        let view = |v: &str| unescape_entities_and_js(v, Shape::of(v.as_bytes()));
        assert_eq!(view("plain"), None);
        assert_eq!(view("a&b;"), Some("a&b;".into()));
        assert_eq!(
            view("java&#x09;script&colon;alert&lpar;1&rpar;"),
            Some("javascript:alert(1)".into())
        );
        assert_eq!(view("&#X3C;svg&#62;"), Some("<svg>".into()));
        assert_eq!(view("\\u003cscript\\x3e"), Some("<script>".into()));
        assert_eq!(view("\\u{3c}b"), Some("<b".into()));
    }

    #[test]
    fn entities_next_to_multibyte_chars_do_not_panic() {
        // Found by tests/fuzz.rs: a reference cut inside a UTF-8 sequence.
        assert_eq!(entity("&\\u00<<\u{fffd}\u{fffd}"), (None, 1));
        let v = "&\\u00<<\u{fffd}\u{fffd}\u{fffd}";
        assert!(unescape_entities_and_js(v, Shape::of(v.as_bytes())).is_some());
        assert_eq!(unescape_entities("&abcdefghij\u{fffd}"), "&abcdefghij\u{fffd}");
    }

    #[test]
    fn resolves_paths_like_a_file_system() {
        assert_eq!(resolve_path("/a/./b/../../../etc//passwd"), "/etc/passwd");
        assert_eq!(resolve_path("..\\..\\windows\\win.ini"), "/windows/win.ini");
        assert_eq!(resolve_path("/static/"), "/static/");
        assert_eq!(resolve_path(""), "/");
    }
}

#[cfg(test)]
mod joined_tests {
    use super::{Shape, canonical, strings_joined};

    fn joined(v: &str) -> Option<String> {
        strings_joined(v, Shape::of(v.as_bytes()))
    }

    #[test]
    fn string_literals_are_joined_as_js_and_php_join_them() {
        assert_eq!(
            joined("globalthis['pro'+'cess']").as_deref(),
            Some("globalthis['process']")
        );
        assert_eq!(joined("$a=\"sys\" . \"tem\";").as_deref(), Some("$a=\"system\";"));
        assert_eq!(joined("x[`ev`+`a`+`l`]").as_deref(), Some("x[`eval`]"));
        for v in ["o'neil", "'a' + \"b\"", "it's 5+6", "rock 'n' roll", ""] {
            assert_eq!(joined(v), None, "{v}");
        }
    }

    /// Controls, NEL, NBSP and the Unicode spaces read as a space, in
    /// every encoding; tab to CR, NUL and letters whose UTF-8 holds 0xA0
    /// or 0x85 (`à`, `Å`) keep what they are.
    #[test]
    fn odd_blanks_become_spaces() {
        for raw in [
            "a%01b",
            "a%1fb",
            "a%1Fb",
            "a%a0b",
            "a%85b",
            "a%c2%a0b",
            "a%C2%A0b",
            "a%e3%80%80b",
            "a%e2%80%83b",
            "a%ef%bb%bfb",
            "a%2501b",
            "a\u{1}b",
            "a\u{a0}b",
            "a\u{2028}b",
            "a\u{feff}b",
            "A\u{3000}B",
        ] {
            assert_eq!(canonical(raw.as_bytes(), false), "a b", "{raw}");
        }
        assert_eq!(canonical(b"a\xa0b%20", false), "a b ");
        assert_eq!(canonical(b"a%09b%0ac%00d", false), "a\tb\ncd");
        assert_eq!(canonical("voil%C3%A0 %c3%85".as_bytes(), false), "voil\u{e0} \u{c5}");
        assert_eq!(canonical("10%e2%82%ac".as_bytes(), false), "10\u{20ac}");
    }
}
