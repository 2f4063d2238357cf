//! What can be wrong with a certificate, named so an operator can fix it.

use std::path::PathBuf;

/// A certificate or key that cannot be served, with the file and reason.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds nothing of the expected kind.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected and not found.
        reason: String,
    },
    /// The certificate cannot be parsed.
    #[error("{}: not a valid X.509 certificate: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with, or is corrupt.
    #[error("{}: unusable private key: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// rustls' message.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{}: the private key does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's validity ended.
    #[error("{}: the certificate expired on {not_after}", path.display())]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its `notAfter`.
        not_after: String,
    },
    /// The certificate's validity has not begun.
    #[error("{}: the certificate is not valid before {not_before}", path.display())]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Its `notBefore`.
        not_before: String,
    },
    /// None of the certificate's names is one the app serves.
    #[error("{}: the certificate's names ({}) cover none of the app's domains ({})", path.display(), names.join(", "), domains.join(", "))]
    NamesCoverNone {
        /// The file.
        path: PathBuf,
        /// Names in the certificate.
        names: Vec<String>,
        /// The app's domains.
        domains: Vec<String>,
    },
    /// A self-signed certificate could not be made.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// The TLS settings could not be built.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}
