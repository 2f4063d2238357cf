//! The Rust half of `crypto.subtle` (issue 25): each native computes one
//! primitive on bytes; `web/crypto.js` keeps the CryptoKey objects, checks
//! algorithms, usages and extractability as the spec orders, and turns the
//! typed failures thrown here into DOMExceptions.
//!
//! Digests, HMAC, PBKDF2, HKDF and AES-GCM run on `ring`; RSA, ECDSA,
//! Ed25519 and AES-CBC/CTR on RustCrypto crates (docs/dependencies.md).

mod aes;
mod ec;
mod error;
mod hash;
mod kdf;
mod keys;
mod rsa;

use rquickjs::{Array, Ctx, Exception, Function, Object, Result, TypedArray};

use crate::natives::copy_bytes;
use error::{CryptoError, CryptoResult};
use hash::Hash;
use keys::{Imported, Kind};

/// Throws an `Error` whose `name` is the DOMException name; the JS side
/// re-raises it as that DOMException.
fn throw(ctx: &Ctx<'_>, e: CryptoError) -> rquickjs::Error {
    match Exception::from_message(ctx.clone(), &e.to_string()) {
        Ok(ex) => {
            if let Err(err) = ex.as_object().set("name", e.dom_name()) {
                return err;
            }
            ex.throw()
        }
        Err(err) => err,
    }
}

fn bytes_out<'js>(ctx: &Ctx<'js>, r: CryptoResult<Vec<u8>>) -> Result<TypedArray<'js, u8>> {
    let out = r.map_err(|e| throw(ctx, e))?;
    TypedArray::new(ctx.clone(), out)
}

fn list_out<'js>(ctx: &Ctx<'js>, r: CryptoResult<Vec<Vec<u8>>>) -> Result<Array<'js>> {
    let parts = r.map_err(|e| throw(ctx, e))?;
    let out = Array::new(ctx.clone())?;
    for (i, p) in parts.into_iter().enumerate() {
        out.set(i, TypedArray::<u8>::new(ctx.clone(), p)?)?;
    }
    Ok(out)
}

/// `[der, modulusBits, publicExponent]`.
fn key_out<'js>(ctx: &Ctx<'js>, key: Imported) -> Result<Array<'js>> {
    let out = Array::new(ctx.clone())?;
    out.set(0, TypedArray::<u8>::new(ctx.clone(), key.der)?)?;
    out.set(1, key.modulus_bits)?;
    out.set(2, TypedArray::<u8>::new(ctx.clone(), key.exponent)?)?;
    Ok(out)
}

/// The signature schemes `sign` and `verify` take, by Web Crypto name.
enum Scheme {
    Rsa(rsa::Padding),
    Ecdsa,
    Ed25519,
}

fn scheme(alg: &str, salt: u32) -> CryptoResult<Scheme> {
    match alg {
        "RSASSA-PKCS1-v1_5" => Ok(Scheme::Rsa(rsa::Padding::Pkcs1)),
        "RSA-PSS" => Ok(Scheme::Rsa(rsa::Padding::Pss(salt as usize))),
        "ECDSA" => Ok(Scheme::Ecdsa),
        "Ed25519" => Ok(Scheme::Ed25519),
        _ => Err(error::not_supported(format!("signature algorithm {alg:?}"))),
    }
}

fn sign(alg: &str, kind: Kind, hash: &str, salt: u32, der: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
    match (scheme(alg, salt)?, kind) {
        (Scheme::Rsa(padding), Kind::Rsa) => rsa::sign(padding, Hash::parse(hash)?, der, message),
        (Scheme::Ecdsa, Kind::P256) => ec::nist_p256::sign(Hash::parse(hash)?, der, message),
        (Scheme::Ecdsa, Kind::P384) => ec::nist_p384::sign(Hash::parse(hash)?, der, message),
        (Scheme::Ed25519, Kind::Ed25519) => ec::ed25519::sign(der, message),
        _ => Err(error::operation(format!("{alg} cannot sign with a {kind:?} key"))),
    }
}

