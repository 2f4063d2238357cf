//! The waf plugin through its public contract, as the kernel drives it
//! (`bext_plugin_abi::testing`): config decoded strictly, `on_init`, then
//! `fetch` and `on_request` in the kernel's order, the app behind them.
//! What was decided is read back from the audit log, as an operator would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use async_compression::tokio::bufread::GzipEncoder;
use bext_plugin_abi::testing::{Exchange, Harness, Stage, TestRequest, request};
use bext_plugin_abi::{Ctx, Plugin, PluginError, Request, Response, text_response};
use bext_plugin_waf::WafPlugin;
use bext_plugin_waf::audit::Event;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// A UNION-based SQL injection in a query argument.
const SQLI_QUERY: &str = "/search?q=%27%20UNION%20SELECT%20password%20FROM%20users--";
/// The same in a form body.
const SQLI_FORM: &str = "name=tom&q=1%27%20UNION%20SELECT%20password%20FROM%20users--";
const FORM: &str = "application/x-www-form-urlencoded";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

async fn waf(config: Value) -> Harness<WafPlugin> {
    Harness::<WafPlugin>::builder(config).start().await.unwrap()
}

/// Every request gets an id of its own so each test finds its own events
/// (the harnesses of one test may share a log).
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x3af_0000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `req` (with a fresh id) to an app that answers 200 "app".
async fn send(h: &Harness<WafPlugin>, req: TestRequest) -> Exchange {
    let ex = h.send(req.id(next_id()), app).await;
    let id = ex.cx.request_id.to_string();
    let mine = h.plugin().audit().recent(usize::MAX);
    let mine = mine.into_iter().filter(|e| e.request_id == id).collect();
    SENT.lock().unwrap().insert(id, mine);
    ex
}

/// The audit events of each request [`send`] sent, by request id.
static SENT: LazyLock<Mutex<HashMap<String, Vec<Event>>>> = LazyLock::new(Default::default);

fn app(_req: Request, _cx: &Ctx) -> Response {
    text_response(StatusCode::OK, "app")
}

fn get(target: &str) -> TestRequest {
    request("GET", target)
        .header("host", "shop.test")
        .header("user-agent", BROWSER)
        .peer("192.0.2.10")
}

fn post(content_type: &str, body: impl Into<Vec<u8>>) -> TestRequest {
    let body = body.into();
    request("POST", "/submit")
        .header("host", "shop.test")
        .header("user-agent", BROWSER)
        .header("content-type", content_type)
        .header("content-length", &body.len().to_string())
        .peer("192.0.2.10")
        .body(body)
}

/// The audit events of the request `ex` answered.
fn events(ex: &Exchange) -> Vec<Event> {
    let id = ex.cx.request_id.to_string();
    SENT.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

fn actions(ex: &Exchange) -> Vec<&'static str> {
    events(ex).iter().map(|e| e.action).collect()
}

/// Let through to the app, with nothing recorded.
#[track_caller]
fn passed(ex: &Exchange) {
    assert!(
        ex.reached_app,
        "refused: {} {} {:?}",
        ex.status(),
        ex.text(),
        events(ex)
    );
    assert_eq!((ex.status(), ex.text().as_str()), (StatusCode::OK, "app"));
    assert_eq!(actions(ex), Vec::<&str>::new());
}

/// Refused by `on_request` with `status`, and recorded as `action`.
#[track_caller]
fn refused(ex: &Exchange, status: StatusCode, action: &str) {
    assert!(!ex.reached_app, "let through");
    assert_eq!((ex.status(), ex.answered_by), (status, Some(Stage::Request)));
    assert_eq!(actions(ex), [action]);
    assert_eq!(ex.header("cache-control"), Some("no-store"));
}

async fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_sqli_query_is_refused_in_block_mode() {
    let h = waf(json!({})).await;
    let ex = send(&h, get(SQLI_QUERY)).await;
    refused(&ex, StatusCode::FORBIDDEN, "block");
    // The client learns the request id to quote, not the rule.
    assert_eq!(ex.text(), format!("Forbidden (request id {})\n", ex.cx.request_id));
    let e = &events(&ex)[0];
    assert_eq!(
        (e.rule, e.category, e.part, e.name.as_deref()),
        (Some("sqli-union"), Some("sqli"), Some("arg"), Some("q"))
    );
    assert_eq!((e.client_ip.as_str(), e.path.as_str()), ("192.0.2.10", "/search"));

    // The refusal's status is the config's.
    let h = waf(json!({"deny_status": 406})).await;
    refused(&send(&h, get(SQLI_QUERY)).await, StatusCode::NOT_ACCEPTABLE, "block");
}

