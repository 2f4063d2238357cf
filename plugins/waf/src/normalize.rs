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
/// folded to ASCII, NUL bytes removed, lower-cased.
pub fn canonical(raw: &[u8], plus_is_space: bool) -> Cow<'_, str> {
    if raw
        .iter()
        .all(|&b| plain_byte(b) && !b.is_ascii_uppercase() && (b != b'+' || !plus_is_space))
    {
        // The common case: nothing to decode, nothing to fold.
        return Cow::Borrowed(std::str::from_utf8(raw).expect("plain bytes are ASCII"));
    }
    if raw.iter().all(|&b| plain_byte(b) && (b != b'+' || !plus_is_space)) {
        // Only upper case to fold (a user agent, a mixed-case token).
        let lower = raw.to_ascii_lowercase();
        return Cow::Owned(String::from_utf8(lower).expect("plain bytes are ASCII"));
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
    let mut out = String::from_utf8_lossy(&bytes).into_owned();
    out.retain(|c| c != '\0');
    out.make_ascii_lowercase();
    Cow::Owned(out)
}

/// Bytes that never need decoding or folding.
fn plain_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'%' || b == b' '
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
pub(crate) fn unescape_entities_and_js(value: &str) -> Option<String> {
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
pub(crate) fn base64_text(raw: &[u8]) -> Option<String> {
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
    }

    #[test]
    fn resolves_paths_like_a_file_system() {
        assert_eq!(resolve_path("/a/./b/../../../etc//passwd"), "/etc/passwd");
        assert_eq!(resolve_path("..\\..\\windows\\win.ini"), "/windows/win.ini");
        assert_eq!(resolve_path("/static/"), "/static/");
        assert_eq!(resolve_path(""), "/");
    }
}
