//! Where the admin surface answers (the detailed `/__bext/health` and
//! plugins' admin routes: deploy's `/__bext/api/platform/...`, isr's
//! `/__bext/api/invalidate`, the WAF's `/__bext/waf/events`): on
//! `[platform] admin_hosts` and `admin_listen` only, when set. A tenant's
//! host gets the bare liveness answer, token or not, and the 404 of an
//! unknown path; the host is the one bext routes by, however it is spelt.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const TOKEN: &str = "sekret";
const ADMIN: &str = "admin.example.test";

/// A wildcard vhosts app (`*.tenant.test` and a customer's own domain)
/// with isr and the WAF on, so deploy, isr and the WAF all mount admin
/// routes; `platform` is the rest of `[platform]`.
fn serve(platform: &str) -> (Site, Bext) {
    let s = Site::new();
    s.write("www/index.html", "tenant app");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
{platform}

[apps.www]
source = "www"
domains = ["secret-customer.test", "*.tenant.test"]
[apps.www.plugins.isr]
enabled = true
[apps.www.plugins.waf]
enabled = true
"#
    ));
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    (s, b)
}

/// `method path` on `addr` with these headers, and the token when given.
async fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut all = headers.to_vec();
    if let Some(a) = &auth {
        all.push(("authorization", a));
    }
    let body = if method == "POST" { r#"{"paths":["/x"]}"# } else { "" };
    send(addr, request(method, path, &all, body)).await
}

/// The admin routes of the three plugins.
const ROUTES: [(&str, &str); 3] = [
    ("GET", "/__bext/api/platform/apps"),
    ("POST", "/__bext/api/invalidate"),
    ("GET", "/__bext/waf/events"),
];

/// What a host that is not an admin host gets: bare health even with the
/// right token (and a wrong one is not even looked at), and on every admin
/// route exactly the answer of an unknown path.
async fn is_tenant(addr: SocketAddr, headers: &[(&str, &str)], what: &str) {
    for token in [None, Some(TOKEN), Some("wrong")] {
        let r = call(addr, "GET", "/__bext/health", headers, token).await;
        let text = r.text();
        assert_eq!(r.status, 200, "{what}: {text}");
        assert_eq!(r.json()["status"], "ok", "{what}");
        assert!(
            !text.contains("apps") && !text.contains("secret-customer") && !text.contains("version"),
            "{what} {token:?}: {text}"
        );
    }
    let unknown = call(addr, "GET", "/__bext/no-such-endpoint", headers, Some(TOKEN)).await;
    assert_eq!(unknown.status, 404, "{what}");
    for (method, path) in ROUTES {
        for token in [Some(TOKEN), None] {
            let r = call(addr, method, path, headers, token).await;
            assert_eq!(
                (r.status, r.text(), r.header("content-type")),
                (unknown.status, unknown.text(), unknown.header("content-type")),
                "{what}: {method} {path} with {token:?} must look like an unknown path"
            );
            assert!(r.header("www-authenticate").is_none(), "{what}: {path}");
        }
    }
}

/// What an admin host gets: health details with the token, bare without
/// one; admin routes with the token. With `refusals`, also 401 for health
/// with a wrong token and for admin routes without one (four wrong tries
/// of the ten a client may make before it is throttled).
async fn is_admin(addr: SocketAddr, headers: &[(&str, &str)], what: &str, refusals: bool) {
    let r = call(addr, "GET", "/__bext/health", headers, Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["apps"][0]["domains"][0], "secret-customer.test", "{what}");
    let bare = call(addr, "GET", "/__bext/health", headers, None).await;
    assert!(bare.json().get("apps").is_none(), "{what}: {}", bare.text());
    if refusals {
        let r = call(addr, "GET", "/__bext/health", headers, Some("wrong")).await;
        assert_eq!(r.status, 401, "{what}: health with a wrong token");
    }
    for (method, path) in ROUTES {
        let r = call(addr, method, path, headers, Some(TOKEN)).await;
        assert_eq!(r.status, 200, "{what}: {method} {path}: {}", r.text());
        if refusals {
            let r = call(addr, method, path, headers, None).await;
            assert_eq!(r.status, 401, "{what}: {method} {path} without the token");
        }
    }
}

