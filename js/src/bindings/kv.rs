//! KV namespaces: `[apps.<id>] kv = ["SESSIONS"]` gives `env.SESSIONS`
//! with the Workers KV API (`web/kv.js`). The limits are Workers': a key
//! of at most 512 bytes, a value of at most 25 MiB, metadata of at most
//! 1024 bytes once serialized; past them the call throws a `RangeError`
//! before anything is stored.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rquickjs::{Array, Ctx, Exception, Function, Object, TypedArray, Value};

use super::{op_value, start};
use crate::fetch::FetchHost;

/// Longest key, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 25 << 20;
/// Largest metadata, in bytes of JSON.
pub(crate) const MAX_METADATA_BYTES: usize = 1024;
/// Most keys one `list()` returns.
pub(crate) const MAX_LIST: usize = 1000;

/// One KV namespace of one app. Implementations keep apps apart (an app
/// never sees another's keys, even in a namespace of the same name) and
/// never return an expired entry.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// The entry under `key`, if any and not expired.
    async fn get(&self, key: &str) -> Result<Option<KvValue>, KvError>;
    /// Stores `value` under `key`, replacing what was there.
    async fn put(&self, key: &str, value: KvValue) -> Result<(), KvError>;
    /// Removes `key` (absent is not an error).
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Keys in byte order, from after `query.cursor` on.
    async fn list(&self, query: KvQuery) -> Result<KvPage, KvError>;
}

/// An entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// Metadata as JSON text.
    pub metadata: Option<String>,
    /// When it expires, in seconds since the Unix epoch.
    pub expiration: Option<u64>,
}

/// What `list()` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// At most this many (1 to [`MAX_LIST`]).
    pub limit: usize,
    /// The cursor of the previous page: keys after it.
    pub cursor: Option<String>,
}

/// One page of `list()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvPage {
    /// The keys, in byte order.
    pub keys: Vec<KvKey>,
    /// Where the next page starts; `None` when this is the last one.
    pub cursor: Option<String>,
}

/// One key in a [`KvPage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvKey {
    /// The key.
    pub name: String,
    /// When it expires, in seconds since the Unix epoch.
    pub expiration: Option<u64>,
    /// Its metadata as JSON text.
    pub metadata: Option<String>,
}

/// The store could not be reached or failed (Redis down, SQLite busy): the
/// handler's promise rejects with this message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct KvError(pub String);

/// Seconds since the Unix epoch now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks a key: not empty, not `.` or `..`, at most [`MAX_KEY_BYTES`].
fn check_key(ctx: &Ctx<'_>, key: &str) -> rquickjs::Result<()> {
    if key.is_empty() {
        return Err(Exception::throw_type(ctx, "KV key must not be empty"));
    }
    if key == "." || key == ".." {
        return Err(Exception::throw_type(ctx, "KV key must not be \".\" or \"..\""));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Exception::throw_range(
            ctx,
            &format!("KV key is {} bytes, more than {MAX_KEY_BYTES}", key.len()),
        ));
    }
    Ok(())
}

/// The latest expiry a put may ask for, 9999-12-31T23:59:59Z: further
/// would overflow the arithmetic and the stores' signed times (SQLite's
/// INTEGER, Redis's EXPIREAT in milliseconds), and be taken as expired.
const MAX_EXPIRATION: u64 = 253_402_300_799;

/// When an entry put now expires: `expiration` (seconds since the epoch)
/// or `ttl` seconds from now, whichever is given (negative: neither).
fn expiry(ctx: &Ctx<'_>, expiration: f64, ttl: f64) -> rquickjs::Result<Option<u64>> {
    let now = now_secs();
    if ttl >= 0.0 {
        if !ttl.is_finite() || ttl < 1.0 || ttl > MAX_EXPIRATION.saturating_sub(now) as f64 {
            return Err(Exception::throw_range(
                ctx,
                "KV expirationTtl must be at least 1 second, and end before the year 10000",
            ));
        }
        return Ok(Some(now + ttl as u64));
    }
    if expiration >= 0.0 {
        if !expiration.is_finite() || (expiration as u64) <= now || expiration > MAX_EXPIRATION as f64 {
            return Err(Exception::throw_range(
                ctx,
                "KV expiration must be a time in the future (seconds since the epoch), before the year 10000",
            ));
        }
        return Ok(Some(expiration as u64));
    }
    Ok(None)
}

