//! Hostile clients: bad Host headers, oversized heads and bodies, slow
//! senders, idle connections.

use std::time::{Duration, Instant};

use crate::support::*;

const LIMITS: &str = r#"
[platform.limits]
header_read_timeout = "500ms"
body_read_timeout = "500ms"
max_header_bytes = "8KiB"
max_body_bytes = "64KiB"
idle_timeout = "10s"
"#;

async fn server(limits: &str) -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let site = Site::new();
    site.write("www/index.html", "ok");
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n{limits}\n[apps.www]\nsource = \"www\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    (site, b, echo)
}

#[tokio::test]
async fn bad_host_headers_get_400() {
    let (_s, b, _e) = server(LIMITS).await;
    let wait = Duration::from_secs(5);
    for (name, head) in [
        ("missing", "GET / HTTP/1.1\r\n"),
        ("duplicate", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n"),
        ("empty", "GET / HTTP/1.1\r\nHost: \r\n"),
        ("space", "GET / HTTP/1.1\r\nHost: a b.test\r\n"),
        ("slash", "GET / HTTP/1.1\r\nHost: a.test/evil\r\n"),
        ("userinfo", "GET / HTTP/1.1\r\nHost: user@a.test\r\n"),
        ("bad port", "GET / HTTP/1.1\r\nHost: a.test:80x\r\n"),
        ("bad ipv6", "GET / HTTP/1.1\r\nHost: [::zz]\r\n"),
    ] {
        let out = raw_async(b.addr, format!("{head}Connection: close\r\n\r\n").as_bytes(), wait).await;
        assert_eq!(status_of(&out), 400, "{name}: {out}");
    }
    // HTTP/1.0 without Host is allowed and reaches the default app.
    let out = raw_async(b.addr, b"GET / HTTP/1.0\r\n\r\n", wait).await;
    assert_eq!(status_of(&out), 200, "{out}");
    // The server is unharmed.
    assert_eq!(get(b.addr, "a.test", "/").await.status, 200);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let (_s, b, _e) = server(LIMITS).await;
    let big = vec![b'x'; 100 * 1024];
    // Declared too large: refused before anything reads it.
    let r = send(b.addr, request("POST", "/api/upload", &[("host", "x")], big.clone())).await;
    assert_eq!(r.status, 413);
    // Chunked, so the size is only known while streaming to the upstream.
    let head = "POST /api/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let mut req = head.as_bytes().to_vec();
    for chunk in big.chunks(16 * 1024) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let out = raw_async(b.addr, &req, Duration::from_secs(5)).await;
    assert_eq!(status_of(&out), 413, "{out}");
    // Within the limit it goes through.
    let r = send(
        b.addr,
        request("POST", "/api/upload", &[("host", "x")], vec![b'x'; 60 * 1024]),
    )
    .await;
    assert_eq!(r.json()["body_len"], 60 * 1024);
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let (_s, b, _e) = server(LIMITS).await;
    let huge = "a".repeat(20 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\nConnection: close\r\n\r\n");
    let out = raw_async(b.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&out), 431, "{}", &out[..out.len().min(200)]);
}

#[tokio::test]
async fn slow_heads_are_cut_off() {
    let (_s, b, _e) = server(LIMITS).await;
    let started = Instant::now();
    // Slowloris: a head that never ends.
    let _ = raw_async(
        b.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n",
        Duration::from_secs(8),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "kept open for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalled_bodies_get_408() {
    let (_s, b, _e) = server(LIMITS).await;
    let started = Instant::now();
    let out = raw_async(
        b.addr,
        b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(status_of(&out), 408, "{out}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let limits = LIMITS
        .replace("idle_timeout = \"10s\"", "idle_timeout = \"400ms\"")
        .replace("header_read_timeout = \"500ms\"", "header_read_timeout = \"30s\"");
    let (_s, b, _e) = server(&limits).await;
    // HTTP/1.1 keep-alive: answered, then closed once idle.
    let started = Instant::now();
    let out = raw_async(b.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(8)).await;
    assert_eq!(status_of(&out), 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "idle h1 kept for {:?}",
        started.elapsed()
    );

    // h2c: the connection future ends once the server closes it.
    let (mut tx, conn) = h2_client(b.addr).await;
    let r = tx.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    let closed = tokio::time::timeout(Duration::from_secs(4), conn).await;
    assert!(closed.is_ok(), "idle h2 connection was kept open");
}

#[tokio::test]
async fn keep_alive_outlives_the_header_timeout() {
    // header_read_timeout 500ms, idle_timeout 10s: a quiet keep-alive
    // connection is idle, not a slow head, and stays open.
    let (_s, b, _e) = server(LIMITS).await;
    let (mut tx, _conn) = h1_client(b.addr).await;
    for _ in 0..2 {
        let r = tx
            .send_request(request("GET", "/", &[("host", "x")], ""))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        drop(r);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let r = tx.send_request(request("GET", "/", &[("host", "x")], "")).await;
    assert!(
        r.is_ok_and(|r| r.status() == 200),
        "the idle connection was closed by the header timeout"
    );
}

#[tokio::test]
async fn silent_connections_are_cut_at_the_header_timeout() {
    let (_s, b, _e) = server(LIMITS).await;
    let started = Instant::now();
    let out = raw_async(b.addr, b"", Duration::from_secs(8)).await;
    assert!(out.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "kept for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cancelled_requests_do_not_keep_a_connection_busy() {
    let limits = LIMITS.replace("idle_timeout = \"10s\"", "idle_timeout = \"400ms\"");
    let (_s, b, _e) = server(&limits).await;
    let (mut tx, conn) = h2_client(b.addr).await;
    // The client gives up on a slow request: its stream is reset.
    let slow = tx.send_request(request("GET", "http://x/api/slow/20000", &[], ""));
    assert!(tokio::time::timeout(Duration::from_millis(300), slow).await.is_err());
    // With nothing in flight any more, the idle timeout closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(4), conn).await;
    assert!(closed.is_ok(), "a cancelled request kept the connection busy");
}
