//! Proxy apps with several upstreams: balancing, health, retries and
//! timeouts, against real backends started by the test and killed,
//! slowed or made to reset connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::support::*;

/// A backend answering its own name; `/status/<code>` answers that
/// status, `/healthz` the status in `healthz`. Every answer waits
/// `delay` first. `kill` closes its listener and every connection.
struct Backend {
    addr: SocketAddr,
    healthz: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    kill: tokio::sync::watch::Sender<bool>,
}

impl Backend {
    async fn start(name: &'static str, delay: Duration) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthz = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (kill, dead) = tokio::sync::watch::channel(false);
        let (h, n) = (healthz.clone(), hits.clone());
        tokio::spawn(async move {
            let mut dead_accept = dead.clone();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                    _ = dead_accept.wait_for(|d| *d) => return,
                };
                let (h, n, mut dead) = (h.clone(), n.clone(), dead.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (h, n) = (h.clone(), n.clone());
                        async move {
                            let path = req.uri().path();
                            let (status, body) = if path == "/healthz" {
                                (h.load(Ordering::SeqCst), "")
                            } else {
                                n.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(delay).await;
                                let status = path.strip_prefix("/status/").map_or(200, |s| s.parse().unwrap());
                                (status, name)
                            };
                            let res = http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = dead.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Backend {
            addr,
            healthz,
            hits,
            kill,
        }
    }

    fn kill(&self) {
        self.kill.send_replace(true);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A backend that reads the start of each request, then resets the
/// connection (so the request reached it).
async fn resetting_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                // A zero linger does not block on drop; it sends a reset.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
            });
        }
    });
    addr
}

/// A port nobody listens on.
fn dead_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// bext with one proxy app `api` (the default app) described by `app`.
fn serve_api(app: &str) -> (Site, Bext) {
    let site = Site::new();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\n{app}\n"
    ));
    let b = Bext::serve(&cfg);
    (site, b)
}

/// How many of `n` sequential GETs of `path` each backend name answered.
async fn tally(addr: SocketAddr, host: &str, path: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = get(addr, host, path).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *seen.entry(r.text()).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn weighted_round_robin_spreads_by_weight_and_the_single_upstream_form_still_works() {
    let (a, b) = (
        Backend::start("a", Duration::ZERO).await,
        Backend::start("b", Duration::ZERO).await,
    );
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"{}\", {{ url = \"{}\", weight = 2 }}]",
        a.url(),
        b.url()
    ));
    let seen = tally(bext.addr, "x", "/", 30).await;
    assert_eq!(seen, BTreeMap::from([("a".into(), 10), ("b".into(), 20)]));

    let (_s, bext) = serve_api(&format!("upstream = \"{}\"", a.url()));
    assert_eq!(tally(bext.addr, "x", "/", 3).await, BTreeMap::from([("a".into(), 3)]));
}

#[tokio::test]
async fn consistent_hash_keeps_a_tenant_on_one_backend_whatever_the_hosts_spelling() {
    let (a, b) = (
        Backend::start("a", Duration::ZERO).await,
        Backend::start("b", Duration::ZERO).await,
    );
    let (_s, bext) = serve_api(&format!(
        "domains = [\"*.shop.test\"]\nupstreams = [\"{}\", \"{}\"]\nbalance = \"consistent_hash\"\nhash = \"tenant\"",
        a.url(),
        b.url()
    ));
    let mut used = BTreeMap::new();
    for t in 0..16 {
        let host = format!("t{t}.shop.test");
        let first = get(bext.addr, &host, "/").await.text();
        for spelling in [host.to_uppercase(), format!("{host}."), format!("{host}:80")] {
            assert_eq!(get(bext.addr, &spelling, "/").await.text(), first, "{spelling}");
        }
        *used.entry(first).or_insert(0) += 1;
    }
    assert_eq!(used.len(), 2, "16 tenants all on one backend: {used:?}");

    // By header: the same value, the same backend.
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"{}\", \"{}\"]\nbalance = \"consistent_hash\"\nhash = \"header:x-user\"",
        a.url(),
        b.url()
    ));
    for user in ["u1", "u2", "u3", "u4"] {
        let req = || request("GET", "/", &[("host", "x"), ("x-user", user)], "");
        let first = send(bext.addr, req()).await.text();
        for _ in 0..3 {
            assert_eq!(send(bext.addr, req()).await.text(), first);
        }
    }
}

