//! Where a module may be loaded from: only files whose canonical path
//! (every symlink followed, `..` resolved) is inside the canonical
//! directory of the entry module. A symlink in the app's directory that
//! points outside it (`/etc/passwd`, `../../secret.js`, a symlinked
//! directory, a chain of links), a `../` specifier that climbs out, or an
//! absolute specifier is refused with an error that says so, for the entry
//! and for every static or dynamic import alike.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Why a module path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ModuleError {
    /// A bare (`hono`) or absolute (`/x.js`) specifier.
    #[error("only relative imports (./ or ../) are supported; bundle packages with esbuild")]
    NotRelative,
    /// The module's real location is outside the app's directory.
    #[error("{path} is outside the app's directory {root}")]
    Outside {
        /// The module's canonical path (or its lexical one, for `../`).
        path: PathBuf,
        /// The app's canonical directory.
        root: PathBuf,
    },
    /// The file (or the app's directory) cannot be found or read.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The path as asked for.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

fn canonical(path: &Path) -> Result<PathBuf, ModuleError> {
    path.canonicalize().map_err(|e| ModuleError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn inside(path: PathBuf, root: &Path) -> Result<PathBuf, ModuleError> {
    if path.starts_with(root) {
        Ok(path)
    } else {
        Err(ModuleError::Outside {
            path,
            root: root.to_owned(),
        })
    }
}

/// The canonical root (the entry's directory) and the canonical entry;
/// refused when the entry is a link to a file outside its directory.
pub(crate) fn confine_entry(entry: &Path) -> Result<(PathBuf, PathBuf), ModuleError> {
    let dir = match entry.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let root = canonical(dir)?;
    let entry = inside(canonical(entry)?, &root)?;
    Ok((root, entry))
}

/// The canonical path of the module `name` imported by the module at
/// `base` (a canonical path), which must be inside `root`. A specifier
/// without an extension gets `.js`.
pub(crate) fn resolve(root: &Path, base: &str, name: &str) -> Result<PathBuf, ModuleError> {
    if !(name.starts_with("./") || name.starts_with("../")) {
        return Err(ModuleError::NotRelative);
    }
    let dir = Path::new(base).parent().unwrap_or(root);
    let mut path = normalise(&dir.join(name));
    if path.extension().is_none() {
        path.set_extension("js");
    }
    // `../` past the root is refused before the file system is asked
    // anything; then every link is followed and the result checked.
    let path = inside(path, root)?;
    inside(canonical(&path)?, root)
}

/// Checks a module name again just before it is read: it must still be
/// canonical (no link was put in its place since it was resolved) and
/// inside `root`.
pub(crate) fn check_load(root: &Path, name: &str) -> Result<PathBuf, ModuleError> {
    let asked = Path::new(name);
    let real = inside(canonical(asked)?, root)?;
    if real != asked {
        return Err(ModuleError::Outside {
            path: real,
            root: root.to_owned(),
        });
    }
    Ok(real)
}

/// The module files of one pool, each resolved and read once. Isolates
/// start long after load (on a first request, after an idle eviction or a
/// crash): they all run the code that was checked at load, whatever
/// happened to the files since; a changed module is taken by a reload.
pub(crate) struct ModuleCache {
    root: PathBuf,
    entry: PathBuf,
    /// `(base, specifier)` to the canonical name.
    resolved: Mutex<HashMap<(String, String), String>>,
    /// Canonical name to the file's bytes.
    sources: Mutex<HashMap<String, Arc<[u8]>>>,
    /// Canonical name to its compiled code (see [`crate::app_code`]).
    compiled: Mutex<HashMap<String, Arc<crate::app_code::Code>>>,
}

impl ModuleCache {
    /// Confines the entry (see [`confine_entry`]); reads nothing yet.
    pub(crate) fn new(entry: &Path) -> Result<Arc<ModuleCache>, ModuleError> {
        let (root, entry) = confine_entry(entry)?;
        Ok(Arc::new(ModuleCache {
            root,
            entry,
            resolved: Mutex::default(),
            sources: Mutex::default(),
            compiled: Mutex::default(),
        }))
    }

    /// The cache of a pool's `spec`; a refused entry is a load error.
    pub(crate) fn for_spec(spec: &crate::Spec) -> Result<Arc<ModuleCache>, crate::JsError> {
        ModuleCache::new(&spec.entry)
            .map_err(|e| crate::JsError::Load(format!("{}: refused: {e}", spec.entry.display())))
    }

    /// The entry's canonical path.
    pub(crate) fn entry(&self) -> &Path {
        &self.entry
    }

    /// [`resolve`], remembered.
    pub(crate) fn resolve(&self, base: &str, name: &str) -> Result<String, ModuleError> {
        let key = (base.to_owned(), name.to_owned());
        if let Some(hit) = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(hit.clone());
        }
        let path = resolve(&self.root, base, name)?.to_string_lossy().into_owned();
        (self.resolved.lock().unwrap_or_else(PoisonError::into_inner)).insert(key, path.clone());
        Ok(path)
    }

    /// The module named `name` (a canonical path), read on first use after
    /// [`check_load`], then remembered.
    pub(crate) fn source(&self, name: &str) -> Result<Arc<[u8]>, ModuleError> {
        if let Some(hit) = self.sources.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(hit.clone());
        }
        let path = check_load(&self.root, name)?;
        let bytes: Arc<[u8]> = std::fs::read(&path)
            .map_err(|e| ModuleError::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .into();
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sources.entry(name.to_owned()).or_insert(bytes).clone())
    }
}

