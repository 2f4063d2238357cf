//! Web Crypto in JS apps, through a real bext: published known-answer
//! vectors, round trips of every key family through every key format,
//! keys and signatures made by Node's webcrypto (OpenSSL), and the
//! DOMException each misuse rejects with. The app is
//! `js_crypto/app.js`; `js_crypto/check-in-node.mjs` runs the same app
//! under Node, which is where the non-RFC expectations were checked.

use serde_json::{Value, json};

use crate::support::*;

fn crypto_site() -> (Site, Bext) {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("crypto/index.js", include_str!("js_crypto/app.js"));
    let platform = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.crypto]
runtime = "js"
source = "crypto"
domains = ["crypto.test"]
"#,
    );
    let b = Bext::serve(&platform);
    (s, b)
}

async fn answer(b: &Bext, method: &str, path: &str, body: &str) -> Value {
    let r = send(
        b.addr,
        request(method, path, &[("host", "crypto.test")], body.to_owned()),
    )
    .await;
    assert_eq!(r.status, 200, "{path}: {}\n{}", r.text(), b.log());
    r.json()
}

/// RFC 4231 (HMAC), RFC 6070 and RFC 7914 (PBKDF2), RFC 5869 (HKDF), the
/// GCM spec's NIST cases 2, 4 and 16, SP 800-38A (CBC, CTR), RFC 8032
/// (Ed25519, through a JWK private key and a raw public key).
#[tokio::test]
async fn known_answer_vectors() {
    let (_s, b) = crypto_site();
    let kat = answer(&b, "GET", "/kat", "").await;
    let expected = json!({
        "rfc4231_1_sha256": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "rfc4231_1_sha512": "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        "rfc4231_6_sha256": "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        "rfc6070_1": "0c60c80f961f0e71f3a9b524af6012062fe037a6",
        "rfc6070_2": "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
        "rfc6070_4096": "4b007901b765489abead49d926f721d065a429c1",
        "rfc6070_long": "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
        "rfc7914_sha256": "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
        "rfc5869_1": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        "rfc5869_3": "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        "rfc5869_4": "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
        "gcm_2": "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf true",
        "gcm_4": "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47 true",
        "gcm_16": "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b true",
        "sp800_38a_cbc": "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2",
        "cbc_round_trip": true,
        "sp800_38a_ctr": "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff",
        "rfc8032_1": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b true",
        "rfc8032_2": "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00 true",
        "sha384_abc": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    });
    assert_eq!(kat, expected);
}

/// Generated keys sign and verify (a changed message does not verify),
/// survive export and import in every format, encrypt and decrypt, wrap
/// and unwrap, and derive the same key from the same secret.
#[tokio::test]
async fn keys_round_trip_through_every_format() {
    let (_s, b) = crypto_site();
    let got = answer(&b, "GET", "/round-trips", "").await;
    let expected = json!({
        "RSASSA-PKCS1-v1_5": "true,false,true,true,true,true public/private verify/sign 2048",
        "RSA-PSS": "true,false,true,true,true,true public/private verify/sign 1024",
        "ECDSA P-256": "true,false,true,true,true,true,true public/private verify/sign P-256",
        "ECDSA P-384": "true,false,true,true,true,true,true public/private verify/sign P-384",
        "Ed25519": "true,false,true,true,true,true,true public/private verify/sign Ed25519",
        "RSA-OAEP": "round trip",
        "AES-GCM": "round trip",
        "AES-CBC": "round trip",
        "AES-CTR": "round trip",
        "wrap": true,
        "pbkdf2_deriveKey": "AES-GCM 256 true",
        "hkdf_deriveKey": "HMAC SHA-384 1024",
    });
    assert_eq!(got, expected);
}

