//! JavaScript plugins: the js-hello example, and hostile plugins (throw,
//! infinite loop, allocation bomb) contained to the request.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn the_example_plugin_answers_edits_and_blocks() {
    the_example_plugin_with("").await;
}

#[tokio::test]
async fn the_example_plugin_runs_inline() {
    the_example_plugin_with("limits: { mode: inline }\n").await;
}

async fn the_example_plugin_with(limits: &str) {
    let echo = Echo::start().await;
    let s = Site::new();
    copy_example(&s, "plugins/js-hello", "js-hello");
    s.write(
        "manifests/js-hello.yaml",
        format!("name: js-hello\nentry: ../js-hello/plugin.js\nconfig:\n  greeting: hej\n{limits}"),
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));

    let r = get(b.addr, "acme.shop.test", "/js-hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({ "greeting": "hej", "app": "shop", "tenant": "acme" })
    );

    let r = get(b.addr, "shop.test", "/page").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-js-hello"), Some("hej"), "onResponse added a header");
    assert_eq!(
        r.json()["headers"]["x-js-hello"],
        "hej",
        "onRequest set a request header"
    );

    let r = send(
        b.addr,
        request("GET", "/", &[("host", "shop.test"), ("x-block", "yes")], ""),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "blocked by js-hello\n");
}

#[tokio::test]
async fn a_fetch_stage_plugin_can_route() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "router.js",
        "export function fetch(req, ctx) { const t = req.headers.get('x-tenant'); if (t) { ctx.app = 'shop'; ctx.tenant = t; } }",
    );
    s.write(
        "manifests/router.yaml",
        "name: router\nentry: ../router.js\npriority: 5\n",
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let r = send(
        b.addr,
        request("GET", "/x", &[("host", "unknown.test"), ("x-tenant", "globex")], ""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", b.log());
    assert_eq!(r.json()["headers"]["x-vhost-tenant"], "globex");
}

/// `ctx.clientIp` is the client the kernel settled on, as Rust plugins'
/// `cx.client_ip`: the peer, or behind a trusted proxy (the WAF's
/// `trusted_proxies`) the address it reports, IPv4-mapped written as IPv4;
/// in the fetch stage after the WAF's, in `onRequest` and `onResponse`.
#[tokio::test]
async fn a_js_plugin_sees_the_client_address() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "who.js",
        "export function fetch(req, ctx) { req.headers.set('x-fetch-saw', String(ctx.clientIp)); }\n\
         export function onRequest(req, ctx) {\n\
           return Response.json({ fetch: req.headers.get('x-fetch-saw'), onRequest: ctx.clientIp });\n\
         }\n\
         export function onResponse(res, ctx) { res.headers.set('x-client-ip', String(ctx.clientIp)); }\n",
    );
    s.write("manifests/who.yaml", "name: who\nentry: ../who.js\n");
    s.write(
        "manifests/waf.yaml",
        "name: waf\nenabled: true\nconfig:\n  trusted_proxies: [127.0.0.1]\n",
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    for (forwarded, client) in [
        (None, "127.0.0.1"),
        (Some("203.0.113.9"), "203.0.113.9"),
        (Some("198.51.100.1, ::ffff:203.0.113.9"), "203.0.113.9"),
        (Some("2001:db8::7"), "2001:db8::7"),
    ] {
        let mut headers = vec![("host", "shop.test")];
        headers.extend(forwarded.map(|f| ("x-forwarded-for", f)));
        let r = send(b.addr, request("GET", "/who", &headers, "")).await;
        assert_eq!(r.status, 200, "{}", b.log());
        assert_eq!(
            r.json(),
            serde_json::json!({ "fetch": client, "onRequest": client }),
            "X-Forwarded-For {forwarded:?}"
        );
        assert_eq!(r.header("x-client-ip"), Some(client), "onResponse");
    }
}

/// `ctx.clientIp` is read-only: assigning it throws (a module is strict
/// code) and changes nothing for the hooks after it or the access log.
#[tokio::test]
async fn a_js_plugin_cannot_change_the_client_address() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "spoof.js",
        "export function fetch(req, ctx) {\n\
           try { ctx.clientIp = '6.6.6.6'; req.headers.set('x-assign', 'allowed'); }\n\
           catch (e) { req.headers.set('x-assign', e.name); }\n\
           req.headers.set('x-fetch-saw', String(ctx.clientIp));\n\
         }\n\
         export function onRequest(req, ctx) {\n\
           try { ctx.clientIp = '6.6.6.6'; } catch {}\n\
           req.headers.set('x-on-request-saw', String(ctx.clientIp));\n\
         }\n\
         export function onResponse(res, ctx) { res.headers.set('x-client-ip', String(ctx.clientIp)); }\n",
    );
    s.write("manifests/spoof.yaml", "name: spoof\nentry: ../spoof.js\n");
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let log = s.path("access.json");
    let b = Bext::serve(&s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\naccess_log = {{ format = \"json\", path = \"{}\" }}\n\n\
         [apps.shop]\nruntime = \"proxy\"\nupstream = \"http://{}\"\ndomains = [\"shop.test\"]\n",
        log.display(),
        echo.addr
    )));
    let r = send(b.addr, request("GET", "/who", &[("host", "shop.test")], "")).await;
    assert_eq!(r.status, 200, "{}", b.log());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-assign"], "TypeError", "{headers}");
    assert_eq!(headers["x-fetch-saw"], "127.0.0.1");
    assert_eq!(headers["x-on-request-saw"], "127.0.0.1");
    assert_eq!(r.header("x-client-ip"), Some("127.0.0.1"), "onResponse");
    let line = eventually(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().next().map(str::to_owned)
    })
    .await;
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["client"], "127.0.0.1", "{entry}");
}

