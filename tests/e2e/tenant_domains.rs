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
use std::time::Duration;

use crate::deploy::ok;
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

/// An admin API call with the token.
async fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    api_at(addr, "x", method, path, body).await
}

/// [`api`] under `host` (one of the platform's `admin_hosts`).
async fn api_at(addr: SocketAddr, host: &str, method: &str, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    send(
        addr,
        request(
            method,
            path,
            &[
                ("host", host),
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
    acme_platform_with(s, pebble, acme_extra, "")
}

/// [`acme_platform`] with `app_extra` lines added to `saas`.
fn acme_platform_with(s: &Site, pebble: &Pebble, acme_extra: &str, app_extra: &str) -> std::path::PathBuf {
    crate::acme::acme_platform_app(s, pebble, acme_extra, "saas", "\"saas.bext.test\"", app_extra)
}

#[tokio::test]
async fn a_tenant_domain_gets_a_certificate_at_its_first_handshake_without_the_ask() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let ask = AskServer::start(&[]).await;
    let s = Site::new();
    let config = acme_platform_with(
        &s,
        &pebble,
        &format!("on_demand_ask = \"{}\"", ask.url),
        "hsts = \"max-age=100; includeSubDomains; preload\"",
    );
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
    // The app's `hsts` pins the tenant's own host only: the customer's
    // other subdomains are not the platform's.
    let client = crate::tls::Client::trusting(&[&crate::tls::first_cert(root.as_bytes())]);
    let tls: SocketAddr = ([127, 0, 0, 1], pebble.tls_port).into();
    let (r, _, _) = client.get(tls, "shop.customer.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("strict-transport-security"), Some("max-age=100"));

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

/// No tenant's own domain takes a name someone else reaches: under the
/// vhosts `hosts` map (exact or wildcard), an `admin_hosts` name, the
/// platform file's tenant domain, another app's domain, a name a default
/// app serves by its certificate, a live preview's host (in-process
/// too); what those reach stays as it was. A plain-HTTP request on a
/// tenant's own domain of an app with `https_redirect` goes to https on
/// that same domain.
#[tokio::test]
async fn a_name_someone_else_reaches_is_refused_and_keeps_its_route() {
    let echo = Echo::start().await;
    let s = Site::new();
    let ca = crate::tls::Ca::new();
    let home_tls = crate::tls::files(&s, "home", &ca.leaf(&["home.test", "www.home.test"]));
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    mapped.test: { app: other }\n    \"*.mapped.test\": { app: other }\n",
    );
    for dir in ["home", "blog", "v2"] {
        s.write(&format!("{dir}/index.html"), dir);
    }
    let proxy = |id: &str, extra: &str| {
        format!(
            "[apps.{id}]\nruntime = \"proxy\"\nupstream = \"http://{}\"\nheaders = {{ \"x-app-id\" = \"{id}\" }}\n{extra}\n",
            echo.addr
        )
    };
    let body = format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\
         default_app = \"home\"\nadmin_hosts = [\"admin.lab.test\"]\n\
         [platform.acme]\ndirectory = \"https://127.0.0.1:1/dir\"\n\
         [apps.home]\nsource = \"home\"\ntls = {home_tls}\n\
         [apps.blog]\nsource = \"blog\"\ndomains = [\"blog.test\"]\n{}{}{}{}",
        proxy(
            "saas",
            "domains = [\"*.saas.test\"]\ntenant_domains = { \"static.cust.test\" = \"static\" }"
        ),
        proxy("other", ""),
        proxy(
            "s",
            "domains = [\"s.test\", \"*.s.test\"]\ntls = \"self-signed\"\nhttps_redirect = true"
        ),
        proxy(
            "w",
            "domains = [\"*.w.test\"]\ntls = \"self-signed\"\nhttps_redirect = true"
        ),
    );
    let config = s.platform(&body);
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let admin = "admin.lab.test";
    let add = |domain: &str, app: &str| format!(r#"{{"domain": "{domain}", "app": "{app}", "tenant": "evil"}}"#);
    for (domain, app, held_by) in [
        ("x.mapped.test", "saas", "the vhosts hosts map (app other)"),
        ("a.b.Mapped.Test.", "saas", "the vhosts hosts map (app other)"),
        ("MAPPED.test.", "saas", "the vhosts hosts map (app other)"),
        ("admin.lab.test", "saas", "admin_hosts"),
        ("Admin.Lab.Test.", "blog", "admin_hosts"),
        ("static.cust.test", "saas", "tenant static of app saas"),
        ("static.cust.test", "blog", "tenant static of app saas"),
        ("home.test", "saas", "app home's certificate"),
        ("www.home.test", "saas", "app home's certificate"),
        ("blog.test", "saas", "app blog's domain"),
        ("acme.saas.test", "saas", "app saas's domain"),
    ] {
        let r = api_at(b.addr, admin, "POST", API, &add(domain, app)).await;
        assert_eq!(r.status, 409, "{domain} for {app}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(held_by), "{domain} for {app}: {error}");
    }
    let r = api_at(b.addr, admin, "POST", API, r#"["j3.test", "saas", "t"]"#).await;
    assert_eq!(r.status, 400, "a JSON array: {}", r.text());
    let listed = api_at(b.addr, admin, "GET", API, "").await.json();
    assert_eq!(listed, serde_json::json!([]), "nothing was recorded");
    assert_eq!(
        reached(b.addr, "x.mapped.test").await,
        ("other".into(), Some("x".into()))
    );
    assert_eq!(reached(b.addr, "static.cust.test").await, saas("static"));

    // On a tenant's own domain, `https_redirect` keeps the domain (an app
    // with exact domains, and one with only a wildcard; ACME is on, so
    // its certificate comes on demand).
    for (domain, app) in [("st.cust.test", "s"), ("zz.cust.test", "w")] {
        let body = format!(r#"{{"domain": "{domain}", "app": "{app}", "tenant": "t"}}"#);
        let r = api_at(b.addr, admin, "POST", API, &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let port = b.tls.unwrap().port();
    for (host, location) in [
        ("st.cust.test", "https://st.cust.test"),
        ("ST.Cust.Test.", "https://st.cust.test"),
        ("zz.cust.test", "https://zz.cust.test"),
        ("a.s.test", "https://a.s.test"),
    ] {
        let r = get(b.addr, host, "/p?q=1").await;
        let expected = format!("{location}:{port}/p?q=1");
        assert_eq!(
            (r.status, r.header("location")),
            (308, Some(expected.as_str())),
            "{host}"
        );
    }

    // A recorded domain that an app's new domain reaches is skipped at the
    // reload, with a warning: the app's domain wins, whatever the ids.
    let r = api_at(b.addr, admin, "POST", API, &add("new.cust.test", "saas")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(reached(b.addr, "new.cust.test").await, saas("evil"));
    s.platform(&body.replace(
        "domains = [\"blog.test\"]",
        "domains = [\"blog.test\", \"new.cust.test\"]",
    ));
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "new.cust.test", "/").await.text() == "blog").then_some(())
    })
    .await;
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("tenant domain not served") && l.contains("new.cust.test")),
        "{log}"
    );

    // In-process (no server answers the file's port 0), a live preview's
    // host is as taken as on the server.
    drop(b);
    ok(cli(
        &config,
        &[
            "deploy",
            s.path("v2").to_str().unwrap(),
            "--app",
            "blog",
            "--preview",
            "pr-1",
        ],
    ));
    let failed = cli(
        &config,
        &[
            "domains",
            "add",
            "PR-1.preview.blog.test",
            "--app",
            "saas",
            "--tenant",
            "t",
        ],
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{err}");
    assert!(err.contains("preview pr-1 of app blog"), "{err}");
    ok(cli(
        &config,
        &["domains", "add", "free.cust.test", "--app", "saas", "--tenant", "t"],
    ));
}

/// Without ACME and without a certificate file naming it, a tenant's own
/// domain has no certificate: `https_redirect` leaves it on plain HTTP
/// instead of sending clients into a handshake alert; the app's own
/// domains are still redirected.
#[tokio::test]
async fn without_a_certificate_a_tenant_domain_is_not_redirected_to_https() {
    let echo = Echo::start().await;
    let s = Site::new();
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n\
         [apps.s]\nruntime = \"proxy\"\nupstream = \"http://{}\"\nheaders = {{ \"x-app-id\" = \"s\" }}\n\
         domains = [\"s.test\", \"*.s.test\"]\ntls = \"self-signed\"\nhttps_redirect = true\n\
         tenant_domains = {{ \"st.cust.test\" = \"t\" }}\n",
        echo.addr
    ));
    let b = Bext::serve(&config);
    assert_eq!(reached(b.addr, "st.cust.test").await, ("s".into(), Some("t".into())));
    assert_eq!(reached(b.addr, "ST.Cust.Test.").await, ("s".into(), Some("t".into())));
    let r = get(b.addr, "a.s.test", "/p").await;
    assert_eq!(r.status, 308, "the app's own domain is still redirected");
}
