//! Code quoted in prose: a comment or a post written in Markdown, with
//! commands and snippets in code spans (`` `npm install` ``) and fenced
//! blocks (```` ```python ````). Such a value is text about code, shown to
//! a reader; it is not an injection point the way a short id, filter or
//! path is. A value is read this way only when Markdown's grammar accounts
//! for every backtick in it (spans that open and close on word
//! boundaries, fences on lines of their own, each closed) and either it
//! has a fenced block or the text outside its code is natural language
//! (three words or more, two tokens in three words).
//!
//! The inspection then splits the value (see `Engine::check_quoted`):
//! the families whose sinks run a value as a whole program (the shell's
//! command line, Node and PHP `eval`) read the prose, and the quoted
//! code only for what acts wherever it sits (a pipe into a shell, a
//! substitution, a reverse shell, a system file, `<?php`); every other
//! family reads the whole value as before.

use std::sync::LazyLock;

use regex::Regex;

use crate::rules::FENCED_COMMAND;

static FENCED: LazyLock<Regex> = LazyLock::new(|| Regex::new(FENCED_COMMAND).expect("fenced command pattern"));

/// Whether a line of a fenced block (canonical) is a command line a shell
/// would run (`FENCED_COMMAND`): a block a shell substitutes runs each line.
pub(crate) fn command_line_of_block(line: &str) -> bool {
    FENCED.is_match(line)
}

/// The `${...}` substitutions in quoted code: a code span or block is a
/// template literal to JavaScript, which runs them.
pub(crate) fn template_substitutions(code: &str) -> impl Iterator<Item = &str> {
    code.match_indices("${").map(move |(at, _)| {
        let inner = &code[at + 2..];
        let mut depth = 0usize;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => return &inner[..i],
                '}' => depth -= 1,
                _ => {}
            }
        }
        inner
    })
}

/// A value's Markdown code and the prose around it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Quoted<'a> {
    /// The value with each code span and fenced block blanked out.
    pub(crate) prose: String,
    /// The text of each code span and fenced block, without its fences.
    pub(crate) code: Vec<&'a str>,
    /// The text of each fenced block alone.
    pub(crate) fenced: Vec<&'a str>,
    /// The value with each fenced block (fences and text) blanked out;
    /// its code spans are kept, backticks and all.
    pub(crate) outside: String,
}

/// Longest value read as Markdown; a comment is shorter than a window.
const MAX_LEN: usize = 16 * 1024;

/// `value` (canonical) as prose and quoted code, or `None` when it is not
/// Markdown with code (most values: no backtick, or one Markdown does not
/// account for, or too little prose around a code span).
pub(crate) fn quoted_code(value: &str) -> Option<Quoted<'_>> {
    if value.len() > MAX_LEN || !value.contains('`') {
        return None;
    }
    let mut prose = String::with_capacity(value.len());
    let mut outside = String::with_capacity(value.len());
    let mut code = Vec::new();
    let mut fenced = Vec::new();
    // (fence length, where its content starts)
    let mut fence: Option<(usize, usize)> = None;
    let mut at = 0;
    for line in value.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let text = line.trim_end_matches(['\n', '\r']);
        let indent = text.len() - text.trim_start_matches(' ').len();
        let body = &text[indent..];
        let ticks = body.len() - body.trim_start_matches('`').len();
        if let Some((len, from)) = fence {
            if indent < 4 && ticks >= len && body[ticks..].trim().is_empty() {
                code.push(&value[from..start]);
                fenced.push(&value[from..start]);
                fence = None;
                prose.push('\n');
            }
            outside.push('\n');
            continue;
        }
        if indent < 4 && ticks >= 3 {
            // An info string names a language: no backtick, no blank.
            let info = body[ticks..].trim();
            if !info
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'_' | b'.'))
            {
                return None;
            }
            fence = Some((ticks, at));
            prose.push('\n');
            outside.push('\n');
            continue;
        }
        spans(line, &mut prose, &mut code)?;
        outside.push_str(line);
    }
    if fence.is_some() || code.is_empty() || (fenced.is_empty() && !natural_language(&prose)) {
        return None;
    }
    Some(Quoted {
        prose,
        code,
        fenced,
        outside,
    })
}

