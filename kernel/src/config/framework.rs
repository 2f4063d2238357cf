//! Runtimes named after frameworks, as the original bext's platform.toml
//! names them (`runtime = "hono"`, `"express"`, ...): each is one of
//! bext's own runtimes with settings found in the app's folder, so a file
//! written for the original runs unchanged. What bext serves itself in
//! front of such an app (static files, an API upstream) is its [`Layers`].

use std::path::{Path, PathBuf};

use super::platform::{AppConfig, RuntimeKind};
use super::process::CommandLine;

/// What a framework runtime became, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The runtime named in the file (`hono`).
    pub named: &'static str,
    /// How its settings were found (`package.json "main"`).
    pub how: String,
}

/// What bext serves itself in front of a framework app's runtime: static
/// folders at URL prefixes, and an API prefix sent to the app's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// The original's runtime name (`ssr`, `hybrid`, `nextjs`).
    pub named: &'static str,
    /// Folders served before the app: `(URL prefix, folder relative to
    /// the app's `source`, immutable)`, so a deployed version serves its
    /// own; an immutable file is answered with a year-long `Cache-Control`.
    pub statics: Vec<(String, PathBuf, bool)>,
    /// Requests under this prefix go to the app's `upstream` (hybrid).
    pub api_prefix: Option<String>,
}

/// Why a framework runtime cannot be served from the app's folder, by the
/// app's field at fault: `bext check DIR` tells a folder that is only
/// missing its build (which `bext run` makes first) from a broken one by
/// the variant, never by the words of the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameworkError {
    /// What the runtime runs is a build output not made yet (`dist/`,
    /// `.next/`).
    #[error("{reason}")]
    NotBuilt {
        /// The app's field (`entry`, `runtime`).
        field: &'static str,
        /// What is missing and how to make it.
        reason: String,
    },
    /// Anything else the folder or the table does not say right.
    #[error("{reason}")]
    Invalid {
        /// The app's field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl FrameworkError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        FrameworkError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The app's field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            FrameworkError::NotBuilt { field, .. } | FrameworkError::Invalid { field, .. } => field,
        }
    }

    /// The same error, told of `field` instead.
    fn of(self, field: &'static str) -> Self {
        match self {
            FrameworkError::NotBuilt { reason, .. } => FrameworkError::NotBuilt { field, reason },
            FrameworkError::Invalid { reason, .. } => FrameworkError::Invalid { field, reason },
        }
    }
}

