//! Plugin manifests: one YAML file per plugin, validated strictly.
//!
//! ```yaml
//! name: vhosts        # unique, [a-z][a-z0-9-]*
//! enabled: true
//! priority: 10        # optional; else the plugin's default
//! entry: builtin      # builtin | path/to/libplugin.so | path/to/plugin.js
//! base: /__bext/x     # optional mount path for the plugin's own routes
//! on_error: closed    # closed (default) | open
//! config: { ... }     # the plugin's own typed settings
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::diag::{Diagnostic, Diagnostics};
use super::isolate::IsolateConfig;
use super::yaml::Located;

/// What a failing hook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Answer 500 with the request id (the default).
    #[default]
    Closed,
    /// Log the failure and continue as if the hook had not run.
    Open,
}

/// How a plugin is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Compiled into this binary.
    Builtin,
    /// A JavaScript module (`.js`, `.mjs`), run in QuickJS isolates.
    Js(PathBuf),
    /// A Rust `cdylib` (`.so`, `.dylib`, `.dll`) built against `bext-plugin-sdk`.
    Dylib(PathBuf),
}

impl Entry {
    /// The file of a plugin that is not built in.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Entry::Builtin => None,
            Entry::Js(p) | Entry::Dylib(p) => Some(p),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    on_error: FailMode,
    #[serde(default)]
    config: serde_json::Value,
    #[serde(default)]
    limits: Option<IsolateConfig>,
    /// Buntime's file of the plugin's code: bext's plugins are built in
    /// or named by `entry`, so it is ignored, with a note.
    #[serde(default, rename = "pluginEntry")]
    plugin_entry: Option<String>,
    /// Buntime's vhosts manifest keeps its `hosts` map at the top level:
    /// taken as `config.hosts`.
    #[serde(default)]
    hosts: Option<serde_json::Value>,
}

/// Buntime's names of plugins bext builds in, with bext's name: a
/// manifest written for Buntime names its plugin so.
const SCOPED_NAMES: [(&str, &str); 1] = [("@buntime/plugin-vhosts", "vhosts")];

fn yes() -> bool {
    true
}

/// Buntime matches a host's `pathPrefix` with `startsWith` (`/admin`
/// takes `/adminx`), bext by whole path segments: a Buntime manifest's
/// prefixes get a note saying so, one each, never a silent difference.
fn path_prefix_notes(file: &Path, config: &serde_json::Value, at: Option<(u64, u64)>) -> Vec<Diagnostic> {
    let Some(hosts) = config.get("hosts").and_then(|h| h.as_object()) else {
        return Vec::new();
    };
    (hosts.iter())
        .filter_map(|(host, entry)| Some((host, entry.get("pathPrefix")?.as_str()?)))
        .map(|(host, prefix)| {
            let bare = prefix.trim_end_matches('/');
            Diagnostic::new(
                file,
                format!("hosts.{host}.pathPrefix"),
                format!(
                    "`{prefix}` matches by path segment in bext ({bare} and {bare}/..., not {bare}x), where Buntime matches every path starting with it: give other paths entries of their own"
                ),
            )
            .at(at)
        })
        .collect()
}

/// Built-in plugins whose manifest may not say `on_error: open`: a WAF or
/// an authentication check that is skipped when it fails lets through the
/// very requests it exists to stop.
const FAIL_CLOSED: [&str; 2] = ["waf", "authn"];

/// A validated manifest.
#[derive(Clone)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// Whether it runs for every app (apps may still turn it on or off).
    pub enabled: bool,
    /// Priority override.
    pub priority: Option<i32>,
    /// How to load it.
    pub entry: Entry,
    /// Mount path for its own routes.
    pub base: Option<String>,
    /// What a failing hook does.
    pub on_error: FailMode,
    /// The plugin's `config` block.
    pub config: serde_json::Value,
    /// JavaScript plugins: isolate pool and per-call limits.
    pub limits: IsolateConfig,
    /// The file it came from.
    pub file: PathBuf,
    /// What was read differently from how it is written (a Buntime
    /// manifest's `pluginEntry`, its scoped name): printed by `bext
    /// check` and logged at load.
    pub notes: Vec<Diagnostic>,
    doc: Arc<Located>,
}

