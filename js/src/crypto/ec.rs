//! ECDSA on P-256 and P-384 (the `p256`/`p384` crates) and Ed25519
//! (`ed25519-dalek`): the curves jsonwebtoken already brings in. Private
//! keys are kept as PKCS#8 DER, public keys as SPKI DER; signatures are
//! the raw `r || s` Web Crypto uses.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};

use super::error::{CryptoResult, data, operation};
use super::hash::Hash;
use super::keys::Imported;

fn imported(der: &[u8]) -> Imported {
    Imported {
        der: der.to_vec(),
        modulus_bits: 0,
        exponent: Vec::new(),
    }
}

/// One NIST curve's key handling and ECDSA, the same code for each crate.
macro_rules! nist_curve {
    ($module:ident, $krate:ident, $size:expr, $label:expr) => {
        pub(crate) mod $module {
            use super::*;
            use $krate::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
            use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $krate::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
            use $krate::{EncodedPoint, FieldBytes, PublicKey, SecretKey};

            /// The field size in bytes: JWK coordinates and `d` are exactly this long.
            pub(crate) const SIZE: usize = $size;

            fn secret(der: &[u8]) -> CryptoResult<SecretKey> {
                SecretKey::from_pkcs8_der(der).map_err(|e| data(format!("not a {} private key: {e}", $label)))
            }

            fn public(der: &[u8]) -> CryptoResult<PublicKey> {
                PublicKey::from_public_key_der(der).map_err(|e| data(format!("not a {} public key: {e}", $label)))
            }

            fn private_der(key: &SecretKey) -> CryptoResult<Imported> {
                let der = key.to_pkcs8_der().map_err(|e| data(e.to_string()))?;
                Ok(imported(der.as_bytes()))
            }

            fn public_der(key: &PublicKey) -> CryptoResult<Imported> {
                let der = key.to_public_key_der().map_err(|e| data(e.to_string()))?;
                Ok(imported(der.as_bytes()))
            }

            /// `spki`, `pkcs8` or `raw` (an uncompressed or compressed point).
            pub(crate) fn import(format: &str, private: bool, bytes: &[u8]) -> CryptoResult<Imported> {
                match (format, private) {
                    ("pkcs8", true) => private_der(&secret(bytes)?),
                    ("spki", false) => public_der(&public(bytes)?),
                    ("raw", false) => public_der(
                        &PublicKey::from_sec1_bytes(bytes).map_err(|_| data(format!("not a {} point", $label)))?,
                    ),
                    _ => Err(data(format!("{format} is not a {} key format here", $label))),
                }
            }

            fn point(x: &[u8], y: &[u8]) -> CryptoResult<PublicKey> {
                if x.len() != SIZE || y.len() != SIZE {
                    return Err(data(format!("{} JWK coordinates are {SIZE} bytes", $label)));
                }
                let p =
                    EncodedPoint::from_affine_coordinates(FieldBytes::from_slice(x), FieldBytes::from_slice(y), false);
                Option::from(PublicKey::from_encoded_point(&p))
                    .ok_or_else(|| data(format!("the JWK's x, y are not a point on {}", $label)))
            }

            /// A JWK's `[x, y, d]`; `d` must match `x`, `y`.
            pub(crate) fn import_jwk(private: bool, parts: &[Option<Vec<u8>>]) -> CryptoResult<Imported> {
                let get = |i: usize, name: &str| {
                    parts
                        .get(i)
                        .and_then(|p| p.as_deref())
                        .ok_or_else(|| data(format!("the EC JWK has no \"{name}\"")))
                };
                let public_key = point(get(0, "x")?, get(1, "y")?)?;
                if !private {
                    return public_der(&public_key);
                }
                let d = get(2, "d")?;
                if d.len() != SIZE {
                    return Err(data(format!("{} JWK d is {SIZE} bytes", $label)));
                }
                let key = SecretKey::from_slice(d).map_err(|_| data("the JWK's d is not a valid scalar"))?;
                if key.public_key() != public_key {
                    return Err(data("the JWK's d does not match its x, y"));
                }
                private_der(&key)
            }

            pub(crate) fn export(format: &str, private: bool, der: &[u8]) -> CryptoResult<Vec<u8>> {
                match (format, private) {
                    ("pkcs8", true) | ("spki", false) => Ok(der.to_vec()),
                    ("raw", false) => Ok(public(der)?.to_encoded_point(false).as_bytes().to_vec()),
                    _ => Err(super::super::error::operation(format!(
                        "a {} key cannot be exported as {format}",
                        $label
                    ))),
                }
            }

            pub(crate) fn export_jwk(private: bool, der: &[u8]) -> CryptoResult<Vec<Vec<u8>>> {
                let (public_key, d) = if private {
                    let key = secret(der)?;
                    (key.public_key(), Some(key.to_bytes().to_vec()))
                } else {
                    (public(der)?, None)
                };
                let p = public_key.to_encoded_point(false);
                let (x, y) = (p.x().map(|x| x.to_vec()), p.y().map(|y| y.to_vec()));
                let mut out = vec![x.unwrap_or_default(), y.unwrap_or_default()];
                out.extend(d);
                Ok(out)
            }

            pub(crate) fn generate() -> CryptoResult<(Imported, Imported)> {
                let key = SecretKey::random(&mut rand_core::OsRng);
                Ok((private_der(&key)?, public_der(&key.public_key())?))
            }

            pub(crate) fn sign(hash: Hash, der: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
                let key = SigningKey::from(secret(der)?);
                let prehash = super::super::hash::digest(hash, message);
                let signature: Signature = key
                    .sign_prehash(&prehash)
                    .map_err(|e| operation(format!("ECDSA signing failed: {e}")))?;
                Ok(signature.to_bytes().to_vec())
            }

            /// False for a signature of the wrong length or that does not verify.
            pub(crate) fn verify(hash: Hash, der: &[u8], signature: &[u8], message: &[u8]) -> CryptoResult<bool> {
                let key = VerifyingKey::from(public(der)?);
                let Ok(signature) = Signature::from_slice(signature) else {
                    return Ok(false);
                };
                let prehash = super::super::hash::digest(hash, message);
                Ok(key.verify_prehash(&prehash, &signature).is_ok())
            }
        }
    };
}

