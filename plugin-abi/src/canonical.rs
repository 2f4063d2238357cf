//! The request path's canonical form: the kernel rewrites every request
//! into it before any plugin runs, and plugins use the same function on
//! paths they are given some other way (an invalidation list, a config).
//!
//! Plugins match paths (authn's `public`, the gateway's `routes`, isr's
//! `rules`, vhosts' `pathPrefix`), and runtimes and upstreams resolve them
//! again. If the two read different spellings of one path, `//admin`,
//! `/./admin` or `/%61dmin` passes a check written for `/admin` and still
//! reaches it. So the kernel rewrites the target into one canonical form
//! (RFC 3986 §6.2.2) and every plugin, runtime and upstream sees that:
//!
//! - percent-encoded unreserved characters are decoded (`%61` → `a`,
//!   `%2E` → `.`), every other escape is kept with upper-case hex;
//! - dot segments are removed and runs of `/` merged into one;
//! - refused (400): a `..` above the root, `%00`, a malformed escape, a
//!   raw or encoded backslash (a separator to some file systems and
//!   frameworks), and an encoded slash `%2F` unless
//!   `[platform] encoded_slashes = "decode"` makes it a separator.

use std::borrow::Cow;

use serde::Deserialize;

/// What an encoded slash (`%2F`) in a path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    /// 400: one path would otherwise have two readings, a slash to some
    /// upstreams and data to others.
    #[default]
    Reject,
    /// A separator like `/`, before dot segments are removed (nginx's
    /// reading).
    Decode,
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not `/`-rooted (and not `*`).
    #[error("request target is not an absolute path")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-encoding in path")]
    BadEscape,
    /// `%00`.
    #[error("NUL byte in path")]
    Nul,
    /// `\` or `%5C`.
    #[error("backslash in path")]
    Backslash,
    /// `%2F` with `encoded_slashes = "reject"`.
    #[error("encoded slash (%2F) in path")]
    EncodedSlash,
    /// More `..` segments than there are segments before them.
    #[error("path climbs above the root")]
    AboveRoot,
}

/// The canonical form of `path` (without the query), borrowed when it is
/// already canonical, which is the common case and costs one scan.
pub fn normalise_path(path: &str, slashes: EncodedSlashes) -> Result<Cow<'_, str>, PathError> {
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(path)? {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_escapes(path, slashes)?;
    let canonical = remove_dot_segments(&decoded)?;
    Ok(if canonical == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(canonical)
    })
}

/// Whether `path` needs no work: no escapes, no empty or dot segments.
/// A backslash is refused here already.
fn is_canonical(path: &str) -> Result<bool, PathError> {
    // One pass over the bytes (paths are short; a plain loop beats
    // several searches): a `%` or an empty or dot segment needs work.
    // `seg` is the length of the segment so far, `dots` how many of its
    // bytes are dots.
    let (mut seg, mut dots) = (0usize, 0usize);
    for &b in &path.as_bytes()[1..] {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => return Ok(false),
            b'/' => {
                if seg == 0 || (seg == dots && seg <= 2) {
                    return Ok(false);
                }
                (seg, dots) = (0, 0);
            }
            b'.' => {
                seg += 1;
                dots += 1;
            }
            _ => seg += 1,
        }
    }
    // The last segment may be empty (a trailing slash), not a dot one.
    Ok(!(seg > 0 && seg == dots && seg <= 2))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escapes of unreserved characters (and of `/` when asked),
/// upper-cases the others, and refuses the dangerous ones.
fn decode_escapes(path: &str, slashes: EncodedSlashes) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            if b == b'\\' {
                return Err(PathError::Backslash);
            }
            out.push(b as char);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let c = hi << 4 | lo;
        match c {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b'/' if slashes == EncodedSlashes::Reject => return Err(PathError::EncodedSlash),
            b'/' => out.push('/'),
            c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => out.push(c as char),
            c => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(c >> 4)] as char);
                out.push(HEX[usize::from(c & 15)] as char);
            }
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on a `/`-rooted path, with empty segments merged and a
/// `..` above the root refused instead of dropped.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalise_path(p, EncodedSlashes::Reject).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in ["/", "/a", "/a/", "/a/b.txt", "/a/.well-known/x", "/a..b/c", "/...", "*"] {
            assert!(
                matches!(normalise_path(p, EncodedSlashes::Reject), Ok(Cow::Borrowed(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn every_spelling_of_admin_is_one_path() {
        for p in [
            "/admin/secret.txt",
            "//admin/secret.txt",
            "/./admin/secret.txt",
            "/%61dmin/secret.txt",
            "/%61%64%6D%69%6e/secret.txt",
            "/public/../admin/secret.txt",
            "/public/%2e%2e/admin/secret.txt",
            "/public/%2E./admin/secret.txt",
            "/admin/./secret.txt",
            "/admin//secret.txt",
            "///admin///secret.txt",
            "/x/y/../../admin/secret.txt",
            "/admin/sub/..//secret.txt",
        ] {
            assert_eq!(norm(p).as_deref(), Ok("/admin/secret.txt"), "{p}");
        }
    }

    #[test]
    fn trailing_slashes_and_the_root() {
        assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/..").as_deref(), Ok("/"));
        assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(norm("//").as_deref(), Ok("/"));
        assert_eq!(norm("/.").as_deref(), Ok("/"));
        assert_eq!(norm("/a//").as_deref(), Ok("/a/"));
    }

    #[test]
    fn other_escapes_are_kept_upper_case() {
        assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(norm("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        // `%25` stays, so a later decode yields `%2e`, never `.`.
        assert_eq!(norm("/%252e%252e/x").as_deref(), Ok("/%252e%252e/x"));
        assert_eq!(norm("/a%3Fb").as_deref(), Ok("/a%3Fb"));
    }

    #[test]
    fn refusals() {
        assert_eq!(norm("/../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../etc"), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc"), Err(PathError::AboveRoot));
        assert_eq!(norm("/a%00.txt"), Err(PathError::Nul));
        assert_eq!(norm("/a%5cb"), Err(PathError::Backslash));
        assert_eq!(norm("/a\\..\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/admin%2fsecret"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/admin%2Fsecret"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%g0"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%0"), Err(PathError::BadEscape));
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn decoded_slashes_are_separators() {
        let d = |p| normalise_path(p, EncodedSlashes::Decode).map(Cow::into_owned);
        assert_eq!(d("/admin%2Fsecret").as_deref(), Ok("/admin/secret"));
        assert_eq!(d("/public%2F..%2Fadmin/x").as_deref(), Ok("/admin/x"));
        assert_eq!(d("/%2F%2Fadmin").as_deref(), Ok("/admin"));
        assert_eq!(d("/%2F..%2F..%2Fetc"), Err(PathError::AboveRoot));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/./b/../c//d/%7e%41", "/x%2fy", "/%2E%2E/a"] {
            for mode in [EncodedSlashes::Reject, EncodedSlashes::Decode] {
                if let Ok(once) = normalise_path(p, mode) {
                    let twice = normalise_path(&once, mode).unwrap();
                    assert_eq!(once, twice, "{p}");
                }
            }
        }
    }
}
