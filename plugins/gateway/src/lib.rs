//! The `gateway` plugin: rate limits (GCRA, per client address, app,
//! route, API key or verified subject), CORS, and response headers (custom
//! and security presets), per app.
//!
//! On the request: a CORS preflight is answered here; then each limit that
//! applies decides, and the first refusal answers 429. `by: subject`
//! limits decide later, in the plugin's late place
//! ([`Plugin::late_priority`], after authn by default), keyed by the
//! subject authn verified, or by the client address without one: a
//! subject read from an unverified token would let anyone spend someone
//! else's budget or make up fresh ones. On the response (also of a 429,
//! by the onion order): CORS headers for allowed origins, `RateLimit-*`
//! headers of the tightest limit of both places, and the configured
//! headers.
//!
//! One concern per file:
//!
//! - `limits.rs`: a compiled limit, the requests it applies to and the
//!   bucket a request counts in;
//! - `limiter.rs`: deciding the limits of the early or the late place,
//!   in memory ([`gcra`]) or in the fleet's Redis ([`shared`]);
//! - `answer.rs`: the 429 and the `RateLimit-*` headers;
//! - [`cors`]: preflights and the CORS headers of responses;
//! - `headers.rs`: security presets and configured headers;
//! - `values.rs`: header values that cost a response no allocation.
//!
//! See `manifests/gateway.yaml` and `docs/gateway.md`.

mod answer;
pub mod config;
pub mod cors;
pub mod gcra;
mod headers;
mod limiter;
mod limits;
pub mod shared;
mod values;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bext_plugin_abi::{
    BuiltinPlugin, Ctx, Flow, HeaderBlock, Hook, Hooks, Host, Plugin, PluginError, RateLimitState, Request, Response,
    Setup,
};
use http::HeaderName;

use crate::answer::{push_counts, rate_limit_headers};
use crate::config::Config;
use crate::cors::{Cors, vary_on_origin};
use crate::headers::ResponseHeaders;
use crate::limiter::Limiter;
use crate::limits::Pass;

/// The plugin instance.
pub struct GatewayPlugin {
    limiter: Limiter,
    cors: Option<Cors>,
    headers: ResponseHeaders,
    blocks: Blocks,
    /// This instance among every one the process made, for
    /// [`LAST_CLEAR`] (an address could be an earlier instance's).
    id: u64,
}

/// Instances made so far, for [`GatewayPlugin::id`].
static INSTANCES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last block found next to a response's map that has none of an
    /// instance's names, with that instance's id. A static file's
    /// headers are one block shared by every answer of the file, so the
    /// next response of the same file is one pointer comparison, not a
    /// look at each of its names. The block is held (a reference count),
    /// so its address cannot be another block's while it is here.
    static LAST_CLEAR: RefCell<Option<(u64, HeaderBlock)>> = const { RefCell::new(None) };
}

/// Everything the plugin adds to a response whose map has none of the
/// names, as one block made at start: a response then costs one look over
/// its names, one block and the two `RateLimit-*` numbers, where adding
/// CORS's `Vary`, the limit's headers and the configured ones each on its
/// own looked the map over three times.
struct Blocks {
    /// Indexed like the limits: that limit's `RateLimit-Limit` and
    /// `-Policy`, the configured headers, and `Vary: Origin` if `vary`.
    by_limit: Vec<Option<HeaderBlock>>,
    /// The same for a response no limit reports on.
    no_limit: Option<HeaderBlock>,
    /// Whether CORS adds `Vary: Origin` to every response.
    vary: bool,
}

impl Blocks {
    fn new(limiter: &Limiter, cors: Option<&Cors>, headers: &ResponseHeaders) -> Self {
        let vary = cors.is_some_and(Cors::varies);
        Blocks {
            by_limit: (limiter.limits().iter())
                .map(|l| headers.combined(l.headers.block.pairs(), vary))
                .collect(),
            no_limit: headers.combined(&[], vary),
            vary,
        }
    }

    /// The block for a response `reported` on (by this instance).
    fn of(&self, reported: Option<RateLimitState>) -> Option<&HeaderBlock> {
        match reported {
            Some(info) => self.by_limit.get(info.decided_by.1)?.as_ref(),
            None => self.no_limit.as_ref(),
        }
    }
}

