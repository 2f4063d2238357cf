//! Property tests (proptest) for the parts that read hostile bytes: the
//! normaliser, the body and header parsers behind inspection, and the
//! client-address parser. Failing cases are saved by proptest under
//! `tests/fuzz.proptest-regressions` and replayed first on every run;
//! keep them.

use bext_plugin_waf::inspect::{Engine, Subject, Switches};
use bext_plugin_waf::ip::{ClientIpHeader, IpTable, Verdict, client_ip, parse_net};
use bext_plugin_waf::normalize::{canonical, percent_decode, resolve_path};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Bytes that look like what attackers send: encodings, separators,
/// markup, and raw high bytes.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"%".to_vec()),
        Just(b"%25".to_vec()),
        Just(b"%u00".to_vec()),
        Just(b"%c0%af".to_vec()),
        Just(b"\xc0\xaf".to_vec()),
        Just(b"\xe0\x80\xae".to_vec()),
        Just(b"../".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"&#x3c;".to_vec()),
        Just(b"&lt".to_vec()),
        Just(b"\\u00".to_vec()),
        Just(b"<script".to_vec()),
        Just(b"'\"`;|&".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"+".to_vec()),
        Just(b"=".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[a-zA-Z0-9 ]{0,8}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn canonical_values_are_lower_case_without_nul(raw in hostile_bytes(), plus in any::<bool>()) {
        let c = canonical(&raw, plus);
        prop_assert!(!c.contains('\0'));
        prop_assert!(!c.bytes().any(|b| b.is_ascii_uppercase()));
    }

    #[test]
    fn percent_decoding_undoes_percent_encoding(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let encoded: String = raw.iter().map(|b| format!("%{b:02X}")).collect();
        let decoded = percent_decode(encoded.as_bytes()).unwrap_or_default();
        prop_assert_eq!(decoded, raw);
    }

    #[test]
    fn resolved_paths_have_no_dot_segments(path in "[a-z./\\\\]{0,40}") {
        let r = resolve_path(&path);
        prop_assert!(r.starts_with('/'));
        prop_assert!(!r.contains("//"));
        prop_assert!(!r.split('/').any(|seg| seg == ".." || seg == "."));
    }

    #[test]
    fn inspection_never_panics(
        path in hostile_bytes(),
        query in hostile_bytes(),
        header in hostile_bytes(),
        body in hostile_bytes(),
        ct in prop_oneof![
            Just("application/x-www-form-urlencoded"),
            Just("application/json"),
            Just("application/xml"),
            Just("multipart/form-data; boundary=b"),
            Just("multipart/form-data"),
            Just("text/plain; charset=utf-7"),
            Just("a/b; c"),
        ],
    ) {
        static ENGINE: std::sync::LazyLock<Engine> = std::sync::LazyLock::new(Engine::new);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        for name in ["cookie", "user-agent", "referer", "x-filename", "x-custom"] {
            if let Ok(v) = HeaderValue::from_bytes(&header) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        let path = format!("/{}", String::from_utf8_lossy(&path));
        let query = String::from_utf8_lossy(&query).into_owned();
        let subject = Subject {
            method: &Method::POST,
            path: &path,
            query: Some(&query),
            headers: &headers,
            body: &body,
        };
        let _ = ENGINE.inspect(&subject, &Switches::default());
    }

    #[test]
    fn multipart_bodies_never_panic(parts in proptest::collection::vec((hostile_bytes(), hostile_bytes()), 0..6)) {
        static ENGINE: std::sync::LazyLock<Engine> = std::sync::LazyLock::new(Engine::new);
        let mut body = Vec::new();
        for (name, content) in parts {
            body.extend_from_slice(b"--XX\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(&name);
            body.extend_from_slice(b"\"; filename=\"");
            body.extend_from_slice(&name);
            body.extend_from_slice(b"\"\r\nContent-Type: text/xml\r\n\r\n");
            body.extend_from_slice(&content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XX--\r\n");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("multipart/form-data; boundary=XX"));
        let subject = Subject { method: &Method::POST, path: "/", query: None, headers: &headers, body: &body };
        let _ = ENGINE.inspect(&subject, &Switches::default());
    }

    #[test]
    fn forwarded_headers_never_panic_and_yield_a_listed_address(xff in "[0-9a-f:.\\[\\], ]{0,60}", fwd in "[a-zA-Z0-9=;:.,\"\\[\\] ]{0,60}") {
        let mut trusted = IpTable::default();
        trusted.insert(parse_net("127.0.0.0/8").unwrap(), Verdict::Allow);
        let peer = "127.0.0.1".parse().unwrap();
        for (name, value, header) in [
            ("x-forwarded-for", &xff, ClientIpHeader::XForwardedFor),
            ("forwarded", &fwd, ClientIpHeader::Forwarded),
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
            let ip = client_ip(peer, &headers, &trusted, header);
            prop_assert!(ip == peer || value.contains(&ip.to_string()) || ip.to_string().contains(':'));
        }
    }
}

proptest! {
    // CRS runs ~500 rules per case: fewer cases.
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// The CRS tier's request parsing, transformations and operators on
    /// hostile bytes, with Debian's CRS (tests/run installs it).
    #[test]
    fn the_crs_tier_never_panics(
        path in hostile_bytes(),
        query in hostile_bytes(),
        header in hostile_bytes(),
        body in hostile_bytes(),
        ct in prop_oneof![
            Just("application/x-www-form-urlencoded"),
            Just("application/json"),
            Just("application/xml"),
            Just("multipart/form-data; boundary=b"),
            Just("multipart/form-data"),
            Just("a/b; c"),
        ],
    ) {
        use bext_plugin_waf::seclang::{Exclusions, Options, RequestData, RuleSet};
        static CRS: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(|| {
            let dir = std::path::Path::new("/usr/share/modsecurity-crs/rules");
            RuleSet::load(dir, &Options { paranoia: 4, inbound_threshold: 5 }).expect("CRS rules (tests/run installs modsecurity-crs)")
        });
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        for name in ["cookie", "user-agent", "referer", "x-custom"] {
            if let Ok(v) = HeaderValue::from_bytes(&header) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        let path = format!("/{}", String::from_utf8_lossy(&path));
        let query = String::from_utf8_lossy(&query).into_owned();
        let subject = Subject { method: &Method::POST, path: &path, query: Some(&query), headers: &headers, body: &body };
        let _ = CRS.evaluate(&RequestData::new(&subject, "192.0.2.1"), &Exclusions::default());
    }
}
