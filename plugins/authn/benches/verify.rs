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
