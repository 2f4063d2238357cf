//! Opening a plugin library from a copy named by its content.
//!
//! The dynamic loader hands back the image it already has for a path it
//! loaded before, so a library rebuilt at the same path would keep
//! running its old code after a reload. bext therefore loads each distinct
//! content once, from `<data_dir>/plugin-libs/<sha256>-<pid>-<file name>`:
//! new bytes get a new name and are really loaded; the same bytes, at any
//! path, reuse the module already loaded. The copy is removed as soon as
//! it is loaded (the image stays mapped; libraries are never unloaded),
//! and copies a stopped process left behind are swept on the next load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use abi_stable::library::{LibraryError, RootModule, lib_header_from_path};
use bext_plugin_sdk::ffi::{PluginModRef, ROOT_MODULE_SYMBOL};
use sha2::{Digest, Sha256};

/// The folder under the data directory that holds copies while they load.
const DIR: &str = "plugin-libs";

/// A copy older than this was left by a process that stopped between
/// copying and loading it (loading takes milliseconds).
const STALE: Duration = Duration::from_secs(60);

/// Modules loaded by this process, by the SHA-256 of their library's
/// bytes. Process-wide because the loader's table of images is: an image
/// stays loaded for the life of the process.
static LOADED: Mutex<Option<HashMap<String, PluginModRef>>> = Mutex::new(None);

/// Why a library could not be opened, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The file could not be read.
    #[error("cannot read the library: {0}")]
    Read(std::io::Error),
    /// The copy could not be written.
    #[error("cannot copy the library to {}: {err}", dir.display())]
    Copy {
        /// The folder of copies.
        dir: PathBuf,
        /// What failed.
        err: std::io::Error,
    },
    /// The loader or abi_stable refused it.
    #[error("{0}")]
    Library(String),
}

/// The plugin module of the library at `path`, loaded from a content-named
/// copy under `data_dir` unless the same bytes were loaded before.
pub(super) fn open(path: &Path, data_dir: &Path) -> Result<PluginModRef, OpenError> {
    let bytes = std::fs::read(path).map_err(OpenError::Read)?;
    let hash = hex(&Sha256::digest(&bytes));
    // Held while loading, so two pipelines being built never load one
    // content twice.
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(module) = loaded.get(&hash) {
        return Ok(*module);
    }
    let dir = data_dir.join(DIR);
    let copy_error = |err| OpenError::Copy { dir: dir.clone(), err };
    std::fs::create_dir_all(&dir).map_err(copy_error)?;
    sweep(&dir);
    let file_name = path
        .file_name()
        .map_or_else(|| "plugin".into(), |n| n.to_string_lossy());
    let copy = dir.join(format!("{hash}-{}-{file_name}", std::process::id()));
    std::fs::write(&copy, &bytes).map_err(copy_error)?;
    let module = lib_header_from_path(&copy).and_then(|h| h.init_root_module::<PluginModRef>());
    // Best effort: a copy left behind is swept by a later load.
    let _ = std::fs::remove_file(&copy);
    let module = module.map_err(|e| {
        // The loader's message names the copy; the operator knows the original.
        OpenError::Library(describe(e).replace(&copy.display().to_string(), &path.display().to_string()))
    })?;
    loaded.insert(hash, module);
    Ok(module)
}

/// Removes copies that no load is using any more.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Library errors in words an operator can act on.
fn describe(e: LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => format!("cannot load the library: {err}"),
        LibraryError::GetSymbolError { .. } => format!(
            "not a bext plugin: the library exports no `{ROOT_MODULE_SYMBOL}` (build it with bext-plugin-sdk's export_plugin!)"
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against bext-plugin-sdk {actual_version}, but this bext needs {expected_version}: rebuild the plugin"
        ),
        LibraryError::AbiInstability(e) => {
            format!("its plugin ABI does not match this bext's (rebuild the plugin against this SDK): {e}")
        }
        other => format!(
            "{other} (expected a plugin built for bext-plugin-sdk {})",
            PluginModRef::VERSION_STRINGS
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_library_is_named_by_its_own_path_and_leaves_no_copy() {
        let dir = std::env::temp_dir().join(format!("bext-dylib-copy-{}", std::process::id()));
        let lib = dir.join("fake.so");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&lib, "not an ELF file").unwrap();
        let Err(err) = open(&lib, &dir.join("data")) else {
            panic!("a text file loaded as a library");
        };
        let err = err.to_string();
        assert!(err.starts_with("cannot load the library: "), "{err}");
        assert!(err.contains(&lib.display().to_string()), "{err}");
        assert!(!err.contains(DIR), "the copy's path is not shown: {err}");
        let left = std::fs::read_dir(dir.join("data").join(DIR)).unwrap().count();
        assert_eq!(left, 0, "the copy was removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn copies_left_by_a_stopped_process_are_swept_fresh_ones_kept() {
        let dir = std::env::temp_dir().join(format!("bext-dylib-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.so");
        let fresh = dir.join("fresh.so");
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&fresh, "x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE)
            .unwrap();
        sweep(&dir);
        assert!(!old.exists());
        assert!(fresh.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
