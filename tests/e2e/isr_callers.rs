//! The isr cache never serves one caller's page to another (issue 19),
//! in the real server with authn and isr on, in front of an app that
//! wrongly marks `/me` pages `public, max-age=60`: callers found by authn
//! (API key, session cookie, bearer token, in any header spelling) pass
//! the cache by; under `authorized: true` each caller has entries of its
//! own; without authn, requests with credentials the cache cannot see
//! through pass it by, and answers that set cookies or `Vary` on one are
//! not shared.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};

use crate::isr::Counting;
use crate::support::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-isr-callers";

/// An HS256 token for `sub`, valid for ten minutes.
fn token(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = serde_json::json!({ "sub": sub, "exp": exp });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The shop proxy app with authn (JWTs by header or `session` cookie; API
/// keys `alice-api-key` and `bob-api-key` for callers `alice` and `bob`;
/// anonymous requests allowed) and isr (`/acct/*` kept per caller).
fn platform(s: &Site, upstream: SocketAddr) -> Bext {
    s.write(
        "manifests/authn.yaml",
        r#"name: authn
enabled: true
config:
  required: false
  jwt:
    keys:
      - { alg: HS256, secret_env: TEST_JWT_SECRET }
    cookie: session
  api_keys:
    query: api_key
    keys:
      - { name: alice, hash: "sha256:2cbbcfe7fd37158359af7580018de9583df5f782d34b3f87a0cf2e12c4d01e53" }
      - { name: bob, hash: "sha256:9e345dd651f221d578c6e0d7c65c4518d315d1d5583c480dd4ae30803142c256" }
"#,
    );
    s.write(
        "manifests/isr.yaml",
        "name: isr\nenabled: true\nconfig:\n  rules:\n    - { path: /acct/*, authorized: true }\n",
    );
    Bext::serve_env(&shop_platform(s, upstream), &[("TEST_JWT_SECRET", SECRET)])
}

async fn fetch(b: &Bext, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("host", "shop.test")];
    all.extend_from_slice(headers);
    send(b.addr, request("GET", path, &all, "")).await
}

/// A request written by hand, with header names spelled as given; the
/// status line, `x-cache` and the body.
async fn fetch_raw(b: &Bext, path: &str, header_lines: &str) -> (u16, String, String) {
    let text = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n{header_lines}Connection: close\r\n\r\n");
    let out = raw_async(b.addr, text.as_bytes(), Duration::from_secs(10)).await;
    let cache = out
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-cache").then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status_of(&out), cache, body)
}

#[tokio::test]
async fn callers_found_by_authn_never_share_a_cached_page() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = platform(&s, up.addr);
    let (alice_jwt, bob_jwt) = (token("alice"), token("bob"));
    let (alice_bearer, bob_bearer) = (format!("Bearer {alice_jwt}"), format!("bearer {bob_jwt}"));
    let (alice_cookie, bob_cookie) = (format!("session={alice_jwt}"), format!("theme=dark; session={bob_jwt}"));
    /// A request header: name and value.
    type Credential<'a> = (&'a str, &'a str);
    let cases: [(&str, Credential<'_>, Credential<'_>); 3] = [
        (
            "/me/api-key",
            ("x-api-key", "alice-api-key"),
            ("x-api-key", "bob-api-key"),
        ),
        ("/me/cookie", ("cookie", &alice_cookie), ("cookie", &bob_cookie)),
        (
            "/me/bearer",
            ("authorization", &alice_bearer),
            ("authorization", &bob_bearer),
        ),
    ];
    for (path, alice, bob) in cases {
        let a = fetch(&b, path, &[alice]).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert_eq!(a.header("x-cache"), Some("BYPASS"), "{path}");
        assert!(a.text().contains("sub=alice "), "{path}: {}", a.text());
        let bb = fetch(&b, path, &[bob]).await;
        assert_eq!(bb.header("x-cache"), Some("BYPASS"), "{path}");
        assert!(bb.text().contains("sub=bob "), "{path}: {}", bb.text());
        // The anonymous page is shared, and never served to a caller.
        let anon = fetch(&b, path, &[]).await;
        assert_eq!(anon.header("x-cache"), Some("MISS"), "{path}");
        assert!(anon.text().contains("sub= "), "{path}: {}", anon.text());
        assert_eq!(fetch(&b, path, &[]).await.header("x-cache"), Some("HIT"), "{path}");
        let a2 = fetch(&b, path, &[alice]).await;
        assert_eq!(a2.header("x-cache"), Some("BYPASS"), "{path}");
        assert!(a2.text().contains("sub=alice "), "{path}: {}", a2.text());
        assert_eq!(up.count(path), 4, "{path}");
    }

    // An API key in the query string: authn finds the caller all the same.
    for (who, key) in [("alice", "alice-api-key"), ("bob", "bob-api-key")] {
        let r = fetch(&b, &format!("/me/query?api_key={key}"), &[]).await;
        assert_eq!(r.header("x-cache"), Some("BYPASS"), "{who}");
        assert!(r.text().contains(&format!("sub={who} ")), "{who}: {}", r.text());
    }

    // Other spellings of the same headers.
    for (path, line) in [
        ("/me/spelled-1", "X-API-KEY: bob-api-key\r\n".to_owned()),
        ("/me/spelled-2", "x-Api-Key: bob-api-key\r\n".to_owned()),
        ("/me/spelled-3", format!("COOKIE: session={bob_jwt}\r\n")),
        ("/me/spelled-4", format!("AUTHORIZATION: Bearer {bob_jwt}\r\n")),
    ] {
        let (status, cache, body) = fetch_raw(&b, path, &line).await;
        assert_eq!((status, cache.as_str()), (200, "BYPASS"), "{line}");
        assert!(body.contains("sub=bob "), "{line}: {body}");
        let anon = fetch(&b, path, &[]).await;
        assert_eq!(
            anon.header("x-cache"),
            Some("MISS"),
            "{line}: bob's page was not stored"
        );
        assert!(anon.text().contains("sub= "), "{line}: {}", anon.text());
    }
}

