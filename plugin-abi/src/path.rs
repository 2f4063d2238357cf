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

    /// Whether `path` (canonical, as the kernel gives it) matches. A
    /// trailing `/` does not make another resource to a rule: `/admin/*`
    /// also covers `/admin`, and `/login` also `/login/`, because most
    /// routers serve both from one handler.
    pub fn matches(&self, path: &str) -> bool {
        let trim = |p: &'_ str| -> usize { p.len() - usize::from(p.len() > 1 && p.ends_with('/')) };
        if self.prefix {
            path.starts_with(&self.path)
                || (self.path.ends_with('/') && self.path.len() > 1 && path == &self.path[..self.path.len() - 1])
        } else {
            path[..trim(path)] == self.path[..trim(&self.path)]
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
        assert!(exact.matches("/login/"), "a trailing slash is the same resource");
        assert!(!exact.matches("/logins") && !exact.matches("/"));
        let slashed = PathPattern::parse("p", "/login/").unwrap();
        assert!(slashed.matches("/login") && slashed.matches("/login/"));
        let prefix = PathPattern::parse("p", "/api/*").unwrap();
        assert!(prefix.matches("/api/v1") && !prefix.matches("/apix"));
        assert!(
            prefix.matches("/api") && prefix.matches("/api/"),
            "the directory itself"
        );
        let root = PathPattern::parse("p", "/").unwrap();
        assert!(root.matches("/") && !root.matches("/x"));
        assert!(PathPattern::parse("p", "/*").unwrap().matches("/anything"));
        assert!(PathPattern::parse("p", "api").is_err());
    }
}
