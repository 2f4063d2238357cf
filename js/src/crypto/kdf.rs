//! PBKDF2 and HKDF on `ring`: the bits Web Crypto's `deriveBits` asks for.

use std::num::NonZeroU32;

use super::error::{CryptoResult, not_supported, operation};
use super::hash::Hash;

/// Bits to bytes: Web Crypto derives whole bytes only.
fn byte_len(bits: u32) -> CryptoResult<usize> {
    if bits == 0 || !bits.is_multiple_of(8) {
        return Err(operation(format!("length {bits} is not a positive multiple of 8")));
    }
    Ok(bits as usize / 8)
}

/// The most PBKDF2 iterations one call may ask for, as in Cloudflare
/// Workers: native code is not interrupted by the isolate's `timeout` or
/// `cpu_limit`, so an unbounded count would hold a JS thread (in inline
/// mode, an HTTP worker) for as long as the app likes.
pub(crate) const PBKDF2_MAX_ITERATIONS: u32 = 100_000;

/// The most PBKDF2 output one call may ask for (every block costs all the
/// iterations again); far more than any key needs.
pub(crate) const PBKDF2_MAX_BITS: u32 = 8192;

/// PBKDF2 as RFC 8018 defines it; zero iterations is an OperationError,
/// more than the limits above NotSupportedError.
pub(crate) fn pbkdf2(hash: Hash, password: &[u8], salt: &[u8], iterations: u32, bits: u32) -> CryptoResult<Vec<u8>> {
    let iterations = NonZeroU32::new(iterations).ok_or_else(|| operation("PBKDF2 iterations must be positive"))?;
    if iterations.get() > PBKDF2_MAX_ITERATIONS {
        return Err(not_supported(format!(
            "PBKDF2 with more than {PBKDF2_MAX_ITERATIONS} iterations (asked for {iterations})"
        )));
    }
    let len = byte_len(bits)?;
    if bits > PBKDF2_MAX_BITS {
        return Err(not_supported(format!("PBKDF2 output over {PBKDF2_MAX_BITS} bits")));
    }
    let mut out = vec![0u8; len];
    let alg = match hash {
        Hash::Sha1 => ring::pbkdf2::PBKDF2_HMAC_SHA1,
        Hash::Sha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
        Hash::Sha384 => ring::pbkdf2::PBKDF2_HMAC_SHA384,
        Hash::Sha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
    };
    ring::pbkdf2::derive(alg, iterations, salt, password, &mut out);
    Ok(out)
}

/// The output length ring's HKDF asks its caller for.
struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF as RFC 5869 defines it (extract then expand); more than 255 hash
/// lengths is an OperationError.
pub(crate) fn hkdf(hash: Hash, ikm: &[u8], salt: &[u8], info: &[u8], bits: u32) -> CryptoResult<Vec<u8>> {
    let len = byte_len(bits)?;
    let alg = match hash {
        Hash::Sha1 => ring::hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
        Hash::Sha256 => ring::hkdf::HKDF_SHA256,
        Hash::Sha384 => ring::hkdf::HKDF_SHA384,
        Hash::Sha512 => ring::hkdf::HKDF_SHA512,
    };
    let prk = ring::hkdf::Salt::new(alg, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len(len))
        .map_err(|_| operation(format!("HKDF cannot derive {bits} bits with {hash:?}")))?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).map_err(|_| operation("HKDF expand failed"))?;
    Ok(out)
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

    #[test]
    fn rfc6070_pbkdf2_sha1() {
        let out = pbkdf2(Hash::Sha1, b"password", b"salt", 4096, 160).unwrap();
        assert_eq!(out, hex("4b007901b765489abead49d926f721d065a429c1"));
    }

    #[test]
    fn rfc5869_case_1() {
        let ikm = hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let out = hkdf(
            Hash::Sha256,
            &ikm,
            &hex("000102030405060708090a0b0c"),
            &hex("f0f1f2f3f4f5f6f7f8f9"),
            42 * 8,
        )
        .unwrap();
        assert_eq!(
            out,
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn lengths_and_iterations_are_checked() {
        assert!(matches!(
            pbkdf2(Hash::Sha256, b"p", b"s", 0, 256),
            Err(super::super::error::CryptoError::Operation(_))
        ));
        assert!(pbkdf2(Hash::Sha256, b"p", b"s", 1, 12).is_err());
        assert!(pbkdf2(Hash::Sha256, b"p", b"s", PBKDF2_MAX_ITERATIONS, 256).is_ok());
        assert!(matches!(
            pbkdf2(Hash::Sha256, b"p", b"s", PBKDF2_MAX_ITERATIONS + 1, 256),
            Err(super::super::error::CryptoError::NotSupported(_))
        ));
        assert!(pbkdf2(Hash::Sha256, b"p", b"s", 1, PBKDF2_MAX_BITS + 8).is_err());
        assert!(hkdf(Hash::Sha256, b"k", b"", b"", 0).is_err());
        assert!(hkdf(Hash::Sha256, b"k", b"", b"", 255 * 32 * 8).is_ok());
        assert!(hkdf(Hash::Sha256, b"k", b"", b"", 255 * 32 * 8 + 8).is_err());
    }
}
