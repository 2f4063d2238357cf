//! The compress plugin through its public contract, as the kernel drives
//! it (`bext_plugin_abi::testing`): what `manifests/compress.yaml` and
//! `docs/compress.md` promise.

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bext_plugin_abi::testing::{Exchange, Harness, TestRequest, request};
use bext_plugin_abi::{Body, BoxError, Ctx, PluginError, Request, Response};
use bext_plugin_compress::CompressPlugin;
use bytes::Bytes;
use http::StatusCode;
use tokio::io::AsyncReadExt;

/// A page well above the default `min_size` (512 bytes).
fn page() -> String {
    "<p>the same words, again and again, compress well</p>\n".repeat(40)
}

async fn plugin(config: serde_json::Value) -> Harness<CompressPlugin> {
    Harness::builder(config).start().await.unwrap()
}

fn get(accept: &str) -> TestRequest {
    request("GET", "/")
        .header("host", "example.com")
        .header("accept-encoding", accept)
}

/// An app answering `status` with `body` as `content_type`, plus `extra`
/// headers.
fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
    extra: &'static [(&'static str, &'static str)],
) -> impl FnOnce(Request, &Ctx) -> Response {
    let body = body.into();
    move |_, _| {
        let mut res = Response::new(body);
        *res.status_mut() = status;
        res.headers_mut().insert("content-type", content_type.parse().unwrap());
        for (k, v) in extra {
            res.headers_mut().append(*k, v.parse().unwrap());
        }
        res
    }
}

/// A 200 answer.
fn serve(
    content_type: &'static str,
    body: impl Into<Body>,
    extra: &'static [(&'static str, &'static str)],
) -> impl FnOnce(Request, &Ctx) -> Response {
    answer(StatusCode::OK, content_type, body, extra)
}

fn html() -> impl FnOnce(Request, &Ctx) -> Response {
    serve("text/html; charset=utf-8", page(), &[])
}

/// The body decoded from the response's `Content-Encoding`.
async fn decoded(ex: &Exchange) -> String {
    let mut out = Vec::new();
    let body = ex.body();
    match ex.header("content-encoding") {
        Some("br") => BrotliDecoder::new(body).read_to_end(&mut out).await,
        Some("zstd") => ZstdDecoder::new(body).read_to_end(&mut out).await,
        Some("gzip") => GzipDecoder::new(body).read_to_end(&mut out).await,
        other => panic!("not compressed: {other:?}"),
    }
    .unwrap();
    String::from_utf8(out).unwrap()
}

/// Sent as the app gave it: no coding, the identity body.
#[track_caller]
fn untouched(ex: &Exchange, body: &str) {
    assert_eq!(ex.header("content-encoding"), None);
    assert_eq!(ex.text(), body);
}

#[tokio::test]
async fn the_highest_quality_wins_then_the_configured_order() {
    let p = plugin(serde_json::Value::Null).await;
    for (accept, coding) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=1.0, br;q=0.5", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("zstd", "zstd"),
        ("x-gzip", "gzip"),
        ("*", "br"),
    ] {
        let ex = p.send(get(accept), html()).await;
        assert!(ex.reached_app && ex.errors.is_empty());
        assert_eq!(ex.header("content-encoding"), Some(coding), "{accept}");
        assert_eq!(decoded(&ex).await, page(), "{accept}");
        assert!(ex.body().len() < page().len() / 4, "{accept}: compressed");
    }
    let zstd_first = plugin(serde_json::json!({"encodings": ["zstd", "gzip"]})).await;
    let ex = zstd_first.send(get("gzip, br, zstd"), html()).await;
    assert_eq!(
        ex.header("content-encoding"),
        Some("zstd"),
        "ties go to `encodings`; br is not offered"
    );
}

#[tokio::test]
async fn a_compressed_answer_describes_its_bytes() {
    let p = plugin(serde_json::Value::Null).await;
    let app = serve(
        "text/html",
        page(),
        &[
            ("etag", "\"v1\""),
            ("accept-ranges", "bytes"),
            ("content-length", "2200"),
            ("vary", "Origin"),
        ],
    );
    let ex = p.send(get("gzip"), app).await;
    assert_eq!(ex.header("content-encoding"), Some("gzip"));
    assert_eq!(ex.header("etag"), Some("W/\"v1\""), "the same page in other bytes");
    assert_eq!(ex.header("content-length"), None);
    assert_eq!(ex.header("accept-ranges"), None);
    assert_eq!(ex.headers("vary"), ["Origin", "Accept-Encoding"]);
    assert_eq!(decoded(&ex).await, page());
}

#[tokio::test]
async fn without_an_acceptable_coding_the_answer_still_varies() {
    let p = plugin(serde_json::Value::Null).await;
    for accept in ["identity", "deflate", "br;q=0, zstd;q=0, gzip;q=0"] {
        let ex = p.send(get(accept), html()).await;
        untouched(&ex, &page());
        assert_eq!(ex.headers("vary"), ["Accept-Encoding"], "{accept}");
    }
    let ex = p.send(request("GET", "/"), html()).await;
    untouched(&ex, &page());
    assert_eq!(ex.header("vary"), Some("Accept-Encoding"), "no Accept-Encoding at all");
    let head = request("HEAD", "/").header("accept-encoding", "gzip");
    let ex = p.send(head, html()).await;
    untouched(&ex, &page());
    assert_eq!(ex.header("vary"), Some("Accept-Encoding"), "HEAD is left alone");
}

