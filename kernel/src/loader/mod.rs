//! How plugins get into a pipeline, three ways behind one `Plugin` trait:
//! built-in crates register at compile time (`inventory`, `builtin.rs`),
//! Rust `cdylib`s load through a stable ABI (`dylib.rs`), and JavaScript
//! modules run in QuickJS isolate pools (`js.rs`; the request body they
//! may read, `js_body.rs`).

mod builtin;
pub(crate) mod dylib;
pub(crate) mod js;
mod js_body;

pub(crate) use builtin::find;