fn verify(
    alg: &str,
    kind: Kind,
    hash: &str,
    salt: u32,
    der: &[u8],
    signature: &[u8],
    message: &[u8],
) -> CryptoResult<bool> {
    match (scheme(alg, salt)?, kind) {
        (Scheme::Rsa(padding), Kind::Rsa) => rsa::verify(padding, Hash::parse(hash)?, der, signature, message),
        (Scheme::Ecdsa, Kind::P256) => ec::nist_p256::verify(Hash::parse(hash)?, der, signature, message),
        (Scheme::Ecdsa, Kind::P384) => ec::nist_p384::verify(Hash::parse(hash)?, der, signature, message),
        (Scheme::Ed25519, Kind::Ed25519) => ec::ed25519::verify(der, signature, message),
        _ => Err(error::operation(format!("{alg} cannot verify with a {kind:?} key"))),
    }
}

type Bytes<'js> = TypedArray<'js, u8>;

/// Adds the crypto natives to the prelude's `native` object.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    let c = || ctx.clone();
    native.set(
        "digest",
        Function::new(c(), |ctx: Ctx<'js>, hash: String, input: Bytes<'js>| {
            bytes_out(&ctx, Hash::parse(&hash).map(|h| hash::digest(h, &copy_bytes(&input))))
        })?,
    )?;
    native.set(
        "hmacSign",
        Function::new(
            c(),
            |ctx: Ctx<'js>, hash: String, key: Bytes<'js>, input: Bytes<'js>| {
                bytes_out(
                    &ctx,
                    Hash::parse(&hash).map(|h| hash::hmac_sign(h, &copy_bytes(&key), &copy_bytes(&input))),
                )
            },
        )?,
    )?;
    native.set(
        "hmacVerify",
        Function::new(
            c(),
            |ctx: Ctx<'js>, hash: String, key: Bytes<'js>, signature: Bytes<'js>, input: Bytes<'js>| -> Result<bool> {
                let h = Hash::parse(&hash).map_err(|e| throw(&ctx, e))?;
                Ok(hash::hmac_verify(
                    h,
                    &copy_bytes(&key),
                    &copy_bytes(&signature),
                    &copy_bytes(&input),
                ))
            },
        )?,
    )?;
    native.set(
        "pbkdf2",
        Function::new(
            c(),
            |ctx: Ctx<'js>, hash: String, password: Bytes<'js>, salt: Bytes<'js>, iterations: u32, bits: u32| {
                let r = Hash::parse(&hash)
                    .and_then(|h| kdf::pbkdf2(h, &copy_bytes(&password), &copy_bytes(&salt), iterations, bits));
                bytes_out(&ctx, r)
            },
        )?,
    )?;
    native.set(
        "hkdf",
        Function::new(
            c(),
            |ctx: Ctx<'js>, hash: String, ikm: Bytes<'js>, salt: Bytes<'js>, info: Bytes<'js>, bits: u32| {
                let r = Hash::parse(&hash)
                    .and_then(|h| kdf::hkdf(h, &copy_bytes(&ikm), &copy_bytes(&salt), &copy_bytes(&info), bits));
                bytes_out(&ctx, r)
            },
        )?,
    )?;
    native.set(
        "aesGcm",
        Function::new(
            c(),
            |ctx: Ctx<'js>,
             encrypt: bool,
             key: Bytes<'js>,
             iv: Bytes<'js>,
             aad: Bytes<'js>,
             tag_bits: u32,
             input: Bytes<'js>| {
                let r = aes::gcm(
                    encrypt,
                    &copy_bytes(&key),
                    &copy_bytes(&iv),
                    &copy_bytes(&aad),
                    tag_bits,
                    &copy_bytes(&input),
                );
                bytes_out(&ctx, r)
            },
        )?,
    )?;
    native.set(
        "aesCbc",
        Function::new(
            c(),
            |ctx: Ctx<'js>, encrypt: bool, key: Bytes<'js>, iv: Bytes<'js>, input: Bytes<'js>| {
                bytes_out(
                    &ctx,
                    aes::cbc(encrypt, &copy_bytes(&key), &copy_bytes(&iv), &copy_bytes(&input)),
                )
            },
        )?,
    )?;
    native.set(
        "aesCtr",
        Function::new(
            c(),
            |ctx: Ctx<'js>, key: Bytes<'js>, counter: Bytes<'js>, length: u32, input: Bytes<'js>| {
                bytes_out(
                    &ctx,
                    aes::ctr(&copy_bytes(&key), &copy_bytes(&counter), length, &copy_bytes(&input)),
                )
            },
        )?,
    )?;
    native.set(
        "keyImport",
        Function::new(
            c(),
            |ctx: Ctx<'js>, kind: String, format: String, private: bool, input: Bytes<'js>| {
                let r = Kind::parse(&kind).and_then(|k| keys::import(k, &format, private, &copy_bytes(&input)));
                key_out(&ctx, r.map_err(|e| throw(&ctx, e))?)
            },
        )?,
    )?;
    native.set(
        "keyImportJwk",
        Function::new(
            c(),
            |ctx: Ctx<'js>, kind: String, private: bool, parts: Vec<Option<Bytes<'js>>>| {
                let parts: Vec<Option<Vec<u8>>> = parts.iter().map(|p| p.as_ref().map(copy_bytes)).collect();
                let r = Kind::parse(&kind).and_then(|k| keys::import_jwk(k, private, &parts));
                key_out(&ctx, r.map_err(|e| throw(&ctx, e))?)
            },
        )?,
    )?;
    native.set(
        "keyExport",
        Function::new(
            c(),
            |ctx: Ctx<'js>, kind: String, format: String, private: bool, der: Bytes<'js>| {
                bytes_out(
                    &ctx,
                    Kind::parse(&kind).and_then(|k| keys::export(k, &format, private, &copy_bytes(&der))),
                )
            },
        )?,
    )?;
    native.set(
        "keyExportJwk",
        Function::new(c(), |ctx: Ctx<'js>, kind: String, private: bool, der: Bytes<'js>| {
            list_out(
                &ctx,
                Kind::parse(&kind).and_then(|k| keys::export_jwk(k, private, &copy_bytes(&der))),
            )
        })?,
    )?;
    native.set(
        "keyGenerate",
        Function::new(c(), |ctx: Ctx<'js>, kind: String, bits: u32, exponent: Bytes<'js>| {
            let r = Kind::parse(&kind).and_then(|k| keys::generate(k, bits, &copy_bytes(&exponent)));
            let (private, public) = r.map_err(|e| throw(&ctx, e))?;
            let out = Array::new(ctx.clone())?;
            out.set(0, key_out(&ctx, private)?)?;
            out.set(1, key_out(&ctx, public)?)?;
            Ok::<_, rquickjs::Error>(out)
        })?,
    )?;
    native.set(
        "sign",
        Function::new(
            c(),
            |ctx: Ctx<'js>, alg: String, kind: String, hash: String, salt: u32, der: Bytes<'js>, input: Bytes<'js>| {
                let r =
                    Kind::parse(&kind).and_then(|k| sign(&alg, k, &hash, salt, &copy_bytes(&der), &copy_bytes(&input)));
                bytes_out(&ctx, r)
            },
        )?,
    )?;
    // `[alg, kind, hash]` in one argument: QuickJS functions bound here
    // take at most seven.
    native.set(
        "verify",
        Function::new(
            c(),
            |ctx: Ctx<'js>,
             spec: Vec<String>,
             salt: u32,
             der: Bytes<'js>,
             signature: Bytes<'js>,
             input: Bytes<'js>|
             -> Result<bool> {
                let [alg, kind, hash] = <[String; 3]>::try_from(spec)
                    .map_err(|_| Exception::throw_type(&ctx, "verify: [alg, kind, hash] expected"))?;
                let r = Kind::parse(&kind).and_then(|k| {
                    verify(
                        &alg,
                        k,
                        &hash,
                        salt,
                        &copy_bytes(&der),
                        &copy_bytes(&signature),
                        &copy_bytes(&input),
                    )
                });
                r.map_err(|e| throw(&ctx, e))
            },
        )?,
    )?;
    native.set(
        "rsaOaep",
        Function::new(
            c(),
            |ctx: Ctx<'js>, encrypt: bool, hash: String, label: Bytes<'js>, der: Bytes<'js>, input: Bytes<'js>| {
                let r = Hash::parse(&hash)
                    .and_then(|h| rsa::oaep(encrypt, h, &copy_bytes(&label), &copy_bytes(&der), &copy_bytes(&input)));
                bytes_out(&ctx, r)
            },
        )?,
    )?;
    Ok(())
}
