//! Cost of one call through an isolate pool (threads: queue, thread hop,
//! Request and Response objects, the handler; inline: the same without
//! queue and hop): `cargo bench -p bext-js`.

use std::collections::BTreeMap;

use bext_js::{Call, IsolatePool, Kind, Limits, Mode, Spec};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

fn pool(dir: &std::path::Path, source: &str, mode: Mode) -> IsolatePool {
    let entry = dir.join("index.js");
    std::fs::write(&entry, source).unwrap();
    let spec = Spec {
        name: "bench".into(),
        entry,
        kind: Kind::App,
        env: BTreeMap::new(),
        config: serde_json::Value::Null,
        limits: Limits {
            mode,
            workers: 1,
            ..Limits::default()
        },
        bindings: Default::default(),
    };
    IsolatePool::start(spec).unwrap()
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [("host", "bench.test"), ("user-agent", "wrk"), ("accept", "*/*")] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

#[divan::bench(args = [1, 64])]
fn hello_world(bencher: divan::Bencher<'_, '_>, in_flight: usize) {
    hello_world_in(bencher, in_flight, Mode::Threads);
}

#[divan::bench(args = [1, 64])]
fn hello_world_inline(bencher: divan::Bencher<'_, '_>, in_flight: usize) {
    hello_world_in(bencher, in_flight, Mode::Inline);
}

fn hello_world_in(bencher: divan::Bencher<'_, '_>, in_flight: usize, mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(
        dir.path(),
        "export default { fetch() { return new Response('Hello, World!'); } }",
        mode,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bencher
        .counter(divan::counter::ItemsCount::new(in_flight))
        .bench_local(|| {
            rt.block_on(async {
                let calls = (0..in_flight).map(|_| {
                    pool.call(Call::App {
                        method: Method::GET,
                        url: "http://bench.test/".into(),
                        headers: headers(),
                        body: Bytes::new().into(),
                    })
                });
                for r in futures_util::future::join_all(calls).await {
                    r.unwrap();
                }
            })
        });
}

fn main() {
    divan::main();
}
