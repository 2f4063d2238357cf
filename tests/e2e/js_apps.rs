//! `runtime = "js"`: the Workers-shaped `fetch` handler in QuickJS
//! isolates, behind vhosts, with its env, limits and failures.

use std::time::Duration;

use crate::support::*;

fn js_platform(s: &Site, isolate: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.hello]
runtime = "js"
source = "hello"
domains = ["hello.test", "*.hello.test"]
env = {{ NAME = "tester" }}

[apps.app]
runtime = "js"
source = "app"
domains = ["app.test"]
{isolate}
"#
    ))
}

const APP: &str = r#"
let served = 0;
export default {
  async fetch(request, env, ctx) {
    served++;
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/echo': {
        const body = await request.text();
        return new Response(body, { status: 201, headers: { 'x-method': request.method, 'x-len': String(body.length) } });
      }
      case '/bytes': return new Response(new Uint8Array([0, 1, 2, 255]), { headers: { 'content-type': 'application/octet-stream' } });
      case '/throw': throw new Error('handler exploded');
      case '/spin': for (;;) {}
      case '/bomb': { const a = []; for (;;) a.push(new Array(100000).fill(a.length)); }
      case '/slow': await new Promise((r) => setTimeout(r, 300)); return new Response('slow');
      case '/served': return new Response(String(served));
      case '/far-timer': setTimeout(() => {}, Number(url.searchParams.get('ms'))); return new Response('armed');
      case '/far-wait': await new Promise((r) => setTimeout(r, Number(url.searchParams.get('ms')))); return new Response('woke');
      case '/url': return new Response(request.url);
      case '/host': return new Response(request.headers.get('host'));
      case '/framing': return new Response('short', { headers: { 'content-length': '999', 'transfer-encoding': 'chunked', connection: 'close' } });
      case '/cookies': {
        const h = new Headers(); h.append('set-cookie', 'a=1'); h.append('set-cookie', 'b=2');
        return new Response('c', { headers: h });
      }
      default: return new Response('app ' + url.pathname + url.search);
    }
  },
};
"#;

#[tokio::test]
async fn the_example_app_serves_with_env_and_tenant() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let b = Bext::serve(&js_platform(&s, ""));

    let r = get(b.addr, "hello.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello from tester!\n");
    let r = get(b.addr, "acme.hello.test", "/json").await;
    assert_eq!(r.json(), serde_json::json!({ "hello": "tester", "tenant": "acme" }));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn bodies_headers_and_binary_round_trip() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let b = Bext::serve(&js_platform(&s, ""));

    let r = send(b.addr, request("POST", "/echo", &[("host", "app.test")], "héllo body")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "héllo body");
    assert_eq!(r.header("x-method"), Some("POST"));
    assert_eq!(r.header("x-len"), Some("10"));

    let r = get(b.addr, "app.test", "/bytes").await;
    assert_eq!(&r.body[..], &[0, 1, 2, 255]);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    let r = get(b.addr, "app.test", "/cookies").await;
    let cookies: Vec<_> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);

    let r = get(b.addr, "app.test", "/a/b?x=1").await;
    assert_eq!(r.text(), "app /a/b?x=1");

    // Framing headers from JS are bext's to set: the body is what was sent.
    let r = get(b.addr, "app.test", "/framing").await;
    assert_eq!((r.status, r.text()), (200, "short".to_owned()));
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(r.header("transfer-encoding").is_none() && r.header("connection").is_none());
}

#[tokio::test]
async fn request_url_keeps_a_port_the_client_named() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let b = Bext::serve(&js_platform(&s, ""));
    let url = |host: &'static str| {
        let addr = b.addr;
        async move {
            send(addr, request("GET", "/url?q=1", &[("host", host)], ""))
                .await
                .text()
        }
    };
    assert_eq!(url("app.test:8080").await, "http://app.test:8080/url?q=1");
    assert_eq!(url("APP.test:8080").await, "http://app.test:8080/url?q=1");
    assert_eq!(
        url("app.test:80").await,
        "http://app.test/url?q=1",
        "the default port is implied"
    );
    assert_eq!(url("app.test").await, "http://app.test/url?q=1");
    // Its `Host` is its URL's, not the client's spelling (what the cache
    // keys on).
    for (sent, seen) in [
        ("APP.test.:8080", "app.test:8080"),
        ("App.Test:80", "app.test"),
        ("app.test", "app.test"),
    ] {
        let r = send(b.addr, request("GET", "/host", &[("host", sent)], "")).await;
        assert_eq!(r.text(), seen, "{sent}");
    }
}