/// Far-future caching for files whose names change with their content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Turns a framework runtime into one of bext's own (`hono` -> `js` with
/// the entry found from package.json, `express` -> `process` with the
/// package's `start` script, `ssr`/`hybrid` -> `js` with static files and
/// an API upstream in front, `nextjs` -> `process` running `next start`
/// with `.next/static` and `public/` in front). `Ok(None)` for bext's own
/// runtimes; `Err` naming the field when the folder does not say enough.
pub fn resolve(app: &mut AppConfig) -> Result<Option<Resolved>, FrameworkError> {
    let named = match app.runtime {
        RuntimeKind::Static | RuntimeKind::Proxy | RuntimeKind::Js | RuntimeKind::Process => return Ok(None),
        RuntimeKind::Hono => "hono",
        RuntimeKind::Express => "express",
        RuntimeKind::Ssr => "ssr",
        RuntimeKind::Hybrid => "hybrid",
        RuntimeKind::Nextjs => "nextjs",
    };
    let Some(source) = app.source.clone() else {
        return Err(FrameworkError::invalid(
            "source",
            format!("a `{named}` app needs `source`, the folder of its package.json"),
        ));
    };
    if !source.is_dir() {
        return Err(FrameworkError::invalid(
            "source",
            format!("{} is not a directory", source.display()),
        ));
    }
    let kind = app.runtime;
    let how = match kind {
        RuntimeKind::Hono | RuntimeKind::Ssr | RuntimeKind::Hybrid => {
            app.runtime = RuntimeKind::Js;
            // Checked first: a `static_dir` that is a file is wrong however
            // the module is found.
            let own_static = static_layer(&source, app.static_dir.as_deref())?;
            let mut how = match &app.entry {
                Some(_) => "its `entry`".to_owned(),
                None => {
                    let (entry, how) = fetch_handler_entry(&source).map_err(|e| e.of("entry"))?;
                    app.entry = Some(entry.into());
                    how
                }
            };
            // A `hono` app's `static_dir`, like an `ssr` app's, is its
            // assets, served by bext before the app answers.
            if kind != RuntimeKind::Hono || app.static_dir.is_some() {
                let statics = match own_static {
                    Some(dir) => vec![("/".to_owned(), dir, false)],
                    None => vec![("/".to_owned(), PathBuf::from("public"), false)],
                };
                let api_prefix = match kind {
                    RuntimeKind::Hybrid => {
                        if app.upstream.is_none() && app.upstreams.is_empty() {
                            return Err(FrameworkError::invalid(
                                "upstream",
                                "a `hybrid` app sends `/api/*` (its `api_prefix`) to `upstream = \"http://host:port\"`, which is unset",
                            ));
                        }
                        let prefix = app.api_prefix.clone().unwrap_or_else(|| "/api".into());
                        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
                            return Err(FrameworkError::invalid(
                                "api_prefix",
                                format!("`{prefix}`: a path like \"/api\""),
                            ));
                        }
                        Some(prefix)
                    }
                    _ => None,
                };
                if let Some((_, dir, _)) = statics.first().filter(|(_, d, _)| source.join(d).is_dir()) {
                    how.push_str(&format!(", static files from {}", dir.display()));
                }
                if let Some(p) = &api_prefix {
                    how.push_str(&format!(", {p}/* to the upstream"));
                }
                app.layers = Some(Box::new(Layers {
                    named,
                    statics,
                    api_prefix,
                }));
            }
            how
        }
        RuntimeKind::Nextjs => {
            app.runtime = RuntimeKind::Process;
            // `next start` on an unbuilt folder exits at once, and every
            // request would be a 502: say so before serving.
            if app.command.is_none() && !source.join(".next").is_dir() {
                return Err(FrameworkError::NotBuilt {
                    field: "runtime",
                    reason: format!(
                        "{} has no `.next/` build for `nextjs`: run `next build` in it first (`npm run build`), or set `command`",
                        source.display()
                    ),
                });
            }
            let how = match &app.command {
                Some(_) => "its `command`".to_owned(),
                None if source.join(".next/standalone/server.js").is_file() => {
                    app.command = Some(CommandLine(vec!["node".into(), ".next/standalone/server.js".into()]));
                    app.env.entry("HOSTNAME".into()).or_insert_with(|| "127.0.0.1".into());
                    "the standalone .next/standalone/server.js".to_owned()
                }
                None => {
                    let bin = source.join("node_modules/.bin");
                    let path = std::env::var("PATH").unwrap_or_default();
                    app.env
                        .entry("PATH".into())
                        .or_insert_with(|| format!("{}:{path}", bin.display()));
                    app.command = Some(CommandLine(vec![
                        "next".into(),
                        "start".into(),
                        "-H".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        "$PORT".into(),
                    ]));
                    "`next start`".to_owned()
                }
            };
            // Built assets never change under a name; `public/` is the app's.
            let statics = vec![
                ("/_next/static".to_owned(), PathBuf::from(".next/static"), true),
                ("/".to_owned(), PathBuf::from("public"), true),
            ];
            // Pages are kept as their Cache-Control (and ISR's s-maxage) say.
            app.cache.get_or_insert_with(|| Box::new(serde_json::json!({})));
            app.layers = Some(Box::new(Layers {
                named,
                statics,
                api_prefix: None,
            }));
            format!("{how}, /_next/static/* and public/ served by bext")
        }
        _ => {
            app.runtime = RuntimeKind::Process;
            // An Express app's `static_dir`: its assets, served by bext in
            // front of the server.
            if let Some(dir) = static_layer(&source, app.static_dir.as_deref())? {
                app.layers = Some(Box::new(Layers {
                    named,
                    statics: vec![("/".to_owned(), dir, false)],
                    api_prefix: None,
                }));
            }
            let how = match &app.command {
                Some(_) => "its `command`".to_owned(),
                None => {
                    let found =
                        super::process::detect(&source).map_err(|reason| FrameworkError::invalid("source", reason))?;
                    let Some(d) = found.filter(|d| d.from.starts_with("package.json")) else {
                        // The hint names the package's own `main` when it has one.
                        let main = package_json(&source)
                            .ok()
                            .flatten()
                            .and_then(|j| j.pointer("/main").and_then(|m| m.as_str()).map(str::to_owned));
                        let (has, file) = match &main {
                            Some(m) => ("a package.json without a `start` script", m.as_str()),
                            None => ("no package.json with a `start` script", "server.js"),
                        };
                        return Err(FrameworkError::invalid(
                            "command",
                            format!(
                                "{} has {has}: add `\"start\": \"node {file}\"` to its scripts, or set `command = \"node {file}\"` in the app's table",
                                source.display()
                            ),
                        ));
                    };
                    app.command = Some(d.command);
                    for (k, v) in d.env {
                        app.env.entry(k).or_insert(v);
                    }
                    d.from.to_owned()
                }
            };
            match &app.static_dir {
                Some(dir) => format!("{how}, static files from {}", dir.display()),
                None => how,
            }
        }
    };
    Ok(Some(Resolved { named, how }))
}

