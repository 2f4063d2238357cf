//! The isr plugin in the real server, in front of a real upstream that
//! counts the requests it gets: hits never reach the app, 304s, what is
//! never cached, keys that keep hosts, tenants and `Vary` values apart,
//! stale-while-revalidate and stale-if-error, the stampede guard (200
//! concurrent requests for a cold key reach the app once), negative
//! caching and the admin endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::support::*;

/// An upstream whose answers depend on the path, each carrying how many
/// times that path was asked for (`n=<count>`):
/// - `/cc/<cache-control>/...`: that `Cache-Control` (`_` for spaces);
/// - `.../slow-refresh`: every answer after the first takes 500 ms;
/// - `.../cookie`: cacheable, but sets a cookie;
/// - `.../me...`: cacheable (wrongly: a misconfigured app), names the
///   caller: `sub=` authn's `x-auth-sub`, `cred=` the credentials sent;
/// - `/vary-cookie`: cacheable, `Vary: Cookie`;
/// - `/slow`: cacheable, after 300 ms;
/// - `/vary`: varies on `Accept-Language`;
/// - `/tagged/<tag>`: `Cache-Tag: <tag>`;
/// - `/reflect`: puts `X-Forwarded-Host` in the page, cacheable;
/// - `/missing`: a 404 with `max-age=3600`;
/// - `/flaky`: fresh for 1 s with `stale-if-error=60`, then 500s.
pub(crate) struct Counting {
    pub(crate) addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

impl Counting {
    pub(crate) async fn start() -> Counting {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let counts = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counts = counts.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let counts = counts.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&counts, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Counting { addr, hits }
    }

