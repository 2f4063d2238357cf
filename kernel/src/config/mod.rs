//! Configuration: the platform file (`platform.toml`, or a directory's
//! `bext.config.toml`), plugin manifests, and the diagnostics both report
//! (`file:line:col: field: reason`).
//!
//! Dependencies run one way: `diag` <- `yaml`, `toml_doc`, `isolate`, `process`, `upstream` <-
//! `manifest`, `platform`; neither of the last two imports the other, and
//! nothing here imports the rest of the kernel.

mod bindings;
pub mod deployed;
pub mod diag;
pub mod framework;
pub mod isolate;
pub mod manifest;
pub mod observe;
pub mod platform;
pub mod process;
mod runtime_keys;
mod toml_doc;
pub mod upstream;
mod yaml;