/// One line's code spans into `code`, the rest into `prose`; `None` when
/// a backtick opens no span (unclosed, or glued to a word: `` a`id` ``).
fn spans<'a>(line: &'a str, prose: &mut String, code: &mut Vec<&'a str>) -> Option<()> {
    let b = line.as_bytes();
    let run = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
    let mut i = 0;
    let mut copied = 0;
    while let Some(off) = memchr::memchr(b'`', &b[i..]) {
        let open = i + off;
        let len = run(open);
        // The closing run has exactly as many backticks.
        let mut j = open + len;
        let close = loop {
            let next = j + memchr::memchr(b'`', &b[j..])?;
            let n = run(next);
            if n == len {
                break next;
            }
            j = next + n;
        };
        let end = close + len;
        let glued = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if glued(open.checked_sub(1).map(|k| &b[k])) || glued(b.get(end)) || close == open + len {
            return None;
        }
        prose.push_str(&line[copied..open]);
        prose.push(' ');
        code.push(&line[open + len..close]);
        copied = end;
        i = end;
    }
    prose.push_str(&line[copied..]);
    Some(())
}

/// Whether `prose` reads as natural language: three words or more (runs
/// of letters, with an apostrophe or a hyphen inside), and no more than
/// one token in three that is something else. Markup alone (`##`, `-`,
/// `>`, `1.`) and punctuation around a word do not count.
fn natural_language(prose: &str) -> bool {
    let (mut words, mut other) = (0usize, 0usize);
    for token in prose.split_whitespace() {
        let t = token
            .trim_start_matches(['(', '[', '{', '"', '\'', '*', '_', '>', '#', '-'])
            .trim_end_matches(['.', ',', ':', ';', '!', '?', ')', ']', '}', '"', '\'', '*', '_']);
        if t.is_empty() || t.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut chars = t.chars();
        let word =
            chars.next().is_some_and(char::is_alphabetic) && chars.all(|c| c.is_alphabetic() || c == '\'' || c == '-');
        if word {
            words += 1;
        } else {
            other += 1;
        }
    }
    words >= 3 && words >= 2 * other
}

#[cfg(test)]
mod tests {
    use super::quoted_code;

    fn code(value: &str) -> Option<Vec<&str>> {
        quoted_code(value).map(|q| q.code)
    }

    #[test]
    fn markdown_code_in_prose_is_quoted() {
        assert_eq!(
            code("## setup\n\nrun `npm install` then `npm start`.\n\n```js\nconst x = require('./config');\n```\n"),
            Some(vec!["npm install", "npm start", "const x = require('./config');\n"])
        );
        assert_eq!(code("to list files use `ls -la`."), Some(vec!["ls -la"]));
        assert_eq!(
            code("python:\n\n```python\nimport os\nprint(os.path.join('a', 'b'))\n```"),
            Some(vec!["import os\nprint(os.path.join('a', 'b'))\n"])
        );
        // A double backtick quotes a backtick.
        assert_eq!(code("type ``a`b`` in the box"), Some(vec!["a`b"]));
        let q = quoted_code("see `x` here, please.").unwrap();
        assert_eq!(q.prose, "see   here, please.");
    }

    #[test]
    fn fenced_blocks_are_told_from_the_rest() {
        let q = quoted_code("Run `make`:\n\n```sh\ncd app\nmake\n```\ndone").unwrap();
        assert_eq!(q.fenced, vec!["cd app\nmake\n"]);
        assert_eq!(q.outside, "Run `make`:\n\n\n\n\n\ndone");
        assert!(quoted_code("see `x` here, please.").unwrap().fenced.is_empty());
    }

    #[test]
    fn a_payload_with_backticks_is_no_markdown() {
        for value in [
            "`id`",                             // no prose
            "1;`id`",                           // no prose
            "echo `whoami` > x",                // shell, not prose: two words
            "a`id`b and some more words",       // glued to words
            "please run `id and all the rest",  // unclosed
            "see this\n```\ncat /etc/passwd\n", // unclosed fence
            "```sh `id`\nx\n```",               // a backtick in the info string
            "x=1&y=`id` &z=/tmp/a /etc/b ../c", // more code than words
            "",
        ] {
            assert_eq!(quoted_code(value), None, "{value}");
        }
    }
}