#[tokio::test]
async fn an_authorized_rule_keeps_each_callers_page_under_its_own_key() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = platform(&s, up.addr);
    let p = "/acct/me";
    let alice_key = ("x-api-key", "alice-api-key");

    let first = fetch(&b, p, &[alice_key]).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert!(first.text().contains("sub=alice "), "{}", first.text());
    let again = fetch(&b, p, &[alice_key]).await;
    assert_eq!(again.header("x-cache"), Some("HIT"), "the same caller twice");
    assert!(again.text().contains("sub=alice "), "{}", again.text());
    // The key holds the caller authn verified, not the credential: a token
    // for `alice` finds the page of the token caller `alice` whether sent as
    // a bearer or a cookie; the API key named `alice` is another caller
    // (authn's subjects are namespaced by credential kind, docs/authn.md).
    let bearer = format!("Bearer {}", token("alice"));
    let by_token = fetch(&b, p, &[("authorization", &bearer)]).await;
    assert_eq!(by_token.header("x-cache"), Some("MISS"), "not the key's page");
    assert!(by_token.text().contains("sub=alice "), "{}", by_token.text());
    let cookie = format!("session={}", token("alice"));
    let by_cookie = fetch(&b, p, &[("cookie", &cookie)]).await;
    assert_eq!(by_cookie.header("x-cache"), Some("HIT"), "the token caller's page");

    for bob in [
        ("x-api-key", "bob-api-key".to_owned()),
        ("cookie", format!("session={}", token("bob"))),
        ("authorization", format!("Bearer {}", token("bob"))),
    ] {
        let r = fetch(&b, p, &[(bob.0, &bob.1)]).await;
        assert!(r.text().contains("sub=bob "), "{}: {}", bob.0, r.text());
    }
    let (_, cache, body) = fetch_raw(&b, p, "X-Api-KEY: bob-api-key\r\n").await;
    assert_eq!(cache, "HIT");
    assert!(body.contains("sub=bob "), "{body}");

    let anon = fetch(&b, p, &[]).await;
    assert_eq!(anon.header("x-cache"), Some("MISS"), "no caller: the shared entry");
    assert!(anon.text().contains("sub= "), "{}", anon.text());
    assert_eq!(
        up.count(p),
        5,
        "one render per caller (two keys, two token subjects) and one shared"
    );

    // An answer that sets a cookie is never kept, even per caller.
    for _ in 0..2 {
        let r = fetch(&b, "/acct/cookie", &[alice_key]).await;
        assert_eq!(r.header("x-cache"), Some("MISS"));
    }
    assert_eq!(up.count("/acct/cookie"), 2);
}

