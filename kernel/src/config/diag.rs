//! Configuration errors as `file:line:col: field: reason`, collected so a
//! broken configuration reports every problem at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file at fault (a manifest or the platform file).
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(u64, u64)>,
    /// Dotted path of the field at fault (`config.hosts.example\.com.app`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Diagnostic {
    /// A problem with no known position.
    pub fn new(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            position: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Sets the position.
    pub fn at(mut self, position: Option<(u64, u64)>) -> Self {
        self.position = position;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
