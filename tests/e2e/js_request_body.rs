//! Request bodies streamed into JavaScript as they arrive: the handler
//! starts once the head is in, `request.body` gives the client's chunks as
//! they come (a raw TCP client times them), `text()` still reads it all,
//! and the body limit, the timeout and a client that stalls still hold.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const APP: &str = r#"
export default {
  async fetch(request) {
    const u = new URL(request.url);
    switch (u.pathname) {
      // Answers before reading anything.
      case '/started': return new Response('started');
      // Each chunk back as it comes, upper-cased.
      case '/echo': {
        const up = new TransformStream({
          transform(chunk, c) { c.enqueue(new TextEncoder().encode(new TextDecoder().decode(chunk).toUpperCase())); },
        });
        return new Response(request.body.pipeThrough(up));
      }
      // The whole body back (little JavaScript time: inline's cpu_limit
      // is short).
      case '/text': return new Response(await request.text());
      // A body that fails is an error the handler can catch.
      case '/caught':
        try {
          return new Response(`read ${(await request.arrayBuffer()).byteLength}`);
        } catch (e) {
          return new Response(`caught ${e.name}: ${e.message}`, { status: 500 });
        }
      case '/proxy':
        return fetch(u.searchParams.get('to'), { method: 'POST', body: request.body, duplex: 'half' });
      default: return new Response('app');
    }
  },
};
"#;

/// One streaming app per mode, `slow` with a 1 s timeout and one isolate,
/// `buffered` with one isolate and bodies read whole first (the default),
/// and a 64 KiB body limit.
fn platform(s: &Site, upstream: Option<u16>) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    let allow = upstream.map_or(String::new(), |p| {
        format!(", fetch = {{ allow = [\"localhost:{p}\"] }}")
    });
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[platform.limits]\nmax_body_bytes = \"64KiB\"\n\n\
         [apps.app]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"app.test\"]\nisolate = {{ workers = 1, stream_request_body = true{allow} }}\n\n\
         [apps.shared]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"shared.test\"]\nisolate = {{ mode = \"shared\", stream_request_body = true }}\n\n\
         [apps.inline]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"inline.test\"]\nisolate = {{ mode = \"inline\", cpu_limit = \"50ms\", stream_request_body = true }}\n\n\
         [apps.slow]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"slow.test\"]\nisolate = {{ workers = 1, timeout = \"1s\", stream_request_body = true }}\n\n\
         [apps.slow-inline]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"slow-inline.test\"]\nisolate = {{ mode = \"inline\", timeout = \"1s\", stream_request_body = true }}\n\n\
         [apps.buffered]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"buffered.test\"]\nisolate = {{ workers = 1 }}\n"
    ))
}

/// Reads from `s` until what came holds `want`, for 10 s at most.
async fn read_until(s: &mut TcpStream, got: &mut String, want: &str) {
    read_while(s, got, |got| !got.contains(want), want).await;
}

/// Reads from `s` while `more(what came)`, for 10 s at most.
async fn read_while(s: &mut TcpStream, got: &mut String, more: impl Fn(&str) -> bool, what: &str) {
    let limit = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 8192];
    while more(got) {
        let n = tokio::time::timeout_at(limit.into(), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {what:?} in 10 s, got {got:?}"))
            .unwrap();
        assert!(n > 0, "closed before {what:?}: {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn chunked_head(path: &str, host: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n")
}

/// The handler's stream sends back the first chunk, changed, before the
/// client has sent the second; the client reads it, then sends the rest.
#[tokio::test]
async fn a_handler_echoes_the_first_chunk_before_the_rest_is_sent() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    for host in ["app.test", "shared.test"] {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        c.write_all(chunked_head("/echo", host).as_bytes()).await.unwrap();
        c.write_all(&chunk(b"hello")).await.unwrap();
        let mut got = String::new();
        read_until(&mut c, &mut got, "HELLO").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{host}: {got}");
        assert!(!got.contains("WORLD"), "{host}: {got}");
        c.write_all(&chunk(b" world")).await.unwrap();
        read_until(&mut c, &mut got, " WORLD").await;
        c.write_all(b"0\r\n\r\n").await.unwrap();
        read_until(&mut c, &mut got, "0\r\n\r\n").await;
    }
    // Inline isolates collect a streamed answer, but the handler still
    // starts before the body is in: so does every mode's.
    for host in ["app.test", "shared.test", "inline.test"] {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        let head = format!("POST /started HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10\r\n\r\n12345");
        c.write_all(head.as_bytes()).await.unwrap();
        let mut got = String::new();
        read_until(&mut c, &mut got, "started").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{host}: {got}");
    }
}