/// The app's `static_dir`, checked: inside the app's folder and there.
fn static_layer(source: &Path, dir: Option<&Path>) -> Result<Option<PathBuf>, FrameworkError> {
    match dir {
        None => Ok(None),
        Some(dir) if !super::platform::stays_inside(dir) => Err(FrameworkError::invalid(
            "static_dir",
            format!("{} leaves the app's folder", dir.display()),
        )),
        // Missing: a build output not made yet (`bext run` builds first).
        Some(dir) if !source.join(dir).exists() => Err(FrameworkError::NotBuilt {
            field: "static_dir",
            reason: format!("{} is not a directory", source.join(dir).display()),
        }),
        Some(dir) if !source.join(dir).is_dir() => Err(FrameworkError::invalid(
            "static_dir",
            format!("{} is not a directory", source.join(dir).display()),
        )),
        Some(dir) => Ok(Some(dir.to_owned())),
    }
}

use bext_plugin_abi::BUILD_OUTPUTS;

/// The module of a fetch-handler app (Hono and the like): package.json's
/// `exports` (`"."`, its `import` or `default`), `module`, then `main`,
/// then the usual build outputs; a name that leaves `dir` is refused.
pub fn fetch_handler_entry(dir: &Path) -> Result<(String, String), FrameworkError> {
    let not_built = |reason: String| FrameworkError::NotBuilt { field: "entry", reason };
    if let Some(json) = package_json(dir).map_err(|reason| FrameworkError::invalid("entry", reason))? {
        let exports = json.get("exports").map(|e| e.get(".").unwrap_or(e));
        let exported = exports.and_then(|e| {
            e.as_str()
                .or_else(|| e.get("import").and_then(|v| v.as_str()))
                .or_else(|| e.get("default").and_then(|v| v.as_str()))
        });
        let mut missing = Vec::new();
        for (key, value) in [
            ("exports", exported),
            ("module", json.get("module").and_then(|v| v.as_str())),
            ("main", json.get("main").and_then(|v| v.as_str())),
        ] {
            let Some(name) = value else { continue };
            let name = name.trim_start_matches("./");
            if !super::platform::stays_inside(Path::new(name)) {
                return Err(FrameworkError::invalid(
                    "entry",
                    format!("package.json `{key}` = `{name}` leaves the app's folder"),
                ));
            }
            if dir.join(name).is_file() {
                return Ok((name.to_owned(), format!("package.json `{key}`")));
            }
            missing.push(format!("`{key}` = `{name}`"));
        }
        // What package.json names is what runs: another file found by
        // chance would serve something else (a stale build, a source).
        if !missing.is_empty() {
            return Err(not_built(format!(
                "{}: package.json {} is not a file there: build the app first (`npm run build`), or fix {}, or set `entry`",
                dir.display(),
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            )));
        }
    }
    for name in BUILD_OUTPUTS {
        if dir.join(name).is_file() {
            return Ok((name.to_owned(), format!("the build output {name}")));
        }
    }
    Err(not_built(format!(
        "{}: no module to run: package.json names none that exists (`exports`, `module`, `main`) and none of {} is there; build the app or set `entry`",
        dir.display(),
        BUILD_OUTPUTS.join(", ")
    )))
}

