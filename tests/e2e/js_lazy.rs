//! JS apps start their isolates on their first request and drop them when
//! idle (`isolate.idle_evict`): thousands of configured apps cost nothing
//! until they are used. Isolate threads are named `bext-js-N`, so the
//! tests count them in `/proc/<pid>/task`.

use std::time::Duration;

use crate::support::*;

/// Counts isolate threads: the running ones are `bext-js-<i>`.
fn isolate_threads(b: &Bext) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", b.pid())).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| {
            let n = name.trim().strip_prefix("bext-js-").unwrap_or_default();
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
        .count()
}

/// Waits until `n` isolate threads run.
async fn threads_become(b: &Bext, n: usize) {
    eventually(Duration::from_secs(20), || async {
        (isolate_threads(b) == n).then_some(())
    })
    .await;
}

const COUNTER: &str = "let served = 0; export default { fetch() { served++; return new Response(String(served)); } }";

fn two_apps(s: &Site, a_isolate: &str) -> std::path::PathBuf {
    s.write("a/index.js", COUNTER);
    s.write("b/index.js", COUNTER);
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.a]
runtime = "js"
source = "a"
domains = ["a.test"]
isolate = {{ {a_isolate} }}

[apps.b]
runtime = "js"
source = "b"
domains = ["b.test"]
"#
    ))
}

#[tokio::test]
async fn an_app_starts_its_isolates_on_its_first_request() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, "workers = 3"));
    assert_eq!(isolate_threads(&b), 0, "isolate threads before any request");

    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    // a's three isolates, and none of b's.
    threads_become(&b, 3).await;
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1");
    threads_become(&b, 5).await;
}

#[tokio::test]
async fn an_idle_app_drops_its_isolates_and_the_next_request_starts_them_again() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, r#"workers = 1, idle_evict = "1s""#));
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "2");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1");
    threads_become(&b, 3).await;

    // a's isolate goes with its thread; b (default 5m) keeps its two.
    threads_become(&b, 2).await;
    // A fresh isolate: module state starts again.
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    threads_become(&b, 3).await;
    // b's two isolates are still there: serving starts none.
    assert_eq!(get(b.addr, "b.test", "/").await.status, 200);
    assert_eq!(isolate_threads(&b), 3);
}

#[tokio::test]
async fn many_concurrent_first_requests_are_all_answered() {
    let s = Site::new();
    let b = Bext::serve(&two_apps(&s, r#"workers = 2, idle_evict = "1s""#));
    for round in 0..2 {
        let calls = (0..16).map(|_| get(b.addr, "a.test", "/"));
        for reply in futures_util::future::join_all(calls).await {
            assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        }
        threads_become(&b, 0).await; // evicted before the next round's cold start
    }
}

#[test]
fn a_module_that_throws_while_loading_is_reported_by_check() {
    let s = Site::new();
    let cfg = two_apps(&s, "");
    s.write(
        "a/index.js",
        "throw new Error('boom while loading');\nexport default { fetch() {} }",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps.a") && err.contains("boom while loading"), "{err}");
}

/// The detailed `/__bext/health` (with the admin token `serve_admin` sets).
async fn health(b: &Bext) -> serde_json::Value {
    let req = request(
        "GET",
        "/__bext/health",
        &[("host", "admin.test"), ("authorization", "Bearer sekret")],
        "",
    );
    let r = send(b.addr, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The state `/__bext/health` gives app `id` (`checking`, `ready`, `failed`)
/// and its reason.
async fn app_state(b: &Bext, id: &str) -> (String, String) {
    let h = health(b).await;
    let app = h["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
        .clone();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (text(&app["state"]), text(&app["reason"]))
}

fn serve_admin(cfg: &std::path::Path) -> Bext {
    Bext::serve_env(cfg, &[("BEXT_ADMIN_TOKEN", "sekret")])
}

/// The first start of `bext serve` checks modules after it listens: a
/// broken app does not keep the others from serving. It answers 503 with
/// the reason, which the log and the health details name too.
#[tokio::test]
async fn serve_starts_with_a_broken_app_which_answers_503_with_its_reason() {
    let s = Site::new();
    let broken = "\n[apps.broken]\nruntime = \"js\"\nsource = \"broken\"\ndomains = [\"broken.test\"]\n";
    let cfg = one_bundle(&s, 20, broken);
    s.write("broken/index.js", "export default { fetch( {");
    let b = serve_admin(&cfg);
    for i in [0, 7, 19] {
        assert_eq!(get(b.addr, &format!("t{i}.test"), "/").await.text(), "tenant 1");
    }
    let r = get(b.addr, "broken.test", "/").await;
    assert_eq!(r.status, 503, "{}", r.text());
    // The client learns which app, never the reason (paths, source lines).
    assert_eq!(
        r.text(),
        "app broken did not load (the reason is in the server's log)\n"
    );
    let (state, reason) = app_state(&b, "broken").await;
    assert_eq!(state, "failed");
    assert!(reason.contains("SyntaxError"), "{reason}");
    assert_eq!(app_state(&b, "t7").await.0, "ready");
    assert!(
        b.log().contains("app broken: did not load") && b.log().contains("SyntaxError"),
        "{}",
        b.log()
    );
    // Another request gets the same answer (the check is not run again).
    assert_eq!(get(b.addr, "broken.test", "/").await.status, 503);

    // A reload is strict: the broken app is checked again, and refused.
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        b.log().contains("reload rejected").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "t7.test", "/").await.text(), "tenant 2");
    assert_eq!(get(b.addr, "broken.test", "/").await.status, 503);

    // Fixed, the reload goes through and the app serves.
    s.write(
        "broken/index.js",
        "export default { fetch() { return new Response('mended'); } };",
    );
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "broken.test", "/").await.text() == "mended").then_some(())
    })
    .await;
    assert_eq!(app_state(&b, "broken").await.0, "ready");
}

