//! Verification keys and JWT checks.
//!
//! Every key is pinned to one algorithm: a token is checked only against
//! keys of exactly its header's `alg`, so `alg: none` (not an algorithm
//! here), HS/RS confusion (an RSA public key used as an HMAC secret) and
//! algorithm downgrades cannot happen. `kid` picks a key; an unknown `kid`
//! is refused. `crit` extensions are not supported, so a token naming any
//! is refused; `jku`, `x5u` and `jwk` header fields are never followed
//! (keys come only from the configuration and the configured JWKS).
//! Library: `jsonwebtoken` 11 (it checks `exp` as a number, refuses a
//! string `exp`, and checks `nbf` when asked, as we do).

use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub alg: Algorithm,
    /// The key material.
    pub key: DecodingKey,
}

/// Why a token was refused; logged for the operator, never sent to the
/// client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not three base64url parts, bad JSON, or an unknown `alg` (`none`).
    #[error("malformed token or unsupported algorithm")]
    Malformed,
    /// The header lists `crit` extensions.
    #[error("unsupported crit extension")]
    Crit,
    /// No configured key has the token's `kid`.
    #[error("unknown kid")]
    UnknownKid,
    /// No configured key for the token's algorithm.
    #[error("no key for algorithm {0:?}")]
    NoKeyForAlgorithm(Algorithm),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not accepted.
    #[error("issuer not accepted")]
    Issuer,
    /// `aud` is not accepted.
    #[error("audience not accepted")]
    Audience,
    /// A required claim is missing or of the wrong type (`exp` as text).
    #[error("missing or malformed claim: {0}")]
    Claim(String),
}

/// The claim checks every key shares.
#[derive(Clone)]
pub struct Checks {
    /// One prepared validation per algorithm (cloning one per token would
    /// allocate its claim sets every time).
    by_alg: Vec<(Algorithm, Validation)>,
}

impl Checks {
    /// `exp` required and checked, `nbf` checked, both with `leeway`;
    /// `iss` and `aud` against the lists (a token with an `aud` is refused
    /// when no audience is configured).
    pub fn new(issuers: &[String], audiences: &[String], leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp"]);
        if !issuers.is_empty() {
            validation.set_issuer(issuers);
        }
        if !audiences.is_empty() {
            validation.set_audience(audiences);
        }
        let by_alg = [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .map(|alg| {
            let mut v = validation.clone();
            v.algorithms = vec![alg];
            (alg, v)
        })
        .collect();
        Checks { by_alg }
    }

    /// Verifies `token` against `keys`; the claims on success.
    pub fn verify(&self, token: &str, keys: &[Key]) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
        let header = decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.crit.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(Rejection::Crit);
        }
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => {
                let found: Vec<&Key> = keys.iter().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect();
                if found.is_empty() {
                    return Err(Rejection::UnknownKid);
                }
                found
            }
            None => keys.iter().collect(),
        };
        let mut last = Rejection::NoKeyForAlgorithm(header.alg);
        let Some((_, v)) = self.by_alg.iter().find(|(a, _)| *a == header.alg) else {
            return Err(Rejection::Malformed);
        };
        for key in candidates.into_iter().filter(|k| k.alg == header.alg) {
            match decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = rejection(e.kind()),
            }
        }
        Err(last)
    }
}

fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> Rejection {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => Rejection::Signature,
        K::ExpiredSignature => Rejection::Expired,
        K::ImmatureSignature => Rejection::NotYetValid,
        K::InvalidIssuer => Rejection::Issuer,
        K::InvalidAudience => Rejection::Audience,
        K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => Rejection::Claim(c.clone()),
        _ => Rejection::Malformed,
    }
}

/// A key from PEM text or an HMAC secret, for `alg` (as configured).
pub fn key_from_config(
    alg: &str,
    secret: Option<&[u8]>,
    pem: Option<&[u8]>,
    kid: Option<String>,
) -> Result<Key, String> {
    let alg = Algorithm::from_str(alg)
        .map_err(|_| format!("`{alg}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA...)"))?;
    let key = match (alg, secret, pem) {
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, Some(s), None) => {
            if s.len() < 32 {
                return Err("an HMAC secret needs at least 32 bytes".into());
            }
            DecodingKey::from_secret(s)
        }
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, _, _) => {
            return Err("an HS* key needs `secret` or `secret_env`, and no PEM".into());
        }
        (_, Some(_), _) => return Err("a public-key algorithm needs `pem` or `pem_file`, not a secret".into()),
        (Algorithm::ES256 | Algorithm::ES384, None, Some(p)) => {
            DecodingKey::from_ec_pem(p).map_err(|e| format!("EC key: {e}"))?
        }
        (Algorithm::EdDSA, None, Some(p)) => DecodingKey::from_ed_pem(p).map_err(|e| format!("Ed25519 key: {e}"))?,
        (_, None, Some(p)) => DecodingKey::from_rsa_pem(p).map_err(|e| format!("RSA key: {e}"))?,
        (_, None, None) => return Err("a key needs `pem`, `pem_file`, `secret` or `secret_env`".into()),
    };
    Ok(Key { kid, alg, key })
}

/// The keys of a JWKS document. Each key is pinned to its `alg`, or to the
/// algorithm its type implies (RSA: RS256, P-256: ES256, P-384: ES384,
/// Ed25519: EdDSA); symmetric keys without `alg` and keys of other types
/// are skipped.
pub fn keys_from_jwks(json: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(ka), _) => match key_algorithm(ka) {
                Some(a) => a,
                None => continue,
            },
            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => continue,
            },
            (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
            (None, _) => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(keys)
}

fn key_algorithm(ka: &KeyAlgorithm) -> Option<Algorithm> {
    let name = serde_json::to_value(ka).ok()?;
    Algorithm::from_str(name.as_str()?).ok()
}
