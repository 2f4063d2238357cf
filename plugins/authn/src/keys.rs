//! Verification keys and JWT checks.
//!
//! Every key is pinned to one algorithm: a token is checked only against
//! keys of exactly its header's `alg`, so `alg: none` (not an algorithm
//! here), HS/RS confusion (an RSA public key used as an HMAC secret) and
//! algorithm downgrades cannot happen. `kid` picks a key; an unknown `kid`
//! is refused. `crit` extensions are not supported, so a token naming any
//! is refused; `jku`, `x5u` and `jwk` header fields are never followed
//! (keys come only from the configuration and the configured JWKS).
//!
//! The token is taken apart here, once: the header and the claims are each
//! decoded and parsed a single time, HMAC keys are kept already keyed, and
//! the claim rules are ours (`exp` required and numeric, `nbf` checked,
//! `iss` and `aud` required whenever they are configured). `jsonwebtoken`
//! 11 still parses PEM and JWK keys and checks RSA, ECDSA and EdDSA
//! signatures; its `decode` parses the header twice and the claims twice,
//! which made HS256 twice as slow as this, and it lets a token without
//! `iss` or `aud` through when they are configured but not "required".

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub alg: Algorithm,
    verifier: Verifier,
}

/// How a key checks a signature. HMAC keys are stored keyed (the inner and
/// outer pads already hashed), so a token costs only its own bytes.
#[derive(Clone)]
enum Verifier {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
    Public(DecodingKey),
}

impl Verifier {
    fn verify(&self, alg: Algorithm, signing_input: &str, signature_b64: &str) -> bool {
        fn mac<M: Mac + Clone>(keyed: &M, input: &str, sig_b64: &str) -> bool {
            let mut sig = [0u8; 64];
            let Ok(n) = URL_SAFE_NO_PAD.decode_slice(sig_b64, &mut sig) else {
                return false;
            };
            let mut m = keyed.clone();
            m.update(input.as_bytes());
            m.verify_slice(&sig[..n]).is_ok()
        }
        match self {
            Verifier::Hs256(k) => mac(k, signing_input, signature_b64),
            Verifier::Hs384(k) => mac(k, signing_input, signature_b64),
            Verifier::Hs512(k) => mac(k, signing_input, signature_b64),
            Verifier::Public(k) => {
                jsonwebtoken::crypto::verify(signature_b64, signing_input.as_bytes(), k, alg).unwrap_or(false)
            }
        }
    }
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
    /// `iss` is missing or not accepted.
    #[error("issuer not accepted")]
    Issuer,
    /// `aud` is missing or not accepted.
    #[error("audience not accepted")]
    Audience,
    /// A required claim is missing or of the wrong type (`exp` as text).
    #[error("missing or malformed claim: {0}")]
    Claim(String),
}

impl Rejection {
    /// A fixed name of the reason, for metrics' labels.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Crit => "crit",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::NoKeyForAlgorithm(_) => "no_key_for_algorithm",
            Rejection::Signature => "signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Issuer => "issuer",
            Rejection::Audience => "audience",
            Rejection::Claim(_) => "claim",
        }
    }
}

/// The JOSE header fields that matter here; others are ignored.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<serde::de::IgnoredAny>>,
}

/// The claim checks every key shares.
#[derive(Clone)]
pub struct Checks {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
}

impl Checks {
    /// `exp` required and checked, `nbf` checked, both with `leeway`;
    /// `iss` and `aud` required and checked against the lists when those
    /// are set (a token with an `aud` is refused when no audience is
    /// configured).
    pub fn new(issuers: &[String], audiences: &[String], leeway: Duration) -> Self {
        Checks {
            issuers: issuers.to_vec(),
            audiences: audiences.to_vec(),
            leeway: leeway.as_secs(),
        }
    }

