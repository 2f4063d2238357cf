//! Streamed bodies of JS apps through the real server: server-sent events
//! read by a real client before the stream ends (HTTP/1.1 and h2), a
//! client that stops reading (backpressure), the call's timeout cutting a
//! stream, and the npm apps that stream (React) or just run (Preact,
//! itty-router), bundled as the Hono example is.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::*;

const SSE: &str = r#"
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/events') {
      // One event now, then one every 50 ms, forever: only the timeout ends it.
      let n = 0, timer;
      const body = new ReadableStream({
        start(c) {
          const send = () => c.enqueue(new TextEncoder().encode(`id: ${++n}\ndata: tick ${n}\n\n`));
          send();
          timer = setInterval(send, 50);
        },
        cancel() { clearInterval(timer); },
      });
      return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } });
    }
    if (url.pathname === '/flood') {
      // 64 KiB chunks as fast as they are asked for, counted in the log.
      let made = 0;
      return new Response(new ReadableStream({
        pull(c) {
          made++;
          if (made % 16 === 0) console.log(`flood made ${made}`);
          c.enqueue(new Uint8Array(65536));
        },
      }, { highWaterMark: 0 }));
    }
    if (url.pathname === '/bad-first') {
      // Not bytes, before anything was sent: a 500, not an empty 200.
      return new Response(new ReadableStream({ start(c) { c.enqueue({ length: 1e9 }); c.close(); } }));
    }
    if (url.pathname === '/bad-later') {
      return new Response(new ReadableStream({ start(c) {
        c.enqueue(new TextEncoder().encode('first '));
        setTimeout(() => { c.enqueue({ length: 1e9 }); c.close(); }, 10);
      } }));
    }
    if (url.pathname === '/late') {
      return new Response(new ReadableStream({ start(c) {
        setTimeout(() => { c.enqueue(new TextEncoder().encode('late')); c.close(); }, 10);
      } }));
    }
    if (url.pathname === '/closed') return new Response(new ReadableStream({ start(c) { c.close(); } }));
    if (url.pathname === '/upload') {
      // The request body as a stream, through a TransformStream.
      let bytes = 0;
      await request.body.pipeTo(new WritableStream({ write(chunk) { bytes += chunk.length; } }));
      return Response.json({ bytes });
    }
    return new Response('ok');
  },
};
"#;

fn sse_platform(s: &Site, isolate: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("sse/index.js", SSE);
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.sse]\nruntime = \"js\"\nsource = \"sse\"\ndomains = [\"sse.test\"]\nisolate = {{ {isolate} }}\n"
    ))
}