impl ModuleCache {
    /// The module `name` (a canonical path) declared in `ctx`, from its
    /// bytecode once any isolate compiled the same bytes.
    pub(crate) fn declare<'js>(
        &self,
        ctx: &rquickjs::Ctx<'js>,
        name: &str,
    ) -> rquickjs::Result<rquickjs::Module<'js, rquickjs::module::Declared>> {
        let source = self
            .source(name)
            .map_err(|e| rquickjs::Error::new_loading_message(name, e.to_string()))?;
        crate::app_code::declare(ctx, name, &source, &self.compiled)
    }
}

/// What a [`ModuleCache`] resolved, `(base, specifier, result)`, and
/// read, `(name, bytes)`.
pub(crate) type Used = (Vec<(String, String, String)>, Vec<(String, Arc<[u8]>)>);

impl ModuleCache {
    /// The canonical directory no module may leave.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Every resolution made so far, `(base, specifier, result)`, and
    /// every file read so far, by canonical name: after a load check,
    /// exactly what the check depended on.
    pub(crate) fn used(&self) -> Used {
        let resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        (
            resolved
                .iter()
                .map(|((b, n), r)| (b.clone(), n.clone(), r.clone()))
                .collect(),
            sources.iter().map(|(n, b)| (n.clone(), b.clone())).collect(),
        )
    }

    /// Keeps `bytes` (equal to what was read as `name`) in place of this
    /// cache's own copy, so that apps with the same files hold them once.
    pub(crate) fn share(&self, name: &str, bytes: Arc<[u8]>) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(own) = sources.get_mut(name)
            && **own == *bytes
        {
            *own = bytes;
        }
    }
}