/// Apps of code of their own, each slow to load (~0.2 s of its top level):
/// the background check takes seconds to reach the last, whose first
/// request checks it at once and is served.
#[tokio::test]
async fn an_app_still_queued_for_its_check_is_checked_by_its_first_request() {
    let s = Site::new();
    let mut apps = String::new();
    for i in 0..20 {
        s.write(
            &format!("s{i}/index.js"),
            format!(
                "// app {i}\nconst until = Date.now() + 200; while (Date.now() < until) {{}}\nexport default {{ fetch() {{ return new Response('slow {i}'); }} }};\n"
            ),
        );
        apps.push_str(&format!(
            "\n[apps.s{i}]\nruntime = \"js\"\nsource = \"s{i}\"\ndomains = [\"s{i}.test\"]\n"
        ));
    }
    let cfg = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n{apps}"));
    let b = serve_admin(&cfg);
    // Checked in the order of their ids: s9 is last, 19 × 0.2 s away.
    assert_eq!(app_state(&b, "s9").await.0, "checking");
    let r = get(b.addr, "s9.test", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "slow 9"));
    assert_eq!(app_state(&b, "s9").await.0, "ready");
    // The background check carries on through the others.
    eventually(Duration::from_secs(60), || async {
        (app_state(&b, "s8").await.0 == "ready").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "s3.test", "/").await.text(), "slow 3");
}

#[test]
fn a_bad_idle_evict_is_a_clear_error() {
    let s = Site::new();
    let cfg = two_apps(&s, r#"idle_evict = "soon""#);
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps.a.isolate.idle_evict") && err.contains("`soon` is not a duration"),
        "{err}"
    );
}

#[tokio::test]
async fn isolates_started_late_run_the_module_checked_at_load() {
    let s = Site::new();
    let b = serve_admin(&two_apps(&s, r#"workers = 1, idle_evict = "1s""#));
    // Changed on disk after its check, without a reload: neither the first
    // isolate nor the one after an eviction may run it.
    eventually(Duration::from_secs(20), || async {
        (app_state(&b, "a").await.0 == "ready").then_some(())
    })
    .await;
    s.write("a/index.js", "export default { fetch( {");
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    threads_become(&b, 0).await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
}

/// `n` apps `t0`..`t{n-1}` from one bundle (the same `index.js` and
/// `lib.js`, byte for byte, each in its own directory), plus `extra`.
fn one_bundle(s: &Site, n: usize, extra: &str) -> std::path::PathBuf {
    let mut apps = String::new();
    for i in 0..n {
        s.write(
            &format!("t{i}/index.js"),
            "import { label } from './lib.js';\nlet served = 0;\nexport default { fetch() { served++; return new Response(`${label} ${served}`); } };\n",
        );
        s.write(&format!("t{i}/lib.js"), "export const label = 'tenant';\n");
        apps.push_str(&format!(
            "\n[apps.t{i}]\nruntime = \"js\"\nsource = \"t{i}\"\ndomains = [\"t{i}.test\"]\nisolate = {{ workers = 1 }}\n"
        ));
    }
    s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n{apps}{extra}"))
}

#[tokio::test]
async fn apps_from_one_bundle_share_a_check_but_not_their_state() {
    let s = Site::new();
    let b = Bext::serve(&one_bundle(&s, 40, ""));
    assert_eq!(get(b.addr, "t0.test", "/").await.text(), "tenant 1");
    assert_eq!(get(b.addr, "t0.test", "/").await.text(), "tenant 2");
    for i in [1, 17, 39] {
        assert_eq!(get(b.addr, &format!("t{i}.test"), "/").await.text(), "tenant 1");
    }
}

/// The broken app has the same entry as the 40 good ones; only its import
/// differs. Start, reload and `bext check` each name it, and only it.
#[tokio::test]
async fn a_broken_app_among_one_bundle_is_named_alone() {
    let s = Site::new();
    let broken = "\n[apps.broken]\nruntime = \"js\"\nsource = \"broken\"\ndomains = [\"broken.test\"]\n";
    let cfg = one_bundle(&s, 40, broken);
    s.write(
        "broken/index.js",
        std::fs::read_to_string(s.path("t0/index.js")).unwrap(),
    );
    s.write(
        "broken/lib.js",
        "throw new Error('the tenant lib is broken');\nexport const label = 'never';\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps.broken") && err.contains("the tenant lib is broken"),
        "{err}"
    );
    assert!(!err.contains("apps.t"), "only the broken app is named: {err}");

    // Served without it; then it comes back broken with a reload, which is
    // refused, and the others keep serving.
    let good = one_bundle(&s, 40, "");
    let b = Bext::serve(&good);
    assert_eq!(get(b.addr, "t5.test", "/").await.text(), "tenant 1");
    std::fs::write(&good, std::fs::read_to_string(&good).unwrap() + broken).unwrap();
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async {
        b.log().contains("reload rejected").then_some(())
    })
    .await;
    assert!(b.log().contains("the tenant lib is broken"), "{}", b.log());
    assert_eq!(get(b.addr, "t5.test", "/").await.text(), "tenant 2");
    assert_eq!(get(b.addr, "broken.test", "/").await.status, 404);
}
