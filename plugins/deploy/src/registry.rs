//! The app registry: a SQLite database of apps and their versions, next to
//! the [`Store`] that holds the versions' files.
//!
//! One rule keeps it crash-safe: files first, database last. A deploy
//! stores its files and renames its finished tree into place, then one
//! transaction records the version and makes it current. A process killed
//! before that commit leaves the previous version current; what it wrote
//! is removed the next time the registry is opened for writing.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::DeployError;
use crate::bundle::{self, Limits};
use crate::hooks::{self, DeployHooks, HookRun};
use crate::store::{Store, Stored};

pub mod domains;

pub use domains::DomainRecord;

/// Schema changes, applied in order; `PRAGMA user_version` counts those
/// applied. Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: apps and their versions, at most one current version per app.
    "CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        origin TEXT NOT NULL CHECK (origin IN ('platform', 'deploy')),
        created_at INTEGER NOT NULL,
        deploys INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE app_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        path TEXT NOT NULL,
        routes TEXT NOT NULL,
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        deployed_at INTEGER NOT NULL,
        deployed_by TEXT NOT NULL,
        current INTEGER NOT NULL DEFAULT 0 CHECK (current IN (0, 1)),
        UNIQUE (app, version)
    );
    CREATE UNIQUE INDEX one_current_version ON app_versions (app) WHERE current = 1;",
    // 2: canaries (a version serving a share of new visitors) and the
    // log of what happened to each app.
    "CREATE TABLE canaries (
        app TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        share INTEGER NOT NULL CHECK (share BETWEEN 1 AND 99),
        started_at INTEGER NOT NULL,
        auto_promote_after INTEGER,
        max_error_rate REAL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        what TEXT NOT NULL
    );",
    // 3: previews: a version served on hosts of its own, until it expires.
    "CREATE TABLE previews (
        app TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (app, name)
    );",
    // 4: the output of the apps' deploy hooks.
    "CREATE TABLE hook_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        hook TEXT NOT NULL,
        command TEXT NOT NULL,
        exit_code INTEGER,
        output TEXT NOT NULL,
        millis INTEGER NOT NULL,
        at INTEGER NOT NULL
    );",
    // 5: what was current, in order: a deploy or a promotion pushes the
    // version it makes current; a rollback marks the top rolled back and
    // serves the one beneath. Seeded with what a rollback went back to
    // until now: each app's versions up to its current one, in deploy
    // order, less the previews and the canaries never promoted.
    "CREATE TABLE current_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        at INTEGER NOT NULL,
        how TEXT NOT NULL,
        by TEXT NOT NULL,
        rolled_back_at INTEGER
    );
    CREATE INDEX current_history_of_app ON current_history (app, id);
    INSERT INTO current_history (app, version, at, how, by)
    SELECT v.app, v.version, v.deployed_at, 'deploy', v.deployed_by
    FROM app_versions v JOIN app_versions c ON c.app = v.app AND c.current = 1
    WHERE v.id <= c.id AND (v.current = 1 OR (
        NOT EXISTS (SELECT 1 FROM previews p WHERE p.app = v.app AND p.version = v.version)
        AND NOT EXISTS (SELECT 1 FROM canaries k WHERE k.app = v.app AND k.version = v.version)
        AND NOT (
            EXISTS (SELECT 1 FROM events e WHERE e.app = v.app
                AND substr(e.what, 1, length('deployed ' || v.version || ' by ' || v.deployed_by || ' as '))
                    = 'deployed ' || v.version || ' by ' || v.deployed_by || ' as ')
            AND NOT EXISTS (SELECT 1 FROM events e WHERE e.app = v.app
                AND e.what = 'promoted canary ' || v.version || ' to current'))))
    ORDER BY v.id;",
    // 6: tenants' own domains. Not tied to `apps` by a foreign key (a
    // platform app removed from the registry keeps them: it is served
    // from its source again); removing a deploy app removes them, and so
    // does the registry's next open once their app is gone (left the
    // platform file with no versions): see `sync_platform_apps`.
    "CREATE TABLE domains (
        domain TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        tenant TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        added_by TEXT NOT NULL
    );",
];

/// The registry's database file under its root.
pub const DATABASE: &str = "registry.sqlite3";

/// Where the admin API unpacks uploads, under the root.
pub const INCOMING: &str = "incoming";

/// One app as the registry knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppRecord {
    /// The app's id.
    pub id: String,
    /// `platform` (declared in the platform file) or `deploy` (created by
    /// a deploy).
    pub origin: String,
    /// Its current version, if it has been deployed.
    pub current: Option<VersionRecord>,
    /// How many versions are kept.
    pub versions: u64,
    /// A version serving a share of new visitors, if one does.
    pub canary: Option<CanaryRecord>,
    /// Its previews.
    pub previews: Vec<PreviewRecord>,
    /// The version `rollback` makes current again when no canary runs:
    /// the one that was current before the current one (a rollback of a
    /// running canary stops the canary instead).
    #[serde(default)]
    pub rollback_to: Option<String>,
    /// Its newest hook runs, newest first.
    pub hook_runs: Vec<HookRecord>,
    /// The newest things that happened to it (deploys, rollbacks,
    /// promotions, automatic ones included), newest first.
    pub events: Vec<Event>,
}

/// A version serving a share of new visitors next to the current one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CanaryRecord {
    /// The app.
    pub app: String,
    /// The canary version.
    pub version: String,
    /// Its directory.
    pub path: PathBuf,
    /// Percent of new visitors it gets (1 to 99).
    pub share: u8,
    /// Unix time it started.
    pub started_at: u64,
    /// Promote it after this many seconds if its 5xx rate stayed at or
    /// under `max_error_rate`.
    pub auto_promote_after: Option<u64>,
    /// Roll it back once its 5xx rate goes over this (0 to 1).
    pub max_error_rate: Option<f64>,
}

/// How a canary is started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CanaryPlan {
    /// Percent of new visitors (1 to 99).
    pub share: u8,
    /// See [`CanaryRecord::auto_promote_after`].
    pub auto_promote_after: Option<u64>,
    /// See [`CanaryRecord::max_error_rate`].
    pub max_error_rate: Option<f64>,
}

/// A version served on hosts of its own (`{name}.preview.{domain}`) until
/// it expires, beside whatever the app serves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviewRecord {
    /// The app.
    pub app: String,
    /// The preview's name (`pr-123`): a DNS label.
    pub name: String,
    /// The version it serves.
    pub version: String,
    /// That version's directory.
    pub path: PathBuf,
    /// Unix time it was deployed.
    pub created_at: u64,
    /// Unix time it is removed.
    pub expires_at: u64,
}

/// How a deploy is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeployOptions<'a> {
    /// The version's name; `v<N>` (N counting the app's deploys) when unset.
    pub version: Option<&'a str>,
    /// Who deploys, for the record.
    pub by: &'a str,
    /// Start the version as a canary instead of making it current.
    pub canary: Option<CanaryPlan>,
    /// Serve the version as this preview (name, lifetime in seconds)
    /// instead of making it current.
    pub preview: Option<(&'a str, u64)>,
    /// The app's hooks: `pre_build` runs here, before anything is stored.
    pub hooks: Option<&'a DeployHooks>,
}

/// The longest a preview may live (the range the platform file and the
/// manifest are checked against too).
pub use bext_plugin_abi::units::MAX_PREVIEW_TTL;

/// Checks what a deploy of `app` asks for (the app id, the version and
/// preview names, the preview's lifetime, the canary's share) before any
/// of its bundle is read: the admin API answers a bad request without
/// taking its upload.
pub fn check_deploy(app: &str, options: &DeployOptions<'_>) -> Result<(), DeployError> {
    check(&APP_ID, app)?;
    if let Some(version) = options.version {
        check(&VERSION_NAME, version)?;
    }
    if let Some((name, ttl)) = options.preview {
        check(&PREVIEW_NAME, name)?;
        if !(1..=MAX_PREVIEW_TTL).contains(&ttl) {
            return Err(DeployError::Bundle(format!(
                "preview lifetime {ttl} s: use 1 s to {} days",
                MAX_PREVIEW_TTL / 86400
            )));
        }
        if options.canary.is_some() {
            return Err(DeployError::Bundle(
                "a deploy is a preview or a canary, not both".into(),
            ));
        }
    }
    if let Some(plan) = options.canary
        && !(1..=99).contains(&plan.share)
    {
        return Err(DeployError::Bundle(format!(
            "canary share {}%: use 1 to 99 (100% is a plain deploy)",
            plan.share
        )));
    }
    Ok(())
}