/// Keys, signatures and an RSA-OAEP ciphertext Node's webcrypto made
/// (`js_crypto/node-vectors.json`, from `make-vectors.mjs`): imported as
/// SPKI, PKCS#8 and JWK, they verify and decrypt; one flipped signature
/// byte does not verify.
#[tokio::test]
async fn signatures_made_by_node_verify() {
    let (_s, b) = crypto_site();
    let got = answer(&b, "POST", "/node", include_str!("js_crypto/node-vectors.json")).await;
    let expected = json!([
        "RSASSA-PKCS1-v1_5 SHA-256 spki: true false",
        "RSASSA-PKCS1-v1_5 SHA-256 jwk: true false",
        "RSASSA-PKCS1-v1_5 pkcs8 sign: true",
        "RSA-PSS SHA-384 spki: true false",
        "RSA-PSS SHA-384 jwk: true false",
        "RSA-PSS pkcs8 sign: true",
        "ECDSA P-256 spki: true false",
        "ECDSA P-256 jwk: true false",
        "ECDSA pkcs8 sign: true",
        "ECDSA P-384 spki: true false",
        "ECDSA P-384 jwk: true false",
        "ECDSA pkcs8 sign: true",
        "Ed25519  spki: true false",
        "Ed25519  jwk: true false",
        "Ed25519 pkcs8 sign: true",
        "RSA-OAEP pkcs8: signed by node webcrypto",
        "RSA-OAEP jwk: signed by node webcrypto",
    ]);
    assert_eq!(got, expected);
}

/// Each misuse rejects (never throws synchronously) with the DOMException
/// the spec names; argument type errors are TypeErrors. Where Node differs
/// it is noted: it supports P-521, names the non-extractable export error
/// `InvalidAccessException`, and has no PBKDF2 iteration cap or HMAC key
/// size cap (bext's are Cloudflare's: native code is not interrupted by
/// the isolate's time limits).
#[tokio::test]
async fn misuse_rejects_with_the_spec_errors() {
    let (_s, b) = crypto_site();
    let got = answer(&b, "GET", "/errors", "").await;
    let expected = json!({
        "sign_with_public_key": "InvalidAccessError",
        "sign_with_other_algorithm": "InvalidAccessError",
        "hmac_key_used_to_verify": "InvalidAccessError",
        "aes_key_of_15_bytes": "DataError",
        "spki_garbage": "DataError",
        "spki_of_other_curve": "DataError",
        "jwk_crv_mismatch": "DataError",
        "jwk_bad_base64": "DataError",
        "rsa_raw_import": "NotSupportedError",
        "ecdsa_usage_encrypt": "SyntaxError",
        "private_key_without_usages": "SyntaxError",
        "p521": "NotSupportedError",
        "unknown_algorithm": "NotSupportedError",
        "gcm_tampered": "OperationError",
        "cbc_bad_padding": "OperationError",
        "cbc_short_iv": "OperationError",
        "export_not_extractable": "InvalidAccessError",
        "export_private_as_spki": "InvalidAccessError",
        "pbkdf2_bits_not_bytes": "OperationError",
        "pbkdf2_zero_iterations": "OperationError",
        "pbkdf2_extractable": "SyntaxError",
        "pbkdf2_over_the_iteration_cap": "NotSupportedError",
        "hmac_key_too_long": "OperationError",
        "curve_name_is_case_sensitive": "NotSupportedError",
        "digest_of_a_string": "TypeError (not a DOMException)",
        "bad_usage_name": "TypeError (not a DOMException)",
        "names_any_case": "ECDSA true",
        "verify_short_signature": false,
        "rejects_not_throws": true,
        "random_over_quota": "QuotaExceededError",
        "random_float": "TypeMismatchError",
        "random_at_quota": true,
        "uuid": true,
        "key_is_opaque": "[] [object CryptoKey] true",
    });
    assert_eq!(got, expected);
}

