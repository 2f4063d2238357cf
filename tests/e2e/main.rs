//! End-to-end tests: the real `bext` binary, started per test on an
//! ephemeral port, with real HTTP/1.1 and h2c clients and a real upstream.

/// pebble, shared with bext-acme's tests.
#[path = "../../acme/tests/support/pebble.rs"]
mod pebble;
mod support;

mod acme;
mod acme_edge;
mod admin_hosts;
mod authn;
mod canonical;
mod cli;
mod compat;
mod compat_silent;
mod compress;
mod dashboard;
mod deploy;
mod deploy_config;
mod dylib_plugins;
mod edge;
mod gateway;
mod grpc;
mod h2_idle;
mod http1;
mod isr;
mod isr_callers;
mod isr_poison;
mod js_apps;
mod js_bindings;
mod js_budget;
mod js_crypto;
mod js_fetch;
mod js_lazy;
mod js_plugins;
mod js_request_body;
mod js_shared;
mod js_streams;
mod js_upload;
mod js_web_apis;
mod lifecycle;
mod limits;
mod metrics;
mod observe;
mod plugins;
mod process;
mod process_limits;
mod proxy;
mod reload;
mod routing;
mod static_site;
mod tenant_domains;
mod tls;
mod upstreams;
mod waf;
mod webdriver;
