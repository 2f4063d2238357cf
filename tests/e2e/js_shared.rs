//! `isolate.mode = "shared"`: JS apps on one pool of `js_threads` threads,
//! each thread holding isolates of many apps, apps taking turns, each
//! within its `workers` calls at once and never on every thread. The
//! pool's threads are named `bext-jsp-N`; per-app figures come from
//! `/__bext/metrics`.

use std::time::Duration;

use crate::metrics::{TOKEN, scrape, value};
use crate::support::*;

/// Counts and serves: `/spin` loops until the app's `timeout`, `/bomb`
/// runs out of memory, `/slow` waits 300 ms on a timer (holding its
/// thread), anything else answers how many calls this isolate served.
const APP: &str = r#"
let served = 0;
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/spin') for (;;) {}
    if (path === '/slow') await new Promise((r) => setTimeout(r, 300));
    if (path === '/bomb') { const a = []; for (;;) a.push(new Array(100000).fill(a.length)); }
    served++;
    return new Response(String(served));
  },
};
"#;

/// Apps `a`, `b`, ... in shared mode on a pool of `threads` threads, each
/// with its `isolate` settings.
fn shared_platform(s: &Site, platform: &str, apps: &[(&str, &str)]) -> std::path::PathBuf {
    let mut body = format!("[platform]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n{platform}\n");
    for (id, isolate) in apps {
        s.write(&format!("{id}/index.js"), APP);
        body.push_str(&format!(
            "\n[apps.{id}]\nruntime = \"js\"\nsource = \"{id}\"\ndomains = [\"{id}.test\"]\nisolate = {{ mode = \"shared\", {isolate} }}\n"
        ));
    }
    s.platform(&body)
}

fn serve(s: &Site, platform: &str, apps: &[(&str, &str)]) -> Bext {
    Bext::serve_env(&shared_platform(s, platform, apps), &[("BEXT_ADMIN_TOKEN", TOKEN)])
}

/// Threads of the process whose name starts with `prefix`.
fn threads_named(b: &Bext, prefix: &str) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", b.pid())).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// `app`'s value of a `bext_js_*` metric.
async fn js_metric(b: &Bext, name: &str, app: &str) -> Option<f64> {
    value(&scrape(b.addr).await, name, &[("app", app)])
}

/// Waits until `app` runs `busy` calls and has `queued` waiting.
async fn app_holds(b: &Bext, app: &str, busy: f64, queued: f64) {
    eventually(Duration::from_secs(20), || async {
        let running = js_metric(b, "bext_js_isolates_busy", app).await;
        let waiting = js_metric(b, "bext_js_queue_length", app).await;
        (running == Some(busy) && waiting == Some(queued)).then_some(())
    })
    .await;
}

/// Sends `n` calls of `path` to `app` in the background.
fn send_many(b: &Bext, app: &str, path: &'static str, n: usize) -> Vec<tokio::task::JoinHandle<Reply>> {
    let (addr, host) = (b.addr, format!("{app}.test"));
    (0..n)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { get(addr, &host, path).await })
        })
        .collect()
}

/// Sends `n` looping calls to `app` in the background.
fn spin(b: &Bext, app: &str, n: usize) -> Vec<tokio::task::JoinHandle<Reply>> {
    send_many(b, app, "/spin", n)
}