pub use bext_plugin_abi::fetch_handler_module;

/// Node server frameworks: run as `process` apps by their `start` script.
const NODE_SERVERS: [&str; 5] = ["express", "fastify", "koa", "@hono/node-server", "@nestjs/core"];
/// Fetch-handler frameworks: run in isolates as `js` apps.
const FETCH_HANDLERS: [&str; 2] = ["hono", "itty-router"];

/// The framework a folder's package.json depends on (`bext run .` with no
/// runtime said), and the dependency that says so: a Node server
/// framework is `express`, Next.js `nextjs` (bext serving its built
/// assets), a fetch-handler one `hono`. `None` for anything else (apps
/// with a `start` script run as process apps by that script; a plain
/// folder is a static site). A Node server beside `next` is a custom
/// Next.js server, run by the package's `start` script as `express`.
pub fn detect(dir: &Path) -> Result<Option<(RuntimeKind, String)>, String> {
    let Some(json) = package_json(dir)? else {
        return Ok(None);
    };
    let depends_on = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|k| json.get(k).and_then(|d| d.get(name)).is_some())
    };
    if let Some(dep) = NODE_SERVERS.iter().find(|d| depends_on(d)) {
        return Ok(Some((RuntimeKind::Express, format!("package.json depends on `{dep}`"))));
    }
    if depends_on("next") {
        return Ok(Some((RuntimeKind::Nextjs, "package.json depends on `next`".to_owned())));
    }
    if let Some(dep) = FETCH_HANDLERS.iter().find(|d| depends_on(d)) {
        return Ok(Some((RuntimeKind::Hono, format!("package.json depends on `{dep}`"))));
    }
    Ok(None)
}

/// Whether package.json has a script of that name.
pub fn has_script(dir: &Path, name: &str) -> bool {
    package_json(dir)
        .ok()
        .flatten()
        .is_some_and(|j| j.pointer(&format!("/scripts/{name}")).is_some_and(|s| s.is_string()))
}

