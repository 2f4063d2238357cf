//! Cache poisoning through what the isr key leaves out, in the real
//! server in front of an app that reflects its request (query and body)
//! in cacheable pages:
//! - M2: tracking parameters left out of the key never reach the app on a
//!   request that goes through the cache (a miss, a background refresh, a
//!   revalidation); a query with `;` is not cached; repeated names keep
//!   their order in the key;
//! - M3: a GET with a body (Content-Length, chunked, HTTP/2 DATA) passes
//!   the cache by;
//! - M4: so a client trickling a body can never be the one request a cold
//!   key's other clients wait for;
//! - L9: `invalidate` and `revalidate` read paths in the kernel's form.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// An app whose pages say what it was asked: `uri=<target> body=<body>
/// n=<count>`, `Cache-Control: public, max-age=60`. It counts a request
/// (per path) when its head arrives, then reads the body before answering.
struct Reflect {
    addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

impl Reflect {
    async fn start() -> Reflect {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let counts = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counts = counts.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let counts = counts.clone();
                        async move { Ok::<_, Infallible>(reflect(&counts, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Reflect { addr, seen }
    }

    fn count(&self, path: &str) -> u32 {
        self.seen.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn reflect(
    counts: &Mutex<HashMap<String, u32>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let n = {
        let mut c = counts.lock().unwrap();
        let n = c.entry(req.uri().path().to_owned()).or_default();
        *n += 1;
        *n
    };
    let uri = req.uri().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let page = format!("uri={uri} body={} n={n}", String::from_utf8_lossy(&body));
    http::Response::builder()
        .header("content-type", "text/plain")
        .header("cache-control", "public, max-age=60")
        .body(Full::new(Bytes::from(page)))
        .unwrap()
}

/// The shop proxy app with isr on (`isr_config` lines added) and the admin
/// token `sekret`.
fn serve(s: &Site, upstream: SocketAddr, isr_config: &str) -> Bext {
    s.write(
        "manifests/isr.yaml",
        format!("name: isr\nenabled: true\nconfig:\n{isr_config}"),
    );
    Bext::serve_env(&shop_platform(s, upstream), &[("BEXT_ADMIN_TOKEN", "sekret")])
}

async fn fetch(b: &Bext, path: &str) -> Reply {
    send(b.addr, request("GET", path, &[("host", "shop.test")], "")).await
}

async fn admin(b: &Bext, action: &str, body: &str) -> Reply {
    send(
        b.addr,
        request(
            "POST",
            &format!("/__bext/api/{action}"),
            &[("host", "shop.test"), ("authorization", "Bearer sekret")],
            body.to_owned(),
        ),
    )
    .await
}

/// M2, first repro: a reflected tracking parameter is not in the key, so
/// it must not be in the page stored under it.
#[tokio::test]
async fn ignored_parameters_never_reach_the_app() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    let poisoned = fetch(&b, "/page?utm_source=%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(poisoned.header("x-cache"), Some("MISS"));
    assert!(poisoned.text().starts_with("uri=/page body="), "{}", poisoned.text());
    let clean = fetch(&b, "/page").await;
    assert_eq!(clean.header("x-cache"), Some("HIT"));
    assert!(!clean.text().contains("script"), "{}", clean.text());

    // The app is asked for the query the key holds: sorted by name,
    // tracking tags (any spelling of their names) gone.
    let sorted = fetch(&b, "/order?b=2&utm_medium=x&fbclid=1&utm%5Fcampaign=y&a=1").await;
    assert!(sorted.text().starts_with("uri=/order?a=1&b=2 "), "{}", sorted.text());
    assert_eq!(fetch(&b, "/order?a=1&b=2").await.header("x-cache"), Some("HIT"));
}

/// M2, second repro: `utm_x=1;lang=fr` is one ignored pair to some apps
/// and `lang=fr` to others; such a query is not cached at all.
#[tokio::test]
async fn queries_with_semicolons_are_not_cached() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    let first = fetch(&b, "/page2?utm_x=1;lang=fr").await;
    assert_eq!(first.header("x-cache"), Some("BYPASS"));
    let plain = fetch(&b, "/page2").await;
    assert_eq!(plain.header("x-cache"), Some("MISS"));
    assert!(!plain.text().contains("lang=fr"), "{}", plain.text());
    assert_eq!(up.count("/page2"), 2);
}

/// M2, third repro: apps that read the first value and apps that read
/// the last both get their own page for each order.
#[tokio::test]
async fn repeated_names_keep_their_order_in_the_key() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    let one_two = fetch(&b, "/page3?a=1&a=2").await;
    let two_one = fetch(&b, "/page3?a=2&a=1").await;
    assert_eq!(
        (one_two.header("x-cache"), two_one.header("x-cache")),
        (Some("MISS"), Some("MISS"))
    );
    assert!(one_two.text().starts_with("uri=/page3?a=1&a=2 "), "{}", one_two.text());
    assert!(two_one.text().starts_with("uri=/page3?a=2&a=1 "), "{}", two_one.text());
    let again = fetch(&b, "/page3?a=2&a=1").await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.text(), two_one.text());
}

/// M2: the background refresh of a stale entry and an admin revalidation
/// ask the app for the keyed query too.
#[tokio::test]
async fn refreshes_and_revalidations_ask_for_the_keyed_query() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "  rules:\n    - { path: /r/*, ttl: 1s, swr: 1h }\n");
    assert_eq!(fetch(&b, "/r/x?k=1").await.header("x-cache"), Some("MISS"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = fetch(&b, "/r/x?k=1&utm_source=evil").await;
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    let refreshed = eventually(Duration::from_secs(5), || async {
        let r = fetch(&b, "/r/x?k=1").await;
        r.text().contains("n=2").then_some(r)
    })
    .await;
    assert!(refreshed.text().starts_with("uri=/r/x?k=1 "), "{}", refreshed.text());

    let r = admin(
        &b,
        "revalidate",
        r#"{"app":"shop","path":"/v/y?utm_source=evil&k=1","host":"shop.test"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["stored"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    let hit = fetch(&b, "/v/y?k=1").await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.text().starts_with("uri=/v/y?k=1 "), "{}", hit.text());
    let semi = admin(&b, "revalidate", r#"{"app":"shop","path":"/v/y?k=1;a=2"}"#).await;
    assert_eq!(semi.status, 400, "{}", semi.text());
}

/// M3: a body is not in the key, so a GET with one (any framing) is
/// neither served from nor stored in the cache.
#[tokio::test]
async fn gets_with_bodies_pass_the_cache_by() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    let host = [("host", "shop.test")];

    // Content-Length.
    let fat = send(b.addr, request("GET", "/fat", &host, "q=evil")).await;
    assert_eq!(fat.header("x-cache"), Some("BYPASS"));
    assert!(fat.text().contains("body=q=evil"), "{}", fat.text());
    let clean = fetch(&b, "/fat").await;
    assert_eq!(clean.header("x-cache"), Some("MISS"));
    assert!(!clean.text().contains("evil"), "{}", clean.text());
    let fat_again = send(b.addr, request("GET", "/fat", &host, "q=evil")).await;
    assert_eq!(fat_again.header("x-cache"), Some("BYPASS"), "nor served from it");

    // Chunked.
    let chunked = raw_async(
        b.addr,
        b"GET /chunked HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\nq=evil\r\n0\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status_of(&chunked), 200, "{chunked}");
    assert!(chunked.to_ascii_lowercase().contains("x-cache: bypass"), "{chunked}");
    let clean = fetch(&b, "/chunked").await;
    assert_eq!(clean.header("x-cache"), Some("MISS"));
    assert!(!clean.text().contains("evil"), "{}", clean.text());

    // HTTP/2 with a DATA frame (hyper adds a content-length for a sized body).
    let h2 = send_h2(b.addr, request("GET", "http://shop.test/h2", &[], "q=evil")).await;
    assert_eq!(h2.header("x-cache"), Some("BYPASS"));
    let clean = send_h2(b.addr, request("GET", "http://shop.test/h2", &[], "")).await;
    assert_eq!(clean.header("x-cache"), Some("MISS"));
    assert!(!clean.text().contains("evil"), "{}", clean.text());

    // HTTP/2 with a body of unknown length: no content-length, only the
    // HEADERS frame without END_STREAM says a body follows.
    let stream = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let frames = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from("q=evil")))]);
    let req = http::Request::get("http://shop.test/h2-stream")
        .body(StreamBody::new(frames))
        .unwrap();
    assert!(!req.headers().contains_key("content-length"));
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.headers().get("x-cache").unwrap(), "BYPASS");
    res.into_body().collect().await.unwrap();
    let clean = send_h2(b.addr, request("GET", "http://shop.test/h2-stream", &[], "")).await;
    assert_eq!(clean.header("x-cache"), Some("MISS"));
    assert!(!clean.text().contains("evil"), "{}", clean.text());
}