#[tokio::test]
async fn without_authn_credentials_the_cache_cannot_see_through_pass_it_by() {
    let up = Counting::start().await;
    let s = Site::new();
    s.write("manifests/isr.yaml", "name: isr\nenabled: true\n");
    let b = Bext::serve(&shop_platform(&s, up.addr));
    for (i, (name, alice, bob)) in [
        ("cookie", "sid=alice", "sid=bob"),
        ("authorization", "Basic YWxpY2U6eA==", "Basic Ym9iOng="),
        ("x-api-key", "alice-key", "bob-key"),
        ("proxy-authorization", "Basic YWxpY2U6eA==", "Basic Ym9iOng="),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/me/anon-{i}");
        let a = fetch(&b, &path, &[(name, alice)]).await;
        assert_eq!(a.header("x-cache"), Some("BYPASS"), "{name}");
        let (_, cache, body) = fetch_raw(&b, &path, &format!("{}: {bob}\r\n", name.to_uppercase())).await;
        assert_eq!(cache, "BYPASS", "{name}");
        // (The proxy does not forward Proxy-Authorization to the app.)
        let forwarded = name != "proxy-authorization";
        assert!(
            body.contains(bob) == forwarded && !body.contains(alice),
            "{name}: {body}"
        );
        assert_eq!(fetch(&b, &path, &[]).await.header("x-cache"), Some("MISS"), "{name}");
        assert_eq!(up.count(&path), 3, "{name}");
    }
    // HTTP/2 (where a cookie may come as several fields) is no way round.
    for cookies in [&["sid=alice"][..], &["theme=dark", "sid=alice"][..]] {
        let mut req = request("GET", "http://shop.test/me/h2", &[], "");
        for c in cookies {
            req.headers_mut().append("cookie", c.parse().unwrap());
        }
        let r = send_h2(b.addr, req).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("BYPASS")), "{cookies:?}");
    }
    let anon = send_h2(b.addr, request("GET", "http://shop.test/me/h2", &[], "")).await;
    assert_eq!(anon.header("x-cache"), Some("MISS"));
    assert!(!anon.text().contains("alice"), "{}", anon.text());

    // Answers that Vary on a credential header, or set a cookie, are not
    // shared with anyone.
    for path in ["/vary-cookie", "/cookie"] {
        for _ in 0..2 {
            assert_eq!(fetch(&b, path, &[]).await.header("x-cache"), Some("MISS"), "{path}");
        }
        assert_eq!(up.count(path), 2, "{path}");
    }
}