#[tokio::test]
async fn small_bodies_other_types_and_encoded_answers_are_left_alone() {
    let p = plugin(serde_json::Value::Null).await;
    let small = "<p>short</p>";
    let ex = p.send(get("gzip"), serve("text/html", small, &[])).await;
    untouched(&ex, small);
    let streamed = Body::stream(http_body_util::Full::new(Bytes::from_static(small.as_bytes())));
    let ex = p
        .send(get("gzip"), serve("text/html", streamed, &[("content-length", "12")]))
        .await;
    untouched(&ex, small);
    let ex = p.send(get("gzip"), serve("image/png", page(), &[])).await;
    untouched(&ex, &page());
    assert_eq!(ex.header("vary"), None, "not a compressible type");
    let ex = p
        .send(get("gzip"), serve("text/html", page(), &[("content-encoding", "br")]))
        .await;
    assert_eq!(ex.header("content-encoding"), Some("br"), "already encoded");
    assert_eq!(ex.text(), page());
    let no_transform = serve("text/html", page(), &[("cache-control", "public, No-Transform")]);
    untouched(&p.send(get("gzip"), no_transform).await, &page());
    let not_found = answer(StatusCode::NOT_FOUND, "text/html", page(), &[]);
    untouched(&p.send(get("gzip"), not_found).await, &page());
    let no_type = |_: Request, _: &Ctx| Response::new(Body::full(page()));
    untouched(&p.send(get("gzip"), no_type).await, &page());

    let bigger = plugin(serde_json::json!({"min_size": "4KiB"})).await;
    untouched(&bigger.send(get("gzip"), html()).await, &page());
    let declared = serve("text/html", page(), &[("content-length", "4096")]);
    let ex = bigger.send(get("gzip"), declared).await;
    assert_eq!(
        ex.header("content-encoding"),
        Some("gzip"),
        "the declared length decides"
    );
}

#[tokio::test]
async fn compressible_types_match_exactly_by_prefix_or_by_suffix() {
    let p = plugin(serde_json::Value::Null).await;
    for t in [
        "Text/Plain; charset=utf-8",
        "application/json",
        "application/ld+json",
        "image/svg+xml",
    ] {
        let ex = p.send(get("gzip"), serve(t, page(), &[])).await;
        assert_eq!(ex.header("content-encoding"), Some("gzip"), "{t}");
    }
    let only_json = plugin(serde_json::json!({"types": ["application/json"]})).await;
    untouched(&only_json.send(get("gzip"), html()).await, &page());
}

#[tokio::test]
async fn streamed_bodies_are_compressed_as_they_stream() {
    let p = plugin(serde_json::json!({"max_stored_body": "1KiB"})).await;
    let chunks: Vec<Result<http_body::Frame<Bytes>, BoxError>> = page()
        .into_bytes()
        .chunks(300)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let stream = Body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(chunks)));
    let ex = p
        .send(get("br"), serve("text/html", stream, &[("content-length", "2200")]))
        .await;
    assert_eq!(ex.header("content-encoding"), Some("br"));
    assert_eq!(decoded(&ex).await, page());
    let done = ex.completion.as_ref();
    assert!(done.is_none(), "compress has no on_complete");
    let ex = p.send(get("zstd"), html()).await;
    assert_eq!(decoded(&ex).await, page(), "in memory, above max_stored_body");
}

#[tokio::test]
async fn a_stored_body_is_compressed_once_per_coding() {
    let p = plugin(serde_json::Value::Null).await;
    let shared = Bytes::from(page());
    let first = p.send(get("gzip"), serve("text/html", shared.clone(), &[])).await;
    let again = p.send(get("gzip"), serve("text/html", shared.clone(), &[])).await;
    assert_eq!(first.body(), again.body());
    let copy = p.send(get("gzip"), html()).await;
    assert_eq!(first.body(), copy.body(), "equal bytes in another buffer");
    let br = p.send(get("br"), serve("text/html", shared, &[])).await;
    assert_eq!(
        br.header("content-encoding"),
        Some("br"),
        "another coding, another variant"
    );
    assert_eq!(decoded(&br).await, page());
}

#[test]
fn config_errors_name_the_field() {
    for (config, field) in [
        (serde_json::json!({"encodings": []}), "encodings"),
        (serde_json::json!({"levels": {"gzip": 10}}), "levels.gzip"),
        (serde_json::json!({"levels": {"br": 12}}), "levels.br"),
        (serde_json::json!({"levels": {"zstd": 0}}), "levels.zstd"),
        (serde_json::json!({"encodings": ["deflate"]}), "encodings[0]"),
        (serde_json::json!({"min_size": "big"}), "min_size"),
        (serde_json::json!({"level": 1}), "level"),
    ] {
        match Harness::<CompressPlugin>::builder(config.clone()).check() {
            Err(PluginError::Config { path, .. }) => assert_eq!(path, field, "{config}"),
            Err(other) => panic!("{config}: {other}"),
            Ok(_) => panic!("{config} accepted"),
        }
    }
    Harness::<CompressPlugin>::builder(serde_json::json!({"encodings": ["gzip"], "levels": {"gzip": 9}}))
        .check()
        .unwrap();
}
