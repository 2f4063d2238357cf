//! The Rust half of `crypto.subtle`: digests and HMAC, on `ring` (the
//! crypto rustls already uses here). The prelude keeps keys and checks
//! arguments; these natives only compute.

use rquickjs::{Ctx, Exception, Function, Object, Result, TypedArray};

/// `SHA-1`, `SHA-256`, `SHA-384` or `SHA-512`, as Web Crypto names them.
fn digest_algorithm(name: &str) -> Option<&'static ring::digest::Algorithm> {
    match name {
        "SHA-1" => Some(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        "SHA-256" => Some(&ring::digest::SHA256),
        "SHA-384" => Some(&ring::digest::SHA384),
        "SHA-512" => Some(&ring::digest::SHA512),
        _ => None,
    }
}

fn hmac_algorithm(name: &str) -> Option<ring::hmac::Algorithm> {
    match name {
        "SHA-1" => Some(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        "SHA-256" => Some(ring::hmac::HMAC_SHA256),
        "SHA-384" => Some(ring::hmac::HMAC_SHA384),
        "SHA-512" => Some(ring::hmac::HMAC_SHA512),
        _ => None,
    }
}

fn unsupported(ctx: &Ctx<'_>, hash: &str) -> rquickjs::Error {
    Exception::throw_type(ctx, &format!("unsupported hash {hash:?}"))
}

/// Adds `digest`, `hmacSign` and `hmacVerify` to the prelude's `native`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    native.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, hash: String, data: TypedArray<'js, u8>| -> Result<TypedArray<'js, u8>> {
                let alg = digest_algorithm(&hash).ok_or_else(|| unsupported(&ctx, &hash))?;
                let out = ring::digest::digest(alg, &crate::natives::copy_bytes(&data));
                TypedArray::new_copy(ctx, out.as_ref())
            },
        )?,
    )?;
    native.set(
        "hmacSign",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: TypedArray<'js, u8>,
             data: TypedArray<'js, u8>|
             -> Result<TypedArray<'js, u8>> {
                let alg = hmac_algorithm(&hash).ok_or_else(|| unsupported(&ctx, &hash))?;
                let key = ring::hmac::Key::new(alg, &crate::natives::copy_bytes(&key));
                let tag = ring::hmac::sign(&key, &crate::natives::copy_bytes(&data));
                TypedArray::new_copy(ctx, tag.as_ref())
            },
        )?,
    )?;
    native.set(
        "hmacVerify",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: TypedArray<'js, u8>,
             signature: TypedArray<'js, u8>,
             data: TypedArray<'js, u8>|
             -> Result<bool> {
                let alg = hmac_algorithm(&hash).ok_or_else(|| unsupported(&ctx, &hash))?;
                let key = ring::hmac::Key::new(alg, &crate::natives::copy_bytes(&key));
                // Constant time: ring compares the tags itself.
                Ok(ring::hmac::verify(
                    &key,
                    &crate::natives::copy_bytes(&data),
                    &crate::natives::copy_bytes(&signature),
                )
                .is_ok())
            },
        )?,
    )?;
    Ok(())
}
