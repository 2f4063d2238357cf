//! The dashboard at `/__bext/ui`: login by form (a session cookie, never the
//! token) or bearer token, pages readable without JavaScript, buttons
//! refused without the session's CSRF token (a cross-site form post), no
//! dashboard on a tenant's host, server-sent events; and the whole of it
//! in a real headless chromium (tests/run installs Debian's chromium and
//! chromium-driver): log in, roll back from the button, see a WAF event
//! arrive live.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_body_util::BodyExt;

use crate::deploy::ok;
use crate::support::*;
use crate::webdriver::Browser;

const TOKEN: &str = "ui-secret";

/// A static app `blog` on blog.test, the WAF on, with `extra` in `[platform]`.
fn platform(s: &Site, extra: &str) -> PathBuf {
    s.write("site/index.html", "from the platform file");
    s.write("manifests/waf.yaml", "name: waf\nenabled: true\n");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
{extra}
[apps.blog]
source = "site"
domains = ["blog.test"]
"#
    ))
}

fn serve(config: &Path) -> Bext {
    Bext::serve_env(config, &[("BEXT_ADMIN_TOKEN", TOKEN)])
}

/// Deploys a bundle saying `body` to `blog` through the running server's
/// API, with the CLI's `extra` flags.
fn deploy_with(s: &Site, config: &Path, addr: SocketAddr, name: &str, body: &str, extra: &[&str]) {
    s.write(&format!("{name}/index.html"), body);
    let out = Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(["deploy", s.path(name).to_str().unwrap(), "--app", "blog"])
        .args([
            "--config",
            config.to_str().unwrap(),
            "--server",
            &format!("http://{addr}"),
        ])
        .args(extra)
        .env("BEXT_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    ok(out);
}

fn deploy(s: &Site, config: &Path, addr: SocketAddr, name: &str, body: &str) {
    deploy_with(s, config, addr, name, body, &[]);
}

async fn ui(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = vec![("host", "admin.test")];
    all.extend_from_slice(headers);
    send(addr, request(method, path, &all, body.to_owned())).await
}

/// Logs in by the form; the `Cookie` header value.
async fn login(addr: SocketAddr) -> String {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = ui(addr, "POST", "/__bext/ui/login", &form, &format!("token={TOKEN}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r.header("set-cookie").unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn login_by_form_or_bearer_and_pages_read_without_javascript() {
    let s = Site::new();
    let b = serve(&platform(&s, ""));
    let form = [("content-type", "application/x-www-form-urlencoded")];

    let r = ui(b.addr, "GET", "/__bext/ui", &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/__bext/ui/login"));
    let r = ui(b.addr, "GET", "/__bext/ui/login", &[], "").await;
    assert!(r.text().contains(r#"name="token""#));
    assert_eq!(ui(b.addr, "POST", "/__bext/ui", &[], "").await.status, 401);

    // A wrong token, in the form or as a bearer, or a made-up session.
    let r = ui(b.addr, "POST", "/__bext/ui/login", &form, "token=ui-secreT").await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("wrong token") && r.header("set-cookie").is_none());
    let r = ui(b.addr, "POST", "/__bext/ui/login", &form, "token=").await;
    assert_eq!(r.status, 401);
    let r = ui(b.addr, "GET", "/__bext/ui", &[("authorization", "Bearer nope")], "").await;
    assert_eq!(r.status, 401);
    let forged = format!("bext_ui={}", "0".repeat(64));
    assert_eq!(
        ui(b.addr, "GET", "/__bext/ui", &[("cookie", &forged)], "").await.status,
        303
    );
    let as_cookie = format!("bext_ui={TOKEN}");
    assert_eq!(
        ui(b.addr, "GET", "/__bext/ui", &[("cookie", &as_cookie)], "")
            .await
            .status,
        303
    );

    // The right one: a session cookie that is not the token.
    let r = ui(b.addr, "POST", "/__bext/ui/login", &form, &format!("token={TOKEN}")).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/__bext/ui")));
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/__bext/ui"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    // Server-rendered: the app, its domain and runtime are in the HTML.
    let page = ui(b.addr, "GET", "/__bext/ui", &[("cookie", &cookie)], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text();
    for want in [
        "/__bext/ui/apps/blog",
        "blog.test",
        "static",
        "ui.css",
        "ui.js",
        r#"id="waf-events""#,
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains(TOKEN));
    let bearer = format!("Bearer {TOKEN}");
    let r = ui(b.addr, "GET", "/__bext/ui/apps/blog", &[("authorization", &bearer)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<h1>blog</h1>"));
    assert_eq!(
        ui(b.addr, "GET", "/__bext/ui/apps/nope", &[("cookie", &cookie)], "")
            .await
            .status,
        404
    );

    // The assets are embedded.
    let css = ui(b.addr, "GET", "/__bext/ui/ui.css", &[], "").await;
    assert_eq!(
        (css.status, css.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    let js = ui(b.addr, "GET", "/__bext/ui/ui.js", &[], "").await;
    assert!(js.text().contains("EventSource"));

    // Logout needs the form's token, then the session is gone.
    let csrf = csrf_of(&html);
    let r = ui(b.addr, "POST", "/__bext/ui/logout", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 403);
    let headers = [("cookie", cookie.as_str()), form[0]];
    let r = ui(b.addr, "POST", "/__bext/ui/logout", &headers, &format!("csrf={csrf}")).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/__bext/ui/login")));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        ui(b.addr, "GET", "/__bext/ui", &[("cookie", &cookie)], "").await.status,
        303
    );
}

#[tokio::test]
async fn buttons_need_the_session_csrf_token() {
    let s = Site::new();
    let config = platform(&s, "");
    let b = serve(&config);
    deploy(&s, &config, b.addr, "one", "version one");
    deploy(&s, &config, b.addr, "two", "version two");
    let cookie = login(b.addr).await;
    let page = ui(b.addr, "GET", "/__bext/ui/apps/blog", &[("cookie", &cookie)], "")
        .await
        .text();
    assert!(page.contains(r#"<strong id="current-version">v2</strong>"#), "{page}");
    let csrf = csrf_of(&page);
    let current = || async { get(b.addr, "blog.test", "/").await.text() };

    // What another site's form can send: the cookie (were SameSite not
    // honoured), but not the token it cannot read.
    let form = ("content-type", "application/x-www-form-urlencoded");
    let with = [("cookie", cookie.as_str()), form];
    let rollback = "/__bext/ui/apps/blog/rollback";
    for body in [
        "",
        "csrf=",
        "csrf=0000",
        &format!("csrf={}", csrf.to_uppercase()),
        &format!("x=1&csrf{csrf}"),
    ] {
        let r = ui(b.addr, "POST", rollback, &with, body).await;
        assert_eq!(r.status, 403, "{body}");
    }
    let cross = [("cookie", cookie.as_str()), form, ("sec-fetch-site", "cross-site")];
    assert_eq!(
        ui(b.addr, "POST", rollback, &cross, &format!("csrf={csrf}"))
            .await
            .status,
        403
    );
    assert_eq!(
        ui(b.addr, "POST", rollback, &[form], &format!("csrf={csrf}"))
            .await
            .status,
        401
    );
    assert_eq!(current().await, "version two", "nothing was rolled back");

    // The page's own form.
    let r = ui(b.addr, "POST", rollback, &with, &format!("csrf={csrf}")).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/__bext/ui/apps/blog")));
    assert_eq!(current().await, "version one");
    let page = ui(b.addr, "GET", "/__bext/ui", &[("cookie", &cookie)], "").await.text();
    assert!(page.contains(r#"<td class="current-version">v1</td>"#), "{page}");

    // A bearer client needs no form token; the deploy API's refusals show.
    let bearer = format!("Bearer {TOKEN}");
    let r = ui(
        b.addr,
        "POST",
        "/__bext/ui/apps/blog/promote",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.text()
            .contains(r#"id="action-error">404 blog has no canary to promote"#)
    );
    assert!(!r.text().contains("logout"), "a bearer client has no session");
    let authorized = ("authorization", bearer.as_str());
    for (path, headers, body, status) in [
        ("/__bext/ui/apps/blog/promote", &[authorized, form][..], "to=1e2", 400),
        ("/__bext/ui/apps/ghost/rollback", &[authorized][..], "", 404),
        ("/__bext/ui/apps/blog/delete", &[authorized][..], "", 404),
    ] {
        assert_eq!(ui(b.addr, "POST", path, headers, body).await.status, status, "{path}");
    }
    assert_eq!(current().await, "version one");

    // A canary and a preview show on the overview; Promote makes the
    // canary current.
    deploy_with(&s, &config, b.addr, "three", "version three", &["--canary", "30"]);
    deploy_with(&s, &config, b.addr, "four", "version four", &["--preview", "pr-7"]);
    // Visitors kept on each side: their answers are counted per version.
    for side in ["v3", "v3", "stable"] {
        let visitor = format!("bext_canary_blog={side}");
        let r = send(
            b.addr,
            request("GET", "/", &[("host", "blog.test"), ("cookie", &visitor)], ""),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let html = ui(b.addr, "GET", "/__bext/ui", &[("cookie", &cookie)], "").await.text();
    let canaries = &html[html.find(r#"id="canaries""#).unwrap()..html.find(r#"id="previews""#).unwrap()];
    assert!(
        canaries.contains("<td>canary</td><td>v3</td><td>30%</td><td>2</td><td>0</td>"),
        "{canaries}"
    );
    assert!(
        canaries.contains("<td>stable</td><td>v1</td><td></td><td>1</td><td>0</td>"),
        "{canaries}"
    );
    let previews = &html[html.find(r#"id="previews""#).unwrap()..];
    assert!(
        previews.contains("<td>blog</td><td>pr-7</td><td>v4</td><td>"),
        "{previews}"
    );
    let page = ui(b.addr, "GET", "/__bext/ui/apps/blog", &[("cookie", &cookie)], "")
        .await
        .text();
    assert!(
        page.contains(r#"id="promote""#) && page.contains(r#"id="canary-stats""#),
        "{page}"
    );
    assert!(
        page.contains("<td>stable</td><td>1</td><td>0</td>") && page.contains("<td>canary</td><td>2</td><td>0</td>"),
        "{page}"
    );
    let promote = "/__bext/ui/apps/blog/promote";
    assert_eq!(ui(b.addr, "POST", promote, &with, "to=50").await.status, 403);
    let r = ui(b.addr, "POST", promote, &with, &format!("csrf={csrf}&to=")).await;
    assert_eq!(r.status, 303);
    let page = ui(b.addr, "GET", "/__bext/ui/apps/blog", &[("cookie", &cookie)], "")
        .await
        .text();
    assert!(page.contains(r#"<strong id="current-version">v3</strong>"#), "{page}");
}

#[tokio::test]
async fn no_dashboard_on_a_tenants_host() {
    let s = Site::new();
    let b = serve(&platform(&s, r#"admin_hosts = ["admin.test"]"#));
    let bearer = format!("Bearer {TOKEN}");
    let unknown = get(b.addr, "blog.test", "/__bext/nothing-here").await;
    assert_eq!(unknown.status, 404);
    for path in [
        "/__bext/ui",
        "/__bext/ui/login",
        "/__bext/ui/ui.js",
        "/__bext/ui/events",
    ] {
        for host in ["blog.test", "BLOG.test", "admin.test.blog.test"] {
            let r = send(
                b.addr,
                request("GET", path, &[("host", host), ("authorization", &bearer)], ""),
            )
            .await;
            assert_eq!((r.status, r.text()), (404, unknown.text()), "{host}{path}");
        }
    }
    let form = [
        ("host", "blog.test"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let r = send(
        b.addr,
        request("POST", "/__bext/ui/login", &form, format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.header("set-cookie").is_none());

    // On the admin host, only the exact spelling is the dashboard.
    assert_eq!(ui(b.addr, "GET", "/__bext/ui", &[], "").await.status, 303);
    assert_eq!(ui(b.addr, "GET", "/__BEXT/ui", &[], "").await.status, 404);
    assert_eq!(ui(b.addr, "GET", "/__bext/UI", &[], "").await.status, 404);
    assert_eq!(ui(b.addr, "GET", "/__bext/uix", &[], "").await.status, 404);
    assert_eq!(ui(b.addr, "GET", "/__bext%2Fui", &[], "").await.status, 400);
    assert_eq!(
        ui(b.addr, "GET", "/__bext/./ui", &[], "").await.status,
        303,
        "dot segments removed first"
    );
}

#[tokio::test]
async fn events_stream_traffic_and_waf_decisions() {
    let s = Site::new();
    let b = serve(&platform(&s, ""));
    let bearer = format!("Bearer {TOKEN}");
    let (mut sender, _conn) = h1_client(b.addr).await;
    let req = request(
        "GET",
        "/__bext/ui/events",
        &[("host", "admin.test"), ("authorization", &bearer)],
        "",
    );
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let blocked = get(b.addr, "blog.test", "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(blocked.status, 403);
    let mut seen = String::new();
    while !(seen.contains("event: traffic") && seen.contains("event: waf")) {
        let frame = tokio::time::timeout(Duration::from_secs(15), body.frame())
            .await
            .expect("an event within 15 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let waf = seen.split("event: waf\ndata: ").nth(1).unwrap().lines().next().unwrap();
    let event: serde_json::Value = serde_json::from_str(waf).unwrap();
    assert_eq!(
        (event["action"].as_str(), event["app"].as_str()),
        (Some("block"), Some("blog"))
    );
    assert!(seen.contains(r#""requests":{"blog":"#), "{seen}");
}

#[tokio::test]
async fn in_a_real_browser() {
    let s = Site::new();
    let config = platform(&s, "");
    let b = serve(&config);
    deploy(&s, &config, b.addr, "one", "version one");
    deploy(&s, &config, b.addr, "two", "version two");
    let base = format!("http://{}", b.addr);
    let browser = Browser::start().await;

    // Sent to the login form; a wrong token is refused.
    browser.goto(&format!("{base}/__bext/ui")).await;
    assert!(browser.url().await.ends_with("/__bext/ui/login"));
    browser.type_into("#token", "wrong").await;
    browser.click("#login").await;
    assert_eq!(browser.text("#login-error").await, "wrong token");
    assert!(browser.find("#apps").await.is_none());

    // The right one: the overview, the app and its current version.
    browser.type_into("#token", TOKEN).await;
    browser.click("#login").await;
    assert_eq!(browser.text("a.app-link").await, "blog");
    assert_eq!(browser.text("td.current-version").await, "v2");

    // Roll back from the button.
    browser.click("a.app-link").await;
    assert_eq!(browser.text("#current-version").await, "v2");
    browser.click("#rollback").await;
    browser.wait_text("#current-version", |t| t == "v1").await;
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");

    // A WAF event appears on the open overview, without a reload.
    browser.goto(&format!("{base}/__bext/ui")).await;
    browser.wait_text("#live", |t| t == "live").await;
    assert!(browser.find("tr.waf-event").await.is_none());
    let blocked = get(b.addr, "blog.test", "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(blocked.status, 403);
    let row = browser.wait_text("tr.waf-event.fresh", |t| t.contains("block")).await;
    assert!(row.contains("xss") && row.contains("GET blog.test/"), "{row}");
    assert!(browser.url().await.ends_with("/__bext/ui"), "no reload");
}

#[tokio::test]
async fn over_tls_the_cookie_is_secure_and_certificates_are_listed() {
    let s = Site::new();
    s.write("site/index.html", "hi");
    let b = serve(&s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n\
         [apps.blog]\nsource = \"site\"\ndomains = [\"blog.test\"]\ntls = \"self-signed\"\n",
    ));
    let root = crate::tls::first_cert(&std::fs::read(s.path(".bext/tls/self-signed/blog.crt")).unwrap());
    let client = crate::tls::Client::trusting(&[&root]);
    let form = [
        ("host", "blog.test"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let login = request("POST", "/__bext/ui/login", &form, format!("token={TOKEN}"));
    let r = client.send(b.tls.unwrap(), "blog.test", login).await;
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").unwrap();
    assert!(set.ends_with("; Secure") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap();
    let page = client
        .send(
            b.tls.unwrap(),
            "blog.test",
            request("GET", "/__bext/ui", &[("host", "blog.test"), ("cookie", cookie)], ""),
        )
        .await;
    let html = page.text();
    let certs = &html[html.find(r#"id="certificates""#).expect("the certificates table")..];
    assert!(
        certs.contains("<td>blog.test</td>") && certs.contains(" GMT</td>"),
        "{certs}"
    );
}

#[tokio::test]
async fn the_cache_hit_ratio_comes_from_the_isr_metrics() {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write("manifests/isr.yaml", "name: isr\nenabled: true\n");
    let b = serve(&shop_platform(&s, echo.addr));
    let bearer = format!("Bearer {TOKEN}");
    let overview = || async {
        ui(b.addr, "GET", "/__bext/ui", &[("authorization", &bearer)], "")
            .await
            .text()
    };
    assert!(overview().await.contains("No answers through the isr cache yet."));
    let cached = [
        ("host", "shop.test"),
        ("x-echo-set", "cache-control=public, max-age=60"),
    ];
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = send(b.addr, request("GET", "/page", &cached, "")).await;
        seen.push(r.header("x-cache").unwrap_or("-").to_owned());
    }
    assert_eq!(seen, ["MISS", "HIT", "HIT", "HIT"]);
    let html = overview().await;
    assert!(
        html.contains(r#"<strong id="cache-ratio">75.0%</strong> (HIT 3, MISS 1)"#),
        "{html}"
    );
}

#[tokio::test]
async fn an_open_event_stream_does_not_hold_up_a_shutdown() {
    let s = Site::new();
    let mut b = serve(&platform(&s, "[platform.limits]\nshutdown_timeout = \"600s\"\n"));
    let bearer = format!("Bearer {TOKEN}");
    let (mut sender, _conn) = h1_client(b.addr).await;
    let req = request(
        "GET",
        "/__bext/ui/events",
        &[("host", "admin.test"), ("authorization", &bearer)],
        "",
    );
    let mut body = sender.send_request(req).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("retry: "));
    b.signal("TERM");
    // The stream ends (well before the 600 s the drain would wait for it)...
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream was not ended by the shutdown");
    // ...and the server stops.
    let status = tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test]
async fn on_admin_listen_with_the_token_and_not_on_the_public_port() {
    let s = Site::new();
    let b = serve(&platform(&s, "admin_listen = \"127.0.0.1:0\""));
    let admin = b.admin.expect("the admin listener is announced");
    let bearer = format!("Bearer {TOKEN}");
    for host in ["admin.test", "blog.test", "127.0.0.1"] {
        let r = send(
            b.addr,
            request("GET", "/__bext/ui", &[("host", host), ("authorization", &bearer)], ""),
        )
        .await;
        assert_eq!(r.status, 404, "{host} on the public port");
    }
    // Unlike the health details, the dashboard wants the token there too.
    let r = ui(admin, "GET", "/__bext/ui", &[], "").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/__bext/ui/login")));
    assert_eq!(
        ui(admin, "GET", "/__bext/ui", &[("authorization", "Bearer x")], "")
            .await
            .status,
        401
    );
    let r = ui(admin, "GET", "/__bext/ui", &[("authorization", &bearer)], "").await;
    assert!(r.text().contains("/__bext/ui/apps/blog"));
    let cookie = login(admin).await;
    let r = ui(admin, "GET", "/__bext/ui/apps/blog", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 200);
}