/// M4: a GET whose body trickles in one byte at a time is never the one
/// request for a cold key that the others wait for (`wait_timeout` is an
/// hour here); a body-less request for the key goes to the app at once.
/// Both sizes: a body over the proxy's gather limit (64 KiB) streams, so
/// its head reaches the app first; a smaller one is gathered by the proxy
/// while it trickles, so the app never hears of it.
#[tokio::test]
async fn a_trickled_body_cannot_hold_a_cold_key() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "  wait_timeout: 1h\n");
    for (path, length) in [("/trickle-streamed", 100_000), ("/trickle-gathered", 1_000)] {
        let mut slow = tokio::net::TcpStream::connect(b.addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {length}\r\n\r\nq");
        slow.write_all(head.as_bytes()).await.unwrap();
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if slow.write_all(b"q").await.is_err() {
                    return;
                }
            }
        });
        if length > 64 * 1024 {
            // Its head reached the app: it is past the cache.
            eventually(Duration::from_secs(10), || async {
                (up.count(path) == 1).then_some(())
            })
            .await;
        } else {
            // Give it time to pass the cache into the proxy's gathering
            // (not a measurement: the assertions hold either way).
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // A bound to fail on, far below `wait_timeout`, not a measurement.
        let other = tokio::time::timeout(Duration::from_secs(30), fetch(&b, path))
            .await
            .expect("held behind the trickling request");
        assert_eq!(other.header("x-cache"), Some("MISS"), "{path}");
        let expected = format!("uri={path} body= ");
        assert!(other.text().starts_with(&expected), "{path}: {}", other.text());
        assert_eq!(fetch(&b, path).await.header("x-cache"), Some("HIT"), "{path}");
        if length <= 64 * 1024 {
            assert_eq!(up.count(path), 1, "the gathered request never reached the app");
        }
        trickle.abort();
    }
}

