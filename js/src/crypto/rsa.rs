//! RSA with the `rsa` crate: RSASSA-PKCS1-v1_5, RSA-PSS (any salt length the key allows),
//! RSA-OAEP, key generation and the key encodings. Private keys are kept as
//! PKCS#8 DER, public keys as SPKI DER.

use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};

use super::error::{CryptoResult, data, operation};
use super::hash::Hash;
use super::keys::Imported;

/// Runs `$body` with `$D` bound to the digest type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $D:ident => $body:expr) => {
        match $hash {
            Hash::Sha1 => {
                type $D = sha1::Sha1;
                $body
            }
            Hash::Sha256 => {
                type $D = sha2::Sha256;
                $body
            }
            Hash::Sha384 => {
                type $D = sha2::Sha384;
                $body
            }
            Hash::Sha512 => {
                type $D = sha2::Sha512;
                $body
            }
        }
    };
}

/// The padding a signature uses: PKCS#1 v1.5, or PSS with a salt length.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Padding {
    Pkcs1,
    Pss(usize),
}

/// The largest modulus accepted, private or public (the `rsa` crate's own
/// limit for public keys): private operations on larger keys would hold a
/// JS thread for seconds, out of reach of the isolate's time limits.
const MAX_MODULUS_BITS: usize = 4096;

fn check_size(n: &BigUint) -> CryptoResult<()> {
    if n.bits() > MAX_MODULUS_BITS {
        return Err(data(format!("RSA keys over {MAX_MODULUS_BITS} bits are not accepted")));
    }
    Ok(())
}

fn private_key(der: &[u8]) -> CryptoResult<RsaPrivateKey> {
    let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|e| data(format!("not an RSA private key: {e}")))?;
    check_size(key.n())?;
    Ok(key)
}

fn public_key(der: &[u8]) -> CryptoResult<RsaPublicKey> {
    RsaPublicKey::from_public_key_der(der).map_err(|e| data(format!("not an RSA public key: {e}")))
}

fn imported_private(key: &RsaPrivateKey) -> CryptoResult<Imported> {
    let der = key.to_pkcs8_der().map_err(|e| data(e.to_string()))?;
    Ok(Imported {
        der: der.as_bytes().to_vec(),
        modulus_bits: key.n().bits() as u32,
        exponent: key.e().to_bytes_be(),
    })
}

fn imported_public(key: &RsaPublicKey) -> CryptoResult<Imported> {
    let der = key.to_public_key_der().map_err(|e| data(e.to_string()))?;
    Ok(Imported {
        der: der.as_bytes().to_vec(),
        modulus_bits: key.n().bits() as u32,
        exponent: key.e().to_bytes_be(),
    })
}

/// A PKCS#8 or SPKI key, checked and re-encoded.
pub(crate) fn import_der(private: bool, der: &[u8]) -> CryptoResult<Imported> {
    if private {
        let key = private_key(der)?;
        key.validate()
            .map_err(|e| data(format!("invalid RSA private key: {e}")))?;
        imported_private(&key)
    } else {
        imported_public(&public_key(der)?)
    }
}

/// A JWK's `[n, e, d, p, q, dp, dq, qi]`, the last six absent for a
/// public key.
pub(crate) fn import_jwk(private: bool, parts: &[Option<Vec<u8>>]) -> CryptoResult<Imported> {
    let part = |i: usize, name: &str| -> CryptoResult<BigUint> {
        parts
            .get(i)
            .and_then(|p| p.as_deref())
            .map(BigUint::from_bytes_be)
            .ok_or_else(|| data(format!("the RSA JWK has no \"{name}\"")))
    };
    let (n, e) = (part(0, "n")?, part(1, "e")?);
    check_size(&n)?;
    if !private {
        let key = RsaPublicKey::new(n, e).map_err(|err| data(format!("invalid RSA public key: {err}")))?;
        return imported_public(&key);
    }
    let (d, p, q) = (part(2, "d")?, part(3, "p")?, part(4, "q")?);
    let mut key = RsaPrivateKey::from_components(n, e, d, vec![p, q])
        .map_err(|err| data(format!("invalid RSA private key: {err}")))?;
    key.validate()
        .map_err(|err| data(format!("invalid RSA private key: {err}")))?;
    key.precompute()
        .map_err(|err| data(format!("invalid RSA private key: {err}")))?;
    // The CRT values given must be the ones the primes imply.
    let given: Vec<Option<BigUint>> = (5..8)
        .map(|i| parts.get(i).and_then(|p| p.as_deref()).map(BigUint::from_bytes_be))
        .collect();
    let implied = [key.dp().cloned(), key.dq().cloned(), key.crt_coefficient()];
    for (g, i) in given.iter().zip(implied.iter()) {
        if g.is_some() && g != i {
            return Err(data("the RSA JWK's dp, dq or qi do not match its primes"));
        }
    }
    imported_private(&key)
}

