//! Bindings in an app's `env`, Workers-style: KV namespaces (`kv.rs`) and
//! `caches.default` (`cache.rs`). Secrets are plain strings in `env`
//! (the kernel reads them from its environment).
//!
//! bext-js defines what a binding is (the traits) and how JavaScript
//! reaches it; the kernel decides where the data lives (SQLite, Redis,
//! memory). Every operation runs off the isolate's thread, through the
//! fetch host's channel, so waiting on one runs no JavaScript: it does not
//! count against `cpu_limit`, only against the call's `timeout`.

mod cache;
mod kv;

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use rquickjs::{Ctx, Function, Object, Value};

pub use cache::{CacheStore, CachedResponse};
pub use kv::{KvError, KvKey, KvPage, KvQuery, KvStore, KvValue};

use crate::bytecode::Compiled;
use crate::fetch::FetchHost;

/// The JavaScript side of the bindings, evaluated after the prelude.
static KV_JS: Compiled = Compiled::new("bext:kv", include_str!("../web/kv.js"));
static CACHE_JS: Compiled = Compiled::new("bext:cache", include_str!("../web/cache.js"));

/// What an app's `env` and `caches` are backed by.
#[derive(Clone, Default)]
pub struct Bindings {
    /// KV namespaces by binding name (`env.SESSIONS`), each already
    /// scoped to this app.
    pub kv: Vec<(String, Arc<dyn KvStore>)>,
    /// `caches.default` (none: `caches` is not defined).
    pub cache: Option<Arc<dyn CacheStore>>,
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bindings")
            .field("kv", &self.kv.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl PartialEq for Bindings {
    /// The same stores, not equal contents.
    fn eq(&self, other: &Self) -> bool {
        self.kv.len() == other.kv.len()
            && self
                .kv
                .iter()
                .zip(&other.kv)
                .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y))
            && match (&self.cache, &other.cache) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

/// A binding operation's result, made into a JavaScript value on the
/// isolate's thread once it is delivered.
pub(crate) type OpValue = Box<dyn for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Value<'js>> + Send>;

/// Boxes `f` as an [`OpValue`] (a closure passed here gets the
/// higher-ranked signature the box needs).
pub(crate) fn op_value(f: impl for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Value<'js>> + Send + 'static) -> OpValue {
    Box::new(f)
}

/// Adds the bindings' natives to `native` and evaluates their JavaScript
/// (only what the app uses: an isolate starts faster without); returns
/// the kit [`fill_env`] makes `env` entries with, when there are KV
/// namespaces.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    host: &Rc<FetchHost>,
    bindings: &Bindings,
) -> rquickjs::Result<Option<Object<'js>>> {
    let mut kit = None;
    if !bindings.kv.is_empty() {
        kv::install(ctx, native, host.clone(), &bindings.kv)?;
        let kv: Function<'js> = KV_JS.function(ctx)?;
        kit = Some(kv.call((native.clone(),))?);
    }
    if let Some(cache) = &bindings.cache {
        cache::install(ctx, native, host.clone(), cache.clone())?;
        let cache: Function<'js> = CACHE_JS.function(ctx)?;
        cache.call::<_, ()>((native.clone(),))?;
    }
    Ok(kit)
}

/// Puts one KV namespace object in `env` per binding name.
pub(crate) fn fill_env<'js>(env: &Value<'js>, kit: Option<&Object<'js>>, bindings: &Bindings) -> rquickjs::Result<()> {
    let (Some(env), Some(kit)) = (env.as_object(), kit) else {
        return Ok(());
    };
    let make: Function<'js> = kit.get("namespace")?;
    for (name, _) in &bindings.kv {
        let ns: Value<'js> = make.call((name.as_str(),))?;
        env.set(name.as_str(), ns)?;
    }
    Ok(())
}

/// Starts `op` on the fetch host; a refusal to start is a JS `Error`.
fn start<'js>(
    ctx: &Ctx<'js>,
    host: &FetchHost,
    op: impl std::future::Future<Output = Result<OpValue, String>> + Send + 'static,
) -> rquickjs::Result<f64> {
    host.start_op(op)
        .map(|id| id as f64)
        .map_err(|e| rquickjs::Exception::throw_message(ctx, &e))
}
