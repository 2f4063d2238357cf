//! JWTs: the `jwt` settings, the keys loaded in `on_init` (configured,
//! from the environment, PEM files, a JWKS kept fresh), and the caller a
//! token names once verified (see [`crate::keys`] for the checks).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bext_plugin_abi::{Host, PluginError};

use crate::caller::{CallerHeaders, Principal};
use crate::config::{Config, KeyConfig, resolve};
use crate::jwks::{JwksSource, load_jwks, refresh_jwks};
use crate::keys::{Checks, Key, Rejection, key_from_config};
use crate::token_cache::VerifiedTokens;

/// Shortest pause between two JWKS fetches caused by unknown `kid`s.
const REFETCH_GAP: Duration = Duration::from_secs(30);

/// JWT settings, with keys loaded in `on_init`.
pub(crate) struct Jwt {
    checks: Checks,
    /// The cookie that may carry the token, besides `Authorization`.
    pub(crate) cookie: Option<String>,
    key_configs: Vec<KeyConfig>,
    secret_env: Option<String>,
    jwks: Option<JwksSource>,
    refresh: Duration,
    data_dir: PathBuf,
    /// Configured keys plus the JWKS's, swapped on refresh.
    keys: Arc<ArcSwap<Vec<Key>>>,
    static_keys: OnceLock<Vec<Key>>,
    /// Tokens already verified, for the next request of the same session.
    verified: VerifiedTokens,
    /// Wakes the refresher when a token names an unknown `kid`.
    refetch: Arc<tokio::sync::Notify>,
    last_refetch: Mutex<Option<Instant>>,
}

/// Reads `jwt_secret_env` as `on_init` will, when the configuration is
/// built: `bext check` then refuses an unset or too short secret with the
/// error serve gives, instead of passing a file serve refuses.
pub(crate) fn check_secret_env(c: &Config) -> Result<(), PluginError> {
    let Some(env) = &c.jwt_secret_env else {
        return Ok(());
    };
    let secret =
        std::env::var(env).map_err(|_| PluginError::config("jwt_secret_env", format!("`{env}` is not set")))?;
    key_from_config("HS256", Some(secret.as_bytes()), None, None)
        .map(drop)
        .map_err(|e| PluginError::config("jwt_secret_env", format!("`{env}`: {e}")))
}

impl Jwt {
    /// Checks `jwt` and `jwt_secret_env`; `None` when JWTs are off. No
    /// key is read yet (that is [`Jwt::load_keys`], in `on_init`).
    pub(crate) fn new(c: &Config, data_dir: &std::path::Path) -> Result<Option<Self>, PluginError> {
        if c.jwt.is_none() && c.jwt_secret_env.is_none() {
            return Ok(None);
        }
        let j = c.jwt.clone().unwrap_or_default();
        for (i, k) in j.keys.iter().enumerate() {
            let sources = [
                k.secret.is_some(),
                k.secret_env.is_some(),
                k.pem.is_some(),
                k.pem_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(PluginError::config(
                    format!("jwt.keys[{i}]"),
                    "give exactly one of secret, secret_env, pem, pem_file",
                ));
            }
            if k.alg.parse::<jsonwebtoken::Algorithm>().is_err() {
                return Err(PluginError::config(
                    format!("jwt.keys[{i}].alg"),
                    format!("`{}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA...)", k.alg),
                ));
            }
        }
        let jwks = j
            .jwks
            .as_deref()
            .map(|s| JwksSource::new(s, j.jwks_ca.as_deref(), data_dir))
            .transpose()?;
        if j.keys.is_empty() && jwks.is_none() && c.jwt_secret_env.is_none() {
            return Err(PluginError::config(
                "jwt",
                "no keys: give `keys`, `jwks` or `jwt_secret_env`",
            ));
        }
        Ok(Some(Jwt {
            checks: Checks::new(&j.issuers, &j.audiences, j.leeway.0),
            cookie: j.cookie.clone(),
            key_configs: j.keys.clone(),
            secret_env: c.jwt_secret_env.clone(),
            jwks,
            refresh: j.jwks_refresh.0.max(Duration::from_secs(5)),
            data_dir: data_dir.to_path_buf(),
            keys: Arc::new(ArcSwap::from_pointee(Vec::new())),
            static_keys: OnceLock::new(),
            refetch: Arc::new(tokio::sync::Notify::new()),
            verified: VerifiedTokens::new(j.leeway.0),
            last_refetch: Mutex::new(None),
        }))
    }

