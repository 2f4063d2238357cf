//! Bindings in a JS app's `env` (`[apps.<id>] kv`, `secrets`) and
//! `caches.default`: KV in SQLite that survives a restart and keeps apps
//! apart, TTL, list pages, limits as catchable errors, KV in the fleet's
//! Redis shared by two instances and failing softly when Redis goes away.

use std::time::Duration;

use crate::edge::Redis;
use crate::support::*;

/// A module exercising its `env.STORE` and `caches.default` over HTTP.
const APP: &str = r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = url.searchParams;
    const [, route, ...rest] = url.pathname.split('/');
    const key = q.get('key') ?? decodeURIComponent(rest.join('/')); // ?key=: a key a path cannot hold
    const json = (v, status = 200) => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
    try {
      switch (route) {
        case 'kv': {
          if (request.method === 'PUT') {
            const options = {};
            if (q.has('ttl')) options.expirationTtl = Number(q.get('ttl'));
            if (q.has('meta')) options.metadata = JSON.parse(q.get('meta'));
            await env.STORE.put(key, await request.text(), options);
            return new Response('stored', { status: 201 });
          }
          if (request.method === 'DELETE') {
            await env.STORE.delete(key);
            return new Response('deleted');
          }
          const type = q.get('type') || 'text';
          const v = await env.STORE.get(key, { type });
          if (v === null) return new Response('absent', { status: 404 });
          if (type === 'arrayBuffer') return json({ bytes: v.byteLength, isBuffer: v instanceof ArrayBuffer });
          return type === 'json' ? json(v) : new Response(v);
        }
        case 'meta': return json(await env.STORE.getWithMetadata(key));
        case 'list': {
          const o = {};
          for (const k of ['prefix', 'cursor']) if (q.has(k)) o[k] = q.get(k);
          if (q.has('limit')) o.limit = Number(q.get('limit'));
          return json(await env.STORE.list(o));
        }
        case 'bad': {
          const cases = {
            longKey: () => env.STORE.put('k'.repeat(513), 'v'),
            emptyKey: () => env.STORE.get(''),
            bigMeta: () => env.STORE.put('m', 'v', { metadata: { x: 'y'.repeat(1100) } }),
            bigValue: () => env.STORE.put('big', new Uint8Array(25 * 1024 * 1024 + 1)),
            badValue: () => env.STORE.put('v', { not: 'bytes' }),
            badType: () => env.STORE.get('k', 'xml'),
            badTtl: () => env.STORE.put('t', 'v', { expirationTtl: 0.5 }),
            pastExpiration: () => env.STORE.put('t', 'v', { expiration: 1000 }),
            hugeTtl: () => env.STORE.put('t', 'v', { expirationTtl: 1e300 }),
            farExpiration: () => env.STORE.put('t', 'v', { expiration: 1e19 }),
            badLimit: () => env.STORE.list({ limit: 1001 }),
          };
          try {
            await cases[key]();
            return new Response('no error', { status: 500 });
          } catch (e) {
            return json({ name: e.name, message: e.message });
          }
        }
        case 'secret': return new Response(String(env.KV_TEST_SECRET));
        case 'cache': {
          const target = 'https://cache.test/' + key;
          if (request.method === 'PUT') {
            const cc = q.get('cc');
            const res = new Response(await request.text(), { headers: cc ? { 'cache-control': cc, 'x-kept': 'yes' } : { 'x-kept': 'yes' } });
            await caches.default.put(target, res);
            return new Response('put', { status: 201 });
          }
          if (request.method === 'DELETE') return json(await caches.default.delete(target));
          if (request.method === 'POST') {
            try {
              await caches.default.put(new Request(target, { method: 'POST' }), new Response('x'));
              return new Response('no error', { status: 500 });
            } catch (e) {
              return json({ name: e.name, message: e.message });
            }
          }
          const hit = await caches.default.match(target);
          if (!hit) return new Response('miss', { status: 404 });
          return new Response(await hit.text(), { headers: { 'x-kept': hit.headers.get('x-kept') || '' } });
        }
      }
      return new Response('no route', { status: 404 });
    } catch (e) {
      // A store outage reaches the handler as a rejection it can answer.
      return new Response('caught: ' + e.name + ': ' + e.message, { status: 503 });
    }
  },
};
"#;