#[tokio::test]
async fn hostile_plugins_fail_their_request_never_the_server() {
    hostile_plugins_with("  workers: 1\n  timeout: 200ms\n").await;
}

/// Inline, the loop is cut off at `cpu_limit`, on the worker itself.
#[tokio::test]
async fn hostile_inline_plugins_fail_their_request_never_the_server() {
    hostile_plugins_with("  mode: inline\n  cpu_limit: 200ms\n").await;
}

async fn hostile_plugins_with(limits: &str) {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "hostile.js",
        r#"export function onRequest(req) {
          const p = new URL(req.url).pathname;
          if (p === '/throw') throw new Error('plugin threw');
          if (p === '/loop') while (true) {}
          if (p === '/bomb') { const a = []; for (;;) a.push('x'.repeat(1 << 20) + a.length); }
          if (p === '/reject') return Promise.reject(new TypeError('async failure'));
        }"#,
    );
    s.write(
        "manifests/hostile.yaml",
        format!("name: hostile\nentry: ../hostile.js\nlimits:\n{limits}  memory_limit: 8MiB\n"),
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    for (path, needle) in [
        ("/throw", "plugin threw"),
        ("/loop", "timed out"),
        ("/bomb", "out of memory"),
        ("/reject", "async failure"),
    ] {
        let r = get(b.addr, "shop.test", path).await;
        assert_eq!(r.status, 500, "{path}");
        let named = || {
            b.log()
                .lines()
                .any(|l| l.contains("plugin=hostile") && l.contains(needle))
        };
        eventually(Duration::from_secs(5), || async { named().then_some(()) }).await;
        if path == "/throw" {
            // The stack follows on the next line, which the log may not
            // hold yet when the first one is read.
            let framed = || {
                let log = b.log();
                let frame = log[log.find("plugin threw")?..].lines().nth(1)?.to_owned();
                (frame.contains("at onRequest (") && frame.contains("hostile.js:")).then_some(())
            };
            eventually(Duration::from_secs(5), || async { framed() }).await;
        }
        assert_eq!(get(b.addr, "shop.test", "/fine").await.status, 200, "after {path}");
    }
}