    pub(crate) fn count(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn answer(
    counts: &Mutex<HashMap<String, u32>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let n = {
        let mut c = counts.lock().unwrap();
        let n = c.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    if path.ends_with("/slow-refresh") && n > 1 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut b = http::Response::builder().header("content-type", "text/plain");
    let mut body = format!("n={n} path={path}");
    if let Some(rest) = path.strip_prefix("/cc/") {
        let cc = rest.split('/').next().unwrap_or("").replace('_', " ");
        b = b.header("cache-control", cc);
    } else if path.contains("/me") {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let cred = ["authorization", "cookie", "x-api-key", "proxy-authorization", "x-token"]
            .map(h)
            .concat();
        body = format!("{body} sub={} cred={cred}", h("x-auth-sub"));
        b = b.header("cache-control", "public, max-age=60");
    } else if path == "/vary-cookie" {
        b = b
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Encoding, cookie");
    } else if path.ends_with("/cookie") {
        b = b.header("cache-control", "max-age=60").header("set-cookie", "sid=1");
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b = b.header("cache-control", "max-age=60");
    } else if path == "/vary" {
        let lang = req
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        body = format!("{body} lang={lang}");
        b = b
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language");
    } else if let Some(tag) = path.strip_prefix("/tagged/") {
        b = b
            .header("cache-control", "max-age=60")
            .header("cache-tag", format!("all, {tag}"));
    } else if path == "/reflect" {
        // Reflects an unkeyed header, as real apps do with forwarded hosts.
        let fwd = req
            .headers()
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        body = format!("{body} link=https://{fwd}/");
        b = b.header("cache-control", "max-age=60");
    } else if path == "/missing" {
        b = b.status(404).header("cache-control", "max-age=3600");
    } else if path == "/flaky" {
        if n == 1 {
            b = b.header("cache-control", "max-age=1, stale-if-error=60");
        } else {
            b = b.status(500);
            body = "broken".into();
        }
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

/// `shop_platform` (a proxy app on `shop.test` and `*.shop.test`) with the
/// isr plugin on, `negative_ttl: 2s` and `isr_config` lines added.
fn platform(s: &Site, upstream: SocketAddr, isr_config: &str) -> std::path::PathBuf {
    s.write(
        "manifests/isr.yaml",
        format!("name: isr\nenabled: true\nconfig:\n  negative_ttl: 2s\n{isr_config}"),
    );
    shop_platform(s, upstream)
}

async fn fetch(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    send(addr, request("GET", path, &all, "")).await
}

#[tokio::test]
async fn hits_skip_the_app_and_answer_304s() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    let path = "/cc/public,_max-age=60/page";

    let first = fetch(b.addr, "shop.test", &format!("{path}?b=2&a=1"), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let etag = first.header("etag").expect("an ETag is added").to_owned();

    // Same query in another order, with tracking tags: the same entry.
    let again = fetch(b.addr, "shop.test", &format!("{path}?a=1&utm_source=x&b=2"), &[]).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.text(), first.text());
    assert!(again.header("age").is_some());
    assert_eq!(up.count("/cc/public,_max-age=60/page"), 1);

    let head = send(
        b.addr,
        request("HEAD", &format!("{path}?a=1&b=2"), &[("host", "shop.test")], ""),
    )
    .await;
    assert_eq!((head.status, head.header("x-cache")), (200, Some("HIT")));
    let head_first = send(
        b.addr,
        request("HEAD", "/cc/max-age=60/head-first", &[("host", "shop.test")], ""),
    )
    .await;
    assert_eq!(
        head_first.header("x-cache"),
        Some("BYPASS"),
        "HEAD never stores an empty page"
    );
    let get = fetch(b.addr, "shop.test", "/cc/max-age=60/head-first", &[]).await;
    assert_eq!(get.header("x-cache"), Some("MISS"));
    assert!(get.text().starts_with("n=2 "));

    let cond = fetch(
        b.addr,
        "shop.test",
        &format!("{path}?a=1&b=2"),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(cond.status, 304);
    assert!(cond.body.is_empty());
    assert_eq!(cond.header("etag"), Some(etag.as_str()));

    // Another host (here each a tenant) of the same app: its own entry.
    let t1 = fetch(b.addr, "acme.shop.test", &format!("{path}?a=1&b=2"), &[]).await;
    let t2 = fetch(b.addr, "globex.shop.test", &format!("{path}?a=1&b=2"), &[]).await;
    assert_eq!(
        (t1.header("x-cache"), t2.header("x-cache")),
        (Some("MISS"), Some("MISS"))
    );
    assert_eq!(up.count("/cc/public,_max-age=60/page"), 3);
}

#[tokio::test]
async fn what_must_not_be_cached_is_not() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    for path in [
        "/cc/private,_max-age=60",
        "/cc/no-store",
        "/cc/no-cache",
        "/cookie",
        "/cc/",
    ] {
        for _ in 0..2 {
            let r = fetch(b.addr, "shop.test", path, &[]).await;
            assert_eq!(r.header("x-cache"), Some("MISS"), "{path}");
        }
        assert_eq!(up.count(path), 2, "{path} reached the app every time");
    }
    // Requests with credentials, ranges or other methods pass by.
    let p = "/cc/max-age=60/shared";
    fetch(b.addr, "shop.test", p, &[]).await;
    let authed = fetch(b.addr, "shop.test", p, &[("authorization", "Bearer x")]).await;
    assert_eq!(authed.header("x-cache"), Some("BYPASS"));
    let ranged = fetch(b.addr, "shop.test", p, &[("range", "bytes=0-1")]).await;
    assert_eq!(ranged.header("x-cache"), Some("BYPASS"));
    let post = send(b.addr, request("POST", p, &[("host", "shop.test")], "x")).await;
    assert_eq!(post.header("x-cache"), Some("BYPASS"));
    assert_eq!(up.count(p), 4);
    // Cache poisoning: a header the key leaves out cannot put an
    // attacker's value in the page others get. The proxy sets
    // X-Forwarded-Host itself, so the cached page names the real host.
    let poisoned = fetch(b.addr, "shop.test", "/reflect", &[("x-forwarded-host", "evil.test")]).await;
    assert!(
        poisoned.text().contains("link=https://shop.test/"),
        "{}",
        poisoned.text()
    );
    let clean = fetch(b.addr, "shop.test", "/reflect", &[]).await;
    assert_eq!(clean.header("x-cache"), Some("HIT"));
    assert!(!clean.text().contains("evil"));
}

#[tokio::test]
async fn vary_headers_are_part_of_the_key() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    let en = fetch(b.addr, "shop.test", "/vary", &[("accept-language", "en")]).await;
    let fr = fetch(b.addr, "shop.test", "/vary", &[("accept-language", "fr")]).await;
    assert!(en.text().contains("lang=en") && fr.text().contains("lang=fr"));
    let en2 = fetch(b.addr, "shop.test", "/vary", &[("accept-language", "en")]).await;
    assert_eq!(en2.header("x-cache"), Some("HIT"));
    assert!(en2.text().contains("lang=en"));
    assert_eq!(up.count("/vary"), 2);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_for_a_cold_key_reach_the_app_once() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let addr = b.addr;
        tasks.push(tokio::spawn(
            async move { fetch(addr, "shop.test", "/slow", &[]).await },
        ));
    }
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        bodies.insert(r.text());
    }
    assert_eq!(up.count("/slow"), 1, "the stampede guard let one request through");
    assert_eq!(bodies.len(), 1);
}

#[tokio::test]
async fn stale_entries_are_served_while_one_refresh_runs() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(
        &s,
        up.addr,
        "  rules:\n    - { path: /cc/*, ttl: 1s, swr: 1h }\n",
    ));
    // The refresh takes 500 ms, so all five stale requests are answered
    // while it runs.
    let p = "/cc/max-age=0/slow-refresh";
    assert_eq!(fetch(b.addr, "shop.test", p, &[]).await.header("x-cache"), Some("MISS"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale: Vec<Reply> = futures_util::future::join_all((0..5).map(|_| fetch(b.addr, "shop.test", p, &[]))).await;
    for r in &stale {
        assert_eq!(r.header("x-cache"), Some("STALE"));
        assert!(r.text().starts_with("n=1 "), "served at once, the old page");
    }
    // One background refresh, whose answer is then served fresh.
    let refreshed = eventually(Duration::from_secs(5), || async {
        let r = fetch(b.addr, "shop.test", p, &[]).await;
        (r.header("x-cache") == Some("HIT")).then_some(r)
    })
    .await;
    assert!(refreshed.text().starts_with("n=2 "));
    assert_eq!(up.count(p), 2);
}

#[tokio::test]
async fn errors_fall_back_to_stale_and_404s_are_kept_briefly() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    assert_eq!(fetch(b.addr, "shop.test", "/flaky", &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = fetch(b.addr, "shop.test", "/flaky", &[]).await;
    assert_eq!(r.status, 200, "the app's 500 is replaced by the stale page");
    assert_eq!(r.header("x-cache"), Some("STALE"));
    assert_eq!(up.count("/flaky"), 2);

    assert_eq!(fetch(b.addr, "shop.test", "/missing", &[]).await.status, 404);
    let again = fetch(b.addr, "shop.test", "/missing", &[]).await;
    assert_eq!((again.status, again.header("x-cache")), (404, Some("HIT")));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = fetch(b.addr, "shop.test", "/missing", &[]).await;
    assert_eq!(
        later.header("x-cache"),
        Some("MISS"),
        "negative_ttl (2s) caps max-age=3600"
    );
}

#[tokio::test]
async fn admin_endpoints_invalidate_and_revalidate() {
    let up = Counting::start().await;
    let s = Site::new();
    let cfg = platform(&s, up.addr, "");
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    for p in ["/tagged/red", "/tagged/blue", "/cc/max-age=60/x"] {
        fetch(b.addr, "shop.test", p, &[]).await;
        let hit = fetch(b.addr, "shop.test", p, &[]).await;
        assert_eq!(hit.header("x-cache"), Some("HIT"), "{p}");
        assert!(hit.header("cache-tag").is_none(), "tags are for the cache only");
    }
    let admin = |path: &'static str, body: &'static str, token: &'static str| {
        let addr = b.addr;
        async move {
            let auth = format!("Bearer {token}");
            send(
                addr,
                request("POST", path, &[("host", "shop.test"), ("authorization", &auth)], body),
            )
            .await
        }
    };
    assert_eq!(
        admin("/__bext/api/invalidate", r#"{"tags":["red"]}"#, "wrong")
            .await
            .status,
        401
    );
    assert_eq!(admin("/__bext/api/invalidate", "not json", "sekret").await.status, 400);
    let r = admin("/__bext/api/invalidate", r#"{"tags":["red"]}"#, "sekret").await;
    assert_eq!((r.status, r.json()["removed"].as_u64()), (200, Some(1)));
    assert_eq!(
        fetch(b.addr, "shop.test", "/tagged/red", &[]).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        fetch(b.addr, "shop.test", "/tagged/blue", &[]).await.header("x-cache"),
        Some("HIT")
    );

    let r = admin("/__bext/api/invalidate", r#"{"paths":["/tagged/blue"]}"#, "sekret").await;
    assert_eq!(r.json()["removed"].as_u64(), Some(1));
    let r = admin("/__bext/api/invalidate", r#"{"app":"shop"}"#, "sekret").await;
    assert!(r.json()["removed"].as_u64().unwrap() >= 2);
    assert_eq!(
        fetch(b.addr, "shop.test", "/cc/max-age=60/x", &[])
            .await
            .header("x-cache"),
        Some("MISS")
    );

    // Revalidate renders the page now; the next visitor gets the new one.
    let before = up.count("/cc/max-age=60/x");
    let r = admin(
        "/__bext/api/revalidate",
        r#"{"app":"shop","path":"/cc/max-age=60/x","host":"shop.test"}"#,
        "sekret",
    )
    .await;
    assert_eq!(
        (r.json()["status"].as_u64(), r.json()["stored"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(up.count("/cc/max-age=60/x"), before + 1);
    let hit = fetch(b.addr, "shop.test", "/cc/max-age=60/x", &[]).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.text().starts_with(&format!("n={} ", before + 1)));
}

#[tokio::test]
async fn without_a_token_the_endpoints_do_not_exist() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, up.addr, ""));
    let r = send(
        b.addr,
        request("POST", "/__bext/api/invalidate", &[("host", "shop.test")], "{}"),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_rule_keeps_pages_per_caller_never_across_callers() {
    let up = Counting::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(
        &s,
        up.addr,
        "  rules:\n    - { path: /docs/*, ttl: 60s, authorized: true }\n",
    ));
    let as_a = || fetch(b.addr, "shop.test", "/docs/me", &[("authorization", "Bearer a")]);
    let first = as_a().await;
    let again = as_a().await;
    assert_eq!(
        (first.header("x-cache"), again.header("x-cache")),
        (Some("MISS"), Some("HIT")),
        "the same caller twice: its own entry"
    );
    assert!(again.text().contains("cred=Bearer a"), "{}", again.text());
    let other = fetch(b.addr, "shop.test", "/docs/me", &[("authorization", "Bearer b")]).await;
    assert_eq!(
        other.header("x-cache"),
        Some("MISS"),
        "another caller never gets a's page"
    );
    assert!(other.text().contains("cred=Bearer b"), "{}", other.text());
    let anonymous = fetch(b.addr, "shop.test", "/docs/me", &[]).await;
    assert_eq!(anonymous.header("x-cache"), Some("MISS"));
    assert!(!anonymous.text().contains("Bearer"), "{}", anonymous.text());
    assert_eq!(up.count("/docs/me"), 3);
    // Outside the rule, credentials still pass the cache by.
    let outside = fetch(
        b.addr,
        "shop.test",
        "/cc/max-age=60/me",
        &[("authorization", "Bearer a")],
    )
    .await;
    assert_eq!(outside.header("x-cache"), Some("BYPASS"));
}

#[tokio::test]
async fn an_app_cached_through_the_platform_file_can_be_purged() {
    let up = Counting::start().await;
    let s = Site::new();
    let cfg = shop_platform_with(&s, up.addr, "cache = { max_entries = 100 }", "");
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    let p = "/cc/max-age=60/only-this-app";
    fetch(b.addr, "shop.test", p, &[]).await;
    assert_eq!(fetch(b.addr, "shop.test", p, &[]).await.header("x-cache"), Some("HIT"));
    let purge = send(
        b.addr,
        request(
            "POST",
            "/__bext/api/invalidate",
            &[("host", "shop.test"), ("authorization", "Bearer sekret")],
            r#"{"app":"shop"}"#,
        ),
    )
    .await;
    assert_eq!((purge.status, purge.json()["removed"].as_u64()), (200, Some(1)));
    assert_eq!(fetch(b.addr, "shop.test", p, &[]).await.header("x-cache"), Some("MISS"));
}

/// An SSR page the isr cache keeps: its first request (a MISS) is
/// streamed as the render makes it (the shell arrives while the render
/// still waits for its data, which the test holds), stored when it ends,
/// and the next request is a HIT with the whole page. A page over the
/// app's `max_entry_bytes` streams the same way and is not kept.
#[tokio::test]
async fn a_streamed_miss_reaches_the_client_as_it_comes_and_is_stored_at_its_end() {
    let s = Site::new();
    let gate = Gate::start().await;
    s.write(
        "live/index.js",
        format!(
            r#"export async function* render(request) {{
  yield '<p>shell</p>';
  const data = await fetch('http://127.0.0.1:{}/').then((r) => r.text());
  yield '<p>' + data + '</p>';
}}
"#,
            gate.addr.port()
        ),
    );
    let app = |id: &str, cache: &str| {
        format!(
            "[apps.{id}]\nruntime = \"ssr\"\nsource = \"live\"\ndomains = [\"{id}.test\"]\ncache = {{ default_ttl = \"60s\"{cache} }}\nisolate = {{ workers = 1, fetch = {{ allow = [\"127.0.0.1:{}\"] }} }}\n",
            gate.addr.port()
        )
    };
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n{}{}",
        app("kept", ""),
        app("big", ", max_entry_bytes = 16")
    ));
    let b = Bext::serve(&config);
    for (host, stored) in [("kept.test", true), ("big.test", false)] {
        let (mut h1, _c) = h1_client(b.addr).await;
        let req = request("GET", "/menu", &[("host", host)], "");
        // Buffered whole, the head would wait for the gate: no answer.
        let res = tokio::time::timeout(Duration::from_secs(20), h1.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{host}: no answer while the render waits for its data: not streamed"))
            .unwrap();
        assert_eq!(res.headers()["x-cache"], "MISS", "{host}");
        let mut body = res.into_body();
        let shell = read_until(&mut body, "<p>shell</p>").await;
        assert!(!shell.contains("data"), "{host}: {shell}");
        gate.open(&format!("data for {host}")).await;
        let rest = read_until(&mut body, "</p>").await;
        assert_eq!(rest, format!("<p>data for {host}</p>"));
        read_to_end(&mut body).await.unwrap();

        let page = format!("<p>shell</p><p>data for {host}</p>");
        if stored {
            let again = get(b.addr, host, "/menu").await;
            assert_eq!((again.header("x-cache"), again.text()), (Some("HIT"), page));
            assert!(again.header("etag").is_some(), "a kept page has its ETag");
        } else {
            // Not kept: the next request renders again (and waits again).
            let next = tokio::spawn({
                let addr = b.addr;
                let host = host.to_owned();
                async move { get(addr, &host, "/menu").await }
            });
            gate.open(&format!("data for {host}")).await;
            let again = next.await.unwrap();
            assert_eq!((again.header("x-cache"), again.text()), (Some("MISS"), page));
        }
    }
}