/// Two apps, `one` and `two`, running the same module with the same
/// namespace name; `extra` goes into the platform file.
fn two_apps(s: &Site, extra: &str) -> std::path::PathBuf {
    s.write("app/index.js", APP);
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
{extra}
[apps.one]
runtime = "js"
source = "app"
domains = ["one.test"]
kv = ["STORE"]

[apps.two]
runtime = "js"
source = "app"
domains = ["two.test"]
kv = ["STORE"]
"#
    ))
}

async fn call(b: &Bext, method: &str, host: &str, path: &str, body: &str) -> Reply {
    send(b.addr, request(method, path, &[("host", host)], body.to_owned())).await
}

#[tokio::test]
async fn kv_in_sqlite_survives_a_restart_and_apps_do_not_see_each_others_keys() {
    let s = Site::new();
    let cfg = two_apps(&s, "");
    let b = Bext::serve(&cfg);
    let r = call(
        &b,
        "PUT",
        "one.test",
        "/kv/user%3A1?meta=%7B%22role%22%3A%22admin%22%7D",
        "{\"name\":\"ada\"}",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(&b, "GET", "one.test", "/kv/user%3A1?type=json", "").await;
    assert_eq!(r.json(), serde_json::json!({ "name": "ada" }));
    let r = call(&b, "GET", "one.test", "/kv/user%3A1?type=arrayBuffer", "").await;
    assert_eq!(r.json(), serde_json::json!({ "bytes": 14, "isBuffer": true }));
    let r = call(&b, "GET", "one.test", "/meta/user%3A1", "").await;
    assert_eq!(
        r.json(),
        serde_json::json!({ "value": "{\"name\":\"ada\"}", "metadata": { "role": "admin" } })
    );

    // The same namespace name in another app is another namespace.
    assert_eq!(call(&b, "GET", "two.test", "/kv/user%3A1", "").await.status, 404);
    let r = call(&b, "GET", "two.test", "/list", "").await;
    assert_eq!(r.json()["keys"], serde_json::json!([]));
    call(&b, "PUT", "two.test", "/kv/user%3A1", "two's own").await;
    assert_eq!(
        call(&b, "GET", "two.test", "/kv/user%3A1", "").await.text(),
        "two's own"
    );
    assert_eq!(
        call(&b, "GET", "one.test", "/kv/user%3A1", "").await.text(),
        "{\"name\":\"ada\"}"
    );

    // A restart reads the same file.
    drop(b);
    let b = Bext::serve(&cfg);
    assert_eq!(
        call(&b, "GET", "one.test", "/kv/user%3A1", "").await.text(),
        "{\"name\":\"ada\"}"
    );
    assert_eq!(
        call(&b, "GET", "two.test", "/kv/user%3A1", "").await.text(),
        "two's own"
    );
    assert_eq!(call(&b, "DELETE", "one.test", "/kv/user%3A1", "").await.status, 200);
    assert_eq!(call(&b, "GET", "one.test", "/kv/user%3A1", "").await.status, 404);
    assert_eq!(
        call(&b, "GET", "two.test", "/kv/user%3A1", "").await.status,
        200,
        "only one's key went"
    );
}

#[tokio::test]
async fn kv_entries_expire_and_list_pages_through_a_prefix() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, ""));
    for k in ["p/3", "p/1", "p/5", "p/2", "p/4", "q/1", "o/1"] {
        assert_eq!(
            call(
                &b,
                "PUT",
                "one.test",
                &format!("/kv/{k}?meta=%7B%22k%22%3A%22{k}%22%7D"),
                k
            )
            .await
            .status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/list?prefix=p/&limit=2&cursor={}", urlencode(c)),
            None => "/list?prefix=p/&limit=2".to_owned(),
        };
        let page = call(&b, "GET", "one.test", &path, "").await.json();
        pages += 1;
        for k in page["keys"].as_array().unwrap() {
            assert_eq!(k["metadata"]["k"], k["name"], "metadata comes with the key");
            seen.push(k["name"].as_str().unwrap().to_owned());
        }
        if page["list_complete"] == true {
            assert!(page.get("cursor").is_none());
            break;
        }
        assert_eq!(page["keys"].as_array().unwrap().len(), 2);
        cursor = Some(page["cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["p/1", "p/2", "p/3", "p/4", "p/5"]);
    assert_eq!(pages, 3);

    // Keys are any UTF-8, a NUL included; a prefix holding one lists them.
    for k in ["n%00a", "n%00b", "nz"] {
        assert_eq!(
            call(&b, "PUT", "one.test", &format!("/kv/?key={k}"), k).await.status,
            201
        );
    }
    let page = call(&b, "GET", "one.test", "/list?prefix=n%00", "").await.json();
    assert_eq!(page["keys"][0]["name"], "n\u{0}a", "{page}");
    assert_eq!(page["keys"].as_array().unwrap().len(), 2, "{page}");

    // An entry with a TTL carries its expiration and goes away by itself.
    assert_eq!(
        call(&b, "PUT", "one.test", "/kv/short?ttl=1", "soon gone").await.status,
        201
    );
    assert_eq!(
        call(&b, "PUT", "one.test", "/kv/long?ttl=3600", "stays").await.status,
        201
    );
    let page = call(&b, "GET", "one.test", "/list?prefix=long", "").await.json();
    let expiration = page["keys"][0]["expiration"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expiration > now + 3000 && expiration <= now + 3600,
        "{expiration} vs {now}"
    );
    eventually(Duration::from_secs(10), || async {
        (call(&b, "GET", "one.test", "/kv/short", "").await.status == 404).then_some(())
    })
    .await;
    let page = call(&b, "GET", "one.test", "/list?prefix=short", "").await.json();
    assert_eq!(page["keys"], serde_json::json!([]), "an expired key is not listed");
    assert_eq!(call(&b, "GET", "one.test", "/kv/long", "").await.text(), "stays");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn kv_limits_and_bad_input_are_errors_the_handler_catches() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, ""));
    for (case, name, needle) in [
        ("longKey", "RangeError", "512"),
        ("emptyKey", "TypeError", "empty"),
        ("bigMeta", "RangeError", "1024"),
        ("bigValue", "RangeError", "26214400"),
        ("badValue", "TypeError", "value"),
        ("badType", "TypeError", "xml"),
        ("badTtl", "RangeError", "expirationTtl"),
        ("pastExpiration", "RangeError", "expiration"),
        // Past any time the stores can hold: not an overflow, nor an
        // entry stored as already expired.
        ("hugeTtl", "RangeError", "year 10000"),
        ("farExpiration", "RangeError", "year 10000"),
        ("badLimit", "RangeError", "limit"),
    ] {
        let r = call(&b, "GET", "one.test", &format!("/bad/{case}"), "").await;
        assert_eq!(r.status, 200, "{case}: {}", r.text());
        assert_eq!(r.json()["name"], name, "{case}: {}", r.text());
        assert!(
            r.json()["message"].as_str().unwrap().contains(needle),
            "{case}: {}",
            r.text()
        );
    }
    let r = call(&b, "GET", "one.test", "/list", "").await;
    assert_eq!(r.json()["keys"], serde_json::json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn kv_in_redis_is_shared_by_the_fleet_and_an_outage_is_a_catchable_rejection() {
    let s = Site::new();
    let mut redis = Redis::start();
    let cfg = two_apps(
        &s,
        &format!("[redis]\nurl = \"{}\"\nprefix = \"kvtest:\"\n", redis.url()),
    );
    let (a, b) = (Bext::serve(&cfg), Bext::serve(&cfg));
    let r = eventually(Duration::from_secs(10), || async {
        let r = call(&a, "PUT", "one.test", "/kv/cart?meta=%7B%22n%22%3A2%7D", "two items").await;
        (r.status == 201).then_some(r)
    })
    .await;
    assert_eq!(r.text(), "stored");
    assert_eq!(
        call(&b, "GET", "one.test", "/kv/cart", "").await.text(),
        "two items",
        "written on A, read on B"
    );
    assert_eq!(
        redis.count_keys("kvtest:kv:one:STORE:e:*"),
        1,
        "kept in Redis, not in the shared data dir"
    );
    let r = call(&b, "GET", "one.test", "/meta/cart", "").await;
    assert_eq!(r.json()["metadata"], serde_json::json!({ "n": 2 }));
    assert_eq!(
        call(&b, "GET", "two.test", "/kv/cart", "").await.status,
        404,
        "apps stay apart in Redis"
    );
    for k in ["a", "b", "c"] {
        call(&b, "PUT", "one.test", &format!("/kv/l/{k}"), k).await;
    }
    let page = call(&a, "GET", "one.test", "/list?prefix=l/&limit=2", "").await.json();
    assert_eq!(page["keys"].as_array().unwrap().len(), 2);
    assert_eq!(page["list_complete"], false);
    let next = format!(
        "/list?prefix=l/&limit=2&cursor={}",
        urlencode(page["cursor"].as_str().unwrap())
    );
    let page = call(&a, "GET", "one.test", &next, "").await.json();
    assert_eq!(page["keys"][0]["name"], "l/c");
    assert_eq!(page["list_complete"], true);

    // TTL by Redis expiry, seen from the other instance.
    call(&a, "PUT", "one.test", "/kv/brief?ttl=1", "x").await;
    eventually(Duration::from_secs(10), || async {
        (call(&b, "GET", "one.test", "/kv/brief", "").await.status == 404).then_some(())
    })
    .await;

    call(&a, "DELETE", "one.test", "/kv/cart", "").await;
    assert_eq!(call(&b, "GET", "one.test", "/kv/cart", "").await.status, 404);

    // Redis goes away: the handler's await rejects, it answers, bext lives.
    redis.stop();
    let r = call(&a, "GET", "one.test", "/kv/l/a", "").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().starts_with("caught: Error: KV STORE.get() failed"),
        "{}",
        r.text()
    );
    let r = call(&b, "PUT", "one.test", "/kv/x", "y").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        call(&a, "GET", "one.test", "/cache/none", "").await.status,
        404,
        "the app still serves"
    );
}

