//! The proxy runtime against a real upstream started by the test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;

async fn proxied(extra: &str) -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}/base\"\n{extra}\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    (site, b, echo)
}

#[tokio::test]
async fn forwards_path_query_and_forwarding_headers() {
    let (_s, b, echo) = proxied("").await;
    let r = send(
        b.addr,
        request(
            "GET",
            "/users?id=7",
            &[
                ("host", "Shop.Example.com"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.test"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ("connection", "x-secret"),
                ("x-secret", "1"),
                ("proxy-authorization", "Basic eA=="),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let s = r.json();
    assert_eq!(s["uri"], "/base/users?id=7");
    let h = &s["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example.com");
    assert_eq!(h["host"], echo.addr.to_string());
    // bext's own fields replace the client's: each is there once.
    let tp = h["traceparent"].as_str().unwrap();
    assert!(tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && !tp.contains("b7ad6b7169203331"));
    assert_eq!(s["repeated"], serde_json::json!([]), "{h}");
    assert!(h.get("x-secret").is_none() && h.get("proxy-authorization").is_none());
    // Hop-by-hop headers of the upstream's answer are dropped too.
    assert!(r.header("x-upstream-private").is_none() && r.header("keep-alive").is_none());
}

#[tokio::test]
async fn preserve_host_sends_the_clients_host() {
    let (_s, b, _e) = proxied("preserve_host = true").await;
    let s = get(b.addr, "shop.example.com", "/").await.json();
    assert_eq!(s["headers"]["host"], "shop.example.com");
}

#[tokio::test]
async fn streams_request_bodies_and_speaks_h2_to_clients() {
    let (_s, b, _e) = proxied("").await;
    let body = vec![b'x'; 3 << 20];
    let r = send(b.addr, request("POST", "/upload", &[("host", "x")], body)).await;
    assert_eq!(r.json()["body_len"], 3 << 20);
    assert_eq!(r.json()["method"], "POST");
    let r = send_h2(b.addr, request("PUT", "http://x/h2", &[], vec![1u8; 1000])).await;
    assert_eq!(r.json()["body_len"], 1000);
}

#[tokio::test]
async fn refused_upstream_is_502_and_slow_upstream_is_504() {
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let echo = Echo::start().await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.dead]\nruntime = \"proxy\"\nupstream = \"http://{dead}\"\n[apps.slow]\nruntime = \"proxy\"\nupstream = \"http://{}\"\nresponse_timeout = \"300ms\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let r = get(b.addr, "x", "/dead/").await;
    assert_eq!(r.status, 502);
    let started = std::time::Instant::now();
    let r = get(b.addr, "x", "/slow/slow/3000").await;
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The answer names the app; the log has the address, for the operator.
    assert!(!r.text().contains(&echo.addr.to_string()), "{}", r.text());
    let log = b.log_once_it_says("upstream timed out: no response head");
    assert!(log.contains(&format!("upstream=\"{}\"", echo.addr)), "{log}");
    // The server is still fine afterwards.
    assert_eq!(get(b.addr, "x", "/slow/ok").await.status, 200);
}

#[tokio::test]
async fn websocket_upgrades_become_a_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_s, b, _e) = proxied("").await;
    let (head, mut conn) = h1_websocket(b.addr, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"through bext"] {
        conn.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

/// An upstream speaking HTTP/1.1 by hand: answers every request head with
/// `ok`, counts the connections it accepted and, with `close_after_each`,
/// closes each connection after its answer without saying so (what an
/// upstream's keep-alive timeout does between two requests).
async fn counting_upstream(close_after_each: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    answering_upstream(close_after_each, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await
}

/// [`counting_upstream`] with its own `answer`.
async fn answering_upstream(close_after_each: bool, answer: &'static [u8]) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if stream.write_all(answer).await.is_err() || close_after_each {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_kept_and_one_the_upstream_closed_is_not_a_failure() {
    for close_after_each in [false, true] {
        let (up, accepted) = counting_upstream(close_after_each).await;
        let site = Site::new();
        let cfg = site.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\nworkers = 1\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
        ));
        let b = Bext::serve(&cfg);
        let (mut client, _conn) = h1_client(b.addr).await;
        for i in 0..40 {
            // Sometimes a moment for the upstream's close to arrive first,
            // sometimes none: both orders must work.
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let res = client
                .send_request(request("GET", "/x", &[("host", "x")], ""))
                .await
                .unwrap();
            let reply = collect(res).await;
            assert_eq!(
                (reply.status, reply.text().as_str()),
                (200, "ok"),
                "request {i}, close_after_each {close_after_each}"
            );
        }
        let connections = accepted.load(Ordering::SeqCst);
        if close_after_each {
            assert_eq!(connections, 40, "one connection a request");
        } else {
            assert_eq!(connections, 1, "one kept connection for 40 requests on one worker");
        }
    }
}

/// A kept upstream connection that the upstream closes while no request
/// names that upstream again (an old instance after a deploy, an app a
/// reload removed) is closed by bext too: it does not sit in `CLOSE_WAIT`,
/// holding a descriptor, until the next request to the same address.
#[tokio::test]
async fn an_idle_upstream_connection_the_upstream_closed_is_closed_without_another_request() {
    let (up, accepted) = counting_upstream(true).await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nworkers = 1\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    assert_eq!(get(b.addr, "x", "/x").await.text(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // bext's end of a connection the peer closed and bext did not is in
    // CLOSE_WAIT (state 08 in /proc/net/tcp), with the upstream's port as
    // its remote port.
    let close_wait_to_upstream = || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields[3] == "08" && fields[2].ends_with(&format!(":{:04X}", up.port()))
            })
            .count()
    };
    eventually(Duration::from_secs(30), || async {
        (close_wait_to_upstream() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_client_gets_its_own_http_version_not_the_upstreams() {
    let (up, _) = answering_upstream(true, b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    let answer = raw_async(
        b.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 200 OK").count(),
        2,
        "the connection stays open: {answer}"
    );
}

/// An extended CONNECT is the GET of the WebSocket handshake to the
/// plugins too: a scope rule for GET holds over HTTP/2 as over HTTP/1.1.
#[tokio::test]
async fn websocket_over_http2_meets_the_rules_for_its_get() {
    let echo = Echo::start().await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\n\
         upstream = \"http://{}\"\nauth = {{ jwt_secret_env = \"WS_JWT_SECRET\", required = false, \
         scopes = [{{ path = \"/admin/*\", methods = [\"GET\"], require = [\"admin\"] }}] }}\n",
        echo.addr
    ));
    let b = Bext::serve_env(&cfg, &[("WS_JWT_SECRET", "0123456789abcdef0123456789abcdef-ws")]);
    let upgrade = [
        ("host", "x"),
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
    ];
    let h1 = send(b.addr, request("GET", "/admin/chat", &upgrade, "")).await;
    assert_eq!(h1.status, 401, "HTTP/1.1 handshake without a token: {:?}", h1.body);
    let (mut sender, _conn) = h2_client(b.addr).await;
    let first = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(collect(first).await.status, 200);
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri("http://x/admin/chat")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    let res = sender.send_request(connect).await.unwrap();
    assert_eq!(res.status(), 401, "the same handshake over HTTP/2 without a token");
}

/// An upstream answer with both framings reaches the client framed by
/// its Transfer-Encoding, without the Content-Length (RFC 9112 §6.3).
#[tokio::test]
async fn an_answer_with_content_length_and_chunked_loses_its_content_length() {
    let (up, _) = answering_upstream(
        true,
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    )
    .await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    let r = send(b.addr, request("GET", "/", &[("host", "x")], "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"ok");
    assert!(
        r.headers.get("content-length").is_none_or(|v| *v == "2"),
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn websocket_over_http2_extended_connect_becomes_a_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_s, b, _e) = proxied("").await;
    let (mut sender, _conn) = h2_client(b.addr).await;
    // A first request, so the server's SETTINGS (extended CONNECT on)
    // have arrived before the CONNECT is sent.
    let first = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(collect(first).await.status, 200);
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri("http://x/chat")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    let res = sender.send_request(connect).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("sec-websocket-accept").is_none() && res.headers().get("upgrade").is_none());
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(res).await.unwrap());
    for msg in [&b"hello"[..], b"over h2"] {
        io.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
    // A CONNECT for anything else is still refused.
    let other = http::Request::builder()
        .method("CONNECT")
        .uri("http://x/chat")
        .extension(hyper::ext::Protocol::from_static("connect-udp"))
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    assert_eq!(sender.send_request(other).await.unwrap().status(), 405);
}

/// An app whose upstream speaks HTTP/2 (`http2 = true`) on `up`.
fn serve_http2_upstream(up: std::net::SocketAddr) -> (Site, Bext) {
    let site = Site::new();
    site.write("public/index.html", "static");
    site.write("manifests/vhosts.yaml", "name: vhosts\n");
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"api\"\n\
         [apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\nhttp2 = true\n\
         [apps.files]\nsource = \"public\"\ndomains = [\"files.test\"]\n"
    ));
    let b = Bext::serve(&cfg);
    (site, b)
}

/// A WebSocket to an app with `http2 = true` goes up as an extended
/// CONNECT (RFC 8441) when the upstream's SETTINGS allow it, whether the
/// client asked over HTTP/2 or with an HTTP/1.1 upgrade.
#[tokio::test]
async fn a_websocket_to_an_http2_upstream_is_an_extended_connect_from_either_protocol() {
    let up = h2_websocket_upstream(true).await;
    let (_s, b) = serve_http2_upstream(up);
    let (mut sender, _conn) = h2_client(b.addr).await;
    let first = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(collect(first).await.text(), "plain h2");
    let res = sender
        .send_request(websocket_connect("http://x/chat", "websocket"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-saw"], "CONNECT websocket key=false");
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat");
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(res).await.unwrap());
    echoes_through(&mut io).await;

    // An HTTP/1.1 client gets its 101 and an accept made from its key.
    let (head, mut conn) = h1_websocket(b.addr, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("x-saw: connect websocket key=false"), "{head}");
    echoes_through(&mut conn).await;
    // Without a key there is nothing to accept.
    let (head, _) = h1_websocket(b.addr, "").await;
    assert!(head.starts_with("http/1.1 400"), "{head}");

    // Other spellings: a CONNECT without `:protocol`, or with another
    // protocol, is no WebSocket; a static app has none to give.
    let plain_connect = http::Request::builder()
        .method("CONNECT")
        .uri("x:443")
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    assert_eq!(sender.send_request(plain_connect).await.unwrap().status(), 405);
    for protocol in ["connect-udp", "websocket2", "h2c"] {
        let res = sender
            .send_request(websocket_connect("http://x/chat", protocol))
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{protocol}");
    }
    let res = sender
        .send_request(websocket_connect("http://files.test/", "websocket"))
        .await
        .unwrap();
    assert_eq!(res.status(), 405, "a static app");
}

#[tokio::test]
async fn a_websocket_to_an_http2_upstream_without_extended_connect_is_501_over_either_protocol() {
    let up = h2_websocket_upstream(false).await;
    let (_s, b) = serve_http2_upstream(up);
    let (mut sender, _conn) = h2_client(b.addr).await;
    let first = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    let _ = collect(first).await;
    let res = sender
        .send_request(websocket_connect("http://x/chat", "websocket"))
        .await
        .unwrap();
    assert_eq!(res.status(), 501, "over HTTP/2");
    let (head, mut conn) = h1_websocket(b.addr, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").await;
    assert!(head.starts_with("http/1.1 501"), "over HTTP/1.1: {head}");
    let mut body = Vec::new();
    while !body.ends_with(b"\n") {
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut conn, &mut chunk),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "closed before the reason");
        body.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("app `api`: its upstream does not accept WebSockets over HTTP/2"),
        "{body}"
    );
    // The same connection still carries plain requests.
    let r = send_h2(b.addr, request("GET", "http://x/", &[], "")).await;
    assert_eq!(r.text(), "plain h2");
}

/// An upstream speaking HTTP/1.1 by hand that notes each request line
/// as its head arrives and `body N` once it has read the N bytes its
/// `Content-Length` said, then answers `ok`.
async fn noting_upstream() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let noted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let notes = noted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let notes = notes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    buf.drain(..end);
                    let line = head.lines().next().unwrap_or("").trim_end_matches(" http/1.1");
                    notes.lock().unwrap().push(line.to_owned());
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..len);
                    if len > 0 {
                        notes.lock().unwrap().push(format!("body {len}"));
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, noted)
}

#[tokio::test]
async fn a_small_request_body_is_read_whole_before_the_upstream_hears_of_the_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, noted) = noting_upstream().await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nworkers = 1\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    let notes = || noted.lock().unwrap().clone();
    // Half a body, then a pause: meanwhile the upstream hears only of
    // another client's request.
    let mut slow = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    slow.write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n")
        .await
        .unwrap();
    slow.write_all(&[b'a'; 1000]).await.unwrap();
    assert_eq!(get(b.addr, "x", "/other").await.status, 200);
    assert_eq!(notes(), ["get /other"]);
    // The rest arrives: head and body go up together.
    slow.write_all(&[b'a'; 1000]).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok") {
        let mut chunk = [0u8; 1024];
        let n = slow.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 200);
    assert_eq!(notes(), ["get /other", "post /slow", "body 2000"]);
    // A client that gives up halfway never reaches the upstream; a body
    // over the limit goes up as it streams (the upstream hears of it
    // before its end).
    let mut gone = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    gone.write_all(b"PUT /gone HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        .await
        .unwrap();
    drop(gone);
    assert_eq!(get(b.addr, "x", "/last").await.status, 200);
    assert_eq!(notes(), ["get /other", "post /slow", "body 2000", "get /last"]);
    let big = 64 * 1024 + 1;
    let mut streamed = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    streamed
        .write_all(format!("POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    streamed.write_all(&vec![b'b'; 1000]).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        notes().contains(&"post /big".to_owned()).then_some(())
    })
    .await;
    streamed.write_all(&vec![b'b'; big - 1000]).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        notes().contains(&format!("body {big}")).then_some(())
    })
    .await;
}

