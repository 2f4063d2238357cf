//! An app's modules compiled once per code version. Parsing and compiling
//! a module was paid by every isolate that loaded it: each cold app's
//! first request, each isolate after an eviction or a rotation, and each
//! app of a white-label bundle again. The first isolate to load a file's
//! bytes compiles them and keeps the QuickJS bytecode; every later
//! isolate, of that app or of any app whose file has the same bytes,
//! reads the bytecode and skips the parser.
//!
//! The key is the file's bytes, never its path or a time: a deploy or a
//! reload reads the files again, and changed bytes are compiled anew, so
//! stale bytecode is never run. A module that does not compile is an
//! error each time and nothing is kept, so a broken module is refused
//! with its own error at every load.
//!
//! Bytecode names its module (and the file of each function, for stack
//! traces) by one atom: the path it was compiled under. An app of the
//! same bundle in another directory gets a copy with that atom rewritten
//! to its own path (see [`renamed`]), so its stack traces and its imports
//! are its own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use rquickjs::module::Declared;
use rquickjs::{Ctx, Module, WriteOptions};

/// A module's bytes and their bytecode, compiled under `name`.
pub(crate) struct Code {
    source: Arc<[u8]>,
    name: String,
    bytecode: Box<[u8]>,
    /// Whether other paths may be given this bytecode: the compiled name
    /// is ASCII (kept as one byte a character) and the source never spells
    /// it, so the one atom to rewrite is the module's name alone.
    renamable: bool,
}

impl Code {
    /// The bytecode for the module named `name`, when this code can be.
    fn bytecode_for(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        if name == self.name {
            Some(std::borrow::Cow::Borrowed(&self.bytecode))
        } else if self.renamable && name.is_ascii() {
            renamed(&self.bytecode, &self.name, name).map(std::borrow::Cow::Owned)
        } else {
            None
        }
    }
}

/// Compiled code of every pool, by a hash of the source bytes, held
/// weakly: the apps' module caches hold it, and a reload that drops the
/// last app of a code version drops its bytecode.
#[derive(Default)]
struct Shelf {
    by_source: HashMap<u64, Vec<Weak<Code>>>,
    /// Entries, and entries alive at the last sweep: the dead are swept
    /// when the count doubles.
    count: usize,
    swept_at: usize,
}

static SHELF: LazyLock<Mutex<Shelf>> = LazyLock::new(Mutex::default);

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Code compiled by any pool from the same bytes that can serve `name`.
fn shared(source: &[u8], name: &str) -> Option<Arc<Code>> {
    let shelf = SHELF.lock().unwrap_or_else(PoisonError::into_inner);
    let bucket = shelf.by_source.get(&hash(source))?;
    bucket
        .iter()
        .filter_map(Weak::upgrade)
        .find(|code| *code.source == *source && (code.name == name || (code.renamable && name.is_ascii())))
}

fn keep(code: &Arc<Code>) {
    let mut shelf = SHELF.lock().unwrap_or_else(PoisonError::into_inner);
    let shelf = &mut *shelf;
    shelf
        .by_source
        .entry(hash(&code.source))
        .or_default()
        .push(Arc::downgrade(code));
    shelf.count += 1;
    if shelf.count > 2 * shelf.swept_at.max(64) {
        shelf.by_source.retain(|_, bucket| {
            bucket.retain(|w| w.strong_count() > 0);
            !bucket.is_empty()
        });
        shelf.count = shelf.by_source.values().map(Vec::len).sum();
        shelf.swept_at = shelf.count;
    }
}

/// The module `name` with `source` declared in `ctx`: from bytecode in
/// `own` (this pool's code, by name), else from code another pool
/// compiled from the same bytes, else compiled here and kept in both.
#[allow(unsafe_code)]
pub(crate) fn declare<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    source: &Arc<[u8]>,
    own: &Mutex<HashMap<String, Arc<Code>>>,
) -> rquickjs::Result<Module<'js, Declared>> {
    let mine = own.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
    let found = mine
        .filter(|code| *code.source == **source)
        .or_else(|| shared(source, name));
    if let Some(code) = found
        && let Some(bytes) = code.bytecode_for(name)
    {
        // SAFETY: the bytes were written by `Module::write` below, in this
        // process, by the same QuickJS; `renamed` changed only one atom's
        // characters and the checksum field, keeping the format.
        let module = unsafe { Module::load(ctx.clone(), &bytes)? };
        own.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), code);
        return Ok(module);
    }
    let module = Module::declare(ctx.clone(), name, source.to_vec())?;
    if let Ok(bytecode) = module.write(WriteOptions::default()) {
        let code = Arc::new(Code {
            source: source.clone(),
            name: name.to_owned(),
            bytecode: bytecode.into_boxed_slice(),
            renamable: name.is_ascii() && !contains(source, name.as_bytes()),
        });
        keep(&code);
        own.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), code);
    }
    Ok(module)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// QuickJS's atom type of a string atom (`JS_ATOM_TYPE_STRING`).
