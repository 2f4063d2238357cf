//! Virtual hosts and app resolution, seen from outside.

use std::time::Duration;

use crate::support::*;

/// A platform with exact, wildcard, regex, prefixed and proxied apps; the
/// `echo` and `tenants` apps proxy to an echo upstream so the test sees
/// exactly which headers an app receives.
async fn platform() -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let site = Site::new();
    for app in ["home", "site", "docs"] {
        site.write(&format!("{app}/index.html"), format!("{app} index"));
    }
    site.write("docs/guide/index.html", "docs guide");
    site.write(
        "manifests/vhosts.yaml",
        r#"
name: vhosts
config:
  hosts:
    "help.example.com": { app: docs, pathPrefix: /guide }
    "ghost.example.com": { app: nowhere }
    '~(?P<tenant>[a-z0-9]+)-shop\.example\.net': { app: tenants }
    "*.eu.example.com": { app: eu }
"#,
    );
    let cfg = site.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
default_app = "home"

[apps.home]
source = "home"

[apps.site]
source = "site"
domains = ["www.example.com", "[::1]", "localhost"]
headers = {{ "x-app-id" = "site" }}

[apps.docs]
source = "docs"

[apps.tenants]
runtime = "proxy"
upstream = "http://{echo}"
domains = ["*.example.com"]

[apps.eu]
runtime = "proxy"
upstream = "http://{echo}"

[apps.echo]
runtime = "proxy"
upstream = "http://{echo}"
"#,
        echo = echo.addr
    ));
    let bext = Bext::serve(&cfg);
    (site, bext, echo)
}

fn seen(r: &Reply) -> serde_json::Value {
    r.json()
}

#[tokio::test]
async fn exact_hosts_and_their_response_headers() {
    let (_s, b, _e) = platform().await;
    let r = get(b.addr, "www.example.com", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "site index"));
    assert_eq!(r.header("x-app-id"), Some("site"));
    for host in [
        "WWW.Example.COM",
        "www.example.com.",
        "www.example.com:8080",
        "[::1]:80",
        "localhost",
    ] {
        let r = get(b.addr, host, "/").await;
        assert_eq!(r.text(), "site index", "host {host}");
    }
}

#[tokio::test]
async fn wildcard_captures_the_tenant_and_client_copies_are_removed() {
    let (_s, b, _e) = platform().await;
    let r = send(
        b.addr,
        request(
            "GET",
            "/x?y=1",
            &[
                ("host", "Acme.Example.com"),
                ("x-vhost-tenant", "evil"),
                ("x-base", "/evil/"),
            ],
            "",
        ),
    )
    .await;
    let s = seen(&r);
    assert_eq!(s["headers"]["x-vhost-tenant"], "acme");
    assert_eq!(s["headers"]["x-base"], "/");
    assert_eq!(s["uri"], "/x?y=1");

    // The longest suffix wins, and a tenant may contain dots.
    let s = seen(&get(b.addr, "a.b.eu.example.com", "/").await);
    assert_eq!(s["headers"]["x-vhost-tenant"], "a.b");
    let s = seen(&get(b.addr, "a.b.us.example.com", "/").await);
    assert_eq!(s["headers"]["x-vhost-tenant"], "a.b.us");

    // An exact host never gets a tenant, even a spoofed one.
    let r = send(
        b.addr,
        request(
            "GET",
            "/",
            &[("host", "www.example.com"), ("x-vhost-tenant", "evil")],
            "",
        ),
    )
    .await;
    assert_eq!(r.text(), "site index");
}

