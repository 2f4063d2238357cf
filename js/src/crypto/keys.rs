//! Asymmetric keys by family: import, export and generation dispatched to
//! `rsa` or `ec`. The JS side holds the DER this returns (PKCS#8 for
//! private keys, SPKI for public ones) and never parses it.

use super::error::{CryptoResult, data, not_supported};
use super::{ec, rsa};

/// The key families Web Crypto's asymmetric algorithms use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Kind {
    /// `RSA`, `P-256`, `P-384` or `Ed25519`, as the JS side names them.
    pub(crate) fn parse(name: &str) -> CryptoResult<Kind> {
        match name {
            "RSA" => Ok(Kind::Rsa),
            "P-256" => Ok(Kind::P256),
            "P-384" => Ok(Kind::P384),
            "Ed25519" => Ok(Kind::Ed25519),
            _ => Err(not_supported(format!("key type {name:?}"))),
        }
    }
}

/// A checked key, re-encoded, with what an RSA key's `algorithm` shows.
#[derive(Debug)]
pub(crate) struct Imported {
    pub(crate) der: Vec<u8>,
    /// RSA only: the modulus size in bits (0 otherwise).
    pub(crate) modulus_bits: u32,
    /// RSA only: the public exponent, big-endian (empty otherwise).
    pub(crate) exponent: Vec<u8>,
}

/// `spki`, `pkcs8` or `raw` key data.
pub(crate) fn import(kind: Kind, format: &str, private: bool, bytes: &[u8]) -> CryptoResult<Imported> {
    match kind {
        Kind::Rsa => match (format, private) {
            ("pkcs8", true) | ("spki", false) => rsa::import_der(private, bytes),
            _ => Err(data(format!("{format} is not an RSA key format here"))),
        },
        Kind::P256 => ec::nist_p256::import(format, private, bytes),
        Kind::P384 => ec::nist_p384::import(format, private, bytes),
        Kind::Ed25519 => ec::ed25519::import(format, private, bytes),
    }
}

/// A JWK's members, already base64url-decoded, in the order `rsa` and `ec`
/// document.
pub(crate) fn import_jwk(kind: Kind, private: bool, parts: &[Option<Vec<u8>>]) -> CryptoResult<Imported> {
    match kind {
        Kind::Rsa => rsa::import_jwk(private, parts),
        Kind::P256 => ec::nist_p256::import_jwk(private, parts),
        Kind::P384 => ec::nist_p384::import_jwk(private, parts),
        Kind::Ed25519 => ec::ed25519::import_jwk(private, parts),
    }
}

pub(crate) fn export(kind: Kind, format: &str, private: bool, der: &[u8]) -> CryptoResult<Vec<u8>> {
    match kind {
        Kind::Rsa => match (format, private) {
            ("pkcs8", true) | ("spki", false) => Ok(der.to_vec()),
            _ => Err(super::error::operation(format!(
                "an RSA key cannot be exported as {format}"
            ))),
        },
        Kind::P256 => ec::nist_p256::export(format, private, der),
        Kind::P384 => ec::nist_p384::export(format, private, der),
        Kind::Ed25519 => ec::ed25519::export(format, private, der),
    }
}

pub(crate) fn export_jwk(kind: Kind, private: bool, der: &[u8]) -> CryptoResult<Vec<Vec<u8>>> {
    match kind {
        Kind::Rsa => rsa::export_jwk(private, der),
        Kind::P256 => ec::nist_p256::export_jwk(private, der),
        Kind::P384 => ec::nist_p384::export_jwk(private, der),
        Kind::Ed25519 => ec::ed25519::export_jwk(private, der),
    }
}

/// A new `(private, public)` pair; `bits` and `exponent` are RSA's.
pub(crate) fn generate(kind: Kind, bits: u32, exponent: &[u8]) -> CryptoResult<(Imported, Imported)> {
    match kind {
        Kind::Rsa => rsa::generate(bits, exponent),
        Kind::P256 => ec::nist_p256::generate(),
        Kind::P384 => ec::nist_p384::generate(),
        Kind::Ed25519 => ec::ed25519::generate(),
    }
}