#[tokio::test]
async fn a_backend_killed_under_load_fails_no_get() {
    let (a, b) = (
        Backend::start("a", Duration::ZERO).await,
        Backend::start("b", Duration::ZERO).await,
    );
    let (_s, bext) = serve_api(&format!("upstreams = [\"{}\", \"{}\"]", a.url(), b.url()));
    let addr = bext.addr;
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        load.spawn(async move {
            let mut statuses = Vec::new();
            // Kept-alive client connections, as load generators use.
            let (mut sender, _conn) = h1_client(addr).await;
            for _ in 0..100 {
                let req = request("GET", "/", &[("host", "x")], "");
                statuses.push(collect(sender.send_request(req).await.unwrap()).await.status);
            }
            statuses
        });
    }
    eventually(Duration::from_secs(10), || async {
        (a.hits.load(Ordering::SeqCst) > 20).then_some(())
    })
    .await;
    a.kill();
    let mut all = Vec::new();
    while let Some(statuses) = load.join_next().await {
        all.extend(statuses.unwrap());
    }
    assert_eq!(all.len(), 400);
    assert!(
        all.iter().all(|&s| s == 200),
        "{:?}",
        all.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );
    // Afterwards every request goes to the one left.
    assert_eq!(tally(addr, "x", "/", 5).await, BTreeMap::from([("b".into(), 5)]));
}

#[tokio::test]
async fn a_resetting_backend_is_ejected_and_only_bodiless_idempotent_requests_are_retried() {
    let reset = resetting_backend().await;
    let good = Backend::start("good", Duration::ZERO).await;
    let (_s, bext) = serve_api(&format!("upstreams = [\"http://{reset}\", \"{}\"]", good.url()));
    // A POST with a body may have reached the backend: never replayed.
    // Round robin sends the first request to the resetting backend.
    let r = send(bext.addr, request("POST", "/", &[("host", "x")], "order=1")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("app `api`"), "{}", r.text());
    assert!(
        !r.text().contains(&reset.to_string()) && !r.text().contains("127.0.0.1"),
        "{}",
        r.text()
    );
    // GETs are retried on the good one until the bad one is ejected.
    for _ in 0..10 {
        assert_eq!(get(bext.addr, "x", "/").await.text(), "good");
    }
}

/// A backend that answers every request `503` on a kept-alive
/// connection, and counts them.
async fn unavailable_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        count.fetch_add(1, Ordering::SeqCst);
                        let answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, answered)
}

/// A GET that one backend answers 503 goes to the other as the client
/// sent it: that backend's base path, the query, the client's headers
/// and bext's forwarding headers, the same as a first attempt gets.
#[tokio::test]
async fn a_retried_get_reaches_the_other_backend_as_a_first_attempt_would() {
    let (down, answered) = unavailable_backend().await;
    let echo = Echo::start().await;
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"http://{down}/old\", \"http://{}/base\"]",
        echo.addr
    ));
    // Whichever backend a request meets first, it reads the same.
    for attempt in 0..4 {
        let r = send(
            bext.addr,
            request("GET", "/x?q=1", &[("host", "site.test"), ("x-client", "kept")], ""),
        )
        .await;
        assert_eq!(r.status, 200, "{attempt}: {}", r.text());
        let seen = r.json();
        assert_eq!(seen["uri"], "/base/x?q=1", "{attempt}");
        let headers = &seen["headers"];
        assert_eq!(headers["x-client"], "kept", "{attempt}");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{attempt}");
        assert_eq!(headers["x-forwarded-host"], "site.test", "{attempt}");
        assert_eq!(headers["x-forwarded-proto"], "http", "{attempt}");
    }
    assert!(
        answered.load(Ordering::SeqCst) >= 1,
        "a request met the 503 and was retried"
    );
}

