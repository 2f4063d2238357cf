//! Host matching cost at 10, 1,000 and 10,000 configured hosts: it should
//! stay flat, because exact hosts are hashed and wildcards are looked up by
//! suffix.
//!
//! `cargo bench -p bext-plugin-vhosts`

use bext_plugin_vhosts::matcher::{Matcher, MatcherBuilder};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[10, 1_000, 10_000];

fn matcher(n: usize) -> Matcher {
    let mut b = MatcherBuilder::default();
    for i in 0..n {
        b.add(&format!("site{i}.example.com"), &format!("app{i}"), None, false)
            .unwrap();
        b.add(&format!("*.tenant{i}.example.org"), &format!("saas{i}"), None, false)
            .unwrap();
    }
    b.build().unwrap()
}

fn hosts(n: usize, f: impl Fn(usize) -> String) -> Vec<String> {
    (0..1024).map(|i| f((i * 7919) % n)).collect()
}

#[divan::bench(args = SIZES)]
fn exact(bencher: divan::Bencher<'_, '_>, n: usize) {
    let m = matcher(n);
    let hs = hosts(n, |i| format!("site{i}.example.com"));
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) & 1023;
        divan::black_box(m.find(divan::black_box(&hs[i]), "/"))
    });
}

#[divan::bench(args = SIZES)]
fn wildcard_tenant(bencher: divan::Bencher<'_, '_>, n: usize) {
    let m = matcher(n);
    let hs = hosts(n, |i| format!("acme.tenant{i}.example.org"));
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) & 1023;
        divan::black_box(m.find(divan::black_box(&hs[i]), "/"))
    });
}

#[divan::bench(args = SIZES)]
fn miss(bencher: divan::Bencher<'_, '_>, n: usize) {
    let m = matcher(n);
    bencher.bench_local(|| divan::black_box(m.find(divan::black_box("nobody.unknown.test"), "/")));
}

/// What the matcher avoids: comparing the host with every pattern.
#[divan::bench(args = SIZES)]
fn linear_scan_baseline(bencher: divan::Bencher<'_, '_>, n: usize) {
    let table: Vec<(String, String)> = (0..n)
        .map(|i| (format!("site{i}.example.com"), format!("app{i}")))
        .collect();
    let hs = hosts(n, |i| format!("site{i}.example.com"));
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) & 1023;
        let host = divan::black_box(&hs[i]);
        divan::black_box(table.iter().find(|(h, _)| h == host).map(|(_, a)| a))
    });
}
