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

/// How long a self-signed certificate is valid: under the 398 days
/// browsers accept, and Apple's 825, for any server certificate.
const VALID_DAYS: i64 = 365;

/// A self-signed ECDSA P-256 certificate for `names` (host names,
/// `*.suffix` wildcards, IP addresses), valid from yesterday (clocks
/// differ) for [`VALID_DAYS`].
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
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64);
    let date = |days: i64| {
        let (y, m, d) = civil_from_days(days);
        rcgen::date_time_ymd(y, m, d)
    };
    params.not_before = date(today - 1);
    params.not_after = date(today + VALID_DAYS);
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

/// The proleptic Gregorian date of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`), so no date crate is needed.
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn valid_from_yesterday_for_a_year() {
        let made = self_signed(&["a.test".into()]).unwrap();
        let info = crate::CertInfo::parse(std::path::Path::new("-"), &made.key.cert[0]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(info.not_before <= now && now - info.not_before <= 2 * 86_400);
        let span = info.not_after - info.not_before;
        assert!((365 * 86_400..=367 * 86_400).contains(&span), "{span}");
    }

    #[test]
    fn covers_the_names_given_and_its_key_matches() {
        let made = self_signed(&["a.test".into(), "*.b.test".into()]).unwrap();
        made.key.keys_match().unwrap();
        let info = crate::CertInfo::parse(std::path::Path::new("-"), &made.key.cert[0]).unwrap();
        assert_eq!(info.names, ["a.test", "*.b.test"]);
        assert!(self_signed(&[]).is_err());
    }
}
