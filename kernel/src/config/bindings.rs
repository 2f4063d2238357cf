//! `[apps.<id>] kv` and `secrets`: names a JS app finds in `env`.

use super::platform::{AppConfig, RuntimeKind};

/// Whether `name` can be a binding in `env` (a JavaScript identifier, so
/// `env.NAME` works).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// What is wrong with the app's `kv` and `secrets`: `(field, reason)`.
pub(crate) fn problems(app: &AppConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, names) in [("kv", &app.kv), ("secrets", &app.secrets)] {
        if names.is_empty() {
            continue;
        }
        // Another runtime's `kv` or `secrets` is refused, with what to
        // write instead, by the table of keys by runtime (`runtime_keys`).
        if app.runtime != RuntimeKind::Js {
            continue;
        }
        for (i, name) in names.iter().enumerate() {
            let field = format!("{key}[{i}]");
            if !is_identifier(name) {
                out.push((
                    field,
                    format!("`{name}` is not a JavaScript identifier ([A-Za-z_$][A-Za-z0-9_$]*)"),
                ));
            } else if name == "__proto__" {
                // Set on `env`, it would change env's prototype.
                out.push((field, "`__proto__` cannot be a key of `env`".to_owned()));
            } else if app.env.contains_key(name) {
                out.push((field, format!("`{name}` is also a key of `env`")));
            } else if names[..i].contains(name) || (key == "secrets" && app.kv.contains(name)) {
                out.push((field, format!("`{name}` is named twice in `kv` and `secrets`")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_identifier;

    #[test]
    fn identifiers() {
        for ok in ["SESSIONS", "_x", "$a1", "kv_2"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "a.b", "a:b", "ü", "a b"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
