//! The stable ABI between bext and a plugin library. Both sides compile
//! this module; `abi_stable` checks at load time that their layouts and
//! versions agree, so a plugin built against an incompatible SDK is a load
//! error, not undefined behaviour.
//!
//! Plugin authors do not use this module; they implement [`crate::Plugin`].

use abi_stable::library::RootModule;
use abi_stable::sabi_types::{RRef, VersionStrings};
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString, RVec, Tuple2};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};
pub use async_ffi::BorrowingFfiFuture;

/// A complete response built by a plugin.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: RVec<Tuple2<RString, RString>>,
    /// Body bytes.
    pub body: RVec<u8>,
}

/// What a request hook decided.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum FfiFlow {
    /// Go on to the next plugin and the app.
    Continue,
    /// Answer now.
    Respond(FfiResponse),
}

/// A failed hook or constructor.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiError {
    /// Status the client gets when the plugin fails closed.
    pub status: u16,
    /// What went wrong, for the log.
    pub message: RString,
    /// The hook panicked (caught inside the library).
    pub panicked: bool,
    /// For config errors: the dotted path inside the manifest's `config`.
    pub config_path: ROption<RString>,
}

/// What a hook returns across the boundary: its result now, or a future
/// the host awaits (the plugin's [`crate::Hook`], made FFI-safe).
#[repr(u8)]
#[derive(StableAbi)]
pub enum FfiHook<'a, T> {
    /// Finished without waiting.
    Ready(T),
    /// Must be awaited.
    Later(BorrowingFfiFuture<'a, T>),
}

impl<T> FfiHook<'_, T> {
    /// Waits for the hook's result.
    pub async fn resolve(self) -> T {
        match self {
            FfiHook::Ready(v) => v,
            FfiHook::Later(f) => f.await,
        }
    }
}

/// The host's view of one request or response, lent to a hook for the
/// length of the call (and of the future it returns).
#[sabi_trait]
pub trait HttpView: Send {
    /// Request method (`""` for a response).
    fn method(&self) -> RStr<'_>;
    /// Request path, without the query.
    fn path(&self) -> RStr<'_>;
    /// Request query, without `?` (`""` when there is none).
    fn query(&self) -> RStr<'_>;
    /// Request host, lower-cased, without port.
    fn host(&self) -> RStr<'_>;
    /// Response status (0 for a request).
    fn status(&self) -> u16;
    /// Sets the response status.
    fn set_status(&mut self, status: u16) -> RResult<(), RString>;
    /// The first value of a header, when it is valid UTF-8.
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// Replaces a header.
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Adds a header value.
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Removes a header.
    fn remove_header(&mut self, name: RStr<'_>);
    /// The app chosen so far.
    fn app(&self) -> ROption<RStr<'_>>;
    /// The tenant chosen so far.
    fn tenant(&self) -> ROption<RStr<'_>>;
    /// Chooses the app (once per request).
    fn set_app(&mut self, app: RStr<'_>) -> RResult<(), RString>;
    /// Chooses the tenant (once per request).
    fn set_tenant(&mut self, tenant: RStr<'_>) -> RResult<(), RString>;
    /// A string value shared between plugins.
    fn var(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// Sets a string value shared between plugins.
    fn set_var(&mut self, name: RStr<'_>, value: RStr<'_>);
    /// The request id.
    fn request_id(&self) -> u64;
    /// Reads up to `limit` bytes of the request body and returns them; the
    /// app still gets the whole body (empty for a response).
    #[sabi(last_prefix_field)]
    fn peek_body(&mut self, limit: u64) -> BorrowingFfiFuture<'_, RVec<u8>>;
}

/// The host's handle on a lent view.
pub type HttpViewMut<'a> = HttpView_TO<'a, abi_stable::sabi_types::RMut<'a, ()>>;

/// The host's read-only view of a finished request, lent to
/// `on_complete` for the length of the call.
#[sabi_trait]
pub trait DoneView {
    /// Status sent to the client.
    fn status(&self) -> u16;
    /// Body bytes written.
    fn body_bytes(&self) -> u64;
    /// From receiving the request head to the last body byte, in
    /// microseconds.
    fn duration_micros(&self) -> u64;
    /// The client went away before the body was fully sent.
    fn aborted(&self) -> bool;
    /// Request host, lower-cased, without port.
    fn host(&self) -> RStr<'_>;
    /// The app the request was routed to.
    fn app(&self) -> ROption<RStr<'_>>;
    /// The tenant.
    fn tenant(&self) -> ROption<RStr<'_>>;
    /// A string value shared between plugins.
    fn var(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// The request id.
    #[sabi(last_prefix_field)]
    fn request_id(&self) -> u64;
}

/// The host's handle on a lent finished request.
pub type DoneViewRef<'a> = DoneView_TO<'a, RRef<'a, ()>>;

/// A plugin instance as the host sees it: the contract's six hooks.
#[sabi_trait]
pub trait FfiPlugin: Send + Sync + 'static {
    /// Bit set of [`crate::Hooks`].
    fn hooks(&self) -> u8;
    /// Once, before the instance serves traffic.
    fn on_init(&self) -> FfiHook<'_, RResult<(), FfiError>>;
    /// Pre-pipeline stage.
    fn fetch<'a>(&'a self, req: HttpViewMut<'a>) -> FfiHook<'a, RResult<FfiFlow, FfiError>>;
    /// Request on its way to the app.
    fn on_request<'a>(&'a self, req: HttpViewMut<'a>) -> FfiHook<'a, RResult<FfiFlow, FfiError>>;
    /// Response on its way back.
    fn on_response<'a>(&'a self, res: HttpViewMut<'a>) -> FfiHook<'a, RResult<(), FfiError>>;
    /// After the response was written.
    fn on_complete(&self, done: DoneViewRef<'_>) -> RResult<(), FfiError>;
    /// Once, when the last pipeline holding the instance retires.
    #[sabi(last_prefix_field)]
    fn on_shutdown(&self) -> FfiHook<'_, RResult<(), FfiError>>;
}

/// An owned plugin instance.
pub type FfiPluginBox = FfiPlugin_TO<RBox<()>>;

/// The library's root module: how the host makes instances.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Makes an instance from the plugin's name, its manifest `config` as
    /// JSON, its `base` path and bext's data directory.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        base: RStr<'_>,
        data_dir: RStr<'_>,
    ) -> RResult<FfiPluginBox, FfiError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "bext_plugin";
    const NAME: &'static str = "bext_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol `abi_stable` looks a library's header up by.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