#[tokio::test]
async fn the_credential_headers_are_configured() {
    let up = Counting::start().await;
    let s = Site::new();
    // An app that reads keys from `X-Token`, and only has tracking cookies.
    s.write(
        "manifests/isr.yaml",
        "name: isr\nenabled: true\nconfig:\n  credential_headers: [authorization, X-Token]\n",
    );
    let b = Bext::serve(&shop_platform(&s, up.addr));
    let a = fetch(&b, "/me/token", &[("x-token", "alice")]).await;
    assert_eq!(a.header("x-cache"), Some("BYPASS"));
    let (_, cache, body) = fetch_raw(&b, "/me/token", "x-TOKEN: bob\r\n").await;
    assert_eq!(cache, "BYPASS");
    assert!(body.contains("cred=bob"), "{body}");
    let tracked = fetch(&b, "/me/token", &[("cookie", "_ga=1")]).await;
    assert_eq!(tracked.header("x-cache"), Some("MISS"), "cookie is not listed here");
    assert_eq!(
        fetch(&b, "/me/token", &[("cookie", "_ga=2")]).await.header("x-cache"),
        Some("HIT")
    );

    let bad = Site::new();
    bad.write(
        "manifests/isr.yaml",
        "name: isr\nenabled: true\nconfig:\n  credential_headers: [\"bad header\"]\n",
    );
    let cfg = shop_platform(&bad, up.addr);
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("credential_headers[0]"), "{text}");
}

/// A `redis-server` of its own on a free port, killed on drop (as in
/// `edge.rs`; `tests/run` installs the package).
struct Redis {
    port: u16,
    child: std::process::Child,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed for the edge tests (tests/run installs it)");
        let redis = Redis { port, child };
        for _ in 0..100 {
            if redis.command("PING").starts_with("+PONG") {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on {port}");
    }

    /// One inline command's raw reply ("" when Redis cannot be reached).
    fn command(&self, line: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut buf = vec![0u8; 64 << 10];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In edge mode the caller is part of the L2 key too: alice's page,
/// written through to Redis by instance A, is an L2 hit for alice on B
/// and never for bob or an anonymous client; no subject is written into
/// a Redis key.
#[tokio::test]
async fn in_edge_mode_the_l2_tier_keeps_callers_apart() {
    let up = Counting::start().await;
    let redis = Redis::start();
    let s = Site::new();
    platform(&s, up.addr); // writes the manifests; this instance is not used
    let cfg = shop_platform_with(
        &s,
        up.addr,
        "",
        &format!(
            "[redis]\nurl = \"redis://127.0.0.1:{}/\"\nprefix = \"test:\"\n",
            redis.port
        ),
    );
    let env = [("TEST_JWT_SECRET", SECRET), ("BEXT_ADMIN_TOKEN", "sekret")];
    let (a, b) = (Bext::serve_env(&cfg, &env), Bext::serve_env(&cfg, &env));
    for instance in [&a, &b] {
        eventually(Duration::from_secs(5), || async {
            let r = send(
                instance.addr,
                request(
                    "GET",
                    "/__bext/health",
                    &[("host", "shop.test"), ("authorization", "Bearer sekret")],
                    "",
                ),
            )
            .await;
            (r.json()["redis"] == "up").then_some(())
        })
        .await;
    }
    let p = "/acct/me";
    let alice = ("x-api-key", "alice-api-key");
    let first = fetch(&a, p, &[alice]).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    eventually(Duration::from_secs(5), || async {
        redis.command("KEYS test:isr:e:*").starts_with("*1\r\n").then_some(())
    })
    .await;

    let bob = fetch(&b, p, &[("x-api-key", "bob-api-key")]).await;
    assert_eq!(bob.header("x-cache"), Some("MISS"), "alice's L2 entry is not bob's");
    assert!(bob.text().contains("sub=bob "), "{}", bob.text());
    let anon = fetch(&b, p, &[]).await;
    assert_eq!(anon.header("x-cache"), Some("MISS"));
    assert!(anon.text().contains("sub= "), "{}", anon.text());
    let alice_on_b = fetch(&b, p, &[alice]).await;
    assert_eq!(
        (alice_on_b.header("x-cache"), alice_on_b.header("x-cache-tier")),
        (Some("HIT"), Some("L2"))
    );
    assert!(alice_on_b.text().contains("sub=alice "), "{}", alice_on_b.text());
    assert_eq!(up.count(p), 3);
    let keys = redis.command("KEYS *");
    assert!(!keys.contains("alice") && !keys.contains("bob"), "{keys}");
}