impl Manifest {
    /// The position of a field inside this manifest's `config` block.
    pub fn config_position(&self, path: &str) -> Option<(u64, u64)> {
        let full = if path.is_empty() {
            "config".to_owned()
        } else {
            format!("config.{path}")
        };
        // A Buntime manifest's top-level `hosts` became `config.hosts`.
        (self.doc.position(&full)).or_else(|| path.starts_with("hosts").then(|| self.doc.position(path)).flatten())
    }

    /// A field of this manifest's `config` as the file writes it:
    /// `config.<path>`, or `hosts.<...>` when a Buntime manifest wrote its
    /// `hosts` map at the top level.
    pub fn config_field(&self, path: &str) -> String {
        let top_level_hosts = path.starts_with("hosts")
            && self.doc.value.get("hosts").is_some()
            && self.doc.value.get("config").and_then(|c| c.get("hosts")).is_none();
        match path {
            "" => "config".to_owned(),
            p if top_level_hosts => p.to_owned(),
            p => format!("config.{p}"),
        }
    }

    /// The position of a top-level field (`enabled`, `priority`, ...), for
    /// diagnostics about the manifest itself rather than its `config`.
    pub fn position(&self, field: &str) -> Option<(u64, u64)> {
        self.doc.position(field)
    }

    /// Parses and validates one manifest's text.
    pub fn parse(file: &Path, text: &str) -> Result<Manifest, Diagnostics> {
        let doc = Located::parse(file, text)?;
        let (m, problems) = doc.decode_every::<ManifestFile>(file);
        let mut m = m.ok_or_else(|| Diagnostics(problems.clone()))?;
        let mut errors = Diagnostics(problems);
        let here = |field: &str| doc.position(field);
        let mut notes = Vec::new();
        let buntime = SCOPED_NAMES.iter().any(|(scoped, _)| *scoped == m.name);
        if let Some((scoped, name)) = SCOPED_NAMES.iter().find(|(scoped, _)| *scoped == m.name) {
            notes.push(
                Diagnostic::new(file, "name", format!("`{scoped}` is bext's built-in `{name}` plugin"))
                    .at(here("name")),
            );
            m.name = (*name).to_owned();
            if doc.value.get("enabled").is_none() {
                notes.push(
                    Diagnostic::new(
                        file,
                        "enabled",
                        "unset: the plugin is on in bext (`enabled` defaults to true), where Buntime would have it off (its default is false); write `enabled: true` or `enabled: false` to say which",
                    )
                    .at(here("name")),
                );
            }
        }
        if let Some(p) = &m.plugin_entry {
            notes.push(
                Diagnostic::new(
                    file,
                    "pluginEntry",
                    format!(
                        "`{p}` ignored: `{}` is built into bext (`entry` names a plugin file)",
                        m.name
                    ),
                )
                .at(here("pluginEntry")),
            );
        }
        if let Some(hosts) = m.hosts.take() {
            let config_hosts = m.config.get("hosts");
            if m.name != "vhosts" {
                errors.push(
                    Diagnostic::new(file, "hosts", "only the vhosts plugin has a top-level `hosts` map")
                        .at(here("hosts")),
                );
            } else if config_hosts.is_some() {
                errors.push(
                    Diagnostic::new(
                        file,
                        "hosts",
                        "`hosts` is given twice, at the top level and under `config`: keep one",
                    )
                    .at(here("hosts")),
                );
            } else {
                if !m.config.is_object() {
                    m.config = serde_json::Value::Object(Default::default());
                }
                if let Some(c) = m.config.as_object_mut() {
                    c.insert("hosts".into(), hosts);
                }
            }
        }
        if buntime {
            notes.extend(path_prefix_notes(
                file,
                &m.config,
                here("hosts").or(here("config.hosts")),
            ));
        }
        if !valid_name(&m.name) {
            errors.push(Diagnostic::new(file, "name", "must match [a-z][a-z0-9-]*").at(here("name")));
        }
        if m.base.as_deref() == Some("") {
            // Buntime's way of saying the plugin mounts no routes.
            m.base = None;
        }
        if let Some(base) = &m.base
            && !base.starts_with('/')
        {
            errors.push(Diagnostic::new(file, "base", "must start with `/`").at(here("base")));
        }
        let entry = match m.entry.as_deref() {
            None | Some("builtin") => Entry::Builtin,
            Some(path) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(path);
                let path = std::path::absolute(&path).unwrap_or(path);
                let entry = match path.extension().and_then(|e| e.to_str()) {
                    Some("js" | "mjs") => Entry::Js(path.clone()),
                    Some("so" | "dylib" | "dll") => Entry::Dylib(path.clone()),
                    _ => {
                        let reason = "must be `builtin`, a JavaScript module (.js, .mjs) or a shared library (.so, .dylib, .dll)";
                        errors.push(Diagnostic::new(file, "entry", reason).at(here("entry")));
                        Entry::Builtin
                    }
                };
                if entry != Entry::Builtin && !path.is_file() {
                    errors.push(
                        Diagnostic::new(file, "entry", format!("{}: no such file", path.display())).at(here("entry")),
                    );
                }
                entry
            }
        };
        if m.on_error == FailMode::Open && entry == Entry::Builtin && FAIL_CLOSED.contains(&m.name.as_str()) {
            errors.push(
                Diagnostic::new(
                    file,
                    "on_error",
                    format!(
                        "`{}` must fail closed: with `open`, a failing check would let the request through",
                        m.name
                    ),
                )
                .at(here("on_error")),
            );
        }
        if m.limits.is_some() && !matches!(entry, Entry::Js(_)) {
            errors.push(
                Diagnostic::new(file, "limits", "only JavaScript plugins have isolate limits").at(here("limits")),
            );
        }
        if entry == Entry::Builtin
            && m.entry.as_deref().is_none_or(|e| e == "builtin")
            && !bext_plugin_abi::registrations().any(|r| r.name == m.name)
        {
            let known: Vec<_> = bext_plugin_abi::registrations().map(|r| r.name).collect();
            let hint = closest_plugin(&m.name, &known)
                .map(|near| format!(": did you mean `{near}`?"))
                .unwrap_or_default();
            errors.push(
                Diagnostic::new(
                    file,
                    "name",
                    format!(
                        "unknown plugin `{}`{hint} (built-in plugins: {})",
                        m.name,
                        known.join(", ")
                    ),
                )
                .at(here("name")),
            );
        }
        errors.into_result(Manifest {
            name: m.name,
            enabled: m.enabled,
            priority: m.priority,
            entry,
            base: m.base,
            on_error: m.on_error,
            config: m.config,
            limits: m.limits.unwrap_or_default(),
            file: file.to_owned(),
            notes,
            doc: Arc::new(doc),
        })
    }
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Loads every `*.yaml`/`*.yml` manifest in `dir` over the defaults (see
/// [`load_dir_lenient`]), reporting every error.
pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, Diagnostics> {
    let (manifests, errors) = load_dir_lenient(dir);
    errors.into_result(manifests)
}

/// The valid manifests of `dir` and the errors of the others, so `bext
/// check` can go on checking what did load.
///
/// A folder overrides only the plugins it names: every built-in plugin
/// without a manifest there keeps its default one, so a folder holding
/// only `deploy.yaml` does not turn virtual hosts off. A plugin is turned
/// off by a manifest that says `enabled: false`.
pub fn load_dir_lenient(dir: &Path) -> (Vec<Manifest>, Diagnostics) {
    let (files, mut errors) = match manifest_files(dir) {
        Ok(found) => found,
        Err(e) => {
            let d = Diagnostic::new(dir, "", format!("cannot read manifests directory: {e}"));
            return (Vec::new(), d.into());
        }
    };
    let mut manifests: Vec<Manifest> = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(Diagnostic::new(&file, "", format!("cannot read: {e}")));
                continue;
            }
        };
        match Manifest::parse(&file, &text) {
            Ok(m) => {
                if let Some(other) = manifests.iter().find(|o| o.name == m.name) {
                    errors.push(Diagnostic::new(
                        &file,
                        "name",
                        format!("plugin `{}` is already declared in {}", m.name, other.file.display()),
                    ));
                } else {
                    manifests.push(m);
                }
            }
            Err(e) => errors.0.extend(e.0),
        }
    }
    for default in defaults() {
        if !manifests.iter().any(|m| m.name == default.name) {
            manifests.push(default);
        }
    }
    (manifests, errors)
}

