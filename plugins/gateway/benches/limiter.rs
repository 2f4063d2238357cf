//! Rate limit decisions on one core: `cargo bench -p bext-plugin-gateway`.
//! The goal is at least 10 M decisions a second (100 ns each).

use bext_plugin_gateway::gcra::{Client, MemoryStore, Quota, RateKey, RateStore, decide};

fn main() {
    divan::main();
}

/// The arithmetic alone.
#[divan::bench]
fn gcra_decision(bencher: divan::Bencher<'_, '_>) {
    let q = Quota::per_second(1_000_000, 100);
    let mut tat = 0;
    let mut now = 0u64;
    bencher.bench_local(|| {
        now += 1_000;
        let (d, t) = decide(tat, divan::black_box(now), &q);
        if let Some(t) = t {
            tat = t;
        }
        d.allowed
    });
}

/// A decision through the in-memory store: hash the key, lock a shard,
/// decide, store. 10,000 clients.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn store_decision(bencher: divan::Bencher<'_, '_>) {
    let store = MemoryStore::new(1_000_000);
    let q = Quota::per_minute(600, 50);
    let keys: Vec<RateKey<'static>> = (0..10_000u32)
        .map(|i| RateKey {
            limit: "per-ip",
            app: "shop",
            client: Client::Ip(std::net::IpAddr::from((0x0a00_0000 + i).to_be_bytes())),
        })
        .collect();
    let mut i = 0usize;
    let mut now = 1u64;
    bencher.bench_local(|| {
        i = (i + 1) % keys.len();
        now += 100;
        store.check(&keys[i], &q, now).allowed
    });
}
