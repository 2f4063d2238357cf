//! What the three security plugins add to one request, without the network:
//! `cargo bench -p bext --bench security_hooks`.
//!
//! The request and the response are those of `bench/security.sh` (a
//! browser's request for a static page with a bearer token, the static
//! runtime's response headers), and so are the plugins' manifests. `bare`
//! builds and drops the request, context and response with no plugin;
//! `all_three` runs the waf's `on_request`, the gateway's `on_request`
//! and `on_response` and authn's `on_request` on top. The difference is
//! the plugins' cost per request; the server-level ratio is in
//! `bench/RESULTS.md`.

use std::path::Path;
use std::sync::Arc;

use bext_plugin_abi::{
    Body, BuiltinPlugin, Ctx, Flow, Hook, Host, Plugin, Request, RequestId, Response, Setup, decode_config,
};
use bext_plugin_authn::AuthnPlugin;
use bext_plugin_gateway::GatewayPlugin;
use bext_plugin_waf::WafPlugin;
use http::HeaderValue;
use http::header;

/// The server's allocator, counted: divan prints allocations per
/// iteration, and each one the plugins add costs about a cache miss in the
/// server (mimalloc hands out the blocks of a page in turn, rarely the one
/// just freed).
#[global_allocator]
static ALLOC: divan::AllocProfiler<mimalloc::MiMalloc> = divan::AllocProfiler::new(mimalloc::MiMalloc);

const SECRET: &str = "0123456789abcdef0123456789abcdef-bench";

fn main() {
    divan::main();
}

struct Chain {
    waf: WafPlugin,
    gateway: GatewayPlugin,
    authn: AuthnPlugin,
    /// The gateway with only its limit, or only its headers.
    gateway_limit: GatewayPlugin,
    gateway_headers: GatewayPlugin,
    request: Request,
}

fn setup<'a>(plugin: &'a str) -> Setup<'a> {
    Setup {
        plugin,
        base: None,
        apps: &[],
        data_dir: Path::new("/tmp"),
    }
}

/// The plugin's default manifest's `config`, with `overrides` on top, as
/// the kernel merges a manifest over the default.
fn config<P: BuiltinPlugin>(overrides: serde_json::Value) -> P::Config {
    let manifest: serde_json::Value = serde_saphyr::from_str(P::DEFAULT_MANIFEST).unwrap();
    let mut config = manifest["config"].clone();
    if let (Some(c), serde_json::Value::Object(o)) = (config.as_object_mut(), overrides) {
        c.extend(o);
    }
    decode_config(config).unwrap()
}

fn ready<T>(hook: Hook<'_, T>) -> T {
    match hook {
        Hook::Ready(v) => v,
        Hook::Later(_) => panic!("the benchmark request never waits"),
    }
}

impl Chain {
    fn new() -> Chain {
        let waf = WafPlugin::new(config::<WafPlugin>(serde_json::json!({})), &setup("waf")).unwrap();
        let gateway = GatewayPlugin::new(
            config::<GatewayPlugin>(serde_json::json!({
                "limits": [{ "by": "ip", "rpm": 100_000_000, "burst": 1_000_000 }],
                "cors": { "origins": ["https://shop.example.com"] },
                "security_headers": "basic",
            })),
            &setup("gateway"),
        )
        .unwrap();
        let part = |c| GatewayPlugin::new(config::<GatewayPlugin>(c), &setup("gateway")).unwrap();
        let gateway_limit =
            part(serde_json::json!({ "limits": [{ "by": "ip", "rpm": 100_000_000, "burst": 1_000_000 }] }));
        let gateway_headers = part(serde_json::json!({
            "cors": { "origins": ["https://shop.example.com"] },
            "security_headers": "basic",
        }));
        let authn = AuthnPlugin::new(
            // bench/security.sh gives the same key as `jwt_secret_env`.
            config::<AuthnPlugin>(serde_json::json!({ "jwt": { "keys": [{ "alg": "HS256", "secret": SECRET }] } })),
            &setup("authn"),
        )
        .unwrap();
        let host = Host::new("/tmp".into(), Arc::from(Vec::new()), Arc::new(|_| {}));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for p in [&waf as &dyn Plugin, &gateway, &authn] {
            match p.on_init(&host) {
                Hook::Ready(r) => r.unwrap(),
                Hook::Later(f) => rt.block_on(f).unwrap(),
            }
        }
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = "/index.html?page=2&sort=price&utm_source=newsletter".parse().unwrap();
        let h = request.headers_mut();
        for (name, value) in [
            ("host", "127.0.0.1:19192".to_owned()),
            (
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into(),
            ),
            ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into()),
            ("accept-language", "en-US,en;q=0.9".into()),
            ("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark".into()),
            ("referer", "https://shop.example.com/category/shoes?color=red".into()),
            ("authorization", format!("Bearer {}", token())),
        ] {
            h.insert(header::HeaderName::from_static(name), HeaderValue::from_str(&value).unwrap());
        }
        Chain {
            waf,
            gateway,
            authn,
            gateway_limit,
            gateway_headers,
            request,
        }
    }

    /// A request as the kernel hands it to the plugins, and its context.
    fn request(&self) -> (Request, Ctx) {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = self.request.uri().clone();
        // hyper parses into the map of the connection's last response,
        // which has room for the static runtime's and the plugins' headers.
        let headers = req.headers_mut();
        headers.reserve(24);
        for (name, value) in self.request.headers() {
            headers.append(name.clone(), value.clone());
        }
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:40000".parse().unwrap());
        cx.host = Some("127.0.0.1".into());
        cx.set_app("site").unwrap();
        (req, cx)
    }
}

