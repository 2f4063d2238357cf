//! What a bundle may hold, and how an uploaded one is unpacked.
//!
//! A bundle is regular files and directories, named by relative paths that
//! stay inside it, with at most [`Limits::max_bytes`] of files and
//! [`Limits::max_entries`] entries (the manifest's `max_bundle_bytes` and
//! `max_bundle_entries`). An upload (a tar archive) is unpacked here entry
//! by entry, not with `tar::Archive::unpack`, which writes sparse files
//! (a 2.5 KB archive can make a 2 GiB file), hard links, devices and FIFOs
//! and has no bounds: every entry is checked before a byte of it is
//! written. A local directory is held to the same rules by the store as it
//! copies it (`store.rs`). The bundle's own `bext.config.toml` names
//! paths too (`static_dir`, `entry`); `check_config` keeps them inside
//! the stored version.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::DeployError;

/// How large a bundle may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total size of its files, unpacked.
    pub max_bytes: u64,
    /// Files and directories in it (for an upload: the archive's entries,
    /// and every directory an entry's name makes).
    pub max_entries: u64,
}

impl Default for Limits {
    /// 1 GiB and 100,000 entries: a large site (a Next.js build with its
    /// `node_modules` pruned, a documentation site of thousands of pages)
    /// fits, a disk-filling one does not.
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

/// Longest name below a bundle's root, in bytes.
pub const MAX_PATH: usize = 1024;

/// Longest single file or directory name, in bytes (most file systems' own
/// limit).
pub const MAX_COMPONENT: usize = 255;

/// Deepest a bundle's directories nest. Real bundles stay far below (a
/// Next.js standalone build's `node_modules` reaches about 15); the limit
/// keeps every walk of a stored tree (copy, check, removal, routes)
/// shallow, so a small archive of one deeply nested file cannot exhaust
/// a thread's stack.
pub const MAX_DEPTH: usize = 64;

/// The bundle's own configuration file, read for apps a deploy creates.
pub const CONFIG_FILE: &str = "bext.config.toml";

/// Counts a bundle's entries and bytes against its [`Limits`].
#[derive(Debug)]
pub(crate) struct Tally {
    limits: Limits,
    entries: u64,
    bytes: u64,
}

impl Tally {
    pub(crate) fn new(limits: Limits) -> Tally {
        Tally {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    /// One more entry, `name`.
    pub(crate) fn entry(&mut self, name: &str) -> Result<(), DeployError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(DeployError::TooLarge(format!(
                "bundle entry `{name}`: the bundle has more than {} entries (files and directories; the deploy manifest's max_bundle_entries)",
                self.limits.max_entries
            )));
        }
        Ok(())
    }

    /// `size` more bytes, of entry `name`: checked before they are written.
    pub(crate) fn bytes(&mut self, size: u64, name: &str) -> Result<(), DeployError> {
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_bytes {
            return Err(DeployError::TooLarge(format!(
                "bundle entry `{name}` ({}): the bundle's files come to more than {} (the deploy manifest's max_bundle_bytes)",
                human(size),
                human(self.limits.max_bytes)
            )));
        }
        Ok(())
    }
}

/// `1 GiB`, `512 KiB`, `1000 bytes`.
fn human(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
        if bytes >= unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} bytes")
}

/// A name as an error message shows it: lossy UTF-8, control characters
/// escaped, cut at 120 characters.
pub(crate) fn shown(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 120 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why one file or directory name (no `/` in it) cannot be in a bundle.
pub(crate) fn check_component(name: &str) -> Result<(), String> {
    if name.len() > MAX_COMPONENT {
        return Err(format!(
            "a name of {} bytes (at most {MAX_COMPONENT} for one file or directory)",
            name.len()
        ));
    }
    if name.contains('\\') {
        return Err(
            "a backslash in a name: use `/` between directories (a `\\` would be part of a file's name here)".into(),
        );
    }
    if name.chars().any(char::is_control) {
        return Err("a control character in a name".into());
    }
    Ok(())
}

/// The directories and file name of a bundle entry's name (empty for the
/// bundle's root, `.` or `./`), or why it is refused: not UTF-8, too long,
/// absolute, with a `..`, a backslash or a control character.
pub(crate) fn components(name: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(name).map_err(|_| "a name that is not UTF-8".to_owned())?;
    if text.len() > MAX_PATH {
        return Err(format!("a name of {} bytes (at most {MAX_PATH})", text.len()));
    }
    if text.starts_with('/') {
        return Err("an absolute path: names in a bundle are relative to it".into());
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a `..` in the name, which would leave the bundle".into()),
            part => {
                check_component(part)?;
                parts.push(part);
            }
        }
    }
    // The last part may be a file's name, in no directory of its own.
    if parts.len() > MAX_DEPTH + 1 {
        return Err(too_deep(parts.len() - 1));
    }
    Ok(parts)
}

/// Why a name `depth` directories deep is refused.
pub(crate) fn too_deep(depth: usize) -> String {
    format!("{depth} directories deep (at most {MAX_DEPTH})")
}

/// What a name in an unpacked archive is so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    /// A directory; `named` when the archive has an entry for it (not
    /// only entries inside it).
    Dir {
        named: bool,
    },
}

