//! SecLang transformations (`t:`): what a value becomes before an
//! operator sees it, as ModSecurity computes it (bytes in, bytes out).

use super::LoadError;

/// One `t:` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transform {
    Lowercase,
    UrlDecode,
    UrlDecodeUni,
    HtmlEntityDecode,
    JsDecode,
    CssDecode,
    CmdLine,
    CompressWhitespace,
    RemoveWhitespace,
    RemoveNulls,
    ReplaceNulls,
    NormalisePath,
    NormalisePathWin,
    Utf8ToUnicode,
    Base64Decode,
    HexDecode,
    HexEncode,
    Length,
    Trim,
    RemoveComments,
    ReplaceComments,
}

impl Transform {
    /// The step named by `t:name`; `Ok(None)` for `none` (which clears the
    /// list) .
    pub(crate) fn parse(name: &str) -> Result<Option<Transform>, LoadError> {
        use Transform::*;
        Ok(Some(match name.to_ascii_lowercase().as_str() {
            "none" => return Ok(None),
            "lowercase" => Lowercase,
            "urldecode" => UrlDecode,
            "urldecodeuni" => UrlDecodeUni,
            "htmlentitydecode" => HtmlEntityDecode,
            "jsdecode" => JsDecode,
            "cssdecode" => CssDecode,
            "cmdline" => CmdLine,
            "compresswhitespace" => CompressWhitespace,
            "removewhitespace" => RemoveWhitespace,
            "removenulls" => RemoveNulls,
            "replacenulls" => ReplaceNulls,
            "normalisepath" | "normalizepath" => NormalisePath,
            "normalisepathwin" | "normalizepathwin" => NormalisePathWin,
            "utf8tounicode" => Utf8ToUnicode,
            "base64decode" | "base64decodeext" => Base64Decode,
            "hexdecode" => HexDecode,
            "hexencode" => HexEncode,
            "length" => Length,
            "trim" => Trim,
            "removecomments" => RemoveComments,
            "replacecomments" => ReplaceComments,
            _ => return Err(LoadError::Unsupported(format!("t:{name}"))),
        }))
    }

