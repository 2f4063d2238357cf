//! Inspection speed on one core: `cargo bench -p bext-plugin-waf`.
//! The goal is at least 2 M benign requests per second (500 ns each).

use bext_plugin_waf::inspect::{Engine, Subject, Switches};
use http::{HeaderMap, HeaderValue, Method};

fn main() {
    divan::main();
}

/// What a browser sends for a product page.
fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"),
        ("referer", "https://shop.example.com/category/shoes?color=red"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

/// The same product page again: path, query and header values were all
/// seen (and found clean) before, as on a busy site's popular pages.
#[divan::bench]
fn benign_get_repeat(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let headers = browser_headers();
    let on = Switches::default();
    bencher.bench_local(|| {
        let req = Subject {
            method: &Method::GET,
            path: "/products/42",
            query: Some("page=2&sort=price"),
            headers: &headers,
            body: b"",
        };
        assert!(engine.inspect(divan::black_box(&req), &on).is_none());
    });
}

/// A page never requested before by a browser seen before: the path and
/// query are inspected, the header values come from the clean cache.
#[divan::bench]
fn benign_get_new_page(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let headers = browser_headers();
    let on = Switches::default();
    let mut n = 0u64;
    bencher
        .with_inputs(|| {
            n += 1;
            (format!("/products/{n}"), format!("page={}&sort=price", n % 7))
        })
        .bench_local_refs(|(path, query)| {
            let req = Subject {
                method: &Method::GET,
                path,
                query: Some(query),
                headers: &headers,
                body: b"",
            };
            assert!(engine.inspect(divan::black_box(&req), &on).is_none());
        });
}

/// Nothing seen before: a new page, user agent and cookie.
#[divan::bench]
fn benign_get_new_visitor(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let on = Switches::default();
    let mut n = 0u64;
    bencher
        .with_inputs(|| {
            n += 1;
            let mut headers = browser_headers();
            let agent = format!("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/{n}.0");
            headers.insert("user-agent", HeaderValue::from_str(&agent).unwrap());
            let cookie = format!("session={n:032x}; theme=dark");
            headers.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
            (headers, format!("/products/{n}"), format!("page={}&sort=price", n % 7))
        })
        .bench_local_refs(|(headers, path, query)| {
            let req = Subject {
                method: &Method::GET,
                path,
                query: Some(query),
                headers,
                body: b"",
            };
            assert!(engine.inspect(divan::black_box(&req), &on).is_none());
        });
}

#[divan::bench]
fn benign_json_post(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let mut headers = browser_headers();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("content-length", HeaderValue::from_static("96"));
    let body =
        br#"{"email":"ana@example.com","name":"Ana O'Neil","items":[{"sku":"AB-12","qty":2}],"note":"ring twice"}"#;
    let on = Switches::default();
    bencher.bench_local(|| {
        let req = Subject {
            method: &Method::POST,
            path: "/api/orders",
            query: None,
            headers: &headers,
            body,
        };
        assert!(engine.inspect(divan::black_box(&req), &on).is_none());
    });
}

#[divan::bench]
fn sqli_attack(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let headers = browser_headers();
    let on = Switches::default();
    bencher.bench_local(|| {
        let req = Subject {
            method: &Method::GET,
            path: "/products",
            query: Some("id=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
            headers: &headers,
            body: b"",
        };
        assert!(engine.inspect(divan::black_box(&req), &on).is_some());
    });
}

/// The CRS tier's gate on a new page (`crs.scope: unclear`): the native
/// pass, then the bytes check that clears it before CRS.
#[divan::bench]
fn crs_gate_new_page(bencher: divan::Bencher<'_, '_>) {
    let engine = Engine::new();
    let headers = browser_headers();
    let on = Switches::default();
    let mut n = 0u64;
    bencher
        .with_inputs(|| {
            n += 1;
            (format!("/products/{n}"), format!("page={}&sort=price", n % 7))
        })
        .bench_local_refs(|(path, query)| {
            let req = Subject {
                method: &Method::GET,
                path,
                query: Some(query),
                headers: &headers,
                body: b"",
            };
            assert!(engine.inspect(divan::black_box(&req), &on).is_none());
            assert!(!bext_plugin_waf::crs::unclear(&req));
        });
}

/// CRS PL1 itself on the browser's page (`crs.scope: all`), when
/// Debian's `modsecurity-crs` is installed.
#[divan::bench]
fn crs_pl1_new_page(bencher: divan::Bencher<'_, '_>) {
    use bext_plugin_waf::seclang::{Exclusions, Options, RequestData, RuleSet};
    let dir = std::path::Path::new("/usr/share/modsecurity-crs/rules");
    let Ok(set) = RuleSet::load(
        dir,
        &Options {
            paranoia: 1,
            inbound_threshold: 5,
        },
    ) else {
        return;
    };
    let headers = browser_headers();
    let none = Exclusions::default();
    bencher.bench_local(|| {
        let req = Subject {
            method: &Method::GET,
            path: "/products/42",
            query: Some("page=2&sort=price"),
            headers: &headers,
            body: b"",
        };
        let v = set.evaluate(&RequestData::new(divan::black_box(&req), "192.0.2.1"), &none);
        assert!(v.denied_by.is_none());
    });
}

/// CRS PL1 on the largest body inspected by default: a 64 KiB JSON
/// document of prose (what one request can make the tier spend).
#[divan::bench]
fn crs_pl1_json_post_64k(bencher: divan::Bencher<'_, '_>) {
    use bext_plugin_waf::seclang::{Exclusions, Options, RequestData, RuleSet};
    let dir = std::path::Path::new("/usr/share/modsecurity-crs/rules");
    let Ok(set) = RuleSet::load(
        dir,
        &Options {
            paranoia: 1,
            inbound_threshold: 5,
        },
    ) else {
        return;
    };
    let mut headers = browser_headers();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let items: Vec<String> = (0..400)
        .map(|i| {
            format!("{{\"id\":{i},\"text\":\"The quick brown fox jumps over the lazy dog near the river bank {i}\"}}")
        })
        .collect();
    let body = format!("{{\"items\":[{}]}}", items.join(","));
    let body = &body.as_bytes()[..body.len().min(64 * 1024)];
    let none = Exclusions::default();
    bencher.bench_local(|| {
        let req = Subject {
            method: &Method::POST,
            path: "/api/items",
            query: None,
            headers: &headers,
            body,
        };
        set.evaluate(&RequestData::new(divan::black_box(&req), "192.0.2.1"), &none)
    });
}
