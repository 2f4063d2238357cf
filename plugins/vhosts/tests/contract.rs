//! The vhosts plugin through its public contract, as the kernel drives it
//! (`bext_plugin_abi::testing`).

use bext_plugin_abi::testing::{Harness, block_on, request};
use bext_plugin_abi::{AppInfo, Ctx, Hook, Plugin, PluginError, Request, Response, text_response};
use bext_plugin_vhosts::Vhosts;
use http::StatusCode;

fn vhosts(config: serde_json::Value, apps: &[AppInfo]) -> Result<Harness<Vhosts>, PluginError> {
    block_on(Harness::builder(config).apps(apps.to_vec()).start())
}

fn app(_req: Request, _cx: &Ctx) -> Response {
    text_response(StatusCode::OK, "app")
}

/// The context after the fetch stage, for `host` and `path`.
fn fetch(h: &Harness<Vhosts>, host: &str, path: &str) -> Ctx {
    let ex = block_on(h.send(request("GET", path).header("host", host), app));
    assert!(ex.reached_app && ex.errors.is_empty(), "vhosts routes, never answers");
    ex.cx
}

fn app_info(id: &str, domains: &[&str]) -> AppInfo {
    AppInfo {
        id: id.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        tenant_domains: Default::default(),
    }
}

#[test]
fn a_match_sets_app_tenant_base_and_bypass() {
    let apps = [app_info("saas", &["*.example.com"]), app_info("site", &["example.com"])];
    let p = vhosts(
        serde_json::json!({"hosts": {"raw.example.org": {"app": "site", "bypass": true}}}),
        &apps,
    )
    .unwrap();
    let cx = fetch(&p, "acme.example.com", "/");
    assert_eq!(
        (cx.app(), cx.tenant(), cx.base.as_deref(), cx.bypass),
        (Some("saas"), Some("acme"), Some("/"), false)
    );
    let cx = fetch(&p, "example.com", "/");
    assert_eq!((cx.app(), cx.tenant()), (Some("site"), None));
    let cx = fetch(&p, "raw.example.org", "/x");
    assert!(cx.bypass);
    let cx = fetch(&p, "other.test", "/");
    assert_eq!((cx.app(), cx.base.as_deref()), (None, None));
}

#[test]
fn the_fetch_hook_never_waits() {
    let h = vhosts(serde_json::json!({}), &[app_info("site", &["example.com"])]).unwrap();
    let (mut req, mut cx) = request("GET", "/").header("host", "example.com").into_parts();
    match h.plugin().fetch(&mut req, &mut cx) {
        Hook::Ready(r) => drop(r.unwrap()),
        Hook::Later(_) => panic!("vhosts never waits"),
    }
    assert_eq!(cx.app(), Some("site"));
}

#[test]
fn app_domains_can_be_left_out() {
    let apps = [app_info("site", &["example.com"])];
    let p = vhosts(serde_json::json!({"app_domains": false}), &apps).unwrap();
    assert!(p.plugin().matcher().is_empty());
    assert_eq!(fetch(&p, "example.com", "/").app(), None);
}

#[test]
fn config_errors_carry_the_field_path() {
    let err = vhosts(serde_json::json!({"hosts": {"bad host!": {"app": "x"}}}), &[])
        .err()
        .unwrap();
    match err {
        PluginError::Config { path, reason } => {
            assert_eq!(path, "hosts.bad host!");
            assert!(reason.contains("not a valid host name"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // `"sked.ly": skedly`, and the reverse, an entry one level too deep:
    // each told the shape to write, at its path.
    for (config, at, says) in [
        (
            serde_json::json!({"hosts": {"sked.ly": "skedly"}}),
            "hosts.sked.ly",
            r#"write `{ app: "skedly" }`"#,
        ),
        (
            serde_json::json!({"hosts": {"sked.ly": {"app": {"app": "skedly"}}}}),
            "hosts.sked.ly.app",
            r#"write `app: "skedly"`"#,
        ),
        (
            serde_json::json!({"hosts": ["sked.ly"]}),
            "hosts",
            r#"`hosts: { "sked.ly": { app: "skedly" } }`"#,
        ),
    ] {
        match vhosts(config, &[]).err().unwrap() {
            PluginError::Config { path, reason } => {
                assert_eq!(path, at);
                assert!(reason.contains(says), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let err = vhosts(
        serde_json::json!({}),
        &[app_info("a", &["x.test"]), app_info("b", &["x.test"])],
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("`a`") && err.to_string().contains("`b`"),
        "{err}"
    );
}

/// A tenant's own domain routes to its app with its tenant named; one that
/// takes a host the manifest or another app routes is left out, and the
/// plugin still builds (it was recorded at run time: a reload must go on).
#[test]
fn tenant_domains_route_with_their_tenant_and_never_take_a_claimed_host() {
    let mut saas = app_info("saas", &["*.saas.test"]);
    saas.tenant_domains = [
        ("shop.customer.test", "customer"),
        ("www.other.test", "other"),
        ("raw.other.test", "other"),
    ]
    .into_iter()
    .map(|(d, t)| (d.to_owned(), t.to_owned()))
    .collect();
    let apps = [saas, app_info("site", &["www.other.test"])];
    let p = vhosts(serde_json::json!({"hosts": {"raw.other.test": {"app": "site"}}}), &apps).unwrap();
    let cx = fetch(&p, "shop.customer.test", "/cart");
    assert_eq!((cx.app(), cx.tenant()), (Some("saas"), Some("customer")));
    let cx = fetch(&p, "www.other.test", "/");
    assert_eq!((cx.app(), cx.tenant()), (Some("site"), None));
    let cx = fetch(&p, "raw.other.test", "/");
    assert_eq!((cx.app(), cx.tenant()), (Some("site"), None));
}
