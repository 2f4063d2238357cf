//! The vhosts plugin through its public contract, as the kernel drives it.

use std::path::Path;

use bext_plugin_abi::{AppInfo, Body, BuiltinPlugin, Ctx, Hook, Plugin, Request, RequestId, Setup, decode_config};
use bext_plugin_vhosts::Vhosts;

fn vhosts(config: serde_json::Value, apps: &[AppInfo]) -> Result<Vhosts, bext_plugin_abi::PluginError> {
    let setup = Setup {
        plugin: "vhosts",
        base: None,
        apps,
        data_dir: Path::new("/tmp"),
    };
    Vhosts::new(decode_config(config)?, &setup)
}

fn fetch(p: &Vhosts, host: &str, path: &str) -> Ctx {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = path.parse().unwrap();
    let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
    cx.host = Some(host.into());
    match p.fetch(&mut req, &mut cx) {
        Hook::Ready(r) => drop(r.unwrap()),
        Hook::Later(_) => panic!("vhosts never waits"),
    }
    cx
}

fn app(id: &str, domains: &[&str]) -> AppInfo {
    AppInfo {
        id: id.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn a_match_sets_app_tenant_base_and_bypass() {
    let apps = [app("saas", &["*.example.com"]), app("site", &["example.com"])];
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
fn app_domains_can_be_left_out() {
    let apps = [app("site", &["example.com"])];
    let p = vhosts(serde_json::json!({"app_domains": false}), &apps).unwrap();
    assert!(p.matcher().is_empty());
    assert_eq!(fetch(&p, "example.com", "/").app(), None);
}

#[test]
fn config_errors_carry_the_field_path() {
    let err = vhosts(serde_json::json!({"hosts": {"bad host!": {"app": "x"}}}), &[]).unwrap_err();
    match err {
        bext_plugin_abi::PluginError::Config { path, reason } => {
            assert_eq!(path, "hosts.bad host!");
            assert!(reason.contains("not a valid host name"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let err = vhosts(serde_json::json!({}), &[app("a", &["x.test"]), app("b", &["x.test"])]).unwrap_err();
    assert!(
        err.to_string().contains("`a`") && err.to_string().contains("`b`"),
        "{err}"
    );
}
