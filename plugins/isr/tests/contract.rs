//! The isr plugin through its public contract, driven by plugin-abi's
//! [`Harness`] as the kernel drives it: built from its decoded config,
//! `on_init` with a host (a fresh data dir, the tokio runtime for
//! background tasks, an app service for refreshes), then per request
//! `fetch`, `on_request`, the app unless the plugin answered, and
//! `on_response`. The caches are the host's shared value, keyed by app:
//! a harness has a pool of its own unless given one, as a reload hands
//! the kernel's pool to the new instances.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bext_plugin_abi::testing::{Exchange, Harness, TestRequest, request};
use bext_plugin_abi::{
    AppInfo, AppService, Body, Flow, Hook, Plugin, PluginError, Request, Response, SharedPool, Spawner,
};
use bext_plugin_isr::IsrPlugin;
use http::{HeaderValue, StatusCode};

/// Every app id the tests use: each test's app is in the table its
/// plugin sees.
const APPS: [&str; 8] = [
    "miss-hit", "callers", "methods", "cookies", "tags", "stale", "stampede", "rebuilt",
];

/// Headers the app answers `path` with, on its `n`th request.
type Headers = fn(path: &str, n: u32) -> Vec<(&'static str, &'static str)>;

/// The app behind the cache: counts its requests, remembers their
/// targets, and answers the `n`th with `page {n}`.
struct App {
    headers: Headers,
    calls: AtomicU32,
    seen: Mutex<Vec<String>>,
}

