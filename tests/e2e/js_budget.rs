//! The CPU budget of JavaScript that runs after a call returned to wait:
//! timer callbacks and fetch answers. The limit is each callback's (with
//! the microtasks it queues), not that of the batch of every in-flight
//! call's callbacks an isolate runs at once, so many busy calls all
//! answer in every isolate mode; a callback that loops is still cut off
//! and its isolate replaced.

use crate::support::*;

/// `/timer` and `/fetch?to=` wait on a timer or a fetch, and each callback
/// and its continuation is busy for a tenth of `cpu_limit`; `/spin` sets a
/// timer that never ends; anything else counts the isolate's calls.
const APP: &str = r#"
const busy = (ms) => { const end = performance.now() + ms; while (performance.now() < end) {} };
let calls = 0;
export default {
  async fetch(request) {
    const u = new URL(request.url);
    calls++;
    switch (u.pathname) {
      case '/timer':
        await new Promise((r) => setTimeout(() => { busy(10); r(); }, 30));
        busy(10);
        return new Response('timer');
      case '/fetch': {
        const r = await fetch(u.searchParams.get('to'));
        busy(10);
        const body = await r.text();
        busy(10);
        return new Response(`fetch ${r.status} ${body.length > 0}`);
      }
      case '/spin':
        await new Promise(() => setTimeout(() => { for (;;) {} }, 1));
        return new Response('never');
      default: return new Response(String(calls));
    }
  },
};
"#;

const MODES: [&str; 3] = ["inline", "threads", "shared"];

fn platform(s: &Site, echo: u16) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    let mut body = String::from("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n");
    for mode in MODES {
        body.push_str(&format!(
            r#"
[apps.{mode}]
runtime = "js"
source = "app"
domains = ["{mode}.test"]
isolate = {{ mode = "{mode}", cpu_limit = "100ms", timeout = "30s", fetch = {{ allow = ["localhost:{echo}"], max_concurrent = 64 }} }}
"#
        ));
    }
    s.platform(&body)
}

/// 24 calls at once, each with 20 ms of JavaScript after its wait: on one
/// isolate their callbacks come due together, far over `cpu_limit`.
async fn all_answer(b: &Bext, host: &str, path: &str, want: &str) {
    let calls = (0..24).map(|_| get(b.addr, host, path));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{host}{path}: {}\n{}", r.text(), b.log());
        assert_eq!(r.text(), want, "{host}{path}");
    }
    assert!(
        !b.log().contains("replacing the isolate"),
        "{host}{path}: an isolate was replaced:\n{}",
        b.log()
    );
}

#[tokio::test]
async fn many_busy_timer_callbacks_all_answer_in_every_mode() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, echo.addr.port()));
    for mode in MODES {
        all_answer(&b, &format!("{mode}.test"), "/timer", "timer").await;
    }
}

#[tokio::test]
async fn many_busy_fetch_answers_all_answer_in_every_mode() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, echo.addr.port()));
    // The upstream holds every answer a while, so they arrive together.
    let to = format!("http://localhost:{}/slow/50", echo.addr.port());
    let path = format!(
        "/fetch?to={}",
        url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
    );
    for mode in MODES {
        all_answer(&b, &format!("{mode}.test"), &path, "fetch 200 true").await;
    }
}

/// Inline, a timer callback that loops is cut off at `cpu_limit`: its call
/// fails, the replacement is logged, and the next call on that worker
/// (one connection stays on one worker) runs on a fresh isolate.
#[tokio::test]
async fn a_looping_timer_callback_still_replaces_the_isolate() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, echo.addr.port()));
    let (mut conn, _task) = h1_client(b.addr).await;
    let mut send = async |path: &str| {
        let req = request("GET", path, &[("host", "inline.test")], "");
        collect(conn.send_request(req).await.unwrap()).await
    };
    assert_eq!(send("/").await.text(), "1");
    let r = send("/spin").await;
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert_eq!(send("/").await.text(), "1", "a fresh isolate counts from 1");
    // The line is written as the isolate is replaced, which may be after
    // the failed call's answer went out.
    let log = b.log_once_it_says("replacing the isolate after a timer");
    assert!(
        log.contains("replacing the isolate after a timer") && log.contains("timed out after 100ms"),
        "{log}"
    );
}
