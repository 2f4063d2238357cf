//! KV namespaces in SQLite, one instance's: one file, `kv.sqlite3` in the
//! data dir, one table keyed by app, namespace and key, so apps never see
//! each other's keys. Calls run on the blocking pool, never on an isolate
//! or HTTP thread; a busy or broken database is an error the app's
//! handler can catch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use bext_js::{KvError, KvKey, KvPage, KvQuery, KvStore, KvValue};
use rusqlite::{Connection, OptionalExtension, params};

/// How long a call waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Open databases by path: the apps of one data dir share a connection,
/// and a reload does not open the file again.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<KvDb>>>> = LazyLock::new(Default::default);

/// The KV database of one data dir.
pub(crate) struct KvDb {
    conn: Mutex<Connection>,
}

impl KvDb {
    /// Opens (creating it) `data_dir/kv.sqlite3`.
    pub(crate) fn open(data_dir: &Path) -> Result<Arc<KvDb>, String> {
        let path = data_dir.join("kv.sqlite3");
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(db);
        }
        std::fs::create_dir_all(data_dir).map_err(|e| format!("kv: cannot create {}: {e}", data_dir.display()))?;
        let fail = |e: rusqlite::Error| format!("kv: {}: {e}", path.display());
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                app TEXT NOT NULL,
                ns TEXT NOT NULL,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                metadata TEXT,
                expiration INTEGER,
                PRIMARY KEY (app, ns, key)
            ) WITHOUT ROWID;",
        )
        .map_err(fail)?;
        let db = Arc::new(KvDb { conn: Mutex::new(conn) });
        open.insert(path, Arc::downgrade(&db));
        Ok(db)
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, KvError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| KvError(format!("sqlite: {e}")))?
        .map_err(|e| KvError(format!("sqlite: {e}")))
    }
}

/// One namespace of one app.
pub(crate) struct SqliteKv {
    db: Arc<KvDb>,
    app: Arc<str>,
    ns: Arc<str>,
}

impl SqliteKv {
    pub(crate) fn new(db: Arc<KvDb>, app: &str, ns: &str) -> SqliteKv {
        SqliteKv {
            db,
            app: app.into(),
            ns: ns.into(),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[async_trait::async_trait]
impl KvStore for SqliteKv {
    async fn get(&self, key: &str) -> Result<Option<KvValue>, KvError> {
        let (app, ns, key) = (self.app.clone(), self.ns.clone(), key.to_owned());
        self.db
            .run(move |c| {
                c.prepare_cached(
                    "SELECT value, metadata, expiration FROM kv
                     WHERE app = ?1 AND ns = ?2 AND key = ?3 AND (expiration IS NULL OR expiration > ?4)",
                )?
                .query_row(params![app, ns, key, now()], |r| {
                    Ok(KvValue {
                        value: r.get(0)?,
                        metadata: r.get(1)?,
                        expiration: r.get::<_, Option<i64>>(2)?.map(|x| x as u64),
                    })
                })
                .optional()
            })
            .await
    }

    async fn put(&self, key: &str, value: KvValue) -> Result<(), KvError> {
        let (app, ns, key) = (self.app.clone(), self.ns.clone(), key.to_owned());
        self.db
            .run(move |c| {
                // Expired entries of the namespace go as new ones come.
                c.prepare_cached("DELETE FROM kv WHERE app = ?1 AND ns = ?2 AND expiration <= ?3")?
                    .execute(params![app, ns, now()])?;
                c.prepare_cached(
                    "INSERT OR REPLACE INTO kv (app, ns, key, value, metadata, expiration)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    app,
                    ns,
                    key,
                    value.value,
                    value.metadata,
                    value.expiration.map(|x| x as i64)
                ])?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let (app, ns, key) = (self.app.clone(), self.ns.clone(), key.to_owned());
        self.db
            .run(move |c| {
                c.prepare_cached("DELETE FROM kv WHERE app = ?1 AND ns = ?2 AND key = ?3")?
                    .execute(params![app, ns, key])?;
                Ok(())
            })
            .await
    }

    async fn list(&self, query: KvQuery) -> Result<KvPage, KvError> {
        let (app, ns) = (self.app.clone(), self.ns.clone());
        self.db
            .run(move |c| {
                // The prefix is compared as bytes (?7, a blob): SQLite's
                // length() and substr() of a text stop at a NUL, which a
                // key may hold.
                let mut stmt = c.prepare_cached(
                    "SELECT key, metadata, expiration FROM kv
                     WHERE app = ?1 AND ns = ?2 AND key >= ?3
                       AND substr(CAST(key AS BLOB), 1, length(?7)) = ?7
                       AND key > ?4 AND (expiration IS NULL OR expiration > ?5)
                     ORDER BY key LIMIT ?6",
                )?;
                let cursor = query.cursor.unwrap_or_default();
                let prefix_bytes = query.prefix.as_bytes().to_vec();
                let rows = stmt.query_map(
                    params![
                        app,
                        ns,
                        query.prefix,
                        cursor,
                        now(),
                        query.limit as i64 + 1,
                        prefix_bytes
                    ],
                    |r| {
                        Ok(KvKey {
                            name: r.get(0)?,
                            metadata: r.get(1)?,
                            expiration: r.get::<_, Option<i64>>(2)?.map(|x| x as u64),
                        })
                    },
                )?;
                let mut keys = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                let cursor = (keys.len() > query.limit).then(|| {
                    keys.truncate(query.limit);
                    keys.last().map(|k| k.name.clone()).unwrap_or_default()
                });
                Ok(KvPage { keys, cursor })
            })
            .await
    }
}