/// Whether `path` is named like a manifest (`.yaml` or `.yml`).
fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// The plugin folder's own manifest (Buntime's layout: `manifest.yaml`
/// beside the plugin's files), if it has one.
fn folder_manifest(folder: &Path) -> Option<PathBuf> {
    ["manifest.yaml", "manifest.yml"]
        .iter()
        .map(|n| folder.join(n))
        .find(|f| f.is_file())
}

/// The subdirectories of `dir`, sorted.
fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = (std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The manifest files of a manifests folder, in the order they load:
/// every `*.yaml`/`*.yml` in it, then each plugin folder's
/// `manifest.yaml` (`<dir>/<plugin>/manifest.yaml`, and Buntime's
/// `<dir>/plugins/<plugin>/manifest.yaml`). A YAML file in a folder that
/// is none of these is an error naming where bext reads manifests, not
/// left unread without a word.
pub fn manifest_files(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Diagnostics)> {
    let mut files: Vec<PathBuf> = (std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.is_file() && is_yaml(p))
        .collect();
    files.sort();
    let mut errors = Diagnostics::default();
    let mut folders = Vec::new();
    for sub in subdirs(dir)? {
        match sub.file_name().and_then(|n| n.to_str()) {
            Some("plugins") if folder_manifest(&sub).is_none() => {
                refuse_unread_yaml(dir, &sub, &mut errors);
                folders.extend(subdirs(&sub).unwrap_or_default());
            }
            _ => folders.push(sub),
        }
    }
    for folder in folders {
        match folder_manifest(&folder) {
            Some(f) => files.push(f),
            None => refuse_unread_yaml(dir, &folder, &mut errors),
        }
    }
    Ok((files, errors))
}

/// An error for each YAML file directly in `folder`, a folder of the
/// manifests directory `dir` bext does not read manifests from.
fn refuse_unread_yaml(dir: &Path, folder: &Path, errors: &mut Diagnostics) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut unread: Vec<PathBuf> = (entries.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.is_file() && is_yaml(p))
        .collect();
    unread.sort();
    for file in unread {
        let name = file.file_stem().and_then(|n| n.to_str()).unwrap_or("plugin");
        errors.push(Diagnostic::new(
            &file,
            "",
            format!(
                "not read: bext reads plugin manifests from {d}/*.yaml, {d}/<plugin>/manifest.yaml and {d}/plugins/<plugin>/manifest.yaml; move it to {d}/{name}.yaml, or to manifest.yaml in its plugin's folder",
                d = dir.display()
            ),
        ));
    }
}

