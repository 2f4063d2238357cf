//! Version trees stored by content.
//!
//! Every file is kept once under `objects/` by its SHA-256; a version is a
//! directory tree of hard links to those objects, so identical files
//! across versions and previews cost one copy, and the runtimes serve a
//! version from a plain directory. An object whose link count drops to one
//! is referenced by no version and is collected.
//!
//! A tree is built under a `.partial-*` name and renamed into place when
//! complete: a deploy that dies halfway leaves only partial names behind,
//! which [`Store::recover`] removes.
//!
//! Durability costs one file system sync per version, not one fsync per
//! file (19,000 empty files took 74 s that way): objects and the tree are
//! written without syncing, the whole file system is synced once
//! (`syncfs`), then the tree is renamed into place and its directory
//! synced. Until that sync, the new objects are linked only from the
//! unfinished tree: after a crash [`Store::recover`] removes the tree and
//! [`Store::collect`] the objects, so a half-written object is never
//! taken for a stored one.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::DeployError;
use crate::bundle::{self, Limits, Tally};

/// Prefix of a tree or object still being written.
const PARTIAL: &str = ".partial-";

/// Where trees go to be removed: [`Store::discard`] moves one there at
/// once (a rename) and [`Store::empty_trash`] removes it on a thread of
/// its own.
const TRASH: &str = "trash";

/// What was stored for one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Files in the version.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Of which were new to the store (the rest were already there).
    pub new_bytes: u64,
}

/// The `objects/`, `versions/` and `trash/` directories under the
/// registry's root.
#[derive(Debug, Clone)]
pub struct Store {
    objects: PathBuf,
    versions: PathBuf,
    trash: PathBuf,
    /// File system syncs done, for the tests that count them.
    syncs: Arc<AtomicU64>,
}

impl Store {
    /// The store under `root`, created if missing.
    pub fn open(root: &Path) -> Result<Store, DeployError> {
        let store = Store {
            objects: root.join("objects"),
            versions: root.join("versions"),
            trash: root.join(TRASH),
            syncs: Arc::default(),
        };
        for dir in [&store.objects, &store.versions, &store.trash] {
            fs::create_dir_all(dir).map_err(|e| DeployError::io(dir, e))?;
        }
        // What lands in the trash is deleted: never somewhere a link leads.
        if fs::symlink_metadata(&store.trash).is_ok_and(|m| !m.is_dir()) {
            return Err(DeployError::io(
                &store.trash,
                io::Error::other("a symbolic link, not a directory of the store: remove it"),
            ));
        }
        Ok(store)
    }

    /// Where the tree of `app`'s `version` lives.
    pub fn tree(&self, app: &str, version: &str) -> PathBuf {
        self.versions.join(app).join(version)
    }

    /// Copies the regular files under `from` into the store and builds the
    /// tree of `app`'s `version` from them, within `limits` and with the
    /// names a bundle may have ([`bundle`]). `progress` is told each file.
    pub fn put(
        &self,
        app: &str,
        version: &str,
        from: &Path,
        limits: Limits,
        progress: &mut dyn FnMut(&Path, u64),
    ) -> Result<(PathBuf, Stored), DeployError> {
        let target = self.tree(app, version);
        if target.exists() {
            return Err(DeployError::Exists(format!("{app} {version}")));
        }
        let parent = target.parent().expect("versions/<app>");
        fs::create_dir_all(parent).map_err(|e| DeployError::io(parent, e))?;
        let partial = parent.join(format!("{PARTIAL}{version}-{}", std::process::id()));
        let _ = self.remove_deep(&partial);
        let mut stored = Stored::default();
        let mut tally = Tally::new(limits);
        let built = self.copy_tree(from, from, &partial, &mut stored, &mut tally, progress);
        if let Err(e) = built.and_then(|()| self.sync_filesystem(&partial)) {
            // Free at once what only this tree used (a full disk most of all).
            let _ = self.remove_deep(&partial);
            let _ = self.collect();
            return Err(e);
        }
        fs::rename(&partial, &target).map_err(|e| DeployError::io(&target, e))?;
        sync_dir(parent)?;
        Ok((target, stored))
    }