/// `[n, e]` of a public key, or `[n, e, d, p, q, dp, dq, qi]` of a private one.
pub(crate) fn export_jwk(private: bool, der: &[u8]) -> CryptoResult<Vec<Vec<u8>>> {
    if !private {
        let key = public_key(der)?;
        return Ok(vec![key.n().to_bytes_be(), key.e().to_bytes_be()]);
    }
    let mut key = private_key(der)?;
    key.precompute().map_err(|e| operation(e.to_string()))?;
    let primes = key.primes();
    if primes.len() != 2 {
        return Err(operation("multi-prime RSA keys cannot be exported as JWK"));
    }
    let missing = || operation("the RSA key has no CRT values");
    Ok(vec![
        key.n().to_bytes_be(),
        key.e().to_bytes_be(),
        key.d().to_bytes_be(),
        primes[0].to_bytes_be(),
        primes[1].to_bytes_be(),
        key.dp().ok_or_else(missing)?.to_bytes_be(),
        key.dq().ok_or_else(missing)?.to_bytes_be(),
        key.crt_coefficient().ok_or_else(missing)?.to_bytes_be(),
    ])
}

/// A new key pair. Sizes from 1024 to 4096 bits (larger ones take seconds
/// of a shared JS thread), exponents 3 or 65537.
pub(crate) fn generate(bits: u32, exponent: &[u8]) -> CryptoResult<(Imported, Imported)> {
    if !(1024..=4096).contains(&bits) || !bits.is_multiple_of(8) {
        return Err(operation(format!(
            "RSA modulusLength {bits}: 1024 to 4096, a multiple of 8"
        )));
    }
    let e = BigUint::from_bytes_be(exponent);
    if e != BigUint::from(3u32) && e != BigUint::from(65537u32) {
        return Err(operation("RSA publicExponent must be 3 or 65537"));
    }
    let key = RsaPrivateKey::new_with_exp(&mut rand_core::OsRng, bits as usize, &e)
        .map_err(|err| operation(format!("RSA key generation failed: {err}")))?;
    Ok((imported_private(&key)?, imported_public(&key.to_public_key())?))
}

/// The longest PSS salt a key of `modulus_bits` takes with `hash`
/// (RFC 8017 9.1.1: emLen - hLen - 2). The `rsa` crate allocates and
/// fills the salt before it checks it, so a longer one (JavaScript may ask
/// for 4 GiB) is refused first: it could never sign anyway.
fn max_pss_salt(modulus_bits: usize, hash: Hash) -> usize {
    let em_len = (modulus_bits - 1).div_ceil(8);
    em_len.saturating_sub(hash.digest_algorithm().output_len() + 2)
}

pub(crate) fn sign(padding: Padding, hash: Hash, der: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
    let key = private_key(der)?;
    if let Padding::Pss(salt) = padding {
        let max = max_pss_salt(key.n().bits(), hash);
        if salt > max {
            return Err(operation(format!(
                "RSA-PSS saltLength {salt} is more than this key and hash allow ({max} bytes)"
            )));
        }
    }
    let hashed = super::hash::digest(hash, message);
    let rng = &mut rand_core::OsRng;
    let signed = with_digest!(hash, D => match padding {
        Padding::Pkcs1 => key.sign_with_rng(rng, Pkcs1v15Sign::new::<D>(), &hashed),
        Padding::Pss(salt) => key.sign_with_rng(rng, Pss::new_with_salt::<D>(salt), &hashed),
    });
    signed.map_err(|e| operation(format!("RSA signing failed: {e}")))
}