#[tokio::test]
async fn a_slow_backend_is_504_naming_the_app_and_the_others_are_unaffected() {
    let slow = Backend::start("slow", Duration::from_secs(5)).await;
    let fast = Backend::start("fast", Duration::ZERO).await;
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"{}\", \"{}\"]\nresponse_timeout = \"300ms\"\nretries = 0",
        slow.url(),
        fast.url()
    ));
    let (first, second) = tokio::join!(get(bext.addr, "x", "/"), get(bext.addr, "x", "/"));
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [200, 504]);
    let timed_out = if first.status == 504 { &first } else { &second };
    assert_eq!(timed_out.text(), "app `api`: upstream timed out\n");
    assert!(!timed_out.text().contains(&slow.addr.port().to_string()));

    // With the default retry, a GET that timed out on the slow one is
    // answered by the fast one.
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"{}\", \"{}\"]\nresponse_timeout = \"300ms\"",
        slow.url(),
        fast.url()
    ));
    assert_eq!(
        tally(bext.addr, "x", "/", 4).await,
        BTreeMap::from([("fast".into(), 4)])
    );
}

#[tokio::test]
async fn no_healthy_backend_is_a_fast_503_with_retry_after() {
    let (one, two) = (dead_port(), dead_port());
    let (_s, bext) = serve_api(&format!("upstreams = [\"http://{one}\", \"http://{two}\"]"));
    // Both refuse: the first request tries both and fails with a 502.
    let r = get(bext.addr, "x", "/").await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Both are now ejected: 503 at once, with when to come back.
    let r = get(bext.addr, "x", "/").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.text(), "app `api`: no healthy upstream\n");
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&after), "{after}");
}

#[tokio::test]
async fn active_checks_take_a_backend_out_and_bring_it_back() {
    let a = Backend::start("a", Duration::ZERO).await;
    let b = Backend::start("b", Duration::ZERO).await;
    let (_s, bext) = serve_api(&format!(
        "upstreams = [\"{}\", \"{}\"]\nhealth = {{ path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", healthy = 2, unhealthy = 2 }}",
        a.url(),
        b.url()
    ));
    assert_eq!(tally(bext.addr, "x", "/", 4).await.len(), 2);
    a.healthz.store(500, Ordering::SeqCst);
    let addr = bext.addr;
    eventually(Duration::from_secs(10), || async move {
        (tally(addr, "x", "/", 4).await == BTreeMap::from([("b".into(), 4)])).then_some(())
    })
    .await;
    b.healthz.store(503, Ordering::SeqCst);
    let r = eventually(Duration::from_secs(10), || async move {
        let r = get(addr, "x", "/").await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert!(r.header("retry-after").is_some());
    a.healthz.store(200, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "x", "/").await.text() == "a").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stalled_response_body_is_cut_after_body_timeout() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst")
                    .await;
                // Then nothing, with the connection open.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let (_s, bext) = serve_api(&format!("upstream = \"http://{up}\"\nbody_timeout = \"300ms\""));
    let (mut sender, _conn) = h1_client(bext.addr).await;
    let res = sender
        .send_request(request("GET", "/", &[("host", "x")], ""))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(
        Duration::from_secs(20),
        http_body_util::BodyExt::collect(res.into_body()),
    )
    .await
    .expect("the body is cut, not left hanging");
    assert!(
        body.is_err(),
        "a cut body is an error for the client, not a short success"
    );
}

