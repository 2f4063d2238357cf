//! A path the shell expands to a system file or program, written with
//! wildcards or insertions so that no filter sees its name: `/???/b??h`,
//! `/et*/pa??wd`, `/bin/ca\t`, `/e'tc'/pass$@wd`, `/usr/b[i]n/wh?ami`
//! (CRS 932190, 932200). The word is read as the shell reads it (quotes,
//! backslashes, unset variables and empty substitutions dropped) and its
//! wildcards are matched against the names a system has: a directory
//! such as `/etc` or `/bin` at every step, then a file an attacker reads
//! or a program one runs. A web path or a query with a `?` or `*`
//! (`/api/v?/users`, `/home/*/docs`, `/var/log/*.log`) names no such
//! file once its wildcards are matched, and passes.

/// Longest word looked at: such paths are short.
const MAX_WORD: usize = 96;

/// Directories on the way to a system file.
const DIRS: &[&str] = &[
    "bin", "sbin", "etc", "usr", "local", "dev", "proc", "self", "var", "tmp", "root", "opt", "lib", "lib64", "boot",
    "sys", "run", "home",
];

/// Files an attacker reads and programs one runs.
const TARGETS: &[&str] = &[
    // files
    "passwd",
    "shadow",
    "group",
    "gshadow",
    "hosts",
    "hostname",
    "issue",
    "sudoers",
    "crontab",
    "environ",
    "cmdline",
    "motd",
    "fstab",
    "mtab",
    "profile",
    "bashrc",
    "id_rsa",
    "authorized_keys",
    "resolv.conf",
    "master.passwd",
    // programs
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "cat",
    "tac",
    "nc",
    "ncat",
    "netcat",
    "curl",
    "wget",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "id",
    "whoami",
    "uname",
    "ls",
    "ps",
    "busybox",
    "socat",
    "telnet",
    "base64",
    "chmod",
    "chown",
    "rm",
    "sleep",
    "ping",
    "env",
    "echo",
    "nslookup",
    "ifconfig",
    "awk",
    "sed",
    "grep",
    "head",
    "tail",
    "more",
    "less",
    "vi",
    "vim",
    "find",
    "xxd",
];

/// The first word of `canon` (canonical, lower-cased) that the shell
/// expands to a system file or program and that is written with a
/// wildcard or an insertion. `None` for a value without a `/` and any of
/// `?*[\'"$` and a backtick (most values).
pub(crate) fn globbed_system_path(canon: &str) -> Option<&str> {
    let bytes = canon.as_bytes();
    if !bytes.contains(&b'/')
        || !bytes
            .iter()
            .any(|b| matches!(b, b'?' | b'*' | b'[' | b'\\' | b'\'' | b'"' | b'$' | b'`'))
    {
        return None;
    }
    canon
        .split(|c: char| c.is_ascii_whitespace() || matches!(c, ';' | '|' | '&' | '<' | '>' | '=' | ',' | '+'))
        .find(|word| names_system_path(word))
}

/// Whether `word`, read by the shell, is an absolute path to one of
/// `TARGETS` that hides its name with a wildcard or an insertion.
fn names_system_path(word: &str) -> bool {
    if word.len() > MAX_WORD || !word.contains('/') || word.contains("://") {
        return false;
    }
    // Quotes around a whole word are prose; the shell's tricks sit inside.
    let word = word.strip_prefix("$(").unwrap_or(word);
    let word = word.trim_matches(|c| matches!(c, '(' | ')' | '{' | '}' | '\'' | '"' | '`'));
    // An absolute path with something to read; the rest costs no copy.
    if !word.starts_with('/') || !word.contains(['?', '*', '[', '\\', '\'', '"', '$', '`']) {
        return false;
    }
    let Some((path, disguised)) = shell_read(word) else {
        return false;
    };
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let Some((last, dirs)) = parts.split_last() else {
        return false;
    };
    let globbed = path.contains(['?', '*', '[']);
    (disguised || globbed)
        && !dirs.is_empty()
        && dirs
            .iter()
            .all(|d| DIRS.iter().any(|name| glob_match(d.as_bytes(), name.as_bytes())))
        && last.bytes().any(|b| !matches!(b, b'?' | b'*' | b'[' | b']'))
        && TARGETS.iter().any(|name| glob_match(last.as_bytes(), name.as_bytes()))
}

/// Whether `canon`'s wildcards (`?`, `*` after a `/`) all sit in paths
/// whose first directory is no system one, and it has none of the shell's
/// other tricks (`[`, quotes, `\\`, `{`, `~`, `!`): `/api/v?/users`,
/// `/api/*/users`, `docs/v*/intro`. A glob expands under its first
/// directory, so such a path names nothing outside the web's; `/???/`,
/// `/e?c/`, `/*/` and `/home/` are or can be system directories, and
/// `.`, `..` lead anywhere. `rce-glob-path` spells the rest, and a
/// comment (`/*x*/`, which splits `DROP/*x*/TABLE` past a filter) is no
/// web path either.
pub(crate) fn wildcards_under_web_dirs(canon: &str) -> bool {
    if canon.contains(['[', '\'', '"', '\\', '~', '{', '!'])
        || canon.find("/*").is_some_and(|open| canon[open + 2..].contains("*/"))
    {
        return false;
    }
    canon
        .split(|c: char| {
            c.is_ascii_whitespace() || matches!(c, ';' | '|' | '&' | '<' | '>' | '=' | ',' | '+' | '(' | ')')
        })
        .filter(|word| word.contains('/') && word.contains(['?', '*']))
        .all(|word| {
            let first = word.trim_start_matches('/').split('/').next().unwrap_or_default();
            !matches!(first, "" | "." | "..") && !DIRS.iter().any(|dir| glob_match(first.as_bytes(), dir.as_bytes()))
        })
}