    /// Verifies `token` against `keys`; the claims on success.
    pub fn verify(&self, token: &str, keys: &[Key]) -> Result<Map<String, Value>, Rejection> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(Rejection::Malformed)?;
        if header_b64.len() > 1024 {
            return Err(Rejection::Malformed);
        }
        let mut header_json = [0u8; 768];
        let n = URL_SAFE_NO_PAD
            .decode_slice(header_b64, &mut header_json)
            .map_err(|_| Rejection::Malformed)?;
        let header: JoseHeader<'_> = serde_json::from_slice(&header_json[..n]).map_err(|_| Rejection::Malformed)?;
        let alg = Algorithm::from_str(&header.alg).map_err(|_| Rejection::Malformed)?;
        if header.crit.is_some_and(|c| !c.is_empty()) {
            return Err(Rejection::Crit);
        }
        if let Some(kid) = &header.kid
            && !keys.iter().any(|k| k.kid.as_deref() == Some(kid))
        {
            return Err(Rejection::UnknownKid);
        }
        let mut candidates = keys
            .iter()
            .filter(|k| k.alg == alg && header.kid.as_ref().is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .peekable();
        if candidates.peek().is_none() {
            return Err(Rejection::NoKeyForAlgorithm(alg));
        }
        if !candidates.any(|k| k.verifier.verify(alg, signing_input, signature)) {
            return Err(Rejection::Signature);
        }
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| Rejection::Malformed)?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| Rejection::Malformed)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Rejection> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let exp = numeric_date(claims, "exp")?.ok_or_else(|| Rejection::Claim("exp".into()))?;
        if exp < now.saturating_sub(self.leeway) {
            return Err(Rejection::Expired);
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(Rejection::NotYetValid);
        }
        if !self.issuers.is_empty() {
            match claims.get("iss") {
                Some(Value::String(iss)) if self.issuers.contains(iss) => {}
                _ => return Err(Rejection::Issuer),
            }
        }
        match (claims.get("aud"), self.audiences.is_empty()) {
            (None, true) => {}
            (Some(_), true) | (None, false) => return Err(Rejection::Audience),
            (Some(Value::String(aud)), false) if self.audiences.contains(aud) => {}
            (Some(Value::Array(auds)), false)
                if auds
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| self.audiences.iter().any(|x| x == a))) => {}
            (Some(_), false) => return Err(Rejection::Audience),
        }
        Ok(())
    }
}

/// A NumericDate claim (RFC 7519 §2) as whole seconds: `None` when absent,
/// an error when present but not a non-negative number (`"exp": "9999"`).
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                return Ok(Some(v));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f.round() as u64)),
                _ => Err(Rejection::Claim(name.into())),
            }
        }
        Some(_) => Err(Rejection::Claim(name.into())),
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
            hmac_verifier(alg, s)
        }
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, _, _) => {
            return Err("an HS* key needs `secret` or `secret_env`, and no PEM".into());
        }
        (_, Some(_), _) => return Err("a public-key algorithm needs `pem` or `pem_file`, not a secret".into()),
        (Algorithm::ES256 | Algorithm::ES384, None, Some(p)) => {
            Verifier::Public(DecodingKey::from_ec_pem(p).map_err(|e| format!("EC key: {e}"))?)
        }
        (Algorithm::EdDSA, None, Some(p)) => {
            Verifier::Public(DecodingKey::from_ed_pem(p).map_err(|e| format!("Ed25519 key: {e}"))?)
        }
        (_, None, Some(p)) => Verifier::Public(DecodingKey::from_rsa_pem(p).map_err(|e| format!("RSA key: {e}"))?),
        (_, None, None) => return Err("a key needs `pem`, `pem_file`, `secret` or `secret_env`".into()),
    };
    Ok(Key {
        kid,
        alg,
        verifier: key,
    })
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
        let verifier = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::OctetKey(oct), Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                let Ok(secret) = URL_SAFE_NO_PAD.decode(&oct.value) else {
                    continue;
                };
                hmac_verifier(alg, &secret)
            }
            _ => match DecodingKey::from_jwk(jwk) {
                Ok(k) => Verifier::Public(k),
                Err(_) => continue,
            },
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            verifier,
        });
    }
    Ok(keys)
}

fn key_algorithm(ka: &KeyAlgorithm) -> Option<Algorithm> {
    let name = serde_json::to_value(ka).ok()?;
    Algorithm::from_str(name.as_str()?).ok()
}

