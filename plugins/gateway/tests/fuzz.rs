//! Property tests (proptest) for the header parsing behind CORS: hostile
//! `Origin`, `Access-Control-Request-*` values never panic, and only
//! configured origins ever get an `Access-Control-Allow-Origin`.

use bext_plugin_abi::units::Span;
use bext_plugin_gateway::config::CorsConfig;
use bext_plugin_gateway::cors::Cors;
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn cors() -> Cors {
    Cors::new(&CorsConfig {
        origins: vec!["https://app.example.com".into(), "https://*.example.org".into()],
        methods: vec!["GET".into(), "PUT".into()],
        headers: vec!["content-type".into()],
        expose: vec![],
        credentials: true,
        max_age: Span(std::time::Duration::from_secs(60)),
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn preflights_never_panic_and_allow_only_listed_origins(
        origin in "(https?://)?[a-z.*-]{0,20}(\\.example\\.(org|com))?(:[0-9]{1,5})?",
        method in "[A-Za-z]{0,8}",
        asked in "[a-zA-Z, -]{0,40}",
    ) {
        let c = cors();
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&origin) { h.insert("origin", v); }
        if let Ok(v) = HeaderValue::from_str(&method) { h.insert("access-control-request-method", v); }
        if let Ok(v) = HeaderValue::from_str(&asked) { h.insert("access-control-request-headers", v); }
        if let Some((_, out)) = c.preflight(&Method::OPTIONS, &h)
            && let Some(allowed) = out.get("access-control-allow-origin")
        {
            let a = allowed.to_str().unwrap();
            prop_assert!(a == "https://app.example.com" || (a.starts_with("https://") && a.ends_with(".example.org")), "{a}");
        }
        let mut res = HeaderMap::new();
        c.decorate(Some(&origin), &mut res);
        if res.contains_key("access-control-allow-origin") {
            prop_assert!(c.allows_origin(&origin));
        }
    }
}
