//! How plugins get into a pipeline. Built-in plugins register at compile
//! time (`inventory`); `builtin` links their crates. Dynamic (`.so`) and
//! JavaScript loaders come later, behind the same `Plugin` trait.

mod builtin;

pub(crate) use builtin::find;