#[tokio::test]
async fn apps_with_work_take_turns() {
    let s = Site::new();
    // One thread: `busy` and `quiet` share it.
    let b = serve(&s, "js_threads = 1", &[("busy", ""), ("quiet", "")]);
    let backlog = send_many(&b, "busy", "/slow", 8);
    app_holds(&b, "busy", 1.0, 7.0).await;
    let r = get(b.addr, "quiet.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "1".to_owned()));
    // Served in its turn, after at most the call running and the one
    // next in line, not after busy's whole backlog.
    let done = backlog.iter().filter(|t| t.is_finished()).count();
    assert!(done <= 2, "quiet waited for {done} of busy's calls");
    for t in backlog {
        assert_eq!(t.await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn a_looping_app_never_holds_every_thread_of_the_pool() {
    let s = Site::new();
    // `workers` defaults to 2, the whole pool: capped at one thread.
    let b = serve(
        &s,
        "js_threads = 2",
        &[("loop", "timeout = \"60s\""), ("other", "workers = 2")],
    );
    let spinning = spin(&b, "loop", 4);
    app_holds(&b, "loop", 1.0, 3.0).await;
    // While `loop` spins on one thread with three more calls waiting, the
    // other app is served, in turn, on the other.
    for i in 1..=10 {
        let r = get(b.addr, "other.test", "/").await;
        assert_eq!((r.status, r.text()), (200, i.to_string()));
    }
    app_holds(&b, "loop", 1.0, 3.0).await;
    assert!(spinning.iter().all(|t| !t.is_finished()));
    // Two pool threads, and no thread of any app's own.
    assert_eq!(threads_named(&b, "bext-jsp-").len(), 2);
    let own: Vec<String> = (threads_named(&b, "bext-js-").into_iter())
        .filter(|n| n != "bext-js-load")
        .collect();
    assert!(own.is_empty(), "{own:?}");
}

#[tokio::test]
async fn an_app_keeps_to_the_thread_that_holds_its_isolate() {
    let s = Site::new();
    let b = serve(&s, "js_threads = 2", &[("a", "")]);
    // One request at a time: each goes to the thread that ran the last,
    // on the same isolate, rather than building one on the other thread.
    for i in 1..=20 {
        assert_eq!(get(b.addr, "a.test", "/").await.text(), i.to_string());
    }
    assert_eq!(js_metric(&b, "bext_js_isolates", "a").await, Some(1.0));
}

#[tokio::test]
async fn an_app_runs_at_most_its_workers_calls_at_once() {
    let s = Site::new();
    let b = serve(
        &s,
        "js_threads = 4",
        &[("loop", "workers = 2, timeout = \"60s\""), ("other", "workers = 1")],
    );
    let _spinning = spin(&b, "loop", 5);
    app_holds(&b, "loop", 2.0, 3.0).await;
    for _ in 0..4 {
        assert_eq!(get(b.addr, "other.test", "/").await.status, 200);
    }
    app_holds(&b, "loop", 2.0, 3.0).await;
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once() {
    let s = Site::new();
    let b = serve(
        &s,
        "js_threads = 2",
        &[("loop", "workers = 1, queue = 2, timeout = \"60s\""), ("other", "")],
    );
    // One running first, so that the next two are the ones waiting.
    let _running = spin(&b, "loop", 1);
    app_holds(&b, "loop", 1.0, 0.0).await;
    let _waiting = spin(&b, "loop", 2);
    app_holds(&b, "loop", 1.0, 2.0).await;
    let r = get(b.addr, "loop.test", "/spin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(js_metric(&b, "bext_js_overloaded_total", "loop").await, Some(1.0));
    assert_eq!(get(b.addr, "other.test", "/").await.status, 200);
}

#[tokio::test]
async fn idle_isolates_are_evicted_and_built_again_on_the_next_request() {
    let s = Site::new();
    let b = serve(
        &s,
        "js_threads = 1",
        &[("a", "idle_evict = \"1s\""), ("b", "idle_evict = \"0s\"")],
    );
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "2");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1");
    eventually(Duration::from_secs(20), || async {
        (js_metric(&b, "bext_js_isolates", "a").await == Some(0.0)).then_some(())
    })
    .await;
    // b (never evicted) keeps its isolate and module state; a starts over.
    assert_eq!(js_metric(&b, "bext_js_isolates", "b").await, Some(1.0));
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "2");
    assert_eq!(js_metric(&b, "bext_js_isolates", "a").await, Some(1.0));
}

#[tokio::test]
async fn a_thread_over_its_isolate_budget_drops_the_least_recently_used() {
    let s = Site::new();
    let b = serve(
        &s,
        "js_threads = 1\njs_isolates_per_thread = 2",
        &[("a", ""), ("b", ""), ("c", "")],
    );
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "2");
    // c is the third: b, used least recently, makes room.
    assert_eq!(get(b.addr, "c.test", "/").await.text(), "1");
    assert_eq!(js_metric(&b, "bext_js_isolates", "b").await, Some(0.0));
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "3");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1", "b built again");
    assert_eq!(js_metric(&b, "bext_js_isolates", "c").await, Some(0.0));
}

#[tokio::test]
async fn one_apps_crashes_restart_its_isolate_only() {
    let s = Site::new();
    let b = serve(
        &s,
        "js_threads = 1",
        &[("a", "timeout = \"300ms\", memory_limit = \"16MiB\""), ("b", "")],
    );
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "1");
    assert_eq!(get(b.addr, "a.test", "/spin").await.status, 504);
    assert_eq!(get(b.addr, "a.test", "/bomb").await.status, 500);
    // Two failures in a row: a's next isolate waits out a short pause,
    // its call waiting in the queue rather than failing.
    let r = get(b.addr, "a.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "1".to_owned()), "a fresh isolate");
    assert_eq!(get(b.addr, "b.test", "/").await.text(), "2", "b's isolate lives on");
    let m = scrape(b.addr).await;
    assert_eq!(value(&m, "bext_js_limit_kills_total", &[("app", "a")]), Some(2.0));
    assert_eq!(value(&m, "bext_js_isolate_restarts_total", &[("app", "a")]), Some(2.0));
    assert_eq!(value(&m, "bext_js_isolate_restarts_total", &[("app", "b")]), Some(0.0));
    assert_eq!(value(&m, "bext_js_isolates", &[("app", "b")]), Some(1.0));
}

#[test]
fn a_bad_mode_is_a_clear_error() {
    let s = Site::new();
    let cfg = shared_platform(&s, "", &[("a", "")]);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"shared\"", "\"pooled\"");
    std::fs::write(&cfg, text).unwrap();
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps.a.isolate") && err.contains("shared"), "{err}");
}
