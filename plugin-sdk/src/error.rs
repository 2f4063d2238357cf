use abi_stable::std_types::RString;

use crate::ffi::FfiError;

/// A failed hook: the request is answered with `status` (when the
/// plugin fails closed) and `message` is logged, never sent.
#[derive(Debug, Clone)]
pub struct Error {
    status: u16,
    message: String,
    config_path: Option<String>,
}

impl Error {
    /// A request-time failure.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            config_path: None,
        }
    }

    /// A configuration error at a dotted path inside `config`; bext points
    /// it at that field's line in the manifest.
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            status: 500,
            message: message.into(),
            config_path: Some(path.into()),
        }
    }

    pub(crate) fn into_ffi(self) -> FfiError {
        FfiError {
            status: self.status,
            message: self.message.into(),
            panicked: false,
            config_path: self.config_path.map(RString::from).into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Strings the host refused (a bad header name, an app set twice) as
/// request-time errors.
pub(crate) fn refused(e: RString) -> Error {
    Error::new(500, e.into_string())
}
