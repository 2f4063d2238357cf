//! The HTTP/1.1 fast path (kernel/src/server/h1) against hyper, on raw
//! sockets: the same bytes in give the same bytes out whichever serves the
//! connection (`[platform] http1_fast_path`), and whatever the fast path
//! does not serve (bodies but small ones of a plain length that came with
//! their head, smuggling attempts, oversized heads) is judged by hyper on
//! the same connection, after requests the fast path served.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Unlocks `/__bext/metrics`.
const TOKEN: &str = "h1-test-token";

/// The same platform twice: fast path on (the default) and off.
struct Pair {
    _site: Site,
    fast: Bext,
    hyper: Bext,
    _echo: Echo,
    _chunks: tokio::task::JoinHandle<()>,
}

async fn pair() -> Pair {
    let echo = Echo::start().await;
    let (chunks, chunks_task) = chunked_upstream().await;
    let site = Site::new();
    site.write("www/index.html", "x".repeat(1024));
    site.write("www/a.txt", "hello\n");
    let platform = |fast: bool| {
        format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\nhttp1_fast_path = {fast}\n\
             [apps.www]\nsource = \"www\"\n\
             [apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n\
             [apps.stream]\nruntime = \"proxy\"\nupstream = \"http://{chunks}\"\n",
            echo.addr
        )
    };
    let env = [("BEXT_ADMIN_TOKEN", TOKEN)];
    let fast = Bext::serve_env(&site.write("fast.toml", platform(true)), &env);
    let hyper = Bext::serve_env(&site.write("hyper.toml", platform(false)), &env);
    Pair {
        _site: site,
        fast,
        hyper,
        _echo: echo,
        _chunks: chunks_task,
    }
}

/// An upstream whose answers stream in chunks (no length): bext must
/// frame them itself.
async fn chunked_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    raw_upstream(|_| {
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            .to_owned()
    })
    .await
}

/// What the server sent for `bytes` until it closed, without what differs
/// between two servers (the date, a request id, the trace ids an echoing
/// upstream saw).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    comparable(&raw_async(addr, bytes, Duration::from_secs(10)).await)
}

/// Raw output without what differs from one answer to the next (dates,
/// request and trace ids).
fn comparable(out: &str) -> String {
    let out: String = out
        .split_inclusive("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("date: ") && !l.starts_with("x-request-id: ")
        })
        .collect();
    without_trace_ids(&out)
}

/// `"traceparent":"00-<trace>-<span>-<flags>"` with the ids blanked: each
/// server starts traces of its own.
fn without_trace_ids(out: &str) -> String {
    const KEY: &str = "\"traceparent\":\"";
    const VALUE_LEN: usize = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".len();
    let mut rest = out;
    let mut kept = String::with_capacity(out.len());
    while let Some(at) = rest.find(KEY) {
        let value_at = at + KEY.len();
        kept.push_str(&rest[..value_at]);
        kept.push_str("<trace>");
        rest = &rest[(value_at + VALUE_LEN).min(rest.len())..];
    }
    kept.push_str(rest);
    kept
}

