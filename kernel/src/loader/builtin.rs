//! The built-in plugins linked into this binary. Naming each crate here
//! keeps the linker from dropping its `inventory` registration; add a line
//! per new plugin crate.

use bext_plugin_authn as _;
use bext_plugin_compress as _;
#[cfg(feature = "deploy")]
use bext_plugin_deploy as _;
use bext_plugin_gateway as _;
use bext_plugin_isr as _;
use bext_plugin_request_id as _;
use bext_plugin_vhosts as _;
use bext_plugin_waf as _;

/// The built-in plugin called `name`.
pub(crate) fn find(name: &str) -> Option<&'static bext_plugin_abi::Registration> {
    bext_plugin_abi::registrations().find(|r| r.name == name)
}