/// An SSE stream that never ends on its own: the client reads the first
/// events while it is open, and the call's `timeout` cuts it (the body
/// ends in an error, not a clean end), on HTTP/1.1 (chunked) and h2.
#[tokio::test]
async fn server_sent_events_stream_until_the_timeout_cuts_them() {
    let s = Site::new();
    let b = Bext::serve(&sse_platform(&s, "workers = 2, timeout = \"2s\""));

    let (mut h1, _c1) = h1_client(b.addr).await;
    let req = Request::get("/events")
        .header("host", "sse.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = h1.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["transfer-encoding"], "chunked");
    let mut body = res.into_body();
    let first = read_until(&mut body, "\n\n").await;
    assert!(first.starts_with("id: 1\ndata: tick 1\n\n"), "{first:?}");
    read_until(&mut body, "data: tick 3\n\n").await;
    assert!(
        read_to_end(&mut body).await.is_err(),
        "a stream cut at the timeout must not look complete"
    );

    let (mut h2, _c2) = h2_client(b.addr).await;
    let req = Request::get("http://sse.test/events")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    read_until(&mut body, "data: tick 2\n\n").await;
    assert!(read_to_end(&mut body).await.is_err());

    // The app still answers after its streams were cut.
    assert_eq!(get(b.addr, "sse.test", "/").await.text(), "ok");
    assert!(b.log().contains("timed out"), "{}", b.log());
}

/// A chunk that is not bytes fails the request with 500 when nothing was
/// sent yet (the head waits for a first chunk the stream already holds,
/// never for one still to come); after the first bytes it cuts the
/// response, which never looks complete.
#[tokio::test]
async fn a_stream_chunk_that_is_not_bytes_is_an_error() {
    let s = Site::new();
    let b = Bext::serve(&sse_platform(&s, "workers = 1"));
    let r = get(b.addr, "sse.test", "/bad-first").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.body.len() < 100, "an error page: {}", r.text());
    eventually(Duration::from_secs(5), || async {
        b.log()
            .contains("a body stream chunk must be a Uint8Array")
            .then_some(())
    })
    .await;

    let (mut h1, _c) = h1_client(b.addr).await;
    let req = Request::get("/bad-later")
        .header("host", "sse.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = h1.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    read_until(&mut body, "first ").await;
    assert!(read_to_end(&mut body).await.is_err(), "cut, not complete");

    for (path, text) in [("/late", "late"), ("/closed", "")] {
        let r = get(b.addr, "sse.test", path).await;
        assert_eq!((r.status, r.text()), (200, text.to_owned()), "{path}");
    }
    assert_eq!(get(b.addr, "sse.test", "/").await.text(), "ok");
}

/// A client that sends a request and never reads the answer leaves bounded
/// memory in bext: the handler's `pull` stops being called once the
/// socket's buffers and the few chunks in flight are full, until the
/// timeout ends the stream.
#[tokio::test]
async fn a_client_that_does_not_read_pauses_the_handler() {
    let s = Site::new();
    let b = Bext::serve(&sse_platform(&s, "workers = 1, timeout = \"3s\""));
    let mut socket = std::net::TcpStream::connect(b.addr).unwrap();
    socket
        .write_all(b"GET /flood HTTP/1.1\r\nhost: sse.test\r\n\r\n")
        .unwrap();
    // Never read; wait for the stream to be cut at its timeout.
    eventually(Duration::from_secs(30), || async {
        b.log().contains("timed out").then_some(())
    })
    .await;
    let made = b
        .log()
        .lines()
        .filter_map(|l| l.split("flood made ").nth(1))
        .filter_map(|n| n.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let made_bytes = made * 65536;
    println!("flood: {made} chunks of 64 KiB made for a client that read nothing");
    // Loopback socket buffers take a few MiB at most; without
    // backpressure 3 s of this loop make gigabytes.
    assert!(
        made_bytes < 48 << 20,
        "{made} chunks ({made_bytes} bytes) made for a client that read nothing"
    );
    drop(socket);
    // The one isolate is free again.
    assert_eq!(get(b.addr, "sse.test", "/").await.text(), "ok");
}

/// `request.body` is a ReadableStream; the body limit still applies.
#[tokio::test]
async fn a_request_body_is_a_stream_within_the_body_limit() {
    let s = Site::new();
    let b = Bext::serve(&sse_platform(&s, "workers = 1"));
    let r = send(
        b.addr,
        request("POST", "/upload", &[("host", "sse.test")], vec![7u8; 300_000]),
    )
    .await;
    assert_eq!(r.json(), serde_json::json!({ "bytes": 300000 }));

    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("sse/index.js", SSE);
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[platform.limits]\nmax_body_bytes = \"1KiB\"\n\n[apps.sse]\nruntime = \"js\"\nsource = \"sse\"\ndomains = [\"sse.test\"]\n",
    );
    let b = Bext::serve(&cfg);
    let r = send(
        b.addr,
        request("POST", "/upload", &[("host", "sse.test")], vec![7u8; 4096]),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
}

fn bundle(example: &str) -> std::path::PathBuf {
    let dist = repo().join("examples/apps").join(example).join("dist");
    assert!(
        dist.join("index.js").is_file(),
        "missing {}: run `npm ci && npm run build` in examples/apps/{example}",
        dist.display()
    );
    dist
}

fn npm_app_platform(s: &Site, example: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.web]\nruntime = \"js\"\nsource = \"{}\"\ndomains = [\"web.test\", \"*.web.test\"]\nisolate = {{ workers = 1 }}\n",
        bundle(example).display()
    ))
}

/// React 19's `renderToReadableStream`, unmodified: the shell with the
/// Suspense fallback arrives first, the menu when its data resolves.
#[tokio::test]
async fn a_react_page_streams_its_shell_before_its_data() {
    let s = Site::new();
    let b = Bext::serve(&npm_app_platform(&s, "react-ssr"));
    let (mut h1, _c) = h1_client(b.addr).await;
    let req = Request::get("/?delay=1000")
        .header("host", "acme.web.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = h1.send_request(req).await.unwrap();
    the_react_menu_streams(res).await;

    // Many pages in a row from the one isolate, and over h2.
    for _ in 0..3 {
        let r = get(b.addr, "globex.web.test", "/?delay=0").await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("<li>cortado</li>"), "{}", r.text());
    }
    let r = send_h2(
        b.addr,
        Request::get("http://web.test/?delay=0").body(Full::default()).unwrap(),
    )
    .await;
    assert!(r.text().contains("Welcome to café <!-- -->bext"), "{}", r.text());
}

