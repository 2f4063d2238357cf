//! Digests and HMAC on `ring` (the crypto rustls already uses here).

use super::error::{CryptoResult, not_supported};

/// A Web Crypto hash, as algorithms name it in their `hash` member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// `SHA-1`, `SHA-256`, `SHA-384` or `SHA-512` (the JS side has
    /// already normalised the case).
    pub(crate) fn parse(name: &str) -> CryptoResult<Hash> {
        match name {
            "SHA-1" => Ok(Hash::Sha1),
            "SHA-256" => Ok(Hash::Sha256),
            "SHA-384" => Ok(Hash::Sha384),
            "SHA-512" => Ok(Hash::Sha512),
            _ => Err(not_supported(format!("unsupported hash {name:?}"))),
        }
    }

    pub(crate) fn digest_algorithm(self) -> &'static ring::digest::Algorithm {
        match self {
            Hash::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &ring::digest::SHA256,
            Hash::Sha384 => &ring::digest::SHA384,
            Hash::Sha512 => &ring::digest::SHA512,
        }
    }

    pub(crate) fn hmac_algorithm(self) -> ring::hmac::Algorithm {
        match self {
            Hash::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => ring::hmac::HMAC_SHA256,
            Hash::Sha384 => ring::hmac::HMAC_SHA384,
            Hash::Sha512 => ring::hmac::HMAC_SHA512,
        }
    }
}

pub(crate) fn digest(hash: Hash, data: &[u8]) -> Vec<u8> {
    ring::digest::digest(hash.digest_algorithm(), data).as_ref().to_vec()
}

pub(crate) fn hmac_sign(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(hash.hmac_algorithm(), key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// Constant time: ring compares the tags itself.
pub(crate) fn hmac_verify(hash: Hash, key: &[u8], signature: &[u8], data: &[u8]) -> bool {
    let key = ring::hmac::Key::new(hash.hmac_algorithm(), key);
    ring::hmac::verify(&key, data, signature).is_ok()
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
    fn hash_names_are_the_web_crypto_spellings() {
        assert_eq!(Hash::parse("SHA-384").unwrap(), Hash::Sha384);
        assert!(Hash::parse("sha-256").is_err());
        assert!(Hash::parse("MD5").is_err());
    }

    #[test]
    fn rfc4231_case_2() {
        let tag = hmac_sign(Hash::Sha256, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            tag,
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert!(hmac_verify(
            Hash::Sha256,
            b"Jefe",
            &tag,
            b"what do ya want for nothing?"
        ));
        assert!(!hmac_verify(
            Hash::Sha256,
            b"Jefe",
            &tag,
            b"what do ya want for nothing!"
        ));
    }
}