#[tokio::test]
async fn failures_stay_inside_the_request() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let isolate = "[apps.app.isolate]\nworkers = 1\ntimeout = \"300ms\"\nmemory_limit = \"16MiB\"\n";
    let b = Bext::serve(&js_platform(&s, isolate));

    let r = get(b.addr, "app.test", "/throw").await;
    assert_eq!(r.status, 500);
    let named = || {
        b.log()
            .lines()
            .any(|l| l.contains("app=\"app\"") && l.contains("handler exploded"))
    };
    eventually(Duration::from_secs(5), || async { named().then_some(()) }).await;
    // ... with its stack: the frame in the app's own file.
    let log = b.log();
    let at = log.find("handler exploded").unwrap();
    let frame = log[at..].lines().nth(1).unwrap_or_default();
    assert!(frame.contains("at fetch (") && frame.contains("app/index.js:"), "{log}");

    loops_and_bombs_are_contained(&b).await;
}

/// `/spin` gets 504 and `/bomb` 500 (logged as out of memory); the server
/// and the app go on, on a fresh isolate, and so does the other app.
async fn loops_and_bombs_are_contained(b: &Bext) {
    let r = get(b.addr, "app.test", "/spin").await;
    assert_eq!(r.status, 504);
    let r = get(b.addr, "app.test", "/bomb").await;
    assert_eq!(r.status, 500);
    eventually(Duration::from_secs(5), || async {
        b.log().contains("out of memory").then_some(())
    })
    .await;
    let r = get(b.addr, "app.test", "/served").await;
    assert_eq!((r.status, r.text()), (200, "1".to_owned()), "a fresh isolate");
    assert_eq!(get(b.addr, "hello.test", "/").await.status, 200);
}

/// A timer further off than any clock holds (`setTimeout(f, 1e300)`, an
/// `Infinity` from a query) neither kills the isolate's thread between
/// requests nor fails the request waiting on it: that one times out.
#[tokio::test]
async fn a_timer_past_any_clock_leaves_the_isolate_serving() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let isolate = "[apps.app.isolate]\nworkers = 1\ntimeout = \"300ms\"\n";
    let b = Bext::serve(&js_platform(&s, isolate));
    for ms in ["1e300", "Infinity"] {
        let r = get(b.addr, "app.test", &format!("/far-timer?ms={ms}")).await;
        assert_eq!((r.status, r.text()), (200, "armed".to_owned()), "{ms}");
    }
    let r = get(b.addr, "app.test", "/served").await;
    assert_eq!((r.status, r.text()), (200, "3".to_owned()), "the same isolate goes on");
    let r = get(b.addr, "app.test", "/far-wait?ms=1e300").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(get(b.addr, "app.test", "/served").await.status, 200);
}

#[tokio::test]
async fn a_full_queue_answers_503() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let isolate = "[apps.app.isolate]\nworkers = 1\nqueue = 1\n";
    let b = Bext::serve(&js_platform(&s, isolate));
    let calls = (0..8).map(|_| get(b.addr, "app.test", "/slow"));
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 503).count() >= 5, "{statuses:?}");
}

#[tokio::test]
async fn max_requests_rotates_the_isolate() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", APP);
    let b = Bext::serve(&js_platform(&s, "[apps.app.isolate]\nworkers = 1\nmax_requests = 2\n"));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(get(b.addr, "app.test", "/served").await.text());
    }
    assert_eq!(seen, ["1", "2", "1", "2"]);
}

#[tokio::test]
async fn a_changed_module_is_picked_up_by_a_reload() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write(
        "app/index.js",
        "export default { fetch() { return new Response('v1'); } }",
    );
    let b = Bext::serve(&js_platform(&s, ""));
    assert_eq!(get(b.addr, "app.test", "/").await.text(), "v1");
    s.write(
        "app/index.js",
        "export default { fetch() { return new Response('version 2'); } }",
    );
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "app.test", "/").await.text() == "version 2").then_some(())
    })
    .await;
    // A module that no longer loads is refused; the running one keeps serving.
    s.write("app/index.js", "export default { fetch( {");
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        b.log().contains("reload rejected").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "app.test", "/").await.text(), "version 2");
    assert!(b.log().contains("SyntaxError"), "{}", b.log());
}