/// Adds `kvGet`, `kvPut`, `kvDelete` and `kvList` to `native`; each starts
/// an operation and returns its id (the prelude's `fetchDone` settles it).
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    host: Rc<FetchHost>,
    namespaces: &[(String, Arc<dyn KvStore>)],
) -> rquickjs::Result<()> {
    let stores: Rc<Vec<(String, Arc<dyn KvStore>)>> = Rc::new(namespaces.to_vec());
    let find = {
        let stores = stores.clone();
        move |ctx: &Ctx<'js>, ns: &str| -> rquickjs::Result<Arc<dyn KvStore>> {
            stores
                .iter()
                .find(|(n, _)| n == ns)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| Exception::throw_type(ctx, &format!("no KV namespace {ns}")))
        }
    };

    let (h, f) = (host.clone(), find.clone());
    native.set(
        "kvGet",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, ns: String, key: String| {
            let store = f(&ctx, &ns)?;
            check_key(&ctx, &key)?;
            start(&ctx, &h, async move {
                let got = store.get(&key).await.map_err(|e| e.to_string())?;
                Ok(op_value(move |ctx| {
                    let Some(entry) = got else {
                        return Ok(Value::new_null(ctx.clone()));
                    };
                    let out = Array::new(ctx.clone())?;
                    out.set(0, TypedArray::<u8>::new(ctx.clone(), entry.value)?)?;
                    out.set(1, entry.metadata)?;
                    Ok(out.into_value())
                }))
            })
        })?,
    )?;

    let (h, f) = (host.clone(), find.clone());
    native.set(
        "kvPut",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  ns: String,
                  key: String,
                  value: TypedArray<'js, u8>,
                  metadata: Option<String>,
                  expiration: f64,
                  ttl: f64| {
                let store = f(&ctx, &ns)?;
                check_key(&ctx, &key)?;
                let len = value.len();
                if len > MAX_VALUE_BYTES {
                    return Err(Exception::throw_range(
                        &ctx,
                        &format!("KV value is {len} bytes, more than {MAX_VALUE_BYTES}"),
                    ));
                }
                if let Some(m) = metadata.as_ref().filter(|m| m.len() > MAX_METADATA_BYTES) {
                    return Err(Exception::throw_range(
                        &ctx,
                        &format!(
                            "KV metadata is {} bytes serialized, more than {MAX_METADATA_BYTES}",
                            m.len()
                        ),
                    ));
                }
                let expiration = expiry(&ctx, expiration, ttl)?;
                let value = crate::natives::copy_bytes(&value);
                start(&ctx, &h, async move {
                    let entry = KvValue {
                        value,
                        metadata,
                        expiration,
                    };
                    store.put(&key, entry).await.map_err(|e| e.to_string())?;
                    Ok(op_value(|ctx| Ok(Value::new_undefined(ctx.clone()))))
                })
            },
        )?,
    )?;

    let (h, f) = (host.clone(), find.clone());
    native.set(
        "kvDelete",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, ns: String, key: String| {
            let store = f(&ctx, &ns)?;
            check_key(&ctx, &key)?;
            start(&ctx, &h, async move {
                store.delete(&key).await.map_err(|e| e.to_string())?;
                Ok(op_value(|ctx| Ok(Value::new_undefined(ctx.clone()))))
            })
        })?,
    )?;

    let (h, f) = (host, find);
    native.set(
        "kvList",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, ns: String, prefix: String, limit: f64, cursor: Option<String>| {
                let store = f(&ctx, &ns)?;
                if !(1.0..=MAX_LIST as f64).contains(&limit) {
                    return Err(Exception::throw_range(
                        &ctx,
                        &format!("KV list limit must be between 1 and {MAX_LIST}"),
                    ));
                }
                let query = KvQuery {
                    prefix,
                    limit: limit as usize,
                    cursor: cursor.filter(|c| !c.is_empty()),
                };
                start(&ctx, &h, async move {
                    let page = store.list(query).await.map_err(|e| e.to_string())?;
                    Ok(op_value(move |ctx| page_value(ctx, page)))
                })
            },
        )?,
    )?;
    Ok(())
}

/// `[names, expirations, metadata (JSON text), cursor]`; kv.js shapes it.
fn page_value<'js>(ctx: &Ctx<'js>, page: KvPage) -> rquickjs::Result<Value<'js>> {
    let (names, expirations, metadata) = (
        Array::new(ctx.clone())?,
        Array::new(ctx.clone())?,
        Array::new(ctx.clone())?,
    );
    for (i, k) in page.keys.into_iter().enumerate() {
        names.set(i, k.name)?;
        expirations.set(i, k.expiration.map(|e| e as f64))?;
        metadata.set(i, k.metadata)?;
    }
    let out = Array::new(ctx.clone())?;
    out.set(0, names)?;
    out.set(1, expirations)?;
    out.set(2, metadata)?;
    out.set(3, page.cursor)?;
    Ok(out.into_value())
}