/// A plugin that loops on one path: calls queued behind the loops wait for
/// the isolate, and that wait is not charged to their own `timeout`; a full
/// queue is refused with 503 at once.
#[tokio::test]
async fn waiting_for_a_busy_plugin_is_not_its_timeout() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "looper.js",
        r#"export function onRequest(req) {
          const p = new URL(req.url).pathname;
          if (p === '/loop') for (;;) {}
          if (p === '/busy') { const end = Date.now() + 250; while (Date.now() < end) {} }
        }"#,
    );
    s.write(
        "manifests/looper.yaml",
        "name: looper\nentry: ../looper.js\nlimits:\n  workers: 1\n  timeout: 300ms\n  queue: 4\n",
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    // Four calls that each run 250 ms of a 300 ms timeout hold the one
    // isolate for a second; the calls queued behind them wait far longer
    // than their timeout, and still run: only running is timed.
    let busy: Vec<_> = (0..4)
        .map(|_| tokio::spawn(get(b.addr, "shop.test", "/busy")))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let innocent = get(b.addr, "shop.test", "/fine").await;
    assert_eq!(innocent.status, 200, "{}", b.log());
    for call in busy {
        assert_eq!(call.await.unwrap().status, 200, "{}", b.log());
    }

    // More loops than isolate + queue: the extra ones get 503 at once.
    let calls = (0..8).map(|_| get(b.addr, "shop.test", "/loop"));
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&500), "{statuses:?}");
}

/// A JS plugin calls out with `fetch()` within its manifest's
/// `limits.fetch`: it may reach what its `allow` lists, and nothing else.
#[tokio::test]
async fn a_plugin_can_fetch_what_its_limits_allow() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "caller.js",
        r#"export async function onRequest(req) {
          const to = req.headers.get('x-call');
          if (!to) return;
          try {
            const r = await fetch(to, { headers: { 'x-from': 'plugin' } });
            req.headers.set('x-called', `${r.status} ${(await r.json()).headers['x-from']}`);
          } catch (e) {
            return new Response(String(e), { status: 502 });
          }
        }"#,
    );
    s.write(
        "manifests/caller.yaml",
        format!(
            "name: caller\nentry: ../caller.js\nlimits:\n  fetch:\n    allow: [\"localhost:{}\"]\n    timeout: 2s\n",
            echo.addr.port()
        ),
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let port = echo.addr.port();
    let allowed = format!("http://localhost:{port}/");
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "shop.test"), ("x-call", &allowed)], ""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-called"], "200 plugin");
    let refused = format!("http://127.0.0.1:{port}/");
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "shop.test"), ("x-call", &refused)], ""),
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("private address not in isolate.fetch.allow"),
        "{}",
        r.text()
    );
}

/// A JS plugin with `limits.max_body_bytes` reads the request body (here
/// to refuse JSON naming `admin`), however the client spells or frames
/// it; a body over its limit is 413 before it runs, and the app still gets
/// every byte the plugin read.
#[tokio::test]
async fn a_plugin_reads_the_body_within_its_limit() {
    a_plugin_reads_the_body_with("").await;
}

/// Inline too: the body reaches the hook on the HTTP worker.
#[tokio::test]
async fn an_inline_plugin_reads_the_body_within_its_limit() {
    a_plugin_reads_the_body_with("  mode: inline\n").await;
}

