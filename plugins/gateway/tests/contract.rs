//! The gateway plugin through its public contract, as the kernel drives
//! it (`bext_plugin_abi::testing`): what `manifests/gateway.yaml` and
//! `docs/gateway.md` promise.
//!
//! Limits here allow 6 requests a minute (one every 10 s), so a bucket
//! never refills during a test and every count is exact.

use bext_plugin_abi::testing::{Exchange, Harness, Stage, TestRequest, block_on, request};
use bext_plugin_abi::{Ctx, Plugin, PluginError, Request, Response, text_response};
use bext_plugin_gateway::GatewayPlugin;
use http::StatusCode;

fn gateway(config: serde_json::Value) -> Harness<GatewayPlugin> {
    block_on(Harness::builder(config).start()).unwrap()
}

fn app(_req: Request, _cx: &Ctx) -> Response {
    text_response(StatusCode::OK, "from the app")
}

fn send(h: &Harness<GatewayPlugin>, req: TestRequest) -> Exchange {
    block_on(h.send(req, app))
}

fn from(ip: &str) -> TestRequest {
    request("GET", "/").header("host", "shop.example").peer(ip).app("shop")
}

/// `(status, RateLimit-Remaining)` of each of `n` requests `req` makes.
fn statuses(h: &Harness<GatewayPlugin>, n: usize, req: impl Fn() -> TestRequest) -> Vec<(u16, Option<String>)> {
    (0..n)
        .map(|_| {
            let ex = send(h, req());
            (
                ex.status().as_u16(),
                ex.header("ratelimit-remaining").map(str::to_owned),
            )
        })
        .collect()
}

fn per_ip() -> serde_json::Value {
    serde_json::json!({"limits": [{"name": "per-ip", "by": "ip", "rpm": 6, "burst": 3}]})
}

#[test]
fn a_per_ip_limit_answers_429_with_its_headers() {
    let h = gateway(per_ip());
    for (i, remaining) in ["2", "1", "0"].into_iter().enumerate() {
        let ex = send(&h, from("203.0.113.7"));
        assert_eq!(ex.status(), StatusCode::OK, "request {i}");
        assert!(ex.reached_app);
        assert_eq!(ex.header("ratelimit-limit"), Some("3"));
        assert_eq!(ex.header("ratelimit-remaining"), Some(remaining));
        assert_eq!(
            ex.header("ratelimit-reset"),
            Some(["10", "20", "30"][i]),
            "until the bucket is full"
        );
        assert_eq!(ex.header("ratelimit-policy"), Some("3;w=30"));
        assert_eq!(ex.cx.rate_limit.map(|r| r.remaining), Some(2 - i as u32));
    }
    let ex = send(&h, from("203.0.113.7"));
    assert_eq!(ex.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!ex.reached_app, "a refused request never reaches the app");
    assert_eq!(ex.answered_by, Some(Stage::Request));
    assert_eq!(ex.header("retry-after"), Some("10"), "the next one is allowed in 10 s");
    assert_eq!(ex.text(), "Too Many Requests\n");
    assert_eq!(
        ex.header("ratelimit-remaining"),
        Some("0"),
        "its own 429 goes back through it"
    );
    assert_eq!(ex.header("ratelimit-limit"), Some("3"));
    assert_eq!(ex.header("ratelimit-policy"), Some("3;w=30"));

    assert_eq!(send(&h, from("203.0.113.8")).status(), StatusCode::OK, "another client");
}

