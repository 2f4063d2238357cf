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
