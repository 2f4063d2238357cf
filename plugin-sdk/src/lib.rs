//! Write a bext plugin in Rust and ship it as a shared library.
//!
//! Implement [`Plugin`], then `export_plugin!(MyPlugin);` in a crate built
//! as `crate-type = ["cdylib"]`, and name the `.so` in a manifest's
//! `entry`. The plugin gets the same hooks as a built-in one (`fetch`,
//! `on_request`, `on_response`) over a stable ABI: bext checks the SDK
//! version and every type's layout when it loads the library, and a panic
//! in a hook is caught inside the library and becomes a 500 for that
//! request only.
//!
//! ```ignore
//! use bext_plugin_sdk::{export_plugin, Error, Flow, Hooks, Plugin, Request, Response, Setup};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { greeting: String }
//!
//! struct Hello { greeting: String }
//!
//! impl Plugin for Hello {
//!     type Config = Config;
//!     fn new(config: Config, _setup: &Setup<'_>) -> Result<Self, Error> {
//!         Ok(Hello { greeting: config.greeting })
//!     }
//!     fn hooks(&self) -> Hooks { Hooks::REQUEST }
//!     fn on_request(&self, req: &mut Request<'_>) -> Result<Flow, Error> {
//!         if req.path() == "/hello" {
//!             return Ok(Flow::Respond(Response::text(200, self.greeting.clone())));
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//! export_plugin!(Hello);
//! ```

// abi_stable's derives and `sabi_trait` expand to unsafe code and to
// impls inside generated constants.
#[allow(unsafe_code, non_local_definitions)]
pub mod ffi;

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use abi_stable;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use ffi::{
    FfiError, FfiFlow, FfiPlugin, FfiPlugin_TO, FfiPluginBox, FfiResponse, HttpViewMut, PluginMod, PluginModRef,
};

/// The hooks a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks(pub u8);

impl Hooks {
    /// Pre-pipeline stage, before an app is chosen.
    pub const FETCH: Hooks = Hooks(1);
    /// The request on its way to the app.
    pub const REQUEST: Hooks = Hooks(1 << 1);
    /// The response on its way back.
    pub const RESPONSE: Hooks = Hooks(1 << 2);

    /// Whether `other` is in this set.
    pub const fn has(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Hooks {
    type Output = Hooks;
    fn bitor(self, rhs: Hooks) -> Hooks {
        Hooks(self.0 | rhs.0)
    }
}

/// What the plugin was created for.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The plugin's name, from its manifest.
    pub name: &'a str,
    /// The manifest's `base` path (empty when unset).
    pub base: &'a str,
}

/// A plugin loaded from a shared library.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The manifest's `config` block, decoded with serde.
    type Config: serde::de::DeserializeOwned;

    /// Makes an instance; an error rejects the configuration that named it.
    fn new(config: Self::Config, setup: &Setup<'_>) -> Result<Self, Error>;

    /// The hooks this plugin implements; the others are never called.
    fn hooks(&self) -> Hooks;

    /// Pre-pipeline stage: route (set app, tenant) or answer.
    fn fetch(&self, _req: &mut Request<'_>) -> Result<Flow, Error> {
        Ok(Flow::Continue)
    }

    /// Sees the request on its way to the app: edit it, or answer it.
    fn on_request(&self, _req: &mut Request<'_>) -> Result<Flow, Error> {
        Ok(Flow::Continue)
    }

    /// Sees the response head on its way back: status and headers.
    fn on_response(&self, _res: &mut ResponseHead<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// What a request hook decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Answer now; no later plugin or app sees the request.
    Respond(Response),
}

/// A response a plugin answers with.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A failed hook: the request is answered with `status` (when the
/// plugin fails closed) and `message` is logged, never sent.
#[derive(Debug, Clone)]
pub struct Error {
    status: u16,
    message: String,
    config_path: Option<String>,
}

impl Error {
    /// A request-time failure.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            config_path: None,
        }
    }

    /// A configuration error at a dotted path inside `config`.
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            status: 500,
            message: message.into(),
            config_path: Some(path.into()),
        }
    }

    fn into_ffi(self) -> FfiError {
        FfiError {
            status: self.status,
            message: self.message.into(),
            panicked: false,
            config_path: self.config_path.map(RString::from).into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The request, lent to a hook.
pub struct Request<'a> {
    view: HttpViewMut<'a>,
}

/// The response head (status and headers), lent to `on_response`.
pub struct ResponseHead<'a> {
    view: HttpViewMut<'a>,
}

fn header_error(e: RString) -> Error {
    Error::new(500, e.into_string())
}

