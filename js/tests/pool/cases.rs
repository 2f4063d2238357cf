// The cases `pool.rs` runs once per mode (`MODE`): Web APIs, async
// handlers, plugin hooks, and hostile code (throw, infinite loop,
// allocation bomb, flood) contained.

use std::collections::BTreeMap;
use std::time::Duration;

use bext_js::{Answer, Call, HeaderEdit, IsolatePool, JsError, Kind, Limits, Mode, PluginCtx, RequestHook, Spec};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

struct Fixture {
    _dir: tempfile::TempDir,
    pool: IsolatePool,
}

fn start(kind: Kind, source: &str, limits: Limits) -> Result<Fixture, JsError> {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("index.js");
    std::fs::write(&entry, source).unwrap();
    let env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
    let spec = Spec {
        name: "test".into(),
        entry,
        kind,
        env,
        config: serde_json::json!({ "label": "from-config" }),
        limits: Limits { mode: MODE, ..limits },
        bindings: Default::default(),
    };
    Ok(Fixture {
        pool: IsolatePool::start(spec)?,
        _dir: dir,
    })
}

fn app(source: &str) -> Fixture {
    start(
        Kind::App,
        source,
        Limits {
            workers: 1,
            ..Limits::default()
        },
    )
    .unwrap()
}

fn get(url: &str) -> Call {
    Call::App {
        method: Method::GET,
        url: url.into(),
        headers: HeaderMap::new(),
        body: Bytes::new().into(),
    }
}

