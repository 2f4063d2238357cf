//! `bext check --deploy DIR`: a bundle checked as `bext deploy` stores and
//! serves it, not as `bext run` serves a folder. The two differ on
//! purpose (a bundle has no `[redis]`, `[hooks]` or start command, and is
//! never a Node server), so a bundle that `bext check DIR` passes may
//! still be refused by a deploy: this runs the deploy's own checks, the
//! deploy plugin's on its entries and its `bext.config.toml`, then the
//! kernel's on the app it makes of it.

use std::path::Path;
use std::process::ExitCode;

use crate::config::platform::{RuntimeKind, runtime_name};

/// Checks `dir` as a deploy of it as a new app would; says what it would
/// serve, or every reason it would be refused.
pub(super) fn bundle(dir: &Path) -> ExitCode {
    eprintln!("bext check: {}: checked as `bext deploy` stores it", dir.display());
    #[cfg(feature = "deploy")]
    if let Err(e) = bext_plugin_deploy::bundle::check_dir(dir, Default::default()) {
        eprintln!("error: {e}");
        eprintln!("1 error(s)");
        return ExitCode::FAILURE;
    }
    #[cfg(not(feature = "deploy"))]
    {
        eprintln!("error: this bext is built without the deploy plugin, which checks bundles");
        return ExitCode::FAILURE;
    }
    #[allow(unreachable_code)]
    match crate::pipeline::app_changes::described_by(dir) {
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