const ATOM_STRING: u8 = 1;
/// The checksum QuickJS accepts without checking (`UINT32_MAX`): the
/// bytes were written in this process, so there is nothing to detect.
const NO_CHECKSUM: [u8; 4] = [0xff; 4];

fn leb128(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    for i in 0..5 {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u32::from(b & 0x7f) << (i * 7);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `bytecode` with its string atom `from` spelled `to` (both ASCII):
/// QuickJS's serialised form starts with a version byte, a checksum and
/// the table of the atoms it uses, each string atom as a type byte, a
/// LEB128 of `len << 1 | wide` and its characters; the module's name and
/// its functions' file name are one entry of that table. `None` when the
/// table does not read as expected or has no such atom.
fn renamed(bytecode: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let mut at = 5;
    let count = leb128(bytecode, &mut at)?;
    for _ in 0..count {
        let kind = *bytecode.get(at)?;
        at += 1;
        if kind & 0x80 != 0 {
            // A built-in atom: its number in the byte, or after it.
            if kind & 0x40 != 0 {
                leb128(bytecode, &mut at)?;
            }
            continue;
        }
        let start = at - 1;
        let header = leb128(bytecode, &mut at)?;
        let wide = header & 1 == 1;
        let len = (header >> 1) as usize * if wide { 2 } else { 1 };
        let chars = bytecode.get(at..at + len)?;
        at += len;
        if kind == ATOM_STRING && !wide && chars == from.as_bytes() {
            let mut out = Vec::with_capacity(bytecode.len() + to.len());
            out.extend_from_slice(&bytecode[..start]);
            out.push(ATOM_STRING);
            put_leb128(&mut out, u32::try_from(to.len()).ok()? << 1);
            out.extend_from_slice(to.as_bytes());
            out.extend_from_slice(&bytecode[at..]);
            out[1..5].copy_from_slice(&NO_CHECKSUM);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use rquickjs::loader::{Loader, Resolver};
    use rquickjs::{CatchResultExt, Context, Ctx, Module, Runtime};

    use super::{Code, declare, renamed};

    const LIB: &str = "export const where = 'lib';";
    macro_rules! main_js {
        () => {
            "import { where } from './lib.js';\n\
            export function boom() { throw new Error('boom from ' + where); }\n\
            export const answer = 6 * 7;"
        };
    }
    const MAIN: &str = main_js!();

    /// Files by path; modules declared through `declare`.
    struct Files {
        files: HashMap<String, &'static str>,
        own: Arc<Mutex<HashMap<String, Arc<Code>>>>,
    }

    impl Resolver for Files {
        fn resolve<'js>(
            &mut self,
            _: &Ctx<'js>,
            base: &str,
            name: &str,
            _: Option<rquickjs::loader::ImportAttributes<'js>>,
        ) -> rquickjs::Result<String> {
            let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
            Ok(format!("{dir}/{}", name.trim_start_matches("./")))
        }
    }

    impl Loader for Files {
        fn load<'js>(
            &mut self,
            ctx: &Ctx<'js>,
            name: &str,
            _: Option<rquickjs::loader::ImportAttributes<'js>>,
        ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
            let source = self.files.get(name).ok_or_else(|| rquickjs::Error::new_loading(name))?;
            declare(ctx, name, &Arc::from(source.as_bytes()), &self.own)
        }
    }

    /// Loads `dir/main.js` (importing `dir/lib.js`) in a new runtime; the
    /// answer export and the stack of `boom()`.
    fn run(
        dir: &str,
        main: &'static str,
        own: &Arc<Mutex<HashMap<String, Arc<Code>>>>,
    ) -> Result<(i32, String), String> {
        let runtime = Runtime::new().unwrap();
        let files = |own: Arc<Mutex<_>>| Files {
            files: HashMap::from([(format!("{dir}/main.js"), main), (format!("{dir}/lib.js"), LIB)]),
            own,
        };
        runtime.set_loader(files(own.clone()), files(own.clone()));
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let source: Arc<[u8]> = Arc::from(main.as_bytes());
            let module = declare(&ctx, &format!("{dir}/main.js"), &source, own)
                .catch(&ctx)
                .map_err(|e| e.to_string())?;
            let (module, promise) = module.eval().catch(&ctx).map_err(|e| e.to_string())?;
            promise.finish::<()>().catch(&ctx).map_err(|e| e.to_string())?;
            let answer: i32 = module.get("answer").unwrap();
            let boom: rquickjs::Function<'_> = module.get("boom").unwrap();
            let err = boom.call::<_, ()>(()).catch(&ctx).unwrap_err();
            Ok((answer, err.to_string()))
        })
    }

    /// The first load compiles and keeps the code; later loads, in new
    /// runtimes, read it: under the same path, and under another app's
    /// path (renamed: its stack names its own file, its imports are its own).
    #[test]
    fn code_compiled_once_runs_under_its_own_and_other_paths() {
        let (a, b) = (Arc::default(), Arc::default());
        let first = run("/srv/app-a", MAIN, &a).unwrap();
        assert_eq!(first.0, 42);
        assert!(
            first.1.contains("boom from lib") && first.1.contains("/srv/app-a/main.js:2"),
            "{}",
            first.1
        );
        let kept = a.lock().unwrap().get("/srv/app-a/main.js").cloned().expect("kept");
        assert_eq!(run("/srv/app-a", MAIN, &a).unwrap(), first);
        let other = run("/srv/other-app-b", MAIN, &b).unwrap();
        assert_eq!(other.0, 42);
        assert!(other.1.contains("/srv/other-app-b/main.js:2"), "{}", other.1);
        assert!(!other.1.contains("app-a"), "{}", other.1);
        // B was given A's code, not a compile of its own.
        let given = b.lock().unwrap().get("/srv/other-app-b/main.js").cloned().unwrap();
        assert!(Arc::ptr_eq(&kept, &given));
    }

    /// Other bytes under the same path are compiled anew: a deploy never
    /// runs the code it replaced.
    #[test]
    fn changed_bytes_are_compiled_anew() {
        let own = Arc::default();
        assert_eq!(run("/srv/deploy", concat!(main_js!(), "// v1"), &own).unwrap().0, 42);
        const V2: &str = "import { where } from './lib.js';\n\
            export function boom() { throw new Error('v2 ' + where); }\n\
            export const answer = 7;";
        let v2 = run("/srv/deploy", V2, &own).unwrap();
        assert_eq!(v2.0, 7);
        assert!(v2.1.contains("v2 lib"), "{}", v2.1);
    }

    /// A module that does not compile is its own error each time, and
    /// nothing is kept for it.
    #[test]
    fn a_broken_module_is_an_error_each_time() {
        const BROKEN: &str = "export const answer = 6 *;";
        let own = Arc::default();
        for _ in 0..2 {
            let err = run("/srv/broken", BROKEN, &own).unwrap_err();
            assert!(
                err.contains("unexpected token") && err.contains("/srv/broken/main.js:1"),
                "{err}"
            );
        }
        assert!(!own.lock().unwrap().contains_key("/srv/broken/main.js"));
    }

    /// A source that spells its own path is never renamed (the literal
    /// would be renamed with it): another path compiles its own.
    #[test]
    fn a_source_naming_its_path_is_not_shared() {
        const SELF: &str = "export const answer = '/srv/self-a/main.js'.length;\n\
            export function boom() { throw new Error('x'); }";
        let (a, b) = (Arc::default(), Arc::default());
        assert_eq!(run("/srv/self-a", SELF, &a).unwrap().0, 19);
        assert_eq!(run("/srv/self-b", SELF, &b).unwrap().0, 19);
        let (ka, kb) = (
            a.lock().unwrap().get("/srv/self-a/main.js").cloned().unwrap(),
            b.lock().unwrap().get("/srv/self-b/main.js").cloned().unwrap(),
        );
        assert!(!Arc::ptr_eq(&ka, &kb));
    }

    #[test]
    fn renaming_needs_the_atom() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let module = Module::declare(ctx.clone(), "/a/x.js", "export const y = 1;").unwrap();
            let bytes = module.write(rquickjs::WriteOptions::default()).unwrap();
            assert!(renamed(&bytes, "/nope/x.js", "/b/x.js").is_none());
            let out = renamed(&bytes, "/a/x.js", "/bb/x.js").unwrap();
            assert_eq!(out.len(), bytes.len() + 1);
            assert!(renamed(&bytes[..6], "/a/x.js", "/b/x.js").is_none());
        });
    }
}
