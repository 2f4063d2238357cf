//! JWT verification on one core: `cargo bench -p bext-plugin-authn`.
//! The goal is at least 500 k HS256 verifications a second (2 µs each).

use std::time::Duration;

use bext_plugin_authn::keys::{Checks, key_from_config};
use jsonwebtoken::{EncodingKey, Header, encode};

fn main() {
    divan::main();
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[divan::bench]
fn hs256(bencher: divan::Bencher<'_, '_>) {
    let keys = vec![key_from_config("HS256", Some(SECRET), None, None).unwrap()];
    let checks = Checks::new(&[], &[], Duration::from_secs(30));
    let claims = serde_json::json!({ "sub": "user-42", "exp": 4_000_000_000u64, "scope": "read write" });
    let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    bencher.bench_local(|| checks.verify(divan::black_box(&token), &keys).unwrap());
}

/// A token as identity providers issue them: issuer, audience, a dozen
/// claims, a `kid`, checked against two keys.
#[divan::bench]
fn hs256_idp_token(bencher: divan::Bencher<'_, '_>) {
    let keys = vec![
        key_from_config("HS256", Some(&[1; 32]), None, Some("2025".into())).unwrap(),
        key_from_config("HS256", Some(SECRET), None, Some("2026".into())).unwrap(),
    ];
    let checks = Checks::new(
        &["https://idp.example.com".into()],
        &["shop-api".into()],
        Duration::from_secs(30),
    );
    let claims = serde_json::json!({
        "iss": "https://idp.example.com", "sub": "auth0|5f7c8ec7c33c6c004bbafe82", "aud": ["shop-api", "https://idp.example.com/userinfo"],
        "iat": 1_700_000_000u64, "exp": 4_000_000_000u64, "azp": "k3nT0kEn", "scope": "openid profile email read:orders",
        "email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace", "org_id": "org_123", "roles": ["admin", "buyer"],
    });
    let header = Header {
        kid: Some("2026".into()),
        ..Header::default()
    };
    let token = encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    bencher.bench_local(|| checks.verify(divan::black_box(&token), &keys).unwrap());
}
