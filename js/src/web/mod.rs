//! Web APIs that load on first use: `crypto` (with `Crypto`, `CryptoKey`,
//! `SubtleCrypto`) and `URLPattern`. Their JavaScript is most of an
//! isolate's start-up cost if evaluated eagerly (crypto.js alone took as
//! long as the whole prelude), and most apps never touch them; each global
//! is a getter that evaluates its file the first time it is read or
//! written, then replaces itself with the real value.

use rquickjs::{Ctx, Exception, Function, Object, Result};

use crate::bytecode::Compiled;

static CRYPTO: Compiled = Compiled::new("bext:crypto", include_str!("crypto.js"));
static URLPATTERN: Compiled = Compiled::new("bext:urlpattern", include_str!("urlpattern.js"));

/// Evaluated at start, with `native` and `load(file)`; small on purpose.
static LAZY: Compiled = Compiled::new(
    "bext:lazy",
    r#"(function (native, load) {
  'use strict';
  const files = [['crypto', ['crypto', 'Crypto', 'CryptoKey', 'SubtleCrypto']], ['urlpattern', ['URLPattern']]];
  for (const [file, names] of files) {
    let loaded = false;
    const ensure = () => {
      if (loaded) return;
      loaded = true;
      for (const n of names) delete globalThis[n];
      load(file)(native);
    };
    for (const n of names) {
      Object.defineProperty(globalThis, n, {
        get() { ensure(); return globalThis[n]; },
        set(v) { ensure(); globalThis[n] = v; },
        configurable: true,
        enumerable: false,
      });
    }
  }
})"#,
);

/// Defines the lazy globals; `native` must already hold the natives the
/// files use (`crypto::install`, `url_pattern::install`).
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    let load = Function::new(ctx.clone(), |ctx: Ctx<'js>, file: String| -> Result<Function<'js>> {
        let source = match file.as_str() {
            "crypto" => &CRYPTO,
            "urlpattern" => &URLPATTERN,
            _ => return Err(Exception::throw_type(&ctx, &format!("no Web API file {file:?}"))),
        };
        source.function(&ctx)
    })?;
    let lazy: Function<'js> = LAZY.function(ctx)?;
    lazy.call((native.clone(), load))
}
