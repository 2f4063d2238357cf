//! Which challenge proves control of a name: its own file, so the
//! configuration and the errors both name it without importing each other.

use serde::Deserialize;

/// The ACME challenge type used to prove control of a name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// A token served at `/.well-known/acme-challenge/<token>` over plain HTTP.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A special certificate served to a ClientHello offering ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        })
    }
}
