//! The request-id manifest's `config` block (documented in `manifests/request-id.yaml`).

use serde::Deserialize;

/// Typed `config` of the request-id plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header carrying the id, to the app and back to the client.
    #[serde(default = "default_header")]
    pub header: String,
    /// Keep an id the client (or a proxy in front) sent, if it is 1 to 128
    /// characters of `[A-Za-z0-9._-]`; otherwise always use bext's own.
    #[serde(default)]
    pub trust_incoming: bool,
    /// Also send the id back in the response.
    #[serde(default = "yes")]
    pub response: bool,
}

fn default_header() -> String {
    "x-request-id".into()
}

fn yes() -> bool {
    true
}
