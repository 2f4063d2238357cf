//! Property tests (proptest): token parsing never panics on hostile
//! input, and nothing but a correctly signed, unexpired token verifies.

use std::time::Duration;

use bext_plugin_authn::keys::{Checks, key_from_config};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_tokens_never_verify_or_panic(token in "[A-Za-z0-9_.=+/-]{0,300}") {
        let keys = vec![key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        let checks = Checks::new(&[], &[], Duration::from_secs(30));
        prop_assert!(checks.verify(&token, &keys).is_err());
    }

    #[test]
    fn headers_and_claims_of_any_shape_never_verify_unsigned(header in "\\{[ -~]{0,60}\\}", claims in "\\{[ -~]{0,80}\\}") {
        use base64_like::encode;
        let keys = vec![key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        let checks = Checks::new(&[], &[], Duration::from_secs(30));
        let token = format!("{}.{}.", encode(header.as_bytes()), encode(claims.as_bytes()));
        prop_assert!(checks.verify(&token, &keys).is_err());
    }
}

/// Unpadded base64url, for building tokens by hand.
mod base64_like {
    pub(crate) fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}