/// Unpacks the tar archive `tar` into the empty directory `into`: regular
/// files and directories only, every name inside `into`, each name once,
/// within `limits`. The first entry that breaks a rule stops it with an
/// error naming the entry and the rule; the caller removes `into`.
pub(crate) fn unpack(tar: &[u8], into: &Path, limits: Limits) -> Result<(), DeployError> {
    let not_a_tar = |e: io::Error| DeployError::Bundle(format!("the upload is not a valid tar archive: {e}"));
    let mut archive = tar::Archive::new(tar);
    let mut tally = Tally::new(limits);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for entry in archive.entries().map_err(not_a_tar)? {
        let mut entry = entry.map_err(not_a_tar)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (`git archive` puts its commit there):
            // no file, and nothing the entries after it take from it.
            tally.entry("(pax global header)")?;
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = shown(&raw);
        let refuse = |why: String| DeployError::Bundle(format!("bundle entry `{name}`: {why}"));
        tally.entry(&name)?;
        let parts = components(&raw).map_err(refuse)?;
        if kind.is_gnu_sparse() {
            return Err(refuse(SPARSE.replace("{}", "GNU sparse file")));
        }
        if is_pax_sparse(&mut entry).map_err(not_a_tar)? {
            return Err(refuse(SPARSE.replace("{}", "PAX sparse file (GNU.sparse.* headers)")));
        }
        let is_file = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => true,
            tar::EntryType::Directory => false,
            other => return Err(refuse(format!("{}: {ONLY}", special(&entry, other)))),
        };
        let key = parts.join("/");
        let mut path = into.to_path_buf();
        parents(&mut path, &parts, &mut seen, &mut tally, &name)?;
        if let Some(last) = parts.last() {
            path.push(last);
        }
        match (is_file, seen.get(&key).copied()) {
            (_, Some(Seen::File) | Some(Seen::Dir { named: true })) => {
                return Err(refuse("named twice in the archive".into()));
            }
            (true, Some(Seen::Dir { named: false })) => {
                return Err(refuse("a file, but other entries are inside it".into()));
            }
            (true, None) => {
                if parts.is_empty() {
                    return Err(refuse("a file in place of the bundle's root directory".into()));
                }
                let size = entry.size();
                tally.bytes(size, &name)?;
                seen.insert(key, Seen::File);
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| DeployError::io(&path, e))?;
                // The archive is in memory: what can fail here is the write.
                let written =
                    io::copy(&mut (&mut entry).take(size), &mut out).map_err(|e| DeployError::io(&path, e))?;
                if written != size {
                    return Err(refuse(format!(
                        "the archive ends inside it ({written} of its {size} bytes): a truncated upload"
                    )));
                }
            }
            (false, existing) => {
                if existing.is_none() && !parts.is_empty() {
                    fs::create_dir(&path).map_err(|e| DeployError::io(&path, e))?;
                }
                seen.insert(key, Seen::Dir { named: true });
            }
        }
    }
    Ok(())
}

const ONLY: &str = "bundles hold regular files and directories only";

/// `{}` is the kind of sparse file.
const SPARSE: &str = "a {}: sparse files are refused (a few bytes of archive can stand for gigabytes of file); \
                      bundles hold regular files and directories only";

/// Whether the entry's PAX headers describe a sparse file (the `GNU.sparse.*`
/// keys of GNU tar's PAX sparse formats 0.0, 0.1 and 1.0).
fn is_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<bool> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(false);
    };
    for extension in extensions {
        if extension?.key_bytes().starts_with(b"GNU.sparse.") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a refused entry is, with where a link points.
fn special<R: Read>(entry: &tar::Entry<'_, R>, kind: tar::EntryType) -> String {
    let target = || {
        entry
            .link_name_bytes()
            .map_or_else(|| "nothing".to_owned(), |t| format!("`{}`", shown(&t)))
    };
    match kind {
        tar::EntryType::Symlink => format!("a symbolic link (to {})", target()),
        tar::EntryType::Link => format!("a hard link (to {})", target()),
        tar::EntryType::Char => "a character device".into(),
        tar::EntryType::Block => "a block device".into(),
        tar::EntryType::Fifo => "a FIFO (named pipe)".into(),
        other => format!("an entry of tar type {:?}", char::from(other.as_byte())),
    }
}

/// Makes the directories the name of entry `name` goes through (each
/// counted as an entry the first time); a name going through a file is
/// refused.
fn parents(
    path: &mut PathBuf,
    parts: &[&str],
    seen: &mut HashMap<String, Seen>,
    tally: &mut Tally,
    name: &str,
) -> Result<(), DeployError> {
    let mut key = String::new();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part);
        path.push(part);
        match seen.get(&key) {
            Some(Seen::File) => {
                return Err(DeployError::Bundle(format!(
                    "bundle entry `{name}`: `{key}` is a file in the archive, so nothing can be inside it"
                )));
            }
            Some(Seen::Dir { .. }) => {}
            None => {
                tally.entry(name)?;
                fs::create_dir(&*path).map_err(|e| DeployError::io(path, e))?;
                seen.insert(key.clone(), Seen::Dir { named: false });
            }
        }
    }
    Ok(())
}

/// Largest `bext.config.toml` a bundle may have (the kernel reads it on
/// every pipeline build).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// `bext.config.toml` as the kernel reads it (`RunConfig` in
/// `kernel/src/config/platform.rs`, which `bext run` uses too): a key or a type
/// it does not take would fail every pipeline build once the version is
/// current, so it refuses the deploy here. Keep the two in step; a field
/// missing here refuses bundles, it never breaks the server.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleConfig {
    #[serde(default)]
    server: BundleServer,
    #[serde(default)]
    #[allow(dead_code)] // checked for its type only; the kernel reads it
    cache: Option<BundleCache>,
    #[serde(default)]
    framework: Option<BundleFramework>,
    #[serde(default)]
    redis: Option<toml::Value>,
    #[serde(default)]
    hooks: Option<toml::Value>,
}