/// Preact with preact-render-to-string, unmodified.
#[tokio::test]
async fn a_preact_page_renders_on_the_server() {
    let s = Site::new();
    let b = Bext::serve(&npm_app_platform(&s, "preact-ssr"));
    let r = get(b.addr, "acme.web.test", "/?item=tea&item=cake").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.starts_with("<!doctype html><html lang=\"en\">"), "{html}");
    assert!(html.contains("<h1>Shop acme</h1>"), "{html}");
    assert!(html.contains("<p id=\"count\">Count: 2</p>"), "{html}");
    assert!(html.contains("<li>tea</li><li>cake</li>"), "{html}");
    let r = get(b.addr, "web.test", "/api/items?item=x").await;
    assert_eq!(r.json(), serde_json::json!({ "tenant": "bext", "items": ["x"] }));
    let r = get(b.addr, "web.test", "/?item=%3Cscript%3E").await;
    assert!(
        r.text().contains("<li>&lt;script></li>"),
        "text is escaped: {}",
        r.text()
    );
}

/// itty-router's `AutoRouter`, unmodified.
#[tokio::test]
async fn an_itty_router_app_routes() {
    let s = Site::new();
    let b = Bext::serve(&npm_app_platform(&s, "itty-router"));
    assert_eq!(get(b.addr, "acme.web.test", "/").await.json(), "hello acme");
    let r = get(b.addr, "web.test", "/api/items/42?sort=asc").await;
    assert_eq!(
        r.json(),
        serde_json::json!({ "id": "42", "tenant": "public", "sort": "asc" })
    );
    let post = |body: &'static str| {
        send(
            b.addr,
            request(
                "POST",
                "/api/items",
                &[("host", "acme.web.test"), ("content-type", "application/json")],
                body,
            ),
        )
    };
    let r = post(r#"{"name":"lamp"}"#).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), serde_json::json!({ "created": "lamp", "tenant": "acme" }));
    assert_eq!(post("not json").await.status, 400);
    assert_eq!(get(b.addr, "web.test", "/missing").await.status, 404);
    assert_eq!(get(b.addr, "web.test", "/boom").await.status, 500);
}

/// An upstream whose chunked body sends `first\n`, then waits for the test
/// (`release`) before `second\n` and its end; it counts connections the
/// client closed in the middle of the body.
struct SlowUpstream {
    addr: std::net::SocketAddr,
    release: std::sync::Arc<tokio::sync::Notify>,
    closed_early: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl SlowUpstream {
    async fn start() -> SlowUpstream {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let closed_early = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, c) = (release.clone(), closed_early.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (release, closed_early) = (r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let start = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst\n\r\n";
                    if conn.write_all(start).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = release.notified() => {
                            let _ = conn.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n").await;
                        }
                        n = conn.read(&mut buf) => {
                            if matches!(n, Ok(0) | Err(_)) {
                                closed_early.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        SlowUpstream {
            addr,
            release,
            closed_early,
            _task: task,
        }
    }
}

const FETCHER: &str = r#"
export default {
  async fetch(request) {
    const u = new URL(request.url);
    const to = u.searchParams.get('to');
    if (u.pathname === '/first') {
      // Reads the first chunk of a body that has not ended, then gives up on it.
      const r = await fetch(to);
      const reader = r.body.getReader();
      const { value } = await reader.read();
      await reader.cancel();
      return new Response(`${r.status} ${new TextDecoder().decode(value)}`);
    }
    if (u.pathname === '/proxy') return fetch(to);
    return new Response('?');
  },
};
"#;

/// `fetch()`'s `response.body` is a stream: a handler reads the first
/// chunk of an upstream body that has not ended (buffered, the fetch would
/// wait for the end), cancelling it closes the upstream connection, and a
/// fetched body passed on as the response streams through to the client.
#[tokio::test]
async fn fetched_bodies_stream_in_and_out() {
    use std::sync::atomic::Ordering;
    let up = SlowUpstream::start().await;
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("f/index.js", FETCHER);
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.f]\nruntime = \"js\"\nsource = \"f\"\ndomains = [\"f.test\"]\nisolate = {{ workers = 1, timeout = \"20s\", fetch = {{ allow = [\"127.0.0.1:{}\"] }} }}\n",
        up.addr.port()
    ));
    let b = Bext::serve(&cfg);
    let to = format!("http://127.0.0.1:{}/", up.addr.port());

    let r = get(b.addr, "f.test", &format!("/first?to={to}")).await;
    assert_eq!((r.status, r.text()), (200, "200 first\n".to_owned()));
    eventually(Duration::from_secs(10), || async {
        (up.closed_early.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    let (mut h1, _c) = h1_client(b.addr).await;
    let req = Request::get(format!("/proxy?to={to}"))
        .header("host", "f.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = h1.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
    let mut body = res.into_body();
    assert_eq!(read_until(&mut body, "first\n").await, "first\n");
    up.release.notify_one();
    assert_eq!(read_until(&mut body, "second\n").await, "second\n");
    read_to_end(&mut body).await.unwrap();
}