#[test]
fn clients_are_networks_and_buckets_are_per_app() {
    let h = gateway(serde_json::json!({"limits": [{"by": "ip", "rpm": 6, "burst": 1}]}));
    assert_eq!(send(&h, from("2001:db8:1:2::1")).status(), StatusCode::OK);
    assert_eq!(
        send(&h, from("2001:db8:1:2::99")).status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same /64"
    );
    assert_eq!(
        send(&h, from("2001:db8:1:3::1")).status(),
        StatusCode::OK,
        "another /64"
    );
    assert_eq!(send(&h, from("198.51.100.1")).status(), StatusCode::OK);
    assert_eq!(
        send(&h, from("::ffff:198.51.100.1")).status(),
        StatusCode::TOO_MANY_REQUESTS,
        "IPv4-mapped IPv6 is the IPv4 address"
    );
    let other_app = from("198.51.100.1").ctx(|cx| cx.set_app("blog").unwrap());
    assert_eq!(
        send(&h, other_app).status(),
        StatusCode::OK,
        "another app, another bucket"
    );
    let resolved = from("10.0.0.1").ctx(|cx| cx.client_ip = "198.51.100.1".parse().unwrap());
    assert_eq!(
        send(&h, resolved).status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the client the WAF resolved, not the proxy"
    );
}

