//! `bext check --deploy DIR`: a bundle checked as `bext deploy` stores and
//! serves it, not as `bext run` serves a folder. The two differ on
//! purpose (a bundle has no `[redis]`, `[hooks]` or start command, and is
//! never a Node server), so a bundle that `bext check DIR` passes may
//! still be refused by a deploy: this runs the deploy's own checks, the
//! deploy plugin's on its entries and its `bext.config.toml`, then the
//! kernel's on the app it makes of it.

use std::path::Path;
use std::process::ExitCode;

use crate::config::platform::{AppConfig, Platform, RuntimeKind, runtime_name};
use crate::pipeline::app_changes;

/// Checks `dir` as a deploy of it would: onto the platform file
/// `platform` when given (its deploy manifest's bundle limits; with
/// `app`, as a version of that app, with its table's settings), else as
/// a new app with the deploy plugin's default limits. Says what it would
/// serve, or every reason it would be refused.
pub(super) fn bundle(dir: &Path, platform: Option<&Path>, app: Option<&str>) -> ExitCode {
    let onto = match platform {
        Some(file) => match Platform::load(file) {
            Ok(p) => Some(p),
            Err(errors) => return super::report(&errors),
        },
        None => None,
    };
    match (&onto, app) {
        (Some(p), Some(id)) if p.declared.contains_key(id) => eprintln!(
            "bext check: {}: checked as `bext deploy` stores it as a version of app `{id}` of {}",
            dir.display(),
            p.file.as_deref().unwrap_or(Path::new("")).display()
        ),
        (Some(p), Some(id)) => eprintln!(
            "bext check: {}: checked as `bext deploy` stores it; app `{id}` is not in {}, so the deploy creates it from the bundle alone",
            dir.display(),
            p.file.as_deref().unwrap_or(Path::new("")).display()
        ),
        _ => eprintln!("bext check: {}: checked as `bext deploy` stores it", dir.display()),
    }
    #[cfg(feature = "deploy")]
    {
        let limits = match onto.as_ref().map(bundle_limits).transpose() {
            Ok(limits) => limits.unwrap_or_default(),
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("1 error(s)");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = bext_plugin_deploy::bundle::check_dir(dir, limits) {
            eprintln!("error: {e}");
            eprintln!("1 error(s)");
            return ExitCode::FAILURE;
        }
    }
    #[cfg(not(feature = "deploy"))]
    {
        eprintln!("error: this bext is built without the deploy plugin, which checks bundles");
        return ExitCode::FAILURE;
    }
    #[allow(unreachable_code)]
    let served = match (&onto, app) {
        (Some(p), Some(id)) => match app_changes::deployed_onto(p, id, dir) {
            Some(Ok((app, warnings))) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                Ok(app)
            }
            Some(Err(errors)) => Err(errors),
            None => app_changes::described_by(dir),
        },
        _ => app_changes::described_by(dir),
    };
    said(dir, served)
}

/// The bounds the platform's deploy manifest holds bundles to
/// (`max_bundle_bytes`, `max_bundle_entries`), read as the deploy plugin
/// reads its `config`.
#[cfg(feature = "deploy")]
fn bundle_limits(platform: &Platform) -> Result<bext_plugin_deploy::bundle::Limits, String> {
    let manifests = crate::pipeline::load_manifests(platform).map_err(|e| e.to_string())?;
    let Some(m) = manifests.iter().find(|m| m.name == "deploy") else {
        return Ok(Default::default());
    };
    // A manifest without `config` is all defaults, as the server reads it.
    let written = match &m.config {
        serde_json::Value::Null => serde_json::json!({}),
        c => c.clone(),
    };
    let config: bext_plugin_deploy::config::Config =
        serde_json::from_value(written).map_err(|e| format!("{}: config: {e}", m.file.display()))?;
    Ok(config.limits())
}

/// What the bundle deploys as, or why it cannot.
fn said(dir: &Path, served: Result<AppConfig, crate::config::diag::Diagnostics>) -> ExitCode {
    match served {
        Ok(app) => {
            // Said now, not first by the deploy's load.
            if let Some((file, listen)) = crate::pipeline::app_changes::bundle_listen(dir) {
                eprintln!(
                    "warning: {}: server.listen: `{listen}` is not used when deployed: the platform's `listen` serves the app (`[server] listen` is for `bext run`)",
                    file.display()
                );
            }
            // A bundle's framework is what its bext.config.toml says, never
            // guessed from package.json: say so when they differ.
            if app.runtime == RuntimeKind::Static
                && let Ok(Some((kind, why))) = crate::config::framework::detect(dir)
            {
                eprintln!(
                    "warning: {}: {why}, but a deployed bundle is served as its bext.config.toml says (a static site here): write `[framework] type = \"{}\"` in it to run the app",
                    dir.display(),
                    runtime_name(kind)
                );
            }
            let what = match (&app.layers, app.runtime) {
                (Some(l), RuntimeKind::Js) => format!(
                    "{} {} app, {} rendered in isolates",
                    if l.named == "ssr" { "an" } else { "a" },
                    l.named,
                    app.js_entry().unwrap_or_default().display()
                ),
                (_, RuntimeKind::Static) => format!("a static site, {}", app.source.unwrap_or_default().display()),
                (_, RuntimeKind::Js) => format!("a js app, {}", app.js_entry().unwrap_or_default().display()),
                (_, other) => format!("a {} app", runtime_name(other)),
            };
            println!("ok: {} deploys as {what}", dir.display());
            ExitCode::SUCCESS
        }
        Err(errors) => super::report(&errors),
    }
}