impl App {
    fn serve(&self, req: &Request) -> Response {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().unwrap().push(req.uri().to_string());
        let mut res = Response::new(Body::full(format!("page {n}")));
        for (name, value) in (self.headers)(req.uri().path(), n) {
            res.headers_mut().append(name, HeaderValue::from_static(value));
        }
        res
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// One plugin instance in front of one app.
struct Rig {
    h: Harness<IsrPlugin>,
    app: Arc<App>,
    app_id: &'static str,
    _data: tempfile::TempDir,
}

fn table() -> Vec<AppInfo> {
    APPS.iter()
        .map(|id| AppInfo {
            id: (*id).into(),
            domains: vec![],
            tenant_domains: Default::default(),
        })
        .collect()
}

async fn rig(app_id: &'static str, config: serde_json::Value, headers: Headers) -> Rig {
    rig_on(Arc::default(), app_id, config, headers).await
}

/// A rig whose host lends `pool`'s shared values: one pool for two rigs
/// is one process across a reload.
async fn rig_on(pool: Arc<SharedPool>, app_id: &'static str, config: serde_json::Value, headers: Headers) -> Rig {
    assert!(APPS.contains(&app_id), "add `{app_id}` to APPS");
    let data = tempfile::tempdir().unwrap();
    let app = Arc::new(App {
        headers,
        calls: AtomicU32::new(0),
        seen: Mutex::default(),
    });
    let served = app.clone();
    let service: Arc<AppService> = Arc::new(move |target, req| {
        assert_eq!(target.app, app_id);
        let app = served.clone();
        Box::pin(async move { Some(app.serve(&req)) })
    });
    let spawner: Arc<Spawner> = Arc::new(|task| {
        tokio::spawn(task);
    });
    let h = Harness::<IsrPlugin>::builder(config)
        .apps(table())
        .data_dir(data.path())
        .spawner(spawner)
        .app_service(service)
        .shared_pool(pool)
        .start()
        .await
        .unwrap();
    Rig {
        h,
        app,
        app_id,
        _data: data,
    }
}

impl Rig {
    /// `method target` for shop.test, routed to this rig's app.
    fn request(&self, method: &str, target: &str) -> TestRequest {
        request(method, &format!("http://shop.test{target}")).app(self.app_id)
    }

    /// The request through the plugin's hooks; no hook may fail.
    async fn send(&self, req: TestRequest) -> Exchange {
        let ex = self.h.send(req, |req, _| self.app.serve(&req)).await;
        assert!(ex.errors.is_empty(), "{:?}", ex.errors);
        ex
    }

    async fn get(&self, target: &str) -> Exchange {
        self.send(self.request("GET", target)).await
    }
}

/// `(x-cache, body)`, to compare in one assertion.
fn seen(ex: &Exchange) -> (&str, String) {
    (ex.header("x-cache").unwrap_or("(none)"), ex.text())
}

fn page(label: &'static str, n: u32) -> (&'static str, String) {
    (label, format!("page {n}"))
}

fn cacheable(_: &str, _: u32) -> Vec<(&'static str, &'static str)> {
    vec![("cache-control", "max-age=60")]
}

#[tokio::test]
async fn a_cacheable_get_is_a_miss_then_a_hit() {
    let rig = rig("miss-hit", serde_json::json!({}), cacheable).await;
    let first = rig.get("/p").await;
    assert_eq!(seen(&first), page("MISS", 1));
    let etag = first.header("etag").expect("an ETag is made up").to_owned();
    let second = rig.get("/p").await;
    assert_eq!(seen(&second), page("HIT", 1));
    assert!(!second.reached_app);
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_eq!(rig.app.calls(), 1, "a hit never reaches the app");

    let not_modified = rig.send(rig.request("GET", "/p").header("if-none-match", &etag)).await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("x-cache"), Some("HIT"));

    // Tracking parameters are not in the key, nor sent to the app.
    assert_eq!(seen(&rig.get("/p?utm_source=mail").await), page("HIT", 1));
    assert_eq!(seen(&rig.get("/q?utm_source=mail&b=2&a=1").await), page("MISS", 2));
    assert_eq!(seen(&rig.get("/q?a=1&b=2").await), page("HIT", 2));
    assert_eq!(
        rig.app.seen.lock().unwrap().last().unwrap(),
        "http://shop.test/q?a=1&b=2"
    );

    // Another host is another entry.
    let elsewhere = request("GET", "http://other.test/p").app(rig.app_id);
    assert_eq!(seen(&rig.send(elsewhere).await), page("MISS", 3));
    assert_eq!(rig.app.calls(), 3);
}

#[tokio::test]
async fn a_rebuilt_instance_keeps_the_cache_of_the_one_it_replaces() {
    let pool = Arc::new(SharedPool::default());
    let old = rig_on(pool.clone(), "rebuilt", serde_json::json!({}), cacheable).await;
    assert_eq!(seen(&old.get("/p").await), page("MISS", 1));
    // A reload that changed the config: the new instance's `on_init`
    // runs before the old instance is dropped.
    let config = serde_json::json!({"ignore_params": ["ref"]});
    let new = rig_on(pool.clone(), "rebuilt", config.clone(), cacheable).await;
    drop(old);
    let hit = new.get("/p").await;
    assert_eq!(seen(&hit), page("HIT", 1), "stored by the instance replaced");
    assert_eq!(new.app.calls(), 0);

    // Another pool is another process: a cache of its own.
    let apart = rig("rebuilt", serde_json::json!({}), cacheable).await;
    assert_eq!(seen(&apart.get("/p").await), page("MISS", 1));

    // The last instance holding the cache gone, the cache goes too.
    drop(new);
    assert!(pool.is_empty());
    let later = rig_on(pool, "rebuilt", config, cacheable).await;
    assert_eq!(seen(&later.get("/p").await), page("MISS", 1));
}

#[tokio::test]
async fn a_caller_passes_by_unless_a_rule_says_authorized() {
    let config = serde_json::json!({"rules": [{"path": "/account/*", "authorized": true}]});
    let rig = rig("callers", config, cacheable).await;
    let from =
        |subject: &'static str, target: &str| rig.request("GET", target).ctx(|cx| cx.set_subject(subject).unwrap());

    // A verified caller is neither served from nor stored in the cache.
    assert_eq!(seen(&rig.send(from("alice", "/page")).await), page("BYPASS", 1));
    assert_eq!(seen(&rig.send(from("alice", "/page")).await), page("BYPASS", 2));
    // Nor is a request with credentials the cache cannot see through.
    let bearer = rig.request("GET", "/page").header("authorization", "Bearer t");
    assert_eq!(seen(&rig.send(bearer).await), page("BYPASS", 3));
    // The shared page is not handed to a caller.
    assert_eq!(seen(&rig.get("/page").await), page("MISS", 4));
    assert_eq!(seen(&rig.get("/page").await), page("HIT", 4));
    assert_eq!(seen(&rig.send(from("alice", "/page")).await), page("BYPASS", 5));

    // Under `authorized: true`, each caller has a key of its own.
    assert_eq!(seen(&rig.send(from("alice", "/account/me")).await), page("MISS", 6));
    assert_eq!(seen(&rig.send(from("alice", "/account/me")).await), page("HIT", 6));
    assert_eq!(seen(&rig.send(from("bob", "/account/me")).await), page("MISS", 7));
    assert_eq!(
        seen(&rig.get("/account/me").await),
        page("MISS", 8),
        "nor is hers shared"
    );
    assert_eq!(rig.app.calls(), 8);
}

#[tokio::test]
async fn only_gets_and_heads_go_through_the_cache() {
    let rig = rig("methods", serde_json::json!({}), cacheable).await;
    assert_eq!(seen(&rig.send(rig.request("POST", "/")).await), page("BYPASS", 1));
    assert_eq!(seen(&rig.send(rig.request("POST", "/")).await), page("BYPASS", 2));
    // A HEAD is never stored; it is answered from what a GET stored.
    assert_eq!(seen(&rig.send(rig.request("HEAD", "/")).await), page("BYPASS", 3));
    assert_eq!(seen(&rig.get("/").await), page("MISS", 4));
    assert_eq!(seen(&rig.send(rig.request("HEAD", "/")).await), page("HIT", 4));
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let ex = rig.send(rig.request(method, "/")).await;
        assert_eq!(ex.header("x-cache"), Some("BYPASS"), "{method}");
    }
    let ranged = rig.send(rig.request("GET", "/").header("range", "bytes=0-1")).await;
    assert_eq!(ranged.header("x-cache"), Some("BYPASS"));
    let fat = rig.send(rig.request("GET", "/").header("content-length", "3")).await;
    assert_eq!(fat.header("x-cache"), Some("BYPASS"));
    assert_eq!(seen(&rig.get("/").await), page("HIT", 4));
    assert_eq!(rig.app.calls(), 11);
}

