//! Removing a tree of any depth. A build hook (`pre_build`,
//! `post_deploy`) may nest directories thousands deep, past the depth a
//! bundle may have: std's `remove_dir_all` recurses once per level (a
//! deep enough tree overflows the thread's stack and aborts the server)
//! and full paths outgrow `PATH_MAX`. This walk is a loop: directories
//! are opened relative to their parent (`openat`, links never followed),
//! at most [`HELD`] at a time; a chain deeper than that is moved aside
//! (one rename into `spill`, on the same file system) and removed in its
//! turn.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

/// Directories held open at once, at most.
const HELD: usize = 64;

/// Removes `root` (a file, or a directory and all under it); a missing
/// `root` is no error. `spill` is a directory on the same file system
/// where chains deeper than [`HELD`] are moved to be removed next; `name`
/// makes each moved chain's name there unique.
pub(crate) fn remove_deep(root: &Path, spill: &Path, name: &mut dyn FnMut() -> String) -> io::Result<()> {
    let mut pending = vec![root.to_owned()];
    while let Some(top) = pending.pop() {
        match std::fs::symlink_metadata(&top) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
            Ok(meta) if !meta.is_dir() => {
                std::fs::remove_file(&top)?;
                continue;
            }
            Ok(_) => {}
        }
        remove_chain(&top, spill, name, &mut pending)?;
    }
    Ok(())
}

/// Empties and removes the directory `top`, moving chains deeper than
/// [`HELD`] into `spill` (added to `pending`).
fn remove_chain(
    top: &Path,
    spill: &Path,
    name: &mut dyn FnMut() -> String,
    pending: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let open = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // Each open directory, with its name in the one above (none for `top`).
    let mut stack: Vec<(OwnedFd, Option<CString>)> = vec![(rustix::fs::openat(CWD, top, open, Mode::empty())?, None)];
    while let Some((dir, _)) = stack.last() {
        let mut deeper = None;
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let entry_name = entry.file_name();
            if matches!(entry_name.to_bytes(), b"." | b"..") {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => {
                    FileType::from_raw_mode(rustix::fs::statat(dir, entry_name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode)
                }
                kind => kind,
            };
            if kind == FileType::Directory {
                deeper = Some(entry_name.to_owned());
                break;
            }
            rustix::fs::unlinkat(dir, entry_name, AtFlags::empty())?;
        }
        match deeper {
            Some(child) if stack.len() < HELD => {
                let fd = rustix::fs::openat(dir, &child, open, Mode::empty())?;
                stack.push((fd, Some(child)));
            }
            Some(child) => {
                let aside = spill.join(name());
                rustix::fs::renameat(dir, &child, CWD, &aside)?;
                pending.push(aside);
            }
            None => {
                let (_, own_name) = stack.pop().expect("a directory is open");
                match (own_name, stack.last()) {
                    (Some(own_name), Some((parent, _))) => {
                        rustix::fs::unlinkat(parent, &own_name, AtFlags::REMOVEDIR)?;
                    }
                    _ => std::fs::remove_dir(top)?,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of directories far deeper than a recursive removal's stack
    /// or `PATH_MAX` allow, with files on the way, and a link out of the
    /// tree that must not be followed, is removed; what the link points
    /// to is not.
    #[test]
    fn a_tree_of_any_depth_goes_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        // 5,000 levels, built relative to each level (the full path would
        // be 10,000 bytes).
        let mut fd = rustix::fs::openat(CWD, &root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        for i in 0..5_000 {
            rustix::fs::mkdirat(&fd, "z", Mode::from_raw_mode(0o755)).unwrap();
            if i % 1000 == 0 {
                let f =
                    rustix::fs::openat(&fd, "f", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o644)).unwrap();
                drop(f);
            }
            fd = rustix::fs::openat(&fd, "z", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        }
        drop(fd);
        let spill = dir.path().join("spill");
        std::fs::create_dir(&spill).unwrap();
        let mut n = 0;
        remove_deep(&root, &spill, &mut || {
            n += 1;
            format!("chain-{n}")
        })
        .unwrap();
        assert!(!root.exists());
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "moved chains removed too"
        );
        assert!(n > 5_000 / HELD - 2, "deeper chains were moved aside: {n}");
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "x");
        remove_deep(&root, &spill, &mut || unreachable!()).unwrap();
    }
}
