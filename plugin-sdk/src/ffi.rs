//! The stable ABI between bext and a plugin library. Both sides compile
//! this module; `abi_stable` checks at load time that their layouts and
//! versions agree, so a plugin built against an incompatible SDK is a load
//! error, not undefined behaviour.
//!
//! Plugin authors do not use this module; they implement [`crate::Plugin`].

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString, RVec, Tuple2};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};

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

/// The host's view of one request or response, lent to a hook for the
/// length of the call.
#[sabi_trait]
pub trait HttpView {
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
    #[sabi(last_prefix_field)]
    fn request_id(&self) -> u64;
}

/// The host's handle on a lent view.
pub type HttpViewMut<'a> = HttpView_TO<'a, abi_stable::sabi_types::RMut<'a, ()>>;

/// A plugin instance as the host sees it.
#[sabi_trait]
pub trait FfiPlugin: Send + Sync {
    /// Bit set of [`crate::Hooks`].
    fn hooks(&self) -> u8;
    /// Pre-pipeline stage.
    fn fetch(&self, req: HttpViewMut<'_>) -> RResult<FfiFlow, FfiError>;
    /// Request on its way to the app.
    fn on_request(&self, req: HttpViewMut<'_>) -> RResult<FfiFlow, FfiError>;
    /// Response on its way back.
    #[sabi(last_prefix_field)]
    fn on_response(&self, res: HttpViewMut<'_>) -> RResult<(), FfiError>;
}

/// An owned plugin instance.
pub type FfiPluginBox = FfiPlugin_TO<'static, RBox<()>>;

/// The library's root module: how the host makes instances.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Makes an instance from the plugin's name, its manifest `config` as
    /// JSON, and its `base` path.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(name: RStr<'_>, config: RStr<'_>, base: RStr<'_>) -> RResult<FfiPluginBox, FfiError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "bext_plugin";
    const NAME: &'static str = "bext_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol `abi_stable` looks a library's header up by.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