    fn copy_tree(
        &self,
        root: &Path,
        dir: &Path,
        to: &Path,
        stored: &mut Stored,
        tally: &mut Tally,
        progress: &mut dyn FnMut(&Path, u64),
    ) -> Result<(), DeployError> {
        fs::create_dir_all(to).map_err(|e| DeployError::io(to, e))?;
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| DeployError::io(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| DeployError::io(dir, e))?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let shown = bundle::shown(rel.as_os_str().as_encoded_bytes());
            let refuse = |why: String| DeployError::Bundle(format!("bundle entry `{shown}`: {why}"));
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| refuse("a name that is not UTF-8".into()))?;
            bundle::check_component(name).map_err(refuse)?;
            if rel.as_os_str().len() > bundle::MAX_PATH {
                return Err(refuse(format!(
                    "a name of {} bytes (at most {})",
                    rel.as_os_str().len(),
                    bundle::MAX_PATH
                )));
            }
            tally.entry(&shown)?;
            let kind = entry.file_type().map_err(|e| DeployError::io(&path, e))?;
            let dest = to.join(name);
            if kind.is_dir() {
                // Checked before going in: the walk's depth is bounded.
                let depth = rel.components().count();
                if depth > bundle::MAX_DEPTH {
                    return Err(refuse(bundle::too_deep(depth)));
                }
                self.copy_tree(root, &path, &dest, stored, tally, progress)?;
            } else if kind.is_file() {
                // Its size now, checked before a byte is copied; a file
                // that grows meanwhile is stored as it was (a sparse file
                // counts its holes).
                let len = entry.metadata().map_err(|e| DeployError::io(&path, e))?.len();
                tally.bytes(len, &shown)?;
                let (object, size, new) = self.add_object(&path, len)?;
                link_or_copy(&object, &dest)?;
                stored.files += 1;
                stored.bytes += size;
                stored.new_bytes += if new { size } else { 0 };
                progress(rel, size);
            } else {
                // A link could point outside the bundle, at anything on
                // this machine: bundles hold files and directories only.
                let what = if kind.is_symlink() {
                    "a symbolic link"
                } else if kind.is_fifo() {
                    "a FIFO (named pipe)"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                return Err(refuse(format!("{what}: only files and directories can be deployed")));
            }
        }
        Ok(())
    }

    /// Stores the first `len` bytes of one file by content: (its object,
    /// its size, whether new). A file the store has already (most files
    /// of a redeploy) is only read: its object is linked, not copied.
    fn add_object(&self, file: &Path, len: u64) -> Result<(PathBuf, u64, bool), DeployError> {
        // Sized to the file: 19,000 empty files need no 64 KiB each.
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).clamp(1, 64 * 1024)];
        let (hex, size) = self.copy_hashed(file, len, &mut buf, None)?;
        let object = self.object(&hex);
        if object.exists() {
            return Ok((object, size, false));
        }
        // New: copied, and named by the bytes actually copied (the file
        // may have changed since it was hashed).
        let tmp = self.objects.join(format!("{PARTIAL}{}", unique()));
        let (hex, size) = self.copy_hashed(file, len, &mut buf, Some(&tmp))?;
        let object = self.object(&hex);
        if object.exists() {
            let _ = fs::remove_file(&tmp);
            return Ok((object, size, false));
        }
        let dir = object.parent().expect("objects/<xx>");
        fs::create_dir_all(dir).map_err(|e| DeployError::io(dir, e))?;
        fs::rename(&tmp, &object).map_err(|e| DeployError::io(&object, e))?;
        Ok((object, size, true))
    }

    /// Where the object of SHA-256 `hex` is.
    fn object(&self, hex: &str) -> PathBuf {
        self.objects.join(&hex[..2]).join(&hex[2..])
    }

    /// Reads the first `len` bytes of `file`, copying them to `to` if
    /// given (not synced: `put` syncs once for the version): their
    /// SHA-256 and their size. A failed copy leaves no `to`.
    fn copy_hashed(
        &self,
        file: &Path,
        len: u64,
        buf: &mut [u8],
        to: Option<&Path>,
    ) -> Result<(String, u64), DeployError> {
        let mut input = File::open(file).map_err(|e| DeployError::io(file, e))?.take(len);
        let mut out = match to {
            Some(to) => Some(File::create(to).map_err(|e| DeployError::io(to, e))?),
            None => None,
        };
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let copied = (|| -> io::Result<()> {
            loop {
                let n = input.read(buf)?;
                if n == 0 {
                    return Ok(());
                }
                hash.update(&buf[..n]);
                if let Some(out) = &mut out {
                    out.write_all(&buf[..n])?;
                }
                size += n as u64;
            }
        })();
        drop(out);
        if let Err(e) = copied {
            if let Some(to) = to {
                let _ = fs::remove_file(to);
            }
            return Err(DeployError::io(file, e));
        }
        Ok((to_hex(&hash.finalize()), size))
    }

    /// Makes everything written on the store's file system durable, once
    /// for a whole version: `syncfs` on Linux, `sync` elsewhere.
    fn sync_filesystem(&self, dir: &Path) -> Result<(), DeployError> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let handle = File::open(dir).map_err(|e| DeployError::io(dir, e))?;
        #[cfg(target_os = "linux")]
        rustix::fs::syncfs(&handle).map_err(|e| DeployError::io(dir, e.into()))?;
        #[cfg(not(target_os = "linux"))]
        {
            drop(handle);
            rustix::fs::sync();
        }
        Ok(())
    }

    /// File system syncs done by this store so far.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Removes a version's tree (its objects are collected by [`Store::collect`]).
    pub fn remove_tree(&self, path: &Path) -> Result<(), DeployError> {
        if !path.starts_with(&self.versions) {
            return Err(DeployError::Bundle(format!("{} is not in the store", path.display())));
        }
        self.remove_deep(path).map_err(|e| DeployError::io(path, e))
    }

    /// Removes `path` whatever its depth ([`crate::remove`]), chains too
    /// deep to hold open moved into the trash on the way.
    fn remove_deep(&self, path: &Path) -> io::Result<()> {
        crate::remove::remove_deep(path, &self.trash, &mut trash_name)
    }

    /// Deletes objects no tree links to any more; returns the bytes freed.
    pub fn collect(&self) -> Result<u64, DeployError> {
        let mut freed = 0;
        for shard in fs::read_dir(&self.objects).map_err(|e| DeployError::io(&self.objects, e))? {
            let shard = shard.map_err(|e| DeployError::io(&self.objects, e))?.path();
            if !shard.is_dir() {
                continue;
            }
            for object in fs::read_dir(&shard).map_err(|e| DeployError::io(&shard, e))? {
                let object = object.map_err(|e| DeployError::io(&shard, e))?.path();
                let meta = fs::symlink_metadata(&object).map_err(|e| DeployError::io(&object, e))?;
                if meta.nlink() <= 1 {
                    fs::remove_file(&object).map_err(|e| DeployError::io(&object, e))?;
                    freed += meta.len();
                }
            }
        }
        Ok(freed)
    }

    /// Removes what a deploy that died halfway left: partial objects and
    /// trees. Safe only while no deploy runs (the registry holds its lock).
    pub fn recover(&self) -> Result<(), DeployError> {
        let mut stale = Vec::new();
        for dir in [&self.objects, &self.versions] {
            for entry in fs::read_dir(dir).map_err(|e| DeployError::io(dir, e))? {
                let path = entry.map_err(|e| DeployError::io(dir, e))?.path();
                if is_partial(&path) {
                    stale.push(path);
                } else if dir == &self.versions && path.is_dir() {
                    for inner in fs::read_dir(&path).map_err(|e| DeployError::io(&path, e))? {
                        let inner = inner.map_err(|e| DeployError::io(&path, e))?.path();
                        if is_partial(&inner) {
                            stale.push(inner);
                        }
                    }
                }
            }
        }
        for path in stale {
            tracing::info!(path = %path.display(), "removing what an interrupted deploy left");
            if path.is_dir() {
                self.discard(&path)?;
            } else {
                fs::remove_file(&path).map_err(|e| DeployError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Moves `path`, a tree in the store, out of the way at once, for
    /// [`Store::empty_trash`] to remove: a tree of many thousand entries
    /// takes minutes to remove, which a start must not wait for. Its files'
    /// objects are collected once the tree is gone.
    pub fn discard(&self, path: &Path) -> Result<(), DeployError> {
        let to = self.trash.join(trash_name());
        match fs::rename(path, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DeployError::io(path, e)),
        }
    }

    /// Removes what is in the trash (also what an earlier process left
    /// there), on a thread of its own. Removing only unlinks: objects the
    /// trees shared are freed by a later [`Store::collect`], which runs
    /// under the registry's lock.
    pub fn empty_trash(&self) -> Option<std::thread::JoinHandle<()>> {
        let store = self.clone();
        let empty = move || {
            let Ok(entries) = fs::read_dir(&store.trash) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if let Err(e) = store.remove_deep(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a discarded deploy's files");
                }
            }
        };
        std::thread::Builder::new()
            .name("bext-deploy-trash".into())
            .spawn(empty)
            .ok()
    }

    /// Every tree on disk, as (app, version): to find trees the database
    /// does not know (a deploy that died between the rename and the commit).
    pub fn trees(&self) -> Result<Vec<(String, String, PathBuf)>, DeployError> {
        let mut out = Vec::new();
        for app in fs::read_dir(&self.versions).map_err(|e| DeployError::io(&self.versions, e))? {
            let app = app.map_err(|e| DeployError::io(&self.versions, e))?.path();
            if !app.is_dir() {
                continue;
            }
            for version in fs::read_dir(&app).map_err(|e| DeployError::io(&app, e))? {
                let version = version.map_err(|e| DeployError::io(&app, e))?.path();
                if let (Some(a), Some(v)) = (file_name(&app), file_name(&version)) {
                    out.push((a, v, version));
                }
            }
        }
        Ok(out)
    }
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name()?.to_str().map(str::to_owned)
}

fn is_partial(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PARTIAL))
}