/// The plugin files (JS modules, libraries) that the manifests in `dir`
/// name, for change detection.
pub fn file_entries(dir: &Path) -> Vec<PathBuf> {
    load_dir_lenient(dir)
        .0
        .iter()
        .filter_map(|m| m.entry.file().map(Path::to_path_buf))
        .collect()
}

/// The default manifest of every built-in plugin: all of them when the
/// platform names no manifests directory, else those the directory does
/// not name. Parsed once per process.
pub fn defaults() -> Vec<Manifest> {
    static DEFAULTS: std::sync::OnceLock<Vec<Manifest>> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(parse_defaults).clone()
}

fn parse_defaults() -> Vec<Manifest> {
    let mut all: Vec<Manifest> = bext_plugin_abi::registrations()
        .map(|r| {
            let file = PathBuf::from(format!("<built-in>/{}.yaml", r.name));
            Manifest::parse(&file, r.default_manifest)
                .unwrap_or_else(|e| panic!("the default manifest of `{}` is broken: {e}", r.name))
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The built-in plugin a misspelt or scoped name most likely means:
/// another system's scoped name (`@buntime/plugin-gateway` is `gateway`)
/// or a name at most two edits away (`vhost`, `gatway`).
fn closest_plugin<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let bare = name.rsplit('/').next().unwrap_or(name);
    let bare = bare.strip_prefix("plugin-").unwrap_or(bare).to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edits(&bare, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance between two short names.
pub(super) fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Manifest::parse(Path::new("m.yaml"), text) {
            Ok(_) => vec![],
            Err(d) => d.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_buntime_manifest_s_path_prefix_gets_a_note_on_segment_matching() {
        let text = "name: \"@buntime/plugin-vhosts\"\nenabled: true\nhosts:\n  \"dashboard.example.com\":\n    app: \"admin-panel\"\n    pathPrefix: \"/admin\"\n";
        let notes: Vec<String> = (Manifest::parse(Path::new("m.yaml"), text).ok().unwrap().notes.iter())
            .map(ToString::to_string)
            .collect();
        assert!(
            notes.iter().any(|n| n.contains("hosts.dashboard.example.com.pathPrefix: `/admin` matches by path segment in bext (/admin and /admin/..., not /adminx), where Buntime matches every path starting with it")),
            "{notes:?}"
        );
        // bext's own manifest means bext's matching: no note.
        let own = text.replace("\"@buntime/plugin-vhosts\"", "vhosts");
        let notes = Manifest::parse(Path::new("m.yaml"), &own).ok().unwrap().notes;
        assert!(
            notes.iter().all(|n| !n.field.contains("pathPrefix")),
            "{:?}",
            notes.len()
        );
    }

    #[test]
    fn every_default_manifest_parses() {
        assert!(defaults().iter().any(|m| m.name == "vhosts"));
    }

    #[test]
    fn unknown_top_level_field_has_file_line_field_reason() {
        let e = errors("name: vhosts\npriorty: 3\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("m.yaml:2:1: priorty: unknown field `priorty`"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_plugin_and_bad_values_are_errors() {
        let e = errors("name: nosuch\n");
        assert!(e[0].contains("unknown plugin `nosuch` (built-in plugins:"), "{e:?}");
        for (name, near) in [
            ("\"@buntime/plugin-gateway\"", "gateway"),
            ("\"@buntime/plugin-vhost\"", "vhosts"),
            ("gatway", "gateway"),
            ("WAF", "waf"),
        ] {
            let e = errors(&format!("name: {name}\n"));
            assert!(
                e.iter().any(|e| e.contains(&format!("did you mean `{near}`?"))),
                "{name}: {e:?}"
            );
        }
        let e = errors("name: vhosts\npriority: high\n");
        assert!(e[0].starts_with("m.yaml:2:"), "{e:?}");
        assert!(e[0].contains("priority"), "{e:?}");
        let e = errors("name: vhosts\non_error: maybe\n");
        assert!(e[0].contains("on_error"), "{e:?}");
        let e = errors("name: Bad_Name\n");
        assert!(e.iter().any(|l| l.contains("[a-z][a-z0-9-]*")), "{e:?}");
        let e = errors("name: vhosts\nentry: ./libx.so\n");
        assert!(
            e[0].contains("m.yaml:2:1: entry:") && e[0].contains("libx.so: no such file"),
            "{e:?}"
        );
        let e = errors("name: vhosts\nentry: ./x.wasm\n");
        assert!(
            e[0].contains("a JavaScript module (.js, .mjs) or a shared library"),
            "{e:?}"
        );
        let e = errors("name: vhosts\nlimits: { workers: 1 }\n");
        assert!(e[0].contains("only JavaScript plugins"), "{e:?}");
        let e = errors("name: vhosts\nbase: x\n");
        assert!(e[0].contains("base: must start"), "{e:?}");
    }

    #[test]
    fn waf_and_authn_must_fail_closed() {
        for name in ["waf", "authn"] {
            let e = errors(&format!("name: {name}\non_error: open\n"));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].starts_with(&format!("m.yaml:2:1: on_error: `{name}` must fail closed")),
                "{e:?}"
            );
            assert!(errors(&format!("name: {name}\non_error: closed\n")).is_empty());
        }
        assert!(errors("name: vhosts\non_error: open\n").is_empty());
    }

    #[test]
    fn a_folder_overrides_only_the_plugins_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("request-id.yaml"), "name: request-id\nenabled: true\n").unwrap();
        std::fs::write(dir.path().join("vhosts.yaml"), "name: vhosts\nenabled: false\n").unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        for r in bext_plugin_abi::registrations() {
            assert_eq!(loaded.iter().filter(|m| m.name == r.name).count(), 1, "{}", r.name);
        }
        let named = |n: &str| loaded.iter().find(|m| m.name == n).unwrap();
        assert!(named("request-id").enabled);
        assert!(named("request-id").file.starts_with(dir.path()));
        assert!(!named("vhosts").enabled);
        let waf = named("waf");
        assert_eq!(waf.file, Path::new("<built-in>/waf.yaml"));
        assert_eq!(
            waf.config,
            defaults().into_iter().find(|m| m.name == "waf").unwrap().config
        );
    }

    #[test]
    fn config_positions_point_into_the_block() {
        let m = Manifest::parse(
            Path::new("m.yaml"),
            "name: vhosts\nconfig:\n  hosts:\n    a.com: {app: x, pathPrefx: /a}\n",
        )
        .unwrap();
        assert_eq!(m.config_position("hosts.a.com.pathPrefx").map(|p| p.0), Some(4));
    }
}
