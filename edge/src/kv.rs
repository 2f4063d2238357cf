//! KV namespaces of JS apps in the fleet's Redis, so every instance of
//! the fleet sees the same data. Unlike the cache calls, these do not
//! fail soft: an outage is an `Err` the app's handler sees as a rejected
//! promise (a KV read that silently answered "absent" would lose data).
//!
//! Layout under `{prefix}kv:{app}:{namespace}:` (app ids and binding
//! names have no `:`): `e:{key}` a hash (`v` value, `m` metadata JSON,
//! `x` expiration in seconds since the epoch) that Redis expires itself,
//! and `i` a sorted set of the keys for `list()`, from which keys whose
//! entry expired are dropped as `list()` meets them.

use redis::AsyncCommands;

use crate::Edge;

/// A KV entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The bytes.
    pub value: Vec<u8>,
    /// Metadata as JSON text.
    pub metadata: Option<String>,
    /// Seconds since the epoch when it expires.
    pub expiration: Option<u64>,
}

/// A key `kv_list` found, with what `list()` shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvListed {
    /// The key.
    pub name: String,
    /// Metadata as JSON text.
    pub metadata: Option<String>,
    /// Seconds since the epoch when it expires.
    pub expiration: Option<u64>,
}

/// Longest a KV call may wait for Redis.
const KV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Edge {
    /// The key prefix of namespace `ns` of app `app`.
    pub fn kv_base(&self, app: &str, ns: &str) -> String {
        format!("{}kv:{app}:{ns}:", self.prefix)
    }

    /// Runs `call`, noting whether Redis answered.
    async fn kv_call<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
        match tokio::time::timeout(KV_TIMEOUT, call).await {
            Ok(Ok(v)) => {
                self.up.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => {
                self.up.store(false, std::sync::atomic::Ordering::Relaxed);
                Err(format!("redis: {e}"))
            }
            Err(_) => {
                self.up.store(false, std::sync::atomic::Ordering::Relaxed);
                Err(format!("redis did not answer within {KV_TIMEOUT:?}"))
            }
        }
    }

    /// The entry `key` of namespace `base` (from [`Edge::kv_base`]).
    pub async fn kv_get(&self, base: &str, key: &str) -> Result<Option<KvEntry>, String> {
        let mut c = self.conn.clone();
        let entry = format!("{base}e:{key}");
        let (v, m, x): (Option<Vec<u8>>, Option<String>, Option<u64>) = self
            .kv_call(
                redis::cmd("HMGET")
                    .arg(&entry)
                    .arg("v")
                    .arg("m")
                    .arg("x")
                    .query_async(&mut c),
            )
            .await?;
        Ok(v.map(|value| KvEntry {
            value,
            metadata: m,
            expiration: x,
        }))
    }

    /// Stores `entry` under `key`, expiring with it.
    pub async fn kv_put(&self, base: &str, key: &str, entry: &KvEntry) -> Result<(), String> {
        let name = format!("{base}e:{key}");
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(&name).ignore();
        pipe.cmd("HSET").arg(&name).arg("v").arg(&entry.value[..]);
        if let Some(m) = &entry.metadata {
            pipe.arg("m").arg(m);
        }
        if let Some(x) = entry.expiration {
            pipe.arg("x").arg(x);
        }
        pipe.ignore();
        if let Some(x) = entry.expiration {
            pipe.cmd("EXPIREAT").arg(&name).arg(x).ignore();
        }
        pipe.cmd("ZADD").arg(format!("{base}i")).arg(0).arg(key).ignore();
        let mut c = self.conn.clone();
        self.kv_call(pipe.query_async::<()>(&mut c)).await
    }

    /// Removes `key`.
    pub async fn kv_delete(&self, base: &str, key: &str) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(format!("{base}e:{key}")).ignore();
        pipe.cmd("ZREM").arg(format!("{base}i")).arg(key).ignore();
        let mut c = self.conn.clone();
        self.kv_call(pipe.query_async::<()>(&mut c)).await
    }

    /// Up to `limit` live keys starting with `prefix`, in byte order,
    /// after `cursor`; and whether more follow.
    pub async fn kv_list(
        &self,
        base: &str,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<KvListed>, bool), String> {
        let index = format!("{base}i");
        let mut from: Vec<u8> = match cursor {
            Some(c) if c >= prefix => [b"(", c.as_bytes()].concat(),
            _ => [b"[", prefix.as_bytes()].concat(),
        };
        // UTF-8 keys never hold 0xFF, so this is past every key with the prefix.
        let to: Vec<u8> = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            [b"[", prefix.as_bytes(), b"\xff"].concat()
        };
        let mut out = Vec::new();
        let mut c = self.conn.clone();
        loop {
            let want = limit + 1 - out.len();
            let names: Vec<String> = self
                .kv_call(
                    redis::cmd("ZRANGEBYLEX")
                        .arg(&index)
                        .arg(&from)
                        .arg(&to)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(want)
                        .query_async(&mut c),
                )
                .await?;
            if names.is_empty() {
                return Ok((out, false));
            }
            let mut pipe = redis::pipe();
            for n in &names {
                let entry = format!("{base}e:{n}");
                pipe.cmd("EXISTS").arg(&entry);
                pipe.cmd("HMGET").arg(&entry).arg("m").arg("x");
            }
            let found: Vec<redis::Value> = self.kv_call(pipe.query_async(&mut c)).await?;
            let mut gone = Vec::new();
            for (n, pair) in names.iter().zip(found.chunks(2)) {
                let exists: bool = redis::from_redis_value_ref(&pair[0]).unwrap_or(false);
                if !exists {
                    gone.push(n.clone());
                    continue;
                }
                let (m, x): (Option<String>, Option<u64>) =
                    redis::from_redis_value_ref(&pair[1]).unwrap_or((None, None));
                out.push(KvListed {
                    name: n.clone(),
                    metadata: m,
                    expiration: x,
                });
            }
            if !gone.is_empty() {
                let _ = self.kv_call(c.zrem::<_, _, ()>(&index, &gone)).await;
            }
            if out.len() > limit {
                out.truncate(limit);
                return Ok((out, true));
            }
            if names.len() < want {
                return Ok((out, false));
            }
            let last = names.last().map(String::as_str).unwrap_or_default();
            from = [b"(", last.as_bytes()].concat();
        }
    }
}