    /// Reads the keys (secrets, environment variables, PEM files, the
    /// JWKS) and, with a JWKS, starts the task that keeps it fresh.
    pub(crate) async fn load_keys(&self, host: &Host, plugin: &str) -> Result<(), PluginError> {
        let mut keys = Vec::new();
        for (i, k) in self.key_configs.iter().enumerate() {
            let secret = match (&k.secret, &k.secret_env) {
                (Some(s), _) => Some(s.clone().into_bytes()),
                (_, Some(env)) => Some(
                    std::env::var(env)
                        .map_err(|_| PluginError::Init(format!("jwt.keys[{i}].secret_env: `{env}` is not set").into()))?
                        .into_bytes(),
                ),
                _ => None,
            };
            let pem = match (&k.pem, &k.pem_file) {
                (Some(p), _) => Some(p.clone().into_bytes()),
                (_, Some(f)) => {
                    let path = resolve(&self.data_dir, f);
                    Some(std::fs::read(&path).map_err(|e| {
                        PluginError::Init(format!("jwt.keys[{i}].pem_file: {}: {e}", path.display()).into())
                    })?)
                }
                _ => None,
            };
            let key = key_from_config(&k.alg, secret.as_deref(), pem.as_deref(), k.kid.clone())
                .map_err(|e| PluginError::Init(format!("jwt.keys[{i}]: {e}").into()))?;
            keys.push(key);
        }
        if let Some(env) = &self.secret_env {
            let secret = std::env::var(env)
                .map_err(|_| PluginError::Init(format!("jwt_secret_env: `{env}` is not set").into()))?;
            keys.push(
                key_from_config("HS256", Some(secret.as_bytes()), None, None)
                    .map_err(|e| PluginError::Init(format!("jwt_secret_env: {e}").into()))?,
            );
        }
        let _ = self.static_keys.set(keys.clone());
        if let Some(source) = &self.jwks {
            let fetched = load_jwks(source)
                .await
                .map_err(|e| PluginError::Init(format!("jwt.jwks: {e}").into()))?;
            let mut all = keys.clone();
            all.extend(fetched);
            self.keys.store(Arc::new(all));
            host.spawn(refresh_jwks(
                Arc::downgrade(&self.keys),
                keys,
                source.clone(),
                self.refresh,
                self.refetch.clone(),
                plugin.to_owned(),
            ));
        } else {
            self.keys.store(Arc::new(keys));
        }
        Ok(())
    }

    /// The caller `token` names, once verified (or found verified before
    /// for a request that came `at`). An unknown `kid` wakes the JWKS
    /// refresher, at most every [`REFETCH_GAP`].
    pub(crate) fn caller(
        &self,
        token: &[u8],
        at: Instant,
        headers: &CallerHeaders,
    ) -> Result<Arc<Principal>, Rejection> {
        // A guard, not a clone: no reference count touched per request.
        let keys = self.keys.load();
        // A token verified before is text: only a new one is checked for it.
        let verified = match self.verified.get(token, &keys, at) {
            Some(principal) => Ok(principal),
            None => std::str::from_utf8(token)
                .map_err(|_| Rejection::Malformed)
                .and_then(|token| {
                    self.checks.verify(token, &keys).map(|claims| {
                        let principal = Arc::new(headers.jwt_caller(&claims));
                        self.verified.insert(token, &claims, &principal, &keys, at);
                        principal
                    })
                }),
        };
        if matches!(verified, Err(Rejection::UnknownKid)) && self.jwks.is_some() {
            let mut last = self.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() > REFETCH_GAP) {
                *last = Some(Instant::now());
                self.refetch.notify_one();
            }
        }
        verified
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn jwt(config: serde_json::Value) -> Result<Option<Jwt>, PluginError> {
        let c: Config = bext_plugin_abi::decode_config(config)?;
        Jwt::new(&c, Path::new("/nonexistent-bext-data"))
    }