#[tokio::test]
async fn bad_upstream_settings_are_refused_with_their_field() {
    let site = Site::new();
    for (app, field, reason) in [
        (
            "upstream = \"http://a:1\"\nupstreams = [\"http://b:1\"]",
            "apps.api.upstreams",
            "not both",
        ),
        (
            "upstreams = [{ url = \"http://a:1\", weight = 0 }]",
            "apps.api.upstreams",
            "weight",
        ),
        ("upstreams = [\"ftp://a:1\"]", "apps.api.upstreams", "http://"),
        ("upstreams = [{ uri = \"http://a:1\" }]", "apps.api.upstreams", "url"),
        (
            "upstream = \"http://a:1\"\nhash = \"tenant\"",
            "apps.api.hash",
            "consistent_hash",
        ),
        (
            "upstream = \"http://a:1\"\nbalance = \"consistent_hash\"\nhash = \"ip\"",
            "apps.api.hash",
            "header:",
        ),
        (
            "upstream = \"http://a:1\"\nbalance = \"random\"",
            "apps.api.balance",
            "round_robin",
        ),
        (
            "upstream = \"http://a:1\"\nhealth = { path = \"healthz\" }",
            "apps.api.health",
            "starts with `/`",
        ),
        (
            "upstream = \"http://a:1\"\nmax_connections = 0",
            "apps.api.max_connections",
            "at least 1",
        ),
    ] {
        let cfg = site.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.api]\nruntime = \"proxy\"\n{app}\n"
        ));
        let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{app}: {text}");
        assert!(text.contains(field) && text.contains(reason), "{app}: {text}");
    }
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_apps_ca_and_their_name() {
    let up = HttpsServer::start("over tls".into()).await;
    let port = up.addr.port();
    let site = Site::new();
    site.write("ca.pem", &up.ca_pem);
    let serve = |app: String| {
        let cfg = site.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\n{app}\n"
        ));
        Bext::serve(&cfg)
    };
    // Trusted CA, name matching: through.
    let b = serve(format!("upstream = \"https://localhost:{port}\"\nca = \"ca.pem\""));
    let r = get(b.addr, "x", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "over tls"));
    assert_eq!(
        up.sni.lock().unwrap().as_deref(),
        Some("localhost"),
        "SNI is the URL's host"
    );
    // The system's CAs do not know the test CA: refused, naming the app only.
    let b = serve(format!("upstream = \"https://localhost:{port}\""));
    let r = get(b.addr, "x", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "app `api`: upstream unavailable\n");
    // The operator's log says why.
    eventually(Duration::from_secs(5), || async {
        b.log().contains("UnknownIssuer").then_some(())
    })
    .await;
    // The right CA, but the certificate is for `localhost`, not this IP.
    let b = serve(format!("upstream = \"https://127.0.0.1:{port}\"\nca = \"ca.pem\""));
    assert_eq!(get(b.addr, "x", "/").await.status, 502);
    // `http2` offers h2 by ALPN; an upstream that only speaks HTTP/1.1
    // gets HTTP/1.1.
    let b = serve(format!(
        "upstream = \"https://localhost:{port}\"\nca = \"ca.pem\"\nhttp2 = true"
    ));
    let r = get(b.addr, "x", "/").await;
    assert_eq!(
        (r.text().as_str(), r.header("x-request-version")),
        ("over tls", Some("HTTP/1.1"))
    );
    // Only when told by name does bext take any certificate.
    let b = serve(format!(
        "upstream = \"https://127.0.0.1:{port}\"\ninsecure_skip_verify = true"
    ));
    assert_eq!(get(b.addr, "x", "/").await.text(), "over tls");
    eventually(Duration::from_secs(5), || async {
        b.log().contains("insecure_skip_verify").then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_tls_settings_are_refused_with_their_field() {
    let site = Site::new();
    site.write("not-a-ca.pem", "hello");
    for (app, field, reason) in [
        (
            "upstream = \"https://a:1\"\nca = \"missing.pem\"",
            "apps.api.ca",
            "missing.pem",
        ),
        (
            "upstream = \"https://a:1\"\nca = \"not-a-ca.pem\"",
            "apps.api.ca",
            "no CERTIFICATE",
        ),
        (
            "upstream = \"http://a:1\"\nca = \"not-a-ca.pem\"",
            "apps.api.ca",
            "https://",
        ),
        (
            "upstream = \"http://a:1\"\ninsecure_skip_verify = true",
            "apps.api.insecure_skip_verify",
            "https://",
        ),
    ] {
        let cfg = site.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.api]\nruntime = \"proxy\"\n{app}\n"
        ));
        let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{app}: {text}");
        assert!(text.contains(field) && text.contains(reason), "{app}: {text}");
    }
}

