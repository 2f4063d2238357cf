//! Write a bext plugin in Rust and ship it as a shared library.
//!
//! Implement [`Plugin`], then `export_plugin!(MyPlugin);` in a crate built
//! as `crate-type = ["cdylib"]`, and name the `.so` in a manifest's
//! `entry`. The plugin gets the contract's six hooks (`on_init`, `fetch`,
//! `on_request` with the request body, `on_response`, `on_complete`,
//! `on_shutdown`), synchronous or asynchronous like a built-in's, over a
//! stable ABI: bext checks the SDK version and every type's layout when it
//! loads the library, and a panic in a hook (or in its future) is caught
//! inside the library and becomes a 500 for that request only.
//!
//! ```ignore
//! use bext_plugin_sdk::{export_plugin, Error, Flow, Hook, Hooks, Plugin, Request, Response, Setup};
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
//!     fn on_request<'a>(&'a self, mut req: Request<'a>) -> Hook<'a, Result<Flow, Error>> {
//!         if req.path() != "/echo" {
//!             return Hook::Ready(Ok(Flow::Continue));
//!         }
//!         Hook::later(async move {
//!             let body = req.body(64 * 1024).await;
//!             Ok(Flow::Respond(Response::new(200).body(body)))
//!         })
//!     }
//! }
//! export_plugin!(Hello);
//! ```

mod adapter;
mod error;
// abi_stable's derives and `sabi_trait` expand to unsafe code and to
// impls inside generated constants.
#[allow(unsafe_code, non_local_definitions)]
pub mod ffi;
mod hook;
mod http;

pub use abi_stable;
pub use error::Error;
pub use hook::Hook;
pub use http::{Completion, Flow, Request, Response, ResponseHead};

use ffi::{PluginMod, PluginModRef};

/// The hooks a plugin implements; bext calls no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks(pub u8);

impl Hooks {
    /// [`Plugin::fetch`]: pre-pipeline stage, before an app is chosen.
    pub const FETCH: Hooks = Hooks(1);
    /// [`Plugin::on_request`]: the request on its way to the app.
    pub const REQUEST: Hooks = Hooks(1 << 1);
    /// [`Plugin::on_response`]: the response on its way back.
    pub const RESPONSE: Hooks = Hooks(1 << 2);
    /// [`Plugin::on_init`]: once, before serving.
    pub const INIT: Hooks = Hooks(1 << 3);
    /// [`Plugin::on_complete`]: after the response was written.
    pub const COMPLETE: Hooks = Hooks(1 << 4);
    /// [`Plugin::on_shutdown`]: when the instance retires.
    pub const SHUTDOWN: Hooks = Hooks(1 << 5);

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
    /// bext's data directory: where a plugin keeps its files (open them in
    /// `on_init`, not in `new`, which `bext check` calls too).
    pub data_dir: &'a std::path::Path,
}

/// A plugin loaded from a shared library.
///
/// Every hook has a default that does nothing; [`Plugin::hooks`] must
/// name the ones the plugin overrides. A hook returns [`Hook::Ready`] when
/// it is done, or [`Hook::later`] with an `async` block when it waits.
/// The futures run on bext's runtime, so they may await what the SDK
/// hands them ([`Request::body`]) and runtime-independent futures (a
/// channel fed by the plugin's own thread), but not timers or sockets of a
/// runtime the library links itself: that runtime is not running there.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The manifest's `config` block, decoded with serde.
    type Config: serde::de::DeserializeOwned;

    /// Makes an instance; an error rejects the configuration that named it.
    /// Keep it pure: `bext check` calls it too.
    fn new(config: Self::Config, setup: &Setup<'_>) -> Result<Self, Error>;

    /// The hooks this plugin implements; the others are never called.
    fn hooks(&self) -> Hooks;

    /// Runs once when the instance joins a pipeline, before it serves
    /// traffic: open files, start threads. An error rejects the whole new
    /// configuration, and the previous one keeps serving.
    fn on_init(&self) -> Hook<'_, Result<(), Error>> {
        Hook::Ready(Ok(()))
    }

    /// Pre-pipeline stage: route (set app, tenant) or answer.
    fn fetch<'a>(&'a self, _req: Request<'a>) -> Hook<'a, Result<Flow, Error>> {
        Hook::Ready(Ok(Flow::Continue))
    }

    /// Sees the request on its way to the app: edit it, read its body, or
    /// answer it.
    fn on_request<'a>(&'a self, _req: Request<'a>) -> Hook<'a, Result<Flow, Error>> {
        Hook::Ready(Ok(Flow::Continue))
    }

    /// Sees the response head on its way back: status and headers.
    fn on_response<'a>(&'a self, _res: ResponseHead<'a>) -> Hook<'a, Result<(), Error>> {
        Hook::Ready(Ok(()))
    }

    /// Runs after the response was written; never delays the client. Keep
    /// it cheap, or hand the work to a thread of the plugin's own.
    fn on_complete(&self, _done: &Completion<'_>) {}

    /// Runs once when the last pipeline holding this instance retires
    /// (a reload that changed its configuration, or bext stopping).
    fn on_shutdown(&self) -> Hook<'_, ()> {
        Hook::Ready(())
    }
}

#[doc(hidden)]
pub fn __root_module<P: Plugin>() -> PluginModRef {
    use abi_stable::prefix_type::WithMetadata;
    let module: &'static WithMetadata<PluginMod> = Box::leak(Box::new(WithMetadata::new(PluginMod {
        new: adapter::new_instance::<P>,
    })));
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