#[tokio::test]
async fn every_request_gets_an_access_log_line() {
    let (_s, b, _e) = platform().await;
    let _ = get(b.addr, "Acme.example.com", "/orders?page=2").await;
    let log = || b.log();
    eventually(std::time::Duration::from_secs(5), || async {
        log()
            .lines()
            .find(|l| l.contains("bext::access") && l.contains("/orders"))
            .map(str::to_owned)
    })
    .await;
    let line = log().lines().find(|l| l.contains("/orders")).unwrap().to_owned();
    for field in [
        "method=GET",
        "host=\"acme.example.com\"",
        "status=200",
        "app=\"tenants\"",
        "tenant=\"acme\"",
        "duration_us=",
    ] {
        assert!(line.contains(field), "missing {field} in {line}");
    }
}

#[tokio::test]
async fn regex_hosts_capture_a_named_tenant() {
    let (_s, b, _e) = platform().await;
    let s = seen(&get(b.addr, "acme-shop.example.net", "/").await);
    assert_eq!(s["headers"]["x-vhost-tenant"], "acme");
}

#[tokio::test]
async fn http2_authority_and_absolute_form_win_over_host() {
    let (_s, b, _e) = platform().await;
    let r = send_h2(b.addr, request("GET", "http://globex.example.com/h2", &[], "")).await;
    assert_eq!(seen(&r)["headers"]["x-vhost-tenant"], "globex");

    let out = raw_async(
        b.addr,
        b"GET http://initech.example.com/abs HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.contains(r#""x-vhost-tenant":"initech""#), "{out}");
}

#[tokio::test]
async fn path_prefix_entries_fall_through() {
    let (_s, b, _e) = platform().await;
    let r = get(b.addr, "help.example.com", "/guide/").await;
    assert_eq!(r.text(), "docs guide");
    // Outside the prefix the entry does not apply: `*.example.com` takes it.
    let s = seen(&get(b.addr, "help.example.com", "/pricing").await);
    assert_eq!(s["headers"]["x-vhost-tenant"], "help");
}

#[tokio::test]
async fn path_routing_strips_the_app_and_sets_x_base() {
    let (_s, b, _e) = platform().await;
    let s = seen(
        &send(
            b.addr,
            request(
                "GET",
                "/echo/api/users?id=7",
                &[("host", "unknown.test"), ("x-base", "/evil/")],
                "",
            ),
        )
        .await,
    );
    assert_eq!(s["uri"], "/api/users?id=7");
    assert_eq!(s["headers"]["x-base"], "/echo/");
    assert!(s["headers"].get("x-vhost-tenant").is_none());

    let r = get(b.addr, "unknown.test", "/echo").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/echo/"));
}

#[tokio::test]
async fn unmatched_hosts_reach_the_default_app_and_ghost_apps_are_502() {
    let (_s, b, _e) = platform().await;
    let r = get(b.addr, "nobody.test", "/").await;
    assert_eq!(r.text(), "home index");
    let r = get(b.addr, "ghost.example.com", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text().trim(), "Virtual host app not found: nowhere");
}

#[tokio::test]
async fn without_a_default_app_unmatched_hosts_are_404() {
    let site = Site::new();
    site.write("a/index.html", "a");
    let cfg = site.platform("[platform]\nlisten = \"127.0.0.1:0\"\n[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\n");
    let b = Bext::serve(&cfg);
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");
    assert_eq!(get(b.addr, "b.test", "/").await.status, 404);
}

#[tokio::test]
async fn internal_endpoints_live_under_the_prefix_on_every_host() {
    let (_s, b, _e) = platform().await;
    for host in ["www.example.com", "acme.example.com", "nobody.test"] {
        let r = get(b.addr, host, "/__bext/health").await;
        assert_eq!(r.status, 200);
        let h = r.json();
        assert_eq!(h["status"], "ok");
        // Liveness only: the app list is for the admin (tests/e2e/canonical.rs).
        assert!(h.get("apps").is_none() && h.get("version").is_none(), "{h}");
    }
    // Apps keep their own /health, and unknown internal paths never reach apps.
    let s = seen(&get(b.addr, "acme.example.com", "/health").await);
    assert_eq!(s["uri"], "/health");
    assert_eq!(get(b.addr, "acme.example.com", "/__bext/nope").await.status, 404);
}