#[tokio::test]
async fn max_connections_queues_a_bounded_number_and_refuses_the_rest_at_once() {
    let slow = Backend::start("slow", Duration::from_millis(1500)).await;
    let (_s, bext) = serve_api(&format!(
        "upstream = \"{}\"\nmax_connections = 1\nqueue = 1",
        slow.url()
    ));
    let addr = bext.addr;
    let (a, b, c) = tokio::join!(get(addr, "x", "/"), get(addr, "x", "/"), get(addr, "x", "/"));
    let mut statuses = [a.status, b.status, c.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 503],
        "one runs, one waits its turn, one is refused"
    );
    let refused = [&a, &b, &c].into_iter().find(|r| r.status == 503).unwrap();
    assert_eq!(refused.text(), "app `api`: every upstream is busy\n");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(slow.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn h2_over_tls_is_chosen_by_alpn_when_the_upstream_accepts_it() {
    let up = HttpsServer::start_alpn("over h2".into(), true).await;
    let site = Site::new();
    site.write("ca.pem", &up.ca_pem);
    let serve = |app: &str| {
        let cfg = site.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"https://localhost:{}\"\nca = \"ca.pem\"\n{app}\n",
            up.addr.port()
        ));
        Bext::serve(&cfg)
    };
    // `http2`: h2 offered first, accepted; the certificate still checked.
    let b = serve("http2 = true");
    for _ in 0..3 {
        let r = get(b.addr, "x", "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "over h2"));
        assert_eq!(r.header("x-request-version"), Some("HTTP/2.0"));
    }
    let (mut sender, _conn) = h2_client(b.addr).await;
    let res = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(res.headers()["x-request-version"], "HTTP/2.0", "an HTTP/2 client too");
    assert_eq!(up.sni.lock().unwrap().as_deref(), Some("localhost"));
    // Without `http2`, bext offers http/1.1 only, and gets it.
    let b = serve("");
    let r = get(b.addr, "x", "/").await;
    assert_eq!(r.header("x-request-version"), Some("HTTP/1.1"));
}

/// An HTTP/2 upstream (h2c, prior knowledge) answering as a gRPC server
/// does: trailers carry `grpc-status`; the body says which protocol,
/// `te` and `:authority` the request came with.
async fn h2c_upstream() -> SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let te = req.headers().get("te").map_or("", |v| v.to_str().unwrap()).to_owned();
                    let authority = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
                    let body = format!("{:?} te={te} authority={authority}", req.version());
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let body = Full::new(Bytes::from(body)).with_trailers(async move { Some(Ok(trailers)) });
                    let res = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(res)
                });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn h2c_upstreams_carry_grpc_trailers_end_to_end() {
    use http_body_util::BodyExt;
    let up = h2c_upstream().await;
    let (_s, bext) = serve_api(&format!("upstream = \"http://{up}\"\nhttp2 = true"));
    let (mut sender, _conn) = h2_client(bext.addr).await;
    let req = http::Request::post("http://x/pkg.Greeter/SayHello")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let body = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
    assert_eq!(body, format!("HTTP/2.0 te=trailers authority={up}"));
    assert_eq!(trailers.expect("trailers reach the client")["grpc-status"], "0");
    // HTTP/1.1 clients reach it too, over the worker's shared connection.
    for _ in 0..3 {
        let r = get(bext.addr, "x", "/").await;
        assert_eq!(r.text(), format!("HTTP/2.0 te= authority={up}"));
    }
}
