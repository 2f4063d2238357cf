//! Reading a PEM certificate chain and its key, checked before serving.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{CertInfo, TlsError};

/// Reads `cert` (a PEM chain, leaf first) and `key` (PKCS#8, PKCS#1 RSA
/// or SEC1 EC, PEM) and checks that the key is the certificate's and that
/// the certificate is valid at `now` (Unix seconds).
pub fn load_pair(cert: &Path, key: &Path, now: i64) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            reason: "no CERTIFICATE block (expected a PEM certificate chain, leaf first)".into(),
        });
    }
    let info = CertInfo::parse(cert, &chain[0])?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Pem {
            path: key.to_owned(),
            reason: if key_pem.windows(27).any(|w| w == b"BEGIN ENCRYPTED PRIVATE KEY") {
                "the private key is encrypted, which bext cannot use unattended; write it \
                 decrypted (`openssl pkey -in KEY -out PLAIN.key`) and keep that file private"
                    .into()
            } else {
                "no PRIVATE KEY block (expected a PEM key: PKCS#8, RSA or EC)".into()
            },
        },
        e => pem_error(key, e),
    })?;
    let signing = crate::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::Key {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            });
        }
        Err(e) => {
            return Err(TlsError::Certificate {
                path: cert.to_owned(),
                reason: e.to_string(),
            });
        }
    }
    info.check_dates(cert, now)?;
    Ok((Arc::new(pair), info))
}

/// The largest certificate or key file read: a long chain is a few
/// dozen KiB; `/dev/zero` named by mistake must not fill memory.
const MAX_PEM_FILE: u64 = 1 << 20;

/// Reads a regular file of at most [`MAX_PEM_FILE`] bytes (a FIFO or a
/// device would block a reload or never end).
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let refuse = |reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let io = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(refuse(format!(
            "{} bytes, more than a PEM file holds (at most {MAX_PEM_FILE})",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(refuse(format!(
            "more than a PEM file holds (at most {MAX_PEM_FILE} bytes)"
        )));
    }
    Ok(bytes)
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: format!("not PEM: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn a_good_pair_loads_for_ecdsa_and_rsa() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_RSA_SHA256] {
            let key = match rcgen::KeyPair::generate_for(alg) {
                Ok(k) => k,
                // ring cannot generate RSA keys: use a fixed one.
                Err(_) => rcgen::KeyPair::from_pem(RSA_KEY).unwrap(),
            };
            let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let c = write(dir.path(), "c.pem", &cert.pem());
            let k = write(dir.path(), "k.pem", &key.serialize_pem());
            let (pair, info) = load_pair(&c, &k, now()).unwrap();
            assert_eq!(pair.cert.len(), 1);
            assert_eq!(info.names, ["a.test"]);
        }
    }

    #[test]
    fn bad_files_say_which_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let one = crate::self_signed(&["a.test".into()]).unwrap();
        let two = crate::self_signed(&["a.test".into()]).unwrap();
        let c = write(dir.path(), "c.pem", &one.cert_pem);
        let k = write(dir.path(), "k.pem", &one.key_pem);
        let other_k = write(dir.path(), "other.key", &two.key_pem);
        let junk = write(dir.path(), "junk.pem", "hello\n");
        let missing = dir.path().join("missing.pem");

        let err = |c: &Path, k: &Path, at: i64| load_pair(c, k, at).err().unwrap().to_string();
        assert!(err(&c, &other_k, now()).contains("other.key: the private key does not match the certificate"));
        assert!(err(&missing, &k, now()).contains("missing.pem: cannot read"));
        assert!(err(Path::new("/dev/zero"), &k, now()).contains("/dev/zero: not a regular file"));
        let big = write(dir.path(), "big.pem", &"x".repeat(MAX_PEM_FILE as usize + 1));
        assert!(err(&big, &k, now()).contains("more than a PEM file holds"));
        assert!(err(&junk, &k, now()).contains("junk.pem: no CERTIFICATE block"));
        assert!(err(&c, &junk, now()).contains("junk.pem: no PRIVATE KEY block"));
        let encrypted = write(
            dir.path(),
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        assert!(err(&c, &encrypted, now()).contains("enc.key: the private key is encrypted"));
        // The key file given as the certificate, and the other way round.
        assert!(err(&k, &c, now()).contains("k.pem: no CERTIFICATE block"));
        let dated = |from: (i32, u8, u8), to: (i32, u8, u8), name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
            let cert = params.self_signed(&key).unwrap();
            let c = write(dir.path(), &format!("{name}.pem"), &cert.pem());
            let k = write(dir.path(), &format!("{name}.key"), &key.serialize_pem());
            (c, k)
        };
        let (c, k) = dated((2019, 1, 1), (2020, 1, 1), "old");
        assert!(err(&c, &k, now()).contains("old.pem: the certificate expired on Jan  1 00:00:00 2020"));
        let (c, k) = dated((2999, 1, 1), (3000, 1, 1), "future");
        assert!(err(&c, &k, now()).contains("future.pem: the certificate is not valid before"));
    }

    /// A 2048-bit RSA key (ring signs with RSA but cannot generate keys).
    pub(crate) const RSA_KEY: &str = include_str!("../tests/rsa2048.key");
}
