//! KV namespaces in the fleet's Redis (edge mode): every instance of the
//! fleet reads what any other wrote; entries expire by Redis expiry.

use std::sync::Arc;

use bext_edge::{Edge, KvEntry};
use bext_js::{KvError, KvKey, KvPage, KvQuery, KvStore, KvValue};

/// One namespace of one app, under its own key prefix.
pub(crate) struct RedisKv {
    edge: Arc<Edge>,
    base: String,
}

impl RedisKv {
    pub(crate) fn new(edge: Arc<Edge>, app: &str, ns: &str) -> RedisKv {
        let base = edge.kv_base(app, ns);
        RedisKv { edge, base }
    }
}

#[async_trait::async_trait]
impl KvStore for RedisKv {
    async fn get(&self, key: &str) -> Result<Option<KvValue>, KvError> {
        let got = self.edge.kv_get(&self.base, key).await.map_err(KvError)?;
        Ok(got.map(|e| KvValue {
            value: e.value,
            metadata: e.metadata,
            expiration: e.expiration,
        }))
    }

    async fn put(&self, key: &str, value: KvValue) -> Result<(), KvError> {
        let entry = KvEntry {
            value: value.value,
            metadata: value.metadata,
            expiration: value.expiration,
        };
        self.edge.kv_put(&self.base, key, &entry).await.map_err(KvError)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.edge.kv_delete(&self.base, key).await.map_err(KvError)
    }

    async fn list(&self, query: KvQuery) -> Result<KvPage, KvError> {
        let (found, more) = self
            .edge
            .kv_list(&self.base, &query.prefix, query.limit, query.cursor.as_deref())
            .await
            .map_err(KvError)?;
        let cursor = more.then(|| found.last().map(|k| k.name.clone()).unwrap_or_default());
        let keys = found
            .into_iter()
            .map(|k| KvKey {
                name: k.name,
                expiration: k.expiration,
                metadata: k.metadata,
            })
            .collect();
        Ok(KvPage { keys, cursor })
    }
}