    fn config_error(config: serde_json::Value) -> (String, String) {
        match jwt(config) {
            Err(PluginError::Config { path, reason }) => (path, reason),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn jwts_are_off_without_jwt_or_a_secret_env() {
        assert!(jwt(serde_json::json!({})).unwrap().is_none());
        let j = jwt(serde_json::json!({"jwt_secret_env": "X"})).unwrap().unwrap();
        assert_eq!(j.secret_env.as_deref(), Some("X"));
        assert_eq!(j.refresh, Duration::from_secs(300), "the defaults of jwt: {{}}");
        assert!(j.key_configs.is_empty() && j.cookie.is_none() && j.jwks.is_none());
    }

    #[test]
    fn each_key_has_one_source_and_a_known_algorithm() {
        let keys =
            |k: serde_json::Value| serde_json::json!({"jwt": {"keys": [{"alg": "HS256", "secret_env": "K"}, k]}});
        for two in [
            serde_json::json!({"alg": "HS256", "secret": "s", "secret_env": "E"}),
            serde_json::json!({"alg": "RS256", "pem": "p", "pem_file": "f"}),
            serde_json::json!({"alg": "HS256"}),
        ] {
            assert_eq!(
                config_error(keys(two)),
                (
                    "jwt.keys[1]".into(),
                    "give exactly one of secret, secret_env, pem, pem_file".into()
                )
            );
        }
        let (path, reason) = config_error(keys(serde_json::json!({"alg": "none", "secret": "s"})));
        assert_eq!(path, "jwt.keys[1].alg");
        assert!(reason.starts_with("`none` is not a JWT algorithm"), "{reason}");
        assert!(jwt(keys(serde_json::json!({"alg": "EdDSA", "pem_file": "k.pem"}))).is_ok());
    }

    #[test]
    fn some_key_is_needed() {
        assert_eq!(
            config_error(serde_json::json!({"jwt": {"issuers": ["https://idp.test"]}})),
            ("jwt".into(), "no keys: give `keys`, `jwks` or `jwt_secret_env`".into())
        );
        assert!(jwt(serde_json::json!({"jwt": {}, "jwt_secret_env": "S"})).is_ok());
        let j = jwt(serde_json::json!({"jwt": {"jwks": "jwks.json", "jwks_refresh": "1s"}}))
            .unwrap()
            .unwrap();
        assert_eq!(j.refresh, Duration::from_secs(5), "refreshed at most every 5 s");
        assert_eq!(
            config_error(serde_json::json!({"jwt": {"jwks": "jwks.json", "jwks_ca": "ca.pem"}})).0,
            "jwt.jwks_ca"
        );
    }

    #[test]
    fn tokens_are_verified_then_remembered() {
        let headers = CallerHeaders::new(&crate::config::ForwardConfig::default()).unwrap();
        let j =
            jwt(serde_json::json!({"jwt": {"keys": [{"alg": "HS256", "secret": "0123456789abcdef0123456789abcdef"}]}}))
                .unwrap()
                .unwrap();
        let at = Instant::now();
        assert!(
            j.caller(b"a.b.c", at, &headers).is_err(),
            "before on_init there is no key"
        );
        let key = key_from_config("HS256", Some(b"0123456789abcdef0123456789abcdef"), None, None).unwrap();
        j.keys.store(Arc::new(vec![key]));
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "u1", "exp": exp, "scope": "read"}),
            &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        let first = j.caller(token.as_bytes(), at, &headers).unwrap();
        assert_eq!(
            (first.subject.as_deref(), first.scopes.as_slice()),
            (Some("jwt:|u1"), &["read".to_owned()][..])
        );
        let again = j.caller(token.as_bytes(), at, &headers).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second request reuses the verdict");
        assert_eq!(
            j.caller(&[0xff, b'.'], at, &headers).err(),
            Some(Rejection::Malformed),
            "not UTF-8"
        );
        let mut forged = token.clone();
        forged.push('A');
        assert_eq!(
            j.caller(forged.as_bytes(), at, &headers).err(),
            Some(Rejection::Signature)
        );
    }
}
