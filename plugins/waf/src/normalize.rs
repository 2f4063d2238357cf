//! Turning what an attacker sent into what the application will see, so
//! one rule catches every encoding of an attack: percent-encoding (also
//! doubled, and IIS `%uXXXX`), `+` for space in forms, overlong UTF-8,
//! NUL bytes, backslashes and dot segments in paths, and letter case.

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
