//! JavaScript plugins: a module exporting `fetch`, `onRequest`,
//! `onResponse` and/or `onInit`, run in its own isolate pool.

use std::sync::Arc;

use bext_js::{Answer, Call, HeaderEdit, IsolatePool, JsError, Kind, PluginCtx, RequestHook, Spec};
use bext_plugin_abi::{Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Response, SUBJECT_VAR};
use bytes::Bytes;
use http::StatusCode;

use super::js_body::read_body;
use crate::apps::js::{request_url, response};
use crate::config::isolate::IsolateConfig;
use crate::config::manifest::Manifest;

/// A loaded JavaScript plugin.
pub(crate) struct JsPlugin {
    name: String,
    pool: IsolatePool,
    hooks: Hooks,
    /// `limits.max_body_bytes`: the request body the request hooks read;
    /// `None`, they see none.
    max_body: Option<u64>,
}

/// Starts the plugin's isolates and runs `onInit(config)` in each.
pub(crate) fn load(
    m: &Manifest,
    path: &std::path::Path,
    config: &serde_json::Value,
) -> Result<Arc<dyn Plugin>, String> {
    if m.limits.stream_request_body.is_some() {
        return Err(format!(
            "plugin {}: limits.stream_request_body is an app's setting (`[apps.<id>] isolate`); a plugin reads up to limits.max_body_bytes",
            m.name
        ));
    }
    let spec = Spec {
        name: format!("plugin {}", m.name),
        entry: path.to_owned(),
        kind: Kind::Plugin,
        env: Default::default(),
        config: config.clone(),
        limits: m.limits.limits(IsolateConfig::PLUGIN),
        bindings: Default::default(),
    };
    let pool = IsolatePool::start(spec).map_err(|e| e.to_string())?;
    let e = pool.exports();
    let mut hooks = Hooks::NONE;
    for (has, hook) in [
        (e.fetch, Hooks::FETCH),
        (e.on_request, Hooks::REQUEST),
        (e.on_response, Hooks::RESPONSE),
    ] {
        if has {
            hooks = hooks | hook;
        }
    }
    Ok(Arc::new(JsPlugin {
        name: m.name.clone(),
        pool,
        hooks,
        max_body: m.limits.max_body_bytes.map(|b| b.0),
    }))
}

impl JsPlugin {
    async fn request_hook(&self, hook: RequestHook, req: &mut Request, cx: &mut Ctx) -> Result<Flow, PluginError> {
        let body = match self.max_body {
            Some(max) => match read_body(req.body_mut(), max, &self.name).await {
                Ok(body) => body,
                Err(refused) => return Ok(Flow::Respond(refused)),
            },
            None => Bytes::new(),
        };
        let call = Call::Request {
            hook,
            method: req.method().clone(),
            url: request_url(req.uri(), req.headers(), cx),
            headers: req.headers().clone(),
            body,
            ctx: plugin_ctx(cx),
        };
        match self.pool.call(call).await.map_err(hook_error)? {
            Answer::Continue {
                edits,
                app,
                tenant,
                vars,
            } => {
                HeaderEdit::apply(edits, req.headers_mut());
                cx.vars = vars;
                if let Some(app) = app.filter(|a| cx.app() != Some(a.as_str())) {
                    cx.set_app(app)
                        .map_err(|e| PluginError::hook(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                }
                if let Some(tenant) = tenant.filter(|t| cx.tenant() != Some(t.as_str())) {
                    cx.set_tenant(tenant)
                        .map_err(|e| PluginError::hook(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                }
                Ok(Flow::Continue)
            }
            Answer::Respond(reply) => Ok(Flow::Respond(response(reply))),
            Answer::KeepResponse { .. } => Err(PluginError::hook(StatusCode::INTERNAL_SERVER_ERROR, "wrong answer")),
        }
    }

    async fn response_hook(&self, res: &mut Response, cx: &mut Ctx) -> Result<(), PluginError> {
        let call = Call::Response {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            ctx: plugin_ctx(cx),
        };
        match self.pool.call(call).await.map_err(hook_error)? {
            Answer::KeepResponse { edits } => HeaderEdit::apply(edits, res.headers_mut()),
            Answer::Respond(reply) => *res = response(reply),
            Answer::Continue { .. } => {
                return Err(PluginError::hook(StatusCode::INTERNAL_SERVER_ERROR, "wrong answer"));
            }
        }
        Ok(())
    }
}

impl Plugin for JsPlugin {
    fn hooks(&self) -> Hooks {
        self.hooks
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::later(self.request_hook(RequestHook::Fetch, req, cx))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::later(self.request_hook(RequestHook::OnRequest, req, cx))
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        Hook::later(self.response_hook(res, cx))
    }
}

fn plugin_ctx(cx: &Ctx) -> PluginCtx {
    let mut vars = cx.vars.clone();
    if let Some(sub) = cx.subject() {
        vars.insert(SUBJECT_VAR.to_owned(), sub.to_owned());
    }
    PluginCtx {
        app: cx.app().map(str::to_owned),
        tenant: cx.tenant().map(str::to_owned),
        base: cx.base.as_deref().unwrap_or("").to_owned(),
        request_id: cx.request_id.to_string(),
        client_ip: cx.client_ip.to_string(),
        vars,
    }
}

/// Exceptions, out-of-memory and timeouts fail the request with 500; a
/// full queue with 503.
fn hook_error(e: JsError) -> PluginError {
    let status = match e {
        JsError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    PluginError::hook(status, e.to_string())
}