/// L9: `/café`, `/caf%c3%a9` and `/caf%C3%A9` are one path to the kernel,
/// so to `invalidate` too; a path the kernel would refuse is a 400.
#[tokio::test]
async fn invalidation_reads_paths_in_the_kernels_form() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    for given in ["/caf%c3%a9", "/café", "//x/../caf%C3%A9"] {
        fetch(&b, "/caf%C3%A9").await;
        assert_eq!(fetch(&b, "/caf%c3%a9").await.header("x-cache"), Some("HIT"));
        let body = serde_json::json!({ "paths": [given] }).to_string();
        let r = admin(&b, "invalidate", &body).await;
        assert_eq!((r.status, r.json()["removed"].as_u64()), (200, Some(1)), "{given}");
        assert_eq!(fetch(&b, "/caf%C3%A9").await.header("x-cache"), Some("MISS"), "{given}");
        let r = admin(&b, "invalidate", r#"{"app":"shop"}"#).await;
        assert_eq!(r.status, 200);
    }
    for bad in ["/a%2Fb", "/../etc", "/a%00", "/p?x=1"] {
        let body = serde_json::json!({ "paths": ["/ok", bad] }).to_string();
        let r = admin(&b, "invalidate", &body).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text().contains(bad), "the answer names {bad}: {}", r.text());
    }
    // revalidate takes the same form: the entry it stores is the one
    // clients' requests find.
    let r = admin(
        &b,
        "revalidate",
        r#"{"app":"shop","path":"/caf%c3%a9","host":"shop.test"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["stored"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    let hit = fetch(&b, "/caf%C3%A9").await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.text().starts_with("uri=/caf%C3%A9 "), "{}", hit.text());
    let bad = admin(&b, "revalidate", r#"{"app":"shop","path":"/a%2Fb"}"#).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("/a%2Fb"), "{}", bad.text());
}

/// The port a client writes with the host (`Host: shop.test:443`, an
/// absolute-form target's) reaches the app, which may build links from
/// it, so it is in the key: a page cached for one port is never served to
/// a client that named another port, or none.
#[tokio::test]
async fn the_port_the_client_names_is_part_of_the_key() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    let with_port = |port: &'static str| async move {
        let host = format!("shop.test:{port}");
        send(b.addr, request("GET", "/ported", &[("host", &host)], "")).await
    };
    assert_eq!(with_port("443").await.header("x-cache"), Some("MISS"));
    assert_eq!(with_port("443").await.header("x-cache"), Some("HIT"));
    assert_eq!(
        fetch(&b, "/ported").await.header("x-cache"),
        Some("MISS"),
        "no port named"
    );
    assert_eq!(with_port("7777").await.header("x-cache"), Some("MISS"));
    assert_eq!(fetch(&b, "/ported").await.header("x-cache"), Some("HIT"));
    // An absolute-form target's port wins over Host's, as its host does.
    let absolute = raw_async(
        b.addr,
        b"GET http://shop.test:5555/ported HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(absolute.to_ascii_lowercase().contains("x-cache: miss"), "{absolute}");
    assert_eq!(up.count("/ported"), 4, "one request for each key");
}