    /// The value after this step.
    pub(crate) fn apply(self, v: &[u8]) -> Vec<u8> {
        use Transform::*;
        match self {
            Lowercase => v.to_ascii_lowercase(),
            UrlDecode => url_decode(v, false),
            UrlDecodeUni => url_decode(v, true),
            HtmlEntityDecode => html_entity_decode(v),
            JsDecode => js_decode(v),
            CssDecode => css_decode(v),
            CmdLine => cmd_line(v),
            CompressWhitespace => compress_whitespace(v),
            RemoveWhitespace => v.iter().copied().filter(|&b| !is_space(b) && b != 0xa0).collect(),
            RemoveNulls => v.iter().copied().filter(|&b| b != 0).collect(),
            ReplaceNulls => v.iter().map(|&b| if b == 0 { b' ' } else { b }).collect(),
            NormalisePath => normalise_path(v, false),
            NormalisePathWin => normalise_path(v, true),
            Utf8ToUnicode => utf8_to_unicode(v),
            Base64Decode => base64_decode(v),
            HexDecode => hex_decode(v),
            HexEncode => v.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect(),
            Length => v.len().to_string().into_bytes(),
            Trim => v.trim_ascii().to_vec(),
            RemoveComments => comments(v, false),
            ReplaceComments => comments(v, true),
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A code point as the single byte ModSecurity keeps: full-width ASCII
/// (U+FF01-U+FF5E) as its ASCII letter, otherwise the low byte.
fn code_point_byte(c: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&c) {
        (c - 0xfee0) as u8
    } else {
        (c & 0xff) as u8
    }
}

fn url_decode(v: &[u8], uni: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' if uni
                && i + 5 < v.len()
                && (v[i + 1] | 0x20) == b'u'
                && v[i + 2..i + 6].iter().all(|b| b.is_ascii_hexdigit()) =>
            {
                let c = v[i + 2..i + 6]
                    .iter()
                    .fold(0u32, |a, &b| a * 16 + u32::from(hex(b).unwrap_or(0)));
                out.push(code_point_byte(c));
                i += 6;
            }
            b'%' if i + 2 < v.len() => match (hex(v[i + 1]), hex(v[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Decodes `%XX` only (no `+`): the path and a value's raw form.
pub(crate) fn percent_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && i + 2 < v.len()
            && let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// Form decoding: `+` is a space, then `%XX`.
pub(crate) fn form_decode(v: &[u8]) -> Vec<u8> {
    url_decode(v, false)
}

fn html_entity_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'&'
            && let Some((bytes, used)) = entity(&v[i + 1..])
        {
            out.extend_from_slice(&bytes);
            i += 1 + used;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

/// An entity after `&`: its bytes and the length consumed (with an
/// optional `;`).
fn entity(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let semi = |n: usize| n + usize::from(s.get(n) == Some(&b';'));
    if s.first() == Some(&b'#') {
        let (radix, start) = if matches!(s.get(1), Some(b'x' | b'X')) {
            (16, 2)
        } else {
            (10, 1)
        };
        let digits = s[start..].iter().take_while(|b| (**b as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&s[start..start + digits]).ok()?;
        let c = u32::from_str_radix(&text[..text.len().min(8)], radix).ok()?;
        return Some((vec![code_point_byte(c)], semi(start + digits)));
    }
    let name_len = s.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
    let byte = match s[..name_len].to_ascii_lowercase().as_slice() {
        b"quot" => b'"',
        b"amp" => b'&',
        b"lt" => b'<',
        b"gt" => b'>',
        b"nbsp" => 0xa0,
        b"apos" => b'\'',
        _ => return None,
    };
    Some((vec![byte], semi(name_len)))
}

fn js_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let n = v[i + 1];
        if n == b'u' && i + 5 < v.len() && v[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) {
            let c = v[i + 2..i + 6]
                .iter()
                .fold(0u32, |a, &b| a * 16 + u32::from(hex(b).unwrap_or(0)));
            out.push(code_point_byte(c));
            i += 6;
        } else if n == b'x' && i + 3 < v.len() && v[i + 2].is_ascii_hexdigit() && v[i + 3].is_ascii_hexdigit() {
            out.push(hex(v[i + 2]).unwrap_or(0) * 16 + hex(v[i + 3]).unwrap_or(0));
            i += 4;
        } else if (b'0'..=b'7').contains(&n) {
            let digits = v[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(*b))
                .count();
            let c = v[i + 1..i + 1 + digits]
                .iter()
                .fold(0u32, |a, &b| a * 8 + u32::from(b - b'0'));
            out.push((c & 0xff) as u8);
            i += 1 + digits;
        } else {
            out.push(match n {
                b'a' => 7,
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 11,
                other => other,
            });
            i += 2;
        }
    }
    out
}

fn css_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let digits = v[i + 1..].iter().take(6).take_while(|b| b.is_ascii_hexdigit()).count();
        if digits > 0 {
            let c = v[i + 1..i + 1 + digits]
                .iter()
                .fold(0u32, |a, &b| a * 16 + u32::from(hex(b).unwrap_or(0)));
            out.push(code_point_byte(c));
            i += 1 + digits;
            // One whitespace after a hex escape belongs to it.
            if i < v.len() && is_space(v[i]) {
                i += 1;
            }
        } else if v[i + 1] == b'\n' {
            i += 2;
        } else {
            out.push(v[i + 1]);
            i += 2;
        }
    }
    out
}

fn cmd_line(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut space = false;
    for &b in v {
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b',' | b';' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            _ => {
                space = false;
                out.push(b.to_ascii_lowercase());
            }
        }
    }
    out
}

fn compress_whitespace(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut space = false;
    for &b in v {
        if is_space(b) || b == 0xa0 {
            if !space {
                out.push(b' ');
            }
            space = true;
        } else {
            out.push(b);
            space = false;
        }
    }
    out
}

fn normalise_path(v: &[u8], win: bool) -> Vec<u8> {
    let v: Vec<u8> = if win {
        v.iter().map(|&b| if b == b'\\' { b'/' } else { b }).collect()
    } else {
        v.to_vec()
    };
    let absolute = v.first() == Some(&b'/');
    let trailing = v.last() == Some(&b'/') || v.ends_with(b"/.") || v.ends_with(b"/..");
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in v.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segs.last().is_some_and(|s| *s != b"..") {
                    segs.pop();
                } else if !absolute {
                    segs.push(seg);
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::with_capacity(v.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&segs.join(&b'/'));
    if trailing && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_ascii() {
                out.push(c as u8);
            } else {
                out.extend_from_slice(format!("%u{:04x}", u32::from(c) & 0xffff).as_bytes());
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

fn base64_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &b in v {
        let d = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex_decode(v: &[u8]) -> Vec<u8> {
    v.chunks_exact(2)
        .filter_map(|p| Some(hex(p[0])? * 16 + hex(p[1])?))
        .collect()
}

/// `removeComments` (drops `/* */`, `<!-- -->`, and `--`/`#` to the end
/// of the line) or `replaceComments` (`/* */` becomes a space).
fn comments(v: &[u8], replace: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(b"/*") {
            let end = find(&v[i + 2..], b"*/").map_or(v.len(), |e| i + 2 + e + 2);
            if replace {
                out.push(b' ');
            }
            i = end;
        } else if !replace && v[i..].starts_with(b"<!--") {
            i = find(&v[i + 4..], b"-->").map_or(v.len(), |e| i + 4 + e + 3);
        } else if !replace && (v[i..].starts_with(b"--") || v[i] == b'#') {
            i = v[i..].iter().position(|&b| b == b'\n').map_or(v.len(), |e| i + e);
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::Transform::*;
    use super::*;

    fn t(step: Transform, v: &str) -> String {
        String::from_utf8_lossy(&step.apply(v.as_bytes())).into_owned()
    }

    #[test]
    fn decodings() {
        assert_eq!(t(UrlDecode, "a%27+b%2"), "a' b%2");
        assert_eq!(t(UrlDecodeUni, "%u0027%uff1cx"), "'<x");
        assert_eq!(t(HtmlEntityDecode, "&lt;&#x27;&#39&quot;&bogus;"), "<''\"&bogus;");
        assert_eq!(t(JsDecode, r"\u0061\x62\143\n"), "abc\n");
        assert_eq!(t(CssDecode, r"\6a avascript\:"), "javascript:");
        assert_eq!(t(Base64Decode, "dW5pb24="), "union");
        assert_eq!(t(HexDecode, "2f6574"), "/et");
        assert_eq!(t(HexEncode, "/e"), "2f65");
        assert_eq!(t(Utf8ToUnicode, "a\u{e9}"), "a%u00e9");
    }

    #[test]
    fn shapes() {
        assert_eq!(t(Lowercase, "SeLeCt"), "select");
        assert_eq!(t(CmdLine, "C^A\"T  /e'tc ;ls"), "cat/etc ls");
        assert_eq!(t(CompressWhitespace, "a \t\n b"), "a b");
        assert_eq!(t(RemoveWhitespace, "a \t b"), "ab");
        assert_eq!(t(RemoveNulls, "a\0b"), "ab");
        assert_eq!(t(ReplaceNulls, "a\0b"), "a b");
        assert_eq!(t(NormalisePath, "/a/./b/../../etc//passwd"), "/etc/passwd");
        assert_eq!(t(NormalisePathWin, r"a\..\..\win.ini"), "../win.ini");
        assert_eq!(t(Length, "abcd"), "4");
        assert_eq!(t(Trim, "  x "), "x");
        assert_eq!(t(RemoveComments, "UNI/**/ON -- x"), "UNION ");
        assert_eq!(t(ReplaceComments, "UNI/**/ON"), "UNI ON");
        assert!(Transform::parse("none").unwrap().is_none());
        assert!(Transform::parse("sha1").is_err());
    }
}