/// A hook's run, as kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookRecord {
    /// The version it ran for.
    pub version: String,
    /// Unix time it ended.
    pub at: u64,
    /// What it did.
    #[serde(flatten)]
    pub run: HookRun,
}

/// One line of an app's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Unix time.
    pub at: u64,
    /// What happened.
    pub what: String,
}

/// One version of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionRecord {
    /// The app.
    pub app: String,
    /// Its name (`v3`, or what `--version` said).
    pub version: String,
    /// The directory its runtime serves.
    pub path: PathBuf,
    /// The pages it serves (URL paths of its HTML files).
    pub routes: Vec<String>,
    /// Files in it.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Unix time of the deploy.
    pub deployed_at: u64,
    /// Who deployed it.
    pub deployed_by: String,
    /// Whether it is the one served.
    pub current: bool,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployed {
    /// The new current version.
    pub version: VersionRecord,
    /// Bytes the store had not seen before.
    pub new_bytes: u64,
    /// Old versions removed by `keep_versions`.
    pub pruned: Vec<String>,
    /// The `pre_build` hook's run, if the app has one.
    pub pre_build: Option<HookRun>,
    /// The `post_deploy` hook's run, once the version serves.
    pub post_deploy: Option<HookRun>,
    /// The preview it serves as, for a preview deploy.
    #[serde(default)]
    pub preview: Option<PreviewRecord>,
}

/// The registry under one root directory (`<data_dir>/deploy`).
pub struct Registry {
    root: PathBuf,
    db: Connection,
    store: Store,
    keep_versions: usize,
    /// Apps whose platform file says `deploy.keep_versions`.
    keep_per_app: std::collections::BTreeMap<String, usize>,
    /// The platform's `max_apps`: a deploy creating an app past it is refused.
    max_apps: Option<usize>,
    /// The platform's `max_isolates` and the isolates running: a deploy
    /// starting more than it leaves room for is refused.
    isolates: Option<crate::config::IsolateBudget>,
    limits: Limits,
}

impl Registry {
    /// Where the registry of a data directory lives.
    pub fn root_in(data_dir: &Path) -> PathBuf {
        data_dir.join("deploy")
    }

    /// Whether a registry exists under `root` (nothing was ever deployed
    /// when not).
    pub fn exists(root: &Path) -> bool {
        root.join(DATABASE).is_file()
    }

