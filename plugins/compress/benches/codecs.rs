//! Compression throughput per codec at the default levels, on one core:
//! `cargo bench -p bext-plugin-compress`. The body is 64 KiB of HTML-like
//! text (repetitive markup with varied words, like a rendered page).

use bext_plugin_compress::compress;
use bext_plugin_compress::config::Levels;
use bext_plugin_compress::negotiate::Encoding;

fn main() {
    divan::main();
}

fn page() -> Vec<u8> {
    let words = [
        "product", "price", "basket", "shipping", "review", "colour", "size", "stock", "delivery", "return",
    ];
    let mut html = String::from("<!doctype html><html><head><title>Shop</title></head><body><ul>");
    let mut i = 0usize;
    while html.len() < 64 << 10 {
        let w = words[i * 7 % words.len()];
        html.push_str(&format!(
            "<li class=\"item item-{i}\"><a href=\"/p/{i}\">{w} {i}</a><span class=\"price\">{}.{:02} EUR</span></li>\n",
            i * 37 % 500,
            i % 100
        ));
        i += 1;
    }
    html.into_bytes()
}

#[divan::bench(args = [Encoding::Gzip, Encoding::Br, Encoding::Zstd])]
fn compress_64k(bencher: divan::Bencher<'_, '_>, e: Encoding) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let body = page();
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| {
            rt.block_on(compress(e, Levels::default(), divan::black_box(&body)))
                .unwrap()
        });
}
