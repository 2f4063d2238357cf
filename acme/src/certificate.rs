//! An issued certificate as the server uses it: PEM for storage, a rustls
//! `CertifiedKey` for handshakes, and its validity for the renewal policy.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate with its key, ready to serve.
pub struct Certificate {
    /// The names it was ordered for, in order (normalised, lower case).
    pub names: Vec<String>,
    /// The chain as the ACME server sent it, leaf first.
    pub chain_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// What a TLS handshake presents; insert it in the SNI store.
    pub key: Arc<CertifiedKey>,
}

impl Certificate {
    /// Checks a chain and key the way a handshake would need them: PEM that
    /// parses, a key that matches the leaf, a leaf whose names cover
    /// `names`.
    pub fn from_pem(names: Vec<String>, chain_pem: String, key_pem: String) -> Result<Certificate, String> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("chain is not PEM certificates: {e}"))?;
        let leaf = chain.first().ok_or("the chain has no certificate")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
        let validity = parsed.validity();
        let not_before = unix(validity.not_before.timestamp());
        let not_after = unix(validity.not_after.timestamp());
        let sans: Vec<String> = match parsed.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(missing) = names.iter().find(|n| !sans.iter().any(|s| s == *n)) {
            return Err(format!(
                "the certificate does not cover `{missing}` (it names {sans:?})"
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key is not PEM: {e}"))?;
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("key and certificate do not go together: {e}"))?;
        Ok(Certificate {
            names,
            chain_pem,
            key_pem,
            not_before,
            not_after,
            key: Arc::new(key),
        })
    }

    /// The leaf's serial number in hex, for logs.
    pub fn serial(&self) -> String {
        self.key
            .end_entity_cert()
            .ok()
            .and_then(|der| {
                x509_parser::parse_x509_certificate(der)
                    .ok()
                    .map(|(_, c)| c.raw_serial_as_string())
            })
            .unwrap_or_default()
    }
}

/// Never the key: a `{:?}` in a log line must not leak it.
impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .field("serial", &self.serial())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
