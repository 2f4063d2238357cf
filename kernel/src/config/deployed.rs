//! A version deployed onto an app the platform file declares: the app's
//! table as the file writes it, with what the bundle's own
//! `bext.config.toml` says (`[framework] type`, `[server] static_dir`,
//! `entry`, `upstream`, `api_prefix`, `spa_fallback`, `[cache.isr]`)
//! wherever the file says nothing, resolved again on the version's files
//! (a `hono` app's module is the version's). Where both say something
//! different the platform file wins, and the bundle's key is named with
//! the file's in a warning at every load and by `bext check`: never a
//! silent difference (docs/deploy.md, "A bundle's bext.config.toml").

use std::path::{Path, PathBuf};

use super::diag::{Diagnostic, Diagnostics};
use super::platform::{AppConfig, RuntimeKind, runtime_name};
use super::process::CommandLine;

/// What the platform file writes of how an app is served, before a
/// framework runtime is resolved (resolution fills these in from the
/// app's folder, which a deploy replaces).
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// `runtime` as written (`static` when unset).
    pub runtime: RuntimeKind,
    /// Whether the table writes `runtime`: unset, a bundle may say its own.
    pub runtime_written: bool,
    /// `entry` as written.
    pub entry: Option<PathBuf>,
    /// `command` as written.
    pub command: Option<CommandLine>,
    /// `env` as written.
    pub env: std::collections::BTreeMap<String, String>,
    /// `cache` as written.
    pub cache: Option<Box<serde_json::Value>>,
    /// `static_dir` as written.
    pub static_dir: Option<PathBuf>,
    /// `upstream` as written.
    pub upstream: Option<String>,
    /// `api_prefix` as written.
    pub api_prefix: Option<String>,
    /// `spa_fallback` as written.
    pub spa_fallback: bool,
}

impl Declared {
    /// The app's table as written, taken before it is resolved.
    pub(crate) fn of(app: &AppConfig) -> Declared {
        Declared {
            runtime: app.runtime,
            runtime_written: app.runtime != RuntimeKind::Static,
            entry: app.entry.clone(),
            command: app.command.clone(),
            env: app.env.clone(),
            cache: app.cache.clone(),
            static_dir: app.static_dir.clone(),
            upstream: app.upstream.clone(),
            api_prefix: app.api_prefix.clone(),
            spa_fallback: app.spa_fallback,
        }
    }
}