#[tokio::test]
async fn admin_hosts_keep_the_admin_surface_off_tenant_hosts() {
    let (_s, b) = serve(&format!("admin_hosts = [\"{ADMIN}\"]"));
    assert!(!b.log().contains("answer on every host"), "{}", b.log());
    for host in [
        "acme.tenant.test",
        "secret-customer.test",
        "unknown.test",
        "127.0.0.1",
        "localhost",
        // Near misses an attacker might try.
        "admin.example.test.tenant.test",
        "xadmin.example.test",
        "admin.example.tes",
    ] {
        is_tenant(b.addr, &[("host", host)], host).await;
    }
    // The tenant's app is still served on its host.
    assert_eq!(get(b.addr, "acme.tenant.test", "/").await.text(), "tenant app");

    // Every spelling of the admin host is the host bext routes by:
    // normalised (case, trailing dot, port) it is the admin host.
    for host in [
        ADMIN,
        "ADMIN.Example.TEST",
        "admin.example.test.",
        "admin.example.test:8443",
        "Admin.Example.Test.:80",
    ] {
        is_admin(b.addr, &[("host", host)], host, host == ADMIN).await;
    }
    // An absolute-form target's authority wins over Host (RFC 9112
    // §3.2.2), for admin routes as for app routing.
    let tenant_target = "http://acme.tenant.test/__bext/api/platform/apps";
    let r = call(b.addr, "GET", tenant_target, &[("host", ADMIN)], Some(TOKEN)).await;
    assert_eq!(r.status, 404, "a tenant's target with the admin Host");
    let r = call(b.addr, "GET", "http://acme.tenant.test/", &[("host", ADMIN)], None).await;
    assert_eq!(r.text(), "tenant app", "routed by the same host");
    let admin_target = format!("http://{ADMIN}/__bext/api/platform/apps");
    let r = call(
        b.addr,
        "GET",
        &admin_target,
        &[("host", "acme.tenant.test")],
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "the admin target with a tenant's Host: {}", r.text());
    let r = call(b.addr, "GET", &admin_target, &[("host", "acme.tenant.test")], None).await;
    assert_eq!(r.status, 401);
    // HTTP/2: `:authority` is the host.
    let h2 = |uri: &str| request("GET", uri, &[("authorization", &format!("Bearer {TOKEN}"))], "");
    assert_eq!(send_h2(b.addr, h2(tenant_target)).await.status, 404);
    assert_eq!(send_h2(b.addr, h2(&admin_target)).await.status, 200);
    // Two Hosts (admin and tenant, either order, or the admin host twice)
    // are refused before anything is routed; so is a malformed one.
    for hosts in [[ADMIN, "acme.tenant.test"], ["acme.tenant.test", ADMIN], [ADMIN, ADMIN]] {
        let headers = [("host", hosts[0]), ("host", hosts[1])];
        let r = call(b.addr, "GET", "/__bext/api/platform/apps", &headers, Some(TOKEN)).await;
        assert_eq!(r.status, 400, "{hosts:?}");
    }
    for bad in ["admin.example.test..", "admin .example.test", "admin.example.test:x"] {
        let raw_req = format!(
            "GET /__bext/api/platform/apps HTTP/1.1\r\nHost: {bad}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        let out = raw_async(b.addr, raw_req.as_bytes(), Duration::from_secs(2)).await;
        assert_eq!(status_of(&out), 400, "{bad}: {out}");
    }
    // HTTP/1.0 without a Host is no admin host.
    let raw_req = format!("GET /__bext/api/platform/apps HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let out = raw_async(b.addr, raw_req.as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&out), 404, "{out}");
}

#[tokio::test]
async fn admin_listen_serves_the_admin_surface_and_the_public_port_does_not() {
    let (_s, b) = serve("admin_listen = \"127.0.0.1:0\"");
    let admin = b.admin.expect("the admin listener's address");
    assert!(!b.log().contains("answer on every host"), "{}", b.log());
    for host in [
        "acme.tenant.test",
        "secret-customer.test",
        "127.0.0.1",
        "localhost",
        ADMIN,
    ] {
        is_tenant(b.addr, &[("host", host)], host).await;
    }

    // The admin listener: health details without a token, with or without
    // the prefix; plugins' admin routes at their public paths, behind the
    // token; no apps.
    for path in ["/health", "/__bext/health"] {
        let r = get(admin, "x", path).await;
        assert_eq!(r.json()["apps"][0]["id"], "www", "{path}: {}", r.text());
    }
    for host in ["acme.tenant.test", "x"] {
        for (method, path) in ROUTES {
            let r = call(admin, method, path, &[("host", host)], Some(TOKEN)).await;
            assert_eq!(r.status, 200, "{host} {method} {path}: {}", r.text());
            let r = call(admin, method, path, &[("host", host)], None).await;
            assert_eq!(r.status, 401, "{method} {path} without the token");
        }
    }
    assert_eq!(get(admin, "acme.tenant.test", "/").await.status, 404, "no apps");
    assert_eq!(
        get(admin, "x", "/api/platform/apps").await.status,
        404,
        "only their own paths"
    );
}

#[tokio::test]
async fn admin_hosts_beside_admin_listen_and_the_warning_without_either() {
    let (_s, b) = serve(&format!("admin_listen = \"127.0.0.1:0\"\nadmin_hosts = [\"{ADMIN}\"]"));
    is_admin(b.addr, &[("host", ADMIN)], "admin host on the public port", true).await;
    is_tenant(b.addr, &[("host", "acme.tenant.test")], "tenant").await;
    let admin = b.admin.expect("the admin listener's address");
    let r = call(admin, "GET", "/__bext/api/platform/apps", &[("host", "x")], Some(TOKEN)).await;
    assert_eq!(r.status, 200);

    // Neither set: as before, every host, and a warning says so.
    let (_s, b) = serve("");
    is_admin(b.addr, &[("host", "acme.tenant.test")], "every host", true).await;
    assert!(b.log().contains("answer on every host"), "{}", b.log());
    // An empty list: no public host at all.
    let (_s, b) = serve("admin_hosts = []");
    is_tenant(b.addr, &[("host", ADMIN)], "admin_hosts = []").await;
}

/// `bext apps list` against a running server, without the admin token in
/// the environment unless `token`.
fn apps_list(config: &std::path::Path, server: Option<&str>, token: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bext"));
    cmd.args(["apps", "list", "--json", "--config", config.to_str().unwrap()]);
    if let Some(s) = server {
        cmd.args(["--server", s]);
    }
    cmd.env_remove("BEXT_ADMIN_TOKEN");
    if token {
        cmd.env("BEXT_ADMIN_TOKEN", TOKEN);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn the_cli_reaches_the_admin_api_where_it_is_served() {
    // admin_hosts: the CLI asks the public port under the first admin host.
    let (s, b) = serve(&format!("admin_hosts = [\"{ADMIN}\"]"));
    let config = s.path("platform.toml");
    let url = format!("http://{}", b.addr);
    let out = apps_list(&config, Some(&url), true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("www"));

    // admin_listen: `--server` on it, at the same paths.
    let (s, b) = serve("admin_listen = \"127.0.0.1:0\"");
    let config = s.path("platform.toml");
    let url = format!("http://{}", b.admin.unwrap());
    let out = apps_list(&config, Some(&url), true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(b);

    // Without `--server`, the CLI finds the server on `admin_listen`
    // (a fixed port here): it says it needs the token, where in-process
    // it would have needed none.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (s, _b) = serve(&format!("admin_listen = \"{port}\""));
    let config = s.path("platform.toml");
    let out = apps_list(&config, None, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        err.contains(&format!("a bext server answers at http://{port}")),
        "{err}"
    );
    let out = apps_list(&config, None, true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