/// Two apps of one bundle (the same bytes in two directories) run one
/// compile of it: each isolate's stack names its own app's file, and a
/// reload with new code in one app serves the new code there (never the
/// kept bytecode of the old) while the other app keeps its own.
#[tokio::test]
async fn apps_of_one_bundle_share_bytecode_and_a_reload_replaces_it() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let code = |version: &str| {
        format!(
            "export default {{ fetch(request) {{\n  if (new URL(request.url).pathname === '/stack') return new Response(new Error('here').stack);\n  return new Response('{version}');\n}} }};\n"
        )
    };
    s.write("tenant-a/index.js", code("v1"));
    s.write("tenant-b/index.js", code("v1"));
    let platform = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.a]
runtime = "js"
source = "tenant-a"
domains = ["a.test"]
isolate = { workers = 1, max_requests = 2 }

[apps.b]
runtime = "js"
source = "tenant-b"
domains = ["b.test"]
isolate = { workers = 1, max_requests = 2 }
"#,
    );
    let b = Bext::serve(&platform);
    // Enough requests that each app's isolate is replaced (max_requests):
    // the later isolates load the kept bytecode.
    for _ in 0..3 {
        for (host, own, other) in [
            ("a.test", "tenant-a/index.js:2", "tenant-b"),
            ("b.test", "tenant-b/index.js:2", "tenant-a"),
        ] {
            assert_eq!(get(b.addr, host, "/").await.text(), "v1");
            let stack = get(b.addr, host, "/stack").await.text();
            assert!(
                stack.contains("at fetch (") && stack.contains(own) && !stack.contains(other),
                "{host}: {stack}"
            );
        }
    }

    s.write("tenant-a/index.js", code("v2"));
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "a.test", "/").await.text() == "v2").then_some(())
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(b.addr, "a.test", "/").await.text(), "v2");
        assert_eq!(get(b.addr, "b.test", "/").await.text(), "v1");
        let stack = get(b.addr, "b.test", "/stack").await.text();
        assert!(stack.contains("tenant-b/index.js:2"), "{stack}");
    }
}