async fn a_plugin_reads_the_body_with(limits: &str) {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write(
        "guard.js",
        r#"export async function onRequest(req) {
          if (req.method !== 'POST') return;
          let doc;
          try { doc = await req.json(); } catch { return new Response('not json\n', { status: 400 }); }
          if (doc !== null && typeof doc === 'object' && Object.hasOwn(doc, 'admin')) {
            return new Response('no admin here\n', { status: 403 });
          }
          req.headers.set('x-guard-read', String(JSON.stringify(doc).length));
        }"#,
    );
    s.write(
        "manifests/guard.yaml",
        format!("name: guard\nentry: ../guard.js\nlimits:\n  max_body_bytes: 64\n{limits}"),
    );
    s.write(
        "app/index.js",
        "export default { async fetch(r) { return new Response(`${r.headers.get('x-guard-read')} ${await r.text()}`) } }",
    );
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.app]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"app.test\"]\n",
    );
    let b = Bext::serve(&cfg);
    let post = |body: &'static str| send(b.addr, request("POST", "/", &[("host", "app.test")], body));

    let r = post(r#"{"name":"ada"}"#).await;
    assert_eq!(
        (r.status, r.text()),
        (200, r#"14 {"name":"ada"}"#.to_owned()),
        "{}",
        b.log()
    );
    for hostile in [
        r#"{"admin":true}"#,
        r#"{"\u0061dmin":true}"#,
        r#"{"name":"x","admin":1,"name":"y"}"#,
        " \n{\"admin\" : null}",
    ] {
        let r = post(hostile).await;
        assert_eq!((r.status, r.text()), (403, "no admin here\n".to_owned()), "{hostile}");
    }
    // Chunked, with no declared length: read all the same.
    let chunked = raw(
        b.addr,
        b"POST / HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\n{\"adm\r\n9\r\nin\":true}\r\n0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(chunked.starts_with("HTTP/1.1 403"), "{chunked}");
    let chunked = raw(
        b.addr,
        b"POST / HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\n{\"nam\r\n9\r\ne\":\"bob\"}\r\n0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(chunked.ends_with(r#"14 {"name":"bob"}"#), "{chunked}");

    // 64 bytes pass, 65 are refused, declared or chunked.
    let at_limit = format!(r#"{{"pad":"{}"}}"#, "x".repeat(54));
    assert_eq!(at_limit.len(), 64);
    let r = send(b.addr, request("POST", "/", &[("host", "app.test")], at_limit.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().ends_with(&at_limit));
    let over = format!(r#"{{"pad":"{}"}}"#, "x".repeat(55));
    let r = send(b.addr, request("POST", "/", &[("host", "app.test")], over.clone())).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text(),
        "request body over 64 bytes, the max_body_bytes of plugin guard\n"
    );
    let chunked_over = format!(
        "POST / HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n20\r\n{}\r\n21\r\n{}\r\n0\r\n\r\n",
        &over[..32],
        &over[32..]
    );
    let r = raw(b.addr, chunked_over.as_bytes(), Duration::from_secs(5));
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert_eq!(
        get(b.addr, "app.test", "/").await.status,
        200,
        "GET has no body to read"
    );
}

/// Without `max_body_bytes` a plugin sees no body (and bodies stream past
/// it); an app may not set it.
#[test]
fn max_body_bytes_is_a_plugin_s_limit() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", "export default { fetch() { return new Response('') } }");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.app]\nruntime = \"js\"\nsource = \"app\"\nisolate = { max_body_bytes = \"1KiB\" }\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps.app.isolate.max_body_bytes") && err.contains("[platform] max_body_bytes"),
        "{err}"
    );
}

/// A plugin's `fetch()` keeps the apps' SSRF rules: `*` reaches public
/// hosts only, so loopback is refused by every spelling, and a port not
/// listed is refused even on a listed name.
#[tokio::test]
async fn a_plugin_s_fetch_is_refused_by_the_ssrf_rules() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write(
        "caller.js",
        r#"export async function onRequest(req) {
          const to = req.headers.get('x-call');
          try { await fetch(to); } catch (e) { return new Response(String(e), { status: 502 }); }
          return new Response('reached\n');
        }"#,
    );
    let port = echo.addr.port();
    s.write(
        "manifests/caller.yaml",
        format!(
            "name: caller\nentry: ../caller.js\nlimits:\n  fetch:\n    allow: [\"*\", \"*:{port}\", \"localhost\"]\n"
        ),
    );
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    for to in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://LOCALHOST.:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let r = send(
            b.addr,
            request("GET", "/", &[("host", "shop.test"), ("x-call", &to)], ""),
        )
        .await;
        assert_eq!(r.status, 502, "{to}: {}", r.text());
        assert!(r.text().contains("not in isolate.fetch.allow"), "{to}: {}", r.text());
    }
    let to = format!("http://localhost:{port}/");
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "shop.test"), ("x-call", &to)], ""),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains(&format!("port {port} is not in isolate.fetch.allow")),
        "{}",
        r.text()
    );
}

#[test]
fn broken_js_plugins_are_load_errors() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("bad.js", "export function onRequest( {");
    s.write("manifests/bad.yaml", "name: bad\nentry: ../bad.js\n");
    s.write("manifests/missing.yaml", "name: missing\nentry: ../missing.js\n");
    s.write("manifests/odd.yaml", "name: odd\nentry: ../plugin.py\n");
    let cfg = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("SyntaxError"), "{err}");
    assert!(
        err.contains("missing.yaml") && err.contains("missing.js: no such file"),
        "{err}"
    );
    assert!(err.contains("odd.yaml") && err.contains("entry"), "{err}");
}