/// False for any signature that does not verify, whatever the reason.
pub(crate) fn verify(padding: Padding, hash: Hash, der: &[u8], signature: &[u8], message: &[u8]) -> CryptoResult<bool> {
    let key = public_key(der)?;
    if matches!(padding, Padding::Pss(salt) if salt > max_pss_salt(key.n().bits(), hash)) {
        return Ok(false);
    }
    let hashed = super::hash::digest(hash, message);
    let verified = with_digest!(hash, D => match padding {
        Padding::Pkcs1 => key.verify(Pkcs1v15Sign::new::<D>(), &hashed, signature),
        Padding::Pss(salt) => key.verify(Pss::new_with_salt::<D>(salt), &hashed, signature),
    });
    Ok(verified.is_ok())
}

/// RSA-OAEP with MGF1 over the same hash. The `rsa` crate takes labels as
/// text, so a label that is not UTF-8 is NotSupportedError.
pub(crate) fn oaep(encrypt: bool, hash: Hash, label: &[u8], der: &[u8], input: &[u8]) -> CryptoResult<Vec<u8>> {
    let label = if label.is_empty() {
        None
    } else {
        Some(
            String::from_utf8(label.to_vec())
                .map_err(|_| super::error::not_supported("RSA-OAEP labels that are not UTF-8"))?,
        )
    };
    let padding = || {
        with_digest!(hash, D => match &label {
            Some(l) => Oaep::new_with_label::<D, _>(l),
            None => Oaep::new::<D>(),
        })
    };
    if encrypt {
        public_key(der)?
            .encrypt(&mut rand_core::OsRng, padding(), input)
            .map_err(|e| operation(format!("RSA-OAEP encryption failed: {e}")))
    } else {
        private_key(der)?
            .decrypt_blinded(&mut rand_core::OsRng, padding(), input)
            .map_err(|_| operation("RSA-OAEP decryption failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JWK with a modulus over 4096 bits is refused before any work on it.
    #[test]
    fn oversized_keys_are_refused() {
        let n = vec![0xffu8; 4096 / 8 + 1];
        let parts = [
            Some(n),
            Some(vec![1, 0, 1]),
            Some(vec![1]),
            Some(vec![3]),
            Some(vec![5]),
        ];
        assert!(
            matches!(import_jwk(true, &parts), Err(super::super::error::CryptoError::Data(m)) if m.contains("4096"))
        );
        assert!(matches!(
            import_jwk(false, &parts[..2]),
            Err(super::super::error::CryptoError::Data(_))
        ));
    }

    #[test]
    fn pss_salt_lengths_other_than_the_hash_length() {
        let (private, public) = generate(1024, &[1, 0, 1]).unwrap();
        let sig = sign(Padding::Pss(0), Hash::Sha256, &private.der, b"m").unwrap();
        assert!(verify(Padding::Pss(0), Hash::Sha256, &public.der, &sig, b"m").unwrap());
        assert!(!verify(Padding::Pss(32), Hash::Sha256, &public.der, &sig, b"m").unwrap());
        assert_eq!(
            (public.modulus_bits, public.exponent.as_slice()),
            (1024, &[1u8, 0, 1][..])
        );
        // 1024 bits with SHA-256: at most 128 - 32 - 2 = 94 bytes of salt;
        // more is refused before the salt is made (4 GiB could be asked).
        let sig = sign(Padding::Pss(94), Hash::Sha256, &private.der, b"m").unwrap();
        assert!(verify(Padding::Pss(94), Hash::Sha256, &public.der, &sig, b"m").unwrap());
        for salt in [95, 1 << 20, u32::MAX as usize] {
            match sign(Padding::Pss(salt), Hash::Sha256, &private.der, b"m") {
                Err(super::super::error::CryptoError::Operation(m)) => assert!(m.contains("saltLength"), "{m}"),
                other => panic!("salt {salt}: {other:?}"),
            }
            assert!(!verify(Padding::Pss(salt), Hash::Sha256, &public.der, &sig, b"m").unwrap());
        }
        assert!(generate(1000, &[1, 0, 1]).is_err());
        assert!(generate(2048, &[17]).is_err());
    }
}