impl GatewayPlugin {
    /// Whether `block` has none of the names `taken` says this instance
    /// adds or replaces; remembered for the thread's last such block.
    fn clear_of_names(&self, block: &HeaderBlock, taken: impl Fn(&HeaderName) -> bool) -> bool {
        LAST_CLEAR.with_borrow_mut(|last| {
            if let Some((id, clear)) = last.as_ref()
                && *id == self.id
                && clear.same(block)
            {
                return true;
            }
            let clear = !block.pairs().iter().any(|(n, _)| taken(n));
            if clear {
                *last = Some((self.id, block.clone()));
            }
            clear
        })
    }
}

impl BuiltinPlugin for GatewayPlugin {
    const NAME: &'static str = "gateway";
    const PRIORITY: i32 = 100;
    const SUMMARY: &'static str = "rate limits (per IP, app, route, API key, JWT subject), CORS, response headers";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/gateway.yaml");
    type Config = Config;

    fn new(config: Config, _setup: &Setup<'_>) -> Result<Self, PluginError> {
        let limiter = Limiter::new(&config)?;
        let cors = config
            .cors
            .as_ref()
            .map(Cors::new)
            .transpose()
            .map_err(|(path, reason)| PluginError::config(path, reason))?;
        let headers = ResponseHeaders::new(config.security_headers, &config.headers, config.override_headers)?;
        if config.ipv4_prefix > 32 {
            return Err(PluginError::config("ipv4_prefix", "must be 0 to 32"));
        }
        if config.ipv6_prefix > 128 {
            return Err(PluginError::config("ipv6_prefix", "must be 0 to 128"));
        }
        let blocks = Blocks::new(&limiter, cors.as_ref(), &headers);
        Ok(GatewayPlugin {
            limiter,
            cors,
            headers,
            blocks,
            id: INSTANCES.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl Plugin for GatewayPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE
    }

    /// Reads neither `x-base` nor `x-vhost-tenant` (the WAF inspects what
    /// the client sent; the gateway keys on `cx`).
    fn reads_kernel_headers(&self) -> bool {
        false
    }

    /// Reads request headers (limits' keys, `Origin`), never adds one.
    fn adds_request_headers(&self) -> bool {
        false
    }

    /// Its `on_response` looks at the names added next to the map and
    /// moves them into it before changing the map.
    fn reads_encoded_headers(&self) -> bool {
        true
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        if self.limiter.is_empty() {
            return Hook::Ready(Ok(()));
        }
        if let Some(fleet) = host.fleet() {
            self.limiter.share(fleet.clone());
        }
        Hook::Ready(self.limiter.publish(&host.metrics(Self::NAME)))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        if let Some(preflight) = self.cors.as_ref().and_then(|c| c.request(req, cx)) {
            return Hook::Ready(Ok(Flow::Respond(preflight)));
        }
        if self.limiter.is_empty() {
            return Hook::Ready(Ok(Flow::Continue));
        }
        self.limiter.decide(req, cx, Pass::Early)
    }

    fn late_priority(&self) -> Option<i32> {
        self.limiter.late_priority
    }

    fn on_late_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        self.limiter.decide(req, cx, Pass::Late)
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        let headers = res.headers_mut();
        if let Some(cors) = &self.cors {
            // An allowed `Origin`'s headers (rare: most requests have
            // none) in the map; `Vary` below.
            cors.respond_but_vary(cx, headers);
        }
        let reported = self.limiter.reported(cx);
        // Most responses: none of the names yet, in the map or next to it
        // (a static file's headers, which the kernel leaves there for this
        // hook: `reads_encoded_headers`), so adding is appending: one
        // block and two numbers next to the map (see `EncodedHeaders`).
        let taken = |name: &HeaderName| self.headers.takes(name, self.blocks.vary);
        if let Some(block) = self.blocks.of(reported.map(|(info, _)| info))
            && !headers.keys().any(taken)
            && cx.encoded_headers.blocks().all(|b| self.clear_of_names(b, taken))
            && !cx.encoded_headers.numbers().any(|(n, _)| taken(n))
            && cx.encoded_headers.push_block(block).is_ok()
        {
            if let Some((info, _)) = reported {
                push_counts(headers, &mut cx.encoded_headers, info);
            }
            return Hook::Ready(Ok(()));
        }
        // Otherwise each concern on its own, merging with or replacing
        // what the response has, all of it in the map.
        cx.encoded_headers.move_into(headers);
        if self.blocks.vary {
            vary_on_origin(headers);
        }
        if let Some((info, limit)) = reported {
            rate_limit_headers(headers, &mut cx.encoded_headers, info, limit);
        }
        self.headers.apply(headers, &mut cx.encoded_headers);
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(GatewayPlugin);

#[cfg(test)]
mod tests {
    use http::header::{HeaderMap, HeaderValue, ORIGIN};

    use super::*;
    use crate::gcra::IpPrefixes;

    fn build(config: serde_json::Value) -> Result<GatewayPlugin, PluginError> {
        let setup = Setup {
            plugin: "gateway",
            base: None,
            apps: &[],
            data_dir: std::path::Path::new("/tmp"),
        };
        GatewayPlugin::new(bext_plugin_abi::decode_config(config).unwrap(), &setup)
    }

    /// A request's way through the plugin, with `own` as the app's
    /// response headers: the headers sent, as the kernel sends them (what
    /// went next to the map, in it), and how many blocks went there.
    fn answer(
        g: &GatewayPlugin,
        origin: Option<&'static str>,
        own: &[(&'static str, &'static str)],
    ) -> (HeaderMap, usize) {
        answer_with(g, origin, own, &[])
    }

    /// [`answer`], the app having added `beside` next to the map (as the
    /// static runtime adds a file's headers), which the kernel leaves
    /// there for the gateway.
    fn answer_with(
        g: &GatewayPlugin,
        origin: Option<&'static str>,
        own: &[(&'static str, &'static str)],
        beside: &[(&'static str, &'static str)],
    ) -> (HeaderMap, usize) {
        let mut cx = Ctx::new(bext_plugin_abi::RequestId(1), "192.0.2.1:1".parse().unwrap());
        let mut req = Request::new(bext_plugin_abi::Body::empty());
        if let Some(origin) = origin {
            req.headers_mut().insert(ORIGIN, HeaderValue::from_static(origin));
        }
        assert!(matches!(
            g.on_request(&mut req, &mut cx),
            Hook::Ready(Ok(Flow::Continue))
        ));
        let mut res = Response::new(bext_plugin_abi::Body::empty());
        for (name, value) in own {
            res.headers_mut().append(*name, HeaderValue::from_static(value));
        }
        if !beside.is_empty() {
            let pairs: Vec<_> = (beside.iter())
                .map(|(n, v)| (http::HeaderName::from_static(n), HeaderValue::from_static(v)))
                .collect();
            cx.encoded_headers
                .push_block(&HeaderBlock::new(&pairs).unwrap())
                .unwrap();
        }
        assert!(g.reads_encoded_headers());
        assert!(matches!(g.on_response(&mut res, &mut cx), Hook::Ready(Ok(()))));
        let blocks = cx.encoded_headers.blocks().count();
        cx.encoded_headers.move_into(res.headers_mut());
        (res.headers().clone(), blocks)
    }

    /// Each header's values, in order.
    fn values<'h>(h: &'h HeaderMap, name: &str) -> Vec<&'h str> {
        h.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn every_response_gets_each_header_once_in_one_block_or_merged_in_the_map() {
        let g = build(serde_json::json!({
            "limits": [{ "rpm": 600, "burst": 10 }],
            "cors": { "origins": ["https://shop.example.com"] },
            "security_headers": "basic",
        }))
        .unwrap();
        let preset = ["strict-transport-security", "x-content-type-options", "referrer-policy"];
        // Limit, policy, remaining, reset; Vary; the preset's four.
        const ADDED: usize = 9;

        let (h, blocks) = answer(&g, None, &[("content-type", "text/html")]);
        assert_eq!(blocks, 1, "none of the names yet: one block");
        assert_eq!(h.len(), 1 + ADDED);
        assert_eq!(values(&h, "vary"), ["Origin"]);
        assert_eq!(values(&h, "ratelimit-limit"), ["10"]);
        assert_eq!(values(&h, "ratelimit-policy"), ["10;w=1"]);
        assert_eq!(values(&h, "ratelimit-remaining"), ["9"]);
        assert_eq!(values(&h, "ratelimit-reset").len(), 1);
        assert_eq!(values(&h, "x-frame-options"), ["SAMEORIGIN"]);
        assert!(preset.iter().all(|n| values(&h, n).len() == 1));

        // The static site's `Vary`: merged into one value.
        let (h, _) = answer(&g, None, &[("vary", "accept-encoding")]);
        assert_eq!(values(&h, "vary"), ["accept-encoding, Origin"]);
        assert_eq!(h.len(), ADDED);
        let (h, _) = answer(&g, None, &[("vary", "Cookie")]);
        assert_eq!(values(&h, "vary"), ["Cookie", "Origin"]);

        // The app's own header of the preset stands, the others are added.
        let (h, _) = answer(&g, None, &[("x-frame-options", "DENY")]);
        assert_eq!(values(&h, "x-frame-options"), ["DENY"]);
        assert_eq!((h.len(), values(&h, "vary")), (ADDED, vec!["Origin"]));
        assert!(preset.iter().all(|n| values(&h, n).len() == 1));

        // A `RateLimit-*` header already there is replaced, never doubled.
        let (h, _) = answer(&g, None, &[("ratelimit-remaining", "77")]);
        let remaining = values(&h, "ratelimit-remaining");
        assert!(remaining.len() == 1 && remaining[0] != "77", "{remaining:?}");
        assert_eq!(h.len(), ADDED);
        assert_eq!(values(&h, "x-frame-options"), ["SAMEORIGIN"]);

        // An allowed origin gets its CORS header too; another does not.
        let (h, blocks) = answer(&g, Some("https://shop.example.com"), &[]);
        assert_eq!(values(&h, "access-control-allow-origin"), ["https://shop.example.com"]);
        assert_eq!((blocks, h.len(), values(&h, "vary")), (1, ADDED + 1, vec!["Origin"]));
        let (h, _) = answer(&g, Some("https://evil.example"), &[]);
        assert!(h.get("access-control-allow-origin").is_none());
        assert_eq!(values(&h, "vary"), ["Origin"]);
    }

    #[test]
    fn headers_the_app_added_next_to_the_map_count_as_the_responses() {
        let g = build(serde_json::json!({
            "limits": [{ "rpm": 600, "burst": 10 }],
            "cors": { "origins": ["https://shop.example.com"] },
            "security_headers": "basic",
        }))
        .unwrap();
        const ADDED: usize = 9;
        let file = [("content-type", "text/html"), ("etag", "\"1\"")];
        let (h, blocks) = answer_with(&g, None, &[], &file);
        assert_eq!(blocks, 2, "the file's block and the gateway's");
        assert_eq!(h.len(), 2 + ADDED);
        assert_eq!(values(&h, "vary"), ["Origin"]);
        assert_eq!(values(&h, "etag"), ["\"1\""]);
        // A `Vary`, one of the preset's names or a `RateLimit-*` next to
        // the map: merged, kept or replaced in the map, as in it.
        let (h, _) = answer_with(&g, None, &[], &[("vary", "accept-encoding"), ("etag", "\"1\"")]);
        assert_eq!(values(&h, "vary"), ["accept-encoding, Origin"]);
        assert_eq!((h.len(), values(&h, "etag")), (1 + ADDED, vec!["\"1\""]));
        let (h, _) = answer_with(&g, None, &[], &[("x-frame-options", "DENY")]);
        assert_eq!((h.len(), values(&h, "x-frame-options")), (ADDED, vec!["DENY"]));
        let (h, _) = answer_with(&g, None, &[], &[("ratelimit-limit", "77")]);
        assert_eq!((h.len(), values(&h, "ratelimit-limit")), (ADDED, vec!["10"]));
    }

    /// The same block (a static file's, answer after answer) is judged
    /// once per thread and instance: a remembered clear block stays clear
    /// for its instance only, and a block with one of the names is never
    /// taken for it.
    #[test]
    fn a_block_found_clear_is_remembered_for_its_instance_only() {
        let limits = serde_json::json!([{ "rpm": 600, "burst": 10 }]);
        let plain = build(serde_json::json!({ "limits": limits, "security_headers": "basic" })).unwrap();
        let etag = (
            http::HeaderName::from_static("etag"),
            http::HeaderValue::from_static("\"1\""),
        );
        let file = HeaderBlock::new(std::slice::from_ref(&etag)).unwrap();
        let respond = |g: &GatewayPlugin, block: &HeaderBlock| {
            let mut cx = Ctx::new(bext_plugin_abi::RequestId(1), "192.0.2.1:1".parse().unwrap());
            let mut req = Request::new(bext_plugin_abi::Body::empty());
            assert!(matches!(
                g.on_request(&mut req, &mut cx),
                Hook::Ready(Ok(Flow::Continue))
            ));
            let mut res = Response::new(bext_plugin_abi::Body::empty());
            cx.encoded_headers.push_block(block).unwrap();
            assert!(matches!(g.on_response(&mut res, &mut cx), Hook::Ready(Ok(()))));
            let blocks = cx.encoded_headers.blocks().count();
            cx.encoded_headers.move_into(res.headers_mut());
            (res.headers().clone(), blocks)
        };
        for _ in 0..2 {
            let (h, blocks) = respond(&plain, &file);
            assert_eq!(blocks, 2, "the file's block and the gateway's");
            assert_eq!(values(&h, "etag"), ["\"1\""]);
            assert_eq!(values(&h, "ratelimit-limit"), ["10"]);
        }
        // Another instance that sets `etag` itself, over the same block
        // the first one remembered as clear: its own value wins.
        let own = build(serde_json::json!({
            "limits": limits,
            "headers": { "etag": "\"mine\"" },
            "override_headers": true,
        }))
        .unwrap();
        for _ in 0..2 {
            // Taken for clear, the block would be sent beside the
            // instance's own: two `etag`s.
            let (h, _) = respond(&own, &file);
            assert_eq!(values(&h, "etag"), ["\"mine\""]);
        }
        // The first instance still takes the remembered way.
        assert_eq!(respond(&plain, &file).1, 2);
    }

    #[test]
    fn a_preflights_answer_names_origin_in_one_vary() {
        let g = build(serde_json::json!({
            "limits": [{ "rpm": 600 }],
            "cors": { "origins": ["https://shop.example.com"], "methods": ["PUT"] },
        }))
        .unwrap();
        for origin in ["https://shop.example.com", "https://evil.example"] {
            let mut cx = Ctx::new(bext_plugin_abi::RequestId(1), "192.0.2.1:1".parse().unwrap());
            let mut req = http::Request::builder()
                .method("OPTIONS")
                .header("origin", origin)
                .header("access-control-request-method", "PUT")
                .body(bext_plugin_abi::Body::empty())
                .unwrap();
            let Hook::Ready(Ok(Flow::Respond(mut res))) = g.on_request(&mut req, &mut cx) else {
                panic!("a preflight is answered here");
            };
            assert!(matches!(g.on_response(&mut res, &mut cx), Hook::Ready(Ok(()))));
            cx.encoded_headers.move_into(res.headers_mut());
            assert_eq!(
                values(res.headers(), "vary"),
                ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"],
                "{origin}"
            );
        }
    }

    #[test]
    fn without_limits_or_cors_the_headers_are_the_configured_ones() {
        let g = build(serde_json::json!({ "headers": { "x-app": "shop" }, "security_headers": "strict" })).unwrap();
        let (h, blocks) = answer(&g, None, &[]);
        assert_eq!((blocks, h.len()), (1, 7));
        assert!(h.get("vary").is_none() && h.get("ratelimit-limit").is_none());
        assert_eq!(values(&h, "x-app"), ["shop"]);
        // Any origin gets `*`, the same for all: no `Vary`.
        let g = build(serde_json::json!({ "cors": { "origins": ["*"] } })).unwrap();
        let (h, blocks) = answer(&g, Some("https://a.example"), &[]);
        assert_eq!((blocks, values(&h, "access-control-allow-origin")), (0, vec!["*"]));
        assert!(h.get("vary").is_none());
    }

    #[test]
    fn prefixes_and_the_late_place_follow_the_config() {
        let limit = serde_json::json!([{ "by": "subject", "rpm": 60 }]);
        let g = build(serde_json::json!({ "limits": limit })).unwrap();
        assert_eq!(g.late_priority(), Some(350), "after authn by default");
        assert_eq!(g.limiter.prefixes, IpPrefixes { v4: 32, v6: 64 });
        let g = build(serde_json::json!({ "limits": limit, "subject_priority": 450 })).unwrap();
        assert_eq!(g.late_priority(), Some(450));
        let ip_only = serde_json::json!([{ "by": "ip", "rpm": 60 }]);
        assert_eq!(
            build(serde_json::json!({ "limits": ip_only })).unwrap().late_priority(),
            None,
            "no subject limit, no late place"
        );
        for (field, bad) in [("ipv4_prefix", 33), ("ipv6_prefix", 129)] {
            match build(serde_json::json!({ field: bad })) {
                Err(PluginError::Config { path, .. }) => assert_eq!(path, field),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{field}: {bad} accepted"),
            }
        }
    }
}
