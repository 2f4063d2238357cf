//! What can go wrong while getting a certificate, with the ACME server's
//! own explanation (its problem document) kept for the log.

use std::path::PathBuf;
use std::time::Duration;

use crate::kind::ChallengeKind;

/// An ACME server's problem document (RFC 7807, RFC 8555 section 6.7):
/// why it refused a request, as it said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem type, like `urn:ietf:params:acme:error:rejectedIdentifier`.
    pub kind: Option<String>,
    /// The server's human-readable explanation.
    pub detail: Option<String>,
    /// The HTTP status it came with.
    pub status: Option<u16>,
    /// Problems with single names of the order, as `name: type: detail`.
    pub subproblems: Vec<String>,
}

impl Problem {
    pub(crate) fn from_acme(p: &instant_acme::Problem) -> Problem {
        Problem {
            kind: p.r#type.clone(),
            detail: p.detail.clone(),
            status: p.status,
            subproblems: p.subproblems.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.as_deref().unwrap_or("(no problem type)"))?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        for sub in &self.subproblems {
            write!(f, "; {sub}")?;
        }
        Ok(())
    }
}

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A `[platform.acme]` value is wrong.
    #[error("[platform.acme] {field}: {reason}")]
    Config {
        /// The key in `[platform.acme]`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The `ca_root` file cannot be used.
    #[error("[platform.acme] ca_root {}: {reason}", path.display())]
    CaRoot {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The ACME server answered with a problem document.
    #[error("the ACME server refused the {during}: {problem}")]
    Problem {
        /// The step that was refused (`new order`, `validation`...).
        during: &'static str,
        /// What the server said.
        problem: Problem,
    },
    /// The exchange with the ACME server failed without a problem document
    /// (connection refused, unexpected answer).
    #[error("ACME {during} failed: {reason}")]
    Protocol {
        /// The step that failed.
        during: &'static str,
        /// What failed.
        reason: String,
    },
    /// A step took longer than allowed.
    #[error("ACME {during} timed out after {after:?}")]
    Timeout {
        /// The step that timed out.
        during: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The server offered no challenge of the configured type for a name.
    #[error("{name}: the ACME server offers no {kind} challenge")]
    NoChallenge {
        /// The name being validated.
        name: String,
        /// The configured challenge type.
        kind: ChallengeKind,
    },
    /// The certificate the server issued cannot be served.
    #[error("the issued certificate is unusable: {0}")]
    BadCertificate(String),
    /// Reading or writing the storage directory failed.
    #[error("ACME storage {}: {reason}", path.display())]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A name no certificate can be ordered for (an IP address, a single
    /// label, a wildcard on demand, characters DNS does not allow).
    #[error("`{name}` cannot have an ACME certificate: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// Another instance of the fleet ordered these names a moment ago and
    /// failed: this one backs off rather than failing the same way.
    #[error("another instance's order failed a moment ago ({reason}); not ordering again yet")]
    FleetFailed {
        /// The other instance's error.
        reason: String,
    },
    /// The on-demand gate refused the name (the ask said no, or it was
    /// refused or failed a short while ago).
    #[error("{name}: on-demand certificate refused: {reason}")]
    Refused {
        /// The name.
        name: String,
        /// The ask's answer or the remembered failure.
        reason: String,
    },
    /// On-demand ordering is at its limit for this minute, or too many
    /// names are being ordered at once.
    #[error("{name}: on-demand ordering is busy ({reason})")]
    Busy {
        /// The name.
        name: String,
        /// Which limit was hit.
        reason: String,
    },
}

impl AcmeError {
    /// The problem document, when the ACME server sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AcmeError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Maps an instant-acme error to ours, naming the step it came from.
    pub(crate) fn acme(during: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
        move |e| match e {
            instant_acme::Error::Api(p) => AcmeError::Problem {
                during,
                problem: Problem::from_acme(&p),
            },
            other => AcmeError::Protocol {
                during,
                reason: chain(&other),
            },
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
