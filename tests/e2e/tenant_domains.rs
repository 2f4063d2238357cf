//! Tenants' own domains through the real `bext` binary: added over the
//! admin API and with `bext domains` (on a running server and in-process),
//! routed to their app with `x-vhost-tenant` as a wildcard tenant's host
//! is (a client's own copy never passing), kept across a restart, and
//! gone from routing once removed. Against pebble: a tenant's domain gets
//! its certificate at its first handshake although `on_demand_ask`
//! refuses everything, while a name nobody added, or one removed, does
//! not, and the app's `tls = "acme"` never orders it up front; without
//! `on_demand_ask`, only tenants' domains are ordered on demand.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use crate::pebble::{AskServer, Pebble, handshake_serial};
use crate::support::*;

const TOKEN: &str = "domains-secret";
const API: &str = "/__bext/api/platform/domains";

/// `saas` (every `*.saas.test` tenant) and the default app `fallback`, both
/// proxies to `echo`, told apart by the `x-app-id` they answer with.
fn platform(s: &Site, echo: SocketAddr) -> std::path::PathBuf {
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
default_app = "fallback"

[apps.saas]
runtime = "proxy"
upstream = "http://{echo}"
domains = ["*.saas.test"]
headers = {{ "x-app-id" = "saas" }}

[apps.fallback]
runtime = "proxy"
upstream = "http://{echo}"
headers = {{ "x-app-id" = "fallback" }}
"#
    ))
}