/// `word` as the shell joins it: quotes, backslashes, backticks, empty
/// `$()`, `$@`-style specials and plain variables (unset in an attack)
/// dropped. Returns the word and whether anything was dropped; `None` for
/// a `$` this reading does not follow (`${x:-y}` and the like).
fn shell_read(word: &str) -> Option<(String, bool)> {
    let b = word.as_bytes();
    let mut out = String::with_capacity(word.len());
    let mut dropped = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => {
                dropped = true;
                i += 1;
            }
            b'\\' => {
                dropped = true;
                i += 1;
                if let Some(&c) = b.get(i)
                    && c.is_ascii()
                {
                    out.push(c as char);
                    i += 1;
                }
            }
            b'$' => {
                dropped = true;
                i += 1;
                match b.get(i) {
                    Some(b'@' | b'*' | b'-' | b'#' | b'!' | b'?' | b'0'..=b'9') => i += 1,
                    Some(b'(') if b.get(i + 1) == Some(&b')') => i += 2,
                    Some(b'{') => {
                        let close = word[i..].find('}')?;
                        let name = &word[i + 1..i + close];
                        if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                            return None;
                        }
                        i += close + 1;
                    }
                    Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                        while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                            i += 1;
                        }
                    }
                    _ => return None,
                }
            }
            _ => {
                let ch = word[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Some((out, dropped))
}

/// Shell wildcard matching of `pattern` (`?`, `*`, `[abc]`, `[a-z]`,
/// `[!x]`) against a whole `name`.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_match(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return name.first() == Some(&b'[') && glob_match(rest, &name[1..]);
            };
            let (set, negated) = match rest[..end].split_first() {
                Some((b'!' | b'^', set)) => (set, true),
                _ => (&rest[..end], false),
            };
            let Some(&c) = name.first() else { return false };
            in_set(set, c) != negated && glob_match(&rest[end + 1..], &name[1..])
        }
        Some((&p, rest)) => name.first() == Some(&p) && glob_match(rest, &name[1..]),
    }
}

/// Whether `c` is in a bracket expression's `set` (`abc`, `a-z`).
fn in_set(set: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if (set[i]..=set[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{glob_match, globbed_system_path, wildcards_under_web_dirs};

    #[test]
    fn wildcards_under_a_web_directory_are_no_system_path() {
        for value in [
            "/api/v?/users",
            "/api/*/users",
            "docs/v*/intro and /img/*.png",
            "/search?q=cat",
            "https://example.com/a?b=1/c?",
            "/v?/users",
        ] {
            assert!(wildcards_under_web_dirs(value), "{value}");
        }
        for value in [
            "/???/b??h",
            "/e??/passwd",
            "/*/bin/id",
            "/home/*/docs",
            "/usr/b?n/id",
            "../??c/passwd",
            "/bi'n'/c?t",
            "/api/v?/\\users",
            "/api/v[1]/users",
            "drop/*x*/table",
        ] {
            assert!(!wildcards_under_web_dirs(value), "{value}");
        }
    }

    #[test]
    fn wildcards_match_as_the_shell_does() {
        assert!(glob_match(b"b??h", b"bash"));
        assert!(glob_match(b"*wd", b"passwd"));
        assert!(glob_match(b"b[i]n", b"bin"));
        assert!(glob_match(b"[a-c]at", b"cat"));
        assert!(!glob_match(b"[!c]at", b"cat"));
        assert!(!glob_match(b"???", b"bash"));
    }

    #[test]
    fn disguised_system_paths_are_found() {
        for value in [
            "/???/b??h",
            "cat /et*/*wd",
            "www.example.com;/bin/ca? /et*/passwd",
            "c$@at /et$@c/pas$@swd",
            "cat$u /etc$u/passwd",
            "ca\\t /et\\c/pa\\s\\swd",
            "c'at' /etc/pa's'swd",
            "/usr/b[i]n/wh?ami",
            "$(/???/?at /???/??ss??)",
            "x=`/b??/i?`",
        ] {
            assert!(globbed_system_path(value).is_some(), "{value}");
        }
    }

    #[test]
    fn web_paths_and_prose_with_wildcards_pass() {
        for value in [
            "/api/v?/users",
            "/home/*/docs",
            "/var/log/*.log",
            "/etc/*",
            "/bin/*",
            "/search?q=cat",
            "what is /etc/passwd?",
            "see https://example.com/e?c/passwd",
            "/tmp/file?.txt",
            "2*3/4?",
            "/usr/share/doc/*",
            "it's in /etc/hosts",
            "\"/etc/hosts\"",
        ] {
            assert_eq!(globbed_system_path(value), None, "{value}");
        }
    }
}
