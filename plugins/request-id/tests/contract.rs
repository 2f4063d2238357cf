//! The plugin through its public contract: decoded from YAML-shaped config,
//! hooks called as the kernel calls them (`bext_plugin_abi::testing`).

use bext_plugin_abi::testing::{Harness, block_on, request};
use bext_plugin_abi::{Ctx, Flow, Hook, Plugin, Request, Response, decode_config, text_response};
use bext_plugin_request_id::RequestIdPlugin;
use bext_plugin_request_id::config::Config;
use http::StatusCode;

fn plugin(config: serde_json::Value) -> Harness<RequestIdPlugin> {
    block_on(Harness::builder(config).start()).unwrap()
}

/// An app that answers with the `x-request-id` (or `x-trace`) it got.
fn echo(name: &'static str) -> impl FnOnce(Request, &Ctx) -> Response {
    move |req, _| {
        let got = req.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        text_response(StatusCode::OK, got.unwrap_or_default())
    }
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
    let req = request("GET", "/").header("x-request-id", "spoofed").id(42);
    let ex = block_on(p.send(req, echo("x-request-id")));
    assert!(ex.reached_app && ex.errors.is_empty());
    assert_eq!(ex.text(), "000000000000002a", "the app's request");
    assert_eq!(ex.header("x-request-id"), Some("000000000000002a"));
}

#[test]
fn its_hooks_never_wait() {
    let p = plugin(serde_json::json!({}));
    let (mut req, mut cx) = request("GET", "/").id(42).into_parts();
    assert!(matches!(
        ready(p.plugin().on_request(&mut req, &mut cx)).unwrap(),
        Flow::Continue
    ));
    let mut res = Response::new(Default::default());
    ready(p.plugin().on_response(&mut res, &mut cx)).unwrap();
    assert_eq!(res.headers()["x-request-id"], "000000000000002a");
}

#[test]
fn trusted_incoming_ids_and_custom_headers() {
    let p = plugin(serde_json::json!({"header": "x-trace", "trust_incoming": true, "response": false}));
    let ex = block_on(p.send(request("GET", "/").header("x-trace", "edge-7"), echo("x-trace")));
    assert_eq!(ex.text(), "edge-7");
    assert!(ex.header("x-trace").is_none());
}

#[test]
fn bad_config_is_refused() {
    assert!(decode_config::<Config>(serde_json::json!({"heder": "x"})).is_err());
    let bad = serde_json::json!({"header": "bad header"});
    assert!(
        decode_config::<Config>(bad.clone()).is_ok(),
        "it decodes; `new` refuses it"
    );
    assert!(Harness::<RequestIdPlugin>::builder(bad).check().is_err());
}