/// `..` and `.` resolved lexically.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// `tmp/app/` (the app: index.js, lib/util.js, a link to lib as
    /// `inner-link`), and `tmp/secret.js`, `tmp/secrets/` next to it.
    fn layout() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(app.join("lib")).unwrap();
        std::fs::create_dir_all(tmp.path().join("secrets")).unwrap();
        std::fs::write(app.join("index.js"), "export default {}").unwrap();
        std::fs::write(app.join("lib/util.js"), "export const x = 1").unwrap();
        std::fs::write(tmp.path().join("secret.js"), "export const s = 'secret'").unwrap();
        std::fs::write(tmp.path().join("secrets/key.js"), "export const k = 'key'").unwrap();
        symlink(app.join("lib"), app.join("inner-link")).unwrap();
        (tmp, app)
    }

    fn outside(r: Result<PathBuf, ModuleError>) -> bool {
        matches!(r, Err(ModuleError::Outside { .. }))
    }

    #[test]
    fn links_out_of_the_app_are_refused_wherever_they_are() {
        let (tmp, app) = layout();
        let t = tmp.path();
        symlink("/etc/passwd", app.join("passwd.js")).unwrap();
        symlink(t.join("secret.js"), app.join("direct.js")).unwrap();
        symlink("../secret.js", app.join("relative.js")).unwrap();
        symlink(t.join("secrets"), app.join("dir-link")).unwrap();
        // A chain: a link to a link (inside) to a file outside.
        symlink(app.join("direct.js"), app.join("chain-1.js")).unwrap();
        symlink("chain-1.js", app.join("chain-2.js")).unwrap();
        // A link to the app's parent directory.
        symlink("..", app.join("up")).unwrap();

        let (root, entry) = confine_entry(&app.join("index.js")).unwrap();
        assert_eq!(entry, root.join("index.js"));
        let base = entry.to_str().unwrap();
        for name in [
            "./passwd.js",
            "./direct.js",
            "./relative.js",
            "./dir-link/key.js",
            "./dir-link/key",
            "./chain-2.js",
            "./chain-1",
            "./up/secret.js",
            "./up/app/../secret.js",
        ] {
            assert!(
                outside(resolve(&root, base, name)),
                "{name}: {:?}",
                resolve(&root, base, name)
            );
        }
        // Climbing out by `../`, however spelled.
        for name in [
            "../secret.js",
            "./../secret.js",
            "./lib/../../secret.js",
            "../app/../secret",
        ] {
            assert!(outside(resolve(&root, base, name)), "{name}");
        }
        // Absolute and bare specifiers are never files of the app.
        let absolute = t.join("secret.js");
        for name in [
            "/etc/passwd",
            absolute.to_str().unwrap(),
            "secret.js",
            "file:///etc/passwd",
        ] {
            assert_eq!(resolve(&root, base, name), Err(ModuleError::NotRelative), "{name}");
        }
        // The entry itself may not be a link out.
        for link in ["passwd.js", "direct.js", "chain-2.js"] {
            assert!(
                matches!(confine_entry(&app.join(link)), Err(ModuleError::Outside { .. })),
                "{link}"
            );
        }
        // And a name that is not canonical is refused at load time.
        assert!(check_load(&root, app.join("direct.js").to_str().unwrap()).is_err());
        assert!(check_load(&root, root.join("inner-link/util.js").to_str().unwrap()).is_err());
        assert!(check_load(&root, "/etc/passwd").is_err());
    }

    #[test]
    fn links_and_parents_inside_the_app_still_work() {
        let (_tmp, app) = layout();
        symlink("lib/util.js", app.join("alias.js")).unwrap();
        let (root, entry) = confine_entry(&app.join("index.js")).unwrap();
        let base = entry.to_str().unwrap();
        let util = root.join("lib/util.js");
        for name in [
            "./lib/util.js",
            "./lib/util",
            "./inner-link/util.js",
            "./alias.js",
            "./lib/../lib/util.js",
        ] {
            assert_eq!(resolve(&root, base, name), Ok(util.clone()), "{name}");
        }
        // `../` from a nested module, back into the app.
        let from_lib = util.to_str().unwrap();
        assert_eq!(resolve(&root, from_lib, "../index.js"), Ok(entry.clone()));
        assert!(outside(resolve(&root, from_lib, "../../secret.js")));
        assert_eq!(check_load(&root, util.to_str().unwrap()), Ok(util.clone()));
        assert!(matches!(
            resolve(&root, base, "./missing.js"),
            Err(ModuleError::Unreadable { .. })
        ));
        // An entry given through a link to the app's directory: the root
        // is the real directory.
        let tmp2 = tempfile::tempdir().unwrap();
        symlink(&app, tmp2.path().join("app-link")).unwrap();
        let (root2, entry2) = confine_entry(&tmp2.path().join("app-link/index.js")).unwrap();
        assert_eq!((root2, entry2), (root, entry));
    }

    #[test]
    fn a_cache_keeps_the_code_read_first() {
        let (_tmp, app) = layout();
        let cache = ModuleCache::new(&app.join("index.js")).unwrap();
        let entry = cache.entry().to_string_lossy().into_owned();
        let util = cache.resolve(&entry, "./lib/util").unwrap();
        assert_eq!(&*cache.source(&util).unwrap(), b"export const x = 1");
        std::fs::write(app.join("lib/util.js"), "export const x = 2").unwrap();
        std::fs::remove_file(app.join("index.js")).unwrap();
        assert_eq!(cache.resolve(&entry, "./lib/util").unwrap(), util);
        assert_eq!(&*cache.source(&util).unwrap(), b"export const x = 1");
        assert!(matches!(cache.source(&entry), Err(ModuleError::Unreadable { .. })));
    }
}