/// examples/apps/jwt-jose: `jose`'s jwtVerify from npm, bundled with
/// esbuild (`.ci/run` rebuilds the committed bundle from the lockfile),
/// on bext's Web Crypto. Tokens are signed by jsonwebtoken (RustCrypto)
/// with the authn plugin's test keys; the JWKS is their public halves.
#[tokio::test]
async fn jose_verifies_rs256_es256_and_eddsa_tokens() {
    use crate::authn::{claims, key_file, now, sign};
    use jsonwebtoken::{Algorithm, EncodingKey};

    let dist = repo().join("examples/apps/jwt-jose/dist");
    assert!(
        dist.join("index.js").is_file(),
        "missing {}: run `npm ci && npm run build` in examples/apps/jwt-jose",
        dist.display()
    );
    let mut keys = Vec::new();
    for (alg, kid, key) in [
        (
            Algorithm::RS256,
            "rsa",
            EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap(),
        ),
        (
            Algorithm::ES256,
            "ec",
            EncodingKey::from_ec_pem(&key_file("ec.key")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "ed",
            EncodingKey::from_ed_pem(&key_file("ed.key")).unwrap(),
        ),
    ] {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        keys.push(jwk);
    }
    let jwks = serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys }).unwrap();
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.api]
runtime = "js"
source = "{}"
domains = ["api.test"]
env = {{ JWKS = '{jwks}', ISSUER = "https://idp.test", AUDIENCE = "shop" }}
"#,
        dist.display()
    ));
    let b = Bext::serve(&cfg);
    let me = |token: String| {
        send(
            b.addr,
            request(
                "GET",
                "/me",
                &[("host", "api.test"), ("authorization", &format!("Bearer {token}"))],
                "",
            ),
        )
    };

    for (alg, kid, name) in [
        (Algorithm::RS256, "rsa", "RS256"),
        (Algorithm::ES256, "ec", "ES256"),
        (Algorithm::EdDSA, "ed", "EdDSA"),
    ] {
        let r = me(sign(alg, Some(kid), claims(json!({})))).await;
        assert_eq!(r.status, 200, "{name}: {}\n{}", r.text(), b.log());
        assert_eq!(r.json(), json!({ "sub": "user-42", "alg": name, "kid": kid }));
    }

    // The payload changed after signing (another subject), each algorithm.
    for (alg, kid) in [
        (Algorithm::RS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let token = sign(alg, Some(kid), claims(json!({})));
        let forged = sign(alg, Some(kid), claims(json!({ "sub": "admin" })));
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = forged.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        let r = me(tampered).await;
        assert_eq!(
            (r.status, r.json()),
            (401, json!({ "error": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" })),
            "{kid}"
        );
    }
    // Signed by the EC key but naming the RSA key's kid; expired; wrong audience.
    let r = me(sign(Algorithm::ES256, Some("rsa"), claims(json!({})))).await;
    assert_eq!(
        (r.status, r.json()),
        (401, json!({ "error": "ERR_JWKS_NO_MATCHING_KEY" }))
    );
    let r = me(sign(
        Algorithm::EdDSA,
        Some("ed"),
        claims(json!({ "exp": now() - 3600 })),
    ))
    .await;
    assert_eq!((r.status, r.json()), (401, json!({ "error": "ERR_JWT_EXPIRED" })));
    let r = me(sign(Algorithm::RS256, Some("rsa"), claims(json!({ "aud": "other" })))).await;
    assert_eq!(
        (r.status, r.json()),
        (401, json!({ "error": "ERR_JWT_CLAIM_VALIDATION_FAILED" }))
    );
    let r = send(b.addr, request("GET", "/me", &[("host", "api.test")], "")).await;
    assert_eq!(r.status, 401);

    // What an attacker tries: no signature at all, and the RSA public key
    // (which anyone has) used as an HMAC secret under the RSA key's kid.
    let none = crate::authn::raw_token(json!({ "alg": "none", "kid": "rsa" }), claims(json!({})), "");
    let r = me(none).await;
    assert_eq!(
        (r.status, r.json()),
        (401, json!({ "error": "ERR_JOSE_ALG_NOT_ALLOWED" }))
    );
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("rsa".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(&key_file("rsa.pub")),
    )
    .unwrap();
    let r = me(confused).await;
    assert_eq!(
        (r.status, r.json()),
        (401, json!({ "error": "ERR_JOSE_ALG_NOT_ALLOWED" }))
    );
}
