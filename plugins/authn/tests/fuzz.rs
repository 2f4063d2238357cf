//! Property tests (proptest): token parsing never panics on hostile
//! input, and nothing but a correctly signed, unexpired token verifies.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
        let encode = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let keys = vec![key_from_config("HS256", Some(SECRET), None, None).unwrap()];
        let checks = Checks::new(&[], &[], Duration::from_secs(30));
        let token = format!("{}.{}.", encode(header.as_bytes()), encode(claims.as_bytes()));
        prop_assert!(checks.verify(&token, &keys).is_err());
    }
}
