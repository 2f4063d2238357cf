//! Web Crypto's failures, typed so the JS side can raise the DOMException
//! the spec names for each.

/// Why a crypto native refused: each variant is one DOMException name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    /// Key material or parameters that do not decode (`DataError`).
    #[error("{0}")]
    Data(String),
    /// A well-formed request the primitive cannot carry out, such as a
    /// failed decryption (`OperationError`).
    #[error("{0}")]
    Operation(String),
    /// A valid Web Crypto request this build does not implement
    /// (`NotSupportedError`).
    #[error("{0}")]
    NotSupported(String),
}

impl CryptoError {
    /// The DOMException name the JS side throws.
    pub(crate) fn dom_name(&self) -> &'static str {
        match self {
            CryptoError::Data(_) => "DataError",
            CryptoError::Operation(_) => "OperationError",
            CryptoError::NotSupported(_) => "NotSupportedError",
        }
    }
}

pub(crate) type CryptoResult<T> = Result<T, CryptoError>;

pub(crate) fn data(msg: impl Into<String>) -> CryptoError {
    CryptoError::Data(msg.into())
}

pub(crate) fn operation(msg: impl Into<String>) -> CryptoError {
    CryptoError::Operation(msg.into())
}

pub(crate) fn not_supported(msg: impl Into<String>) -> CryptoError {
    CryptoError::NotSupported(msg.into())
}