fn text_of(answer: Result<Answer, JsError>) -> String {
    match answer.unwrap() {
        Answer::Respond(r) => String::from_utf8(r.body.to_vec()).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn text(pool: &IsolatePool, call: Call) -> (u16, HeaderMap, String) {
    match pool.call(call).await.unwrap() {
        Answer::Respond(r) => (
            r.status.as_u16(),
            r.headers,
            String::from_utf8(r.body.to_vec()).unwrap(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn hello_world_and_env() {
    let f = app(
        "export default { fetch(req, env) { return new Response(`hello ${env.GREETING} ${req.method} ${new URL(req.url).pathname}`) } }",
    );
    let (status, headers, body) = text(&f.pool, get("http://a.test/x/y?z=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello hi GET /x/y");
    assert_eq!(headers["content-type"], "text/plain;charset=UTF-8");
}

#[tokio::test]
async fn async_handler_with_timers_and_json_body() {
    let f = app(r#"
        export default {
          async fetch(req) {
            await new Promise((r) => setTimeout(r, 20));
            const body = await req.json();
            return Response.json({ got: body, n: body.n + 1 }, { status: 201, headers: { 'x-a': '1' } });
          }
        }"#);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let call = Call::App {
        method: Method::POST,
        url: "http://a.test/".into(),
        headers,
        body: Bytes::from_static(br#"{"n":41}"#).into(),
    };
    let (status, headers, body) = text(&f.pool, call).await;
    assert_eq!(status, 201);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-a"], "1");
    assert_eq!(body, r#"{"got":{"n":41},"n":42}"#);
}

#[tokio::test]
async fn web_apis() {
    let f = app(r#"
        export default {
          async fetch(req) {
            const out = [];
            const u = new URL('/a/../b?x=1&y=two+words#h', 'https://user:pw@Example.COM:8443/base/');
            out.push(u.href, u.host, u.pathname, u.searchParams.get('y'), u.origin);
            u.searchParams.append('z', 'a&b');
            out.push(u.search);
            u.pathname = '/c d';
            out.push(u.pathname);
            const sp = new URLSearchParams({ b: '2', a: '1' }); sp.sort();
            out.push(sp.toString(), [...new URLSearchParams('q=%F0%9F%98%80&q=2').getAll('q')].join('|'));
            const bytes = new TextEncoder().encode('héllo €');
            out.push(bytes.length, new TextDecoder().decode(bytes), new TextDecoder().decode(new Uint8Array([0xff])));
            out.push(btoa('hello'), atob('aGVsbG8='));
            try { atob('!!'); } catch (e) { out.push(e.name); }
            const id = crypto.randomUUID();
            out.push(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id));
            const r = crypto.getRandomValues(new Uint32Array(4)); out.push(r.length);
            const h = new Headers([['Set-Cookie', 'a=1'], ['set-cookie', 'b=2'], ['X-B', '1']]);
            h.append('x-b', '2');
            out.push(h.get('x-b'), h.getSetCookie().join(';'), [...h.keys()].join(','));
            const res = new Response(new Uint8Array([104, 105]));
            out.push(await res.clone().text(), (await res.arrayBuffer()).byteLength, res.bodyUsed);
            const stream = new ReadableStream({ start(c) { c.enqueue('a'); c.enqueue(new TextEncoder().encode('b')); c.close(); } });
            out.push(await new Response(stream).text());
            const orig = { m: new Map([[1, { d: new Date(5) }]]), list: [1, 2] }; orig.self = orig;
            const copy = structuredClone(orig);
            out.push(copy !== orig && copy.self === copy && copy.m.get(1).d.getTime() === 5 && copy.list[1] === 2);
            out.push(typeof queueMicrotask, typeof performance.now());
            let waited = await new Promise((r) => { const t = setInterval(() => { clearInterval(t); r('interval'); }, 1); });
            out.push(waited);
            console.log('logged', { a: 1 });
            return new Response(out.join('\n'));
          }
        }"#);
    let (status, _, body) = text(&f.pool, get("http://a.test/")).await;
    assert_eq!(status, 200, "{body}");
    let expected = [
        "https://user:pw@example.com:8443/b?x=1&y=two+words#h",
        "example.com:8443",
        "/b",
        "two words",
        "https://example.com:8443",
        "?x=1&y=two+words&z=a%26b",
        "/c%20d",
        "a=1&b=2",
        "😀|2",
        "10",
        "héllo €",
        "\u{fffd}",
        "aGVsbG8=",
        "hello",
        "InvalidCharacterError",
        "true",
        "4",
        "1, 2",
        "a=1;b=2",
        "set-cookie,set-cookie,x-b",
        "hi",
        "2",
        "true",
        "ab",
        "true",
        "function",
        "number",
        "interval",
    ];
    assert_eq!(body.lines().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn exceptions_fail_the_call_only() {
    let f = app(r#"
        export default { fetch(req) {
          if (req.url.endsWith('/throw')) throw new TypeError('boom');
          if (req.url.endsWith('/reject')) return Promise.reject(new Error('nope'));
          if (req.url.endsWith('/string')) return 'not a response';
          return new Response('fine');
        } }"#);
    let err = f.pool.call(get("http://a.test/throw")).await.unwrap_err();
    assert!(
        matches!(&err, JsError::Exception(m) if m.contains("TypeError: boom")),
        "{err:?}"
    );
    let err = f.pool.call(get("http://a.test/reject")).await.unwrap_err();
    assert!(matches!(&err, JsError::Exception(m) if m.contains("nope")), "{err:?}");
    let err = f.pool.call(get("http://a.test/string")).await.unwrap_err();
    assert!(
        matches!(&err, JsError::Exception(m) if m.contains("must return a Response")),
        "{err:?}"
    );
    assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "fine");
}

#[tokio::test]
async fn infinite_loops_time_out_and_the_isolate_recovers() {
    let limits = Limits {
        workers: 1,
        timeout: Duration::from_millis(200),
        cpu_limit: Duration::from_millis(200),
        ..Limits::default()
    };
    let f = start(
        Kind::App,
        r#"let calls = 0;
        export default { async fetch(req) {
          calls++;
          if (req.url.endsWith('/spin')) { for (;;) { try { while (true) {} } catch (e) {} } }
          if (req.url.endsWith('/hang')) await new Promise(() => setTimeout(() => {}, 60000));
          return new Response(String(calls));
        } }"#,
        limits,
    )
    .unwrap();
    assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "1");
    let err = f.pool.call(get("http://a.test/spin")).await.unwrap_err();
    assert_eq!(err, JsError::Timeout(Duration::from_millis(200)));
    // A fresh isolate: module state starts over. (Shared: the call may run
    // on another thread's isolate of the app, which may have served before.)
    let after_spin = text(&f.pool, get("http://a.test/")).await.2;
    if MODE != Mode::Shared {
        assert_eq!(after_spin, "1");
    }
    let err = f.pool.call(get("http://a.test/hang")).await.unwrap_err();
    assert_eq!(err, JsError::Timeout(Duration::from_millis(200)));
    // A thread's isolate was held by the hung call and is replaced; an
    // inline isolate was free all along and keeps its state. (Shared: any
    // thread's isolate of the app may answer; it answers.)
    let after_hang = text(&f.pool, get("http://a.test/")).await.2;
    match MODE {
        Mode::Threads => assert_eq!(after_hang, "1"),
        Mode::Inline => assert_eq!(after_hang, "3"),
        Mode::Shared => {}
    }
}

#[tokio::test]
async fn allocation_bombs_hit_the_memory_limit() {
    let limits = Limits {
        workers: 1,
        memory_limit: 16 * 1024 * 1024,
        // Filling the heap with small objects takes longer than a huge
        // array's; the test is about memory, not time.
        cpu_limit: Duration::from_secs(30),
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let f = start(
        Kind::App,
        r#"export default { fetch(req) {
          if (req.url.endsWith('/bomb')) { const a = []; for (;;) a.push('x'.repeat(1 << 16) + a.length); }
          if (req.url.endsWith('/crumbs')) { const a = []; for (;;) a.push({ n: a.length }); }
          return new Response('ok');
        } }"#,
        limits,
    )
    .unwrap();
    let err = f.pool.call(get("http://a.test/bomb")).await.unwrap_err();
    assert_eq!(err, JsError::OutOfMemory);
    assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "ok");
    // Small objects fill the heap to the last bytes: QuickJS cannot even
    // make the "out of memory" error and throws `null`.
    let err = f.pool.call(get("http://a.test/crumbs")).await.unwrap_err();
    assert_eq!(err, JsError::OutOfMemory);
    assert!(err.to_string().contains("isolate.memory_limit"), "{err}");
    assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "ok");
}

#[tokio::test]
async fn a_full_queue_is_refused() {
    let limits = Limits {
        workers: 1,
        queue: 1,
        timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let f = start(
        Kind::App,
        "export default { async fetch() { await new Promise((r) => setTimeout(r, 300)); return new Response('slow'); } }",
        limits,
    )
    .unwrap();
    let calls = (0..6).map(|_| f.pool.call(get("http://a.test/")));
    let results = futures_util::future::join_all(calls).await;
    let refused = results.iter().filter(|r| matches!(r, Err(JsError::Overloaded))).count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert!(refused >= 4, "{results:?}");
    assert!(served >= 1, "{results:?}");
}

#[tokio::test]
async fn max_requests_rotates_isolates() {
    let limits = Limits {
        workers: 1,
        max_requests: 2,
        ..Limits::default()
    };
    let f = start(
        Kind::App,
        "let n = 0; export default { fetch() { return new Response(String(++n)); } }",
        limits,
    )
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(text(&f.pool, get("http://a.test/")).await.2);
    }
    // Shared: an app's calls may run on another thread's isolate of it
    // when its last thread is busy with other tests' apps (module state is
    // per isolate), so only the rotation itself is certain: no isolate
    // serves a third request.
    if MODE == Mode::Shared {
        assert!(seen.iter().all(|n| n == "1" || n == "2"), "{seen:?}");
    } else {
        assert_eq!(seen, ["1", "2", "1", "2", "1"]);
    }
}

#[tokio::test]
async fn broken_modules_are_load_errors() {
    let syntax = start(Kind::App, "export default { fetch( { }", Limits::default())
        .err()
        .unwrap();
    assert!(
        matches!(&syntax, JsError::Load(m) if m.contains("SyntaxError") && m.contains("index.js")),
        "{syntax:?}"
    );
    let no_fetch = start(Kind::App, "export default {}", Limits::default()).err().unwrap();
    assert!(
        matches!(&no_fetch, JsError::Load(m) if m.contains("no fetch")),
        "{no_fetch:?}"
    );
    let throws = start(Kind::App, "throw new Error('at load')", Limits::default())
        .err()
        .unwrap();
    assert!(
        matches!(&throws, JsError::Load(m) if m.contains("at load")),
        "{throws:?}"
    );
    let escape = start(
        Kind::App,
        "import x from '../../etc/passwd'; export default { fetch() {} }",
        Limits::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(&escape, JsError::Load(_)), "{escape:?}");
    let bare = start(
        Kind::App,
        "import { Hono } from 'hono'; export default { fetch() {} }",
        Limits::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(&bare, JsError::Load(m) if m.contains("esbuild")), "{bare:?}");
}

/// Symlinks out of the module's directory: the entry, a static import,
/// a dynamic `import()`, a linked directory; links inside still work.
#[cfg(unix)]
#[tokio::test]
async fn modules_are_never_loaded_from_outside_the_directory() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.js"), "export const secret = 'TOP SECRET';").unwrap();
    std::fs::write(
        outside.path().join("app.js"),
        "export default { fetch() { return new Response('outside'); } };",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("lib")).unwrap();
    std::fs::write(d.join("lib/inner.js"), "export const inner = 'inside';").unwrap();
    symlink(outside.path().join("secret.js"), d.join("direct.js")).unwrap();
    symlink(outside.path(), d.join("linked-dir")).unwrap();
    symlink("direct.js", d.join("chain.js")).unwrap();
    symlink("lib/inner.js", d.join("alias.js")).unwrap();
    symlink(outside.path().join("app.js"), d.join("linked-entry.js")).unwrap();
    let spec = |entry: &str, source: &str| {
        if !source.is_empty() {
            std::fs::write(d.join(entry), source).unwrap();
        }
        Spec {
            name: "test".into(),
            entry: d.join(entry),
            kind: Kind::App,
            env: BTreeMap::new(),
            config: serde_json::Value::Null,
            limits: Limits {
                mode: MODE,
                workers: 1,
                ..Limits::default()
            },
            bindings: Default::default(),
        }
    };
    let refused = |r: Result<IsolatePool, JsError>| match r {
        Err(JsError::Load(m)) => m,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("loaded"),
    };
    let m = refused(IsolatePool::start(spec("linked-entry.js", "")));
    assert!(m.contains("outside the app's directory"), "{m}");
    for import in ["./direct.js", "./chain.js", "./linked-dir/secret.js"] {
        let source = format!(
            "import {{ secret }} from '{import}'; export default {{ fetch() {{ return new Response(secret); }} }};"
        );
        let m = refused(IsolatePool::start(spec("static.js", &source)));
        assert!(m.contains("outside the app's directory"), "{import}: {m}");
    }
    let dynamic = IsolatePool::start(spec(
        "dynamic.js",
        "import { inner } from './alias.js';
         export default { async fetch(req) {
           const spec = new URL(req.url).searchParams.get('m');
           try { const m = await import(spec); return new Response(inner + ' ' + JSON.stringify(m)); }
           catch (e) { return new Response('refused: ' + e.message, { status: 403 }); }
         } };",
    ))
    .unwrap();
    for spec in [
        "./direct.js",
        "./chain.js",
        "./linked-dir/secret.js",
        "../secret.js",
        "/etc/passwd",
    ] {
        let (status, _, body) = text(&dynamic, get(&format!("http://a.test/?m={spec}"))).await;
        assert_eq!(status, 403, "{spec}: {body}");
        assert!(!body.contains("SECRET"), "{spec}: {body}");
    }
    let (status, _, body) = text(&dynamic, get("http://a.test/?m=./lib/inner.js")).await;
    assert_eq!((status, body.as_str()), (200, r#"inside {"inner":"inside"}"#));
}

fn plugin_ctx() -> PluginCtx {
    PluginCtx {
        app: Some("shop".into()),
        tenant: None,
        base: String::new(),
        request_id: "42".into(),
        client_ip: "192.0.2.1".into(),
        vars: [("seen".to_string(), "rust".to_string())].into(),
    }
}

#[tokio::test]
async fn plugin_hooks_see_and_change_requests() {
    let f = start(
        Kind::Plugin,
        r#"let label = '';
        export function onInit(config) { label = config.label; }
        export async function onRequest(req, ctx) {
          if (new URL(req.url).pathname === '/deny') return new Response('denied', { status: 403 });
          req.headers.set('x-label', label);
          req.headers.delete('x-secret');
          req.headers.set('x-client', ctx.clientIp);
          ctx.tenant = req.headers.get('x-want-tenant');
          ctx.vars.seen += ',js';
          ctx.vars.count = 2;
        }
        export function onResponse(res, ctx) {
          if (res.status === 404) return new Response('custom 404', { status: 404 });
          res.headers.set('x-app', ctx.app);
        }"#,
        Limits {
            workers: 1,
            ..Limits::default()
        },
    )
    .unwrap();
    let exports = f.pool.exports();
    assert!(exports.on_init && exports.on_request && exports.on_response && !exports.fetch);

    let mut headers = HeaderMap::new();
    headers.insert("x-secret", HeaderValue::from_static("s"));
    headers.insert("x-want-tenant", HeaderValue::from_static("acme"));
    let call = Call::Request {
        hook: RequestHook::OnRequest,
        method: Method::GET,
        url: "http://a.test/x".into(),
        headers,
        body: Bytes::new(),
        ctx: plugin_ctx(),
    };
    match f.pool.call(call).await.unwrap() {
        Answer::Continue {
            edits,
            app,
            tenant,
            vars,
        } => {
            assert_eq!(vars["seen"], "rust,js");
            assert_eq!(vars["count"], "2");
            let mut headers = HeaderMap::new();
            headers.insert("x-secret", HeaderValue::from_static("s"));
            HeaderEdit::apply(edits, &mut headers);
            assert_eq!(headers["x-label"], "from-config");
            assert_eq!(headers["x-client"], "192.0.2.1", "ctx.clientIp");
            assert!(!headers.contains_key("x-secret"));
            assert_eq!(app.as_deref(), Some("shop"));
            assert_eq!(tenant.as_deref(), Some("acme"));
        }
        other => panic!("{other:?}"),
    }
    let deny = Call::Request {
        hook: RequestHook::OnRequest,
        method: Method::GET,
        url: "http://a.test/deny".into(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        ctx: plugin_ctx(),
    };
    match f.pool.call(deny).await.unwrap() {
        Answer::Respond(r) => assert_eq!((r.status.as_u16(), &r.body[..]), (403, &b"denied"[..])),
        other => panic!("{other:?}"),
    }
    let ok = Call::Response {
        status: 200,
        headers: HeaderMap::new(),
        ctx: plugin_ctx(),
    };
    match f.pool.call(ok).await.unwrap() {
        Answer::KeepResponse { edits } => {
            assert_eq!(
                edits,
                [HeaderEdit::Set(
                    "x-app".parse().unwrap(),
                    HeaderValue::from_static("shop")
                )]
            );
        }
        other => panic!("{other:?}"),
    }
    let missing = Call::Response {
        status: 404,
        headers: HeaderMap::new(),
        ctx: plugin_ctx(),
    };
    match f.pool.call(missing).await.unwrap() {
        Answer::Respond(r) => assert_eq!(&r.body[..], b"custom 404"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plugins_that_set_bad_headers_fail_cleanly() {
    let f = start(
        Kind::Plugin,
        "export function onResponse(res) { res.headers._ops.push(0, 'bad name', 'x'); }",
        Limits {
            workers: 1,
            ..Limits::default()
        },
    )
    .unwrap();
    let call = Call::Response {
        status: 200,
        headers: HeaderMap::new(),
        ctx: plugin_ctx(),
    };
    assert!(matches!(f.pool.call(call).await, Err(JsError::BadAnswer(_))));
}

/// Waiting for an isolate is not running: a call queued behind a loop
/// runs with its whole timeout once an isolate is free, on the fresh
/// isolate that replaced the looping one (inline: after the loop was cut
/// off at `cpu_limit`).
#[tokio::test]
async fn calls_that_waited_behind_a_loop_still_run() {
    let limits = Limits {
        workers: 1,
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let f = start(
        Kind::App,
        "let ran = 0; export default { fetch(req) { ran++; if (req.url.endsWith('/spin')) for (;;) {} return new Response(String(ran)); } }",
        limits,
    )
    .unwrap();
    let (spin, waited) = tokio::join!(
        f.pool.call(get("http://a.test/spin")),
        f.pool.call(get("http://a.test/"))
    );
    assert_eq!(spin.unwrap_err(), JsError::Timeout(Duration::from_millis(100)));
    assert_eq!(text_of(waited), "1");
    // Shared: the next call goes to the thread that ran the last one only
    // if that thread is free; here other tests' apps share the pool, so it
    // may run on another thread's isolate of the app (module state is per
    // isolate).
    if MODE != Mode::Shared {
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "2");
    }
}

#[tokio::test]
async fn timers_set_after_the_answer_still_fire() {
    // Shared: the next call may run on another thread's isolate of the app
    // (other tests' apps keep the pool busy), which never saw the timer;
    // tests/e2e/js_budget.rs and js_shared.rs fire timers in that mode.
    if MODE == Mode::Shared {
        return;
    }
    let f = app(r#"
        let fired = 0;
        export default { fetch(req) {
          if (req.url.endsWith('/arm')) setTimeout(() => { fired++; }, 10);
          return new Response(String(fired));
        } }"#);
    assert_eq!(text(&f.pool, get("http://a.test/arm")).await.2, "0");
    let mut seen = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        seen = text(&f.pool, get("http://a.test/")).await.2;
        if seen == "1" {
            break;
        }
    }
    assert_eq!(seen, "1", "the timer never fired");
}

/// A thrown error is reported with its stack, in the user's file, for sync
/// and async throws alike; a thrown non-Error is shown as JSON.
#[tokio::test]
async fn exceptions_carry_their_stack() {
    let f = app(r#"
        function deep() { throw new Error('deep'); }
        export default { async fetch(req) {
          const p = new URL(req.url).pathname;
          if (p === '/sync') deep();
          if (p === '/later') { await new Promise((r) => setTimeout(r, 1)); deep(); }
          if (p === '/type') null.x;
          throw { code: 1 };
        } }"#);
    for p in ["/sync", "/later"] {
        let err = f.pool.call(get(&format!("http://a.test{p}"))).await.unwrap_err();
        let JsError::Exception(m) = &err else { panic!("{err:?}") };
        assert!(m.starts_with("Error: deep\n"), "{m}");
        assert!(m.contains("at deep (") && m.contains("index.js:2:"), "{m}");
        assert!(m.contains("at fetch (") && m.contains("index.js:"), "{m}");
    }
    let err = f.pool.call(get("http://a.test/type")).await.unwrap_err();
    assert!(
        matches!(&err, JsError::Exception(m) if m.starts_with("TypeError: ") && m.contains("index.js:7:")),
        "{err:?}"
    );
    let err = f.pool.call(get("http://a.test/obj")).await.unwrap_err();
    assert_eq!(err, JsError::Exception(r#"uncaught {"code":1}"#.into()));
}

/// `crypto.subtle` digests and HMAC against the published vectors: FIPS
/// 180 ("abc"), RFC 4231 case 2 and RFC 2202 case 2 ("Jefe").
#[tokio::test]
async fn subtle_digest_and_hmac_vectors() {
    let f = app(r#"
        const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
        const enc = (s) => new TextEncoder().encode(s);
        export default { async fetch() {
          const out = [];
          for (const h of ['SHA-1', 'SHA-256', { name: 'sha-384' }, 'SHA-512']) out.push(hex(await crypto.subtle.digest(h, enc('abc'))));
          for (const hash of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) {
            const key = await crypto.subtle.importKey('raw', enc('Jefe'), { name: 'HMAC', hash }, true, ['sign', 'verify']);
            const data = enc('what do ya want for nothing?');
            const sig = await crypto.subtle.sign('HMAC', key, data);
            out.push(hex(sig));
            const bad = new Uint8Array(sig).slice(); bad[0] ^= 1;
            out.push([await crypto.subtle.verify('HMAC', key, sig, data), await crypto.subtle.verify('HMAC', key, bad, data),
              await crypto.subtle.verify('HMAC', key, sig, enc('other'))].join(','));
          }
          const key = await crypto.subtle.importKey('jwk', { kty: 'oct', k: 'SmVmZQ', alg: 'HS256' }, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
          const jwk = await crypto.subtle.exportKey('jwk', key);
          out.push(`${jwk.k} ${jwk.alg} ${key.algorithm.length} ${hex(await crypto.subtle.exportKey('raw', key))}`);
          const errors = [];
          const hidden = await crypto.subtle.importKey('raw', enc('k'), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
          for (const p of [
            () => crypto.subtle.exportKey('raw', hidden),
            () => crypto.subtle.sign('HMAC', hidden, enc('x')),
            () => crypto.subtle.digest('MD5', enc('x')),
            () => crypto.subtle.digest('SHA-256', 'not bytes'),
            () => crypto.subtle.importKey('raw', enc(''), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
            () => crypto.subtle.importKey('raw', enc('k'), { name: 'HMAC', hash: 'SHA-256' }, false, ['encrypt']),
            () => crypto.subtle.encrypt({ name: 'AES-GCM' }, hidden, enc('x')),
          ]) { try { await p(); errors.push('none'); } catch (e) { errors.push(e.name); } }
          out.push(errors.join(','));
          const gen = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-512' }, true, ['sign']);
          out.push(`${gen.algorithm.length} ${(await crypto.subtle.exportKey('raw', gen)).byteLength} ${Object.prototype.toString.call(gen)}`);
          return new Response(out.join('\n'));
        } }"#);
    let (_, _, body) = text(&f.pool, get("http://a.test/")).await;
    let expected = [
        "a9993e364706816aba3e25717850c26c9cd0d89d",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        "true,false,false",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "true,false,false",
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
        "true,false,false",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        "true,false,false",
        "SmVmZQ HS256 32 4a656665",
        "InvalidAccessError,InvalidAccessError,NotSupportedError,TypeError,DataError,SyntaxError,InvalidAccessError",
        "1024 128 [object CryptoKey]",
    ];
    assert_eq!(body.lines().collect::<Vec<_>>(), expected);
}

/// `crypto` and `URLPattern` are getters until first used (their files
/// are most of an isolate's start-up cost), then plain globals.
#[tokio::test]
async fn web_crypto_and_urlpattern_load_on_first_use() {
    let f = app(r#"
        const kind = (n) => ('get' in Object.getOwnPropertyDescriptor(globalThis, n) ? 'lazy' : 'loaded');
        const before = [kind('crypto'), kind('CryptoKey'), kind('URLPattern')];
        export default { async fetch() {
          const uuid = crypto.randomUUID();
          const after = [kind('crypto'), kind('CryptoKey'), kind('URLPattern')];
          const matched = new URLPattern({ pathname: '/:x' }).test('https://a.test/y');
          return new Response([before, after, [kind('URLPattern'), uuid.length, matched, crypto.subtle instanceof SubtleCrypto]].join(' '));
        } }"#);
    let (_, _, body) = text(&f.pool, get("http://a.test/")).await;
    assert_eq!(body, "lazy,lazy,lazy loaded,loaded,lazy loaded,36,true,true");
}

#[tokio::test]
async fn request_headers_reach_javascript_as_sent() {
    // The host hands headers over packed in one string, split when first
    // read: every pair must come back as it was, in order.
    let f = app(r#"
        export default {
          async fetch(req) {
            await null;
            const seen = [];
            req.headers.forEach((v, k) => seen.push(`${k}=[${v}]`));
            seen.push(`cookies=${req.headers.getSetCookie().length}`);
            const copy = new Request(req);
            seen.push(`copy=${copy.headers.get('x-many')}`);
            return new Response(seen.join(' '));
          }
        }"#);
    let mut headers = HeaderMap::new();
    headers.append("x-many", HeaderValue::from_static("one"));
    headers.append("x-many", HeaderValue::from_static("two, three"));
    headers.insert("x-empty", HeaderValue::from_static(""));
    headers.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    headers.insert("set-cookie", HeaderValue::from_static("a=1"));
    headers.append("set-cookie", HeaderValue::from_static("b=2"));
    headers.insert("x-tab", HeaderValue::from_static("a\tb"));
    let call = Call::App {
        method: Method::GET,
        url: "http://a.test/".into(),
        headers,
        body: Bytes::new().into(),
    };
    let (_, _, body) = text(&f.pool, call).await;
    assert_eq!(
        body,
        "set-cookie=[a=1] set-cookie=[b=2] x-empty=[] x-many=[one, two, three] x-raw=[caf\u{fffd}] x-tab=[a\tb] \
         cookies=2 copy=one, two, three"
    );

    let none = text(&f.pool, get("http://a.test/")).await.2;
    assert_eq!(none, "cookies=0 copy=null");
}

#[tokio::test]
async fn a_response_hook_that_answers_with_the_response_it_got_keeps_its_headers() {
    let f = start(
        Kind::Plugin,
        r#"export function onResponse(res) {
          if (res.status === 500) return res.clone();
          return Object.assign(Object.create(Object.getPrototypeOf(res)), res);
        }"#,
        Limits {
            workers: 1,
            ..Limits::default()
        },
    )
    .unwrap();
    for status in [200, 500] {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.append("x-b", HeaderValue::from_static("2"));
        headers.append("x-b", HeaderValue::from_static("3"));
        let call = Call::Response {
            status,
            headers,
            ctx: plugin_ctx(),
        };
        match f.pool.call(call).await.unwrap() {
            Answer::Respond(r) => {
                assert_eq!(r.status.as_u16(), status);
                assert_eq!(r.headers["x-a"], "1", "{status}");
                let b: Vec<_> = r.headers.get_all("x-b").iter().collect();
                assert_eq!(b, ["2", "3"], "{status}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}
