//! One request, one reading: every plugin, runtime and upstream sees the
//! same path, host and end-to-end headers, however a client spells them
//! (issue 19 items 1, 3, 5 and 9), and the limits an attacker leans on
//! have numbers (its "weaker spots").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(5);

/// An HS256 token for `sub` with `scope`, signed with the test secret.
fn token(sub: &str, scope: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64(format!(r#"{{"sub":"{sub}","scope":"{scope}","exp":{exp}}}"#).as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{head}.{claims}").as_bytes());
    format!("{head}.{claims}.{}", b64(&mac.finalize().into_bytes()))
}

const SECRET: &str = "canonical-paths-test-secret-0123456789";

/// authn in front of an echo upstream: `/public/*` and `/login` open,
/// `/admin/*` needs the `admin` scope; a login limit of 2 per client; the
/// WAF off, so only the kernel stands between a spelling and the app.
fn guarded(s: &Site, upstream: std::net::SocketAddr, extra: &str) -> std::path::PathBuf {
    s.write(
        "manifests/authn.yaml",
        "name: authn\nenabled: true\nconfig:\n  public: [/public/*, /login]\n  scopes: [{ path: /admin/*, require: [admin] }]\n  jwt:\n    keys:\n      - { alg: HS256, secret_env: TEST_JWT_SECRET }\n",
    );
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits:\n    - { name: login, by: ip, rpm: 1, burst: 2, routes: [/login], methods: [POST] }\n",
    );
    s.write("manifests/waf.yaml", "name: waf\nenabled: false\n");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"echo\"\n{extra}\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{upstream}\"\n"
    ))
}