/// One worker proxying everything to `up`, so every request of a test
/// meets the same kept upstream connections.
fn proxy_to(up: std::net::SocketAddr) -> (Site, Bext) {
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nworkers = 1\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    (site, b)
}

/// Hostile answers from a plain `http://` upstream (bext's own exchange)
/// are refused: 502 naming the app, never the upstream's bytes, and the
/// next request on the client's connection is served. hyper's client
/// refused the same malformed heads; a head over its limit it let
/// through (and the next request hung), an unasked 101 became a 500.
#[tokio::test]
async fn hostile_upstream_answers_are_refused_as_502_naming_the_app() {
    let huge: &'static [u8] = format!("HTTP/1.1 200 OK\r\nx-a: {}\r\n\r\n", "a".repeat(420_000))
        .into_bytes()
        .leak();
    let hostile: [(&str, &'static [u8]); 8] = [
        (
            "conflicting lengths",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 30\r\n\r\nokHTTP/1.1 200 OK\r\n",
        ),
        ("a length in hex", b"HTTP/1.1 200 OK\r\ncontent-length: 0x2\r\n\r\nok"),
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n folded\r\n\r\nok",
        ),
        (
            "space before the colon",
            b"HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok",
        ),
        (
            "a bare CR",
            b"HTTP/1.1 200 OK\r\nx-a: 1\rx-b: 2\r\ncontent-length: 2\r\n\r\nok",
        ),
        ("a head over hyper's limit", huge),
        (
            "a coding besides chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "an unasked switch",
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        ),
    ];
    for (what, answer) in hostile {
        let (up, _) = answering_upstream(false, answer).await;
        let (_site, b) = proxy_to(up);
        let (mut client, _conn) = h1_client(b.addr).await;
        for i in 0..2 {
            let res = client
                .send_request(request("GET", "/", &[("host", "x")], ""))
                .await
                .unwrap();
            let reply = collect(res).await;
            assert_eq!(
                (reply.status, reply.text().as_str()),
                (502, "app `api`: upstream unavailable\n"),
                "{what}, request {i}"
            );
        }
    }
}