/// Statuses of the responses in raw output, in order.
fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.")
        .filter_map(|(i, _)| out[i..].split_whitespace().nth(1)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn the_fast_path_answers_byte_for_byte_as_hyper() {
    let p = pair().await;
    let etag = get(p.fast.addr, "x", "/a.txt")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let cases: Vec<(&str, Vec<u8>, Vec<u16>)> = vec![
        (
            "pipelined keep-alive, the last closes",
            b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            vec![200, 200, 404],
        ),
        (
            "HEAD: the length of the GET, no body",
            b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            vec![200, 200],
        ),
        (
            "304 with no body",
            format!("GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n").into_bytes(),
            vec![304],
        ),
        ("HTTP/1.0 closes by default", b"GET /a.txt HTTP/1.0\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n".to_vec(), vec![200]),
        (
            "HTTP/1.0 keep-alive",
            b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /index.html HTTP/1.0\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n".to_vec(),
            vec![200, 200],
        ),
        (
            "a streaming answer is chunked",
            b"GET /stream/x HTTP/1.1\r\nHost: x\r\n\r\nGET /stream/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            vec![200, 200],
        ),
        (
            "HTTP/1.0 gets a streaming answer until close",
            b"GET /stream/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n".to_vec(),
            vec![200],
        ),
        (
            "methods without a body",
            b"OPTIONS /a.txt HTTP/1.1\r\nHost: x\r\n\r\nDELETE /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            vec![405, 405],
        ),
        (
            "small bodies of a plain length, read with their head",
            b"POST /api/form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
PUT /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
POST /api/none HTTP/1.1\r\nHost: x\r\n\r\n\
PATCH /api/zero HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
            vec![200, 405, 200, 200],
        ),
        (
            "a body longer than the first read, then a GET",
            [
                &b"POST /api/big HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"[..],
                &[b'b'; 20_000],
                b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ]
            .concat(),
            vec![200, 200],
        ),
        (
            // hyper reads `Connection` only when it is visible ASCII.
            "a Connection value with obs-text has no close token",
            b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close, \xff\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            vec![200, 200],
        ),
        (
            "a Connection value with obs-text has no keep-alive token",
            b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive, \xff\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n".to_vec(),
            vec![200],
        ),
        (
            "a bad Host after a good request",
            b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n".to_vec(),
            vec![200, 400],
        ),
    ];
    for (name, bytes, want) in cases {
        let fast = exchange(p.fast.addr, &bytes).await;
        let hyper = exchange(p.hyper.addr, &bytes).await;
        assert_eq!(fast, hyper, "{name}");
        assert_eq!(statuses(&fast), want, "{name}: {fast}");
    }
}

/// A body that is not there whole when its head is read goes to hyper
/// with the head (and hyper's body timeouts), on the same connection.
#[tokio::test]
async fn a_body_sent_after_its_head_is_read_by_hyper() {
    let p = pair().await;
    let mut answers = Vec::new();
    for server in [&p.fast, &p.hyper] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(b"world").await.unwrap();
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        answers.push(comparable(&String::from_utf8_lossy(&out)));
    }
    assert_eq!(statuses(&answers[0]), [200, 200, 200], "{}", answers[0]);
    assert!(answers[0].contains(r#""body_len":10"#), "{}", answers[0]);
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn a_post_after_fast_gets_is_served_on_the_same_connection() {
    let p = pair().await;
    let bytes = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n\
POST /api/form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /api/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = exchange(p.fast.addr, bytes).await;
    assert_eq!(statuses(&out), [200, 200, 200, 200], "{out}");
    assert!(
        out.contains(r#""method":"POST""#) && out.contains(r#""body_len":5"#),
        "{out}"
    );
    assert!(out.contains(r#""uri":"/after""#), "{out}");
    // A chunked body the same way.
    let bytes = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
POST /api/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = exchange(p.fast.addr, bytes).await;
    assert_eq!(statuses(&out), [200, 200, 200], "{out}");
    assert!(out.contains(r#""body_len":3"#), "{out}");
}

#[tokio::test]
async fn smuggling_after_a_fast_get_is_judged_by_hyper() {
    let p = pair().await;
    let first = "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let hidden = "GET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let get_with_body = format!(
        "GET /api/get-body HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{hidden}GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        hidden.len()
    );
    for (name, attack, want) in [
        (
            // hyper: chunked wins, Content-Length is dropped, and the
            // connection closes after: the hidden GET is never served.
            "CL and TE",
            "POST /api/cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 200],
        ),
        (
            "TE and CL",
            "POST /api/te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 200],
        ),
        (
            "two different lengths",
            "POST /api/two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhelloGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 400],
        ),
        (
            // The body is a request: hyper reads it as a body.
            "a GET with a length and a body",
            &get_with_body,
            vec![200, 200, 200],
        ),
        (
            "Transfer-Encoding spelt oddly",
            "POST /api/odd HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 400],
        ),
        (
            "a space before the colon",
            "POST /api/space HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 400],
        ),
        (
            "obs-fold",
            "GET /api/fold HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            vec![200, 400],
        ),
    ] {
        let attack: &str = attack;
        let bytes = format!("{first}{attack}");
        let fast = exchange(p.fast.addr, bytes.as_bytes()).await;
        let hyper = exchange(p.hyper.addr, bytes.as_bytes()).await;
        assert_eq!(fast, hyper, "{name}");
        assert_eq!(statuses(&fast), want, "{name}: {fast}");
        assert!(!fast.contains("/smuggled"), "{name}: {fast}");
    }
}

#[tokio::test]
async fn an_oversized_head_after_a_fast_get_gets_431() {
    let p = pair().await;
    // max_header_bytes is 64 KiB by default. (hyper applies it to its
    // read buffer: a head a little over it may pass when it arrives whole,
    // so this is not compared with hyper's answer.)
    for size in [70 * 1024, 64 * 1024] {
        let bytes = format!(
            "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let fast = exchange(p.fast.addr, bytes.as_bytes()).await;
        assert_eq!(statuses(&fast), [200, 431], "{size}: {fast}");
        assert!(
            fast.ends_with("431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"),
            "{fast}"
        );
    }
    // More header lines than hyper takes, on a fresh connection.
    let mut many = String::from("GET /a.txt HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let fast = exchange(p.fast.addr, many.as_bytes()).await;
    assert_eq!(fast, exchange(p.hyper.addr, many.as_bytes()).await);
    assert_eq!(statuses(&fast), [431], "{fast}");
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_served() {
    let p = pair().await;
    let mut s = tokio::net::TcpStream::connect(p.fast.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for b in b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert_eq!(statuses(&out), [200], "{out}");
    assert!(out.ends_with("\r\n\r\nhello\n"), "{out}");
}

/// `bext_connections_open` now (the scrape's own connection included).
async fn connections_open(addr: SocketAddr) -> f64 {
    let samples = crate::metrics::scrape_as(addr, TOKEN).await;
    crate::metrics::value(&samples, "bext_connections_open", &[]).expect("bext_connections_open")
}

#[tokio::test]
async fn a_client_that_closes_while_its_request_waits_frees_the_connection() {
    let p = pair().await;
    for server in [&p.fast, &p.hyper] {
        // The upstream takes 20 s; the client leaves after its request.
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /api/slow/20000 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        eventually(Duration::from_secs(5), || async {
            (connections_open(server.addr).await == 2.0).then_some(())
        })
        .await;
        drop(s);
        // Only the scrape's own connection is left, long before 20 s.
        eventually(Duration::from_secs(5), || async {
            (connections_open(server.addr).await == 1.0).then_some(())
        })
        .await;
    }
}

/// A client that pipelines a second request behind a slow one and then
/// half-closes gets the first answer: hyper stops watching for the
/// client's close once bytes of a next request are buffered. (What becomes
/// of the second is not compared: hyper drops it when it sees the close
/// before the answer is ready.)
#[tokio::test]
async fn a_half_close_behind_pipelined_requests_still_gets_the_first_answer() {
    let p = pair().await;
    for server in [&p.fast, &p.hyper] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /api/slow/300 HTTP/1.1\r\nHost: x\r\n\r\nGET /api/second HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(statuses(&out).first(), Some(&200), "{}: {out}", server.addr);
        assert!(out.contains(r#""uri":"/slow/300""#), "{out}");
    }
}

/// A fast-path connection quiet for longer than `IDLE_WAKE` (3 s) ends its
/// busy period and gives back its buffers and everything a request held
/// (kernel/src/server/h1/mod.rs); the next bytes start a new one. After
/// each pause the connection must answer byte for byte as hyper does: a
/// head larger than the read buffer, pipelined requests, a body handed to
/// hyper; and a head that was half sent when the pause began is kept and
/// completed, not dropped with the buffers.
#[tokio::test]
async fn a_connection_quiet_past_its_release_serves_as_before() {
    let p = pair().await;
    let big_head = format!(
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(12_000)
    );
    // Each round's bytes and how many answers they get.
    let rounds: Vec<(Vec<u8>, usize)> = vec![
        (b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 1),
        (big_head.clone().into_bytes(), 1),
        (
            b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            2,
        ),
        (
            format!("{big_head}POST /api/form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").into_bytes(),
            2,
        ),
    ];
    let mut answers = Vec::new();
    for server in [&p.fast, &p.hyper] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut out = Vec::new();
        let mut expected = 0;
        for (i, (bytes, answers)) in rounds.iter().enumerate() {
            if i > 0 {
                // Past `IDLE_WAKE`: the busy period ends.
                tokio::time::sleep(Duration::from_millis(4500)).await;
            }
            s.write_all(bytes).await.unwrap();
            expected += answers;
            read_answers(&mut s, &mut out, expected).await;
        }
        // Half a head when the connection goes quiet: kept, then finished.
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(Duration::from_millis(4500)).await;
        s.write_all(b"st: x\r\nConnection: close\r\n\r\n").await.unwrap();
        s.read_to_end(&mut out).await.unwrap();
        answers.push(comparable(&String::from_utf8_lossy(&out)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        statuses(&answers[0]),
        [200, 200, 200, 200, 200, 200, 200],
        "{}",
        answers[0]
    );
    assert!(answers[0].contains(r#""body_len":5"#), "{}", answers[0]);
}

/// Reads until `out` holds `n` whole answers (each with a
/// `content-length`).
async fn read_answers(s: &mut tokio::net::TcpStream, out: &mut Vec<u8>, n: usize) {
    let whole = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        let mut rest: &str = &text;
        let mut count = 0;
        while let Some(end) = rest.find("\r\n\r\n") {
            let head = rest[..end].to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if rest.len() < end + 4 + len {
                break;
            }
            rest = &rest[end + 4 + len..];
            count += 1;
        }
        count
    };
    let mut buf = vec![0u8; 65536];
    while whole(out) < n {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the answers in time")
            .unwrap();
        assert!(read > 0, "closed after {}", String::from_utf8_lossy(out));
        out.extend_from_slice(&buf[..read]);
    }
}

/// An upstream answering every request with one head of every kind of
/// field line: names in any case, a cookie set twice, a field its
/// `Connection` names, hop-by-hop fields, a value with spaces around it,
/// its own date, a line ending in a bare LF. `/split` answers with a name
/// that comes back after another (a map groups those).
async fn fields_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    raw_upstream(|head| {
        let fields = if head.windows(6).any(|w| w == b"/split") {
            "Set-Cookie: a=1\r\nX-Between: 1\r\nset-cookie: b=2\r\n"
        } else {
            "Server: up/1.0\r\nDate: Mon, 07 Dec 2026 02:00:00 GMT\r\nSET-COOKIE: a=1\r\n\
             Set-Cookie: b=2; Path=/\r\nX-Secret: 1\r\nConnection: X-Secret, keep-alive\r\n\
             Keep-Alive: timeout=5\r\nX-Spaced:   v  w  \r\nx-bare-lf: 1\nLocation: /there\r\n"
        };
        let body = if head.starts_with(b"HEAD ") { "" } else { "hello" };
        format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 5\r\n\r\n{body}")
    })
    .await
}

/// An upstream's fields reach the client the same whether the fast path
/// copies them as they came (no `on_response` hook: `plain`) or hyper
/// writes them from the map built of them, and the same as the fast path
/// writes them once a hook needed the map (`hooked`).
#[tokio::test]
async fn an_upstreams_fields_read_the_same_copied_or_from_a_map() {
    let (up, _task) = fields_upstream().await;
    let site = Site::new();
    // deploy's `on_response` would need the map for every answer.
    site.write("manifests/deploy.yaml", "name: deploy\nenabled: false\n");
    let platform = |fast: bool| {
        format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\nhttp1_fast_path = {fast}\n\
             [apps.plain]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n\
             [apps.hooked]\nruntime = \"proxy\"\nupstream = \"http://{up}\"\n\
             [apps.hooked.plugins.request-id]\nenabled = true\n"
        )
    };
    let fast = Bext::serve(&site.write("fast.toml", platform(true)));
    let hyper = Bext::serve(&site.write("hyper.toml", platform(false)));
    let cases: [(&str, &str, usize); 3] = [
        (
            "keep-alive GET, HEAD, then a GET that closes",
            "GET /{app}/a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /{app}/a HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /{app}/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            3,
        ),
        (
            "HTTP/1.0",
            "GET /{app}/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /{app}/a HTTP/1.0\r\n\r\n",
            2,
        ),
        (
            "a name that comes back",
            "GET /{app}/split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            1,
        ),
    ];
    for (name, template, answers) in cases {
        let plain = template.replace("{app}", "plain");
        let copied = exchange(fast.addr, plain.as_bytes()).await;
        assert_eq!(statuses(&copied), vec![200; answers], "{name}: {copied}");
        assert_eq!(copied, exchange(hyper.addr, plain.as_bytes()).await, "{name}");
        let hooked = template.replace("{app}", "hooked");
        assert_eq!(copied, exchange(fast.addr, hooked.as_bytes()).await, "{name}");
    }
    let copied = raw_async(
        fast.addr,
        b"GET /plain/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        copied,
        "HTTP/1.1 200 OK\r\nserver: up/1.0\r\ndate: Mon, 07 Dec 2026 02:00:00 GMT\r\nset-cookie: a=1\r\n\
         set-cookie: b=2; Path=/\r\nx-spaced: v  w\r\nx-bare-lf: 1\r\nlocation: /there\r\n\
         content-length: 5\r\nconnection: close\r\n\r\nhello"
    );
    let split = raw_async(
        fast.addr,
        b"GET /plain/split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        split.contains("\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-between: 1\r\n"),
        "grouped as a map groups them: {split}"
    );
}
