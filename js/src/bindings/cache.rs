//! `caches.default`: the Cache API's `match`, `put` and `delete`
//! (`web/cache.js`), over a store the kernel picks per app.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rquickjs::{Array, Ctx, Function, Object, TypedArray, Value};

use super::{op_value, start};

/// The longest an entry is kept, a year: a response's `max-age` can say
/// anything (`max-age=99999999999999999999999` from an upstream), and a
/// lifetime past what `Duration` and `Instant` hold would panic.
const MAX_TTL_SECS: f64 = 365.0 * 24.0 * 3600.0;
use crate::fetch::FetchHost;

/// Where an app's `caches.default` keeps responses. Keys are absolute
/// URLs; implementations keep apps apart.
#[async_trait::async_trait]
pub trait CacheStore: Send + Sync {
    /// The response stored for `url`, if any and still fresh.
    async fn get(&self, url: &str) -> Option<CachedResponse>;
    /// Stores `response` for `url`, for `ttl` at most (`None`: until the
    /// store needs the room).
    async fn put(&self, url: &str, response: CachedResponse, ttl: Option<Duration>);
    /// Removes `url`; whether something was stored.
    async fn delete(&self, url: &str) -> bool;
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// Its status.
    pub status: u16,
    /// Its headers, in order.
    pub headers: Vec<(String, String)>,
    /// Its whole body.
    pub body: Bytes,
}

/// Adds `cacheMatch`, `cachePut` and `cacheDelete` to `native`.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    host: Rc<FetchHost>,
    store: Arc<dyn CacheStore>,
) -> rquickjs::Result<()> {
    let (h, s) = (host.clone(), store.clone());
    native.set(
        "cacheMatch",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, url: String| {
            let s = s.clone();
            start(&ctx, &h, async move {
                let got = s.get(&url).await;
                Ok(op_value(move |ctx| {
                    let Some(r) = got else {
                        return Ok(Value::new_null(ctx.clone()));
                    };
                    let flat = Array::new(ctx.clone())?;
                    for (i, (n, v)) in r.headers.into_iter().enumerate() {
                        flat.set(2 * i, n)?;
                        flat.set(2 * i + 1, v)?;
                    }
                    let out = Array::new(ctx.clone())?;
                    out.set(0, r.status)?;
                    out.set(1, flat)?;
                    out.set(2, TypedArray::<u8>::new_copy(ctx.clone(), &r.body)?)?;
                    Ok(out.into_value())
                }))
            })
        })?,
    )?;
    let (h, s) = (host.clone(), store.clone());
    native.set(
        "cachePut",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, url: String, status: u16, flat: Vec<String>, body: TypedArray<'js, u8>, ttl: f64| {
                let s = s.clone();
                let response = CachedResponse {
                    status,
                    headers: flat.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
                    body: Bytes::from(crate::natives::copy_bytes(&body)),
                };
                let ttl = (ttl >= 0.0 && ttl.is_finite()).then(|| Duration::from_secs_f64(ttl.min(MAX_TTL_SECS)));
                start(&ctx, &h, async move {
                    s.put(&url, response, ttl).await;
                    Ok(op_value(|ctx| Ok(Value::new_undefined(ctx.clone()))))
                })
            },
        )?,
    )?;
    let h = host;
    native.set(
        "cacheDelete",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, url: String| {
            let s = store.clone();
            start(&ctx, &h, async move {
                let removed = s.delete(&url).await;
                Ok(op_value(move |ctx| Ok(Value::new_bool(ctx.clone(), removed))))
            })
        })?,
    )?;
    Ok(())
}
