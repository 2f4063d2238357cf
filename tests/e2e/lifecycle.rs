//! Graceful shutdown and the admin listener.

use std::time::{Duration, Instant};

use crate::support::*;

async fn slow_server(shutdown_timeout: &str) -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[platform.limits]\nshutdown_timeout = \"{shutdown_timeout}\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    (s, b, echo)
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let (_s, mut b, _e) = slow_server("10s").await;
    let addr = b.addr;
    let slow = tokio::spawn(async move { get(addr, "x", "/api/slow/1000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.signal("TERM");
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request lost: {}", r.text());
    let status = tokio::task::spawn_blocking(move || {
        let s = b.wait_exit(Duration::from_secs(5));
        (s, b)
    })
    .await
    .unwrap();
    assert!(status.0.expect("bext did not exit").success());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn the_shutdown_deadline_bounds_the_drain() {
    let (_s, mut b, _e) = slow_server("300ms").await;
    let addr = b.addr;
    let _slow = tokio::spawn(async move { get(addr, "x", "/api/slow/20000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    b.signal("INT");
    let exited = tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(10)).is_some())
        .await
        .unwrap();
    assert!(exited, "bext did not exit");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn admin_listen_serves_endpoints_without_prefix_and_no_apps() {
    let s = Site::new();
    s.write("www/index.html", "app");
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"{admin}\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\n"
    ));
    let b = Bext::serve(&cfg);
    let r = get(admin, "x", "/health").await;
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(get(admin, "x", "/").await.status, 404);
    assert_eq!(get(b.addr, "x", "/").await.text(), "app");
}

/// hyper is patched so that an HTTP/1 connection idle for 2 s between
/// requests gives its buffers back (vendor/hyper/BEXT-PATCH.md; bext wakes
/// it 3 s after its last answer): the connection must then serve its next
/// requests as before, a large body, a large head and pipelined requests
/// included.
#[tokio::test]
async fn a_connection_serves_again_after_it_gave_its_buffers_back() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let (mut sender, _conn) = h1_client(b.addr).await;
    let post = |body: Vec<u8>, header_len: usize| {
        let mut req = request("POST", "/echo", &[("host", "shop.test")], body);
        req.headers_mut()
            .insert("x-pad", "p".repeat(header_len).parse().unwrap());
        req
    };
    let first = collect(sender.send_request(post(b"one".to_vec(), 10)).await.unwrap()).await;
    assert_eq!(first.json()["body_len"], 3);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // A body and a head larger than the 8 KiB buffers given back.
    let big = collect(sender.send_request(post(vec![b'x'; 40_000], 12_000)).await.unwrap()).await;
    assert_eq!(big.status, 200, "{}", big.text());
    assert_eq!(big.json()["body_len"], 40_000);
    assert_eq!(big.json()["headers"]["x-pad"].as_str().map(str::len), Some(12_000));
    drop(sender);

    // Pipelined requests after an idle pause, on one raw connection.
    let mut raw_conn = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let get = "GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw_conn.write_all(get.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = raw_conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    raw_conn.write_all(format!("{get}{get}").as_bytes()).await.unwrap();
    let mut seen = String::new();
    while seen.matches("HTTP/1.1 200").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), raw_conn.read(&mut buf))
            .await
            .expect("both pipelined answers")
            .unwrap();
        assert!(n > 0, "closed after {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// h2 is patched so that an HTTP/2 connection with no stream open for 2 s
/// gives back its read, write and HPACK buffers and copies its HPACK table
/// out of them (vendor/h2/BEXT-PATCH.md): a stream in flight across that
/// time must finish untouched, and the connection must then serve a large
/// head, body and answer, with headers the client sends as references to
/// the table built before the pause.
#[tokio::test]
async fn an_h2_connection_serves_again_after_it_gave_its_buffers_back() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let (mut sender, _conn) = h2_client(b.addr).await;
    let token = "t".repeat(40);
    let post = |path: &str, body: Vec<u8>, pad: usize| {
        let mut req = request(
            "POST",
            &format!("http://shop.test{path}"),
            &[("x-token", token.as_str())],
            body,
        );
        req.headers_mut().insert("x-pad", "p".repeat(pad).parse().unwrap());
        req
    };
    let first = collect(sender.send_request(post("/echo", b"one".to_vec(), 10)).await.unwrap()).await;
    assert_eq!(first.json()["body_len"], 3, "{}", first.text());

    // A stream in flight for longer than the release time (the upstream
    // answers after 5 s): the connection is not idle and keeps its buffers.
    let slow = sender.send_request(post("/slow/5000", vec![b's'; 20_000], 10));
    let slow = tokio::time::timeout(Duration::from_secs(15), slow)
        .await
        .expect("the stream in flight was answered")
        .unwrap();
    let slow = collect(slow).await;
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(slow.json()["uri"], "/slow/5000");
    assert_eq!(slow.json()["body_len"], 20_000);

    // Idle past the release (bext wakes the connection 3 s after its last
    // answer), then a head, a body and an answer larger than the buffers.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // The upstream's answer carries a 6,000-byte header too. The request's
    // head, Huffman-coded, is larger than a frame (16 KiB), so it arrives
    // as HEADERS and CONTINUATION frames (h2 keeps the partial block aside).
    let mut big = post("/echo", vec![b'x'; 40_000], 30_000);
    let set = format!("x-big={}", "b".repeat(6000));
    big.headers_mut().insert("x-echo-set", set.parse().unwrap());
    let big = collect(sender.send_request(big).await.unwrap()).await;
    assert_eq!(big.status, 200, "{}", big.text());
    assert_eq!(big.headers["x-big"].len(), 6000);
    assert!(big.body.len() > 16 * 1024, "an answer larger than the write buffer");
    assert_eq!(big.json()["body_len"], 40_000);
    assert_eq!(big.json()["headers"]["x-pad"].as_str().map(str::len), Some(30_000));
    assert_eq!(
        big.json()["headers"]["x-token"],
        token.as_str(),
        "a header from the HPACK table"
    );

    // And again, with several streams at once.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let answers = futures_util::future::join_all((0..4).map(|i| {
        let mut sender = sender.clone();
        let req = post("/echo", vec![b'y'; 1000 * (i + 1)], 100);
        async move { collect(sender.send_request(req).await.unwrap()).await }
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.json()["body_len"], 1000 * (i + 1), "{}", answer.text());
        assert_eq!(answer.json()["headers"]["x-token"], token.as_str());
    }
}

/// The server opts out of transparent huge pages (kernel/src/server/
/// memory.rs): with them, the kernel fills the pages idle connections gave
/// back in again, 2 MiB at a time.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    let b = Bext::serve(
        &s.platform("[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\n"),
    );
    assert_eq!(get(b.addr, "x", "/").await.status, 200);
    let status = std::fs::read_to_string(format!("/proc/{}/status", b.pid())).unwrap();
    let thp = status.lines().find(|l| l.starts_with("THP_enabled:"));
    // Kernels before 5.0 do not say; the call is then only logged.
    if let Some(line) = thp {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