#[test]
fn check_reports_broken_js_apps() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("app/index.js", "export default { nope: 1 }");
    let out = bext_output(&["check", "--config", js_platform(&s, "").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps.app") && err.contains("no fetch(request, env, ctx)"),
        "{err}"
    );

    std::fs::remove_file(s.path("app/index.js")).unwrap();
    let out = bext_output(&["check", "--config", s.path("platform.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps.app.entry") && err.contains("index.js"), "{err}");
}

/// Hono from the npm registry, bundled with esbuild (`.ci/run` rebuilds
/// the committed bundle from the lockfile and checks it is unchanged).
/// Two isolates: its notes are in the KV binding, so both see them.
#[tokio::test]
async fn a_hono_app_runs_unmodified_with_its_tenant() {
    hono_with("", "workers = 2").await;
}

/// The same app inline, on two HTTP workers (an isolate each).
#[tokio::test]
async fn a_hono_app_runs_inline() {
    hono_with("workers = 2\n", "mode = \"inline\"").await;
}

async fn hono_with(platform: &str, isolate: &str) {
    let dist = repo().join("examples/apps/hono-tenant/dist");
    assert!(
        dist.join("index.js").is_file(),
        "missing {}: run `npm ci && npm run build` in examples/apps/hono-tenant",
        dist.display()
    );
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n{platform}\n[apps.saas]\nruntime = \"js\"\nsource = \"{}\"\ndomains = [\"saas.test\", \"*.saas.test\"]\nkv = [\"NOTES\"]\nisolate = {{ {isolate} }}\n",
        dist.display()
    ));
    let b = Bext::serve(&cfg);

    let r = get(b.addr, "acme.saas.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "Welcome, acme!".to_owned()));
    assert_eq!(r.header("x-tenant"), Some("acme"), "middleware ran after the handler");
    assert!(r.header("x-app-time").is_some());

    let r = get(b.addr, "acme.saas.test", "/api/whoami?x=1&y=two").await;
    assert_eq!(r.json()["tenant"], "acme");
    assert_eq!(r.json()["path"], "/api/whoami");
    assert_eq!(r.json()["query"], serde_json::json!({ "x": "1", "y": "two" }));

    let r = get(b.addr, "saas.test", "/").await;
    assert_eq!(r.text(), "Welcome, public!", "no tenant on the bare domain");

    let post = |host: &'static str, body: &'static str| {
        send(
            b.addr,
            request(
                "POST",
                "/api/notes",
                &[("host", host), ("content-type", "application/json")],
                body,
            ),
        )
    };
    let r = post("acme.saas.test", r#"{"text":"first"}"#).await;
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(post("acme.saas.test", "{}").await.status, 400);
    let r = get(b.addr, "acme.saas.test", &format!("/api/notes/{id}")).await;
    assert_eq!(r.json()["text"], "first");
    // Every isolate answers with the note (module state would differ per
    // isolate: `x-isolate` is module state, and both isolates answer).
    let mut isolates = std::collections::HashSet::new();
    let mut answers = 0;
    while isolates.len() < 2 {
        assert!(answers < 200, "only one isolate ever answered");
        let (one, other) = tokio::join!(
            get(b.addr, "acme.saas.test", "/api/notes"),
            get(b.addr, "acme.saas.test", "/api/notes")
        );
        for r in [one, other] {
            answers += 1;
            let notes = r.json();
            assert_eq!(notes.as_array().map(Vec::len), Some(1), "answer {answers}: {notes}");
            assert_eq!(notes[0]["id"], id.as_str());
            isolates.insert(r.header("x-isolate").unwrap().to_owned());
        }
    }
    let r = get(b.addr, "globex.saas.test", "/api/notes").await;
    assert_eq!(r.json(), serde_json::json!([]), "tenants do not see each other's notes");
    let r = get(b.addr, "acme.saas.test", "/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no route");
    let r = get(b.addr, "acme.saas.test", "/redirect").await;
    assert_eq!((r.status, r.header("location")), (302, Some("/api/whoami")));
}

#[tokio::test]
async fn bext_run_serves_a_js_folder() {
    let s = Site::new();
    let dir = copy_example(&s, "apps/hello-js", "hello");
    let b = Bext::start(&["run", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let r = get(b.addr, "localhost", "/json").await;
    assert_eq!(r.json(), serde_json::json!({ "hello": "world", "tenant": null }));
}

/// `mode = "inline"`: isolates on the HTTP worker itself. One isolate
/// serves overlapping requests (a request waiting on a promise does not
/// hold it), and a loop is cut off at `cpu_limit` without taking the
/// server or the other apps down.
#[tokio::test]
async fn inline_isolates_serve_overlapping_requests_and_contain_loops() {
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write(
        "app/index.js",
        APP.replace(
            "    switch (url.pathname) {",
            "    if (url.pathname === '/wait') return new Response('released by ' + (await gate));\n    \
             if (url.pathname === '/release') { release(url.search); return new Response('ok'); }\n    \
             switch (url.pathname) {",
        )
        .replace(
            "let served = 0;",
            "let served = 0;\nlet release;\nconst gate = new Promise((r) => { release = r; });",
        ),
    );
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let platform = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
workers = 1

[apps.hello]
runtime = "js"
source = "hello"
domains = ["hello.test", "*.hello.test"]
env = { NAME = "tester" }
isolate = { mode = "inline" }

[apps.app]
runtime = "js"
source = "app"
domains = ["app.test"]
isolate = { mode = "inline", cpu_limit = "100ms", memory_limit = "16MiB" }
"#,
    );
    let b = Bext::serve(&platform);

    let r = get(b.addr, "acme.hello.test", "/json").await;
    assert_eq!(r.json(), serde_json::json!({ "hello": "tester", "tenant": "acme" }));
    let r = send(b.addr, request("POST", "/echo", &[("host", "app.test")], "héllo body")).await;
    assert_eq!((r.status, r.text()), (201, "héllo body".to_owned()));

    // One worker, one isolate: the first request waits on a promise the
    // second one resolves.
    let (waiting, releasing) = tokio::join!(get(b.addr, "app.test", "/wait"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        get(b.addr, "app.test", "/release?by-the-second").await
    });
    assert_eq!(releasing.text(), "ok");
    assert_eq!(
        (waiting.status, waiting.text()),
        (200, "released by ?by-the-second".to_owned())
    );

    // A loop is cut off at cpu_limit (the request timeout is 30 s), an
    // allocation bomb at memory_limit; the worker goes on serving.
    loops_and_bombs_are_contained(&b).await;
}

/// A JS app whose `fetch` imports the module named by `?m=` and answers
/// what it exports, or 403 with the error.
const IMPORTER: &str = r#"
import { ok } from './lib/ok.js';
export default {
  async fetch(request) {
    const spec = new URL(request.url).searchParams.get('m');
    try {
      const m = await import(spec);
      return new Response('loaded ' + ok + ' ' + JSON.stringify(m));
    } catch (e) {
      return new Response('refused: ' + (e && e.message), { status: 403 });
    }
  },
};
"#;

/// Nothing outside a JS app's directory is loaded as a module, whatever
/// the way out: a symlinked file (absolute or relative target, to
/// `/etc/passwd` too), a symlinked directory, a chain of links, `../`,
/// an absolute specifier; for the entry, static imports and dynamic ones.
#[cfg(unix)]
#[tokio::test]
async fn modules_outside_the_apps_directory_are_never_loaded() {
    use std::os::unix::fs::symlink;
    let s = Site::new();
    copy_example(&s, "apps/hello-js", "hello");
    s.write("secret.js", "export const secret = 'TOP SECRET';");
    s.write("outside/key.js", "export const key = 'TOP SECRET KEY';");
    s.write("app/index.js", IMPORTER);
    s.write("app/lib/ok.js", "export const ok = 'fine';");
    s.write("app/lib/inner.js", "export const inner = 'inside';");
    symlink(s.path("secret.js"), s.path("app/direct.js")).unwrap();
    symlink("../secret.js", s.path("app/relative.js")).unwrap();
    symlink("/etc/passwd", s.path("app/passwd.js")).unwrap();
    symlink(s.path("outside"), s.path("app/linked-dir")).unwrap();
    symlink(s.path("app/direct.js"), s.path("app/chain-1.js")).unwrap();
    symlink("chain-1.js", s.path("app/chain-2.js")).unwrap();
    symlink("..", s.path("app/up")).unwrap();
    symlink("lib/inner.js", s.path("app/alias.js")).unwrap();
    let b = Bext::serve(&js_platform(&s, ""));
    let import = |spec: &str| {
        let path = format!("/?m={spec}");
        async move { get(b.addr, "app.test", &path).await }
    };

    for spec in [
        "./direct.js",
        "./relative.js",
        "./passwd.js",
        "./linked-dir/key.js",
        "./linked-dir/key",
        "./chain-2.js",
        "./up/secret.js",
        "../secret.js",
        "./lib/../../secret.js",
        "/etc/passwd",
        "./%2e%2e/secret.js",
    ] {
        let spec_text = spec.replace("%2e", ".");
        let r = import(spec).await;
        assert_eq!(r.status, 403, "{spec_text}: {}", r.text());
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("root:"),
            "{spec_text}: {}",
            r.text()
        );
        assert!(
            r.text().contains("outside the app's directory") || r.text().contains("only relative imports"),
            "{spec_text}: a clear reason: {}",
            r.text()
        );
    }
    // Links that stay inside the app still work.
    for spec in ["./alias.js", "./lib/inner.js", "./lib/../alias"] {
        let r = import(spec).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, r#"loaded fine {"inner":"inside"}"#),
            "{spec}"
        );
    }

    // The entry itself, or a static import, linking out: the app does not
    // load at all, and `bext check` says why.
    for (entry, import_line) in [("../secret-app.js", ""), ("./real.js", "import './direct.js';\n")] {
        let s = Site::new();
        copy_example(&s, "apps/hello-js", "hello");
        s.write("secret.js", "export const secret = 'TOP SECRET';");
        s.write(
            "secret-app.js",
            "export default { fetch() { return new Response('outside app'); } };",
        );
        s.write(
            "app/real.js",
            format!("{import_line}export default {{ fetch() {{ return new Response('ok'); }} }};"),
        );
        symlink(s.path("secret.js"), s.path("app/direct.js")).unwrap();
        symlink(entry, s.path("app/index.js")).unwrap();
        let out = bext_output(&["check", "--config", js_platform(&s, "").to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{entry}: {err}");
        assert!(
            err.contains("apps.app") && err.contains("outside the app's directory"),
            "{entry}: {err}"
        );
    }
}
