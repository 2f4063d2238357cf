//! The small Web APIs JS apps get (issue 25), each through a real bext:
//! structuredClone, URLPattern, Response.json, queueMicrotask,
//! performance.now, atob/btoa, AbortController, timers within the request,
//! and console lines in the log under the app's name. The app is
//! `js_web_apis/app.js`.

use serde_json::{Value, json};

use crate::support::*;

fn web_site() -> (Site, Bext) {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("web/index.js", include_str!("js_web_apis/app.js"));
    let platform = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.web]
runtime = "js"
source = "web"
domains = ["web.test"]
"#,
    );
    let b = Bext::serve(&platform);
    (s, b)
}

async fn answer(b: &Bext, path: &str) -> Value {
    let r = get(b.addr, "web.test", path).await;
    assert_eq!(r.status, 200, "{path}: {}\n{}", r.text(), b.log());
    r.json()
}

#[tokio::test]
async fn structured_clone_copies_deeply_and_refuses_functions() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/structured-clone").await,
        json!({
            "distinct": true, "cycle": true, "shared": true, "date": true, "regexp": "a+b/gi",
            "set": [1, 2], "bytes": [1, 2, 3], "function": "DataCloneError", "symbol": "DataCloneError",
            "view": {
                "offset": 2, "length": 2, "buffer": 8, "values": [2, 3, 4, 5],
                "dataview": [3, 2, 3], "shared": true, "written": 99, "original": 6,
            },
        })
    );
}

/// Named groups, custom regexp groups, wildcards, a base URL, hostname
/// patterns, ignoreCase; inputs are canonicalised (dot segments) before
/// matching; bad patterns are TypeErrors.
#[tokio::test]
async fn urlpattern_matches_as_the_spec_says() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/urlpattern").await,
        json!({
            "id": "42",
            "digits_only": false,
            "api": { "version": "v2", "0": "orders/7" },
            "api_other_host": false,
            "api_inputs": ["https://shop.test/api/v2/orders/7?x=1"],
            "tenant": "acme",
            "bare": null,
            "ignore_case": true,
            "case_sensitive": false,
            "dot_segments": true,
            "not_a_url": null,
            "pathname": "/books/:id(\\d+)",
            "has_regexp_groups": [true, false],
            "bad_pattern": "TypeError",
            "init_with_base": "TypeError",
        })
    );
}

#[tokio::test]
async fn response_json_sets_status_headers_and_type() {
    let (_s, b) = web_site();
    let r = get(b.addr, "web.test", "/response-json").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.json(), json!({ "ok": true, "list": [1, "two"] }));
    for bad in ["bigint", "undefined"] {
        let r = get(b.addr, "web.test", &format!("/response-json?bad={bad}")).await;
        assert_eq!(r.status, 500, "{bad}: a value JSON cannot carry is the handler's error");
    }
}

/// Microtasks run in the order queued, with promise callbacks, before any
/// timer.
#[tokio::test]
async fn queue_microtask_runs_before_timers() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/microtasks").await,
        json!({ "order": ["sync", "microtask 1", "promise", "microtask 2", "timeout"], "not_a_function": "TypeError" })
    );
}

#[tokio::test]
async fn performance_now_is_a_monotonic_clock() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/performance").await,
        json!({ "number": true, "non_negative": true, "advanced_by_the_wait": true, "origin_near_now": true })
    );
}

#[tokio::test]
async fn atob_and_btoa_follow_the_forgiving_base64_rules() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/base64").await,
        json!({
            "btoa": "aGVsbG8=", "atob": "hello", "unpadded": "a", "bytes_round_trip": true,
            "btoa_non_latin1": "InvalidCharacterError", "atob_bad_length": "InvalidCharacterError",
            "atob_bad_char": "InvalidCharacterError", "atob_inner_padding": "InvalidCharacterError",
        })
    );
}

/// abort() fires once with its reason; AbortSignal.timeout fires during
/// the request; AbortSignal.any follows the first aborted signal.
#[tokio::test]
async fn abort_controller_and_signals() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/abort").await,
        json!({
            "aborted": true, "reason": "why", "seen": ["onabort", "listener abort"], "default_reason": "AbortError",
            "timeout": "TimeoutError", "any": [true, "first"], "throw_if_aborted": "AbortError",
        })
    );
}

/// An interval fires until cleared, a cleared timeout never fires, timers
/// fire by due time and get their extra arguments, all inside one request.
#[tokio::test]
async fn timers_run_within_the_request() {
    let (_s, b) = web_site();
    assert_eq!(
        answer(&b, "/timers").await,
        json!({ "ticks": 3, "order": ["early", "late xy"] })
    );
}

/// console.log/info/warn/error reach bext's log at their levels, under the
/// app's name; an Error argument is logged with its stack.
#[tokio::test]
async fn console_lines_reach_the_log_with_the_app_name() {
    let (_s, b) = web_site();
    assert_eq!(get(b.addr, "web.test", "/console").await.text(), "logged");
    let lines = || -> Vec<String> {
        b.log()
            .lines()
            .filter(|l| l.contains("console-marker"))
            .map(str::to_owned)
            .collect()
    };
    eventually(std::time::Duration::from_secs(5), || async {
        (lines().len() >= 4).then_some(())
    })
    .await;
    let lines = lines();
    for (level, text) in [
        ("INFO", "console-marker log { a: 1 }"),
        ("INFO", "console-marker info"),
        ("WARN", "console-marker warn"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(level) && l.contains(text) && l.contains("web")),
            "{level} {text}: {lines:#?}"
        );
    }
    // The Error's stack follows its line; the app's name ends the entry.
    let log = b.log();
    let at = log.find("console-marker error Error: with a stack").unwrap();
    let entry = &log[log[..at].rfind('\n').map_or(0, |i| i + 1)..];
    let entry = &entry[..entry.find("source=").expect("the entry names its source") + "source=app web".len()];
    assert!(entry.contains("ERROR bext::js:"), "{entry}");
    assert!(
        entry
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim_start()
            .starts_with("at /console ("),
        "{entry}"
    );
    assert!(entry.ends_with("source=app web"), "{entry}");
}