#[tokio::test]
async fn secrets_come_from_the_environment_and_a_missing_one_names_the_app() {
    let s = Site::new();
    s.write("app/index.js", APP);
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.pay]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"pay.test\"]\nsecrets = [\"KV_TEST_SECRET\"]\n",
    );
    let b = Bext::serve_env(
        &cfg,
        &[("KV_TEST_SECRET", "sk_live_hush"), ("BEXT_ADMIN_TOKEN", "sekret")],
    );
    let r = get(b.addr, "pay.test", "/secret").await;
    assert_eq!(r.text(), "sk_live_hush");
    assert!(!b.log().contains("sk_live_hush"), "the value is never logged");
    for path in ["/__bext/health", "/__bext/metrics"] {
        let auth = [("host", "pay.test"), ("authorization", "Bearer sekret")];
        let r = send(b.addr, request("GET", path, &auth, "")).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text().contains("sk_live_hush"), "{path} shows no secret");
    }
    drop(b);

    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("apps.pay") && err.contains("KV_TEST_SECRET"), "{err}");

    // Names that cannot be an `env` key, or clash, are refused with their field.
    let bad = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.pay]\nruntime = \"js\"\nsource = \"app\"\nenv = { A = \"1\" }\nkv = [\"A\", \"my-ns\", \"__proto__\"]\nsecrets = [\"B\", \"B\"]\n[apps.site]\nsource = \"app\"\nkv = [\"C\"]\n",
    );
    let out = bext_output(&["check", "--config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "apps.pay.kv[0]",
        "apps.pay.kv[1]",
        "apps.pay.kv[2]",
        "apps.pay.secrets[1]",
        "apps.site.kv",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[tokio::test]
async fn caches_default_matches_what_was_put_per_app() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, ""));
    assert_eq!(call(&b, "GET", "one.test", "/cache/page", "").await.status, 404);
    assert_eq!(
        call(&b, "PUT", "one.test", "/cache/page?cc=max-age%3D600", "cached body")
            .await
            .status,
        201
    );
    let r = call(&b, "GET", "one.test", "/cache/page", "").await;
    assert_eq!(
        (r.status, r.text(), r.header("x-kept")),
        (200, "cached body".to_owned(), Some("yes"))
    );
    assert_eq!(
        call(&b, "GET", "two.test", "/cache/page", "").await.status,
        404,
        "each app has its own cache"
    );

    call(&b, "PUT", "one.test", "/cache/private?cc=no-store", "never").await;
    assert_eq!(
        call(&b, "GET", "one.test", "/cache/private", "").await.status,
        404,
        "no-store is not kept"
    );

    // A lifetime past any clock (an upstream's `max-age` can say anything)
    // is kept as a long one, not a panic of the isolate.
    let r = call(
        &b,
        "PUT",
        "one.test",
        "/cache/forever?cc=max-age%3D99999999999999999999999",
        "kept",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(call(&b, "GET", "one.test", "/cache/forever", "").await.text(), "kept");

    let r = call(&b, "POST", "one.test", "/cache/page", "").await;
    assert_eq!(r.json()["name"], "TypeError", "only GET requests are cached");
    assert_eq!(call(&b, "DELETE", "one.test", "/cache/page", "").await.json(), true);
    assert_eq!(call(&b, "DELETE", "one.test", "/cache/page", "").await.json(), false);
    assert_eq!(call(&b, "GET", "one.test", "/cache/page", "").await.status, 404);
}

