//! The plugin through its public contract: decoded from YAML-shaped config,
//! hooks called as the kernel calls them.

use std::path::Path;

use bext_plugin_abi::BuiltinPlugin;
use bext_plugin_abi::{Body, Ctx, Flow, Hook, Plugin, Request, RequestId, Response, Setup, decode_config};
use bext_plugin_request_id::RequestIdPlugin;

fn plugin(config: serde_json::Value) -> RequestIdPlugin {
    let setup = Setup {
        plugin: "request-id",
        base: None,
        apps: &[],
        data_dir: Path::new("/tmp"),
    };
    RequestIdPlugin::new(decode_config(config).unwrap(), &setup).unwrap()
}

fn ready<T>(h: Hook<'_, T>) -> T {
    match h {
        Hook::Ready(v) => v,
        Hook::Later(_) => panic!("request-id never waits"),
    }
}

#[test]
fn the_app_and_the_client_see_the_kernels_id() {
    let p = plugin(serde_json::json!({}));
    let mut req = Request::new(Body::empty());
    req.headers_mut().insert("x-request-id", "spoofed".parse().unwrap());
    let mut cx = Ctx::new(RequestId(42), "127.0.0.1:1".parse().unwrap());
    assert!(matches!(
        ready(p.on_request(&mut req, &mut cx)).unwrap(),
        Flow::Continue
    ));
    assert_eq!(req.headers()["x-request-id"], "000000000000002a");
    let mut res = Response::new(Body::empty());
    ready(p.on_response(&mut res, &mut cx)).unwrap();
    assert_eq!(res.headers()["x-request-id"], "000000000000002a");
}

#[test]
fn trusted_incoming_ids_and_custom_headers() {
    let p = plugin(serde_json::json!({"header": "x-trace", "trust_incoming": true, "response": false}));
    let mut req = Request::new(Body::empty());
    req.headers_mut().insert("x-trace", "edge-7".parse().unwrap());
    let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
    let _ = ready(p.on_request(&mut req, &mut cx)).unwrap();
    assert_eq!(req.headers()["x-trace"], "edge-7");
    let mut res = Response::new(Body::empty());
    ready(p.on_response(&mut res, &mut cx)).unwrap();
    assert!(res.headers().get("x-trace").is_none());
}

#[test]
fn bad_config_is_refused() {
    assert!(decode_config::<bext_plugin_request_id::config::Config>(serde_json::json!({"heder": "x"})).is_err());
    let setup = Setup {
        plugin: "request-id",
        base: None,
        apps: &[],
        data_dir: Path::new("/tmp"),
    };
    let cfg = decode_config(serde_json::json!({"header": "bad header"})).unwrap();
    assert!(RequestIdPlugin::new(cfg, &setup).is_err());
}
