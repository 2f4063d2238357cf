//! Rust plugins from shared libraries built with `bext-plugin-sdk`.
//!
//! `abi_stable` checks the library's SDK version and the layout of every
//! type crossing the boundary before anything is called, so a library
//! built against an incompatible SDK is refused with a message naming the
//! file. Panics are caught inside the library (the SDK wraps every hook
//! and every poll of its futures) and come back as errors. A library is
//! loaded from a copy named by its content (`copy.rs`), so a rebuild at
//! the same path is loaded by the next reload.

mod copy;
mod view;

use std::path::Path;
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr};
use bext_plugin_abi::{Body, Completion, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Request, Response, Setup};
use bext_plugin_sdk::ffi::{DoneView_TO, FfiError, FfiFlow, FfiPluginBox, HttpView_TO};
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

use view::{Done, Message, View};

/// Why a library could not become a plugin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file is not a loadable plugin library.
    #[error("{path}: {reason}")]
    Library {
        /// The library.
        path: String,
        /// What is wrong.
        reason: copy::OpenError,
    },
    /// The plugin refused its configuration.
    #[error(transparent)]
    Plugin(PluginError),
}

/// The SDK's hook bits and the contract's hooks they stand for.
const HOOKS: [(u8, Hooks); 6] = [
    (1, Hooks::FETCH),
    (1 << 1, Hooks::REQUEST),
    (1 << 2, Hooks::RESPONSE),
    (1 << 3, Hooks::INIT),
    (1 << 4, Hooks::COMPLETE),
    (1 << 5, Hooks::SHUTDOWN),
];

/// Loads the library at `path` and makes an instance with `config`.
pub(crate) fn load(path: &Path, config: &serde_json::Value, setup: &Setup<'_>) -> Result<Arc<dyn Plugin>, LoadError> {
    let module = copy::open(path, setup.data_dir).map_err(|reason| LoadError::Library {
        path: path.display().to_string(),
        reason,
    })?;
    let new = module.new();
    let data_dir = setup.data_dir.to_string_lossy();
    let made = new(
        setup.plugin.into(),
        RStr::from_str(&config.to_string()),
        setup.base.unwrap_or("").into(),
        RStr::from_str(&data_dir),
    );
    let inner = match made {
        RResult::ROk(p) => p,
        RResult::RErr(e) => {
            return Err(match e.config_path {
                ROption::RSome(path) => LoadError::Plugin(PluginError::config(path.into_string(), e.message)),
                ROption::RNone => LoadError::Plugin(PluginError::Init(e.message.into_string().into())),
            });
        }
    };
    let bits = inner.hooks();
    let hooks = HOOKS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .fold(Hooks::NONE, |all, (_, hook)| all | *hook);
    Ok(Arc::new(DylibPlugin { inner, hooks }))
}

struct DylibPlugin {
    inner: FfiPluginBox,
    hooks: Hooks,
}

impl Plugin for DylibPlugin {
    fn hooks(&self) -> Hooks {
        self.hooks
    }

    fn on_init<'a>(&'a self, _host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        Hook::later(async move {
            let r = self.inner.on_init().resolve().await;
            r.into_result().map_err(|e| match error(e) {
                PluginError::Hook { reason, .. } => PluginError::Init(reason.into_owned().into()),
                other => other,
            })
        })
    }

    // A request hook lends the library a view of the request for as long
    // as its future runs, so the view lives in the hook's own future.
    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::later(async move {
            let mut view = View {
                msg: Message::Request(req),
                cx,
            };
            flow(
                self.inner
                    .fetch(HttpView_TO::from_ptr(&mut view, TD_Opaque))
                    .resolve()
                    .await,
            )
        })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        Hook::later(async move {
            let mut view = View {
                msg: Message::Request(req),
                cx,
            };
            flow(
                self.inner
                    .on_request(HttpView_TO::from_ptr(&mut view, TD_Opaque))
                    .resolve()
                    .await,
            )
        })
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        Hook::later(async move {
            let mut view = View {
                msg: Message::Response(res),
                cx,
            };
            let r = self
                .inner
                .on_response(HttpView_TO::from_ptr(&mut view, TD_Opaque))
                .resolve()
                .await;
            r.into_result().map_err(error)
        })
    }

    fn on_complete(&self, cx: &Ctx, done: &Completion) {
        let view = Done { cx, done };
        if let RResult::RErr(e) = self.inner.on_complete(DoneView_TO::from_ptr(&view, TD_Opaque)) {
            tracing::error!(request_id = %cx.request_id, error = %error(e), "on_complete failed");
        }
    }

    fn on_shutdown(&self) -> Hook<'_, ()> {
        Hook::later(async move {
            if let RResult::RErr(e) = self.inner.on_shutdown().resolve().await {
                tracing::error!(error = %error(e), "on_shutdown failed");
            }
        })
    }
}

fn error(e: FfiError) -> PluginError {
    if e.panicked {
        return PluginError::Panic(e.message.into_string());
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    PluginError::hook(status, e.message.into_string())
}

fn flow(r: RResult<FfiFlow, FfiError>) -> Result<Flow, PluginError> {
    match r.into_result().map_err(error)? {
        FfiFlow::Continue => Ok(Flow::Continue),
        FfiFlow::Respond(r) => {
            let invalid = |what: String| PluginError::hook(StatusCode::INTERNAL_SERVER_ERROR, what);
            let status = StatusCode::from_u16(r.status).map_err(|_| invalid(format!("invalid status {}", r.status)))?;
            let mut res = Response::new(Body::full(r.body.into_vec()));
            *res.status_mut() = status;
            for pair in r.headers {
                let name = HeaderName::from_bytes(pair.0.as_bytes())
                    .map_err(|_| invalid(format!("invalid header name {:?}", pair.0)))?;
                let value = HeaderValue::from_str(&pair.1).map_err(|_| invalid(format!("invalid value for {name}")))?;
                res.headers_mut().append(name, value);
            }
            Ok(Flow::Respond(res))
        }
    }
}