/// `[cache.isr]` (the kernel turns it into the app's isr settings).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleCache {
    #[serde(default)]
    #[allow(dead_code)] // checked for its type only
    isr: Option<BundleIsr>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // checked for their types only
struct BundleIsr {
    #[serde(default)]
    default_ttl_ms: Option<u64>,
    #[serde(default)]
    default_swr_ms: Option<u64>,
    #[serde(default)]
    max_entries: Option<u64>,
}

/// `[framework] type`: a runtime by bext's or the original's name.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFramework {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleServer {
    #[serde(default)]
    #[allow(dead_code)] // checked for its type only
    listen: Option<String>,
    #[serde(default)]
    static_dir: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // checked for its type only
    spa_fallback: bool,
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    entry: Option<String>,
    /// `hybrid`: where its `api_prefix` requests go.
    #[serde(default)]
    upstream: Option<String>,
    /// `hybrid`: the path sent to `upstream`.
    #[serde(default)]
    api_prefix: Option<String>,
}

/// The module names a fetch-handler bundle's package.json gives
/// (`exports`, `module`, `main`), each relative, without `..`, and inside
/// the bundle once links are followed; for an SSR bundle (`rendered`,
/// whose module is found from the bundle's root as here), one of them or
/// one of the usual build outputs is a file of the bundle: the kernel
/// would refuse to load it otherwise.
fn check_package_entries(
    tree: &Path,
    rendered: Option<(&str, &str)>,
    refuse: &dyn Fn(&str, String) -> DeployError,
) -> Result<(), DeployError> {
    let named = package_entries(tree, &|why| refuse("", why))?;
    let Some((runtime_key, runtime)) = rendered else {
        return Ok(());
    };
    let root = fs::canonicalize(tree).map_err(|e| DeployError::io(tree, e))?;
    let is_module = |name: &str| fs::canonicalize(root.join(name)).is_ok_and(|real| real.is_file());
    if named.iter().any(|n| is_module(n)) || bext_plugin_abi::BUILD_OUTPUTS.iter().any(|n| is_module(n)) {
        return Ok(());
    }
    Err(refuse(
        runtime_key,
        format!(
            "{runtime_key} = {runtime:?} has no module to run: package.json names none that is in the bundle (`exports`, `module`, `main`) and none of {} is there; build the app before deploying it, or name its module with `[server] entry`",
            bext_plugin_abi::BUILD_OUTPUTS.join(", ")
        ),
    ))
}

/// The names of [`check_package_entries`], each checked to stay inside.
fn package_entries(tree: &Path, refuse: &dyn Fn(String) -> DeployError) -> Result<Vec<String>, DeployError> {
    let package = tree.join("package.json");
    let Ok(text) = fs::read_to_string(&package) else {
        return Ok(Vec::new());
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("package.json is not JSON: {e}")))?;
    let exports = json.get("exports").map(|e| e.get(".").unwrap_or(e));
    let names = [
        exports.and_then(|e| e.as_str()),
        exports.and_then(|e| e.get("import")?.as_str()),
        exports.and_then(|e| e.get("default")?.as_str()),
        json.get("module").and_then(|v| v.as_str()),
        json.get("main").and_then(|v| v.as_str()),
    ];
    let root = fs::canonicalize(tree).map_err(|e| DeployError::io(tree, e))?;
    let mut found = Vec::new();
    for name in names.into_iter().flatten() {
        let trimmed = name.trim_start_matches("./");
        components(trimmed.as_bytes())
            .map_err(|why| refuse(format!("package.json names {name:?} as the app's module: {why}")))?;
        if let Ok(real) = fs::canonicalize(root.join(trimmed))
            && !real.starts_with(&root)
        {
            return Err(refuse(format!(
                "package.json names {name:?} as the app's module, which resolves to {}, outside the bundle",
                real.display()
            )));
        }
        found.push(trimmed.to_owned());
    }
    Ok(found)
}

