//! Rust plugins from shared libraries built with `bext-plugin-sdk`.
//!
//! `abi_stable` checks the library's SDK version and the layout of every
//! type crossing the boundary before anything is called, so a library
//! built against an incompatible SDK is refused with a message naming the
//! file. Panics are caught inside the library (the SDK wraps every hook)
//! and come back as errors. Libraries are never unloaded: load a new
//! build under a new file name.

use std::path::Path;
use std::sync::Arc;

use abi_stable::library::{LibraryError, RootModule, lib_header_from_path};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString};
use bext_plugin_abi::{Body, Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Response, SUBJECT_VAR, Setup};
use bext_plugin_sdk::ffi::{FfiError, FfiFlow, FfiPluginBox, HttpView, HttpView_TO, PluginModRef};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

/// Why a library could not become a plugin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file is not a loadable plugin library.
    #[error("{path}: {reason}")]
    Library {
        /// The library.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin refused its configuration.
    #[error(transparent)]
    Plugin(PluginError),
}

/// Loads the library at `path` and makes an instance with `config`.
pub(crate) fn load(path: &Path, config: &serde_json::Value, setup: &Setup<'_>) -> Result<Arc<dyn Plugin>, LoadError> {
    let library = |reason: String| LoadError::Library {
        path: path.display().to_string(),
        reason,
    };
    let module = lib_header_from_path(path)
        .and_then(|h| h.init_root_module::<PluginModRef>())
        .map_err(|e| library(describe(e)))?;
    let new = module.new();
    let made = new(
        setup.plugin.into(),
        RStr::from_str(&config.to_string()),
        setup.base.unwrap_or("").into(),
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
    let mut hooks = Hooks::NONE;
    for (bit, hook) in [(1u8, Hooks::FETCH), (2, Hooks::REQUEST), (4, Hooks::RESPONSE)] {
        if bits & bit != 0 {
            hooks = hooks | hook;
        }
    }
    Ok(Arc::new(DylibPlugin { inner, hooks }))
}

/// Library errors in words an operator can act on.
fn describe(e: LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => format!("cannot load the library: {err}"),
        LibraryError::GetSymbolError { .. } => format!(
            "not a bext plugin: the library exports no `{}` (build it with bext-plugin-sdk's export_plugin!)",
            bext_plugin_sdk::ffi::ROOT_MODULE_SYMBOL
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against bext-plugin-sdk {actual_version}, but this bext needs {expected_version}: rebuild the plugin"
        ),
        LibraryError::AbiInstability(e) => {
            format!("its plugin ABI does not match this bext's (rebuild the plugin against this SDK): {e}")
        }
        other => format!(
            "{other} (expected a plugin built for bext-plugin-sdk {})",
            PluginModRef::VERSION_STRINGS
        ),
    }
}

struct DylibPlugin {
    inner: FfiPluginBox,
    hooks: Hooks,
}

