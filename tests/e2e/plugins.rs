//! Per-app plugin chains: turning a plugin on or off for one app,
//! overriding its config, and `bypass` hosts that skip the chain.

use crate::support::*;

async fn platform() -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let s = Site::new();
    s.write("manifests/request-id.yaml", "name: request-id\nenabled: true\n");
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    \"raw.test\": { app: a, bypass: true }\n",
    );
    let up = echo.addr;
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.a]
runtime = "proxy"
upstream = "http://{up}"
domains = ["a.test"]

[apps.b]
runtime = "proxy"
upstream = "http://{up}"
domains = ["b.test"]
plugins = {{ request-id = {{ enabled = false }} }}

[apps.c]
runtime = "proxy"
upstream = "http://{up}"
domains = ["c.test"]
[apps.c.plugins.request-id.config]
header = "x-trace"
"#
    ));
    let b = Bext::serve(&cfg);
    (s, b, echo)
}

#[tokio::test]
async fn the_global_chain_runs_for_every_app_unless_the_app_says_otherwise() {
    let (_s, b, _e) = platform().await;
    let r = get(b.addr, "a.test", "/").await;
    let id = r.header("x-request-id").expect("response id").to_owned();
    assert_eq!(
        r.json()["headers"]["x-request-id"],
        id.as_str(),
        "the app saw the same id"
    );

    let r = get(b.addr, "b.test", "/").await;
    assert!(r.header("x-request-id").is_none());
    assert!(r.json()["headers"].get("x-request-id").is_none());

    let r = get(b.addr, "c.test", "/").await;
    assert!(r.header("x-request-id").is_none());
    assert!(r.header("x-trace").is_some());
}

#[tokio::test]
async fn bypass_hosts_skip_the_apps_plugins() {
    let (_s, b, _e) = platform().await;
    let r = get(b.addr, "raw.test", "/").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-request-id").is_none());
    assert!(r.json()["headers"].get("x-request-id").is_none());
}

#[tokio::test]
async fn an_app_can_turn_on_a_plugin_that_is_off_by_default() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.on]\nruntime = \"proxy\"\nupstream = \"http://{0}\"\ndomains = [\"on.test\"]\nplugins = {{ request-id = {{ enabled = true }} }}\n[apps.off]\nruntime = \"proxy\"\nupstream = \"http://{0}\"\ndomains = [\"off.test\"]\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    assert!(get(b.addr, "on.test", "/").await.header("x-request-id").is_some());
    assert!(get(b.addr, "off.test", "/").await.header("x-request-id").is_none());
}

#[test]
fn bad_per_app_overrides_name_the_app_and_field() {
    let s = Site::new();
    let cfg = s.platform(
        "[apps.api]\nruntime = \"proxy\"\nupstream = \"http://127.0.0.1:9\"\n[apps.api.plugins.request-id]\nenabled = true\nconfig = { header = \"bad header\", colour = 1 }\n[apps.api.plugins.nosuch]\nenabled = true\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("apps.api.plugins.request-id.config.colour: unknown field `colour`"),
        "{err}"
    );
    assert!(
        err.contains("apps.api.plugins.nosuch: unknown plugin `nosuch`"),
        "{err}"
    );
}
