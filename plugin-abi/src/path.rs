//! Path patterns in plugin configuration: `/login` (exact) or `/api/*`
//! (a prefix), the one syntax every plugin's path lists use.

use crate::PluginError;

/// An exact path, or a prefix written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    path: String,
    prefix: bool,
}

impl PathPattern {
    /// Parses `text`; `field` is the config path named in the error.
    pub fn parse(field: impl Into<String>, text: &str) -> Result<PathPattern, PluginError> {
        if !text.starts_with('/') {
            return Err(PluginError::config(field, "must start with `/`"));
        }
        Ok(match text.strip_suffix('*') {
            Some(p) => PathPattern {
                path: p.to_owned(),
                prefix: true,
            },
            None => PathPattern {
                path: text.to_owned(),
                prefix: false,
            },
        })
    }

    /// Parses a list, naming `field[i]` in errors.
    pub fn parse_all(field: &str, list: &[String]) -> Result<Vec<PathPattern>, PluginError> {
        list.iter()
            .enumerate()
            .map(|(i, p)| PathPattern::parse(format!("{field}[{i}]"), p))
            .collect()
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(&self.path)
        } else {
            path == self.path
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_patterns() {
        let exact = PathPattern::parse("p", "/login").unwrap();
        assert!(exact.matches("/login") && !exact.matches("/login/x"));
        let prefix = PathPattern::parse("p", "/api/*").unwrap();
        assert!(prefix.matches("/api/v1") && !prefix.matches("/apix"));
        assert!(PathPattern::parse("p", "api").is_err());
    }
}
