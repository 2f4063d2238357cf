//! Accounts and certificates on disk, under the directory the kernel
//! passes (`data_dir/acme/`):
//!
//! ```text
//! accounts/<directory host>-<hash>.json       account credentials (0600)
//! certs/<name>-<hash>/chain.pem                the chain, leaf first
//! certs/<name>-<hash>/key.pem                  its private key (0600)
//! certs/<name>-<hash>/meta.json                names, directory, validity
//! ```
//!
//! Every file is written whole or not at all (temporary file, fsync,
//! rename, fsync of the directory). A certificate read back is checked
//! (key matches chain, names covered), so a crash between two renames
//! costs an order, never a broken handshake.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::certificate::Certificate;
use crate::error::AcmeError;

/// The storage directory.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

/// What `meta.json` says about a stored certificate.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    names: Vec<String>,
    directory: String,
    not_before: u64,
    not_after: u64,
    stored_at: u64,
}

/// The account file: the directory it belongs to and instant-acme's
/// credentials (the account URL and its private key).
#[derive(Serialize, Deserialize)]
pub(crate) struct AccountFile {
    pub(crate) directory: String,
    pub(crate) credentials: instant_acme::AccountCredentials,
}

impl Storage {
    /// Opens (creating, mode 0700) the storage directory.
    pub fn open(root: &Path) -> Result<Storage, AcmeError> {
        let storage = Storage { root: root.to_owned() };
        for dir in [root.to_owned(), root.join("accounts"), root.join("certs")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| storage_error(&dir, e))?;
        }
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the account for `directory` is kept.
    pub fn account_path(&self, directory: &str) -> PathBuf {
        let host = url::Url::parse(directory)
            .ok()
            .and_then(|u| u.host_str().map(safe_label))
            .unwrap_or_else(|| "acme".into());
        self.root
            .join("accounts")
            .join(format!("{host}-{}.json", short_hash(directory)))
    }

    /// The folder of the certificate for `names`, in whatever order they
    /// come (a reordered `domains` list is the same certificate).
    pub fn certificate_dir(&self, names: &[String]) -> PathBuf {
        let sorted = sorted(names);
        let first = sorted.first().map(|n| safe_label(n)).unwrap_or_default();
        self.root
            .join("certs")
            .join(format!("{first}-{}", short_hash(&sorted.join(","))))
    }

    pub(crate) fn load_account(&self, directory: &str) -> Result<Option<instant_acme::AccountCredentials>, AcmeError> {
        let path = self.account_path(directory);
        let Some(bytes) = read_if_present(&path)? else {
            return Ok(None);
        };
        let file: AccountFile =
            serde_json::from_slice(&bytes).map_err(|e| storage_error(&path, format!("not an account file: {e}")))?;
        if file.directory != directory {
            return Err(storage_error(
                &path,
                format!("belongs to {}, not {directory}", file.directory),
            ));
        }
        Ok(Some(file.credentials))
    }

    pub(crate) fn save_account(
        &self,
        directory: &str,
        credentials: instant_acme::AccountCredentials,
    ) -> Result<(), AcmeError> {
        let path = self.account_path(directory);
        let file = AccountFile {
            directory: directory.to_owned(),
            credentials,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| storage_error(&path, e))?;
        write_atomic(&path, &json, 0o600)
    }

    /// The stored certificate for exactly `names`, if there is one that
    /// can be served. A damaged one (unreadable PEM, key that does not
    /// match) is reported as an error; the caller orders a new one.
    pub fn load_certificate(&self, names: &[String]) -> Result<Option<Certificate>, AcmeError> {
        let dir = self.certificate_dir(names);
        let (meta_path, chain_path, key_path) = (dir.join("meta.json"), dir.join("chain.pem"), dir.join("key.pem"));
        let Some(meta) = read_if_present(&meta_path)? else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| storage_error(&meta_path, e))?;
        if sorted(&meta.names) != sorted(names) {
            return Err(storage_error(
                &meta_path,
                format!("is for {:?}, not {names:?}", meta.names),
            ));
        }
        let read_text = |path: &Path| -> Result<String, AcmeError> {
            let bytes = read_if_present(path)?.ok_or_else(|| storage_error(path, "missing"))?;
            String::from_utf8(bytes).map_err(|_| storage_error(path, "not text"))
        };
        let (chain, key) = (read_text(&chain_path)?, read_text(&key_path)?);
        Certificate::from_pem(names.to_vec(), chain, key)
            .map(Some)
            .map_err(|reason| storage_error(&dir, reason))
    }

    /// Stores a certificate: key and chain first, `meta.json` last.
    pub fn save_certificate(&self, directory: &str, cert: &Certificate) -> Result<(), AcmeError> {
        let dir = self.certificate_dir(&cert.names);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| storage_error(&dir, e))?;
        let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let meta = Meta {
            names: cert.names.clone(),
            directory: directory.to_owned(),
            not_before: secs(cert.not_before),
            not_after: secs(cert.not_after),
            stored_at: secs(std::time::SystemTime::now()),
        };
        let meta = serde_json::to_vec_pretty(&meta).map_err(|e| storage_error(&dir, e))?;
        write_atomic(&dir.join("key.pem"), cert.key_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join("chain.pem"), cert.chain_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join("meta.json"), &meta, 0o644)
    }
}

