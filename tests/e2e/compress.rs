//! The compress plugin in the real server: codings chosen by
//! Accept-Encoding, what is left alone, streamed upstream bodies, and
//! cached pages compressed once (isr in front of compress).

use std::net::SocketAddr;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use http_body_util::StreamBody;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::support::*;

async fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => BrotliDecoder::new(body).read_to_end(&mut out).await,
        "gzip" => GzipDecoder::new(body).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(body).read_to_end(&mut out).await,
        other => panic!("unexpected coding {other}"),
    }
    .unwrap();
    out
}

fn page() -> String {
    (0..200)
        .map(|i| format!("<p>item {i}: a line of a page that compresses well</p>\n"))
        .collect()
}

/// A static app `www` with the page, a small page and a PNG, and the
/// compress plugin on (with `compress_config` lines); `extra` manifests too.
fn site(compress_config: &str, extra: &[(&str, &str)]) -> (Site, std::path::PathBuf) {
    let s = Site::new();
    s.write("www/index.html", page());
    s.write("www/small.html", "<p>tiny</p>");
    s.write("www/logo.png", vec![0x89u8; 4096]);
    s.write(
        "manifests/compress.yaml",
        format!("name: compress\nenabled: true\n{compress_config}"),
    );
    for (file, text) in extra {
        s.write(&format!("manifests/{file}"), *text);
    }
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
default_app = "www"

[apps.www]
source = "www"
"#,
    );
    (s, cfg)
}

async fn get_with(addr: SocketAddr, path: &str, accept: Option<&str>) -> Reply {
    let mut headers = vec![("host", "www.test")];
    if let Some(a) = accept {
        headers.push(("accept-encoding", a));
    }
    send(addr, request("GET", path, &headers, "")).await
}

#[tokio::test]
async fn the_clients_best_coding_is_used_and_decodes_to_the_page() {
    let (_s, cfg) = site("", &[]);
    let b = Bext::serve(&cfg);
    for (accept, want) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.8", "gzip"),
        ("zstd", "zstd"),
        ("br;q=0, *", "zstd"),
    ] {
        let r = get_with(b.addr, "/index.html", Some(accept)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(want), "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert!(r.header("etag").is_some_and(|e| e.starts_with("W/")), "a weak ETag");
        assert!(r.header("accept-ranges").is_none());
        assert!(r.body.len() < page().len() / 3);
        assert_eq!(decode(want, &r.body).await, page().as_bytes(), "{want}");
    }
    let plain = get_with(b.addr, "/index.html", None).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        plain.header("vary"),
        Some("Accept-Encoding"),
        "the identity answer varies too"
    );
    assert_eq!(plain.text(), page());
    let refused = get_with(b.addr, "/index.html", Some("identity, gzip;q=0")).await;
    assert_eq!(refused.header("content-encoding"), None);
}

#[tokio::test]
async fn small_binary_and_head_answers_are_left_alone() {
    let (_s, cfg) = site("config:\n  min_size: 1KiB\n", &[]);
    let b = Bext::serve(&cfg);
    let small = get_with(b.addr, "/small.html", Some("br")).await;
    assert_eq!(small.header("content-encoding"), None);
    let png = get_with(b.addr, "/logo.png", Some("br")).await;
    assert_eq!((png.header("content-encoding"), png.body.len()), (None, 4096));
    let head = send(
        b.addr,
        request(
            "HEAD",
            "/index.html",
            &[("host", "www.test"), ("accept-encoding", "br")],
            "",
        ),
    )
    .await;
    assert_eq!(head.header("content-encoding"), None);
    let ranged = send(
        b.addr,
        request(
            "GET",
            "/index.html",
            &[("host", "www.test"), ("accept-encoding", "br"), ("range", "bytes=0-9")],
            "",
        ),
    )
    .await;
    assert_eq!((ranged.status, ranged.header("content-encoding")), (206, None));
}

#[tokio::test]
async fn bad_levels_are_refused_with_the_field() {
    let (_s, cfg) = site("config:\n  levels: { br: 12 }\n", &[]);
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("levels.br"), "{text}");
}

/// An upstream streaming 40 chunks of text, with no Content-Length.
async fn streaming_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let chunks = (0..40).map(|i| {
                        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(format!(
                            "chunk {i}: some streamed text that compresses\n"
                        ))))
                    });
                    let body = StreamBody::new(futures_util::stream::iter(chunks));
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header("content-type", "text/plain; charset=utf-8")
                            .body(body)
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn streamed_upstream_bodies_are_compressed_as_they_stream() {
    let up = streaming_upstream().await;
    let s = Site::new();
    s.write("manifests/compress.yaml", "name: compress\nenabled: true\n");
    let cfg = shop_platform(&s, up);
    let b = Bext::serve(&cfg);
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "shop.test"), ("accept-encoding", "gzip")], ""),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.header("content-length").is_none());
    let text = String::from_utf8(decode("gzip", &r.body).await).unwrap();
    assert_eq!(text.lines().count(), 40);
    assert!(text.ends_with("chunk 39: some streamed text that compresses\n"));
}

#[tokio::test]
async fn cached_pages_are_served_compressed_from_one_stored_copy() {
    let (_s, cfg) = site(
        "",
        &[("isr.yaml", "name: isr\nenabled: true\nconfig:\n  default_ttl: 60s\n")],
    );
    let b = Bext::serve(&cfg);
    let miss = get_with(b.addr, "/index.html", Some("br")).await;
    assert_eq!(
        (miss.header("x-cache"), miss.header("content-encoding")),
        (Some("MISS"), Some("br"))
    );
    let hit = get_with(b.addr, "/index.html", Some("br")).await;
    assert_eq!(
        (hit.header("x-cache"), hit.header("content-encoding")),
        (Some("HIT"), Some("br"))
    );
    assert_eq!(hit.body, miss.body, "the same stored variant");
    let gz = get_with(b.addr, "/index.html", Some("gzip")).await;
    assert_eq!(
        (gz.header("x-cache"), gz.header("content-encoding")),
        (Some("HIT"), Some("gzip"))
    );
    assert_eq!(decode("gzip", &gz.body).await, page().as_bytes());
    let plain = get_with(b.addr, "/index.html", None).await;
    assert_eq!(
        (plain.header("x-cache"), plain.text()),
        (Some("HIT"), page()),
        "the cache keeps the identity body"
    );
    // A conditional request with the weak tag a compressed answer carried.
    let tag = hit.header("etag").unwrap().to_owned();
    let cond = send(
        b.addr,
        request(
            "GET",
            "/index.html",
            &[("host", "www.test"), ("accept-encoding", "br"), ("if-none-match", &tag)],
            "",
        ),
    )
    .await;
    assert_eq!(cond.status, 304);
}