/// `await request.text()` gets every byte of a chunked upload sent in
/// pieces with pauses between them; inline, the pauses (longer than
/// `cpu_limit`) are not JavaScript's time.
#[tokio::test]
async fn text_reads_a_chunked_upload_whole() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    let body: Vec<u8> = (0..60_000u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let text = String::from_utf8(body.clone()).unwrap();
    for host in ["app.test", "shared.test", "inline.test"] {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        c.write_all(chunked_head("/text", host).as_bytes()).await.unwrap();
        for (i, part) in body.chunks(7_000).enumerate() {
            c.write_all(&chunk(part)).await.unwrap();
            if i % 3 == 0 {
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        }
        c.write_all(b"0\r\n\r\n").await.unwrap();
        let mut got = String::new();
        read_until(&mut c, &mut got, "\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{host}: {got}\n{}", b.log());
        let head = got.find("\r\n\r\n").unwrap() + 4;
        read_while(&mut c, &mut got, |got| got.len() < head + text.len(), "the whole body").await;
        assert!(got[head..] == text, "{host}: {} bytes back", got.len() - head);
    }
    // Sent with a length, in one go, as most small POSTs are.
    let r = send(b.addr, request("POST", "/text", &[("host", "app.test")], body.clone())).await;
    assert!(r.body[..] == body[..], "{}", r.status);
}

/// A chunked upload over `max_body_bytes` is refused with 413, whether the
/// handler lets the error go or catches it; within the limit it is read.
#[tokio::test]
async fn an_upload_over_the_body_limit_is_refused() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    for (host, path) in [
        ("app.test", "/text"),
        ("app.test", "/caught"),
        ("inline.test", "/caught"),
        ("shared.test", "/text"),
    ] {
        let mut req =
            format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .into_bytes();
        for _ in 0..7 {
            req.extend(chunk(&[b'x'; 16 << 10]));
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let out = raw_async(b.addr, &req, Duration::from_secs(10)).await;
        assert_eq!(status_of(&out), 413, "{host}{path}: {out}");
    }
    let r = send(
        b.addr,
        request("POST", "/caught", &[("host", "app.test")], vec![b'x'; 60 << 10]),
    )
    .await;
    assert_eq!((r.status, r.text()), (200, format!("read {}", 60 << 10)));
}

/// A client that stops sending mid-body ends at the app's `timeout` (504)
/// and frees the isolate: the app's one isolate serves the next request.
#[tokio::test]
async fn a_stalled_body_ends_at_the_timeout() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    for host in ["slow.test", "slow-inline.test"] {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        let head = format!("POST /text HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n0123456789");
        let started = Instant::now();
        c.write_all(head.as_bytes()).await.unwrap();
        let mut got = String::new();
        read_until(&mut c, &mut got, "\r\n\r\n").await;
        let took = started.elapsed();
        assert!(got.starts_with("HTTP/1.1 504"), "{host}: {got}");
        assert!(took >= Duration::from_millis(900), "{host}: {took:?}");
        let r = get(b.addr, host, "/").await;
        assert_eq!((r.status, r.text()), (200, "app".to_owned()), "{host}");
    }
}

/// A client that disconnects mid-body errors the stream; the isolate goes
/// on serving.
#[tokio::test]
async fn a_client_that_leaves_mid_body_frees_the_isolate() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    for _ in 0..3 {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        c.write_all(chunked_head("/text", "app.test").as_bytes()).await.unwrap();
        c.write_all(&chunk(b"part")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(c);
    }
    let r = get(b.addr, "app.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "app".to_owned()), "{}", b.log());
}

/// `body: request.body` with `duplex: 'half'` streams a chunked upload
/// through `fetch()` to a local upstream as it arrives.
#[tokio::test]
async fn a_streamed_upload_goes_through_fetch() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, Some(echo.addr.port())));
    let to = format!("http://localhost:{}/in", echo.addr.port());
    let path = format!(
        "/proxy?to={}",
        url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
    );
    let mut c = TcpStream::connect(b.addr).await.unwrap();
    c.write_all(chunked_head(&path, "app.test").as_bytes()).await.unwrap();
    for _ in 0..5 {
        c.write_all(&chunk(&[b'y'; 10_000])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.write_all(b"0\r\n\r\n").await.unwrap();
    let mut got = String::new();
    read_until(&mut c, &mut got, "\"body_len\":50000").await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"method\":\"POST\""), "{got}");
}

/// Without `stream_request_body` a body is read whole before an isolate
/// takes the call: uploads trickling a byte a second hold no isolate, so
/// the app's one isolate still answers others at once, and a handler
/// reading the body gets all of it.
#[tokio::test]
async fn slow_uploads_hold_no_isolate_of_an_app_that_reads_bodies_whole() {
    let s = Site::new();
    let b = Bext::serve(&platform(&s, None));
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        c.write_all(chunked_head("/text", "buffered.test").as_bytes())
            .await
            .unwrap();
        c.write_all(&chunk(b"a")).await.unwrap();
        slow.push(c);
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for c in &mut slow {
            c.write_all(&chunk(b"a")).await.unwrap();
        }
        let r = tokio::time::timeout(Duration::from_secs(5), get(b.addr, "buffered.test", "/"))
            .await
            .expect("the app answers while uploads trickle");
        assert_eq!((r.status, r.text()), (200, "app".to_owned()));
    }
    // Each handler runs once its body is in, with all of it.
    for mut c in slow {
        c.write_all(b"0\r\n\r\n").await.unwrap();
        let mut got = String::new();
        read_until(&mut c, &mut got, "aaaa").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
}
