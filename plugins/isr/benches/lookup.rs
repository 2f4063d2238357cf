//! The cost of a cache hit's lookup on one core: `cargo bench -p bext-plugin-isr`
//! (the key of a request, its `Vary` part, and the entry).

use std::time::{Duration, Instant};

use bext_plugin_isr::key::{IgnoredParams, KeyParts, normalise_query, primary_key};
use bext_plugin_isr::policy::Freshness;
use bext_plugin_isr::store::{Caches, Entry, Limits};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

fn main() {
    divan::main();
}

#[divan::bench]
fn hit_lookup(bencher: divan::Bencher<'_, '_>) {
    let cache = Caches::default().cache_for(
        "bench",
        Limits {
            entries: 10_000,
            bytes: 64 << 20,
        },
    );
    let ignored = IgnoredParams::new(&["utm_*".into()]);
    let parts = |path: &'static str, query: &str| -> String {
        primary_key(&KeyParts {
            app: "bench",
            tenant: None,
            locale: "",
            bot: false,
            caller: None,
            path,
            query: Some(query),
            scheme: "http",
            host: "shop.example.com",
        })
    };
    let raw_query = "page=2&sort=price&utm_source=newsletter";
    let request = HeaderMap::new();
    let primary = parts("/products/42", &normalise_query(raw_query, &ignored).unwrap());
    cache.put(
        &primary,
        &request,
        Vec::new(),
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; 1024]),
            etag: HeaderValue::from_static("\"abc\""),
            stored: Instant::now(),
            freshness: Freshness {
                ttl: Duration::from_secs(3600),
                swr: Duration::ZERO,
                sie: Duration::ZERO,
            },
            tags: Vec::new(),
            path: "/products/42".into(),
        },
    );
    bencher.bench_local(|| {
        let query = normalise_query(divan::black_box(raw_query), &ignored).unwrap();
        let primary = parts(divan::black_box("/products/42"), &query);
        let full = cache.full_key(&primary, &request);
        assert!(cache.get(&full).is_some());
    });
}