/// `bext ARGS --config CONFIG`, with the admin token set.
fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .env("BEXT_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "bext failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An admin API call with the token.
async fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    send(
        addr,
        request(
            method,
            path,
            &[
                ("host", "x"),
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_owned(),
        ),
    )
    .await
}

/// Which app answered `GET /` on `host` (a client sending its own
/// `x-vhost-tenant: spoofed`), and the tenant the app was told of.
async fn reached(addr: SocketAddr, host: &str) -> (String, Option<String>) {
    let r = send(
        addr,
        request("GET", "/", &[("host", host), ("x-vhost-tenant", "spoofed")], ""),
    )
    .await;
    assert_eq!(r.status, 200, "{host}: {}", r.text());
    let app = r.header("x-app-id").unwrap_or("-").to_owned();
    let tenant = r.json()["headers"]["x-vhost-tenant"].as_str().map(str::to_owned);
    (app, tenant)
}

fn saas(tenant: &str) -> (String, Option<String>) {
    ("saas".into(), Some(tenant.into()))
}

#[tokio::test]
async fn a_tenant_domain_reaches_its_app_as_that_tenant_until_removed_and_survives_a_restart() {
    let echo = Echo::start().await;
    let s = Site::new();
    let config = platform(&s, echo.addr);
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let nobody = reached(b.addr, "nobody.test").await;
    assert_eq!(nobody, ("fallback".into(), None), "a spoofed tenant never passes");
    assert_eq!(reached(b.addr, "acme.saas.test").await, saas("acme"));

    // Over the admin API, in another spelling.
    let r = api(
        b.addr,
        "POST",
        API,
        r#"{"domain": "Shop.Customer.TEST.", "app": "saas", "tenant": "customer"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["domain"], "shop.customer.test");
    for host in ["shop.customer.test", "SHOP.Customer.test.", "shop.customer.test:80"] {
        assert_eq!(reached(b.addr, host).await, saas("customer"), "{host}");
    }
    assert_eq!(
        reached(b.addr, "x.shop.customer.test").await,
        nobody,
        "no wildcard below it"
    );

    // Refused with the reason: taken, shadowing a tenant of the wildcard,
    // not one host name.
    for (body, status) in [
        (r#"{"domain": "shop.customer.test", "app": "saas", "tenant": "x"}"#, 409),
        (r#"{"domain": "acme.saas.test", "app": "saas", "tenant": "evil"}"#, 409),
        (r#"{"domain": "*.customer.test", "app": "saas", "tenant": "x"}"#, 400),
        (r#"{"domain": "1.2.3.4", "app": "saas", "tenant": "x"}"#, 400),
        (r#"{"domain": "a.customer.test", "app": "nope", "tenant": "x"}"#, 404),
        ("{", 400),
    ] {
        let r = api(b.addr, "POST", API, body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    assert_eq!(reached(b.addr, "acme.saas.test").await, saas("acme"));

    // With the CLI, through the running server.
    let server = format!("http://{}", b.addr);
    let out = ok(cli(
        &config,
        &[
            "domains",
            "add",
            "globex.example.test",
            "--app",
            "saas",
            "--tenant",
            "globex",
            "--server",
            &server,
        ],
    ));
    assert!(
        out.contains("globex.example.test reaches app saas as tenant globex"),
        "{out}"
    );
    assert!(
        out.contains("no certificate: the platform has no [platform.acme]"),
        "{out}"
    );
    assert_eq!(reached(b.addr, "globex.example.test").await, saas("globex"));
    let failed = cli(
        &config,
        &[
            "domains",
            "add",
            "globex.example.test",
            "--app",
            "saas",
            "--tenant",
            "x",
            "--server",
            &server,
        ],
    );
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("already the domain of tenant globex of app saas"), "{err}");

    // A restart, and a domain added in-process meanwhile: the registry
    // keeps them all.
    drop(b);
    ok(cli(
        &config,
        &[
            "domains",
            "add",
            "initech.example.test",
            "--app",
            "saas",
            "--tenant",
            "initech",
        ],
    ));
    let listed: serde_json::Value = serde_json::from_str(&ok(cli(&config, &["domains", "list", "--json"]))).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["globex.example.test", "initech.example.test", "shop.customer.test"]
    );
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    assert_eq!(reached(b.addr, "shop.customer.test").await, saas("customer"));
    assert_eq!(reached(b.addr, "globex.example.test").await, saas("globex"));
    assert_eq!(reached(b.addr, "initech.example.test").await, saas("initech"));
    let table = ok(cli(
        &config,
        &["domains", "list", "--server", &format!("http://{}", b.addr)],
    ));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("shop.customer.test") && l.contains("customer")),
        "{table}"
    );

    // Removed: that host is unknown again (the default app, no tenant).
    let r = api(b.addr, "DELETE", &format!("{API}/SHOP.customer.test."), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(reached(b.addr, "shop.customer.test").await, nobody);
    let r = api(b.addr, "DELETE", &format!("{API}/shop.customer.test"), "").await;
    assert_eq!(r.status, 404, "{}", r.text());
    let out = ok(cli(
        &config,
        &[
            "domains",
            "rm",
            "globex.example.test",
            "--server",
            &format!("http://{}", b.addr),
        ],
    ));
    assert!(out.contains("removed globex.example.test"), "{out}");
    assert_eq!(reached(b.addr, "globex.example.test").await, nobody);
    assert_eq!(reached(b.addr, "initech.example.test").await, saas("initech"));
    let listed = api(b.addr, "GET", API, "").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

/// A platform on pebble's validation ports with `[platform.acme]`
/// (`acme_extra` lines added to it), and the `saas` app on
/// `saas.bext.test` with `tls = "acme"`.
fn acme_platform(s: &Site, pebble: &Pebble, acme_extra: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("site/index.html", "hello over acme");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:{http}\"\nlisten_tls = \"127.0.0.1:{tls}\"\nmanifests = \"manifests\"\nworkers = 1\n\
         [platform.acme]\ndirectory = \"{dir}\"\nca_root = \"{root}\"\nemail = \"ops@bext.test\"\n{acme_extra}\n\
         [apps.saas]\nsource = \"site\"\ndomains = [\"saas.bext.test\"]\ntls = \"acme\"\n",
        http = pebble.http_port,
        tls = pebble.tls_port,
        dir = pebble.directory,
        root = pebble.ca_root.display(),
    ))
}

#[tokio::test]
async fn a_tenant_domain_gets_a_certificate_at_its_first_handshake_without_the_ask() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let ask = AskServer::start(&[]).await;
    let s = Site::new();
    let config = acme_platform(&s, &pebble, &format!("on_demand_ask = \"{}\"", ask.url));
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    for domain in ["shop.customer.test", "gone.customer.test"] {
        let body = format!(r#"{{"domain": "{domain}", "app": "saas", "tenant": "customer"}}"#);
        let r = api(b.addr, "POST", API, &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = api(b.addr, "DELETE", &format!("{API}/gone.customer.test"), "").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Ordered at the first handshake, which waits for it; never asked.
    let serial = handshake_serial(pebble.tls_port, "shop.customer.test", &root)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.log(), pebble.log()));
    assert_eq!(
        handshake_serial(pebble.tls_port, "Shop.Customer.TEST.", &root)
            .await
            .unwrap(),
        serial
    );
    assert!(ask.asked().is_empty(), "{:?}", ask.asked());

    // A name nobody added, and one removed, are asked about: refused.
    for name in ["evil.customer.test", "gone.customer.test"] {
        let refused = handshake_serial(pebble.tls_port, name, &root).await.unwrap_err();
        assert!(refused.to_lowercase().contains("alert"), "{name}: {refused}");
    }
    assert_eq!(ask.asked(), ["evil.customer.test", "gone.customer.test"]);
    // Never among the names the app's `tls = "acme"` keeps ordered (each
    // reload that changes them says so).
    let log = b.log();
    let kept: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("keeping certificates fresh"))
        .collect();
    assert!(!kept.is_empty(), "{log}");
    assert!(kept.iter().all(|l| !l.contains("customer.test")), "{kept:?}");
}

/// Without `on_demand_ask`, only tenants' own domains are ordered on
/// demand; any other name is refused at once.
#[tokio::test]
async fn without_an_ask_only_tenant_domains_get_on_demand_certificates() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let s = Site::new();
    let config = acme_platform(&s, &pebble, "");
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let unknown = handshake_serial(pebble.tls_port, "shop.customer.test", &root)
        .await
        .unwrap_err();
    assert!(unknown.to_lowercase().contains("alert"), "{unknown}");
    // Refused before it was added, not remembered: adding it is enough.
    let out = ok(cli(
        &config,
        &[
            "domains",
            "add",
            "shop.customer.test",
            "--app",
            "saas",
            "--tenant",
            "customer",
            "--server",
            &format!("http://{}", b.addr),
        ],
    ));
    assert!(
        out.contains("its certificate is ordered at its first HTTPS handshake"),
        "{out}"
    );
    handshake_serial(pebble.tls_port, "shop.customer.test", &root)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.log(), pebble.log()));
    let refused = handshake_serial(pebble.tls_port, "other.customer.test", &root)
        .await
        .unwrap_err();
    assert!(refused.to_lowercase().contains("alert"), "{refused}");
}