/// examples/apps/kv-js, as docs/js-apps.md runs it.
#[tokio::test]
async fn the_bindings_example_counts_keeps_sessions_and_caches_a_page() {
    let s = Site::new();
    copy_example(&s, "apps/kv-js", "kv-js");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.kv]\nruntime = \"js\"\nsource = \"kv-js\"\ndomains = [\"kv.test\"]\nkv = [\"SESSIONS\"]\nsecrets = [\"STRIPE_KEY\"]\n",
    );
    let b = Bext::serve_env(&cfg, &[("STRIPE_KEY", "sk_test_123")]);
    assert_eq!(get(b.addr, "kv.test", "/visits").await.text(), "visit 1\n");
    assert_eq!(get(b.addr, "kv.test", "/visits").await.text(), "visit 2\n");
    let id = get(b.addr, "kv.test", "/login?user=ada").await.json()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions = get(b.addr, "kv.test", "/sessions").await.json();
    assert_eq!(sessions[0]["id"], id.as_str());
    assert_eq!(sessions[0]["user"], "ada");
    assert!(sessions[0]["expires"].as_u64().is_some());
    let first = get(b.addr, "kv.test", "/slow-page").await.text();
    assert!(first.starts_with("rendered at "), "{first}");
    assert_eq!(
        get(b.addr, "kv.test", "/slow-page").await.text(),
        first,
        "the second answer is the cached one"
    );
    assert_eq!(get(b.addr, "kv.test", "/key-check").await.text(), "stripe key loaded\n");
}

