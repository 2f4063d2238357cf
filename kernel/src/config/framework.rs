//! Runtimes named after frameworks, as the original bext's platform.toml
//! names them (`runtime = "hono"`, `"express"`, ...): each is one of
//! bext's own runtimes with settings found in the app's folder, so a file
//! written for the original runs unchanged. Those bext cannot serve as the
//! original did are refused with the configuration to write instead.

use std::path::Path;

use super::platform::{AppConfig, RuntimeKind};

/// What a framework runtime became, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The runtime named in the file (`hono`).
    pub named: &'static str,
    /// How its settings were found (`package.json "main"`).
    pub how: String,
}

/// Turns a framework runtime into one of bext's own (`hono` -> `js` with
/// the entry found from package.json, `express` -> `process` with the
/// package's `start` script). `Ok(None)` for bext's own runtimes; `Err`
/// with `(field, reason)` when the folder does not say enough, or for a
/// runtime bext serves differently (the reason says what to write).
pub fn resolve(app: &mut AppConfig) -> Result<Option<Resolved>, (&'static str, String)> {
    let named = match app.runtime {
        RuntimeKind::Static | RuntimeKind::Proxy | RuntimeKind::Js | RuntimeKind::Process => return Ok(None),
        RuntimeKind::Hono => "hono",
        RuntimeKind::Express => "express",
        RuntimeKind::Ssr => return Err(("runtime", not_yet("ssr", SSR_INSTEAD))),
        RuntimeKind::Hybrid => return Err(("runtime", not_yet("hybrid", HYBRID_INSTEAD))),
        RuntimeKind::Nextjs => return Err(("runtime", not_yet("nextjs", NEXTJS_INSTEAD))),
    };
    let Some(source) = app.source.clone() else {
        return Err((
            "source",
            format!("a `{named}` app needs `source`, the folder of its package.json"),
        ));
    };
    if !source.is_dir() {
        return Err(("source", format!("{} is not a directory", source.display())));
    }
    let how = match app.runtime {
        RuntimeKind::Hono => {
            app.runtime = RuntimeKind::Js;
            match &app.entry {
                Some(_) => "its `entry`".to_owned(),
                None => {
                    let (entry, how) = fetch_handler_entry(&source).map_err(|reason| ("entry", reason))?;
                    app.entry = Some(entry.into());
                    how
                }
            }
        }
        _ => {
            app.runtime = RuntimeKind::Process;
            match &app.command {
                Some(_) => "its `command`".to_owned(),
                None => {
                    let found = super::process::detect(&source).map_err(|reason| ("source", reason))?;
                    let Some(d) = found.filter(|d| d.from.starts_with("package.json")) else {
                        return Err((
                            "command",
                            format!(
                                "{} has no package.json with a `start` script: add one, or set `command = \"node server.js\"`",
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
            }
        }
    };
    Ok(Some(Resolved { named, how }))
}

const SSR_INSTEAD: &str = "runtime = \"js\" with `entry` naming the server bundle (a module exporting `default { fetch(request) }`), and its static files as a second app with runtime = \"static\"";
const HYBRID_INSTEAD: &str = "runtime = \"js\" for the pages and a `runtime = \"proxy\"` app with `upstream` for the API, routed by a vhosts `pathPrefix: /api` entry";
const NEXTJS_INSTEAD: &str =
    "runtime = \"process\" with command = \"npx next start -p $PORT\" (or [\"node\", \".next/standalone/server.js\"])";

fn not_yet(named: &str, instead: &str) -> String {
    format!("`{named}` is not a runtime of this build; write {instead} (docs/migrating.md)")
}

/// Files a fetch-handler build usually leaves, tried in order when
/// package.json names none.
const BUILD_OUTPUTS: [&str; 6] = [
    "dist/index.js",
    "dist/index.mjs",
    "build/index.js",
    "dist/server.js",
    "index.js",
    "index.mjs",
];

/// The module of a fetch-handler app (Hono and the like): package.json's
/// `exports` (`"."`, its `import` or `default`), `module`, then `main`,
/// then the usual build outputs; a name that leaves `dir` is refused.
pub fn fetch_handler_entry(dir: &Path) -> Result<(String, String), String> {
    if let Some(json) = package_json(dir)? {
        let exports = json.get("exports").map(|e| e.get(".").unwrap_or(e));
        let exported = exports.and_then(|e| {
            e.as_str()
                .or_else(|| e.get("import").and_then(|v| v.as_str()))
                .or_else(|| e.get("default").and_then(|v| v.as_str()))
        });
        for (key, value) in [
            ("exports", exported),
            ("module", json.get("module").and_then(|v| v.as_str())),
            ("main", json.get("main").and_then(|v| v.as_str())),
        ] {
            let Some(name) = value else { continue };
            let name = name.trim_start_matches("./");
            if !super::platform::stays_inside(Path::new(name)) {
                return Err(format!("package.json `{key}` = `{name}` leaves the app's folder"));
            }
            if dir.join(name).is_file() {
                return Ok((name.to_owned(), format!("package.json `{key}`")));
            }
        }
    }
    for name in BUILD_OUTPUTS {
        if dir.join(name).is_file() {
            return Ok((name.to_owned(), format!("the build output {name}")));
        }
    }
    Err(format!(
        "{}: no module to run: package.json names none that exists (`exports`, `module`, `main`) and none of {} is there; build the app or set `entry`",
        dir.display(),
        BUILD_OUTPUTS.join(", ")
    ))
}

/// Node server frameworks: run as `process` apps by their `start` script.
const NODE_SERVERS: [&str; 5] = ["express", "fastify", "koa", "@hono/node-server", "@nestjs/core"];
/// Fetch-handler frameworks: run in isolates as `js` apps.
const FETCH_HANDLERS: [&str; 2] = ["hono", "itty-router"];

/// The framework a folder's package.json depends on (`bext run .` with no
/// runtime said), and the dependency that says so: a Node server
/// framework is `express`, a fetch-handler one `hono`. `None` for
/// anything else (Next.js and other apps with a `start` script run as
/// process apps by that script; a plain folder is a static site).
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
        std::fs::write(d.join("package.json"), r#"{"dependencies": {"next": "15"}}"#).unwrap();
        assert_eq!(detect(d).unwrap(), None);
        std::fs::write(d.join("package.json"), "{").unwrap();
        assert!(detect(d).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn the_entry_comes_from_package_json_then_build_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(fetch_handler_entry(d).unwrap_err().contains("no module to run"));
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
        assert!(fetch_handler_entry(d).unwrap_err().contains("leaves"));
    }
}