#[tokio::test]
async fn answers_that_set_cookies_are_not_stored() {
    fn headers(path: &str, _: u32) -> Vec<(&'static str, &'static str)> {
        match path {
            "/login" => vec![("cache-control", "max-age=60"), ("set-cookie", "sid=1")],
            "/private" => vec![("cache-control", "private, max-age=60")],
            _ => vec![],
        }
    }
    // Even a rule with a TTL does not store them.
    let config = serde_json::json!({"rules": [{"path": "/*", "ttl": "1m"}]});
    let rig = rig("cookies", config, headers).await;
    let first = rig.get("/login").await;
    assert_eq!(seen(&first), page("MISS", 1));
    assert_eq!(
        first.header("set-cookie"),
        Some("sid=1"),
        "the client still gets its cookie"
    );
    assert_eq!(seen(&rig.get("/login").await), page("MISS", 2));
    assert_eq!(seen(&rig.get("/private").await), page("MISS", 3));
    assert_eq!(seen(&rig.get("/private").await), page("MISS", 4));
    // What the rule may keep, it keeps.
    assert_eq!(seen(&rig.get("/plain").await), page("MISS", 5));
    assert_eq!(seen(&rig.get("/plain").await), page("HIT", 5));
}

#[tokio::test]
async fn tag_headers_stay_with_the_cache() {
    fn headers(_: &str, _: u32) -> Vec<(&'static str, &'static str)> {
        vec![
            ("cache-control", "max-age=60"),
            ("cache-tag", "post-1, posts"),
            ("x-bext-tags", "front"),
            ("x-app", "blog"),
        ]
    }
    let rig = rig("tags", serde_json::json!({}), headers).await;
    for expected in ["MISS", "HIT"] {
        let ex = rig.get("/posts/1").await;
        assert_eq!(ex.header("x-cache"), Some(expected));
        assert_eq!(ex.header("cache-tag"), None, "{expected}");
        assert_eq!(ex.header("x-bext-tags"), None, "{expected}");
        assert_eq!(ex.header("x-app"), Some("blog"), "{expected}");
    }
}