/// Through hyper's client (a request body too long to gather), an
/// unasked `101` and a transfer coding besides `chunked` are 502s as on
/// bext's own exchange, and a `Content-Length` of equal values goes on as
/// one plain number (HTTP/2 clients refuse `5, 5`).
#[tokio::test]
async fn through_hypers_client_an_unasked_switch_is_refused_and_a_length_folded() {
    let long = "x".repeat(70_000);
    let cases: [(&'static [u8], u16, Option<&str>); 3] = [
        (
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            502,
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            502,
            None,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 05, 5\r\n\r\nhello", 200, Some("5")),
    ];
    for (answer, status, length) in cases {
        let (up, _) = answering_upstream(false, answer).await;
        let (_site, b) = proxy_to(up);
        let (mut client, _conn) = h1_client(b.addr).await;
        let res = client
            .send_request(request("POST", "/", &[("host", "x")], long.clone()))
            .await
            .unwrap();
        let reply = collect(res).await;
        let what = String::from_utf8_lossy(answer);
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        if let Some(length) = length {
            assert_eq!(
                (reply.headers["content-length"].to_str().unwrap(), reply.text().as_str()),
                (length, "hello")
            );
        }
    }
}

/// Framing and hop-by-hop fields are exact on bext's own exchange: a
/// chunked body decoded, what `Connection` names dropped, interim answers
/// skipped, bodiless answers (HEAD, 204) read as such, and the
/// connection kept for the next request only after an answer that ended
/// where its framing said.
#[tokio::test]
async fn upstream_answers_are_framed_exactly_and_their_connection_kept_only_when_clean() {
    // (answer, method, the body the client gets, upstream connections for
    // three requests)
    let cases: [(&'static [u8], &str, &str, usize); 7] = [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: x-secret\r\nx-secret: 1\r\n\
              keep-alive: timeout=5\r\nx-kept: 1\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
            "GET",
            "hello world",
            1,
        ),
        (
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nx-kept: 1\r\ncontent-length: 11\r\n\r\nhello world",
            "GET",
            "hello world",
            1,
        ),
        (b"HTTP/1.1 200 OK\r\nx-kept: 1\r\ncontent-length: 1024\r\n\r\n", "HEAD", "", 1),
        // A bodiless answer that announces a body may be followed by one
        // in a later write: its connection is not kept.
        (b"HTTP/1.1 204 No Content\r\nx-kept: 1\r\ntransfer-encoding: chunked\r\n\r\n", "GET", "", 3),
        (b"HTTP/1.1 204 No Content\r\nx-kept: 1\r\ncontent-length: 5\r\n\r\n", "GET", "", 3),
        // A length of equal values goes on as one plain number.
        (
            b"HTTP/1.1 200 OK\r\nx-kept: 1\r\ncontent-length: 011, 11\r\n\r\nhello world",
            "GET",
            "hello world",
            1,
        ),
        // Bytes past the answer's end (response splitting): never read as
        // the next request's answer; that connection is not kept.
        (
            b"HTTP/1.1 200 OK\r\nx-kept: 1\r\ncontent-length: 11\r\n\r\nhello worldHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged",
            "GET",
            "hello world",
            3,
        ),
    ];
    for (answer, method, body, connections) in cases {
        let (up, accepted) = answering_upstream(false, answer).await;
        let (_site, b) = proxy_to(up);
        let (mut client, _conn) = h1_client(b.addr).await;
        for i in 0..3 {
            let res = client
                .send_request(request(method, "/", &[("host", "x")], ""))
                .await
                .unwrap();
            let reply = collect(res).await;
            let what = format!("{method} {:?}, request {i}", String::from_utf8_lossy(answer));
            assert_eq!((reply.status / 100, reply.text().as_str()), (2, body), "{what}");
            assert_eq!(reply.headers["x-kept"], "1", "{what}");
            for gone in ["x-secret", "keep-alive", "link", "x-t"] {
                assert!(!reply.headers.contains_key(gone), "{gone}: {what}");
            }
            if let Some(length) = reply.headers.get("content-length").filter(|_| method != "HEAD") {
                assert_eq!(length, &reply.body.len().to_string(), "{what}");
            }
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            connections,
            "{}",
            String::from_utf8_lossy(answer)
        );
    }
}

/// Bodies longer than what comes with the head stream from the upstream
/// (by length, chunked, or until it closes); an upstream that closes
/// mid-body breaks the client's response instead of ending it short.
#[tokio::test]
async fn long_upstream_bodies_stream_and_one_cut_short_is_not_passed_off_as_whole() {
    let long = "0123456789abcdef".repeat(16 * 1024);
    let by_length: &'static [u8] = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{long}", long.len())
        .into_bytes()
        .leak();
    let chunks: String = long
        .as_bytes()
        .chunks(10_000)
        .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
        .collect();
    let chunked: &'static [u8] = format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{chunks}0\r\n\r\n")
        .into_bytes()
        .leak();
    let until_close: &'static [u8] = format!("HTTP/1.1 200 OK\r\n\r\n{long}").into_bytes().leak();
    for (answer, close) in [(by_length, false), (chunked, false), (until_close, true)] {
        let (up, _) = answering_upstream(close, answer).await;
        let (_site, b) = proxy_to(up);
        let (mut client, _conn) = h1_client(b.addr).await;
        for _ in 0..2 {
            let res = client
                .send_request(request("GET", "/", &[("host", "x")], ""))
                .await
                .unwrap();
            let reply = collect(res).await;
            assert_eq!(reply.status, 200);
            assert!(reply.body == long.as_bytes(), "{} bytes", reply.body.len());
        }
    }
    let (up, _) = answering_upstream(true, b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nhello").await;
    let (_site, b) = proxy_to(up);
    for _ in 0..2 {
        let (mut client, _conn) = h1_client(b.addr).await;
        // The server may have begun its answer, or not yet: either way the
        // client never reads a complete answer.
        let whole = match client.send_request(request("GET", "/", &[("host", "x")], "")).await {
            Err(_) => false,
            Ok(res) => read_to_end(&mut res.into_body()).await.is_ok(),
        };
        assert!(!whole, "a body cut short is an error");
    }
}

/// The length an upstream gives a 204 and a 304, as nginx passes them on
/// to an HTTP/2 client: none on a 204 (RFC 9110 §8.6: a 204 has no
/// `Content-Length`), the selected representation's on a 304 (allowed
/// there); an HTTP/1.1 client gets hyper's head, which drops both.
#[tokio::test]
async fn a_204_has_no_length_and_a_304_keeps_its_representations_for_h2() {
    let (up, _task) = raw_upstream(|head| {
        if head.starts_with(b"GET /204 ") {
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n".into()
        } else {
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n".into()
        }
    })
    .await;
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n"
    ));
    let b = Bext::serve(&cfg);
    let r = send_h2(b.addr, request("GET", "http://x/204", &[], "")).await;
    assert_eq!((r.status, r.header("x-a")), (204, Some("1")));
    assert!(r.headers.get("content-length").is_none(), "{:?}", r.headers);
    let r = send_h2(b.addr, request("GET", "http://x/304", &[], "")).await;
    assert_eq!((r.status, r.header("etag")), (304, Some("\"x\"")));
    assert_eq!(r.header("content-length"), Some("5"), "the representation's, as nginx");
    for path in ["/204", "/304"] {
        let r = get(b.addr, "x", path).await;
        assert!(r.headers.get("content-length").is_none(), "{path}: {:?}", r.headers);
    }
}
