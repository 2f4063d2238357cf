//! A call of a PHP function by its name from PHP's own vocabulary
//! (`php_functions.txt`: the 1,300 functions CRS 933150/933151 list,
//! none of them an English word), with the blanks and comments PHP
//! allows between a name and its `(`: `array_diff (`, `bin2hex\t()`,
//! `ftruncate/*x*/()`, `gzinflate#c\n()`. A method (`$x->name(`,
//! `obj.name(`), a longer word (`xucfirst(`) or a `(` inside a comment
//! (`getmxrr#x()`) is no such call.

use std::collections::HashSet;
use std::sync::LazyLock;

static NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("php_functions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Longest name in the list, and so the longest word looked up.
const MAX_NAME: usize = 48;

/// The first PHP function of the list that `canon` (canonical,
/// lower-cased) calls.
pub(crate) fn php_call(canon: &str) -> Option<&str> {
    let b = canon.as_bytes();
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'(', &b[from..]) {
        let open = from + at;
        from = open + 1;
        let end = before_gap(b, open);
        let start = b[..end]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(0, |p| p + 1);
        let name = &canon[start..end];
        if name.is_empty() || name.len() > MAX_NAME || name.as_bytes()[0].is_ascii_digit() {
            continue;
        }
        let method = start > 0 && matches!(b[start - 1], b'$' | b'.' | b'>' | b'-' | b':' | b'\\');
        if !method && NAMES.contains(name) {
            return Some(name);
        }
    }
    None
}

/// Where the name before the `(` at `open` ends: blanks, `/* */`
/// comments and `//` or `#` comments closed by a line break skipped.
fn before_gap(b: &[u8], open: usize) -> usize {
    let mut end = open;
    loop {
        while end > 0 && matches!(b[end - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
            end -= 1;
        }
        if end >= 2 && &b[end - 2..end] == b"*/" {
            match find_back(&b[..end - 2], b"/*") {
                Some(p) => {
                    end = p;
                    continue;
                }
                None => return end,
            }
        }
        // A line comment ends at the line break the blanks crossed.
        let line_start = b[..end].iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        if line_start < end && b[end..open].contains(&b'\n') {
            let line = &b[line_start..end];
            if let Some(p) = line.iter().position(|&c| c == b'#').or_else(|| find_back(line, b"//")) {
                end = line_start + p;
                continue;
            }
        }
        return end;
    }
}

fn find_back(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::php_call;

    #[test]
    fn calls_with_php_gaps_are_found() {
        for (value, name) in [
            ("array_diff (", "array_diff"),
            ("bin2hex\t()", "bin2hex"),
            ("getmxrr\x0b()", "getmxrr"),
            ("ftruncate/*x*/()", "ftruncate"),
            ("gzinflate#c\n()", "gzinflate"),
            ("strtoupper//c\n()", "strtoupper"),
            ("x=gethostbyname('a')", "gethostbyname"),
        ] {
            assert_eq!(php_call(value), Some(name), "{value:?}");
        }
    }

    #[test]
    fn methods_words_and_commented_parens_pass() {
        for value in [
            "xucfirst()",
            "getmxrr#x()",
            "$obj->bin2hex()",
            "os.path.join('a')",
            "meeting date (tbd)",
            "ceiling height(9ft)",
            "openlogfile(foo)",
            "print(x)",
            "2(3)",
        ] {
            assert_eq!(php_call(value), None, "{value:?}");
        }
    }
}