#[tokio::test]
async fn a_stale_entry_is_served_while_one_background_request_refreshes_it() {
    fn headers(_: &str, n: u32) -> Vec<(&'static str, &'static str)> {
        if n == 1 {
            // Stale as soon as it is stored, usable stale for an hour.
            vec![("cache-control", "max-age=0, stale-while-revalidate=3600")]
        } else {
            vec![("cache-control", "max-age=3600")]
        }
    }
    let rig = rig("stale", serde_json::json!({}), headers).await;
    assert_eq!(seen(&rig.get("/p").await), page("MISS", 1));
    assert_eq!(seen(&rig.get("/p").await), page("STALE", 1));
    let refreshed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ex = rig.get("/p").await;
            if ex.text() != "page 1" {
                return ex;
            }
            assert_eq!(ex.header("x-cache"), Some("STALE"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the background refresh stores the new page");
    assert_eq!(seen(&refreshed), page("HIT", 2));
    assert_eq!(rig.app.calls(), 2, "one refresh, and stale answers in between");
}

/// Two requests for a cold key, their hooks called by hand to interleave
/// them: the second waits in `on_request` until the first's answer is
/// stored.
#[tokio::test]
async fn requests_for_a_cold_key_wait_for_the_one_that_fetches_it() {
    let rig = rig("stampede", serde_json::json!({}), cacheable).await;
    let isr = rig.h.plugin();
    let routed = |req: TestRequest| {
        let (req, mut cx) = req.into_parts();
        cx.set_app(rig.app_id).unwrap();
        (req, cx)
    };
    let (mut lead_req, mut lead_cx) = routed(rig.request("GET", "/cold"));
    let (mut wait_req, mut wait_cx) = routed(rig.request("GET", "/cold"));
    let lead = isr.on_request(&mut lead_req, &mut lead_cx).resolve().await.unwrap();
    assert!(matches!(lead, Flow::Continue), "the first request goes on to the app");
    let waiting = isr.on_request(&mut wait_req, &mut wait_cx);
    assert!(matches!(waiting, Hook::Later(_)), "the second waits for it");
    let answer_lead = async {
        let mut res = rig.app.serve(&lead_req);
        isr.on_response(&mut res, &mut lead_cx).resolve().await.unwrap();
        res
    };
    let (waited, led) = tokio::join!(waiting.resolve(), answer_lead);
    assert_eq!(led.headers()["x-cache"], "MISS");
    let Flow::Respond(waited) = waited.unwrap() else {
        panic!("the waiting request is answered from the entry the first stored");
    };
    assert_eq!(waited.headers()["x-cache"], "HIT");
    assert_eq!(waited.body().as_bytes(), Some(&b"page 1"[..]));
    assert_eq!(rig.app.calls(), 1);
}

#[test]
fn config_errors_name_their_field() {
    let path = |config: serde_json::Value| match Harness::<IsrPlugin>::builder(config).apps(table()).check() {
        Err(PluginError::Config { path, .. }) => path,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(path(serde_json::json!({"max_entries": 0})), "max_entries");
    assert_eq!(
        path(serde_json::json!({"credential_headers": ["cookie", "a b"]})),
        "credential_headers[1]"
    );
    assert_eq!(
        path(serde_json::json!({"rules": [{"path": "posts/*"}]})),
        "rules[0].path"
    );
    assert_eq!(
        path(serde_json::json!({"rules": [{"path": "/", "ttl": "soon"}]})),
        "rules[0].ttl"
    );
    assert_eq!(
        path(serde_json::json!({"max_entires": 10})),
        "max_entires",
        "unknown fields are refused"
    );
    let defaults = Harness::<IsrPlugin>::builder(serde_json::Value::Null).check();
    assert!(defaults.is_ok(), "no config: all defaults");
}