nist_curve!(nist_p256, p256, 32, "P-256");
nist_curve!(nist_p384, p384, 48, "P-384");

/// Ed25519 (RFC 8032); raw public keys are the 32-byte encoding.
pub(crate) mod ed25519 {
    use super::*;
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

    fn secret(der: &[u8]) -> CryptoResult<SigningKey> {
        SigningKey::from_pkcs8_der(der).map_err(|e| data(format!("not an Ed25519 private key: {e}")))
    }

    fn public(der: &[u8]) -> CryptoResult<VerifyingKey> {
        VerifyingKey::from_public_key_der(der).map_err(|e| data(format!("not an Ed25519 public key: {e}")))
    }

    fn from_raw(bytes: &[u8]) -> CryptoResult<VerifyingKey> {
        let bytes: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| data("an Ed25519 public key is 32 bytes"))?;
        VerifyingKey::from_bytes(bytes).map_err(|_| data("not an Ed25519 point"))
    }

    fn private_der(key: &SigningKey) -> CryptoResult<Imported> {
        Ok(imported(
            key.to_pkcs8_der().map_err(|e| data(e.to_string()))?.as_bytes(),
        ))
    }

    fn public_der(key: &VerifyingKey) -> CryptoResult<Imported> {
        Ok(imported(
            key.to_public_key_der().map_err(|e| data(e.to_string()))?.as_bytes(),
        ))
    }

    pub(crate) fn import(format: &str, private: bool, bytes: &[u8]) -> CryptoResult<Imported> {
        match (format, private) {
            ("pkcs8", true) => private_der(&secret(bytes)?),
            ("spki", false) => public_der(&public(bytes)?),
            ("raw", false) => public_der(&from_raw(bytes)?),
            _ => Err(data(format!("{format} is not an Ed25519 key format here"))),
        }
    }

    /// A JWK's `[x, d]`; `d` (the 32-byte seed) must match `x`.
    pub(crate) fn import_jwk(private: bool, parts: &[Option<Vec<u8>>]) -> CryptoResult<Imported> {
        let x = parts
            .first()
            .and_then(|p| p.as_deref())
            .ok_or_else(|| data("the OKP JWK has no \"x\""))?;
        let public_key = from_raw(x)?;
        if !private {
            return public_der(&public_key);
        }
        let d = parts
            .get(1)
            .and_then(|p| p.as_deref())
            .ok_or_else(|| data("the OKP JWK has no \"d\""))?;
        let d: &[u8; 32] = d.try_into().map_err(|_| data("an Ed25519 JWK d is 32 bytes"))?;
        let key = SigningKey::from_bytes(d);
        if key.verifying_key() != public_key {
            return Err(data("the JWK's d does not match its x"));
        }
        private_der(&key)
    }

    pub(crate) fn export(format: &str, private: bool, der: &[u8]) -> CryptoResult<Vec<u8>> {
        match (format, private) {
            ("pkcs8", true) | ("spki", false) => Ok(der.to_vec()),
            ("raw", false) => Ok(public(der)?.to_bytes().to_vec()),
            _ => Err(operation(format!("an Ed25519 key cannot be exported as {format}"))),
        }
    }

    pub(crate) fn export_jwk(private: bool, der: &[u8]) -> CryptoResult<Vec<Vec<u8>>> {
        if private {
            let key = secret(der)?;
            Ok(vec![key.verifying_key().to_bytes().to_vec(), key.to_bytes().to_vec()])
        } else {
            Ok(vec![public(der)?.to_bytes().to_vec()])
        }
    }

    pub(crate) fn generate() -> CryptoResult<(Imported, Imported)> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| operation(format!("no randomness: {e}")))?;
        let key = SigningKey::from_bytes(&seed);
        Ok((private_der(&key)?, public_der(&key.verifying_key())?))
    }

    pub(crate) fn sign(der: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
        Ok(secret(der)?.sign(message).to_bytes().to_vec())
    }

    /// Strict verification (RFC 8032 with small-order keys refused).
    pub(crate) fn verify(der: &[u8], signature: &[u8], message: &[u8]) -> CryptoResult<bool> {
        let key = public(der)?;
        let Ok(signature) = Signature::from_slice(signature) else {
            return Ok(false);
        };
        Ok(key.verify_strict(message, &signature).is_ok())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn hex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }

        /// RFC 8032 7.1, test 2 (one-byte message), through the PKCS#8 and raw encodings.
        #[test]
        fn rfc8032_test_2() {
            let seed = hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
            let x = hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
            let private = import_jwk(true, &[Some(x.clone()), Some(seed)]).unwrap();
            let sig = sign(&private.der, &[0x72]).unwrap();
            assert_eq!(
                sig,
                hex(
                    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
                )
            );
            let public = import("raw", false, &x).unwrap();
            assert!(verify(&public.der, &sig, &[0x72]).unwrap());
            assert!(!verify(&public.der, &sig, &[0x73]).unwrap());
            assert!(!verify(&public.der, &sig[..63], &[0x72]).unwrap());
            assert_eq!(export("raw", false, &public.der).unwrap(), x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_sign_verify_and_jwk_round_trip() {
        let (private, public) = nist_p256::generate().unwrap();
        let sig = nist_p256::sign(Hash::Sha256, &private.der, b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(nist_p256::verify(Hash::Sha256, &public.der, &sig, b"hello").unwrap());
        assert!(!nist_p256::verify(Hash::Sha256, &public.der, &sig, b"hellO").unwrap());
        let parts: Vec<Option<Vec<u8>>> = nist_p256::export_jwk(true, &private.der)
            .unwrap()
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(nist_p256::import_jwk(true, &parts).unwrap().der, private.der);
        let mut wrong = parts.clone();
        wrong[0] = parts[1].clone();
        assert!(nist_p256::import_jwk(true, &wrong).is_err());
        // A P-256 key is not a P-384 key.
        assert!(nist_p384::import("spki", false, &public.der).is_err());
    }

    #[test]
    fn p384_raw_round_trip() {
        let (_, public) = nist_p384::generate().unwrap();
        let raw = nist_p384::export("raw", false, &public.der).unwrap();
        assert_eq!(raw.len(), 97);
        assert_eq!(nist_p384::import("raw", false, &raw).unwrap().der, public.der);
    }
}
