//! What a registry operation or an admin request can fail with, and the
//! HTTP status the admin API answers each with.

use std::path::{Path, PathBuf};

use http::StatusCode;

use crate::hooks;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database.
    #[error("registry: {0}")]
    Db(String),
    /// The bundle, an app id or a version name is not acceptable.
    #[error("{0}")]
    Bundle(String),
    /// The bundle is larger than the deploy manifest allows
    /// (`max_bundle_bytes`, `max_bundle_entries`).
    #[error("{0}")]
    TooLarge(String),
    /// No such app or version.
    #[error("{0}")]
    NotFound(String),
    /// That version exists already.
    #[error("version exists already: {0}")]
    Exists(String),
    /// The name is taken (a tenant's domain another tenant or app has).
    #[error("{0}")]
    Taken(String),
    /// A new app would go past the platform's `max_apps`.
    #[error("{0}")]
    Full(String),
    /// The change is recorded, but the kernel refused the configuration
    /// it makes (the previous one keeps serving).
    #[error("recorded, but the new configuration was refused: {0}")]
    Refused(String),
    /// A deployed version could not be served and was rolled back at
    /// once: said plainly, so nobody takes it for the current version.
    #[error(
        "{version} was stored but could not be served, so it was rolled back and the previous version keeps serving ({reason})"
    )]
    RolledBack {
        /// The version that was stored.
        version: String,
        /// Why the kernel refused it.
        reason: String,
    },
    /// The app's `pre_build` hook failed; nothing was stored.
    #[error("pre_build `{}` failed ({}):\n{}", .0.command, .0.exit_code.map_or("killed".to_owned(), |c| format!("exit code {c}")), .0.output.trim_end())]
    Hook(hooks::HookRun),
}

impl DeployError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DeployError {
        DeployError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn db(file: &Path, e: rusqlite::Error) -> DeployError {
        DeployError::Db(format!("{}: {e}", file.display()))
    }

    /// The HTTP status the admin API answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            DeployError::Bundle(_) => StatusCode::BAD_REQUEST,
            DeployError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DeployError::NotFound(_) => StatusCode::NOT_FOUND,
            DeployError::Exists(_) | DeployError::Taken(_) | DeployError::Full(_) => StatusCode::CONFLICT,
            DeployError::Hook(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::Io { .. } | DeployError::Db(_) | DeployError::Refused(_) | DeployError::RolledBack { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_with_its_own_status() {
        let run = hooks::HookRun {
            hook: "pre_build".into(),
            command: "false".into(),
            exit_code: Some(1),
            output: "no\n".into(),
            millis: 1,
        };
        let cases = [
            (DeployError::Bundle("b".into()), StatusCode::BAD_REQUEST),
            (DeployError::TooLarge("t".into()), StatusCode::PAYLOAD_TOO_LARGE),
            (DeployError::NotFound("n".into()), StatusCode::NOT_FOUND),
            (DeployError::Exists("e".into()), StatusCode::CONFLICT),
            (DeployError::Taken("t".into()), StatusCode::CONFLICT),
            (DeployError::Full("f".into()), StatusCode::CONFLICT),
            (DeployError::Hook(run), StatusCode::UNPROCESSABLE_ENTITY),
            (DeployError::Db("d".into()), StatusCode::INTERNAL_SERVER_ERROR),
            (DeployError::Refused("r".into()), StatusCode::INTERNAL_SERVER_ERROR),
            (
                DeployError::RolledBack {
                    version: "v2".into(),
                    reason: "r".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                DeployError::io(Path::new("/x"), std::io::Error::other("gone")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e}");
        }
    }

    #[test]
    fn a_failed_hook_says_how_it_ended() {
        let killed = hooks::HookRun {
            hook: "pre_build".into(),
            command: "make".into(),
            exit_code: None,
            output: "out\n".into(),
            millis: 5,
        };
        assert_eq!(
            DeployError::Hook(killed).to_string(),
            "pre_build `make` failed (killed):\nout"
        );
    }
}
