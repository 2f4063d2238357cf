//! Code the shell cannot parse. `sh` and `bash` parse a whole line (and a
//! whole backtick substitution) before they run any of it, and a `(`
//! glued after a word that is not a command's first word is a syntax
//! error: `ls = os.listdir(folder)` is Python, and a shell given it runs
//! nothing, not `ls`. Where a value quotes such code in backticks (a
//! Markdown code span, or a substitution a shell would run), the
//! command-injection rules read the value with those pieces blanked: what
//! the shell cannot parse, it cannot run. A whole value is read as it is:
//! a probe that need not parse is still refused. Only pieces with nothing the
//! shell reads differently in context (no quote, backslash, `#`, `$(`,
//! `[[`, line break) are judged; anything else is read as before.

use std::borrow::Cow;

/// Longest piece judged: a code span is short.
const MAX_PIECE: usize = 256;

/// `canon` with each backtick substitution the shell cannot parse blanked
/// (backticks included), or `None` when there is none: the value as the
/// shell rules should read it.
pub(crate) fn unparsable_code_blanked(canon: &str) -> Option<Cow<'_, str>> {
    // No `(`, no syntax error of this kind.
    memchr::memchr(b'(', canon.as_bytes())?;
    let ticks = memchr::memchr_iter(b'`', canon.as_bytes()).count();
    // Backticks pair up; an odd count is no set of substitutions.
    if ticks < 2 || !ticks.is_multiple_of(2) {
        return None;
    }
    let mut out = String::with_capacity(canon.len());
    let mut blanked = false;
    for (i, piece) in canon.split('`').enumerate() {
        if i % 2 == 1 && !piece.trim().is_empty() && !has_operator(piece) && cannot_parse(piece) {
            out.extend(std::iter::repeat_n(' ', piece.len() + 2));
            blanked = true;
            continue;
        }
        if i % 2 == 1 {
            out.push('`');
            out.push_str(piece);
            out.push('`');
        } else {
            out.push_str(piece);
        }
    }
    blanked.then_some(Cow::Owned(out))
}

/// Whether `code` holds a shell operator (`;`, `|`, `&`, `<`, `>`): a
/// break-out or a redirection written into a value is an attack's shape,
/// a probe too, whether or not the rest of its line parses
/// (`;gcc<<<void main(){}`), so the rules read it as it is.
fn has_operator(code: &str) -> bool {
    code.bytes().any(|b| matches!(b, b';' | b'|' | b'&' | b'<' | b'>'))
}

/// Whether the shell refuses `line` as a syntax error: a `(` glued after
/// a word that is not in a command's place (`x = f()`, `fn main()`), as
/// the shell sees it with no quoting around. `false` for anything the
/// shell could read another way (quotes, escapes, comments, `$(`, `[[`,
/// a line break) and for valid uses of `(`: a function's definition
/// (`f()` first), a subshell, an array (`a=(1 2)`), `$(`, `<(`, globs.
pub(crate) fn cannot_parse(line: &str) -> bool {
    if line.len() > MAX_PIECE
        || line
            .bytes()
            .any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'#' | b'\n' | b'\r' | b'`'))
        || line.contains("$(")
        || line.contains("[[")
    {
        return false;
    }
    let bytes = line.as_bytes();
    // Whether the next word is in a command's place.
    let mut command_place = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if matches!(b, b';' | b'&' | b'|' | b'(' | b')' | b'{' | b'}' | b'!') {
            command_place = true;
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b';' | b'&' | b'|' | b'(' | b')')
        {
            i += 1;
        }
        let word = &line[start..i];
        let glued_paren = bytes.get(i) == Some(&b'(') && word.bytes().last().is_some_and(is_name_byte);
        if glued_paren {
            // `name()` first in a command defines a function; anywhere
            // else a glued `(` is a syntax error.
            let defines = command_place && line[i..].trim_start_matches('(').trim_start().starts_with(')');
            if !defines {
                return true;
            }
        }
        command_place = is_assignment(word) || KEYWORDS_BEFORE_A_COMMAND.contains(&word);
    }
    false
}

/// Words after which the next word is again a command's first.
const KEYWORDS_BEFORE_A_COMMAND: &[&str] = &[
    "if", "then", "else", "elif", "while", "until", "do", "time", "function", "coproc", "exec", "command", "builtin",
    "nohup", "sudo", "env",
];

/// A byte a command or variable name ends with; `=(` (an array), `<(`,
/// `>(`, `@(`, `!(` and the other glob forms end in none.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b':')
}

/// `name=value`, which keeps the next word in a command's place.
fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_of_other_languages_is_a_syntax_error_to_the_shell() {
        for line in [
            "ls = os.listdir(folder)",
            "ls = os.listdir()",
            "fn main() {}",
            "fun main() { println(x) }",
            "files = glob.glob(pattern)",
            "cat = animals.get(name)",
            "len(rows)",
            "x; echo hi f(1)",
        ] {
            assert!(cannot_parse(line), "{line}");
        }
    }

    #[test]
    fn what_the_shell_parses_is_no_syntax_error() {
        for line in [
            "ls -la",
            "cat /etc/passwd",
            "f(){ f|f& };f",
            ":(){ :|:& };:",
            "x() { id; }",
            "function f() { id; }",
            "a=(1 2); cat /etc/passwd",
            "diff <(ls a) <(ls b)",
            "(id)",
            "id; (cat /etc/passwd)",
            "ls @(a|b)",
            // What the shell reads another way is not judged.
            "cat /etc/passwd # f()",
            "echo \"f()\"; id",
            "echo 'f()'; id",
            "echo $(id) f()",
            "[[ a =~ x(b) ]] && id",
            "id\nf()",
        ] {
            assert!(!cannot_parse(line), "{line}");
        }
    }

    #[test]
    fn only_substitutions_the_shell_cannot_parse_are_blanked() {
        assert_eq!(
            unparsable_code_blanked("the key was `ls = os.listdir(folder)` instead of `glob`").as_deref(),
            Some("the key was                           instead of `glob`")
        );
        assert_eq!(
            unparsable_code_blanked("run `ls -la` then `f(x)`").as_deref(),
            Some("run `ls -la` then       ")
        );
        assert_eq!(unparsable_code_blanked("run `ls -la` now"), None);
        assert_eq!(unparsable_code_blanked("odd ` tick `f(x)`"), None);
        // A whole value is read as it is (a probe need not parse).
        assert_eq!(unparsable_code_blanked("ls = os.listdir()"), None);
        assert_eq!(unparsable_code_blanked("a `x; y f()` b"), None);
    }
}
