//! A shared library that is not a bext plugin: it exports no plugin header.

/// Something to export.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> u32 {
    7
}