/// Hard-links `object` at `dest`, or copies it where links do not work
/// (another file system).
fn link_or_copy(object: &Path, dest: &Path) -> Result<(), DeployError> {
    if fs::hard_link(object, dest).is_ok() {
        return Ok(());
    }
    fs::copy(object, dest).map_err(|e| DeployError::io(dest, e))?;
    Ok(())
}

/// Makes a directory's entries durable (the rename of a finished tree).
fn sync_dir(dir: &Path) -> Result<(), DeployError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DeployError::io(dir, e))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A name no other writer in this process or another uses.
/// A name in the trash no other process's can take, nor this one's
/// before a restart.
fn trash_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", unique())
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_files_are_stored_once_and_collected_when_unused() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "same").unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/b.txt"), "same").unwrap();
        let store = Store::open(root.path()).unwrap();
        let (v1, s1) = store
            .put("app", "v1", src.path(), Limits::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!((s1.files, s1.bytes, s1.new_bytes), (2, 8, 4));
        let (v2, s2) = store
            .put("app", "v2", src.path(), Limits::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!(s2.new_bytes, 0, "nothing new");
        let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(v1.join("a.txt")), ino(v2.join("sub/b.txt")));
        store.remove_tree(&v1).unwrap();
        assert_eq!(store.collect().unwrap(), 0, "v2 still links it");
        store.remove_tree(&v2).unwrap();
        assert_eq!(store.collect().unwrap(), 4);
    }

    /// A directory as deep as bundles may nest is stored; one level more
    /// is refused with the depth, before the walk goes further down (a
    /// tree hundreds of levels deep overflowed a worker's stack).
    #[test]
    fn directories_deeper_than_the_limit_are_refused_before_the_walk_goes_down() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        for (depth, ok) in [(bundle::MAX_DEPTH, true), (bundle::MAX_DEPTH + 1, false), (300, false)] {
            let src = tempfile::tempdir().unwrap();
            let deep = src.path().join(vec!["d"; depth].join("/"));
            fs::create_dir_all(&deep).unwrap();
            fs::write(deep.join("f"), "x").unwrap();
            let put = store.put(
                "app",
                &format!("v{depth}"),
                src.path(),
                Limits::default(),
                &mut |_, _| {},
            );
            match (put, ok) {
                (Ok(_), true) => {}
                (Err(e), false) => assert!(
                    e.to_string()
                        .contains(&format!("{} directories deep (at most 64)", bundle::MAX_DEPTH + 1)),
                    "{e}"
                ),
                (put, _) => panic!("depth {depth}: {:?}", put.map(|_| ()).map_err(|e| e.to_string())),
            }
        }
    }

    #[test]
    fn links_in_a_bundle_are_refused_and_leave_nothing() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("z-passwd")).unwrap();
        let store = Store::open(root.path()).unwrap();
        let err = store
            .put("app", "v1", src.path(), Limits::default(), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bundle entry `z-passwd`: a symbolic link: only files and directories can be deployed"
        );
        assert!(store.trees().unwrap().is_empty());
        store.recover().unwrap();
        assert!(!store.tree("app", "v1").exists());
    }

    /// What an interrupted deploy left is out of the way as soon as
    /// `recover` returns (a start does not wait for its removal); the
    /// trash is emptied on a thread of its own, also of what an earlier
    /// process left in it.
    #[test]
    fn an_interrupted_deploys_tree_is_moved_aside_at_once_and_removed_after() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let partial = store.versions.join("app").join(format!("{PARTIAL}v2-1"));
        fs::create_dir_all(partial.join("a/b")).unwrap();
        fs::write(partial.join("a/b/f"), "x").unwrap();
        fs::create_dir_all(store.trash.join("left-by-an-earlier-process/c")).unwrap();
        store.recover().unwrap();
        assert!(!partial.exists());
        assert_eq!(fs::read_dir(&store.trash).unwrap().count(), 2);
        store.empty_trash().unwrap().join().unwrap();
        assert_eq!(fs::read_dir(&store.trash).unwrap().count(), 0);
    }

    /// A `trash` that is a link is refused: what lands there is deleted,
    /// and never where a link leads.
    #[test]
    fn a_trash_that_is_a_link_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        fs::write(victim.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(victim.path(), root.path().join(TRASH)).unwrap();
        let err = Store::open(root.path()).unwrap_err().to_string();
        assert!(err.contains("a symbolic link"), "{err}");
        assert!(victim.path().join("keep").exists());
    }

    fn put_err(src: &Path, limits: Limits) -> String {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let err = store.put("app", "v1", src, limits, &mut |_, _| {}).unwrap_err();
        assert!(store.trees().unwrap().is_empty(), "nothing is left: {err}");
        store.collect().unwrap();
        let objects: Vec<_> = fs::read_dir(&store.objects)
            .unwrap()
            .flat_map(|shard| fs::read_dir(shard.unwrap().path()).unwrap())
            .collect();
        assert!(objects.is_empty(), "no object is left: {err}");
        err.to_string()
    }

    #[test]
    fn a_directory_is_held_to_the_bundle_limits() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "123456").unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/b.txt"), "123456").unwrap();
        let err = put_err(
            src.path(),
            Limits {
                max_bytes: 10,
                max_entries: 100,
            },
        );
        assert!(
            err.contains("bundle entry `d/b.txt` (6 bytes): the bundle's files come to more than 10 bytes"),
            "{err}"
        );
        let err = put_err(
            src.path(),
            Limits {
                max_bytes: 100,
                max_entries: 2,
            },
        );
        assert!(
            err.contains("bundle entry `d/b.txt`: the bundle has more than 2 entries"),
            "{err}"
        );
        // A sparse file counts its holes: refused by its size, unread.
        let sparse = File::create(src.path().join("sparse.img")).unwrap();
        sparse.set_len(8 << 30).unwrap();
        let err = put_err(src.path(), Limits::default());
        assert!(err.contains("bundle entry `sparse.img` (8 GiB)"), "{err}");
    }

    #[test]
    fn fifos_and_misleading_names_in_a_directory_are_refused() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("index.html"), "x").unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(src.path().join("pipe"))
            .status()
            .unwrap();
        assert!(fifo.success());
        let err = put_err(src.path(), Limits::default());
        assert_eq!(
            err,
            "bundle entry `pipe`: a FIFO (named pipe): only files and directories can be deployed"
        );
        fs::remove_file(src.path().join("pipe")).unwrap();
        for (name, why) in [("..\\etc", "a backslash"), ("a\nb", "a control character")] {
            fs::write(src.path().join(name), "x").unwrap();
            let err = put_err(src.path(), Limits::default());
            assert!(err.contains(why), "{name:?}: {err}");
            fs::remove_file(src.path().join(name)).unwrap();
        }
    }

    #[test]
    fn a_version_is_synced_once_not_per_file() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        for i in 0..500 {
            fs::write(
                src.path().join(format!("{i}.txt")),
                if i % 2 == 0 { String::new() } else { i.to_string() },
            )
            .unwrap();
        }
        let store = Store::open(root.path()).unwrap();
        let (_, stored) = store
            .put("app", "v1", src.path(), Limits::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!(stored.files, 500);
        assert_eq!(store.syncs(), 1);
    }
}