fn storage_error(path: &Path, reason: impl std::fmt::Display) -> AcmeError {
    AcmeError::Storage {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, AcmeError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage_error(path, e)),
    }
}

/// Writes `data` to `path` whole or not at all, the file created with
/// `mode` (so a key is never readable by others, even for a moment).
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), AcmeError> {
    let dir = path
        .parent()
        .ok_or_else(|| storage_error(path, "no parent directory"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let nonce = getrandom::u64().unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| storage_error(path, e))
}

/// A file-name-safe form of a host name (`*` becomes `_`).
fn safe_label(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn sorted(names: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted
}

pub(crate) fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn cert_for(names: &[&str]) -> Certificate {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        Certificate::from_pem(
            names.iter().map(|n| n.to_string()).collect(),
            cert.pem(),
            key.serialize_pem(),
        )
        .unwrap()
    }

    #[test]
    fn a_certificate_comes_back_as_it_was_stored_with_a_private_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::open(&tmp.path().join("acme")).unwrap();
        let names = vec!["a.bext.test".to_owned(), "*.b.bext.test".to_owned()];
        assert!(storage.load_certificate(&names).unwrap().is_none());
        let cert = cert_for(&["a.bext.test", "*.b.bext.test"]);
        storage.save_certificate("https://ca.test/dir", &cert).unwrap();
        let back = storage.load_certificate(&names).unwrap().unwrap();
        assert!(
            !format!("{back:?}").contains("PRIVATE KEY"),
            "Debug never shows the key"
        );
        assert_eq!(back.chain_pem, cert.chain_pem);
        assert_eq!(back.key_pem, cert.key_pem);
        assert_eq!(back.not_after, cert.not_after);
        let dir = storage.certificate_dir(&names);
        assert!(
            dir.file_name().unwrap().to_str().unwrap().starts_with("_.b.bext.test-"),
            "{dir:?}"
        );
        // The same names in another order are the same certificate.
        let reordered = vec![names[1].clone(), names[0].clone()];
        assert_eq!(storage.certificate_dir(&reordered), dir);
        let back = storage.load_certificate(&reordered).unwrap().unwrap();
        assert_eq!(back.names, reordered);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        assert_eq!(mode(&storage.root().join("certs")), 0o700);
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "{left:?}");
        // Another set of names (or another order) is another certificate.
        assert!(storage.load_certificate(&["a.bext.test".to_owned()]).unwrap().is_none());
    }

    #[test]
    fn a_key_that_does_not_match_is_an_error_not_a_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::open(tmp.path()).unwrap();
        let names = vec!["a.bext.test".to_owned()];
        storage
            .save_certificate("https://ca.test/dir", &cert_for(&["a.bext.test"]))
            .unwrap();
        // As if a crash came between the renames of two issuances.
        let other = cert_for(&["a.bext.test"]);
        fs::write(storage.certificate_dir(&names).join("key.pem"), &other.key_pem).unwrap();
        let err = storage.load_certificate(&names).unwrap_err().to_string();
        assert!(err.contains("do not go together"), "{err}");
        fs::write(storage.certificate_dir(&names).join("chain.pem"), "garbage").unwrap();
        let err = storage.load_certificate(&names).unwrap_err().to_string();
        assert!(err.contains("chain.pem") || err.contains("no certificate"), "{err}");
    }

    #[test]
    fn certificates_that_do_not_cover_their_names_are_refused() {
        let c = cert_for(&["a.bext.test"]);
        let err =
            Certificate::from_pem(vec!["b.bext.test".into()], c.chain_pem.clone(), c.key_pem.clone()).unwrap_err();
        assert!(err.contains("does not cover `b.bext.test`"), "{err}");
    }

    #[test]
    fn accounts_are_kept_per_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::open(tmp.path()).unwrap();
        let a = storage.account_path("https://acme-v02.api.letsencrypt.org/directory");
        let b = storage.account_path("https://acme-staging-v02.api.letsencrypt.org/directory");
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("acme-v02.api.letsencrypt.org-")
        );
        assert!(storage.load_account("https://ca.test/dir").unwrap().is_none());
        fs::write(storage.account_path("https://ca.test/dir"), "{").unwrap();
        assert!(storage.load_account("https://ca.test/dir").is_err());
    }
}
