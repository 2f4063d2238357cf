//! Command words the shell glues from pieces: `c''at`, `"w"get`,
//! `pi``ng`, `cu$@rl`, `c$-at`, `wh\oami`, `p""y""t""h""o""n`. A word
//! with such an insertion between two of its letters is written to get
//! past a filter, never by a person; once the shell's joining is undone,
//! a word that is a command is an attack whatever follows it, so this
//! detector needs no separator or argument shape the rules ask for.

use std::sync::LazyLock;

use regex::Regex;

use crate::normalize::Shape;
use crate::rules::GLUED_COMMAND;

static COMMAND: LazyLock<Regex> = LazyLock::new(|| Regex::new(GLUED_COMMAND).expect("glued command pattern"));

/// Longest word looked at: commands are short.
const MAX_WORD: usize = 48;

/// The first command word of `canon` (a canonical, lower-cased value)
/// that was glued from pieces, as the shell reads it. `None` for a value
/// without a quote, backtick, backslash or `$` (the common case), and for
/// quotes around a whole word (`'cat'`), which prose writes.
pub(crate) fn glued_command(canon: &str, shape: Shape) -> Option<String> {
    if !shape.has(Shape::QUOTE | Shape::BACKSLASH | Shape::BACKTICK | Shape::DOLLAR) {
        return None;
    }
    let bytes = canon.as_bytes();
    // Quotes glue only in pairs: a value whose one insertion byte is a
    // lone apostrophe (`O'Neil`) has nothing to join.
    if !shape.has(Shape::BACKSLASH | Shape::BACKTICK | Shape::DOLLAR)
        && bytes.iter().filter(|&&b| b == b'\'').count() < 2
        && bytes.iter().filter(|&&b| b == b'"').count() < 2
    {
        return None;
    }
    let mut word = String::new();
    let mut previous = String::new();
    let mut glued = false;
    let mut i = 0;
    loop {
        let b = bytes.get(i).copied();
        if b.is_none_or(is_separator) {
            // `$()` is an empty substitution, not a separator.
            if b == Some(b'(') && word.ends_with('$') && bytes.get(i + 1) == Some(&b')') {
                word.pop();
                glued |= next_is_word(bytes, i + 2) && !word.is_empty();
                i += 2;
                continue;
            }
            if glued && word.len() <= MAX_WORD && COMMAND.is_match(&word) {
                return Some(word);
            }
            // An option glued from pieces after a command: `kill '-'9`.
            if glued && word.starts_with('-') && COMMAND.is_match(&previous) {
                return Some(format!("{previous} {word}"));
            }
            if !word.is_empty() {
                std::mem::swap(&mut previous, &mut word);
            }
            word.clear();
            glued = false;
            match b {
                Some(_) => i += 1,
                None => return None,
            }
            continue;
        }
        let len = insertion(bytes, i);
        if len > 0 {
            // One apostrophe in a word is English (`i'd`, `don't`); the
            // shell's quotes come in pairs.
            let paired = len > 1 || !matches!(bytes[i], b'\'' | b'"') || quoted_again(bytes, i);
            glued |= paired && !word.is_empty() && next_is_word(bytes, i + len);
            i += len;
            continue;
        }
        let ch = canon[i..].chars().next().expect("in bounds");
        word.push(ch);
        i += ch.len_utf8();
    }
}

/// Bytes at `i` that the shell drops from a word: quotes, `$@`, `$*`,
/// `$-`, positional parameters, empty backtick pairs, a variable that is
/// unset (`$v`, `${v}`), backslashes before a letter. 0 when none.
fn insertion(bytes: &[u8], i: usize) -> usize {
    match (bytes[i], bytes.get(i + 1).copied()) {
        (b'\'' | b'"', _) => 1,
        (b'`', Some(b'`')) => 2,
        (b'$', Some(b'@' | b'*' | b'-' | b'1'..=b'9')) => 2,
        (b'$', Some(b'{')) => match bytes[i + 2..].iter().position(|&b| b == b'}') {
            Some(end)
                if end <= 32
                    && bytes[i + 2..i + 2 + end]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
            {
                end + 3
            }
            _ => 0,
        },
        (b'$', Some(b'a'..=b'z' | b'_')) => {
            1 + bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count()
        }
        (b'\\', _) => {
            let run = bytes[i..].iter().take_while(|&&b| b == b'\\').count();
            match bytes.get(i + run) {
                Some(next) if next.is_ascii_alphanumeric() => run,
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// Whether the quote at `i` occurs again in its word, which the shell
/// then reads as a quoted piece (`"w"get`, `c'a't`).
fn quoted_again(bytes: &[u8], i: usize) -> bool {
    let quote = bytes[i];
    let start = bytes[..i].iter().rposition(|&b| is_separator(b)).map_or(0, |p| p + 1);
    let end = bytes[i + 1..]
        .iter()
        .position(|&b| is_separator(b))
        .map_or(bytes.len(), |p| i + 1 + p);
    bytes[start..end].iter().filter(|&&b| b == quote).count() >= 2
}

/// Bytes that end a word: blanks and the shell's operators, and `+`,
/// which an app may decode to a space.
fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b",;|&<>(){}=+".contains(&b)
}

/// Whether the byte at `i`, after any further insertions, continues a
/// word (a letter, digit, `.`, `/` or `-`).
fn next_is_word(bytes: &[u8], mut i: usize) -> bool {
    while i < bytes.len() {
        let len = insertion(bytes, i);
        if len == 0 {
            return bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'/' | b'-' | b'\\');
        }
        i += len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glued(value: &str) -> Option<String> {
        glued_command(value, Shape::of(value.as_bytes()))
    }

    #[test]
    fn words_glued_from_pieces_are_read_as_the_shell_does() {
        for (value, word) in [
            ("c''at /etc/passwd", "cat"),
            ("\"w\"get localhost", "wget"),
            ("pi``ng 127.0.0.1", "ping"),
            ("pi$()ng 127.0.0.1", "ping"),
            ("cu$@rl google.com", "curl"),
            ("www.example.com;c$-at /et$-c/pas$-swd", "cat"),
            ("v='u';cu$v\\r\\l google.com", "curl"),
            (
                "\"\"p\"\"y\"\"t\"\"h\"\"o\"\"n\"\"3\"\".\"\"1\"\"0\"\" \"\"c\"\"m\"\"d\"\"",
                "python3.10",
            ),
            ("ti''me who", "time"),
            ("/bin/c\\at x", "/bin/cat"),
            ("wh\\oami", "whoami"),
            ("ne''t user", "net"),
            ("c$-at+/etc/passwd", "cat"),
            ("kill '-'9", "kill -9"),
            ("cu\\\\r\\l x", "curl"),
        ] {
            assert_eq!(glued(value).as_deref(), Some(word), "{value}");
        }
    }

    #[test]
    fn quoted_words_prose_and_prices_are_not_glued_commands() {
        for value in [
            "the word 'cat' in french",
            "\"ping\" is a command",
            "o'neil's cat",
            "don't ping me",
            "costs $5-$10 at the cat cafe",
            "it's a 'date' night",
            "$cat is a variable",
            "echo \"$home\"",
            "rock 'n' roll",
            "the 'kill' command's '-9' flag",
            "i'd add that the 'union' of both",
            "where is it? i'd like two tickets",
        ] {
            assert_eq!(glued(value), None, "{value}");
        }
    }
}
