//! Built-in JavaScript compiled once per process. Parsing and compiling
//! the prelude (~42 KB) was three quarters of an isolate's start, paid
//! again by every isolate: by each cold app's first request, after each
//! eviction and rotation. The first isolate compiles it to QuickJS
//! bytecode; every later one reads that bytecode, which skips the parser.

use std::sync::OnceLock;

use rquickjs::{Ctx, Function, Module, Result, WriteOptions};

/// A built-in script that is one function expression, `(function (...) {
/// 'use strict'; ... })`, kept as bytecode once compiled. The script runs
/// as the default export of a module named `name`: module code is strict,
/// so only scripts strict already may be kept this way.
pub(crate) struct Compiled {
    name: &'static str,
    source: &'static str,
    bytecode: OnceLock<Vec<u8>>,
}

impl Compiled {
    /// `source`, not compiled yet.
    pub(crate) const fn new(name: &'static str, source: &'static str) -> Compiled {
        Compiled {
            name,
            source,
            bytecode: OnceLock::new(),
        }
    }

    /// The function the script evaluates to, in `ctx`.
    #[allow(unsafe_code)]
    pub(crate) fn function<'js>(&self, ctx: &Ctx<'js>) -> Result<Function<'js>> {
        let module = match self.bytecode.get() {
            // SAFETY: the bytes were written by `Module::write` below, in
            // this process, by the same QuickJS, and never changed since.
            Some(bytes) => unsafe { Module::load(ctx.clone(), bytes)? },
            None => {
                let module = Module::declare(ctx.clone(), self.name, format!("export default {}", self.source))?;
                // Two isolates compiling at once both write the same
                // bytes; the first kept is as good as the other.
                let _ = self.bytecode.set(module.write(WriteOptions::default())?);
                module
            }
        };
        // The module only defines its default export: nothing to await.
        let (module, _) = module.eval()?;
        module.get("default")
    }

    /// Whether the bytecode is kept (compiled by an isolate already).
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.bytecode.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use rquickjs::{Context, Runtime};

    use super::Compiled;

    fn call(compiled: &Compiled) -> Result<String, String> {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let f = compiled.function(&ctx).map_err(|e| e.to_string())?;
            f.call((2, 3)).map_err(|e| e.to_string())
        })
    }

    /// The first runtime compiles; a later one, with its own heap and
    /// atoms, runs the kept bytecode alike (still strict).
    #[test]
    fn a_script_compiled_once_runs_in_later_runtimes() {
        static ADD: Compiled = Compiled::new(
            "test:add",
            "(function (a, b) { 'use strict'; return `${a + b} ${this === undefined}`; })",
        );
        assert!(!ADD.is_compiled());
        assert_eq!(call(&ADD), Ok("5 true".into()));
        assert!(ADD.is_compiled());
        assert_eq!(call(&ADD), Ok("5 true".into()));
        assert_eq!(call(&ADD), Ok("5 true".into()));
    }

    /// A script that does not compile is an error each time, and nothing
    /// is kept.
    #[test]
    fn a_broken_script_is_an_error_and_is_not_kept() {
        static BROKEN: Compiled = Compiled::new("test:broken", "(function (a, b) { return a +; })");
        assert!(call(&BROKEN).is_err());
        assert!(!BROKEN.is_compiled());
        assert!(call(&BROKEN).is_err());
    }
}