/// A hand-written GET (a client library would tidy the target), sent
/// without blocking the runtime the echo upstream runs on.
async fn raw_get(b: &Bext, target: &str, headers: &str) -> String {
    raw_async(
        b.addr,
        format!("GET {target} HTTP/1.1\r\nHost: shop.test\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
        WAIT,
    )
    .await
}

#[tokio::test]
async fn every_spelling_of_a_guarded_path_is_the_guarded_path() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = guarded(&s, echo.addr, "");
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let (reader_token, admin_token) = (
        format!("Bearer {}", token("reader", "read")),
        format!("Bearer {}", token("root", "admin")),
    );
    let reader = format!("Authorization: {reader_token}\r\n");
    let admin = format!("Authorization: {admin_token}\r\n");

    assert_eq!(status_of(&raw_get(&b, "/admin/secret.txt", &reader).await), 403);
    let spellings = [
        "//admin/secret.txt",
        "/./admin/secret.txt",
        "/%61dmin/secret.txt",
        "/%61%64%6d%69%6E/secret.txt",
        "/admin/./secret.txt",
        "///admin//secret.txt",
        "/public/../admin/secret.txt",
        "/public/%2e%2e/admin/secret.txt",
        "/public/%2E%2E/admin/secret.txt",
        "/public/.%2e/admin/secret.txt",
        "/x/y/../../admin/secret.txt",
        "http://shop.test/%61dmin/secret.txt",
        "http://shop.test//admin/secret.txt",
    ];
    for target in spellings {
        let out = raw_get(&b, target, &reader).await;
        assert_eq!(status_of(&out), 403, "{target} with a reader's token: {out}");
        let out = raw_get(&b, target, "").await;
        assert_eq!(status_of(&out), 401, "{target} without a token: {out}");
    }
    // Spellings with no single reading are refused outright.
    for target in [
        "/public/../../admin/secret.txt",
        "/public%2F..%2Fadmin/secret.txt",
        "/admin%2fsecret.txt",
        "/public/..%5Cadmin/secret.txt",
        "/public\\..\\admin/secret.txt",
        "/admin/secret.txt%00.png",
        "/admin/%zz",
    ] {
        let out = raw_get(&b, target, "").await;
        assert_eq!(status_of(&out), 400, "{target}: {out}");
    }
    // HTTP/2 `:path` is the same path.
    let h2 = send_h2(
        b.addr,
        request(
            "GET",
            "http://shop.test/%61dmin/./secret.txt",
            &[("authorization", admin_token.as_str())],
            "",
        ),
    )
    .await;
    assert_eq!(h2.status, 200);
    assert_eq!(
        h2.json()["uri"],
        "/admin/secret.txt",
        "the upstream gets the checked path"
    );
    let h2 = send_h2(
        b.addr,
        request(
            "GET",
            "http://shop.test/%61dmin/./secret.txt",
            &[("authorization", reader_token.as_str())],
            "",
        ),
    )
    .await;
    assert_eq!(h2.status, 403);

    // The admin reaches the canonical path, with the query as sent.
    let out = raw_get(&b, "/public/../admin/%7Ex/a%20b?q=%2e%2e/x", &admin).await;
    assert_eq!(status_of(&out), 200, "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.contains(r#""uri":"/admin/~x/a%20b?q=%2e%2e/x""#), "{body}");
}

// Blocking raw clients: the echo upstream answers on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_limit_counts_every_spelling_of_its_route() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = guarded(&s, echo.addr, "");
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let post = |target: &str| {
        raw(
            b.addr,
            format!("POST {target} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            WAIT,
        )
    };
    assert_eq!(status_of(&post("/login")), 200);
    assert_eq!(status_of(&post("/login")), 200);
    for target in ["/./login", "//login", "/%6cogin", "/x/../login", "/./%6C%6f%67%69%6E"] {
        let out = post(target);
        assert_eq!(status_of(&out), 429, "{target}: {out}");
    }
}

#[tokio::test]
async fn decoded_slashes_are_separators_when_asked() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = guarded(&s, echo.addr, "encoded_slashes = \"decode\"");
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let reader = format!("Authorization: Bearer {}\r\n", token("reader", "read"));
    for target in ["/admin%2Fsecret.txt", "/public%2F..%2Fadmin/secret.txt"] {
        assert_eq!(status_of(&raw_get(&b, target, &reader).await), 403, "{target}");
    }
    let out = raw_get(&b, "/public%2Fa", "").await;
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.contains(r#""uri":"/public/a""#), "{out}");
}

/// Two proxy apps by host, each sending its client's Host upstream,
/// with the isr cache on.
fn two_hosts(s: &Site, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    let app = |id: &str| {
        format!(
            "[apps.{id}]\nruntime = \"proxy\"\nupstream = \"http://{upstream}\"\npreserve_host = true\ndomains = [\"{id}.test\"]\nheaders = {{ \"x-app\" = \"{id}\" }}\ncache = {{ default_ttl = \"60s\" }}\n"
        )
    };
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n{}\n{}",
        app("pa"),
        app("evil")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_forwarding_see_one_host() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&two_hosts(&s, echo.addr));

    // Absolute form beats Host (RFC 9112 §3.2.2), for routing and forwarding.
    let out = raw(
        b.addr,
        b"GET http://pa.test/abs HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.to_ascii_lowercase().contains("x-app: pa"), "{out}");
    assert!(
        out.contains(r#""host":"pa.test""#),
        "the upstream builds pa.test's page: {out}"
    );
    // A case or port spelling of the authority is still that host.
    let out = raw(
        b.addr,
        b"GET http://PA.test:80/abs2 HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert!(
        out.contains(r#""host":"pa.test""#) && out.to_ascii_lowercase().contains("x-app: pa"),
        "{out}"
    );

    // So the cache never files evil.test's page under pa.test.
    let r = get(b.addr, "pa.test", "/abs").await;
    assert_eq!(r.json()["headers"]["host"], "pa.test");

    // HTTP/2: `host` that differs from `:authority` is malformed.
    let r = send_h2(
        b.addr,
        request("GET", "http://pa.test/h2", &[("host", "evil.test")], ""),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = send_h2(b.addr, request("GET", "http://pa.test/h2", &[], "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["host"], "pa.test");
    // HTTP/2 carries field values as sent: one with whitespace at an
    // edge is malformed (RFC 9113 §8.2.1), where HTTP/1.1's parser trims it.
    for padded in [" admin", "admin\t"] {
        let r = send_h2(b.addr, request("GET", "http://pa.test/h2", &[("x-role", padded)], "")).await;
        assert_eq!(r.status, 400, "{padded:?}");
    }
}

// Blocking raw clients: the echo upstream answers on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_drop_the_headers_bext_adds() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    \"*.saas.test\": { app: saas }\n",
    );
    s.write(
        "manifests/authn.yaml",
        "name: authn\nenabled: true\nconfig:\n  jwt:\n    keys:\n      - { alg: HS256, secret_env: TEST_JWT_SECRET }\n",
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.saas]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let auth = format!("Authorization: Bearer {}\r\n", token("alice", "read"));
    let seen = |extra: &str| {
        let out = raw(
            b.addr,
            format!("GET /p HTTP/1.1\r\nHost: acme.saas.test\r\n{auth}{extra}X-Client: 1\r\n\r\n").as_bytes(),
            WAIT,
        );
        assert_eq!(status_of(&out), 200, "{out}");
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let body = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
        serde_json::from_str::<serde_json::Value>(body).unwrap()["headers"].clone()
    };
    let control = seen("Connection: close\r\n");
    assert_eq!(control["x-vhost-tenant"], "acme");
    assert_eq!(control["x-auth-sub"], "alice");
    for connection in [
        "x-vhost-tenant, x-base, x-auth-sub",
        "X-VHOST-TENANT,X-Base , X-Auth-Sub",
        "close, x-vhost-tenant",
    ] {
        let h = seen(&format!("Connection: {connection}\r\nConnection: x-client, close\r\n"));
        for name in ["x-vhost-tenant", "x-base", "x-auth-sub"] {
            assert_eq!(h[name], control[name], "{connection}: {name}");
        }
        assert!(h.get("x-client").is_none(), "the client's own named header is dropped");
    }
}

/// With neither `admin_hosts` nor `admin_listen`, every host may ask for
/// the details (tests/e2e/admin_hosts.rs covers both settings).
#[tokio::test]
async fn health_details_need_the_admin_token() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.www]\nsource = \"www\"\ndomains = [\"secret-customer.test\", \"*.tenant.test\"]\n",
    );
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    for host in ["acme.tenant.test", "unknown.test", "secret-customer.test"] {
        let r = get(b.addr, host, "/__bext/health").await;
        assert_eq!(r.status, 200);
        let text = r.text();
        assert_eq!(r.json()["status"], "ok");
        assert!(
            !text.contains("secret-customer") && !text.contains("apps") && !text.contains("version"),
            "{host}: {text}"
        );
    }
    let addr = b.addr;
    let with = |token: &str| {
        let auth = format!("Bearer {token}");
        async move {
            send(
                addr,
                request(
                    "GET",
                    "/__bext/health",
                    &[("host", "acme.tenant.test"), ("authorization", &auth)],
                    "",
                ),
            )
            .await
        }
    };
    let r = with("sekret").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["apps"][0]["domains"][0], "secret-customer.test");
    assert_eq!(with("wrong").await.status, 401);
}