/// SQLite held by another writer: the put waits out the busy timeout off
/// the isolate's thread (inline, with a `cpu_limit` far shorter than that
/// wait, the isolate is not cut off), then rejects with an error the
/// handler catches.
#[tokio::test]
async fn a_busy_sqlite_is_a_catchable_rejection_and_its_wait_is_not_cpu_time() {
    let s = Site::new();
    s.write("app/index.js", APP);
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.one]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"one.test\"]\nkv = [\"STORE\"]\nisolate = { mode = \"inline\", cpu_limit = \"50ms\" }\n",
    );
    let b = Bext::serve(&cfg);
    assert_eq!(call(&b, "PUT", "one.test", "/kv/k", "before").await.status, 201);
    let db = rusqlite::Connection::open(s.path(".bext/kv.sqlite3")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = call(&b, "PUT", "one.test", "/kv/k", "during").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("KV STORE.put() failed: sqlite: database is locked"),
        "{}",
        r.text()
    );
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        call(&b, "GET", "one.test", "/kv/k", "").await.text(),
        "before",
        "nothing was lost"
    );
    assert_eq!(call(&b, "PUT", "one.test", "/kv/k", "after").await.status, 201);
    assert_eq!(call(&b, "GET", "one.test", "/kv/k", "").await.text(), "after");
}

/// With the isr plugin on for the app, `caches.default` lives in the isr
/// store: the isr admin endpoint's invalidation by path drops what the
/// app put (a private memory cache would keep it).
#[tokio::test]
async fn caches_default_is_kept_in_the_isr_store_when_isr_is_on() {
    let s = Site::new();
    s.write("app/index.js", APP);
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.one]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"one.test\"]\ncache = { max_entries = 100 }\n",
    );
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    assert_eq!(
        call(&b, "PUT", "one.test", "/cache/page?cc=max-age%3D600", "in isr")
            .await
            .status,
        201
    );
    assert_eq!(
        call(&b, "PUT", "one.test", "/cache/other?cc=max-age%3D600", "stays")
            .await
            .status,
        201
    );
    assert_eq!(call(&b, "GET", "one.test", "/cache/page", "").await.text(), "in isr");
    let auth = [("host", "one.test"), ("authorization", "Bearer sekret")];
    let r = send(
        b.addr,
        request(
            "POST",
            "/__bext/api/invalidate",
            &auth,
            r#"{"paths":["/page"],"app":"one"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call(&b, "GET", "one.test", "/cache/page", "").await.status,
        404,
        "purged with the app's isr entries"
    );
    assert_eq!(call(&b, "GET", "one.test", "/cache/other", "").await.text(), "stays");
    assert_eq!(call(&b, "DELETE", "one.test", "/cache/other", "").await.json(), true);
    assert_eq!(call(&b, "GET", "one.test", "/cache/other", "").await.status, 404);
}