#[test]
fn an_app_limit_is_one_bucket_for_every_client() {
    let h = gateway(serde_json::json!({"app_limit": {"rpm": 6, "burst": 2}}));
    assert_eq!(send(&h, from("192.0.2.1")).status(), StatusCode::OK);
    assert_eq!(send(&h, from("192.0.2.2")).status(), StatusCode::OK);
    assert_eq!(send(&h, from("192.0.2.3")).status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn limits_apply_to_their_routes_and_methods_and_keys() {
    let h = gateway(serde_json::json!({"limits": [
        {"name": "login", "by": "ip", "rpm": 6, "burst": 1, "routes": ["/login"], "methods": ["post"]},
        {"name": "per-key", "by": "header", "header": "x-api-key", "rpm": 6, "burst": 1, "routes": ["/api/*"]},
    ]}));
    let login = |m: &str| request(m, "/login").peer("192.0.2.1");
    assert_eq!(
        statuses(&h, 2, || login("POST")),
        [(200, Some("0".into())), (429, Some("0".into()))]
    );
    assert_eq!(
        statuses(&h, 2, || login("GET")),
        [(200, None), (200, None)],
        "another method"
    );
    let home = || request("POST", "/").peer("192.0.2.1");
    assert_eq!(statuses(&h, 2, home), [(200, None), (200, None)], "another route");

    let key = |k: &str| request("GET", "/api/orders").peer("192.0.2.9").header("x-api-key", k);
    assert_eq!(send(&h, key("a")).status(), StatusCode::OK);
    assert_eq!(send(&h, key("a")).status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send(&h, key("b")).status(), StatusCode::OK, "another key, same address");
    let keyless = || request("GET", "/api/x").peer("192.0.2.10");
    assert_eq!(statuses(&h, 2, keyless)[1].0, 429, "no key: counted by address");
}

#[test]
fn subject_limits_decide_late_by_the_verified_subject() {
    let h = gateway(serde_json::json!({"limits": [{"name": "per-user", "by": "subject", "rpm": 6, "burst": 1}]}));
    assert_eq!(h.plugin().late_priority(), Some(350));
    let as_user = |sub: &'static str| from("192.0.2.1").ctx(move |cx| cx.set_subject(sub).unwrap());
    assert_eq!(send(&h, as_user("apikey:ana")).status(), StatusCode::OK);
    let ex = send(&h, as_user("apikey:ana"));
    assert_eq!(ex.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        ex.answered_by,
        Some(Stage::LateRequest),
        "after authn, in the late place"
    );
    assert_eq!(
        ex.header("ratelimit-policy"),
        Some("1;w=10"),
        "its 429 goes back through the gateway"
    );
    assert_eq!(
        send(&h, as_user("apikey:bob")).status(),
        StatusCode::OK,
        "another subject"
    );
    assert_eq!(
        send(&h, from("192.0.2.1")).status(),
        StatusCode::OK,
        "no subject: the address"
    );
    assert_eq!(send(&h, from("192.0.2.1")).status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn the_tightest_limit_of_both_places_is_reported() {
    let h = gateway(serde_json::json!({"limits": [
        {"by": "ip", "rpm": 6, "burst": 5},
        {"by": "subject", "rpm": 6, "burst": 2},
    ]}));
    let ex = send(&h, from("192.0.2.1").ctx(|cx| cx.set_subject("apikey:ana").unwrap()));
    assert_eq!(ex.status(), StatusCode::OK);
    assert_eq!(
        (ex.header("ratelimit-limit"), ex.header("ratelimit-remaining")),
        (Some("2"), Some("1")),
        "the subject's bucket is the tighter"
    );
}

fn cors() -> serde_json::Value {
    serde_json::json!({"cors": {
        "origins": ["https://app.example.com", "https://*.example.org"],
        "methods": ["GET", "POST"],
        "headers": ["content-type"],
        "expose": ["ratelimit-remaining"],
        "credentials": true,
        "max_age": "10m",
    }})
}

fn preflight(origin: &str, method: &str, headers: &str) -> TestRequest {
    request("OPTIONS", "/api")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
}

#[test]
fn a_cors_preflight_is_answered_here() {
    let h = gateway(cors());
    let ex = send(&h, preflight("https://app.example.com", "POST", "Content-Type"));
    assert_eq!(ex.status(), StatusCode::NO_CONTENT);
    assert!(!ex.reached_app, "a preflight never reaches the app");
    assert_eq!(ex.answered_by, Some(Stage::Request));
    assert_eq!(
        ex.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ex.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(ex.header("access-control-allow-headers"), Some("content-type"));
    assert_eq!(ex.header("access-control-max-age"), Some("600"));
    assert_eq!(ex.header("access-control-allow-credentials"), Some("true"));

    let wildcard = send(&h, preflight("https://a.b.example.org", "GET", "content-type"));
    assert_eq!(
        wildcard.header("access-control-allow-origin"),
        Some("https://a.b.example.org")
    );
    for (origin, method, headers) in [
        ("https://evil.test", "POST", "content-type"),
        ("https://example.org", "GET", "content-type"),
        ("https://app.example.com", "DELETE", "content-type"),
        ("https://app.example.com", "POST", "x-secret"),
    ] {
        let ex = send(&h, preflight(origin, method, headers));
        assert_eq!(ex.status(), StatusCode::NO_CONTENT, "{origin} {method} {headers}");
        assert!(!ex.reached_app);
        assert_eq!(
            ex.header("access-control-allow-origin"),
            None,
            "{origin} {method} {headers}"
        );
        assert_eq!(ex.header("access-control-allow-methods"), None);
    }
    let plain_options = send(
        &h,
        request("OPTIONS", "/api").header("origin", "https://app.example.com"),
    );
    assert!(
        plain_options.reached_app,
        "OPTIONS without Access-Control-Request-Method is no preflight"
    );
}

#[test]
fn actual_responses_get_cors_headers_for_allowed_origins() {
    let h = gateway(cors());
    let ex = send(&h, request("GET", "/").header("origin", "https://app.example.com"));
    assert!(ex.reached_app);
    assert_eq!(
        ex.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ex.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ex.header("access-control-expose-headers"), Some("ratelimit-remaining"));
    assert_eq!(ex.headers("vary"), ["Origin"]);
    let ex = send(&h, request("GET", "/").header("origin", "https://evil.test"));
    assert_eq!(ex.header("access-control-allow-origin"), None);
    assert_eq!(ex.headers("vary"), ["Origin"], "every response varies on Origin");
    let vary_ae = |_: Request, _: &Ctx| {
        let mut res = text_response(StatusCode::OK, "x");
        res.headers_mut().insert("vary", "accept-encoding".parse().unwrap());
        res
    };
    let ex = block_on(h.send(request("GET", "/"), vary_ae));
    assert_eq!(ex.headers("vary"), ["accept-encoding, Origin"], "one line");
}

#[test]
fn a_429_carries_cors_headers_too() {
    let mut config = cors();
    config["limits"] = serde_json::json!([{"by": "ip", "rpm": 6, "burst": 1}]);
    let h = gateway(config);
    let req = || {
        request("GET", "/")
            .peer("192.0.2.1")
            .header("origin", "https://app.example.com")
    };
    assert_eq!(send(&h, req()).status(), StatusCode::OK);
    let ex = send(&h, req());
    assert_eq!(ex.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        ex.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "the page can read its 429"
    );
}

#[test]
fn security_presets_and_configured_headers() {
    let h = gateway(serde_json::json!({"security_headers": "basic", "headers": {"x-app-id": "shop"}}));
    let ex = send(&h, request("GET", "/"));
    for (name, value) in [
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("x-app-id", "shop"),
    ] {
        assert_eq!(ex.header(name), Some(value), "{name}");
    }
    assert_eq!(ex.header("ratelimit-limit"), None, "no limits, no RateLimit headers");

    let h = gateway(serde_json::json!({"security_headers": "strict", "headers": {"x-frame-options": "SAMEORIGIN"}}));
    let ex = send(&h, request("GET", "/"));
    for (name, value) in [
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains; preload",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ] {
        assert_eq!(
            ex.headers(name),
            [value],
            "{name}: a configured header replaces the preset's"
        );
    }
}

#[test]
fn the_apps_own_header_wins_unless_overridden() {
    let app_sets = |_: Request, _: &Ctx| {
        let mut res = text_response(StatusCode::OK, "x");
        res.headers_mut().insert("x-frame-options", "DENY".parse().unwrap());
        res
    };
    let h = gateway(serde_json::json!({"security_headers": "basic"}));
    let ex = block_on(h.send(request("GET", "/"), app_sets));
    assert_eq!(ex.headers("x-frame-options"), ["DENY"]);
    assert_eq!(
        ex.header("x-content-type-options"),
        Some("nosniff"),
        "the others are added"
    );
    let h = gateway(serde_json::json!({"security_headers": "basic", "override_headers": true}));
    let ex = block_on(h.send(request("GET", "/"), app_sets));
    assert_eq!(ex.headers("x-frame-options"), ["SAMEORIGIN"]);
}

#[test]
fn config_errors_name_the_field() {
    for (config, field) in [
        (serde_json::json!({"limits": [{"rpm": 6, "rps": 1}]}), "limits[0].rps"),
        (serde_json::json!({"limits": [{"by": "ip"}]}), "limits[0].rpm"),
        (
            serde_json::json!({"limits": [{"by": "header", "rpm": 6}]}),
            "limits[0].header",
        ),
        (
            serde_json::json!({"limits": [{"rpm": 6, "methods": ["G T"]}]}),
            "limits[0].methods[0]",
        ),
        (
            serde_json::json!({"limits": [{"by": "cookie", "rpm": 6}]}),
            "limits[0].by",
        ),
        (serde_json::json!({"app_limit": {"rpm": 0}}), "app_limit.rpm"),
        (
            serde_json::json!({"cors": {"origins": ["*"], "credentials": true}}),
            "cors.credentials",
        ),
        (
            serde_json::json!({"cors": {"origins": ["app.example.com"]}}),
            "cors.origins[0]",
        ),
        (serde_json::json!({"headers": {"bad name": "x"}}), "headers.bad name"),
        (serde_json::json!({"security_headers": "paranoid"}), "security_headers"),
        (serde_json::json!({"ipv6_prefix": 129}), "ipv6_prefix"),
        (serde_json::json!({"limit": []}), "limit"),
    ] {
        match Harness::<GatewayPlugin>::builder(config.clone()).check() {
            Err(PluginError::Config { path, .. }) => assert_eq!(path, field, "{config}"),
            Err(other) => panic!("{config}: {other}"),
            Ok(_) => panic!("{config} accepted"),
        }
    }
}