impl Plugin for DylibPlugin {
    fn hooks(&self) -> Hooks {
        self.hooks
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let mut view = View {
            msg: Message::Request(req),
            cx,
        };
        Hook::Ready(flow(self.inner.fetch(HttpView_TO::from_ptr(&mut view, TD_Opaque))))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let mut view = View {
            msg: Message::Request(req),
            cx,
        };
        Hook::Ready(flow(self.inner.on_request(HttpView_TO::from_ptr(&mut view, TD_Opaque))))
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        let mut view = View {
            msg: Message::Response(res),
            cx,
        };
        Hook::Ready(
            self.inner
                .on_response(HttpView_TO::from_ptr(&mut view, TD_Opaque))
                .into_result()
                .map_err(error),
        )
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

enum Message<'a> {
    Request(&'a mut Request),
    Response(&'a mut Response),
}

/// What a hook sees of one request or response, for the length of a call.
struct View<'a> {
    msg: Message<'a>,
    cx: &'a mut Ctx,
}

impl View<'_> {
    fn headers(&self) -> &HeaderMap {
        match &self.msg {
            Message::Request(r) => r.headers(),
            Message::Response(r) => r.headers(),
        }
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        match &mut self.msg {
            Message::Request(r) => r.headers_mut(),
            Message::Response(r) => r.headers_mut(),
        }
    }

    fn request(&self) -> Option<&Request> {
        match &self.msg {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }
}

fn header_pair(name: RStr<'_>, value: RStr<'_>) -> Result<(HeaderName, HeaderValue), RString> {
    let n = HeaderName::from_bytes(name.as_str().as_bytes())
        .map_err(|_| RString::from(format!("invalid header name {name:?}")))?;
    let v =
        HeaderValue::from_str(value.as_str()).map_err(|_| RString::from(format!("invalid value for header {n}")))?;
    Ok((n, v))
}

impl HttpView for View<'_> {
    fn method(&self) -> RStr<'_> {
        self.request().map_or("", |r| r.method().as_str()).into()
    }

    fn path(&self) -> RStr<'_> {
        self.request().map_or("", |r| r.uri().path()).into()
    }

    fn query(&self) -> RStr<'_> {
        self.request().and_then(|r| r.uri().query()).unwrap_or("").into()
    }

    fn host(&self) -> RStr<'_> {
        self.cx.host.as_deref().unwrap_or("").into()
    }

    fn status(&self) -> u16 {
        match &self.msg {
            Message::Response(r) => r.status().as_u16(),
            Message::Request(_) => 0,
        }
    }

    fn set_status(&mut self, status: u16) -> RResult<(), RString> {
        match (&mut self.msg, StatusCode::from_u16(status)) {
            (Message::Response(r), Ok(s)) => {
                *r.status_mut() = s;
                RResult::ROk(())
            }
            (Message::Response(_), Err(_)) => RResult::RErr(format!("invalid status {status}").into()),
            (Message::Request(_), _) => RResult::RErr("a request has no status".into()),
        }
    }

    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        self.headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(RStr::from)
            .into()
    }

    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        header_pair(name, value)
            .map(|(n, v)| {
                self.headers_mut().insert(n, v);
            })
            .into()
    }

    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        header_pair(name, value)
            .map(|(n, v)| {
                self.headers_mut().append(n, v);
            })
            .into()
    }

    fn remove_header(&mut self, name: RStr<'_>) {
        self.headers_mut().remove(name.as_str());
    }

    fn app(&self) -> ROption<RStr<'_>> {
        self.cx.app().map(RStr::from).into()
    }

    fn tenant(&self) -> ROption<RStr<'_>> {
        self.cx.tenant().map(RStr::from).into()
    }

    fn set_app(&mut self, app: RStr<'_>) -> RResult<(), RString> {
        if self.cx.app() == Some(app.as_str()) {
            return RResult::ROk(());
        }
        self.cx
            .set_app(app.as_str())
            .map_err(|e| RString::from(e.to_string()))
            .into()
    }

    fn set_tenant(&mut self, tenant: RStr<'_>) -> RResult<(), RString> {
        if self.cx.tenant() == Some(tenant.as_str()) {
            return RResult::ROk(());
        }
        self.cx
            .set_tenant(tenant.as_str())
            .map_err(|e| RString::from(e.to_string()))
            .into()
    }

    fn var(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        if name.as_str() == SUBJECT_VAR
            && let Some(sub) = self.cx.subject()
        {
            return ROption::RSome(RStr::from(sub));
        }
        self.cx.vars.get(name.as_str()).map(|v| RStr::from(v.as_str())).into()
    }

    fn set_var(&mut self, name: RStr<'_>, value: RStr<'_>) {
        self.cx.vars.insert(name.as_str().to_owned(), value.as_str().to_owned());
    }

    fn request_id(&self) -> u64 {
        self.cx.request_id.0
    }
}