/// An HMAC key for an `HS*` algorithm, keyed once.
fn hmac_verifier(alg: Algorithm, secret: &[u8]) -> Verifier {
    // `new_from_slice` accepts keys of any length for HMAC.
    match alg {
        Algorithm::HS384 => Verifier::Hs384(Hmac::new_from_slice(secret).expect("HMAC takes any key length")),
        Algorithm::HS512 => Verifier::Hs512(Hmac::new_from_slice(secret).expect("HMAC takes any key length")),
        _ => Verifier::Hs256(Hmac::new_from_slice(secret).expect("HMAC takes any key length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn hs(alg: Algorithm, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn pem(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// A token put together by hand: any header, any claims, HS256-signed.
    fn raw(header: &str, claims: &str) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn every_hmac_size_and_public_key_type_verifies() {
        let claims = json!({ "sub": "u", "exp": now() + 60 });
        let checks = Checks::new(&[], &[], Duration::from_secs(5));
        for alg in ["HS256", "HS384", "HS512"] {
            let a = Algorithm::from_str(alg).unwrap();
            let keys = [key_from_config(alg, Some(SECRET), None, None).unwrap()];
            assert_eq!(
                checks.verify(&hs(a, &claims, None), &keys).unwrap()["sub"],
                "u",
                "{alg}"
            );
        }
        for (alg, private, public) in [
            (Algorithm::RS256, "rsa.key", "rsa.pub"),
            (Algorithm::ES256, "ec.key", "ec.pub"),
            (Algorithm::EdDSA, "ed.key", "ed.pub"),
        ] {
            let encoding = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem(private)),
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem(private)),
                _ => EncodingKey::from_ed_pem(&pem(private)),
            }
            .unwrap();
            let token = encode(&Header::new(alg), &claims, &encoding).unwrap();
            let keys = [key_from_config(&format!("{alg:?}"), None, Some(&pem(public)), None).unwrap()];
            assert!(checks.verify(&token, &keys).is_ok(), "{alg:?}");
            let mut forged = token.clone();
            forged.replace_range(forged.len() - 4.., "AAAA");
            assert_eq!(checks.verify(&forged, &keys), Err(Rejection::Signature), "{alg:?}");
        }
    }

    #[test]
    fn algorithm_is_pinned_by_the_key() {
        let checks = Checks::new(&[], &[], Duration::ZERO);
        let exp = now() + 60;
        let hs_key = [key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        // alg none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
        );
        assert_eq!(checks.verify(&none, &hs_key), Err(Rejection::Malformed));
        // HS384 token against an HS256 key: no downgrade or sideways move.
        let hs384 = hs(Algorithm::HS384, &json!({ "exp": exp }), None);
        assert_eq!(
            checks.verify(&hs384, &hs_key),
            Err(Rejection::NoKeyForAlgorithm(Algorithm::HS384))
        );
        // HS/RS confusion: the RSA public key's PEM used as an HMAC secret.
        let rsa_pub = pem("rsa.pub");
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &json!({ "exp": exp }),
            &EncodingKey::from_secret(&rsa_pub),
        )
        .unwrap();
        let rs_key = [key_from_config("RS256", None, Some(&rsa_pub), None).unwrap()];
        assert_eq!(
            checks.verify(&confused, &rs_key),
            Err(Rejection::NoKeyForAlgorithm(Algorithm::HS256))
        );
    }

    #[test]
    fn kid_picks_the_key_and_unknown_kids_are_refused() {
        let checks = Checks::new(&[], &[], Duration::ZERO);
        let claims = json!({ "exp": now() + 60 });
        let keys = [
            key_from_config("HS256", Some(&[1; 32]), None, Some("old".into())).unwrap(),
            key_from_config("HS256", Some(SECRET), None, Some("new".into())).unwrap(),
        ];
        assert!(
            checks
                .verify(&hs(Algorithm::HS256, &claims, Some("new")), &keys)
                .is_ok()
        );
        assert!(
            checks.verify(&hs(Algorithm::HS256, &claims, None), &keys).is_ok(),
            "no kid: any key of the alg"
        );
        assert_eq!(
            checks.verify(&hs(Algorithm::HS256, &claims, Some("old")), &keys),
            Err(Rejection::Signature)
        );
        assert_eq!(
            checks.verify(&hs(Algorithm::HS256, &claims, Some("gone")), &keys),
            Err(Rejection::UnknownKid)
        );
    }

    #[test]
    fn header_flaws() {
        let checks = Checks::new(&[], &[], Duration::ZERO);
        let keys = [key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        let claims = format!(r#"{{"exp":{}}}"#, now() + 60);
        assert!(
            checks
                .verify(&raw(r#"{"alg":"HS256","typ":"JWT"}"#, &claims), &keys)
                .is_ok()
        );
        assert_eq!(
            checks.verify(&raw(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &claims), &keys),
            Err(Rejection::Crit)
        );
        assert!(
            checks
                .verify(&raw(r#"{"alg":"HS256","crit":[]}"#, &claims), &keys)
                .is_ok(),
            "an empty crit names nothing"
        );
        for bad in [
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":5}"#,
            "not json",
            r#"{"alg":"HS256""#,
        ] {
            assert_eq!(
                checks.verify(&raw(bad, &claims), &keys),
                Err(Rejection::Malformed),
                "{bad}"
            );
        }
        let good = raw(r#"{"alg":"HS256"}"#, &claims);
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            &good[..good.len() - 1],
            &format!("{good}.x"),
            &good.replacen('.', "=.", 1),
            &format!("{good}="),
        ] {
            assert!(checks.verify(bad, &keys).is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_rules() {
        let keys = [key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        let plain = Checks::new(&[], &[], Duration::from_secs(30));
        let strict = Checks::new(&["idp".into()], &["api".into(), "web".into()], Duration::from_secs(30));
        let t = now();
        let cases: &[(&Checks, Value, Result<(), Rejection>)] = &[
            (&plain, json!({ "exp": t + 60 }), Ok(())),
            (&plain, json!({ "exp": t - 10 }), Ok(())), // within leeway
            (&plain, json!({ "exp": t - 60 }), Err(Rejection::Expired)),
            (&plain, json!({ "exp": (t + 60) as f64 + 0.5 }), Ok(())),
            (&plain, json!({}), Err(Rejection::Claim("exp".into()))),
            (
                &plain,
                json!({ "exp": (t + 60).to_string() }),
                Err(Rejection::Claim("exp".into())),
            ),
            (&plain, json!({ "exp": -1 }), Err(Rejection::Claim("exp".into()))),
            (&plain, json!({ "exp": t + 60, "nbf": t + 10 }), Ok(())),
            (
                &plain,
                json!({ "exp": t + 600, "nbf": t + 300 }),
                Err(Rejection::NotYetValid),
            ),
            (
                &plain,
                json!({ "exp": t + 60, "nbf": "soon" }),
                Err(Rejection::Claim("nbf".into())),
            ),
            (&plain, json!({ "exp": t + 60, "aud": "api" }), Err(Rejection::Audience)),
            (&plain, json!({ "exp": t + 60, "aud": [] }), Err(Rejection::Audience)),
            (&strict, json!({ "exp": t + 60, "iss": "idp", "aud": "api" }), Ok(())),
            (
                &strict,
                json!({ "exp": t + 60, "iss": "idp", "aud": ["x", "web"] }),
                Ok(()),
            ),
            (
                &strict,
                json!({ "exp": t + 60, "iss": "idp", "aud": ["x"] }),
                Err(Rejection::Audience),
            ),
            (
                &strict,
                json!({ "exp": t + 60, "iss": "idp", "aud": "x" }),
                Err(Rejection::Audience),
            ),
            (
                &strict,
                json!({ "exp": t + 60, "iss": "idp" }),
                Err(Rejection::Audience),
            ),
            (&strict, json!({ "exp": t + 60, "aud": "api" }), Err(Rejection::Issuer)),
            (
                &strict,
                json!({ "exp": t + 60, "iss": "evil", "aud": "api" }),
                Err(Rejection::Issuer),
            ),
            (
                &strict,
                json!({ "exp": t + 60, "iss": ["idp"], "aud": "api" }),
                Err(Rejection::Issuer),
            ),
        ];
        for (checks, claims, want) in cases {
            let got = checks.verify(&hs(Algorithm::HS256, claims, None), &keys).map(|_| ());
            assert_eq!(&got, want, "{claims}");
        }
        assert_eq!(
            plain.verify(&raw(r#"{"alg":"HS256"}"#, "[1]"), &keys),
            Err(Rejection::Malformed),
            "claims must be an object"
        );
    }

    #[test]
    fn jwks_hmac_and_rsa_keys() {
        let jwks = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"s","alg":"HS256","k":"{}"}},{{"kty":"oct","kid":"no-alg","k":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(SECRET),
            URL_SAFE_NO_PAD.encode(SECRET)
        );
        let keys = keys_from_jwks(jwks.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "a symmetric key without alg is skipped");
        let checks = Checks::new(&[], &[], Duration::ZERO);
        let token = hs(Algorithm::HS256, &json!({ "exp": now() + 60 }), Some("s"));
        assert!(checks.verify(&token, &keys).is_ok());
    }
}