macro_rules! common_accessors {
    () => {
        /// The first value of a header, when it is valid UTF-8.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.view.header(name.into()).into_option().map(|s| s.as_str())
        }

        /// Replaces a header.
        pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
            self.view
                .set_header(name.into(), value.into())
                .into_result()
                .map_err(header_error)
        }

        /// Adds a header value.
        pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
            self.view
                .append_header(name.into(), value.into())
                .into_result()
                .map_err(header_error)
        }

        /// Removes a header.
        pub fn remove_header(&mut self, name: &str) {
            self.view.remove_header(name.into())
        }

        /// The app this request was routed to, once known.
        pub fn app(&self) -> Option<&str> {
            self.view.app().into_option().map(|s| s.as_str())
        }

        /// The tenant, once known.
        pub fn tenant(&self) -> Option<&str> {
            self.view.tenant().into_option().map(|s| s.as_str())
        }

        /// A string value shared between plugins for this request.
        pub fn var(&self, name: &str) -> Option<&str> {
            self.view.var(name.into()).into_option().map(|s| s.as_str())
        }

        /// Sets a string value shared between plugins for this request.
        pub fn set_var(&mut self, name: &str, value: &str) {
            self.view.set_var(name.into(), value.into())
        }

        /// The request id (also in bext's logs).
        pub fn request_id(&self) -> u64 {
            self.view.request_id()
        }
    };
}

impl Request<'_> {
    /// The method.
    pub fn method(&self) -> &str {
        self.view.method().as_str()
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.view.path().as_str()
    }

    /// The query, without `?`.
    pub fn query(&self) -> &str {
        self.view.query().as_str()
    }

    /// The host, lower-cased, without port.
    pub fn host(&self) -> &str {
        self.view.host().as_str()
    }

    /// Routes the request to an app (once per request).
    pub fn set_app(&mut self, app: &str) -> Result<(), Error> {
        self.view.set_app(app.into()).into_result().map_err(header_error)
    }

    /// Sets the tenant (once per request).
    pub fn set_tenant(&mut self, tenant: &str) -> Result<(), Error> {
        self.view.set_tenant(tenant.into()).into_result().map_err(header_error)
    }

    common_accessors!();
}

impl ResponseHead<'_> {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.view.status()
    }

    /// Changes the status code.
    pub fn set_status(&mut self, status: u16) -> Result<(), Error> {
        self.view.set_status(status).into_result().map_err(header_error)
    }

    common_accessors!();
}

/// Runs a hook, turning a panic into an error: an unwinding panic must not
/// cross the `extern "C"` boundary.
fn contained<T>(f: impl FnOnce() -> Result<T, Error>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into_ffi()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            RResult::RErr(FfiError {
                status: 500,
                message: message.into(),
                panicked: true,
                config_path: ROption::RNone,
            })
        }
    }
}

fn flow(f: Flow) -> FfiFlow {
    match f {
        Flow::Continue => FfiFlow::Continue,
        Flow::Respond(r) => FfiFlow::Respond(FfiResponse {
            status: r.status,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| Tuple2(k.into(), v.into()))
                .collect::<RVec<_>>(),
            body: r.body.into(),
        }),
    }
}

/// Bridges a [`Plugin`] to the FFI trait.
struct Adapter<P>(P);

impl<P: Plugin> FfiPlugin for Adapter<P> {
    fn hooks(&self) -> u8 {
        self.0.hooks().0
    }

    fn fetch(&self, req: HttpViewMut<'_>) -> RResult<FfiFlow, FfiError> {
        contained(|| self.0.fetch(&mut Request { view: req }).map(flow))
    }

    fn on_request(&self, req: HttpViewMut<'_>) -> RResult<FfiFlow, FfiError> {
        contained(|| self.0.on_request(&mut Request { view: req }).map(flow))
    }

    fn on_response(&self, res: HttpViewMut<'_>) -> RResult<(), FfiError> {
        contained(|| self.0.on_response(&mut ResponseHead { view: res }))
    }
}

extern "C" fn new_instance<P: Plugin>(
    name: RStr<'_>,
    config: RStr<'_>,
    base: RStr<'_>,
) -> RResult<FfiPluginBox, FfiError> {
    contained(|| {
        let mut de = serde_json::Deserializer::from_str(config.as_str());
        let config: P::Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            Error::config(if path == "." { String::new() } else { path }, e.inner().to_string())
        })?;
        let plugin = P::new(
            config,
            &Setup {
                name: name.as_str(),
                base: base.as_str(),
            },
        )?;
        Ok(FfiPlugin_TO::from_value(Adapter(plugin), TD_Opaque))
    })
}

#[doc(hidden)]
pub fn __root_module<P: Plugin>() -> PluginModRef {
    use abi_stable::prefix_type::WithMetadata;
    let module: &'static WithMetadata<PluginMod> =
        Box::leak(Box::new(WithMetadata::new(PluginMod { new: new_instance::<P> })));
    PluginModRef(module.static_as_prefix())
}

/// Exports a [`Plugin`] as this library's plugin. Use it once, in a crate
/// with `crate-type = ["cdylib"]`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The header bext's loader looks for.
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals, unsafe_code)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader($crate::__root_module::<$plugin>)
            }
            // SAFETY: the constructor returns this SDK's root module type,
            // whose layout abi_stable records here and checks at load.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::ffi::PluginModRef>(
                    root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_for() {
        assert_eq!(
            abi_stable_shared::mangled_root_module_loader_name(),
            crate::ffi::ROOT_MODULE_SYMBOL
        );
    }
}
