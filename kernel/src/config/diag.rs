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
    /// What kind of problem it is.
    pub problem: Problem,
}

/// What kind of problem a [`Diagnostic`] is, for callers that act on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Problem {
    /// The configuration is wrong.
    #[default]
    Invalid,
    /// Only a build output is missing (`dist/`, `.next/`), which `bext
    /// run` makes before it serves the folder.
    NotBuilt,
}

impl Diagnostic {
    /// A problem with no known position.
    pub fn new(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            position: None,
            field: field.into(),
            reason: reason.into(),
            problem: Problem::Invalid,
        }
    }

    /// A problem about `field` from a framework runtime's resolution,
    /// [`Problem::NotBuilt`] when only its build is missing.
    pub fn of_framework(file: &Path, field: impl Into<String>, e: super::framework::FrameworkError) -> Self {
        let problem = match e {
            super::framework::FrameworkError::NotBuilt { .. } => Problem::NotBuilt,
            super::framework::FrameworkError::Invalid { .. } => Problem::Invalid,
        };
        Diagnostic {
            problem,
            ..Diagnostic::new(file, field, e.to_string())
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

/// Every error of a strict decoding of `value`, not only serde's first:
/// `decode` tries once and on failure gives the failing field's path inside
/// `value` (as serde_path_to_error prints it) and its diagnostic;
/// `take_out` removes that field, and decoding is tried again. The value
/// comes back when its only problems were unknown keys (what remains means
/// what it says); a field of the wrong type leaves it undecoded.
pub(crate) fn decode_every<V, T>(
    value: &mut V,
    // Boxed: a diagnostic is large, and most decodes succeed.
    decode: impl Fn(&V) -> Result<T, Box<(String, Diagnostic)>>,
    take_out: impl Fn(&mut V, &str) -> bool,
) -> (Option<T>, Vec<Diagnostic>) {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut usable = true;
    let mut taken: Vec<String> = Vec::new();
    let in_file_order = |mut errors: Vec<Diagnostic>| {
        errors.sort_by_key(|d| d.position);
        errors
    };
    // Bounded: each round takes one field out.
    for _ in 0..64 {
        let (inner, diagnostic) = match decode(value) {
            Ok(t) => return (usable.then_some(t), in_file_order(errors)),
            Err(e) => *e,
        };
        // Taking a required field out makes serde miss it: not a problem
        // of the file.
        let missed = |k: &String| {
            let key = k.split('[').next().unwrap_or(k);
            diagnostic.reason == format!("missing field `{}`", key.rsplit('.').next().unwrap_or(key))
        };
        if taken.iter().any(missed) {
            return (None, in_file_order(errors));
        }
        usable &= diagnostic.reason.starts_with("unknown field");
        errors.push(with_guidance(diagnostic));
        if !take_out(value, &inner) {
            return (None, in_file_order(errors));
        }
        taken.push(inner);
    }
    (None, in_file_order(errors))
}

/// Keys of the systems users come from that bext has no key for, with
/// what to write instead: serde's "unknown field" alone leaves them
/// guessing.
const FOREIGN_KEYS: [(&str, &str); 1] = [(
    "workerDirs",
    "Buntime's `workerDirs` has no equivalent in bext: apps are not found in directories but declared, \
     each in the platform file (`[apps.<id>] source = \"<dir>\"`) or deployed to the registry \
     (`bext deploy <dir> --app <id>`); remove the key (docs/migrating.md, \"From Buntime\")",
)];

/// The sections of a bundle's `bext.config.toml`: at the top of a
/// platform file they say the file given is a bundle's.
const BUNDLE_SECTIONS: [&str; 5] = ["server", "framework", "cache", "hooks", "render"];

/// Keys of an app (`[apps.<id>]`) that a bundle writes in `[server]`: in
/// a platform file's `[platform]` they say the user meant an app.
const APP_KEYS: [&str; 8] = [
    "static_dir",
    "entry",
    "upstream",
    "runtime",
    "source",
    "spa_fallback",
    "api_prefix",
    "command",
];

/// `d`, an error of a bundle's or `bext run` folder's `bext.config.toml`,
/// with where it belongs when it names the platform file's `[platform]`
/// or `[apps.<id>]`, or one of `[platform]`'s keys
/// ([`bext_plugin_abi::platform_file_key`]).
pub(crate) fn with_platform_file_guidance(mut d: Diagnostic) -> Diagnostic {
    if d.reason.starts_with("unknown field")
        && let Some(instead) = bext_plugin_abi::platform_file_key(&d.field)
    {
        d.reason = instead;
    }
    d
}

/// `d` with what to write instead when it is an unknown key of another
/// system ([`FOREIGN_KEYS`]), a bundle's section in a platform file, or
/// an app's key in its `[platform]` table.
fn with_guidance(mut d: Diagnostic) -> Diagnostic {
    if let Some(closest) = closest_expected(&d.reason) {
        d.reason = closest;
    }
    for (key, instead) in FOREIGN_KEYS {
        if d.reason.starts_with(&format!("unknown field `{key}`")) {
            d.reason = format!("unknown field `{key}`: {instead}");
        }
    }
    if let Some(key) = BUNDLE_SECTIONS.iter().find(|k| d.field == **k)
        && d.reason.starts_with("unknown field")
    {
        d.reason = format!(
            "`[{key}]` is a section of a bundle's bext.config.toml, not of a platform file \
             ([platform], [apps.<id>], [redis]): check its folder with `bext check DIR` and serve it with `bext run DIR`; \
             in a platform file, `[server] listen` is `[platform] listen` and the other keys go under `[apps.<id>]`"
        );
    }
    if let Some(key) = d.field.strip_prefix("platform.")
        && APP_KEYS.contains(&key)
        && d.reason.starts_with("unknown field")
    {
        d.reason = format!(
            "`{key}` is a key of one app, not of `[platform]`: write it under `[apps.<id>]` (`[apps.site]` then `{key} = ...`)"
        );
    }
    d
}

/// serde's ``unknown field `instance`, expected one of `source`, ...``
/// (an app's table lists some fifty) as ``unknown field `instance`: did
/// you mean `instances`?`` when one expected name is a typo away (at most
/// two edits), so the fix is not lost in the list.
fn closest_expected(reason: &str) -> Option<String> {
    let rest = reason.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once("`, expected ")?;
    let names = expected
        .strip_prefix("one of ")
        .unwrap_or(expected)
        .replace(" or ", ", ");
    let (distance, closest) = names
        .split(", ")
        .map(|n| n.trim_matches('`'))
        .filter(|n| !n.is_empty())
        .map(|n| (super::manifest::edits(&unknown.to_ascii_lowercase(), n), n))
        .min()?;
    (distance <= 2).then(|| format!("unknown field `{unknown}`: did you mean `{closest}`?"))
}

/// The dotted `path` serde_path_to_error prints for a field, as the keys
/// of the tables down to it. An error inside an array names the array:
/// taking one element out would shift the indexes of later errors.
pub(crate) fn table_keys(path: &str) -> Vec<&str> {
    path.split('[').next().unwrap_or(path).split('.').collect()
}

#[cfg(test)]
mod closest_tests {
    use super::closest_expected;

    #[test]
    fn a_typo_of_an_expected_field_is_named() {
        let serde = "unknown field `instance`, expected one of `source`, `domains`, `instances`, `command`";
        assert_eq!(
            closest_expected(serde).unwrap(),
            "unknown field `instance`: did you mean `instances`?"
        );
        let far = "unknown field `colour`, expected one of `source`, `domains`";
        assert_eq!(closest_expected(far), None);
        let two = "unknown field `sorce`, expected `source` or `domains`";
        assert_eq!(
            closest_expected(two).unwrap(),
            "unknown field `sorce`: did you mean `source`?"
        );
    }
}