/// A `hybrid` bundle's `[server] upstream` (required, `http[s]://host[:port]`)
/// and `api_prefix` (a path like `/api`); neither on another runtime.
fn check_hybrid(
    server: &BundleServer,
    runtime: Option<&str>,
    runtime_key: &str,
    refuse: &dyn Fn(&str, String) -> DeployError,
) -> Result<(), DeployError> {
    if runtime != Some("hybrid") {
        for (key, set) in [
            ("upstream", server.upstream.is_some()),
            ("api_prefix", server.api_prefix.is_some()),
        ] {
            if set {
                return Err(refuse(
                    &format!("server.{key}"),
                    format!(
                        "server.{key}: only a `hybrid` app sends requests to an upstream: set `{runtime_key} = \"hybrid\"` or remove `{key}`"
                    ),
                ));
            }
        }
        return Ok(());
    }
    let Some(url) = server.upstream.as_deref() else {
        return Err(refuse(
            runtime_key,
            format!(
                "{runtime_key} = \"hybrid\" sends `/api/*` (its `[server] api_prefix`) to `[server] upstream = \"http://host:port\"`, which is unset"
            ),
        ));
    };
    let uri: http::Uri = url.parse().map_err(|e| {
        refuse(
            "server.upstream",
            format!("server.upstream = {url:?} is not a URL: {e}"),
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(refuse(
            "server.upstream",
            format!("server.upstream = {url:?}: write \"http://host:port\" or \"https://host:port\""),
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) || uri.query().is_some() {
        return Err(refuse(
            "server.upstream",
            format!("server.upstream = {url:?}: an upstream URL has no credentials and no query"),
        ));
    }
    if let Some(prefix) = server.api_prefix.as_deref()
        && (!prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/'))
    {
        return Err(refuse(
            "server.api_prefix",
            format!("server.api_prefix = {prefix:?}: a path like \"/api\""),
        ));
    }
    Ok(())
}

/// Why a path the bundle's configuration names (`field`, relative to the
/// bundle or to its `static_dir`) cannot be: absolute, with a `..`, a
/// backslash or a control character, too long.
fn check_config_path(
    field: &str,
    value: &str,
    refuse: &dyn Fn(&str, String) -> DeployError,
) -> Result<(), DeployError> {
    let key = format!("server.{field}");
    (components(value.as_bytes()).map_err(|why| refuse(&key, format!("{key} = {value:?}: {why}")))).map(drop)
}

/// `:line:column` of the value at the dotted `key` in the TOML `text`,
/// or nothing when the text does not write it: a bundle's error points
/// where the kernel's configuration errors point.
fn position(text: &str, key: &str) -> String {
    let Ok(root) = toml::de::DeTable::parse(text) else {
        return String::new();
    };
    let mut table = root.get_ref();
    let mut found = None;
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            return String::new();
        };
        found = Some(value.span().start);
        match value.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    let Some(offset) = found else {
        return String::new();
    };
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(":{line}:{column}")
}

/// Checks a local bundle directory as `bext deploy` of it does, without
/// storing it (`bext check --deploy DIR`): each entry as the deploy copies
/// it, into a scratch store in a temporary directory removed after, then
/// its `bext.config.toml` ([`check_config`]). Whether it is a JS app.
pub fn check_dir(dir: &Path, limits: Limits) -> Result<bool, DeployError> {
    if !dir.is_dir() {
        return Err(DeployError::Bundle(format!("{}: not a directory", dir.display())));
    }
    let scratch = tempfile::tempdir().map_err(|e| DeployError::io(&std::env::temp_dir(), e))?;
    let store = crate::store::Store::open(scratch.path())?;
    let (tree, _) = store.put("check", "check", dir, limits, &mut |_, _| {})?;
    check_config(&tree)
}

/// Checks the configuration of the stored version `tree`
/// (`bext.config.toml`, which the kernel reads for an app a deploy
/// creates): what the kernel takes, a runtime a bundle can be, and the
/// paths it names (`[server] static_dir` and `entry`) relative, without
/// `..` and, resolved on disk with every link followed, inside `tree`;
/// `static_dir` a directory of it, a JS app's `entry` a file of it.
/// Whether the bundle is a JS app (it runs isolates).
pub(crate) fn check_config(tree: &Path) -> Result<bool, DeployError> {
    let file = tree.join(CONFIG_FILE);
    let refuse = |why: String| DeployError::Bundle(format!("{CONFIG_FILE}: {why}"));
    match fs::symlink_metadata(&file) {
        // No configuration: a static site, or a server module it runs.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(bext_plugin_abi::fetch_handler_module(tree).is_some());
        }
        Err(e) => return Err(DeployError::io(&file, e)),
        Ok(meta) if !meta.is_file() => return Err(refuse("not a regular file".into())),
        Ok(meta) if meta.len() > MAX_CONFIG_BYTES => {
            return Err(refuse(format!(
                "{} bytes (at most {})",
                meta.len(),
                human(MAX_CONFIG_BYTES)
            )));
        }
        Ok(_) => {}
    }
    let text = fs::read_to_string(&file).map_err(|e| refuse(format!("cannot be read: {e}")))?;
    // From here on, each error points at the key it is about.
    let refuse = |key: &str, why: String| DeployError::Bundle(format!("{CONFIG_FILE}{}: {why}", position(&text, key)));
    // The platform file's tables and keys, said as such rather than as
    // serde's "unknown field".
    if let Ok(table) = text.parse::<toml::Table>() {
        let server = table.get("server").and_then(toml::Value::as_table);
        let keys =
            (table.keys().cloned()).chain(server.into_iter().flat_map(|t| t.keys().map(|k| format!("server.{k}"))));
        for key in keys {
            if let Some(instead) = bext_plugin_abi::platform_file_key(&key) {
                return Err(refuse(&key, format!("{key}: {instead}")));
            }
        }
    }
    let config: BundleConfig = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(":{}:{column}", before.matches('\n').count() + 1)
        });
        DeployError::Bundle(format!("{CONFIG_FILE}{at}: {}", e.message().trim()))
    })?;
    if config.redis.is_some() {
        return Err(refuse(
            "redis",
            "[redis]: a deployed app shares the platform's Redis; set it in the platform file".into(),
        ));
    }
    if config.hooks.is_some() {
        return Err(refuse(
            "hooks",
            "[hooks]: a deployed app's hooks are the platform file's `[apps.<id>] hooks`".into(),
        ));
    }
    let server = config.server;
    // Errors name the key the file says the runtime with.
    let (runtime, runtime_key) = match (
        server.runtime.as_deref(),
        config.framework.as_ref().map(|f| f.kind.as_str()),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(refuse(
                "framework.type",
                format!("server.runtime = {a:?} and framework.type = {b:?} disagree: keep one"),
            ));
        }
        (Some(a), _) => (Some(a), "server.runtime"),
        (None, b) => (b, "framework.type"),
    };
    // `ssr`/`hybrid`: the bundle is the app's folder, `static_dir` its
    // assets, `entry` (or package.json's) relative to the bundle.
    check_hybrid(&server, runtime, runtime_key, &refuse)?;
    let rendered = matches!(runtime, Some("ssr" | "hybrid"));
    let fetch_handler = matches!(runtime, Some("hono")) || rendered;
    if fetch_handler && server.entry.is_none() {
        // Its entry is found from package.json: that name stays inside too.
        let module = runtime.filter(|_| rendered).map(|r| (runtime_key, r));
        check_package_entries(tree, module, &refuse)?;
    }
    // A bundle that says nothing of how it is served and holds a module
    // exporting `fetch` runs it (the kernel's one detection).
    let detected =
        runtime.is_none() && server.static_dir.is_none() && bext_plugin_abi::fetch_handler_module(tree).is_some();
    let js = match runtime {
        None => detected,
        Some("static") => false,
        Some("js") => true,
        Some("hono" | "ssr" | "hybrid") => server.entry.is_some(),
        Some("proxy") => {
            return Err(refuse(
                runtime_key,
                format!(
                    "{runtime_key} = \"proxy\": a bundle cannot be a proxy app; declare it in the platform file, or make the bundle `hybrid` with `[server] upstream`"
                ),
            ));
        }
        Some(other) => {
            return Err(refuse(
                runtime_key,
                format!("{runtime_key} = {other:?}: a bundle is a `static`, `js`, `hono`, `ssr` or `hybrid` app"),
            ));
        }
    };
    for (field, value) in [("static_dir", &server.static_dir), ("entry", &server.entry)] {
        if let Some(value) = value {
            check_config_path(field, value, &refuse)?;
        }
    }
    let root = fs::canonicalize(tree).map_err(|e| DeployError::io(tree, e))?;
    // Lexically inside; now as the file system resolves it.
    let inside = |field: &str, value: &str, path: &Path| -> Result<Option<PathBuf>, DeployError> {
        match fs::canonicalize(path) {
            Ok(real) if real.starts_with(&root) => Ok(Some(real)),
            Ok(real) => Err(refuse(
                &format!("server.{field}"),
                format!(
                    "server.{field} = {value:?} resolves to {}, outside the bundle",
                    real.display()
                ),
            )),
            // Missing, or under a file: nothing there to leave by.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(DeployError::io(path, e)),
        }
    };
    let source = match server.static_dir.as_deref() {
        Some(dir) => match inside("static_dir", dir, &root.join(dir))? {
            Some(real) if real.is_dir() => real,
            _ => {
                return Err(refuse(
                    "server.static_dir",
                    format!("server.static_dir = {dir:?} is not a directory of the bundle"),
                ));
            }
        },
        None => root.clone(),
    };
    let (base, relative_to) = match rendered {
        true => (&root, "the bundle"),
        false => (&source, "static_dir"),
    };
    let name = server.entry.as_deref().unwrap_or("index.js");
    let found = inside("entry", name, &base.join(name))?;
    if js && !found.is_some_and(|real| real.is_file()) {
        let key = if server.entry.is_some() {
            "server.entry"
        } else {
            runtime_key
        };
        return Err(refuse(
            key,
            match &server.entry {
                Some(_) => {
                    format!("server.entry = {name:?} is not a file of the bundle (it is relative to {relative_to})")
                }
                None => format!(
                    "{runtime_key} = {:?} runs index.js (relative to {relative_to}), which the bundle does not have: add it, or name the module with `[server] entry`",
                    runtime.unwrap_or_default()
                ),
            },
        ));
    }
    Ok(js || fetch_handler)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header for `name` of `kind` and `size`, its name written raw (the
    /// builder's own setters refuse `..` and absolute paths).
    fn header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// A PAX extended header (type `x`) with `records`, describing the
    /// entry appended after it.
    fn append_pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
        let mut body = Vec::new();
        for (key, value) in records {
            // "LEN key=value\n", LEN counting its own digits.
            let base = key.len() + value.len() + 3;
            let mut len = base + 1;
            while len != base + len.to_string().len() {
                len += 1;
            }
            body.extend(format!("{len} {key}=").as_bytes());
            body.extend(*value);
            body.push(b'\n');
        }
        let h = header(b"PaxHeaders/x", tar::EntryType::XHeader, body.len() as u64);
        b.append(&h, &body[..]).unwrap();
    }

    fn archive(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, body) in entries {
            b.append(&header(name, *kind, body.len() as u64), *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    const FILE: tar::EntryType = tar::EntryType::Regular;
    const DIR: tar::EntryType = tar::EntryType::Directory;

    fn unpack_err(tar: &[u8], limits: Limits) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(tar, dir.path(), limits).unwrap_err();
        (err.to_string(), dir)
    }

    fn refused(entries: &[(&[u8], tar::EntryType, &[u8])]) -> String {
        unpack_err(&archive(entries), Limits::default()).0
    }

    #[test]
    fn files_and_directories_unpack() {
        let tar = archive(&[
            (b"./", DIR, b""),
            (b"./index.html", FILE, b"home"),
            (b"./a/b/c.css", FILE, b"body{}"),
            (b"a/b/", DIR, b""),
            (b"./a//d.txt", FILE, b"d"),
            (b"empty", FILE, b""),
        ]);
        let dir = tempfile::tempdir().unwrap();
        unpack(&tar, dir.path(), Limits::default()).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("index.html")).unwrap(), "home");
        assert_eq!(fs::read_to_string(dir.path().join("a/b/c.css")).unwrap(), "body{}");
        assert_eq!(fs::read_to_string(dir.path().join("a/d.txt")).unwrap(), "d");
        assert_eq!(fs::metadata(dir.path().join("empty")).unwrap().len(), 0);
    }

    #[test]
    fn names_that_leave_the_bundle_or_mislead_are_refused() {
        let long_component = "x".repeat(MAX_COMPONENT + 1);
        let long_path = format!("{}/f", ["d"; MAX_PATH / 2].join("/"));
        let too_deep = format!("{}/f", ["d"; MAX_DEPTH + 1].join("/"));
        for (name, why) in [
            (&b"/etc/passwd"[..], "an absolute path"),
            (b"//etc/passwd", "an absolute path"),
            (b"../x", "a `..`"),
            (b"./a/../../x", "a `..`"),
            (b"a/..", "a `..`"),
            (b"..\\..\\etc\\passwd", "a backslash"),
            (b"a\\b", "a backslash"),
            (b"a\nb", "a control character"),
            (b"caf\xe9", "not UTF-8"),
            (long_component.as_bytes(), "a name of 256 bytes"),
            (long_path.as_bytes(), "at most 1024"),
            (too_deep.as_bytes(), "65 directories deep (at most 64)"),
        ] {
            // Long names go through a GNU long-name entry, as tar writes them.
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(FILE);
            if name.len() < 100 {
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            } else {
                b.append_data(&mut h, std::str::from_utf8(name).unwrap(), &b"x"[..])
                    .unwrap();
            }
            let (err, dir) = unpack_err(&b.into_inner().unwrap(), Limits::default());
            assert!(err.starts_with("bundle entry `"), "{err}");
            assert!(err.contains(why), "{name:?}: {err}");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{name:?} wrote nothing");
        }
        // A PAX `path` header names the entry too.
        let mut b = tar::Builder::new(Vec::new());
        append_pax(&mut b, &[("path", &b"../../etc/cron.d/x"[..])]);
        b.append(&header(b"innocent", FILE, 1), &b"x"[..]).unwrap();
        let (err, _) = unpack_err(&b.into_inner().unwrap(), Limits::default());
        assert!(err.contains("`../../etc/cron.d/x`: a `..`"), "{err}");
    }

    #[test]
    fn links_devices_and_fifos_are_refused() {
        for (kind, target, why) in [
            (
                tar::EntryType::Symlink,
                &b"/etc/passwd"[..],
                "a symbolic link (to `/etc/passwd`)",
            ),
            (
                tar::EntryType::Symlink,
                b"../../../etc",
                "a symbolic link (to `../../../etc`)",
            ),
            (
                tar::EntryType::Symlink,
                b"other-link",
                "a symbolic link (to `other-link`)",
            ),
            (tar::EntryType::Link, b"/etc/shadow", "a hard link (to `/etc/shadow`)"),
            (tar::EntryType::Link, b"index.html", "a hard link (to `index.html`)"),
            (tar::EntryType::Char, b"", "a character device"),
            (tar::EntryType::Block, b"", "a block device"),
            (tar::EntryType::Fifo, b"", "a FIFO"),
            (tar::EntryType::new(b'V'), b"", "tar type 'V'"),
        ] {
            let mut b = tar::Builder::new(Vec::new());
            b.append(&header(b"index.html", FILE, 2), &b"ok"[..]).unwrap();
            let mut h = header(b"x", kind, 0);
            if !target.is_empty() {
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
                h.set_cksum();
            }
            b.append(&h, &b""[..]).unwrap();
            let (err, dir) = unpack_err(&b.into_inner().unwrap(), Limits::default());
            assert!(err.starts_with("bundle entry `x`: "), "{err}");
            assert!(err.contains(why) && err.contains(ONLY), "{err}");
            assert!(!dir.path().join("x").exists());
        }
    }

    #[test]
    fn gnu_sparse_entries_are_refused_before_a_byte_is_written() {
        // 2 GiB of holes around one 512-byte block: 2.5 KB of archive.
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..8].copy_from_slice(b"huge.img");
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(512);
        let gnu = h.as_gnu_mut().unwrap();
        let real: u64 = 2 << 30;
        let octal = |field: &mut [u8], v: u64| {
            let s = format!("{v:0w$o}", w = field.len() - 1);
            field[..s.len()].copy_from_slice(s.as_bytes());
        };
        octal(&mut gnu.sparse[0].offset, real - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.realsize, real);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend([7u8; 512]);
        tar.extend([0u8; 1024]);
        assert!(tar.len() < 2600);
        let (err, dir) = unpack_err(&tar, Limits::default());
        assert!(err.contains("bundle entry `huge.img`: a GNU sparse file"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn pax_sparse_entries_are_refused() {
        // GNU tar's PAX sparse 1.0 (the map is in the data) and 0.1.
        for keys in [
            &[
                ("GNU.sparse.major", &b"1"[..]),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"huge.img"),
                ("GNU.sparse.realsize", b"8589934592"),
            ][..],
            &[
                ("GNU.sparse.size", b"8589934592"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.map", b"8589934080,512"),
            ],
        ] {
            let mut b = tar::Builder::new(Vec::new());
            append_pax(&mut b, keys);
            b.append(&header(b"GNUSparseFile.0/huge.img", FILE, 512), &[0u8; 512][..])
                .unwrap();
            let (err, dir) = unpack_err(&b.into_inner().unwrap(), Limits::default());
            assert!(err.contains("a PAX sparse file"), "{err}");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn duplicates_and_clashes_are_refused() {
        for (entries, why) in [
            (
                &[(&b"a.txt"[..], FILE, &b"one"[..]), (b"./a.txt", FILE, b"two")][..],
                "bundle entry `./a.txt`: named twice",
            ),
            (&[(b"d/", DIR, b""), (b"d", DIR, b"")], "bundle entry `d`: named twice"),
            (
                &[(b"d", FILE, b"x"), (b"d/", DIR, b"")],
                "bundle entry `d/`: named twice",
            ),
            (
                &[(b"d/x", FILE, b"x"), (b"d", FILE, b"y")],
                "bundle entry `d`: a file, but other",
            ),
            (
                &[(b"d", FILE, b"x"), (b"d/x", FILE, b"y")],
                "`d` is a file in the archive",
            ),
            (&[(b"./", FILE, b"x")], "in place of the bundle's root"),
        ] {
            let err = refused(entries);
            assert!(err.contains(why), "{err}");
        }
        // A directory named after the files inside it is fine.
        let tar = archive(&[(b"d/x", FILE, b"x"), (b"d/", DIR, b"")]);
        unpack(&tar, tempfile::tempdir().unwrap().path(), Limits::default()).unwrap();
    }

    #[test]
    fn bytes_and_entries_are_capped() {
        let limits = Limits {
            max_bytes: 10,
            max_entries: 4,
        };
        let (err, _) = unpack_err(&archive(&[(b"a", FILE, b"123456"), (b"b", FILE, b"123456")]), limits);
        assert!(
            err.contains("bundle entry `b` (6 bytes): the bundle's files come to more than 10 bytes"),
            "{err}"
        );
        let (err, _) = unpack_err(
            &archive(&[
                (b"1", FILE, b""),
                (b"2", FILE, b""),
                (b"3", FILE, b""),
                (b"4", FILE, b""),
                (b"5", FILE, b""),
            ]),
            limits,
        );
        assert!(
            err.contains("bundle entry `5`: the bundle has more than 4 entries"),
            "{err}"
        );
        // Directories a name makes count too: one entry cannot make thousands.
        let (err, _) = unpack_err(&archive(&[(b"a/b/c/d/e", FILE, b"")]), limits);
        assert!(err.contains("more than 4 entries"), "{err}");
        // A size claimed in the header is refused before anything is read.
        let mut h = header(b"big", FILE, 0);
        h.set_size(8 << 30);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend([0u8; 1024]);
        let (err, dir) = unpack_err(&tar, Limits::default());
        assert!(
            err.contains("bundle entry `big` (8 GiB): the bundle's files come to more than 1 GiB"),
            "{err}"
        );
        assert!(!dir.path().join("big").exists());
        // A claim the archive does not back is a truncated upload.
        let mut h = header(b"short", FILE, 0);
        h.set_size(4096);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend([1u8; 100]);
        let (err, _) = unpack_err(&tar, Limits::default());
        assert!(
            err.contains("the archive ends inside it (100 of its 4096 bytes)"),
            "{err}"
        );
    }

    #[test]
    fn a_pax_global_header_is_skipped() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(b"pax_global_header", tar::EntryType::XGlobalHeader, 0);
        let body = b"52 comment=3f1c2e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d\n";
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, &body[..]).unwrap();
        b.append(&header(b"index.html", FILE, 2), &b"ok"[..]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(&b.into_inner().unwrap(), dir.path(), Limits::default()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.html"]);
    }

    /// A bundle that says nothing of its runtime and holds a server module
    /// is a JS app (it runs isolates), with or without a bext.config.toml,
    /// as the kernel serves it; a static `index.js` keeps it static.
    #[test]
    fn a_server_module_makes_a_bundle_a_js_app() {
        let module = "export default { fetch() { return new Response('x') } }";
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("index.js"), "console.log('a browser script')").unwrap();
        assert!(!check_config(dir.path()).unwrap());
        fs::write(dir.path().join("index.js"), module).unwrap();
        assert!(check_config(dir.path()).unwrap());
        fs::write(dir.path().join(CONFIG_FILE), "[cache.isr]\nmax_entries = 10\n").unwrap();
        assert!(check_config(dir.path()).unwrap());
        fs::write(dir.path().join(CONFIG_FILE), "[framework]\ntype = \"static\"\n").unwrap();
        assert!(!check_config(dir.path()).unwrap());
    }

    fn config_tree(config: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
        for f in files {
            let path = dir.path().join(f);
            if f.ends_with('/') {
                fs::create_dir_all(path).unwrap();
            } else {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, "x").unwrap();
            }
        }
        dir
    }

    #[test]
    fn config_paths_stay_inside_the_bundle() {
        for (config, why) in [
            ("[server]\nstatic_dir = \"/\"", "an absolute path"),
            ("[server]\nstatic_dir = \"/etc\"", "an absolute path"),
            ("[server]\nstatic_dir = \"../../etc\"", "a `..`"),
            ("[server]\nstatic_dir = \"dist/../..\"", "a `..`"),
            ("[server]\nstatic_dir = \"..\\\\..\\\\etc\"", "a backslash"),
            ("[server]\nstatic_dir = \"missing\"", "is not a directory of the bundle"),
            (
                "[server]\nstatic_dir = \"index.html\"",
                "is not a directory of the bundle",
            ),
            (
                "[server]\nstatic_dir = 3",
                "invalid type: integer `3`, expected a string",
            ),
            (
                "[server]\nruntime = \"js\"\nentry = \"/etc/passwd\"",
                "server.entry = \"/etc/passwd\": an absolute path",
            ),
            ("[server]\nruntime = \"js\"\nentry = \"../../x.js\"", "a `..`"),
            (
                "[server]\nruntime = \"js\"\nentry = \"missing.js\"",
                "is not a file of the bundle",
            ),
            (
                "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"",
                "server.runtime = \"js\" runs index.js (relative to static_dir), which the bundle does not have",
            ),
            ("[framework]\ntype = \"ssr\"\nentry = \"x.js\"", "unknown field `entry`"),
            (
                "[framework]\ntype = \"ssr\"\n[server]\nentry = \"dist/missing.js\"",
                "server.entry = \"dist/missing.js\" is not a file of the bundle (it is relative to the bundle)",
            ),
            (
                "[framework]\ntype = \"ssr\"\n[server]\nstatic_dir = \"dist\"",
                "framework.type = \"ssr\" has no module to run: package.json names none",
            ),
            (
                "[framework]\ntype = \"hybrid\"\n[server]\nentry = \"index.html\"",
                "framework.type = \"hybrid\" sends `/api/*` (its `[server] api_prefix`) to `[server] upstream",
            ),
            (
                "[framework]\ntype = \"hybrid\"\n[server]\nupstream = \"ftp://x\"",
                "write \"http://host:port\"",
            ),
            (
                "[framework]\ntype = \"hybrid\"\n[server]\nupstream = \"http://u:p@x\"",
                "no credentials",
            ),
            (
                "[framework]\ntype = \"hybrid\"\n[server]\nupstream = \"http://x\"\napi_prefix = \"api/\"",
                "a path like \"/api\"",
            ),
            (
                "[framework]\ntype = \"ssr\"\n[server]\nupstream = \"http://x\"",
                "server.upstream: only a `hybrid` app",
            ),
            ("server = 1", "invalid type: integer `1`"),
            ("[server\n", "bext.config.toml:1:"),
            ("[server]\nstatic_dirs = \"dist\"", "unknown field `static_dirs`"),
            ("[build]\ncommand = \"make\"", "unknown field `build`"),
            (
                "[server]\nspa_fallback = \"yes\"",
                "invalid type: string \"yes\", expected a boolean",
            ),
            ("[server]\nruntime = \"proxy\"", "a bundle cannot be a proxy app"),
            (
                "[server]\nruntime = \"process\"",
                "server.runtime = \"process\": a bundle is a `static`, `js`, `hono`, `ssr` or `hybrid` app",
            ),
            (
                "[framework]\ntype = \"express\"",
                "framework.type = \"express\": a bundle is a `static`, `js`, `hono`, `ssr` or `hybrid` app",
            ),
            (
                "[redis]\nurl = \"redis://x\"",
                "[redis]: a deployed app shares the platform's Redis",
            ),
            ("[hooks]\npre_build = \"make\"", "[hooks]: a deployed app's hooks"),
            ("[server]\nruntime = \"js\"\n[framework]\ntype = \"hono\"", "disagree"),
            ("[cache.isr]\nttl = 1", "unknown field `ttl`"),
        ] {
            let tree = config_tree(config, &["index.html", "dist/"]);
            let err = check_config(tree.path()).unwrap_err().to_string();
            // `bext.config.toml:LINE:COLUMN: ...`, at the key at fault.
            let at: Vec<&str> = err.splitn(4, ':').collect();
            assert!(
                at[0] == "bext.config.toml"
                    && at[1].parse::<u32>().is_ok()
                    && at[2].parse::<u32>().is_ok()
                    && err.contains(why),
                "{config}: {err}"
            );
        }
        // The line and column are those of the value at fault.
        let tree = config_tree(
            "[framework]\ntype = \"hybrid\"\n\n[server]\nupstream = \"ftp://x\"\n",
            &["index.js"],
        );
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert!(err.starts_with("bext.config.toml:5:12: server.upstream = "), "{err}");
        let tree = config_tree("# one\n[redis]\nurl = \"redis://x\"\n", &[]);
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert!(err.starts_with("bext.config.toml:2:"), "{err}");
        for config in [
            "",
            "[server]\nlisten = \"127.0.0.1:1\"",
            "[server]\nstatic_dir = \"dist\"\nspa_fallback = true",
            "[server]\nstatic_dir = \"./dist/\"",
            "[server]\nstatic_dir = \".\"",
            "[server]\nstatic_dir = \"\"",
            "[server]\nruntime = \"js\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"\nentry = \"server/app.mjs\"",
            "[framework]\ntype = \"ssr\"",
            "[framework]\ntype = \"ssr\"\n[server]\nstatic_dir = \"dist\"\nentry = \"dist/server/app.mjs\"",
            "[framework]\ntype = \"hybrid\"\n[server]\nstatic_dir = \"dist\"\nupstream = \"http://127.0.0.1:4000\"\napi_prefix = \"/backend\"",
        ] {
            let tree = config_tree(config, &["index.html", "index.js", "dist/server/app.mjs"]);
            check_config(tree.path()).unwrap_or_else(|e| panic!("{config}: {e}"));
        }
    }

    #[test]
    fn a_huge_config_is_refused_unread() {
        let tree = config_tree(&"# padding\n".repeat(7000), &[]);
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert_eq!(err, "bext.config.toml: 70000 bytes (at most 64 KiB)");
    }

    #[test]
    fn config_paths_that_resolve_outside_through_links_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("app.js"), "x").unwrap();
        let tree = config_tree("[server]\nstatic_dir = \"public\"", &[]);
        std::os::unix::fs::symlink(outside.path(), tree.path().join("public")).unwrap();
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert!(
            err.contains("resolves to") && err.contains("outside the bundle"),
            "{err}"
        );
        // Chained: a link to a link that leaves.
        let tree = config_tree("[server]\nruntime = \"js\"\nentry = \"a.js\"", &[]);
        std::os::unix::fs::symlink("b.js", tree.path().join("a.js")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("app.js"), tree.path().join("b.js")).unwrap();
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert!(err.contains("server.entry = \"a.js\" resolves to"), "{err}");
        // The configuration file itself as a link.
        let tree = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", tree.path().join(CONFIG_FILE)).unwrap();
        let err = check_config(tree.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
