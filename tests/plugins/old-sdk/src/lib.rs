//! A plugin library built against an older, incompatible SDK (0.0.x):
//! same root module name and shape, older version.
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::RStr;
use abi_stable::{StableAbi, declare_root_module_statics, export_root_module, prefix_type::PrefixTypeTrait};

/// The old root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldModRef)))]
pub struct OldMod {
    /// An old constructor.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(RStr<'_>) -> u32,
}

impl RootModule for OldModRef {
    declare_root_module_statics! {OldModRef}
    const BASE_NAME: &'static str = "bext_plugin";
    const NAME: &'static str = "bext_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.0.1");
}

extern "C" fn new(_: RStr<'_>) -> u32 {
    0
}

/// The root module.
#[export_root_module]
pub fn root() -> OldModRef {
    OldMod { new }.leak_into_prefix()
}
