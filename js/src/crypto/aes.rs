//! AES-GCM on `ring`; AES-CBC with the `cbc` crate; AES-CTR here, over the
//! `aes` block cipher, because Web Crypto's counter may be any width from
//! 1 to 128 bits and wraps within it (the `ctr` crate only knows 32, 64 and
//! 128).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};

use super::error::{CryptoResult, data, not_supported, operation};

fn check_key(key: &[u8]) -> CryptoResult<()> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(data(format!("an AES key is 128, 192 or 256 bits, not {}", n * 8))),
    }
}

/// AES-GCM with a 96-bit IV and a 128-bit tag (what ring implements, and
/// what JOSE, TLS and nearly every caller use); other IV or tag sizes and
/// 192-bit keys are NotSupportedError.
pub(crate) fn gcm(
    encrypt: bool,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    tag_bits: u32,
    input: &[u8],
) -> CryptoResult<Vec<u8>> {
    use ring::aead;
    check_key(key)?;
    let alg = match key.len() {
        16 => &aead::AES_128_GCM,
        32 => &aead::AES_256_GCM,
        _ => return Err(not_supported("AES-GCM with a 192-bit key")),
    };
    if tag_bits != 128 {
        return Err(not_supported(format!("AES-GCM tagLength {tag_bits} (only 128)")));
    }
    let nonce = aead::Nonce::try_assume_unique_for_key(iv)
        .map_err(|_| not_supported(format!("AES-GCM with a {}-bit iv (only 96)", iv.len() * 8)))?;
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).map_err(|_| data("bad AES key"))?);
    let mut buf = input.to_vec();
    if encrypt {
        key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| operation("AES-GCM encryption failed"))?;
        Ok(buf)
    } else {
        let plain = key
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| operation("AES-GCM decryption failed: the data or its tag do not match"))?;
        Ok(plain.to_vec())
    }
}

fn cbc_with<C>(encrypt: bool, key: &[u8], iv: &[u8], input: &[u8]) -> CryptoResult<Vec<u8>>
where
    C: BlockEncrypt + aes::cipher::BlockDecrypt + KeyInit + aes::cipher::BlockCipher,
    cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
{
    if encrypt {
        let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| data("bad AES-CBC key or iv"))?;
        Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(input))
    } else {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| data("bad AES-CBC key or iv"))?;
        dec.decrypt_padded_vec_mut::<Pkcs7>(input)
            .map_err(|_| operation("AES-CBC decryption failed: bad padding or length"))
    }
}

/// AES-CBC with PKCS#7 padding and a 16-byte IV.
pub(crate) fn cbc(encrypt: bool, key: &[u8], iv: &[u8], input: &[u8]) -> CryptoResult<Vec<u8>> {
    check_key(key)?;
    if iv.len() != 16 {
        return Err(operation("AES-CBC needs a 16-byte iv"));
    }
    match key.len() {
        16 => cbc_with::<aes::Aes128>(encrypt, key, iv, input),
        24 => cbc_with::<aes::Aes192>(encrypt, key, iv, input),
        _ => cbc_with::<aes::Aes256>(encrypt, key, iv, input),
    }
}

fn ctr_with<C: BlockEncrypt<BlockSize = aes::cipher::consts::U16> + KeyInit>(
    key: &[u8],
    counter: &[u8; 16],
    length: u32,
    input: &[u8],
) -> CryptoResult<Vec<u8>> {
    let cipher = C::new_from_slice(key).map_err(|_| data("bad AES key"))?;
    let blocks = input.len().div_ceil(16) as u128;
    let mask: u128 = if length == 128 {
        u128::MAX
    } else {
        (1u128 << length) - 1
    };
    if length < 128 && blocks > (1u128 << length) {
        return Err(operation(format!(
            "AES-CTR: the data needs more than 2^{length} counter blocks"
        )));
    }
    let start = u128::from_be_bytes(*counter);
    let (fixed, mut count) = (start & !mask, start & mask);
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.chunks(16) {
        let mut block = aes::Block::from((fixed | count).to_be_bytes());
        cipher.encrypt_block(&mut block);
        out.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
        count = count.wrapping_add(1) & mask;
    }
    Ok(out)
}

/// AES-CTR: the rightmost `length` bits of the 16-byte counter block count
/// and wrap; the same call encrypts and decrypts.
pub(crate) fn ctr(key: &[u8], counter: &[u8], length: u32, input: &[u8]) -> CryptoResult<Vec<u8>> {
    check_key(key)?;
    let counter: &[u8; 16] = counter
        .try_into()
        .map_err(|_| operation("AES-CTR needs a 16-byte counter"))?;
    if !(1..=128).contains(&length) {
        return Err(operation("AES-CTR length must be between 1 and 128"));
    }
    match key.len() {
        16 => ctr_with::<aes::Aes128>(key, counter, length, input),
        24 => ctr_with::<aes::Aes192>(key, counter, length, input),
        _ => ctr_with::<aes::Aes256>(key, counter, length, input),
    }
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

    /// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), first two blocks.
    #[test]
    fn sp800_38a_ctr() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let counter = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let out = ctr(&key, &counter, 128, &plain).unwrap();
        assert_eq!(
            out,
            hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")
        );
        assert_eq!(ctr(&key, &counter, 128, &out).unwrap(), plain);
    }

    /// A counter of 8 bits wraps within its byte, leaving the rest alone.
    #[test]
    fn ctr_wraps_within_its_length() {
        let key = [7u8; 16];
        let mut counter = [0u8; 16];
        counter[14] = 0x41;
        counter[15] = 0xff;
        let ks = ctr(&key, &counter, 8, &[0u8; 32]).unwrap();
        let mut second = counter;
        second[15] = 0x00; // wrapped, no carry into byte 14
        assert_eq!(ctr(&key, &second, 8, &[0u8; 16]).unwrap(), ks[16..]);
        assert!(
            ctr(&key, &counter, 1, &[0u8; 48]).is_err(),
            "3 blocks with a 1-bit counter"
        );
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), one block plus padding.
    #[test]
    fn sp800_38a_cbc() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let plain = hex("6bc1bee22e409f96e93d7e117393172a");
        let out = cbc(true, &key, &iv, &plain).unwrap();
        assert_eq!(out[..16], hex("7649abac8119b246cee98e9b12e9197d")[..]);
        assert_eq!(out.len(), 32);
        assert_eq!(cbc(false, &key, &iv, &out).unwrap(), plain);
        assert!(matches!(
            cbc(false, &key, &iv, &out[..16]),
            Err(super::super::error::CryptoError::Operation(_))
        ));
    }

    /// The GCM spec's test case 3 (AES-128, 96-bit IV, no AAD).
    #[test]
    fn gcm_test_case_3() {
        let key = hex("feffe9928665731c6d6a8f9467308308");
        let iv = hex("cafebabefacedbaddecaf888");
        let plain = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        let out = gcm(true, &key, &iv, &[], 128, &plain).unwrap();
        let expected = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd2ba6fab4";
        assert_eq!(out, hex(expected));
        assert_eq!(gcm(false, &key, &iv, &[], 128, &out).unwrap(), plain);
        let mut bad = out.clone();
        bad[0] ^= 1;
        assert!(gcm(false, &key, &iv, &[], 128, &bad).is_err());
        assert!(matches!(
            gcm(true, &key, &iv, &[], 96, &plain),
            Err(super::super::error::CryptoError::NotSupported(_))
        ));
    }
}