fn package_json(dir: &Path) -> Result<Option<serde_json::Value>, String> {
    let package = dir.join("package.json");
    if !package.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&package).map_err(|e| format!("{}: {e}", package.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: not JSON: {e}", package.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frameworks_are_detected_from_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(detect(d).unwrap(), None);
        std::fs::write(d.join("package.json"), r#"{"dependencies": {"hono": "^4"}}"#).unwrap();
        assert_eq!(detect(d).unwrap().unwrap().0, RuntimeKind::Hono);
        std::fs::write(
            d.join("package.json"),
            r#"{"dependencies": {"hono": "^4", "@hono/node-server": "1"}}"#,
        )
        .unwrap();
        assert_eq!(detect(d).unwrap().unwrap().0, RuntimeKind::Express);
        std::fs::write(
            d.join("package.json"),
            r#"{"dependencies": {"next": "15", "hono": "4"}}"#,
        )
        .unwrap();
        assert_eq!(detect(d).unwrap().unwrap().0, RuntimeKind::Nextjs);
        // A custom Next.js server runs by its `start` script.
        std::fs::write(
            d.join("package.json"),
            r#"{"dependencies": {"next": "15", "express": "5"}}"#,
        )
        .unwrap();
        assert_eq!(detect(d).unwrap().unwrap().0, RuntimeKind::Express);
        std::fs::write(d.join("package.json"), r#"{"dependencies": {"react": "19"}}"#).unwrap();
        assert_eq!(detect(d).unwrap(), None);
        std::fs::write(d.join("package.json"), "{").unwrap();
        assert!(detect(d).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn the_entry_comes_from_package_json_then_build_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(
            matches!(fetch_handler_entry(d).unwrap_err(), FrameworkError::NotBuilt { field: "entry", reason } if reason.contains("no module to run"))
        );
        std::fs::create_dir_all(d.join("dist")).unwrap();
        std::fs::write(d.join("dist/index.js"), "").unwrap();
        assert_eq!(fetch_handler_entry(d).unwrap().0, "dist/index.js");
        std::fs::write(d.join("app.mjs"), "").unwrap();
        std::fs::write(d.join("package.json"), r#"{"main": "./app.mjs"}"#).unwrap();
        assert_eq!(
            fetch_handler_entry(d).unwrap(),
            ("app.mjs".into(), "package.json `main`".into())
        );
        std::fs::write(
            d.join("package.json"),
            r#"{"exports": {".": {"import": "./dist/index.js"}}}"#,
        )
        .unwrap();
        assert_eq!(fetch_handler_entry(d).unwrap().0, "dist/index.js");
        std::fs::write(d.join("package.json"), r#"{"main": "../../etc/passwd"}"#).unwrap();
        let err = fetch_handler_entry(d).unwrap_err();
        assert!(matches!(&err, FrameworkError::Invalid { .. }) && err.to_string().contains("leaves"));
        // A `main` that is not there is an error, not dist/index.js.
        std::fs::write(d.join("package.json"), r#"{"main": "./dist/server.js"}"#).unwrap();
        let err = fetch_handler_entry(d).unwrap_err();
        assert!(matches!(err, FrameworkError::NotBuilt { .. }));
        let err = err.to_string();
        assert!(
            err.contains("package.json `main` = `dist/server.js` is not a file there") && err.contains("npm run build"),
            "{err}"
        );
    }

    #[test]
    fn a_nextjs_app_without_a_build_is_told_to_run_next_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut app: AppConfig = toml::from_str(&format!(
            "runtime = \"nextjs\"\nsource = {:?}",
            dir.path().display().to_string()
        ))
        .unwrap();
        let err = resolve(&mut app.clone()).unwrap_err();
        assert!(
            matches!(&err, FrameworkError::NotBuilt { field: "runtime", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("run `next build`"), "{err}");
        std::fs::create_dir_all(dir.path().join(".next/static")).unwrap();
        assert!(resolve(&mut app).is_ok());
    }

    #[test]
    fn an_express_app_without_a_start_script_is_told_what_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let express = |dir: &Path| -> AppConfig {
            toml::from_str(&format!(
                "runtime = \"express\"\nsource = {:?}",
                dir.display().to_string()
            ))
            .unwrap()
        };
        let err = resolve(&mut express(dir.path())).unwrap_err();
        assert_eq!(err.field(), "command");
        let reason = err.to_string();
        assert!(
            reason.contains("no package.json") && reason.contains("`command = \"node server.js\"`"),
            "{reason}"
        );
        std::fs::write(dir.path().join("package.json"), r#"{"main": "app.js"}"#).unwrap();
        let reason = resolve(&mut express(dir.path())).unwrap_err().to_string();
        assert!(
            reason.contains("without a `start` script") && reason.contains("`\"start\": \"node app.js\"`"),
            "{reason}"
        );
    }
}
