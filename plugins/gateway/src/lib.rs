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

use bext_plugin_abi::{BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Request, Response, Setup};

use crate::answer::rate_limit_headers;
use crate::config::Config;
use crate::cors::Cors;
use crate::headers::ResponseHeaders;
use crate::limiter::Limiter;
use crate::limits::Pass;

/// The plugin instance.
pub struct GatewayPlugin {
    limiter: Limiter,
    cors: Option<Cors>,
    headers: ResponseHeaders,
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
        Ok(GatewayPlugin { limiter, cors, headers })
    }
}

impl Plugin for GatewayPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST | Hooks::RESPONSE
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
            // One growth of the map at most for its two headers.
            headers.reserve(2);
            cors.respond(cx, headers);
        }
        // The limits' and configured headers go next to the map (see
        // `EncodedHeaders`) unless the response already has one of their
        // names; the map path sizes the map once for all of them.
        if let Some((info, limit)) = self.limiter.reported(cx) {
            rate_limit_headers(headers, &mut cx.encoded_headers, info, limit);
        }
        self.headers.apply(headers, &mut cx.encoded_headers);
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(GatewayPlugin);

#[cfg(test)]
mod tests {
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