/// `revalidate` drops every entry of the path before the app renders it
/// again: a host the app does not answer on is refused (400, naming it)
/// and drops nothing; the app's own host, however spelled, is keyed as
/// clients' requests are.
#[tokio::test]
async fn revalidating_for_a_host_the_app_does_not_serve_is_refused() {
    let up = Reflect::start().await;
    let s = Site::new();
    let b = serve(&s, up.addr, "");
    assert_eq!(fetch(&b, "/page").await.header("x-cache"), Some("MISS"));
    assert_eq!(fetch(&b, "/page").await.header("x-cache"), Some("HIT"));
    let r = admin(&b, "revalidate", r#"{"app":"shop","path":"/page","host":"evil.test"}"#).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("\"evil.test\""), "{}", r.text());
    assert_eq!(
        fetch(&b, "/page").await.header("x-cache"),
        Some("HIT"),
        "nothing dropped"
    );
    assert_eq!(up.count("/page"), 1);

    let r = admin(
        &b,
        "revalidate",
        r#"{"app":"shop","path":"/page","host":"SHOP.test:80"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hit = fetch(&b, "/page").await;
    assert_eq!(hit.header("x-cache"), Some("HIT"), "stored under the clients' key");
    assert!(hit.text().contains("n=2"), "{}", hit.text());

    // A wildcard tenant's host: stored under the tenant its requests are
    // for; a tenant the host is not for is refused.
    let on_w = || send(b.addr, request("GET", "/page", &[("host", "w.shop.test")], ""));
    let r = admin(
        &b,
        "revalidate",
        r#"{"app":"shop","path":"/page","host":"w.shop.test","tenant":"victim"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(
        &b,
        "revalidate",
        r#"{"app":"shop","path":"/page","host":"w.shop.test"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        on_w().await.header("x-cache"),
        Some("HIT"),
        "stored under the tenant's key"
    );
}
