//! One load check for apps whose code is the same. A white-label platform
//! runs thousands of apps from one bundle; checking each in an isolate of
//! its own costs ~3.5 ms per app at start (10,000 apps: half a minute). A check that passed is remembered with what it
//! depended on: every file it read and every import it resolved (relative
//! to the app's directory), and the pool's settings. Another app passes
//! without an isolate only when its own files, read and confined as an
//! isolate would, are byte for byte the same, its imports resolve to the
//! same files, and its settings are equal. A check that failed is never
//! remembered: every broken app is checked, and reported, on its own.
//!
//! The apps that share a check also share the file contents (one copy in
//! memory, not one per app). The memory holds the contents weakly: when
//! the last app using them is gone (a reload dropped it), so is the entry.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use crate::modules::ModuleCache;
use crate::{Exports, JsError, Kind, Limits, Spec};

/// What of a [`Spec`] a check depends on besides the files: all of it but
/// the name and the entry's place, with `env` and bindings by their names.
/// The check only installs them: `env` values are given to `fetch`, never
/// to the module's top level, and each app has stores of its own (so apps
/// that differ only in a tenant's variables share a check).
#[derive(PartialEq)]
struct Settings {
    kind: Kind,
    env: Vec<String>,
    config: serde_json::Value,
    limits: Limits,
    kv: Vec<String>,
    cache: bool,
}

impl Settings {
    fn of(spec: &Spec) -> Settings {
        Settings {
            kind: spec.kind,
            env: spec.env.keys().cloned().collect(),
            config: spec.config.clone(),
            limits: spec.limits.clone(),
            kv: spec.bindings.kv.iter().map(|(n, _)| n.clone()).collect(),
            cache: spec.bindings.cache.is_some(),
        }
    }
}

/// A check that passed, and everything it depended on.
struct Passed {
    settings: Settings,
    /// The entry, relative to the app's directory.
    entry: PathBuf,
    /// `(importer, specifier, file)`, the paths relative to the directory.
    resolved: Vec<(PathBuf, String, PathBuf)>,
    /// Every file read, relative to the directory, and its bytes.
    files: Vec<(PathBuf, Weak<[u8]>)>,
    exports: Exports,
}

impl Passed {
    fn alive(&self) -> bool {
        self.files.iter().all(|(_, bytes)| bytes.strong_count() > 0)
    }
}

/// Passed checks by a hash of their entry's bytes.
#[derive(Default)]
struct Memory {
    by_entry: HashMap<u64, Vec<Passed>>,
    /// Entries, and entries still alive at the last sweep: the dead are
    /// swept when the count doubles, so a long run of reloads with new
    /// code does not pile them up.
    count: usize,
    swept_at: usize,
}

/// The module's exports: from a check that passed for the same code and
/// settings, else from `alone` (an isolate that loads it), remembered if
/// it passed.
pub(crate) fn check(
    spec: &Spec,
    modules: &ModuleCache,
    alone: impl FnOnce() -> Result<Exports, JsError>,
) -> Result<Exports, JsError> {
    if let Some(exports) = reuse(spec, modules) {
        return Ok(exports);
    }
    let exports = alone()?;
    remember(spec, modules, exports);
    Ok(exports)
}

static MEMORY: LazyLock<Mutex<Memory>> = LazyLock::new(Mutex::default);

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn name(root: &Path, relative: &Path) -> String {
    root.join(relative).to_string_lossy().into_owned()
}

fn relative(root: &Path, name: &str) -> Option<PathBuf> {
    Path::new(name).strip_prefix(root).ok().map(Path::to_owned)
}

/// The exports of a check that passed for the same code and settings, if
/// there is one; `modules` then holds the shared file contents. `None`:
/// run the check.
fn reuse(spec: &Spec, modules: &ModuleCache) -> Option<Exports> {
    let root = modules.root();
    let entry = relative(root, &modules.entry().to_string_lossy())?;
    let bytes = modules.source(&modules.entry().to_string_lossy()).ok()?;
    let settings = Settings::of(spec);
    type Candidate = (Vec<(PathBuf, String, PathBuf)>, Vec<(PathBuf, Arc<[u8]>)>, Exports);
    let candidates: Vec<Candidate> = {
        let memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = memory.by_entry.get(&hash(&bytes))?;
        bucket
            .iter()
            .filter(|p| p.entry == entry && p.settings == settings)
            .filter_map(|p| {
                let files = p.files.iter().map(|(path, b)| Some((path.clone(), b.upgrade()?)));
                Some((p.resolved.clone(), files.collect::<Option<Vec<_>>>()?, p.exports))
            })
            .collect()
    };
    // Files are read (and confined) outside the lock, as an isolate would.
    candidates.into_iter().find_map(|(resolved, files, exports)| {
        let same_imports = resolved.iter().all(|(base, specifier, file)| {
            modules.resolve(&name(root, base), specifier).ok() == Some(name(root, file))
        });
        let same_files = same_imports
            && files
                .iter()
                .all(|(path, bytes)| modules.source(&name(root, path)).is_ok_and(|own| *own == **bytes));
        if !same_files {
            return None;
        }
        for (path, bytes) in files {
            modules.share(&name(root, &path), bytes);
        }
        Some(exports)
    })
}

/// Remembers a check that passed, with what `modules` read and resolved
/// for it.
fn remember(spec: &Spec, modules: &ModuleCache, exports: Exports) {
    let root = modules.root();
    let (resolved, files) = modules.used();
    let Some(entry) = relative(root, &modules.entry().to_string_lossy()) else {
        return;
    };
    let Some(key) = files
        .iter()
        .find(|(n, _)| relative(root, n).as_ref() == Some(&entry))
        .map(|(_, b)| hash(b))
    else {
        return;
    };
    let resolved: Option<Vec<_>> = resolved
        .into_iter()
        .map(|(base, specifier, file)| Some((relative(root, &base)?, specifier, relative(root, &file)?)))
        .collect();
    let files: Option<Vec<_>> = files
        .iter()
        .map(|(n, bytes)| Some((relative(root, n)?, Arc::downgrade(bytes))))
        .collect();
    let (Some(resolved), Some(files)) = (resolved, files) else {
        return;
    };
    let passed = Passed {
        settings: Settings::of(spec),
        entry,
        resolved,
        files,
        exports,
    };
    let mut memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    let memory = &mut *memory;
    memory.by_entry.entry(key).or_default().push(passed);
    memory.count += 1;
    if memory.count > 2 * memory.swept_at.max(64) {
        memory.by_entry.retain(|_, bucket| {
            bucket.retain(Passed::alive);
            !bucket.is_empty()
        });
        memory.count = memory.by_entry.values().map(Vec::len).sum();
        memory.swept_at = memory.count;
    }
}
