//! The `request-id` plugin: every request carries an id that the app sees
//! in a header and the client gets back, the same id bext prints in its
//! access log and error pages, so one request can be followed everywhere.

pub mod config;

use bext_plugin_abi::{BuiltinPlugin, Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Response, Setup};
use http::{HeaderName, HeaderValue};

use crate::config::Config;

/// Key under which the id travels in [`Ctx::vars`].
const VAR: &str = "request_id";

/// The plugin instance.
#[derive(Debug)]
pub struct RequestIdPlugin {
    header: HeaderName,
    trust_incoming: bool,
    response: bool,
}

impl BuiltinPlugin for RequestIdPlugin {
    const NAME: &'static str = "request-id";
    const PRIORITY: i32 = 500;
    const SUMMARY: &'static str = "x-request-id to the app and back to the client";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/request-id.yaml");
    type Config = Config;

    fn new(config: Config, _setup: &Setup<'_>) -> Result<Self, PluginError> {
        let header = HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|_| PluginError::config("header", format!("`{}` is not a header name", config.header)))?;
        Ok(RequestIdPlugin {
            header,
            trust_incoming: config.trust_incoming,
            response: config.response,
        })
    }
}

/// Whether a client-sent id is safe to pass on and log.
fn acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

impl Plugin for RequestIdPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let incoming = req.headers().get(&self.header).filter(|v| acceptable(v.as_bytes()));
        let id = match incoming {
            Some(v) if self.trust_incoming => v.clone(),
            _ => HeaderValue::from_str(&cx.request_id.to_string()).expect("hex digits"),
        };
        if self.response {
            cx.vars
                .insert(VAR.to_owned(), id.to_str().unwrap_or_default().to_owned());
        }
        req.headers_mut().insert(&self.header, id);
        Hook::Ready(Ok(Flow::Continue))
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        if let Some(id) = cx.vars.get(VAR).and_then(|v| HeaderValue::from_str(v).ok()) {
            res.headers_mut().insert(&self.header, id);
        }
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(RequestIdPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_trusted() {
        assert!(acceptable(b"abc-123_x.y"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"a\nb"));
        assert!(!acceptable(&[b'a'; 129]));
    }
}
