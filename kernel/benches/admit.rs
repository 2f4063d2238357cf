//! What the kernel's request checks (`server::admit`: method, target size,
//! one host, the canonical path, `Connection`) cost before any plugin:
//! `cargo bench -p bext --bench admit`.
//!
//! The first argument is the request of `bench/security.sh` (a clean path with a
//! query, `Connection: keep-alive`): one scan and no allocation.
//! the second needs its path rewritten; the third has an absolute-form
//! target whose authority replaces the Host header.

use bext::config::platform::{EncodedSlashes, Limits};
use bext::server::admit::{Rules, admit};
use http::request::Parts;

#[global_allocator]
static ALLOC: divan::AllocProfiler<mimalloc::MiMalloc> = divan::AllocProfiler::new(mimalloc::MiMalloc);

fn main() {
    divan::main();
}

fn head(target: &str) -> Parts {
    http::Request::get(target)
        .header("host", "shop.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
        )
        .header("accept", "text/html,application/xhtml+xml")
        .header("connection", "keep-alive")
        .header("cookie", "session=abc; theme=dark")
        .body(())
        .expect("request")
        .into_parts()
        .0
}

#[divan::bench(sample_count = 1000, sample_size = 32, args = [
    "/index.html?page=2&sort=price&utm_source=newsletter",
    "/shop/./items//42/../43?x=1",
    "http://shop.example.com/index.html",
])]
fn admit_head(bencher: divan::Bencher<'_, '_>, target: &str) {
    let limits = Limits::default();
    let rules = Rules {
        limits: &limits,
        slashes: EncodedSlashes::Reject,
        underscores_in_headers: false,
        owned: &[],
    };
    bencher
        .with_inputs(|| head(target))
        .bench_local_refs(|parts| admit(parts, rules));
}