/// The static runtime's headers for a 1 KiB file, in the request's map
/// (emptied), as the runtime makes them.
fn response(req: Request) -> Response {
    let mut res = Response::new(Body::empty());
    let mut headers = req.into_parts().0.headers;
    headers.clear();
    *res.headers_mut() = headers;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::ETAG, HeaderValue::from_static("\"400-18a2b3c4d5e6f\""));
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Wed, 02 Dec 2026 10:00:00 GMT"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(1024u64));
    res
}

/// `{"alg":"HS256"}.{"sub":"user-42","exp":4000000000,"scope":"read"}`.
fn token() -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(br#"{"sub":"user-42","exp":4000000000,"scope":"read"}"#)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
}

/// Request, context and response made and dropped, no plugin.
#[divan::bench(sample_count = 2000)]
fn bare(bencher: divan::Bencher<'_, '_>) {
    let chain = Chain::new();
    bencher.bench_local(|| {
        let (req, cx) = chain.request();
        let res = response(req);
        (cx, res)
    });
}

/// Runs `plugins`' request hooks, in priority order, then `gateway`'s
/// response hook, as the kernel would.
fn run(chain: &Chain, plugins: &[&dyn Plugin], gateway: Option<&GatewayPlugin>) -> (Ctx, Response) {
    let (mut req, mut cx) = chain.request();
    for p in plugins {
        assert!(matches!(ready(p.on_request(&mut req, &mut cx)), Ok(Flow::Continue)));
    }
    let mut res = response(req);
    if let Some(g) = gateway {
        ready(g.on_response(&mut res, &mut cx)).unwrap();
    }
    (cx, res)
}

/// The same with the waf, gateway and authn hooks run on it.
#[divan::bench(sample_count = 2000, sample_size = 4)]
fn all_three(bencher: divan::Bencher<'_, '_>) {
    let chain = Chain::new();
    bencher.bench_local(|| {
        run(
            &chain,
            &[&chain.waf, &chain.gateway, &chain.authn],
            Some(&chain.gateway),
        )
    });
}

/// The gateway's two halves.
#[divan::bench(sample_count = 2000, sample_size = 4, args = ["limit", "headers"])]
fn gateway_part(bencher: divan::Bencher<'_, '_>, part: &str) {
    let chain = Chain::new();
    let gateway = if part == "limit" {
        &chain.gateway_limit
    } else {
        &chain.gateway_headers
    };
    bencher.bench_local(|| run(&chain, &[gateway], Some(gateway)));
}

/// Each plugin alone.
#[divan::bench(sample_count = 2000, sample_size = 4, args = ["waf", "gateway", "authn"])]
fn one(bencher: divan::Bencher<'_, '_>, plugin: &str) {
    let chain = Chain::new();
    let (plugin, gateway): (&dyn Plugin, _) = match plugin {
        "waf" => (&chain.waf, None),
        "gateway" => (&chain.gateway, Some(&chain.gateway)),
        _ => (&chain.authn, None),
    };
    bencher.bench_local(|| run(&chain, &[plugin], gateway));
}
