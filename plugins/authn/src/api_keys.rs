//! API keys: stored as SHA-256 hashes, each with a name and scopes.
//!
//! A key sent by a client is hashed and looked up; the hash table never
//! holds a key itself, so the configuration can be shared and logged.

use std::collections::HashMap;
use std::sync::Arc;

use bext_plugin_abi::PluginError;
use http::HeaderName;
use sha2::{Digest, Sha256};

use crate::caller::{CallerHeaders, Principal};
use crate::config::{ApiKeysConfig, header_name};
use crate::keys::Rejection;

/// The `api_keys` settings, checked.
pub(crate) struct ApiKeys {
    /// The header carrying a key.
    pub(crate) header: HeaderName,
    /// The query parameter carrying a key, if enabled.
    pub(crate) query: Option<String>,
    by_hash: HashMap<[u8; 32], (String, Vec<String>)>,
}

impl ApiKeys {
    /// Checks the hashes and the header name.
    pub(crate) fn new(a: &ApiKeysConfig) -> Result<Self, PluginError> {
        let mut by_hash = HashMap::new();
        for (i, k) in a.keys.iter().enumerate() {
            let hash = parse_hash(&k.hash).ok_or_else(|| {
                PluginError::config(format!("api_keys.keys[{i}].hash"), "must be sha256:<64 hex digits>")
            })?;
            by_hash.insert(hash, (k.name.clone(), k.scopes.clone()));
        }
        Ok(ApiKeys {
            header: header_name("api_keys.header", &a.header)?,
            query: a.query.clone(),
            by_hash,
        })
    }

    /// The name and scopes of `key`, as sent, if it is one of ours.
    fn lookup(&self, key: &[u8]) -> Option<&(String, Vec<String>)> {
        let hash: [u8; 32] = Sha256::digest(key).into();
        self.by_hash.get(&hash)
    }

    /// The caller `key` names; an unknown key is a bad signature.
    pub(crate) fn caller(&self, key: &[u8], headers: &CallerHeaders) -> Result<Arc<Principal>, Rejection> {
        match self.lookup(key) {
            Some((name, scopes)) => Ok(Arc::new(headers.api_key_caller(name, scopes))),
            None => Err(Rejection::Signature),
        }
    }
}

/// `sha256:<hex>` as bytes.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    /// `printf %s secret | sha256sum`
    const SECRET_HASH: &str = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    fn config(hashes: &[&str], header: &str) -> ApiKeysConfig {
        ApiKeysConfig {
            header: header.into(),
            query: None,
            keys: hashes
                .iter()
                .enumerate()
                .map(|(i, h)| ApiKeyConfig {
                    name: format!("key-{i}"),
                    hash: h.to_string(),
                    scopes: vec![format!("scope-{i}")],
                })
                .collect(),
        }
    }

    #[test]
    fn hashes() {
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_hash(&h), Some([0xab; 32]));
        assert_eq!(
            parse_hash(&h.to_uppercase().replace("SHA256", "sha256")),
            Some([0xab; 32])
        );
        assert_eq!(parse_hash("sha256:zz"), None);
        assert_eq!(parse_hash("md5:abc"), None);
        assert_eq!(parse_hash(&format!("sha256:{}", "ab".repeat(31))), None, "too short");
        assert_eq!(parse_hash(&format!("sha256:{}a", "ab".repeat(32))), None, "too long");
        assert_eq!(parse_hash(&format!("sha256:{}é", "a".repeat(62))), None, "not ASCII");
    }

    #[test]
    fn keys_are_found_by_their_hash() {
        let keys = ApiKeys::new(&config(
            &[&format!("sha256:{}", "00".repeat(32)), SECRET_HASH],
            "x-api-key",
        ))
        .unwrap();
        assert_eq!(
            keys.lookup(b"secret"),
            Some(&("key-1".to_owned(), vec!["scope-1".to_owned()]))
        );
        assert_eq!(keys.lookup(b"secret "), None);
        assert_eq!(keys.lookup(b"Secret"), None);
        assert_eq!(keys.lookup(SECRET_HASH.as_bytes()), None, "the hash is not the key");
        assert_eq!(keys.lookup(b""), None);
    }

    #[test]
    fn config_errors_name_the_field() {
        let path = |r: Result<ApiKeys, PluginError>| match r.err().unwrap() {
            PluginError::Config { path, .. } => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            path(ApiKeys::new(&config(&[SECRET_HASH, "sha256:00"], "x-api-key"))),
            "api_keys.keys[1].hash"
        );
        assert_eq!(
            path(ApiKeys::new(&config(&[SECRET_HASH], "x api key"))),
            "api_keys.header"
        );
        assert_eq!(ApiKeys::new(&config(&[], "X-Key")).unwrap().header, "x-key");
    }
}