/// What a bundle's `bext.config.toml` says of how it is served
/// (`config::platform::bundle_says` reads it).
#[derive(Debug, Default)]
pub(crate) struct BundleSays {
    /// The file (it may not exist).
    pub file: PathBuf,
    /// The runtime and the key that says it (`framework.type`).
    pub runtime: Option<(RuntimeKind, &'static str)>,
    /// Saying nothing of its runtime, the server module it holds
    /// (`index.js` exporting `fetch`): run as `js`, never served as source.
    pub module: Option<&'static str>,
    /// `[server] static_dir`.
    pub static_dir: Option<PathBuf>,
    /// `[server] entry`.
    pub entry: Option<PathBuf>,
    /// `[server] upstream`.
    pub upstream: Option<String>,
    /// `[server] api_prefix`.
    pub api_prefix: Option<String>,
    /// `[server] spa_fallback`.
    pub spa_fallback: bool,
    /// `[cache.isr]` as the isr plugin's config.
    pub cache: Option<serde_json::Value>,
}

/// App `id` (`like`, an app of the platform file `platform_file`) served
/// from the deployed `version`, and a warning for each bundle key the
/// file's table overrides. An error names the bundle's file and key when
/// the two together cannot be served (the deploy is then rolled back).
pub(crate) fn onto(
    id: &str,
    like: &AppConfig,
    declared: &Declared,
    version: &Path,
    platform_file: &Path,
) -> Result<(AppConfig, Vec<Diagnostic>), Diagnostics> {
    let said = super::platform::bundle_says(version)?;
    let mut app = AppConfig::clone(like);
    app.runtime = declared.runtime;
    app.entry = declared.entry.clone();
    app.command = declared.command.clone();
    app.env = declared.env.clone();
    app.cache = declared.cache.clone();
    app.static_dir = declared.static_dir.clone();
    app.upstream = declared.upstream.clone();
    app.api_prefix = declared.api_prefix.clone();
    app.spa_fallback = declared.spa_fallback;
    app.layers = None;
    app.source = Some(version.to_owned());
    let mut warnings = Vec::new();
    let mut overridden = |key: &str, bundle: String, table: String| {
        warnings.push(
            Diagnostic::new(
                &said.file,
                key,
                format!(
                    "{bundle} is not used: app `{id}` of {} says {table}, and the platform file wins over a deployed bundle (remove one of them)",
                    platform_file.display()
                ),
            )
            .at(position_in(&said.file, key, false)),
        );
    };
    let written = |kind: RuntimeKind| format!("`runtime = \"{}\"`", runtime_name(kind));
    match (said.runtime, said.module) {
        (Some((kind, _)), _) if !declared.runtime_written => app.runtime = kind,
        (Some((kind, key)), _) if kind != app.runtime => overridden(
            key,
            format!("`{key} = \"{}\"`", runtime_name(kind)),
            written(app.runtime),
        ),
        (None, Some(module)) if !declared.runtime_written => {
            app.runtime = RuntimeKind::Js;
            app.entry.get_or_insert_with(|| module.into());
        }
        (None, Some(module)) if app.runtime == RuntimeKind::Static => overridden(
            module,
            format!("`{module}`, a server module (it exports a `fetch` handler),"),
            format!("{}: its source is served as a file", written(app.runtime)),
        ),
        _ => {}
    }
    let shown = |p: &Path| format!("{:?}", p.display().to_string());
    if let Some(dir) = &said.static_dir {
        match app.runtime {
            // A framework bundle's assets, relative to the bundle (as
            // `bext run` reads it: config::platform::described_by).
            RuntimeKind::Ssr | RuntimeKind::Hybrid | RuntimeKind::Hono => match &app.static_dir {
                None => app.static_dir = Some(dir.clone()),
                Some(own) if own != dir => overridden(
                    "server.static_dir",
                    format!("`static_dir = {}`", shown(dir)),
                    format!("`static_dir = {}`", shown(own)),
                ),
                Some(_) => {}
            },
            // The folder served, or the one the module is found in.
            RuntimeKind::Static | RuntimeKind::Js => app.source = Some(version.join(dir)),
            other => overridden(
                "server.static_dir",
                format!("`static_dir = {}`", shown(dir)),
                written(other),
            ),
        }
    }
    if let Some(entry) = said.entry {
        match &app.entry {
            None => app.entry = Some(entry),
            Some(own) if *own != entry => overridden(
                "server.entry",
                format!("`entry = {}`", shown(&entry)),
                format!("`entry = {}`", shown(own)),
            ),
            Some(_) => {}
        }
    }
    let hybrid = app.runtime == RuntimeKind::Hybrid;
    let mut upstream_of_bundle = false;
    if let Some(url) = said.upstream {
        match (&app.upstream, hybrid) {
            (None, true) if app.upstreams.is_empty() => {
                app.upstream = Some(url);
                app.upstream_from_bundle = true;
                upstream_of_bundle = true;
            }
            (Some(own), true) if *own == url => {}
            (own, _) => overridden(
                "server.upstream",
                format!("`upstream = {url:?}`"),
                match (own, hybrid) {
                    (Some(own), _) => format!("`upstream = {own:?}`"),
                    (None, true) => "`upstreams = [...]`".into(),
                    (None, false) => written(app.runtime),
                },
            ),
        }
    }
    if let Some(prefix) = said.api_prefix {
        match (&app.api_prefix, hybrid) {
            (None, true) => app.api_prefix = Some(prefix),
            (Some(own), true) if *own == prefix => {}
            (own, _) => overridden(
                "server.api_prefix",
                format!("`api_prefix = {prefix:?}`"),
                match own {
                    Some(own) => format!("`api_prefix = {own:?}`"),
                    None => written(app.runtime),
                },
            ),
        }
    }
    if said.spa_fallback && !app.spa_fallback {
        match app.runtime {
            RuntimeKind::Static => app.spa_fallback = true,
            other => overridden("server.spa_fallback", "`spa_fallback = true`".into(), written(other)),
        }
    }
    if let Some(cache) = said.cache {
        match &app.cache {
            None => app.cache = Some(Box::new(cache)),
            Some(own) if **own != cache => overridden(
                "cache.isr",
                format!("`[cache.isr]` ({cache})"),
                format!("`cache = {own}`"),
            ),
            Some(_) => {}
        }
    }
    let field = |key: &str| format!("(app `{id}` with this bundle) {key}");
    let error = |key: &str, reason: String| {
        Diagnostic::new(&said.file, field(key), reason).at(position_in(&said.file, key, true))
    };
    if let Some((key, reason)) = super::runtime_keys::problems(&app, runtime_name).into_iter().next() {
        return Err(error(&key, reason).into());
    }
    super::framework::resolve(&mut app).map_err(|e| {
        let key = e.field();
        Diagnostic::of_framework(&said.file, field(key), e).at(position_in(&said.file, key, true))
    })?;
    // The bundle's `/api/*` upstream is checked as a `proxy` app's is
    // (the platform file's own was, when it was loaded).
    if upstream_of_bundle && super::upstream::forwards_api(&app) {
        let problems = super::upstream::proxy_problems(&app);
        if let Some((_, reason)) = problems.into_iter().find(|(k, _)| *k == "upstream") {
            return Err(error("server.upstream", reason).into());
        }
    }
    Ok((app, warnings))
}

/// Line and column in a bundle's `bext.config.toml` of `key`: one of the
/// file's own (`server.upstream`, `cache.isr`) or an app key and where
/// the file writes it (`upstream` is `[server] upstream`). With `or_runtime`,
/// a key the file does not write points at the runtime it says (`[framework]
/// type`): the bundle's part of a combination that cannot be served.
pub(crate) fn position_in(file: &Path, key: &str, or_runtime: bool) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let doc = super::toml_doc::TomlDoc::parse(file, &text).ok()?;
    let root = key.split(['.', '[']).next().unwrap_or(key);
    let own = match root {
        "entry" | "static_dir" | "upstream" | "api_prefix" | "spa_fallback" | "runtime" => format!("server.{root}"),
        "upstreams" => "server.upstream".to_owned(),
        "cache" if key == "cache" => "cache.isr".to_owned(),
        _ => key.to_owned(),
    };
    let runtime: &[&str] = if or_runtime || root == "runtime" {
        &["framework.type", "server.runtime"]
    } else {
        &[]
    };
    (std::iter::once(own.as_str()).chain(runtime.iter().copied()))
        .find(|k| doc.has(k))
        .and_then(|k| doc.position(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::platform::Platform;

    const MODULE: &str = "export default { fetch() { return new Response('x') } }";

    fn write(root: &Path, files: &[(&str, &str)]) -> PathBuf {
        for (name, body) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        root.to_owned()
    }

    /// What the table leaves unset comes from each version's own bundle
    /// (never from the version deployed before it); what both set is the
    /// table's, with a warning naming the bundle's key.
    #[test]
    fn a_bundle_fills_what_the_table_leaves_unset_and_the_table_wins_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, &[("site/index.html", "site"), ("shop/index.js", MODULE)]);
        let file = write(d, &[]).join("platform.toml");
        std::fs::write(
            &file,
            "[platform]\n[apps.site]\nsource = \"site\"\n\n[apps.shop]\nruntime = \"hybrid\"\nsource = \"shop\"\nupstream = \"http://127.0.0.1:4000\"\ncache = { default_ttl = \"5s\" }\n",
        )
        .unwrap();
        let platform = Platform::load(&file).unwrap();
        let onto_app = |id: &str, like: &AppConfig, version: &Path| {
            onto(id, like, &platform.declared[id], version, &file).unwrap()
        };
        let v1 = write(
            &d.join("v1"),
            &[
                ("index.js", MODULE),
                (
                    "bext.config.toml",
                    "[framework]\ntype = \"js\"\n[cache.isr]\ndefault_ttl_ms = 1000\n",
                ),
            ],
        );
        let (site_v1, warnings) = onto_app("site", &platform.apps["site"], &v1);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(site_v1.runtime, RuntimeKind::Js);
        assert_eq!(
            site_v1.cache.as_deref(),
            Some(&serde_json::json!({"default_ttl": "1000ms"}))
        );
        let v2 = write(&d.join("v2"), &[("index.html", "v2")]);
        let (site_v2, _) = onto_app("site", &site_v1, &v2);
        assert_eq!((site_v2.runtime, site_v2.cache.clone()), (RuntimeKind::Static, None));
        let v3 = write(
            &d.join("v3"),
            &[
                ("index.js", MODULE),
                (
                    "bext.config.toml",
                    "[framework]\ntype = \"hybrid\"\n[server]\nupstream = \"http://10.0.0.9:1\"\napi_prefix = \"/backend\"\n[cache.isr]\ndefault_ttl_ms = 1\n",
                ),
            ],
        );
        let (shop, warnings) = onto_app("shop", &platform.apps["shop"], &v3);
        assert_eq!(shop.upstream.as_deref(), Some("http://127.0.0.1:4000"));
        assert_eq!(shop.layers.unwrap().api_prefix.as_deref(), Some("/backend"));
        assert_eq!(shop.cache.as_deref(), Some(&serde_json::json!({"default_ttl": "5s"})));
        let said: Vec<String> = warnings.iter().map(|w| format!("{}: {}", w.field, w.reason)).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].starts_with("server.upstream: `upstream = \"http://10.0.0.9:1\"` is not used: app `shop` of ")
                && said[0].contains("says `upstream = \"http://127.0.0.1:4000\"`"),
            "{said:?}"
        );
        assert!(said[1].starts_with("cache.isr: "), "{said:?}");
        // A `hono` bundle's `static_dir` is its assets beside the module
        // at the bundle's root, as `bext run` reads the same file.
        let v4 = write(
            &d.join("v4"),
            &[
                ("index.js", MODULE),
                ("dist/static/s.txt", "asset"),
                (
                    "bext.config.toml",
                    "[framework]\ntype = \"hono\"\n[server]\nstatic_dir = \"dist/static\"\n",
                ),
            ],
        );
        let (site_v4, warnings) = onto_app("site", &platform.apps["site"], &v4);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(site_v4.source.as_deref(), Some(v4.as_path()));
        let statics = &site_v4.layers.as_ref().unwrap().statics;
        assert_eq!(statics[0].1, std::path::PathBuf::from("dist/static"));
    }

    /// A version whose bundle cannot be served with the app's table (one
    /// stored before the deploy plugin checked as much) is refused at the
    /// bundle's line and column: a `hybrid` bundle's `/api/*` upstream
    /// gets a `proxy` app's checks, a key of the wrong runtime is blamed
    /// on the bundle's runtime; a warning points at the bundle's key.
    #[test]
    fn a_bundle_s_errors_and_warnings_name_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, &[("site/index.html", "site"), ("api/app.js", MODULE)]);
        let file = d.join("platform.toml");
        std::fs::write(
            &file,
            "[apps.web]\nsource = \"site\"\n\n[apps.site]\nsource = \"site\"\nspa_fallback = true\n\n[apps.api]\nruntime = \"js\"\nsource = \"api\"\nentry = \"app.js\"\n",
        )
        .unwrap();
        let platform = Platform::load(&file).unwrap();
        let onto_app = |id: &str, version: &Path| onto(id, &platform.apps[id], &platform.declared[id], version, &file);
        let hybrid = write(
            &d.join("hy"),
            &[
                ("index.js", MODULE),
                (
                    "bext.config.toml",
                    "[framework]\ntype = \"hybrid\"\n\n[server]\nupstream = \"http://me:pw@127.0.0.1:1\"\n",
                ),
            ],
        );
        let e = onto_app("web", &hybrid).unwrap_err().to_string();
        assert!(
            e.contains("bext.config.toml:5:12: (app `web` with this bundle) server.upstream: ")
                && e.contains("credentials in upstream URLs are not supported"),
            "{e}"
        );
        // The table's `spa_fallback` with the bundle's `js`: at `type`.
        let js = write(
            &d.join("js"),
            &[
                ("index.js", MODULE),
                ("bext.config.toml", "# a js app\n[framework]\ntype = \"js\"\n"),
            ],
        );
        let e = onto_app("site", &js).unwrap_err().to_string();
        assert!(
            e.contains("bext.config.toml:3:8: (app `site` with this bundle) spa_fallback: "),
            "{e}"
        );
        let other = write(
            &d.join("other"),
            &[
                ("main.js", MODULE),
                ("bext.config.toml", "[server]\nentry = \"main.js\"\n"),
            ],
        );
        let (_, warnings) = onto_app("api", &other).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].to_string().contains("bext.config.toml:2:9: server.entry: "),
            "{warnings:?}"
        );
    }
}