    /// The registry opened for reading only, with its path and schema
    /// version; `None` when nothing was ever deployed (no file, or no
    /// schema yet).
    fn open_read_only(root: &Path) -> Result<Option<(Connection, PathBuf, i64)>, DeployError> {
        let file = root.join(DATABASE);
        if !file.is_file() {
            return Ok(None);
        }
        let db = Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| DeployError::db(&file, e))?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| DeployError::db(&file, e))?;
        let applied: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| DeployError::db(&file, e))?;
        Ok((applied != 0).then_some((db, file, applied)))
    }

    /// Every version of `app`, newest first, read without opening for
    /// writing (none when nothing was ever deployed): what pinned
    /// versions (`app@1.2` in a vhosts entry) are resolved against.
    pub fn versions_read_only(root: &Path, app: &str) -> Result<Vec<VersionRecord>, DeployError> {
        let Some((db, file, _)) = Self::open_read_only(root)? else {
            return Ok(Vec::new());
        };
        db.prepare(&format!("{SELECT} WHERE app = ?1 ORDER BY id DESC"))
            .and_then(|mut q| q.query_map([app], version_row)?.collect())
            .map_err(|e| DeployError::db(&file, e))
    }

    /// Every app's current version and canary, read without opening for
    /// writing: what the kernel serves, asked for on every pipeline build.
    /// Empty when nothing was ever deployed.
    pub fn served(root: &Path) -> Result<Served, DeployError> {
        let Some((db, file, applied)) = Self::open_read_only(root)? else {
            return Ok(Served::default());
        };
        let current = db
            .prepare(&format!("{SELECT} WHERE current = 1 ORDER BY app"))
            .and_then(|mut q| q.query_map([], version_row)?.collect())
            .map_err(|e| DeployError::db(&file, e))?;
        // A registry written by an older bext may lack the newer tables.
        let canaries = if applied >= 2 {
            canaries(&db, None).map_err(|e| DeployError::db(&file, e))?
        } else {
            Vec::new()
        };
        let previews = if applied >= 3 {
            previews(&db, None).map_err(|e| DeployError::db(&file, e))?
        } else {
            Vec::new()
        };
        let domains = if applied >= 6 {
            domains::domains(&db).map_err(|e| DeployError::db(&file, e))?
        } else {
            Vec::new()
        };
        Ok(Served {
            current,
            canaries,
            previews,
            domains,
        })
    }

    /// Opens (creating and upgrading) the registry under `root`, and
    /// removes what an interrupted deploy left behind.
    pub fn open(root: &Path, keep_versions: usize) -> Result<Registry, DeployError> {
        std::fs::create_dir_all(root).map_err(|e| DeployError::io(root, e))?;
        let file = root.join(DATABASE);
        let db = Connection::open(&file).map_err(|e| DeployError::db(&file, e))?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .and_then(|()| db.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| db.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| db.pragma_update(None, "foreign_keys", "ON"))
            .map_err(|e| DeployError::db(&file, e))?;
        let mut registry = Registry {
            root: root.to_owned(),
            store: Store::open(root)?,
            db,
            keep_versions,
            keep_per_app: Default::default(),
            max_apps: None,
            isolates: None,
            limits: Limits::default(),
        };
        registry.migrate()?;
        let _lock = registry.lock()?;
        registry.recover()?;
        registry.store.empty_trash();
        Ok(registry)
    }

    /// Holds every bundle deployed from now on to `limits` (the deploy
    /// manifest's `max_bundle_bytes` and `max_bundle_entries`; the
    /// defaults until then).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Apps that keep another number of old versions than the registry's
    /// (`[apps.<id>] deploy.keep_versions`), and the platform's `max_apps`
    /// (the apps a deploy may not create beyond).
    pub fn set_app_policies(
        &mut self,
        keep_per_app: std::collections::BTreeMap<String, usize>,
        max_apps: Option<usize>,
    ) {
        self.keep_per_app = keep_per_app;
        self.max_apps = max_apps;
    }

    /// `[platform] max_isolates` and the isolates the table's JS apps run
    /// (see [`crate::config::IsolateBudget`]).
    pub fn set_isolate_budget(&mut self, budget: Option<crate::config::IsolateBudget>) {
        self.isolates = budget;
    }

    /// Refuses a deploy that would start isolates past `max_isolates`: a
    /// preview or a canary of a JS app runs as many as the app, a new JS
    /// app the defaults; a new current version, or a preview or canary
    /// that replaces one, starts none. `js`: the bundle is a JS app.
    fn check_isolates_for(&self, app: &str, options: &DeployOptions<'_>, js: bool) -> Result<(), DeployError> {
        let Some(budget) = &self.isolates else { return Ok(()) };
        let own = match budget.apps.get(app) {
            Some(n) => *n,
            None if js => budget.new_app,
            None => 0,
        };
        let (id, added) = match (options.preview, options.canary) {
            (Some((name, _)), _) => {
                let id = crate::preview_app_id(app, name);
                let added = if budget.apps.contains_key(&id) { 0 } else { own };
                (id, added)
            }
            (None, Some(_)) => {
                let prefix = crate::canary_app_id(app, "");
                let running: bool = self
                    .db
                    .query_row("SELECT EXISTS (SELECT 1 FROM canaries WHERE app = ?1)", [app], |r| {
                        r.get(0)
                    })
                    .map_err(|e| self.db_err(e))?;
                let added = if running { 0 } else { own };
                (format!("{prefix}<version>"), added)
            }
            (None, None) => {
                let added = if budget.apps.contains_key(app) { 0 } else { own };
                (app.to_owned(), added)
            }
        };
        let running: usize = budget.apps.values().sum();
        if added == 0 || running + added <= budget.max {
            return Ok(());
        }
        let each: Vec<String> = (budget.apps.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(id, n)| format!("{id}: {n}"))
            .collect();
        Err(DeployError::Full(format!(
            "cannot start `{id}`: it runs {added} isolates, and the JS apps run {running} of max_isolates = {} ({}): raise `[platform] max_isolates`, remove a preview or canary, or lower an app's `isolate.workers`",
            budget.max,
            each.join(", ")
        )))
    }

    /// Refuses a deploy that would create an app past `max_apps` (the
    /// platform file's apps and those deploys created, previews and
    /// canaries not counted: they are versions of an app).
    fn check_room_for(&self, app: &str) -> Result<(), DeployError> {
        let Some(max) = self.max_apps else { return Ok(()) };
        let known: bool = self
            .db
            .query_row("SELECT EXISTS (SELECT 1 FROM apps WHERE id = ?1)", [app], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        if known {
            return Ok(());
        }
        let count: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM apps", [], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(DeployError::Full(format!(
                "cannot create app `{app}`: the platform has {count} apps and max_apps = {max} (raise `[platform] max_apps`, or `bext apps rm` one)"
            )));
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), DeployError> {
        let file = self.root.join(DATABASE);
        let err = |e| DeployError::db(&file, e);
        let applied: i64 = self
            .db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(DeployError::Db(format!(
                "{}: schema version {applied} was written by a newer bext (this one knows {})",
                file.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = self.db.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::info!(target: "bext::deploy", version = i + 1, "registry schema upgraded");
        }
        Ok(())
    }

    /// One writer at a time across processes (the server and the CLI).
    fn lock(&self) -> Result<File, DeployError> {
        let path = self.root.join("write.lock");
        let file = File::create(&path).map_err(|e| DeployError::io(&path, e))?;
        file.lock().map_err(|e| DeployError::io(&path, e))?;
        Ok(file)
    }

    /// Partial files, and trees the database does not know (a deploy that
    /// died between its rename and its commit).
    fn recover(&self) -> Result<(), DeployError> {
        self.store.recover()?;
        // Uploads unpacked by a server that died before storing them.
        let incoming = self.root.join(INCOMING);
        if incoming.is_dir() {
            self.store.discard(&incoming)?;
        }
        for (app, version, path) in self.store.trees()? {
            let known: bool = self
                .db
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM app_versions WHERE app = ?1 AND version = ?2)",
                    params![app, version],
                    |r| r.get(0),
                )
                .map_err(|e| self.db_err(e))?;
            if !known {
                tracing::info!(target: "bext::deploy", app, version, "removing the files of an unfinished deploy");
                self.store.discard(&path)?;
            }
        }
        self.store.collect()?;
        Ok(())
    }

    fn db_err(&self, e: rusqlite::Error) -> DeployError {
        DeployError::db(&self.root.join(DATABASE), e)
    }

    /// Records the apps of the platform file (apps created by deploys are
    /// kept; a platform app that left the file becomes a deploy app only
    /// if it has versions). The tenants' domains of an app that is gone
    /// are dropped (with a warning): a later app of the same id, made by a
    /// deploy or the platform file, never inherits a customer's name.
    pub fn sync_platform_apps<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> Result<(), DeployError> {
        let _lock = self.lock()?;
        let now = unix_now();
        let file = self.root.join(DATABASE);
        let err = |e| DeployError::db(&file, e);
        let tx = self.db.transaction().map_err(err)?;
        tx.execute("UPDATE apps SET origin = 'deploy' WHERE origin = 'platform'", [])
            .map_err(err)?;
        for id in ids {
            tx.execute(
                "INSERT INTO apps (id, origin, created_at) VALUES (?1, 'platform', ?2)
                 ON CONFLICT (id) DO UPDATE SET origin = 'platform'",
                params![id, now],
            )
            .map_err(err)?;
        }
        tx.execute(
            "DELETE FROM apps WHERE origin = 'deploy' AND NOT EXISTS (SELECT 1 FROM app_versions v WHERE v.app = apps.id)",
            [],
        )
        .map_err(err)?;
        let orphans = domains::domains(&tx)
            .map_err(err)?
            .into_iter()
            .map(|d| (d.domain, d.app))
            .collect::<Vec<_>>();
        let dropped = tx
            .execute("DELETE FROM domains WHERE app NOT IN (SELECT id FROM apps)", [])
            .map_err(err)?;
        if dropped > 0 {
            let known: std::collections::BTreeSet<String> = {
                let mut q = tx.prepare("SELECT id FROM apps").map_err(err)?;
                q.query_map([], |r| r.get(0))
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            };
            for (domain, app) in orphans.iter().filter(|(_, app)| !known.contains(app)) {
                tracing::warn!(target: "bext::deploy", app = %app, domain = %domain, "tenant domain dropped: its app is gone");
            }
        }
        tx.commit().map_err(err)
    }

    /// Stores the files under `from` as a new version of `app` and makes
    /// it current. `version` defaults to `v<N>`, N counting the deploys.
    pub fn deploy(
        &mut self,
        app: &str,
        from: &Path,
        options: &DeployOptions<'_>,
        progress: &mut dyn FnMut(&Path, u64),
    ) -> Result<Deployed, DeployError> {
        let _lock = self.lock()?;
        self.deploy_locked(app, from, options, progress)
    }

    /// [`Registry::deploy`] of a tar archive (an upload to the admin API),
    /// unpacked under the registry's root first: regular files and
    /// directories only, every name inside the bundle, within the limits
    /// ([`bundle`]). A refused archive leaves nothing behind.
    pub fn deploy_tar(&mut self, app: &str, tar: &[u8], options: &DeployOptions<'_>) -> Result<Deployed, DeployError> {
        check_deploy(app, options)?;
        let _lock = self.lock()?;
        let incoming = self.root.join(INCOMING);
        std::fs::create_dir_all(&incoming).map_err(|e| DeployError::io(&incoming, e))?;
        let unpacked = tempfile::Builder::new()
            .prefix("upload-")
            .tempdir_in(&incoming)
            .map_err(|e| DeployError::io(&incoming, e))?;
        // Moved into the trash whatever happens, and removed there: a
        // `pre_build` hook may have nested it deeper than a recursive
        // removal (the temporary directory's own) could take.
        let _discard = Discard {
            dir: unpacked.path().to_owned(),
            store: self.store.clone(),
        };
        bundle::unpack(tar, unpacked.path(), self.limits)?;
        self.deploy_locked(app, unpacked.path(), options, &mut |_, _| {})
    }

    fn deploy_locked(
        &mut self,
        app: &str,
        from: &Path,
        options: &DeployOptions<'_>,
        progress: &mut dyn FnMut(&Path, u64),
    ) -> Result<Deployed, DeployError> {
        check_deploy(app, options)?;
        self.check_room_for(app)?;
        if !from.is_dir() {
            return Err(DeployError::Bundle(format!("{}: not a directory", from.display())));
        }
        if options.canary.is_some() && self.current(app)?.is_none() {
            return Err(DeployError::NotFound(format!(
                "{app} has no current version for a canary to run beside: deploy it without --canary first"
            )));
        }
        let version = match options.version {
            Some(v) => v.to_owned(),
            None => self.next_version(app)?,
        };
        if self.version(app, &version)?.is_some() {
            return Err(DeployError::Exists(format!("{app} {version}")));
        }
        let mut pre_build = None;
        if let Some(command) = options.hooks.and_then(|h| h.pre_build.as_deref()) {
            let run = hooks::run(
                "pre_build",
                command,
                from,
                &[("BEXT_APP", app), ("BEXT_VERSION", &version)],
            );
            self.db
                .execute(
                    "INSERT INTO apps (id, origin, created_at) VALUES (?1, 'deploy', ?2) ON CONFLICT (id) DO NOTHING",
                    params![app, unix_now()],
                )
                .map_err(|e| self.db_err(e))?;
            self.record_hook(app, &version, &run)?;
            if !run.succeeded() {
                return Err(DeployError::Hook(run));
            }
            pre_build = Some(run);
        }
        let (path, stored) = self.store.put(app, &version, from, self.limits, progress)?;
        // What the bundle's own configuration names stays inside it; and
        // the isolates it would start fit in max_isolates.
        let checked = bundle::check_config(&path).and_then(|js| self.check_isolates_for(app, options, js));
        if let Err(e) = checked {
            let _ = self.store.remove_tree(&path);
            let _ = self.store.collect();
            return Err(e);
        }
        let routes = routes_of(&path);
        let replaced = match self.commit(app, &version, &path, &routes, &stored, options) {
            Ok(replaced) => replaced,
            Err(e) => {
                let _ = self.store.remove_tree(&path);
                return Err(e);
            }
        };
        let mut pruned = self.prune(app)?;
        if let Some(replaced) = replaced {
            pruned.extend(self.drop_version_if_unused(app, &replaced)?);
        }
        let version = self.version(app, &version)?.expect("committed above");
        let preview = match options.preview {
            Some((name, _)) => self.previews(Some(app))?.into_iter().find(|p| p.name == name),
            None => None,
        };
        tracing::info!(target: "bext::deploy", app, version = %version.version, files = stored.files, bytes = stored.bytes, new_bytes = stored.new_bytes, "deployed");
        Ok(Deployed {
            version,
            new_bytes: stored.new_bytes,
            pruned,
            pre_build,
            post_deploy: None,
            preview,
        })
    }

    fn commit(
        &mut self,
        app: &str,
        version: &str,
        path: &Path,
        routes: &[String],
        stored: &Stored,
        options: &DeployOptions<'_>,
    ) -> Result<Option<String>, DeployError> {
        let (by, canary) = (options.by, options.canary);
        let mut replaced = None;
        let file = self.root.join(DATABASE);
        let err = |e| DeployError::db(&file, e);
        let tx = self.db.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO apps (id, origin, created_at, deploys) VALUES (?1, 'deploy', ?2, 1)
             ON CONFLICT (id) DO UPDATE SET deploys = deploys + 1",
            params![app, unix_now()],
        )
        .map_err(err)?;
        let what = match (canary, options.preview) {
            (_, Some((name, ttl))) => {
                let now = unix_now();
                replaced = tx
                    .query_row(
                        "SELECT version FROM previews WHERE app = ?1 AND name = ?2",
                        params![app, name],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                tx.execute(
                    "INSERT INTO previews (app, name, version, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app, name) DO UPDATE SET version = ?3, created_at = ?4, expires_at = ?5",
                    params![app, name, version, now, now.saturating_add(ttl as i64)],
                )
                .map_err(err)?;
                format!("deployed {version} by {by} as preview {name}")
            }
            (Some(plan), None) => {
                tx.execute(
                    "INSERT INTO canaries (app, version, share, started_at, auto_promote_after, max_error_rate)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (app) DO UPDATE SET version = ?2, share = ?3, started_at = ?4,
                         auto_promote_after = ?5, max_error_rate = ?6",
                    params![
                        app,
                        version,
                        plan.share,
                        unix_now(),
                        plan.auto_promote_after.map(|s| s as i64),
                        plan.max_error_rate
                    ],
                )
                .map_err(err)?;
                format!(
                    "deployed {version} by {by} as a canary for {}% of new visitors",
                    plan.share
                )
            }
            (None, None) => {
                tx.execute(
                    "UPDATE app_versions SET current = 0 WHERE app = ?1 AND current = 1",
                    [app],
                )
                .map_err(err)?;
                // A plain deploy replaces a running canary.
                tx.execute("DELETE FROM canaries WHERE app = ?1", [app]).map_err(err)?;
                push_current(&tx, app, version, "deploy", by).map_err(err)?;
                format!("deployed {version} by {by}")
            }
        };
        let current = i64::from(canary.is_none() && options.preview.is_none());
        tx.execute(
            "INSERT INTO app_versions (app, version, path, routes, files, bytes, deployed_at, deployed_by, current)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                app,
                version,
                path.to_string_lossy(),
                serde_json::to_string(routes).unwrap_or_else(|_| "[]".into()),
                stored.files as i64,
                stored.bytes as i64,
                unix_now(),
                by,
                current
            ],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO events (app, at, what) VALUES (?1, ?2, ?3)",
            params![app, unix_now(), what],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(replaced)
    }

    /// Runs the app's `post_deploy` hook for its current `version` (once
    /// that version serves) and keeps its output.
    pub fn post_deploy(
        &self,
        app: &str,
        version: &VersionRecord,
        hooks: &DeployHooks,
    ) -> Result<Option<HookRun>, DeployError> {
        let Some(command) = hooks.post_deploy.as_deref() else {
            return Ok(None);
        };
        let dir = version.path.to_string_lossy();
        let env = [
            ("BEXT_APP", app),
            ("BEXT_VERSION", version.version.as_str()),
            ("BEXT_VERSION_DIR", &dir),
        ];
        let run = hooks::run("post_deploy", command, &version.path, &env);
        self.record_hook(app, &version.version, &run)?;
        if !run.succeeded() {
            tracing::warn!(target: "bext::deploy", app, version = %version.version, exit = ?run.exit_code, "post_deploy failed");
        }
        Ok(Some(run))
    }

    fn record_hook(&self, app: &str, version: &str, run: &HookRun) -> Result<(), DeployError> {
        self.db
            .execute(
                "INSERT INTO hook_runs (app, version, hook, command, exit_code, output, millis, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    app,
                    version,
                    run.hook,
                    run.command,
                    run.exit_code,
                    run.output,
                    run.millis as i64,
                    unix_now()
                ],
            )
            .map_err(|e| self.db_err(e))?;
        let what = match run.exit_code {
            Some(code) => format!("{} for {version} exited with {code} after {} ms", run.hook, run.millis),
            None => format!("{} for {version} was killed or did not start", run.hook),
        };
        self.log(app, &what)
    }

    /// An app's newest `limit` hook runs, newest first.
    pub fn hook_runs(&self, app: &str, limit: usize) -> Result<Vec<HookRecord>, DeployError> {
        let mut q = self
            .db
            .prepare(
                "SELECT version, at, hook, command, exit_code, output, millis FROM hook_runs
                 WHERE app = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.db_err(e))?;
        q.query_map(params![app, limit as i64], |r| {
            Ok(HookRecord {
                version: r.get(0)?,
                at: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                run: HookRun {
                    hook: r.get(2)?,
                    command: r.get(3)?,
                    exit_code: r.get(4)?,
                    output: r.get(5)?,
                    millis: r.get::<_, i64>(6)?.try_into().unwrap_or(0),
                },
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.db_err(e))
    }

    /// Adds a line to an app's history (and to the log).
    pub fn log(&self, app: &str, what: &str) -> Result<(), DeployError> {
        tracing::info!(target: "bext::deploy", app, "{what}");
        self.db
            .execute(
                "INSERT INTO events (app, at, what) VALUES (?1, ?2, ?3)",
                params![app, unix_now(), what],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// An app's newest `limit` events, newest first.
    pub fn events(&self, app: &str, limit: usize) -> Result<Vec<Event>, DeployError> {
        let mut q = self
            .db
            .prepare("SELECT at, what FROM events WHERE app = ?1 ORDER BY id DESC LIMIT ?2")
            .map_err(|e| self.db_err(e))?;
        q.query_map(params![app, limit as i64], |r| {
            Ok(Event {
                at: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
                what: r.get(1)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.db_err(e))
    }

    /// Previews of one app, or of all, oldest first.
    pub fn previews(&self, app: Option<&str>) -> Result<Vec<PreviewRecord>, DeployError> {
        previews(&self.db, app).map_err(|e| self.db_err(e))
    }

    /// Removes the previews that expired by `now` (Unix time), with their
    /// versions' files; returns them.
    pub fn prune_previews(&mut self, now: u64) -> Result<Vec<PreviewRecord>, DeployError> {
        let _lock = self.lock()?;
        let expired: Vec<PreviewRecord> = self
            .previews(None)?
            .into_iter()
            .filter(|p| p.expires_at <= now)
            .collect();
        for p in &expired {
            self.db
                .execute(
                    "DELETE FROM previews WHERE app = ?1 AND name = ?2",
                    params![p.app, p.name],
                )
                .map_err(|e| self.db_err(e))?;
            self.drop_version_if_unused(&p.app, &p.version)?;
            self.log(
                &p.app,
                &format!("preview {} ({}) expired and was removed", p.name, p.version),
            )?;
        }
        Ok(expired)
    }

    /// Deletes `version` of `app` with its files unless it is current, a
    /// canary or a preview; returns it if it was deleted.
    fn drop_version_if_unused(&mut self, app: &str, version: &str) -> Result<Option<String>, DeployError> {
        let Some(v) = self.version(app, version)? else {
            return Ok(None);
        };
        let used: bool = self
            .db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM canaries WHERE app = ?1 AND version = ?2)
                     OR EXISTS (SELECT 1 FROM previews WHERE app = ?1 AND version = ?2)",
                params![app, version],
                |r| r.get(0),
            )
            .map_err(|e| self.db_err(e))?;
        if v.current || used {
            return Ok(None);
        }
        self.db
            .execute(
                "DELETE FROM app_versions WHERE app = ?1 AND version = ?2",
                params![app, version],
            )
            .map_err(|e| self.db_err(e))?;
        self.store.remove_tree(&v.path)?;
        self.store.collect()?;
        Ok(Some(version.to_owned()))
    }

    /// Every running canary.
    pub fn canaries(&self) -> Result<Vec<CanaryRecord>, DeployError> {
        canaries(&self.db, None).map_err(|e| self.db_err(e))
    }

    /// The canary of `app`, if one runs.
    pub fn canary(&self, app: &str) -> Result<Option<CanaryRecord>, DeployError> {
        Ok(canaries(&self.db, Some(app)).map_err(|e| self.db_err(e))?.pop())
    }

    /// Gives the canary `to` percent of new visitors, or (with `None`, or
    /// 100) makes it the current version (`by` whom, for the history).
    pub fn promote(&mut self, app: &str, to: Option<u8>, by: &str) -> Result<AppRecord, DeployError> {
        let _lock = self.lock()?;
        let canary = self
            .canary(app)?
            .ok_or_else(|| DeployError::NotFound(format!("{app} has no canary to promote")))?;
        match to {
            Some(share) if share < 100 => {
                if share == 0 {
                    return Err(DeployError::Bundle(
                        "promote --to 0%: use rollback to stop a canary".into(),
                    ));
                }
                self.db
                    .execute("UPDATE canaries SET share = ?2 WHERE app = ?1", params![app, share])
                    .map_err(|e| self.db_err(e))?;
                self.log(
                    app,
                    &format!("canary {} now gets {share}% of new visitors", canary.version),
                )?;
            }
            _ => {
                self.switch(app, &canary.version, Some(("promote", by)), &[])?;
                self.log(app, &format!("promoted canary {} to current", canary.version))?;
                self.prune(app)?;
            }
        }
        self.app(app)
    }

    /// Keeps the current version and `keep_versions` others: the one a
    /// rollback makes current first, then the newest (canaries and
    /// previews are never removed here).
    fn prune(&mut self, app: &str) -> Result<Vec<String>, DeployError> {
        let keep_versions = self.keep_per_app.get(app).copied().unwrap_or(self.keep_versions);
        let target = match keep_versions {
            0 => None,
            _ => self.rollback_target(app)?,
        };
        let others: Vec<(String, String)> = {
            let mut q = self
                .db
                .prepare(
                    "SELECT version, path FROM app_versions WHERE app = ?1 AND current = 0
                     AND version NOT IN (SELECT version FROM canaries WHERE app = ?1)
                     AND version NOT IN (SELECT version FROM previews WHERE app = ?1)
                     ORDER BY id DESC",
                )
                .map_err(|e| self.db_err(e))?;
            q.query_map([app], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| self.db_err(e))?
        };
        let kept_besides = keep_versions - usize::from(target.is_some());
        let old: Vec<(String, String)> = others
            .into_iter()
            .filter(|(version, _)| Some(version) != target.as_ref())
            .skip(kept_besides)
            .collect();
        for (version, path) in &old {
            self.db
                .execute(
                    "DELETE FROM app_versions WHERE app = ?1 AND version = ?2",
                    params![app, version],
                )
                .map_err(|e| self.db_err(e))?;
            self.store.remove_tree(Path::new(path))?;
        }
        if !old.is_empty() {
            self.store.collect()?;
        }
        Ok(old.into_iter().map(|(v, _)| v).collect())
    }

    /// Stops a running canary (everyone is back on the current version);
    /// with none, makes the version that was current before the current
    /// one current again (`by` whom, for the record): the history of
    /// current versions is popped, so a second rollback goes further back,
    /// never to a version already rolled back from.
    pub fn rollback(&mut self, app: &str, by: &str) -> Result<VersionRecord, DeployError> {
        let _lock = self.lock()?;
        let current = self
            .current(app)?
            .ok_or_else(|| DeployError::NotFound(format!("{app} has no deployed version")))?;
        if let Some(canary) = self.canary(app)? {
            self.db
                .execute("DELETE FROM canaries WHERE app = ?1", [app])
                .map_err(|e| self.db_err(e))?;
            self.log(
                app,
                &format!("canary {} rolled back: everyone on {}", canary.version, current.version),
            )?;
            return Ok(current);
        }
        let (popped, previous) = self.rollback_plan(app, &current.version)?;
        let previous = previous.ok_or_else(|| {
            DeployError::NotFound(format!(
                "{app} has no version to roll back to: nothing kept was current before {}",
                current.version
            ))
        })?;
        self.switch(app, &previous, None, &popped)?;
        self.log(
            app,
            &format!("rolled back from {} to {previous} by {by}", current.version),
        )?;
        Ok(self.version(app, &previous)?.expect("switched to it"))
    }

    /// The version a rollback makes current when no canary runs, if any.
    pub fn rollback_target(&self, app: &str) -> Result<Option<String>, DeployError> {
        match self.current(app)? {
            Some(current) => Ok(self.rollback_plan(app, &current.version)?.1),
            None => Ok(None),
        }
    }

    /// What a rollback from `current` does to the history: the entries it
    /// marks rolled back (the current one, and any whose version was
    /// removed since), and the version it makes current: the newest entry
    /// beneath them whose version is still kept.
    fn rollback_plan(&self, app: &str, current: &str) -> Result<(Vec<i64>, Option<String>), DeployError> {
        let stack: Vec<(i64, String, bool)> = {
            let mut q = self
                .db
                .prepare(
                    "SELECT h.id, h.version,
                         EXISTS (SELECT 1 FROM app_versions v WHERE v.app = h.app AND v.version = h.version)
                     FROM current_history h WHERE h.app = ?1 AND h.rolled_back_at IS NULL ORDER BY h.id DESC",
                )
                .map_err(|e| self.db_err(e))?;
            q.query_map([app], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(|e| self.db_err(e))?
        };
        let mut popped = Vec::new();
        for (id, version, kept) in stack {
            if kept && version != current {
                return Ok((popped, Some(version)));
            }
            popped.push(id);
        }
        Ok((popped, None))
    }

    /// Makes `version` current in one transaction: pushes it on the
    /// history (`push`: how, by whom) or marks the `popped` entries rolled
    /// back.
    fn switch(
        &mut self,
        app: &str,
        version: &str,
        push: Option<(&str, &str)>,
        popped: &[i64],
    ) -> Result<(), DeployError> {
        let file = self.root.join(DATABASE);
        let err = |e| DeployError::db(&file, e);
        let tx = self.db.transaction().map_err(err)?;
        tx.execute(
            "UPDATE app_versions SET current = 0 WHERE app = ?1 AND current = 1",
            [app],
        )
        .map_err(err)?;
        tx.execute(
            "UPDATE app_versions SET current = 1 WHERE app = ?1 AND version = ?2",
            params![app, version],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM canaries WHERE app = ?1 AND version = ?2",
            params![app, version],
        )
        .map_err(err)?;
        if let Some((how, by)) = push {
            push_current(&tx, app, version, how, by).map_err(err)?;
        }
        for id in popped {
            tx.execute(
                "UPDATE current_history SET rolled_back_at = ?2 WHERE id = ?1",
                params![id, unix_now()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Forgets an app and removes its versions' files. An app of the
    /// platform file stays declared there, and is served from its
    /// `source` again, on its tenants' domains too; an app a deploy
    /// created is gone, with its tenants' domains.
    pub fn remove(&mut self, app: &str) -> Result<(), DeployError> {
        let _lock = self.lock()?;
        let versions = self.versions(app)?;
        self.db
            .execute(
                "DELETE FROM domains WHERE app = ?1 AND EXISTS (SELECT 1 FROM apps WHERE id = ?1 AND origin = 'deploy')",
                [app],
            )
            .map_err(|e| self.db_err(e))?;
        let gone = self
            .db
            .execute("DELETE FROM apps WHERE id = ?1", [app])
            .map_err(|e| self.db_err(e))?;
        if gone == 0 {
            return Err(DeployError::NotFound(format!("no app {app}")));
        }
        for v in versions {
            self.store.remove_tree(&v.path)?;
        }
        self.store.collect()?;
        Ok(())
    }

    /// Every app, by id.
    pub fn apps(&self) -> Result<Vec<AppRecord>, DeployError> {
        let ids: Vec<(String, String)> = {
            let mut q = self
                .db
                .prepare("SELECT id, origin FROM apps ORDER BY id")
                .map_err(|e| self.db_err(e))?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| self.db_err(e))?
        };
        ids.into_iter().map(|(id, origin)| self.record(id, origin)).collect()
    }

    /// One app.
    pub fn app(&self, id: &str) -> Result<AppRecord, DeployError> {
        let origin: String = self
            .db
            .query_row("SELECT origin FROM apps WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| DeployError::NotFound(format!("no app {id}")))?;
        self.record(id.to_owned(), origin)
    }

    fn record(&self, id: String, origin: String) -> Result<AppRecord, DeployError> {
        let versions: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM app_versions WHERE app = ?1", [&id], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        Ok(AppRecord {
            current: self.current(&id)?,
            rollback_to: self.rollback_target(&id)?,
            versions: versions.try_into().unwrap_or(0),
            canary: self.canary(&id)?,
            previews: self.previews(Some(&id))?,
            hook_runs: self.hook_runs(&id, 5)?,
            events: self.events(&id, 10)?,
            id,
            origin,
        })
    }

    /// An app's versions, newest first.
    pub fn versions(&self, app: &str) -> Result<Vec<VersionRecord>, DeployError> {
        self.select("WHERE app = ?1 ORDER BY id DESC", app)
    }

    /// An app's current version.
    pub fn current(&self, app: &str) -> Result<Option<VersionRecord>, DeployError> {
        Ok(self.select("WHERE app = ?1 AND current = 1", app)?.pop())
    }

    fn version(&self, app: &str, version: &str) -> Result<Option<VersionRecord>, DeployError> {
        Ok(self.versions(app)?.into_iter().find(|v| v.version == version))
    }

    fn select(&self, tail: &str, app: &str) -> Result<Vec<VersionRecord>, DeployError> {
        let mut q = self
            .db
            .prepare(&format!("{SELECT} {tail}"))
            .map_err(|e| self.db_err(e))?;
        q.query_map([app], version_row)
            .and_then(Iterator::collect)
            .map_err(|e| self.db_err(e))
    }

    /// `v<N>`: N counts the app's deploys, so a name is never reused,
    /// even after its version was pruned.
    fn next_version(&self, app: &str) -> Result<String, DeployError> {
        let deploys: i64 = self
            .db
            .query_row("SELECT deploys FROM apps WHERE id = ?1", [app], |r| r.get(0))
            .optional()
            .map_err(|e| self.db_err(e))?
            .unwrap_or(0);
        let mut n = deploys + 1;
        while self.version(app, &format!("v{n}"))?.is_some() {
            n += 1;
        }
        Ok(format!("v{n}"))
    }
}

/// What the kernel serves: current versions and canaries.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// Each deployed app's current version.
    pub current: Vec<VersionRecord>,
    /// Running canaries.
    pub canaries: Vec<CanaryRecord>,
    /// Previews, expired or not (the plugin removes expired ones).
    pub previews: Vec<PreviewRecord>,
    /// Tenants' own domains.
    pub domains: Vec<DomainRecord>,
}

/// Records that `version` became the current version of `app` (`how`:
/// `deploy` or `promote`).
fn push_current(tx: &rusqlite::Transaction<'_>, app: &str, version: &str, how: &str, by: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO current_history (app, version, at, how, by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![app, version, unix_now(), how, by],
    )
    .map(drop)
}

/// The previews of one app, or of all.
fn previews(db: &Connection, app: Option<&str>) -> rusqlite::Result<Vec<PreviewRecord>> {
    let mut q = db.prepare(
        "SELECT p.app, p.name, p.version, v.path, p.created_at, p.expires_at
         FROM previews p JOIN app_versions v ON v.app = p.app AND v.version = p.version
         WHERE ?1 IS NULL OR p.app = ?1 ORDER BY p.created_at, p.app, p.name",
    )?;
    q.query_map([app], |r| {
        Ok(PreviewRecord {
            app: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            path: PathBuf::from(r.get::<_, String>(3)?),
            created_at: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
            expires_at: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
        })
    })?
    .collect()
}

/// The canaries of one app, or of all.
fn canaries(db: &Connection, app: Option<&str>) -> rusqlite::Result<Vec<CanaryRecord>> {
    let mut q = db.prepare(
        "SELECT c.app, c.version, v.path, c.share, c.started_at, c.auto_promote_after, c.max_error_rate
         FROM canaries c JOIN app_versions v ON v.app = c.app AND v.version = c.version
         WHERE ?1 IS NULL OR c.app = ?1 ORDER BY c.app",
    )?;
    q.query_map([app], |r| {
        Ok(CanaryRecord {
            app: r.get(0)?,
            version: r.get(1)?,
            path: PathBuf::from(r.get::<_, String>(2)?),
            share: r.get(3)?,
            started_at: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
            auto_promote_after: r.get::<_, Option<i64>>(5)?.map(|s| s.try_into().unwrap_or(0)),
            max_error_rate: r.get(6)?,
        })
    })?
    .collect()
}

const SELECT: &str =
    "SELECT app, version, path, routes, files, bytes, deployed_at, deployed_by, current FROM app_versions";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let routes: String = r.get(3)?;
    Ok(VersionRecord {
        app: r.get(0)?,
        version: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        routes: serde_json::from_str(&routes).unwrap_or_default(),
        files: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
        bytes: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
        deployed_at: r.get::<_, i64>(6)?.try_into().unwrap_or(0),
        deployed_by: r.get(7)?,
        current: r.get::<_, i64>(8)? == 1,
    })
}

/// What a name the registry turns into a directory or a host may be.
struct NameRule {
    what: &'static str,
    max: usize,
    /// Every byte.
    byte: fn(u8) -> bool,
    /// The first byte (and, with `ends`, the last).
    edge: fn(u8) -> bool,
    ends: bool,
    says: &'static str,
}

/// Version names become directory names.
const VERSION_NAME: NameRule = NameRule {
    what: "version",
    max: 64,
    byte: |b| b.is_ascii_alphanumeric() || b"._-".contains(&b),
    edge: |b| b != b'.',
    ends: false,
    says: "use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)",
};

/// App ids as the platform file has them.
const APP_ID: NameRule = NameRule {
    what: "app id",
    max: 64,
    byte: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-',
    edge: |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
    ends: false,
    says: "use [a-z0-9][a-z0-9_-]*, at most 64 characters",
};

/// Preview names become host names: DNS labels.
const PREVIEW_NAME: NameRule = NameRule {
    what: "preview name",
    max: 63,
    byte: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
    edge: |b| b != b'-',
    ends: true,
    says: "use 1 to 63 of a-z 0-9 - (it becomes a host name)",
};

fn check(rule: &NameRule, name: &str) -> Result<(), DeployError> {
    let bytes = name.as_bytes();
    let ok = (1..=rule.max).contains(&bytes.len())
        && bytes.iter().all(|&b| (rule.byte)(b))
        && (rule.edge)(bytes[0])
        && (!rule.ends || (rule.edge)(bytes[bytes.len() - 1]));
    if ok {
        Ok(())
    } else {
        Err(DeployError::Bundle(format!("{} {name:?}: {}", rule.what, rule.says)))
    }
}

/// Moves a directory into the store's trash when dropped, and empties
/// the trash on a thread of its own.
struct Discard {
    dir: PathBuf,
    store: Store,
}

impl Drop for Discard {
    fn drop(&mut self) {
        if let Err(e) = self.store.discard(&self.dir) {
            tracing::warn!(target: "bext::deploy", error = %e, "cannot move an upload's files aside");
        }
        self.store.empty_trash();
    }
}

/// URL paths of the HTML pages of a tree (`/` for a top-level index.html).
fn routes_of(tree: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "html") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(match rel.strip_suffix("index.html") {
                    Some(dir) => format!("/{dir}"),
                    None => format!("/{rel}"),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, tree, &mut out);
    out.sort();
    out
}

/// [`crate::unix_now`] as SQLite stores it.
fn unix_now() -> i64 {
    crate::unix_now().try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(version: Option<&str>) -> DeployOptions<'_> {
        DeployOptions {
            version,
            by: "tester",
            canary: None,
            preview: None,
            hooks: None,
        }
    }

    fn bundle(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    #[test]
    fn deploy_rollback_prune_and_reopen() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 1).unwrap();
        r.sync_platform_apps(["blog"]).unwrap();
        let v1 = bundle(&[("index.html", "one"), ("posts/a.html", "a")]);
        let d = r.deploy("blog", v1.path(), &opts(None), &mut |_, _| {}).unwrap();
        assert_eq!(d.version.version, "v1");
        assert_eq!(d.version.routes, ["/", "/posts/a.html"]);
        let v2 = bundle(&[("index.html", "two"), ("posts/a.html", "a")]);
        let d = r.deploy("blog", v2.path(), &opts(None), &mut |_, _| {}).unwrap();
        assert_eq!(
            (d.version.version.as_str(), d.new_bytes),
            ("v2", 3),
            "posts/a.html was stored already"
        );
        assert_eq!(r.rollback("blog", "t").unwrap().version, "v1");
        assert!(r.rollback("blog", "t").is_err(), "nothing was current before v1");
        let v3 = bundle(&[("index.html", "three")]);
        let d = r
            .deploy("blog", v3.path(), &opts(Some("2026-12-02")), &mut |_, _| {})
            .unwrap();
        // keep_versions = 1: the new one current, v1 (what a rollback
        // restores) kept, v2 (rolled back from) pruned.
        assert_eq!(d.pruned, ["v2"]);
        assert!(
            r.deploy("blog", v3.path(), &opts(Some("2026-12-02")), &mut |_, _| {})
                .is_err()
        );
        drop(r);
        let r = Registry::open(root.path(), 1).unwrap();
        let app = r.app("blog").unwrap();
        assert_eq!(app.origin, "platform");
        assert_eq!(app.current.as_ref().unwrap().version, "2026-12-02");
        let names: Vec<_> = r.versions("blog").unwrap().into_iter().map(|v| v.version).collect();
        assert_eq!(names, ["2026-12-02", "v1"]);
        assert_eq!(app.rollback_to.as_deref(), Some("v1"));
        assert_eq!(
            std::fs::read_to_string(r.current("blog").unwrap().unwrap().path.join("index.html")).unwrap(),
            "three"
        );
    }

    #[test]
    fn names_that_could_leave_the_store_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        let b = bundle(&[("index.html", "x")]);
        for bad in ["../x", ".hidden", "a/b", ""] {
            assert!(r.deploy(bad, b.path(), &opts(None), &mut |_, _| {}).is_err(), "{bad}");
            assert!(
                r.deploy("ok", b.path(), &opts(Some(bad)), &mut |_, _| {}).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_tree_without_its_commit_is_removed_on_open() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        let b = bundle(&[("index.html", "x")]);
        r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        // As if a deploy died after renaming its tree, before its commit.
        let orphan = r
            .store
            .put("site", "v2", b.path(), Limits::default(), &mut |_, _| {})
            .unwrap()
            .0;
        drop(r);
        let r = Registry::open(root.path(), 3).unwrap();
        assert!(!orphan.exists());
        assert_eq!(r.current("site").unwrap().unwrap().version, "v1");
    }

    #[test]
    fn canaries_are_promoted_rolled_back_and_never_pruned() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 0).unwrap();
        let b = bundle(&[("index.html", "x")]);
        let canary = DeployOptions {
            version: None,
            by: "t",
            canary: Some(CanaryPlan {
                share: 20,
                ..CanaryPlan::default()
            }),
            preview: None,
            hooks: None,
        };
        assert!(
            r.deploy("site", b.path(), &canary, &mut |_, _| {}).is_err(),
            "no current version yet"
        );
        r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        let d = r.deploy("site", b.path(), &canary, &mut |_, _| {}).unwrap();
        assert!(!d.version.current);
        assert_eq!(r.current("site").unwrap().unwrap().version, "v1");
        assert_eq!(r.canary("site").unwrap().unwrap().share, 20);
        // keep_versions = 0 prunes neither the current version nor the canary.
        assert_eq!(r.versions("site").unwrap().len(), 2);
        assert_eq!(r.promote("site", Some(60), "t").unwrap().canary.unwrap().share, 60);
        assert_eq!(r.rollback("site", "t").unwrap().version, "v1");
        assert!(r.canary("site").unwrap().is_none());
        r.deploy("site", b.path(), &canary, &mut |_, _| {}).unwrap();
        let app = r.promote("site", None, "t").unwrap();
        assert_eq!(app.current.unwrap().version, "v3");
        assert!(app.canary.is_none());
        assert_eq!(
            r.versions("site").unwrap().len(),
            1,
            "keep_versions = 0 after the promotion"
        );
        let events: Vec<_> = app.events.into_iter().map(|e| e.what).collect();
        assert_eq!(events[0], "promoted canary v3 to current");
        assert!(
            events.contains(&"canary v2 rolled back: everyone on v1".to_owned()),
            "{events:?}"
        );
    }

    /// Deploy v2, roll back (v1 live), deploy v3, roll back: v1 is live
    /// again, not v2, which was rolled back from once already.
    #[test]
    fn rollback_restores_what_was_current_before() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 5).unwrap();
        let b = bundle(&[("index.html", "x")]);
        let deploy = |r: &mut Registry| r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        let target = |r: &Registry| r.app("site").unwrap().rollback_to;
        deploy(&mut r);
        assert_eq!(target(&r), None);
        deploy(&mut r);
        assert_eq!(target(&r).as_deref(), Some("v1"));
        assert_eq!(r.rollback("site", "t").unwrap().version, "v1");
        assert_eq!(target(&r), None, "v1 was the first current version");
        assert_eq!(deploy(&mut r).version.version, "v3");
        assert_eq!(target(&r).as_deref(), Some("v1"));
        assert_eq!(r.rollback("site", "alice (cli)").unwrap().version, "v1");
        assert!(r.rollback("site", "t").is_err());

        // A promotion is a change of the current version too.
        deploy(&mut r);
        let canary = DeployOptions {
            canary: Some(CanaryPlan {
                share: 10,
                ..CanaryPlan::default()
            }),
            ..opts(None)
        };
        r.deploy("site", b.path(), &canary, &mut |_, _| {}).unwrap();
        assert_eq!(target(&r).as_deref(), Some("v1"), "a canary is not current");
        r.promote("site", None, "t").unwrap();
        assert_eq!(target(&r).as_deref(), Some("v4"));
        assert_eq!(r.rollback("site", "t").unwrap().version, "v4");
        assert_eq!(r.rollback("site", "t").unwrap().version, "v1");
        let events: Vec<_> = r.events("site", 20).unwrap().into_iter().map(|e| e.what).collect();
        assert!(
            events.contains(&"rolled back from v3 to v1 by alice (cli)".to_owned()),
            "{events:?}"
        );
    }

    /// `keep_versions` keeps the version a rollback restores first; a
    /// rollback skips what was removed anyway.
    #[test]
    fn pruning_keeps_the_rollback_target() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 1).unwrap();
        let b = bundle(&[("index.html", "x")]);
        for _ in 0..2 {
            r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        }
        r.rollback("site", "t").unwrap();
        // v3 current, v1 what a rollback restores: v2, though newer, goes.
        let d = r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        assert_eq!(d.pruned, ["v2"]);
        let d = r.deploy("site", b.path(), &opts(None), &mut |_, _| {}).unwrap();
        assert_eq!(d.pruned, ["v1"]);
        assert_eq!(r.rollback("site", "t").unwrap().version, "v3");
        let err = r.rollback("site", "t").unwrap_err().to_string();
        assert!(err.contains("nothing kept was current before v3"), "{err}");
    }

    /// A registry written with the schema before the history (4
    /// migrations) is upgraded in place: nothing stored is lost, and the
    /// history holds what a rollback went back to until then, less the
    /// canaries never promoted and the previews.
    #[test]
    fn the_history_is_seeded_from_a_registry_of_the_previous_schema() {
        let root = tempfile::tempdir().unwrap();
        {
            let db = Connection::open(root.path().join(DATABASE)).unwrap();
            for sql in &MIGRATIONS[..4] {
                db.execute_batch(sql).unwrap();
            }
            db.pragma_update(None, "user_version", 4).unwrap();
            db.execute_batch(
                "INSERT INTO apps (id, origin, created_at, deploys) VALUES
                    ('blog', 'platform', 1, 6), ('site', 'deploy', 1, 1), ('blog~pr-7', 'platform', 1, 0);
                 INSERT INTO app_versions (app, version, path, routes, files, bytes, deployed_at, deployed_by, current) VALUES
                    ('blog', 'v1', '/x/v1', '[]', 1, 10, 100, 'alice', 0),
                    ('blog', 'v2', '/x/v2', '[]', 1, 10, 200, 'alice', 0),
                    ('blog', 'v3', '/x/v3', '[]', 1, 10, 300, 'bob', 0),
                    ('blog', 'v4', '/x/v4', '[\"/\"]', 1, 10, 400, 'bob', 1),
                    ('blog', 'v5', '/x/v5', '[]', 1, 10, 500, 'bob', 0),
                    ('blog', 'v6', '/x/v6', '[]', 1, 10, 600, 'bob', 0),
                    ('site', 'v1', '/y/v1', '[]', 1, 10, 100, 'cli', 1);
                 INSERT INTO previews (app, name, version, created_at, expires_at) VALUES ('blog', 'pr-7', 'v5', 500, 99999999999);
                 INSERT INTO events (app, at, what) VALUES
                    ('blog', 100, 'deployed v1 by alice'),
                    ('blog', 200, 'deployed v2 by alice as a canary for 10% of new visitors'),
                    ('blog', 210, 'canary v2 rolled back: everyone on v1'),
                    ('blog', 300, 'deployed v3 by bob as a canary for 20% of new visitors'),
                    ('blog', 310, 'promoted canary v3 to current'),
                    ('blog', 400, 'deployed v4 by bob'),
                    ('blog', 500, 'deployed v5 by bob as preview pr-7'),
                    ('blog', 600, 'deployed v6 by bob'),
                    ('blog', 610, 'rolled back from v6 to v4'),
                    ('site', 100, 'deployed v1 by cli');
                 INSERT INTO hook_runs (app, version, hook, command, exit_code, output, millis, at) VALUES
                    ('blog', 'v4', 'pre_build', 'make', 0, 'ok', 5, 400);",
            )
            .unwrap();
        }
        let mut r = Registry::open(root.path(), 5).unwrap();
        let applied: i64 = r.db.pragma_query_value(None, "user_version", |q| q.get(0)).unwrap();
        assert_eq!(applied as usize, MIGRATIONS.len());
        // Everything stored is still there.
        let blog = r.app("blog").unwrap();
        assert_eq!(blog.current.as_ref().unwrap().version, "v4");
        assert_eq!(blog.current.as_ref().unwrap().routes, ["/"]);
        assert_eq!(blog.versions, 6);
        assert_eq!(blog.previews.len(), 1);
        assert_eq!(blog.hook_runs.len(), 1);
        assert_eq!(r.events("blog", 100).unwrap().len(), 9);
        assert_eq!(r.app("site").unwrap().current.unwrap().deployed_by, "cli");
        // v2 was a canary rolled back, v5 is a preview, v6 was rolled
        // back from: a rollback goes to v3, then v1.
        assert_eq!(blog.rollback_to.as_deref(), Some("v3"));
        assert_eq!(r.rollback("blog", "t").unwrap().version, "v3");
        assert_eq!(r.rollback("blog", "t").unwrap().version, "v1");
        assert!(r.rollback("blog", "t").is_err());
        assert!(r.rollback("site", "t").is_err());
        // What an older server recorded for the app table's hidden apps
        // goes once the platform's own apps are recorded.
        r.sync_platform_apps(["blog"]).unwrap();
        let ids: Vec<_> = r.apps().unwrap().into_iter().map(|a| (a.id, a.origin)).collect();
        assert_eq!(
            ids,
            [
                ("blog".to_owned(), "platform".to_owned()),
                ("site".to_owned(), "deploy".to_owned())
            ]
        );
    }

    /// A tar of `files`, as `bext deploy --server` packs one.
    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("./{name}"), body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Files under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn a_refused_upload_keeps_the_stored_versions_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        r.deploy_tar("site", &tar_of(&[("index.html", "one")]), &opts(None))
            .unwrap();
        let v1 = r.current("site").unwrap().unwrap();
        let objects = files_under(&root.path().join("objects"));
        assert_eq!(objects.len(), 1);

        let mut link = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        link.append_data(&mut h, "index.html", &b""[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        link.append_link(&mut h, "passwd", "/etc/passwd").unwrap();
        let link = link.into_inner().unwrap();
        let config = |c: &str| tar_of(&[("index.html", "two"), ("bext.config.toml", c)]);
        let big = tar_of(&[("index.html", "two"), ("big.bin", &"x".repeat(2000))]);
        let cases: [(Vec<u8>, u16, &str); 5] = [
            (link, 400, "bundle entry `passwd`: a symbolic link (to `/etc/passwd`)"),
            (
                config("[server]\nstatic_dir = \"/\""),
                400,
                "bext.config.toml:2:14: server.static_dir = \"/\": an absolute path",
            ),
            (
                config("[server]\nstatic_dir = \"../../etc\""),
                400,
                "server.static_dir = \"../../etc\": a `..`",
            ),
            (
                config("[server]\nruntime = \"js\"\nentry = \"/etc/passwd\""),
                400,
                "server.entry = \"/etc/passwd\": an absolute path",
            ),
            (
                big,
                413,
                "bundle entry `big.bin` (2.0 KiB): the bundle's files come to more than 1000 bytes",
            ),
        ];
        r.set_limits(Limits {
            max_bytes: 1000,
            max_entries: 100,
        });
        for (tar, status, why) in cases {
            let err = r.deploy_tar("site", &tar, &opts(None)).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert!(err.to_string().contains(why), "{err}");
            // The stored version is current and whole; nothing else is left.
            assert_eq!(r.current("site").unwrap().unwrap(), v1);
            assert_eq!(r.versions("site").unwrap().len(), 1);
            assert_eq!(std::fs::read_to_string(v1.path.join("index.html")).unwrap(), "one");
            assert_eq!(files_under(&root.path().join("objects")), objects, "{why}");
            assert_eq!(files_under(&root.path().join(INCOMING)), Vec::<PathBuf>::new());
            let trees: Vec<_> = r.store.trees().unwrap().into_iter().map(|(_, v, _)| v).collect();
            assert_eq!(trees, ["v1"]);
            // A refused bundle for an app nobody deployed creates nothing.
            assert!(r.deploy_tar("fresh", &tar, &opts(None)).is_err());
            assert!(r.app("fresh").is_err());
        }
        // The next good deploy works, and is v2.
        let d = r
            .deploy_tar("site", &tar_of(&[("index.html", "two")]), &opts(None))
            .unwrap();
        assert_eq!(d.version.version, "v2");
    }

    /// 19,000 empty files held the registry's lock for 74 s when each file
    /// was synced on its own; one sync for the version takes seconds.
    #[test]
    fn nineteen_thousand_empty_files_deploy_in_seconds_with_one_sync() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..19_000 {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("d{}/e{i}", i % 100), &b""[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        assert!(tar.len() < 10 << 20, "it fits the default upload limit");
        let root = tempfile::tempdir().unwrap();
        let mut r = Registry::open(root.path(), 3).unwrap();
        let started = std::time::Instant::now();
        let d = r.deploy_tar("site", &tar, &opts(None)).unwrap();
        let took = started.elapsed();
        eprintln!("19,000 empty files deployed in {took:?}");
        assert_eq!(d.version.files, 19_000);
        assert_eq!(r.store.syncs(), 1, "one file system sync for the version");
        assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    }
}
