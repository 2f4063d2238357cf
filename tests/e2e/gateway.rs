//! The gateway plugin in the real server: rate limits that hold over a
//! 10-second run, limits by route and API key, CORS (preflights, origins,
//! a 429 that still carries CORS headers) and response headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn an_app_rate_limit_holds_within_five_percent_over_ten_seconds() {
    let s = Site::new();
    s.write("www/index.html", "hi");
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
default_app = "api"

[apps.api]
source = "www"
rate_limit = { rpm = 3000, burst = 20 }
"#,
    );
    let b = Bext::serve(&cfg);
    let ok = Arc::new(AtomicU32::new(0));
    let limited = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let run = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (ok, limited, addr) = (ok.clone(), limited.clone(), b.addr);
        tasks.push(tokio::spawn(async move {
            let (mut client, _conn) = h1_client(addr).await;
            let mut first = true;
            while start.elapsed() < run {
                client.ready().await.unwrap();
                let res = client
                    .send_request(request("GET", "/index.html", &[("host", "api.test")], ""))
                    .await
                    .unwrap();
                match res.status().as_u16() {
                    200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        assert!(res.headers().contains_key("ratelimit-remaining"));
                    }
                    429 => {
                        limited.fetch_add(1, Ordering::Relaxed);
                        if first {
                            first = false;
                            let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                            assert!(retry >= 1);
                            assert_eq!(res.headers()["ratelimit-remaining"], "0");
                            assert_eq!(res.headers()["ratelimit-limit"], "20");
                        }
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = 20.0 + 50.0 * elapsed;
    let got = f64::from(ok.load(Ordering::Relaxed));
    assert!(
        limited.load(Ordering::Relaxed) > 0,
        "the clients went faster than the limit"
    );
    assert!(
        (got - expected).abs() <= expected * 0.05,
        "{got} requests allowed in {elapsed:.2}s, expected {expected:.0} ± 5%"
    );
}

#[tokio::test]
async fn limits_by_route_and_api_key_and_cors_on_refusals() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "manifests/gateway.yaml",
        r#"name: gateway
enabled: true
config:
  limits:
    - { name: login, by: ip, rpm: 60, burst: 2, routes: [/login], methods: [POST] }
    - { name: per-key, by: header, header: x-api-key, rpm: 60, burst: 3, routes: [/api/*] }
  cors:
    origins: [https://app.example.com, "https://*.example.org"]
    methods: [GET, POST, PUT]
    headers: [content-type, x-api-key]
    expose: [ratelimit-remaining]
    credentials: true
    max_age: 5m
  headers: { x-served-by: bext }
  security_headers: strict
"#,
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"echo\"\n\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);

    // Route limit: only POST /login counts.
    for _ in 0..2 {
        assert_eq!(
            send(b.addr, request("POST", "/login", &[("host", "x")], ""))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        send(b.addr, request("POST", "/login", &[("host", "x")], ""))
            .await
            .status,
        429
    );
    assert_eq!(
        send(b.addr, request("GET", "/login", &[("host", "x")], ""))
            .await
            .status,
        200
    );
    assert_eq!(
        send(b.addr, request("POST", "/other", &[("host", "x")], ""))
            .await
            .status,
        200
    );

    // Per API key: each key its own bucket.
    let api = |key: &'static str| {
        send(
            b.addr,
            request("GET", "/api/items", &[("host", "x"), ("x-api-key", key)], ""),
        )
    };
    for _ in 0..3 {
        assert_eq!(api("key-a").await.status, 200);
    }
    let refused = api("key-a").await;
    assert_eq!(refused.status, 429);
    assert_eq!(api("key-b").await.status, 200, "another key, another bucket");
    // An empty key is no key: it counts by address, as a request without
    // the header does, never in one bucket shared by all who send it.
    for _ in 0..3 {
        assert_eq!(api("").await.status, 200);
    }
    let keyless = send(b.addr, request("GET", "/api/items", &[("host", "x")], "")).await;
    assert_eq!(keyless.status, 429, "the address's bucket the empty keys spent");

    // A refusal still carries CORS headers, so the browser shows the 429.
    let r = send(
        b.addr,
        request(
            "GET",
            "/api/items",
            &[
                ("host", "x"),
                ("x-api-key", "key-a"),
                ("origin", "https://app.example.com"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("ratelimit-remaining"));

    // Preflights are answered by bext; the app never sees them.
    let preflight = |origin: &'static str, method: &'static str| {
        send(
            b.addr,
            request(
                "OPTIONS",
                "/api/items",
                &[
                    ("host", "x"),
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", "content-type, x-api-key"),
                ],
                "",
            ),
        )
    };
    let r = preflight("https://shop.example.org", "PUT").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example.org")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST, PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    assert!(r.text().is_empty(), "not the echo app's answer");
    let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
    assert_eq!(
        vary,
        ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"],
        "one Vary naming Origin once"
    );
    let r = preflight("https://evil.test", "PUT").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers.get_all("vary").iter().count(), 1, "refused: one Vary too");
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "disallowed origins get no CORS headers"
    );
    let r = preflight("https://app.example.com", "DELETE").await;
    assert_eq!(r.header("access-control-allow-origin"), None, "nor disallowed methods");

    // Plain responses: CORS only for allowed origins, headers for all.
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "x"), ("origin", "https://evil.test")], ""),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(r.header("x-served-by"), Some("bext"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("strict-transport-security").unwrap().contains("preload"));

    // Without `override_headers`, a header the app set itself stands; the
    // others are still added.
    let r = send(
        b.addr,
        request(
            "GET",
            "/",
            &[("host", "x"), ("x-echo-set", "x-frame-options=SAMEORIGIN")],
            "",
        ),
    )
    .await;
    let frame: Vec<_> = r.headers.get_all("x-frame-options").iter().collect();
    assert_eq!(frame, ["SAMEORIGIN"], "the app's value, once");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-served-by"), Some("bext"));
}

#[tokio::test]
async fn bad_gateway_settings_are_clear_errors() {
    let s = Site::new();
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  cors: { origins: [\"*\"], credentials: true }\n",
    );
    s.write("www/index.html", "hi");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.a]\nsource = \"www\"\nrate_limit = { rpm = 10, per = \"ip\" }\n",
    );
    let check = |cfg: &std::path::Path| {
        let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check(&cfg);
    assert!(
        err.contains("platform.toml:6:") && err.contains("unknown field `per`"),
        "{err}"
    );
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.a]\nsource = \"www\"\nrate_limit = { rpm = 10, by = \"ip\" }\n",
    );
    let err = check(&cfg);
    assert!(
        err.contains("gateway.yaml") && err.contains("cors.credentials"),
        "{err}"
    );
}

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-gateway-test";

/// An HS256 token for `sub`, signed with `secret`.
fn token(sub: &str, secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `{"alg":"none"}` and a `sub` claim, no signature: what an attacker
/// writes without any key.
fn unsigned(sub: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#.into()),
        b64(format!(r#"{{"sub":"{sub}","exp":4000000000}}"#))
    )
}

/// The echo app behind a gateway with a subject limit of `burst` at once
/// (and a generous per-address limit), and authn if `authn`.
fn subject_platform(s: &Site, upstream: std::net::SocketAddr, authn: bool) -> std::path::PathBuf {
    s.write(
        "manifests/gateway.yaml",
        r#"name: gateway
enabled: true
config:
  limits:
    - { name: per-user, by: subject, rpm: 60, burst: 3 }
    - { name: per-ip, by: ip, rpm: 6000, burst: 100 }
"#,
    );
    if authn {
        s.write(
            "manifests/authn.yaml",
            format!(
                "name: authn\nenabled: true\nconfig:\n  public: [/public/*]\n  jwt:\n    keys:\n      - {{ alg: HS256, secret: \"{JWT_SECRET}\" }}\n"
            ),
        );
    }
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"echo\"\n\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{upstream}\"\n"
    ))
}

async fn with_bearer(addr: std::net::SocketAddr, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        addr,
        request("GET", "/", &[("host", "x"), ("authorization", auth.as_str())], ""),
    )
    .await
}

#[tokio::test]
async fn forged_subjects_never_spend_a_verified_subjects_budget() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&subject_platform(&s, echo.addr, true));

    // Tokens naming the victim, unsigned or signed with a guessed key:
    // authn refuses each; none of them counts in the victim's bucket.
    for forged in [
        unsigned("victim"),
        token("victim", "not-the-key-not-the-key-not-the-key!"),
        unsigned("victim"),
        unsigned("victim"),
        unsigned("victim"),
        token("Victim", "not-the-key-not-the-key-not-the-key!"),
    ] {
        assert_eq!(with_bearer(b.addr, &forged).await.status, 401);
    }

    // On a public path authn lets callers through unverified: forged
    // subjects, naming the victim or rotated, all count in the address's
    // bucket there, never in a bucket of their choosing.
    let mut statuses = Vec::new();
    for forged in [unsigned("victim"), unsigned("a"), unsigned("b"), unsigned("c")] {
        let auth = format!("Bearer {forged}");
        let r = send(
            b.addr,
            request(
                "GET",
                "/public/page",
                &[("host", "x"), ("authorization", auth.as_str())],
                "",
            ),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // The victim's own budget is whole: three at once, then 429.
    let valid = token("victim", JWT_SECRET);
    let first = with_bearer(b.addr, &valid).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.header("ratelimit-limit"),
        Some("3"),
        "the tightest limit is the subject's"
    );
    assert_eq!(first.header("ratelimit-remaining"), Some("2"));
    for _ in 0..2 {
        assert_eq!(with_bearer(b.addr, &valid).await.status, 200);
    }
    let refused = with_bearer(b.addr, &valid).await;
    assert_eq!(refused.status, 429, "a verified subject's limit still applies");
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert!(refused.header("retry-after").is_some());

    // Another verified subject has its own bucket, from the same address.
    assert_eq!(with_bearer(b.addr, &token("other", JWT_SECRET)).await.status, 200);
}

#[tokio::test]
async fn without_authn_subject_limits_count_by_address() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&subject_platform(&s, echo.addr, false));

    // Nobody verifies tokens here, so a `sub` names nothing: rotating it
    // (signed or not) buys no fresh bucket; the address's is shared.
    let subs = ["a", "b", "c", "d", "e"];
    let mut statuses = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        let t = if i % 2 == 0 {
            unsigned(sub)
        } else {
            token(sub, JWT_SECRET)
        };
        statuses.push(with_bearer(b.addr, &t).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let plain = get(b.addr, "x", "/").await;
    assert_eq!(plain.status, 429, "no token: the same address bucket");
    assert_eq!(plain.header("ratelimit-limit"), Some("3"));
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_slash_64() {
    let echo = Echo::start().await;
    let s = Site::new();
    // The WAF believes the proxy on 127.0.0.1, so the test can speak for
    // clients anywhere.
    s.write(
        "manifests/waf.yaml",
        "name: waf\nenabled: true\nconfig:\n  trusted_proxies: [127.0.0.1]\n",
    );
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits:\n    - { name: per-ip, by: ip, rpm: 60, burst: 2 }\n",
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"echo\"\n\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let from = |ip: &'static str| {
        send(
            b.addr,
            request("GET", "/", &[("host", "x"), ("x-forwarded-for", ip)], ""),
        )
    };
    // Three addresses of one /64 are one client: a host that owns the
    // /64 cannot take a fresh bucket per address.
    assert_eq!(from("2001:db8:1:2::1").await.status, 200);
    assert_eq!(from("2001:db8:1:2:ffff:ffff:ffff:fffe").await.status, 200);
    assert_eq!(from("[2001:db8:1:2::abcd]:443").await.status, 429);
    assert_eq!(
        from("2001:db8:1:3::1").await.status,
        200,
        "the next /64 is someone else"
    );
    // IPv4-mapped IPv6 is the IPv4 client.
    assert_eq!(from("::ffff:198.51.100.7").await.status, 200);
    assert_eq!(from("198.51.100.7").await.status, 200);
    assert_eq!(from("::ffff:198.51.100.7").await.status, 429);
    assert_eq!(from("198.51.100.8").await.status, 200, "each IPv4 address");
}

/// How often each of `names` is a header line of a raw HTTP/1 response's
/// head, and the head's status.
fn head_lines(raw: &str, names: &[&str]) -> (u16, Vec<usize>) {
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    let count = |n: &str| head.lines().filter(|l| l.starts_with(&format!("{n}:"))).count();
    (status_of(raw), names.iter().map(|n| count(n)).collect())
}

#[tokio::test]
async fn the_gateways_headers_read_the_same_on_every_path_once_each() {
    // The preset, a configured header and `RateLimit-*` travel next to
    // the response's map on bext's HTTP/1 path; each must be there once,
    // for GET, HEAD and 304, over HTTP/2 too, and an app's own value of
    // one of their names decides as before.
    let echo = Echo::start().await;
    let s = Site::new();
    s.write("www/index.html", "hello");
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits: [{ by: ip, rpm: 600000, burst: 10000 }]\n  security_headers: basic\n  headers: { x-served-by: bext }\n",
    );
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"site\"\n\n[apps.site]\nsource = \"www\"\n\n[apps.framed]\nsource = \"www\"\ndomains = [\"framed.test\"]\nheaders = {{ x-frame-options = \"DENY\" }}\n\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{}\"\ndomains = [\"echo.test\"]\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    let names = [
        "x-frame-options",
        "x-content-type-options",
        "strict-transport-security",
        "referrer-policy",
        "x-served-by",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
    ];
    let once = vec![1; names.len()];
    let ask = |method: &str, host: &str, extra: &str| {
        format!("{method} /index.html HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n{extra}\r\n")
    };
    let wait = Duration::from_secs(5);

    let get = raw_async(b.addr, ask("GET", "site.test", "").as_bytes(), wait).await;
    assert_eq!(head_lines(&get, &names), (200, once.clone()), "{get}");
    assert!(get.contains("\r\nx-frame-options: SAMEORIGIN\r\n"), "{get}");
    assert!(get.contains("\r\nratelimit-limit: 10000\r\n"), "{get}");
    assert!(get.contains("\r\nratelimit-remaining: 9999\r\n"), "{get}");
    assert!(get.ends_with("\r\n\r\nhello"), "{get}");

    let head = raw_async(b.addr, ask("HEAD", "site.test", "").as_bytes(), wait).await;
    assert_eq!(head_lines(&head, &names), (200, once.clone()), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");

    let etag = get
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("the static app sends an etag")
        .to_owned();
    let again = ask("GET", "site.test", &format!("if-none-match: {etag}\r\n"));
    let not_modified = raw_async(b.addr, again.as_bytes(), wait).await;
    assert_eq!(head_lines(&not_modified, &names), (304, once.clone()), "{not_modified}");

    // The app's configured header replaces the preset's value.
    let framed = raw_async(b.addr, ask("GET", "framed.test", "").as_bytes(), wait).await;
    assert_eq!(head_lines(&framed, &names), (200, once.clone()), "{framed}");
    assert!(framed.contains("\r\nx-frame-options: DENY\r\n"), "{framed}");

    // An upstream's own value: the preset's header stands aside, its
    // own rate limit headers are replaced by the gateway's.
    let set = "x-echo-set: x-frame-options=ALLOW-FROM\r\nx-echo-set: ratelimit-policy=own\r\n";
    let proxied = raw_async(b.addr, ask("GET", "echo.test", set).as_bytes(), wait).await;
    assert_eq!(head_lines(&proxied, &names), (200, once.clone()), "{proxied}");
    assert!(proxied.contains("\r\nx-frame-options: ALLOW-FROM\r\n"), "{proxied}");
    assert!(proxied.contains("\r\nratelimit-policy: 10000;w=1\r\n"), "{proxied}");

    // HTTP/2: the same headers, once each, in the map hyper writes.
    let h2 = send_h2(b.addr, request("GET", "/index.html", &[("host", "site.test")], "")).await;
    assert_eq!(h2.status, 200);
    for name in names {
        assert_eq!(h2.headers.get_all(name).iter().count(), 1, "{name}");
    }
    assert_eq!(h2.header("x-served-by"), Some("bext"));
    assert_eq!(h2.header("ratelimit-limit"), Some("10000"));
}