#[tokio::test]
async fn canaries_and_previews_are_not_path_routes() {
    let s = Site::new();
    s.write("site/index.html", "stable");
    s.write("v1/index.html", "one");
    s.write("v2/index.html", "two (canary)");
    s.write("v3/index.html", "three (preview)");
    let config =
        s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n[apps.blog]\nsource = \"site\"\ndomains = [\"blog.test\"]\n");
    let deploy = |args: &[&str]| {
        let mut all = vec!["deploy", "--app", "blog", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bext"))
            .args(&all)
            .env("BEXT_ADMIN_TOKEN", "sekret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    deploy(&[s.path("v1").to_str().unwrap()]);
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    let server = format!("http://{}", b.addr);
    deploy(&[s.path("v2").to_str().unwrap(), "--canary", "1%", "--server", &server]);
    deploy(&[s.path("v3").to_str().unwrap(), "--preview", "pr-1", "--server", &server]);
    // Each is served where the deploy plugin sends visitors...
    let preview = eventually(Duration::from_secs(5), || async {
        let r = get(b.addr, "pr-1.preview.blog.test", "/").await;
        (r.status == 200).then_some(r.text())
    })
    .await;
    assert_eq!(preview, "three (preview)");
    // ...and nowhere else: a declared app is reachable as /{id}/, a
    // hidden one never, from any host and in any spelling.
    assert_eq!(get(b.addr, "x.test", "/blog/").await.status, 200);
    for host in ["x.test", "blog.test", "pr-1.preview.blog.test"] {
        for target in [
            "/blog@v2/",
            "/blog~pr-1/",
            "/blog%40v2/",
            "/blog%7Epr-1/",
            "/blog@v2/index.html",
        ] {
            let r = get(b.addr, host, target).await;
            assert!(
                r.status == 404 || (r.status == 308 && !target.contains('@') && !target.contains('~')),
                "{host}{target}: {} {}",
                r.status,
                r.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_get_the_right_4xx() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let status = |head: String| status_of(&raw(b.addr, head.as_bytes(), WAIT));
    for method in ["get", "Get", "post"] {
        assert_eq!(
            status(format!("{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
            400,
            "{method}"
        );
    }
    assert_eq!(
        status("CONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\nConnection: close\r\n\r\n".into()),
        405
    );
    for host in ["x:99999", "x:65536", "[::1]:70000"] {
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")),
            400,
            "{host}"
        );
    }
    let long = "a".repeat(10 * 1024);
    assert_eq!(
        status(format!("GET /{long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
        414
    );
    assert_eq!(
        status(format!(
            "GET /?q={long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )),
        414
    );
    // A bad chunk size is the client's fault: 400, not the upstream's 502.
    for body in [
        "zz\r\nabc\r\n0\r\n\r\n",
        "5\r\nabc\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
    ] {
        let out = raw(
            b.addr,
            format!("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}")
                .as_bytes(),
            WAIT,
        );
        assert_eq!(status_of(&out), 400, "{body:?}: {out}");
    }
    // The server is unharmed and still forwards upper-case methods.
    assert_eq!(get(b.addr, "x", "/").await.status, 200);
    let r = send(b.addr, request("PROPFIND", "/dav", &[("host", "x")], "")).await;
    assert_eq!(r.json()["method"], "PROPFIND");
}

#[tokio::test]
async fn a_trickled_body_meets_a_deadline() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[platform.limits]\nbody_read_timeout = \"10s\"\nbody_total_timeout = \"1s\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let mut c = TcpStream::connect(b.addr).unwrap();
    c.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // One byte every 200 ms: each pause is well inside body_read_timeout.
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40 {
                if c.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&out), 408, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "cut at the deadline, not at the end"
    );
    let _ = writer.join();
}

#[tokio::test]
async fn connections_per_client_are_capped() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[platform.limits]\nmax_connections_per_ip = 5\nheader_read_timeout = \"30s\"\n[apps.www]\nsource = \"www\"\n",
    );
    let b = Bext::serve(&cfg);
    let silent: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(b.addr).unwrap()).collect();
    // Give the server time to accept the five.
    std::thread::sleep(Duration::from_millis(300));
    let mut sixth = TcpStream::connect(b.addr).unwrap();
    sixth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = sixth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = sixth.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the sixth connection is closed at once");
    // A slot given back is usable again.
    drop(silent);
    eventually(Duration::from_secs(5), || async {
        let out = raw_async(b.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", WAIT).await;
        (status_of(&out) == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_part_of_an_http2_preface_and_leaves_gives_its_slot_back() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[platform.limits]\nmax_connections_per_ip = 3\nheader_read_timeout = \"30s\"\n[apps.www]\nsource = \"www\"\n",
    );
    let b = Bext::serve(&cfg);
    for _ in 0..10 {
        let mut c = TcpStream::connect(b.addr).unwrap();
        c.write_all(b"PRI").unwrap();
        drop(c);
    }
    // Well before the head timeout, the slots are free again.
    eventually(Duration::from_secs(5), || async {
        let out = raw_async(b.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", WAIT).await;
        (status_of(&out) == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admin_token_guesses_are_throttled() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    let cfg = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n[apps.www]\nsource = \"www\"\n");
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    let addr = b.addr;
    let try_token = |t: &'static str| async move {
        send(
            addr,
            request(
                "GET",
                "/__bext/health",
                &[("host", "x"), ("authorization", &format!("Bearer {t}"))],
                "",
            ),
        )
        .await
        .status
    };
    assert_eq!(try_token("sekret").await, 200);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(try_token("guess").await);
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Throttled, even the right token is not looked at.
    assert_eq!(try_token("sekret").await, 429);
}

#[tokio::test]
async fn forged_bext_headers_never_reach_an_app_without_authn() {
    // No authn, no vhosts match: only the kernel stands between the
    // client's copies (in any spelling a CGI-style app would read) and the app.
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    \"internal.test\": { app: api, bypass: true }\n",
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let forged = [
        ("x-auth-sub", "root"),
        ("X-Auth-Claims", r#"{"sub":"root","scope":"admin"}"#),
        ("x-auth-scopes", "admin"),
        ("X_Auth_Sub", "root"),
        ("x_vhost_tenant", "victim-corp"),
        ("X_Base", "/evil/"),
        ("X_Forwarded_For", "6.6.6.6"),
    ];
    for host in ["internal.test", "other.test"] {
        let mut headers = vec![("host", host), ("x-app-header", "kept")];
        headers.extend_from_slice(&forged);
        let r = send(b.addr, request("GET", "/admin/x", &headers, "")).await;
        let h = r.json()["headers"].clone();
        for (name, _) in forged {
            assert!(
                h.get(name.to_ascii_lowercase()).is_none(),
                "{host}: {name} reached the app: {h}"
            );
        }
        assert_eq!(h["x-app-header"], "kept");
        assert_ne!(h["x-forwarded-for"], "6.6.6.6");
    }
}

#[tokio::test]
async fn the_upstream_gets_the_host_the_cache_keys_on() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&two_hosts(&s, echo.addr));
    for (n, host) in ["pa.test:6666", "PA.test.", "Pa.Test:80"].iter().enumerate() {
        let path = format!("/port{n}");
        let r = send(b.addr, request("GET", &path, &[("host", host)], "")).await;
        assert_eq!(r.json()["headers"]["host"], "pa.test", "{host}");
        // The page the cache now holds was built for the host it is filed under.
        let again = get(b.addr, "pa.test", &path).await;
        assert_eq!(again.json()["headers"]["host"], "pa.test");
    }
    let r = send_h2(b.addr, request("GET", "http://pa.test:6666/h2port", &[], "")).await;
    assert_eq!(r.json()["headers"]["host"], "pa.test");
    // An IPv6 literal has one spelling too.
    let out = raw_async(
        b.addr,
        b"GET / HTTP/1.1\r\nHost: [0:0:0:0:0:0:0:1]:80\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status_of(&out), 404, "no app has that host: {out}");
}

#[tokio::test]
async fn h2_cookies_are_one_line_and_only_websocket_upgrades() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let r = send_h2(
        b.addr,
        request("GET", "http://x.test/c", &[("cookie", "a=1"), ("cookie", "b=2")], ""),
    )
    .await;
    assert_eq!(r.json()["headers"]["cookie"], "a=1; b=2");
    // An h2c upgrade would open a tunnel whose requests skip every plugin:
    // it is forwarded as a plain request, without the Upgrade.
    for upgrade in ["h2c", "H2C", "websocket, h2c"] {
        let out = raw_async(
            b.addr,
            format!(
                "GET /up HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            )
            .as_bytes(),
            WAIT,
        )
        .await;
        assert_eq!(status_of(&out), 200, "{upgrade}: {out}");
        assert!(!out.to_ascii_lowercase().contains("\"upgrade\""), "{upgrade}: {out}");
    }
    // A second Authorization is refused: a checker and an app could each read another.
    let r = send(
        b.addr,
        request(
            "GET",
            "/",
            &[
                ("host", "x.test"),
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn renamed_caller_headers_and_routing_overrides_never_reach_an_app() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write(
        "manifests/authn.yaml",
        "name: authn\nenabled: true\nconfig:\n  required: false\n  jwt:\n    keys:\n      - { alg: HS256, secret_env: TEST_JWT_SECRET }\n  forward:\n    subject: x-user\n    claims: x-user-claims\n    claim_headers: { x-user-email: email }\n",
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.guarded]\nruntime = \"proxy\"\nupstream = \"http://{0}\"\ndomains = [\"guarded.test\"]\n[apps.open]\nruntime = \"proxy\"\nupstream = \"http://{0}\"\ndomains = [\"open.test\"]\n[apps.open.plugins.authn]\nenabled = false\n",
        echo.addr
    ));
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let forged = [
        ("x-user", "admin"),
        ("X-User-Claims", r#"{"scope":"admin"}"#),
        ("x-user-email", "ceo@example.com"),
        ("X-Original-URL", "/admin/x"),
        ("X-Rewrite-URL", "/admin/x"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("Forwarded", "for=6.6.6.6;host=evil.test;proto=https"),
        ("X-Forwarded-Port", "6666"),
        ("X-Real-IP", "6.6.6.6"),
    ];
    for host in ["open.test", "guarded.test"] {
        let mut headers = vec![("host", host)];
        headers.extend_from_slice(&forged);
        let r = send(b.addr, request("GET", "/p", &headers, "")).await;
        assert_eq!(r.status, 200, "{host}");
        let h = r.json()["headers"].clone();
        for (name, _) in forged {
            assert!(
                h.get(name.to_ascii_lowercase()).is_none(),
                "{host}: {name} reached the app: {h}"
            );
        }
    }
}

#[tokio::test]
async fn an_asterisk_target_is_the_servers_and_only_for_options() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"api\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    for method in ["GET", "POST", "DELETE"] {
        let out = raw_async(
            b.addr,
            format!("{method} * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            WAIT,
        )
        .await;
        assert_eq!(status_of(&out), 400, "{method} *: {out}");
    }
    let out = raw_async(
        b.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status_of(&out), 204, "{out}");
    assert!(out.to_ascii_lowercase().contains("allow: get"), "{out}");
    for target in ["ftp://x/a", "file:///etc/passwd"] {
        let out = raw_async(
            b.addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            WAIT,
        )
        .await;
        assert_eq!(status_of(&out), 400, "{target}: {out}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_wrong_tokens_count_against_the_client() {
    let s = Site::new();
    s.write("www/index.html", "ok");
    s.write(
        "manifests/waf.yaml",
        "name: waf\nenabled: true\nconfig:\n  trusted_proxies: [127.0.0.1/32]\n",
    );
    let cfg =
        s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.www]\nsource = \"www\"\n");
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    let addr = b.addr;
    let health = |client: &'static str, token: &'static str| async move {
        let auth = format!("Bearer {token}");
        let headers = [
            ("host", "x.test"),
            ("x-forwarded-for", client),
            ("authorization", auth.as_str()),
        ];
        send(addr, request("GET", "/__bext/health", &headers, "")).await.status
    };
    for _ in 0..12 {
        health("203.0.113.66", "guess").await;
    }
    assert_eq!(health("203.0.113.66", "sekret").await, 429, "the guesser is throttled");
    assert_eq!(
        health("198.51.100.7", "sekret").await,
        200,
        "the admin behind the same proxy is not"
    );
}
