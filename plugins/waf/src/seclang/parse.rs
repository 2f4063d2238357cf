//! Reading SecLang files: lines joined at `\`, comments dropped, each
//! directive split into its arguments (double quotes group, `\"` is a
//! quote inside them).

/// One directive: its name and arguments, and where it was read.
#[derive(Debug)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    /// `file:line`, for errors.
    pub(crate) at: String,
}

/// The directives of one file's text.
pub(crate) fn directives(text: &str, file: &str) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        if joined.is_empty() {
            start = n + 1;
            if line.trim_start().starts_with('#') {
                continue;
            }
        }
        match line.strip_suffix('\\') {
            Some(head) => joined.push_str(head),
            None => {
                joined.push_str(line);
                let at = format!("{file}:{start}");
                let words = split(&joined).map_err(|e| format!("{at}: {e}"))?;
                joined.clear();
                if let Some((name, args)) = words.split_first() {
                    out.push(Directive {
                        name: name.clone(),
                        args: args.to_vec(),
                        at,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Splits a directive into words.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unclosed quote".into()),
                    Some('"') => break,
                    Some('\\') if chars.peek() == Some(&'"') => {
                        chars.next();
                        word.push('"');
                    }
                    Some(c) => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// Splits an action list at commas outside single quotes; each action is
/// its name and its value (quotes taken off).
pub(crate) fn actions(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut push = |cur: &mut String| {
        let item = cur.trim();
        if !item.is_empty() {
            let (name, value) = item.split_once(':').unwrap_or((item, ""));
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            out.push((name.trim().to_ascii_lowercase(), value.to_owned()));
        }
        cur.clear();
    };
    let mut prev = '\0';
    for c in list.chars() {
        match c {
            '\'' if prev != '\\' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => push(&mut cur),
            _ => cur.push(c),
        }
        prev = c;
    }
    push(&mut cur);
    out
}

/// Splits a variable list at `|`, leaving `|` inside `/regex/` selectors.
pub(crate) fn variables(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_regex = false;
    let mut prev = '\0';
    for c in list.chars() {
        match c {
            '/' if prev == ':' && !in_regex => {
                in_regex = true;
                cur.push(c);
            }
            '/' if in_regex && prev != '\\' => {
                in_regex = false;
                cur.push(c);
            }
            '|' if !in_regex => {
                out.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
        prev = c;
    }
    out.push(cur);
    out.into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_directives_actions_and_variables() {
        let text = "# comment\nSecRule ARGS \"@rx a\\\"b\" \\\n    \"id:1,\\\n    msg:'x, y',t:none\"\nSecMarker END\n";
        let d = directives(text, "f.conf").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].args, ["ARGS", "@rx a\"b", "id:1,    msg:'x, y',t:none"]);
        assert_eq!(d[0].at, "f.conf:2");
        assert_eq!(d[1].name, "SecMarker");
        let a = actions(&d[0].args[2]);
        assert_eq!(a[1], ("msg".into(), "x, y".into()));
        assert_eq!(
            variables("ARGS:/a|b/|!ARGS:x|&TX:y"),
            ["ARGS:/a|b/", "!ARGS:x", "&TX:y"]
        );
        assert!(directives("SecRule ARGS \"@rx", "f").is_err());
    }
}