#[tokio::test]
async fn benign_requests_reach_the_app() {
    let h = waf(json!({})).await;
    passed(&send(&h, get("/")).await);
    passed(
        &send(
            &h,
            get("/search?q=tom+%26+jerry&page=2&sort=price-asc")
                .header("cookie", "session=abc123; theme=dark")
                .header("referer", "https://shop.test/catalog?page=1"),
        )
        .await,
    );
    passed(&send(&h, post(FORM, "name=O%27Brien&comment=Select+the+best+one%2C+please")).await);
    passed(
        &send(
            &h,
            post("application/json", r#"{"name":"Tom & Jerry","tags":["a","b"],"qty":2}"#),
        )
        .await,
    );
}

#[tokio::test]
async fn detect_mode_only_logs() {
    let h = waf(json!({"mode": "detect"})).await;
    let ex = send(&h, get(SQLI_QUERY)).await;
    assert!(ex.reached_app);
    assert_eq!(ex.status(), StatusCode::OK);
    assert_eq!(actions(&ex), ["detect"]);
    assert_eq!(events(&ex)[0].rule, Some("sqli-union"));
    // Nothing counts towards the penalty box either.
    let h = waf(json!({"mode": "detect", "penalty": {"after": 1, "within": "1m", "ban": "1m"}})).await;
    for _ in 0..3 {
        assert!(send(&h, get(SQLI_QUERY)).await.reached_app);
    }
}

#[tokio::test]
async fn allow_listed_clients_skip_inspection() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("allow.txt"), "# monitoring\n192.0.2.44\n").unwrap();
    let h = Harness::<WafPlugin>::builder(json!({
        "trusted_proxies": ["10.0.0.0/8"],
        "ip": {
            "allow": ["203.0.113.0/24"],
            "deny": ["198.51.100.0/24"],
            "allow_files": ["allow.txt"],
        },
    }))
    .data_dir(dir.path())
    .start()
    .await
    .unwrap();
    assert_eq!(h.take_tasks().len(), 1, "the list file's refresher");

    passed(&send(&h, get(SQLI_QUERY).peer("203.0.113.5")).await);
    // Behind a trusted proxy, the client it reports is the one listed.
    let ex = send(
        &h,
        get(SQLI_QUERY)
            .peer("10.0.0.1")
            .header("x-forwarded-for", "203.0.113.9"),
    )
    .await;
    passed(&ex);
    assert_eq!(ex.cx.client_ip, "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
    // The list file is read in `on_init`.
    passed(
        &send(
            &h,
            get(SQLI_QUERY).peer("10.0.0.1").header("x-forwarded-for", "192.0.2.44"),
        )
        .await,
    );

    // Anyone else is inspected, and may not name a listed address.
    refused(
        &send(&h, get(SQLI_QUERY).peer("192.0.2.45")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    let ex = send(
        &h,
        get(SQLI_QUERY)
            .peer("192.0.2.45")
            .header("x-forwarded-for", "203.0.113.5"),
    )
    .await;
    refused(&ex, StatusCode::FORBIDDEN, "block");
    assert_eq!(events(&ex)[0].client_ip, "192.0.2.45");
    // A denied address is refused before inspection.
    refused(
        &send(&h, get("/").peer("198.51.100.7")).await,
        StatusCode::FORBIDDEN,
        "deny_ip",
    );
}

#[tokio::test]
async fn a_gzip_body_is_inspected() {
    let h = waf(json!({})).await;
    let attack = gzip(SQLI_FORM.as_bytes()).await;
    let ex = send(&h, post(FORM, attack).header("content-encoding", "gzip")).await;
    refused(&ex, StatusCode::FORBIDDEN, "block");
    assert_eq!(
        (events(&ex)[0].rule, events(&ex)[0].name.as_deref()),
        (Some("sqli-union"), Some("q"))
    );

    // A clean one reaches the app as it was sent, still compressed.
    let clean = gzip(b"name=tom&q=red+shoes").await;
    let sent = clean.clone();
    let ex = h
        .send(
            post(FORM, clean).header("content-encoding", "gzip").id(next_id()),
            move |req, _| {
                assert_eq!(req.body().as_bytes(), Some(&sent[..]), "the body the app gets");
                text_response(StatusCode::OK, "app")
            },
        )
        .await;
    passed(&ex);
}

#[tokio::test]
async fn an_uninspectable_body_follows_uninspectable_body() {
    let big = format!(
        "note={}&q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        "a".repeat(2048)
    );
    let broken = {
        let mut gz = gzip(b"name=tom&q=red+shoes").await;
        gz.truncate(gz.len() - 4);
        gz.extend_from_slice(b"junk");
        gz
    };

    // refuse (the default): 413 too large, 415 a coding not decoded here,
    // 400 a coding that does not decode.
    let h = waf(json!({"body_limit": "1KiB"})).await;
    let ex = send(&h, post(FORM, big.clone())).await;
    refused(&ex, StatusCode::PAYLOAD_TOO_LARGE, "uninspectable_body");
    let ex = send(&h, post(FORM, "name=tom").header("content-encoding", "br")).await;
    refused(&ex, StatusCode::UNSUPPORTED_MEDIA_TYPE, "uninspectable_body");
    let ex = send(&h, post(FORM, broken).header("content-encoding", "gzip")).await;
    refused(&ex, StatusCode::BAD_REQUEST, "uninspectable_body");
    passed(&send(&h, post(FORM, "name=tom")).await);

    // pass: what can be read is inspected, and the rest let through.
    let h = waf(json!({"body_limit": "1KiB", "uninspectable_body": "pass"})).await;
    passed(&send(&h, post(FORM, big)).await);
    passed(&send(&h, post(FORM, "name=tom").header("content-encoding", "br")).await);
    // The raw bytes of a coding not decoded are still inspected.
    let ex = send(&h, post(FORM, SQLI_FORM).header("content-encoding", "br")).await;
    refused(&ex, StatusCode::FORBIDDEN, "block");

    // Detect mode logs such a body and lets it through.
    let h = waf(json!({"mode": "detect"})).await;
    let ex = send(&h, post(FORM, "name=tom").header("content-encoding", "br")).await;
    assert!(ex.reached_app);
    assert_eq!(actions(&ex), ["uninspectable_body"]);
}

#[tokio::test]
async fn repeat_offenders_and_bots_are_screened() {
    let h = waf(json!({
        "penalty": {"after": 2, "within": "1m", "ban": "1m"},
        "bots": {"mode": "block"},
    }))
    .await;
    for _ in 0..2 {
        refused(
            &send(&h, get(SQLI_QUERY).peer("192.0.2.66")).await,
            StatusCode::FORBIDDEN,
            "block",
        );
    }
    let ex = send(&h, get("/").peer("192.0.2.66")).await;
    refused(&ex, StatusCode::TOO_MANY_REQUESTS, "rate_limit");
    assert!(
        ex.header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s > 50)
    );
    passed(&send(&h, get("/").peer("192.0.2.67")).await);

    let bot = request("GET", "/")
        .header("host", "shop.test")
        .header("user-agent", "python-requests/2.31")
        .peer("192.0.2.68");
    refused(&send(&h, bot).await, StatusCode::FORBIDDEN, "bot");
}

#[tokio::test]
async fn the_audit_log_is_an_admin_route_under_the_base() {
    let h = waf(json!({"audit": {"token_env": "BEXT_WAF_CONTRACT_NO_SUCH_TOKEN"}})).await;
    // The kernel mounts it and checks the token from `audit.token_env`:
    // the fetch stage lets the request by.
    let routes = h.plugin().admin_routes().expect("admin routes");
    assert_eq!(routes.rest("/__bext/waf/events"), Some("/events"));
    assert_eq!(routes.rest("/__bext/waf/other"), None);
    assert_eq!(routes.token_env_name(), Some("BEXT_WAF_CONTRACT_NO_SUCH_TOKEN"));
    passed(&send(&h, get("/__bext/waf/events")).await);
    let (mut req, cx) = get("/__bext/waf/events?limit=1").into_parts();
    let res = h.plugin().admin(&mut req, &cx).resolve().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let events: Value = serde_json::from_slice(res.body().as_bytes().unwrap()).unwrap();
    assert!(events["events"].as_array().is_some_and(|e| e.len() <= 1), "{events}");
    let (mut req, cx) = request("POST", "/__bext/waf/events").into_parts();
    let res = h.plugin().admin(&mut req, &cx).resolve().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The base is the manifest's, under /__bext/.
    let moved = Harness::<WafPlugin>::builder(json!({}))
        .base(Some("/__bext/sec"))
        .check()
        .unwrap();
    assert_eq!(
        moved.admin_routes().unwrap().rest("/__bext/sec/events"),
        Some("/events")
    );
    let outside = Harness::<WafPlugin>::builder(json!({})).base(Some("/sec")).check();
    assert!(matches!(outside, Err(PluginError::Config { ref path, .. }) if path == "base"));
}

#[tokio::test]
async fn bad_configs_are_refused_with_their_field() {
    let field = |config: Value| match Harness::<WafPlugin>::builder(config).check() {
        Err(PluginError::Config { path, .. }) => path,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(field(json!({"deny_status": 200})), "deny_status");
    assert_eq!(
        field(json!({"trusted_proxies": ["10.0.0.0/8", "proxy"]})),
        "trusted_proxies[1]"
    );
    assert_eq!(field(json!({"ip": {"deny": ["999.1.1.1"]}})), "ip.deny[0]");
    assert_eq!(field(json!({"disabled_rules": ["no-such-rule"]})), "disabled_rules[0]");
    assert_eq!(
        field(json!({"exclusions": [{"path": "/x", "rules": ["nope"]}]})),
        "exclusions[0].rules[0]"
    );
    assert_eq!(
        field(json!({"penalty": {"after": 0, "within": "1m", "ban": "1m"}})),
        "penalty.after"
    );
    assert_eq!(field(json!({"audit": {"capacity": 0}})), "audit.capacity");
    assert!(
        Harness::<WafPlugin>::builder(json!({"modes": "block"}))
            .check()
            .is_err()
    );

    // `on_init` needs what the environment and the data directory hold.
    let dir = tempfile::tempdir().unwrap();
    let init = |config: Value| {
        let dir = dir.path().to_owned();
        async move {
            match Harness::<WafPlugin>::builder(config).data_dir(dir).start().await {
                Err(PluginError::Init(e)) => e.to_string(),
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("started"),
            }
        }
    };
    let e = init(json!({"bots": {"secret_env": "BEXT_WAF_CONTRACT_NO_SUCH_SECRET"}})).await;
    assert_eq!(e, "bots.secret_env: `BEXT_WAF_CONTRACT_NO_SUCH_SECRET` is not set");
    let e = init(json!({"ip": {"deny_files": ["missing.txt"]}})).await;
    assert!(e.contains("missing.txt"), "{e}");
}

#[tokio::test]
async fn exclusions_silence_rules_where_they_misfire() {
    let h = waf(json!({
        "exclusions": [
            {"path": "/search", "rules": ["sqli"]},
            {"path": "/admin/*", "app": "tools"},
        ],
    }))
    .await;
    passed(&send(&h, get(SQLI_QUERY)).await);
    refused(
        &send(&h, get("/other?q=%27%20UNION%20SELECT%20password%20FROM%20users--")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    passed(&send(&h, get("/admin/x?q=%27%20UNION%20SELECT%201--").app("tools")).await);
    refused(
        &send(&h, get("/admin/x?q=%27%20UNION%20SELECT%201--").app("site")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
}

/// The audit log is the host's shared value: an instance built by a reload
/// (its configuration changed) takes over the history of the one it
/// replaces, and the log goes with the last instance.
#[tokio::test]
async fn a_rebuilt_instance_keeps_the_audit_history() {
    let pool = std::sync::Arc::new(bext_plugin_abi::SharedPool::default());
    let start = |config: Value| Harness::<WafPlugin>::builder(config).shared_pool(pool.clone()).start();
    let old = start(json!({})).await.unwrap();
    let ex = send(&old, get(SQLI_QUERY)).await;
    let id = ex.cx.request_id.to_string();
    let new = start(json!({"deny_status": 406})).await.unwrap();
    drop(old);
    let kept = |h: &Harness<WafPlugin>| h.plugin().audit().recent(usize::MAX).iter().any(|e| e.request_id == id);
    assert!(kept(&new), "the history went with the old instance");
    drop(new);
    assert!(pool.is_empty());
    assert!(!kept(&start(json!({})).await.unwrap()), "no instance left, no log");
}

/// A CRS-shaped rule set in a directory: one scoring rule and CRS's
/// blocking evaluation.
fn crs_rules() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("REQUEST-942-TEST.conf"),
        "SecRule ARGS \"@rx magic\" \"id:942999,phase:2,pass,t:none,t:urlDecodeUni,severity:'CRITICAL',\\\n\
         msg:'magic word',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("REQUEST-949-BLOCKING-EVALUATION.conf"),
        "SecAction \"id:901140,phase:1,pass,setvar:tx.critical_anomaly_score=5\"\n\
         SecRule TX:ANOMALY_SCORE \"@ge %{tx.inbound_anomaly_score_threshold}\" \"id:949110,phase:2,deny\"\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn the_crs_tier_refuses_by_score_and_records_the_rules() {
    let dir = crs_rules();
    let rules = dir.path().to_str().unwrap();
    let h = waf(json!({"crs": {"rules": rules}})).await;
    let ex = send(&h, get("/search?q=magic(1)")).await;
    refused(&ex, StatusCode::FORBIDDEN, "block");
    let crs = events(&ex)[0].crs.clone().expect("crs verdict");
    assert_eq!((crs.score, crs.threshold, crs.paranoia), (5, 5, 1));
    let hit = &crs.rules[0];
    assert_eq!(
        (hit.id, hit.var.as_str(), hit.data.as_str(), hit.msg.as_str()),
        (942999, "ARGS:q", "magic(1)", "magic word")
    );
    // A plain value is cleared before CRS by default, not with `scope: all`.
    assert!(send(&h, get("/search?q=magic")).await.reached_app);
    let all = waf(json!({"crs": {"rules": rules, "scope": "all"}})).await;
    refused(
        &send(&all, get("/search?q=magic")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    // Another spelling of the same value: percent-encoded.
    refused(
        &send(&h, get("/search?q=m%61gic%281%29")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    // Above the score, the threshold lets it through.
    let lax = waf(json!({"crs": {"rules": rules, "inbound_threshold": 10}})).await;
    assert!(send(&lax, get("/search?q=magic(1)")).await.reached_app);
}

#[tokio::test]
async fn crs_detect_mode_logs_the_score_and_exclusions_silence_crs_rules() {
    let dir = crs_rules();
    let rules = dir.path().to_str().unwrap();
    let h = waf(json!({"crs": {"rules": rules, "mode": "detect"}})).await;
    let ex = send(&h, get("/search?q=magic(1)")).await;
    assert!(ex.reached_app);
    assert_eq!(actions(&ex), ["detect"]);
    assert_eq!(events(&ex)[0].crs.as_ref().map(|c| c.score), Some(5));

    let h = waf(json!({
        "crs": {"rules": rules},
        "exclusions": [{"path": "/search", "args": ["q"], "rules": ["942999"]}],
    }))
    .await;
    assert!(send(&h, get("/search?q=magic(1)")).await.reached_app);
    assert!(send(&h, get("/search?Q=magic(1)")).await.reached_app);
    refused(
        &send(&h, get("/search?other=magic(1)")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    refused(
        &send(&h, get("/elsewhere?q=magic(1)")).await,
        StatusCode::FORBIDDEN,
        "block",
    );
    let off = waf(json!({"crs": {"rules": rules}, "disabled_rules": ["942000-942999"]})).await;
    assert!(send(&off, get("/search?q=magic(1)")).await.reached_app);
    // A family switches off its CRS file too.
    let fam = waf(json!({"crs": {"rules": rules}, "exclusions": [{"path": "/search", "rules": ["sqli"]}]})).await;
    assert!(send(&fam, get("/search?q=magic(1)")).await.reached_app);
}

#[tokio::test]
async fn bad_crs_settings_name_their_field() {
    let check = |config: Value| match Harness::<WafPlugin>::builder(config).check() {
        Err(PluginError::Config { path, .. }) => path,
        other => panic!("{:?}", other.err()),
    };
    let dir = crs_rules();
    let rules = dir.path().to_str().unwrap();
    assert_eq!(check(json!({"crs": {"rules": rules, "paranoia": 7}})), "crs.paranoia");
    assert_eq!(
        check(json!({"crs": {"rules": rules, "inbound_threshold": 0}})),
        "crs.inbound_threshold"
    );
    assert_eq!(check(json!({"crs": {"rules": rules, "max_args": 0}})), "crs.max_args");
    assert_eq!(
        check(json!({"crs": {"rules": rules, "max_bytes": "0kb"}})),
        "crs.max_bytes"
    );
    assert_eq!(check(json!({"crs": {"rules": "/nonexistent/crs"}})), "crs.rules");
    std::fs::write(
        dir.path().join("REQUEST-950-BAD.conf"),
        "SecRule ARGS \"@rx a\" \"phase:2\"\n",
    )
    .unwrap();
    assert_eq!(check(json!({"crs": {"rules": rules}})), "crs.rules");
}
