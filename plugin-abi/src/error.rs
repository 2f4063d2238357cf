use std::borrow::Cow;

use http::StatusCode;

use crate::{BoxError, RequestId, Response, text_response};

/// Everything a plugin can report to the kernel.
///
/// The variant says whose fault it was: `Config` is the operator's (shown
/// with file, line and field), `Init` is the environment's, `Hook` is a
/// request-time failure that follows the plugin's fail mode.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The manifest's `config` block is wrong; `path` is a dotted path
    /// inside it (`hosts."a.com".app`) that the kernel maps to a line.
    #[error("{reason}")]
    Config {
        /// Dotted path of the offending field inside `config`.
        path: String,
        /// What is wrong, for a human.
        reason: String,
    },
    /// `on_init` could not set the plugin up (a file, a socket, a database).
    #[error("init failed: {0}")]
    Init(BoxError),
    /// A hook failed for this request.
    #[error("{reason}")]
    Hook {
        /// Status the client gets when the plugin fails closed.
        status: StatusCode,
        /// Reason for the log line; never sent to the client.
        reason: Cow<'static, str>,
    },
    /// A hook ran past its time limit.
    #[error("timed out")]
    Timeout,
    /// A hook panicked; the kernel caught it.
    #[error("panicked: {0}")]
    Panic(String),
}

impl PluginError {
    /// A config error at `path` inside the plugin's `config` block.
    pub fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        PluginError::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A request-time failure answered with `status` when failing closed.
    pub fn hook(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        PluginError::Hook {
            status,
            reason: reason.into(),
        }
    }

    /// The status a client gets when the hook fails closed: a hook error's
    /// own, 503 for a timeout, 500 for anything else.
    pub fn status(&self) -> StatusCode {
        match self {
            PluginError::Hook { status, .. } => *status,
            PluginError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a client gets when the hook fails closed: [`PluginError::status`]
    /// and the request id, never the reason (that is for the log).
    pub fn answer(&self, request_id: RequestId) -> Response {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("error");
        text_response(status, format!("{reason} (request id {request_id})\n"))
    }
}
