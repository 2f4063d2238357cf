//! Development certificates: self-signed, for names the caller gives
//! (an app's domains, wildcards included).

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TlsError;

/// A generated certificate, ready to serve and to write out (so that a
/// developer can trust it, and a restart can reuse it).
pub struct SelfSigned {
    /// What the listener presents.
    pub key: Arc<CertifiedKey>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its ECDSA P-256 key, PKCS#8 PEM.
    pub key_pem: String,
}

/// A self-signed ECDSA P-256 certificate for `names` (host names,
/// `*.suffix` wildcards, IP addresses), valid from now for rcgen's default
/// span.
pub fn self_signed(names: &[String]) -> Result<SelfSigned, TlsError> {
    let names: Vec<String> = names
        .iter()
        .map(|n| {
            let lower = n.trim().to_ascii_lowercase();
            lower.strip_suffix('.').unwrap_or(&lower).to_owned()
        })
        .collect();
    if names.is_empty() {
        return Err(TlsError::Generate("no names to certify".into()));
    }
    let bad = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(bad)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("bext self-signed {}", names[0]));
    let cert = params.self_signed(&signing).map_err(bad)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing.serialize_der()));
    let signer = crate::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    Ok(SelfSigned {
        key: Arc::new(CertifiedKey::new(chain, signer)),
        cert_pem: cert.pem(),
        key_pem: signing.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_names_given_and_its_key_matches() {
        let made = self_signed(&["a.test".into(), "*.b.test".into()]).unwrap();
        made.key.keys_match().unwrap();
        let info = crate::CertInfo::parse(std::path::Path::new("-"), &made.key.cert[0]).unwrap();
        assert_eq!(info.names, ["a.test", "*.b.test"]);
        assert!(self_signed(&[]).is_err());
    }
}
