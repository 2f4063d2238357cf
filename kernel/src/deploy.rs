//! Where the deploy plugin's registry meets the kernel: every pipeline
//! build serves each app from its current version, and the `deploy`,
//! `rollback` and `apps` commands drive the registry, through a running
//! server's admin API or, with none running, on the data directory.

use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bext_plugin_deploy::bundle::Limits;
use bext_plugin_deploy::config::Config;
use bext_plugin_deploy::{
    AppRecord, CanaryPlan, DeployOptions, Deployed, PreviewRecord, Registry, VersionRecord, unix_now,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::diag::{Diagnostic, Diagnostics};
use crate::manifest::Manifest;
use crate::platform::{AppConfig, Platform};

const PLUGIN: &str = "deploy";

/// `println!` that gives up quietly when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Serves each app that has a current version from that version's
/// directory; an app only the registry knows (created by a deploy) is
/// added as its bundle's `bext.config.toml` describes it. Nothing changes
/// when the deploy plugin is off or nothing was ever deployed.
pub(crate) fn overlay(platform: &mut Platform, manifests: &[Manifest]) -> Result<(), Diagnostics> {
    if !manifests.iter().any(|m| m.name == PLUGIN && m.enabled) {
        return Ok(());
    }
    let root = Registry::root_in(&platform.data_dir);
    let served = Registry::served(&root).map_err(|e| Diagnostic::new(&root, "", e.to_string()))?;
    for version in served.current {
        match platform.apps.get_mut(&version.app) {
            Some(app) => app.source = Some(version.path.clone()),
            None => {
                let app = bundle_app(&version.path)?;
                platform.apps.insert(version.app.clone(), app);
            }
        }
    }
    // A preview is the app's configuration with the preview's files and
    // `preview_env`, as an app of its own on its own hosts.
    let now = unix_now();
    for preview in served.previews.iter().filter(|p| p.expires_at > now) {
        let mut app = match platform.apps.get(&preview.app) {
            Some(app) => app.clone(),
            None => bundle_app(&preview.path)?,
        };
        app.source = Some(preview.path.clone());
        app.env = std::mem::take(&mut app.preview_env);
        app.domains = preview_domains(&platform.settings.preview_domain, &app.domains, &preview.name);
        platform
            .apps
            .insert(bext_plugin_deploy::preview_app_id(&preview.app, &preview.name), app);
    }
    // A canary is the app's configuration with the canary's files, as a
    // hidden app with no domains: the plugin sends its visitors there.
    for canary in served.canaries {
        let Some(stable) = platform.apps.get(&canary.app) else {
            continue;
        };
        let mut app = stable.clone();
        app.source = Some(canary.path.clone());
        app.domains.clear();
        platform
            .apps
            .insert(bext_plugin_deploy::canary_app_id(&canary.app, &canary.version), app);
    }
    Ok(())
}

/// The app a stored version's own `bext.config.toml` describes, refused
/// when a path it names (`static_dir`, `entry`) resolves outside the
/// version's directory. The deploy plugin refuses such bundles; this
/// keeps one stored by an older bext from serving the host's files.
fn bundle_app(version: &Path) -> Result<AppConfig, Diagnostics> {
    let (app, _) = AppConfig::for_dir(version)?;
    let file = version.join(bext_plugin_deploy::bundle::CONFIG_FILE);
    let root = std::fs::canonicalize(version).map_err(|e| Diagnostic::new(version, "", e.to_string()))?;
    let entry = (app.runtime == crate::platform::RuntimeKind::Js)
        .then(|| app.js_entry())
        .flatten();
    for (field, path) in [("server.static_dir", app.source.clone()), ("server.entry", entry)] {
        let Some(path) = path else { continue };
        // Lexically first (a missing path cannot be resolved), then as the
        // file system resolves it, every link followed.
        let lexical = path.strip_prefix(version).is_ok_and(|rest| {
            rest.components()
                .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
        });
        let resolved = match std::fs::canonicalize(&path) {
            Ok(real) => real.starts_with(&root),
            Err(_) => true,
        };
        if !(lexical && resolved) {
            return Err(Diagnostic::new(
                &file,
                field,
                format!(
                    "{} is outside the version's directory {}: the deploy plugin no longer accepts such a bundle; roll the app back or remove it",
                    path.display(),
                    version.display()
                ),
            )
            .into());
        }
    }
    Ok(app)
}

/// The hosts of preview `name` of an app with `domains`, by the
/// platform's `preview_domain` template (regex hosts have none).
pub(crate) fn preview_domains(template: &str, domains: &[String], name: &str) -> Vec<String> {
    domains
        .iter()
        .filter(|d| !d.starts_with('~'))
        .map(|d| {
            template
                .replace("{name}", name)
                .replace("{domain}", d.trim_start_matches("*."))
        })
        .collect()
}

/// What a command works on: a running server, or the data directory.
enum Target {
    Server {
        base: String,
        token: String,
    },
    Local {
        root: PathBuf,
        keep_versions: usize,
        limits: Limits,
        preview_ttl: u64,
        apps: Vec<String>,
    },
}

impl Target {
    /// `--server URL` when given; else the platform's server if one
    /// answers on its `listen` address; else its data directory.
    fn find(config: &Path, server: Option<&str>) -> anyhow::Result<(Target, Platform)> {
        let platform = Platform::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let manifests = crate::pipeline::load_manifests(&platform).map_err(|e| anyhow::anyhow!("{e}"))?;
        let manifest = manifests
            .iter()
            .find(|m| m.name == PLUGIN && m.enabled)
            .with_context(|| format!("the deploy plugin is off in the manifests of {}", config.display()))?;
        // As the server decodes it: a manifest without `config` is all defaults.
        let settings: Config = bext_plugin_abi::decode_config(manifest.config.clone())
            .map_err(|e| anyhow::anyhow!("{}: config: {e}", manifest.file.display()))?;
        let base = manifest.base.clone().unwrap_or_else(|| "/__bext/api/platform".into());
        let url = match server {
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None => answering(&platform.settings.listen).map(|addr| format!("http://{addr}")),
        };
        let Some(url) = url else {
            let target = Target::Local {
                root: Registry::root_in(&platform.data_dir),
                keep_versions: settings.keep_versions,
                limits: settings.limits(),
                preview_ttl: settings.preview_ttl.0.as_secs(),
                apps: platform.apps.keys().cloned().collect(),
            };
            return Ok((target, platform));
        };
        let token = std::env::var(&settings.admin_token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .with_context(|| {
                format!(
                    "a bext server answers at {url}: set {} to change it through its admin API",
                    settings.admin_token_env
                )
            })?;
        let target = Target::Server {
            base: format!("{url}{base}"),
            token,
        };
        Ok((target, platform))
    }

    /// The registry on disk, with the platform file's apps recorded as a
    /// starting server would.
    fn open(&self) -> anyhow::Result<Registry> {
        let Target::Local {
            root,
            keep_versions,
            limits,
            apps,
            ..
        } = self
        else {
            unreachable!("local targets only")
        };
        let mut registry = Registry::open(root, *keep_versions)?;
        registry.set_limits(*limits);
        registry.sync_platform_apps(apps.iter().map(String::as_str))?;
        Ok(registry)
    }
}

/// The address of a server listening on `listen`, if one answers.
fn answering(listen: &str) -> Option<SocketAddr> {
    let addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.port() == 0 {
        return None;
    }
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    Some(addr)
}

/// Who runs the command, for the registry's `deployed_by`.
fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

/// One admin API call; the answer's JSON, or the error it carried.
fn call(target: &Target, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<serde_json::Value> {
    let Target::Server { base, token } = target else {
        unreachable!("server targets only")
    };
    let url = format!("{base}{path}");
    let mut req = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header("x-bext-user", user());
    if !body.is_empty() {
        req = req.header(http::header::CONTENT_TYPE, "application/x-tar");
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, bytes) = rt.block_on(async {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let res = client.request(req).await.with_context(|| url.clone())?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} answered {status}: {}", String::from_utf8_lossy(&bytes).trim()))?;
    if !status.is_success() {
        bail!("{}", value["error"].as_str().unwrap_or(status.as_str()));
    }
    Ok(value)
}

/// What `bext deploy` was asked for, besides where.
pub(crate) struct DeployArgs<'a> {
    /// `--version`.
    pub version: Option<&'a str>,
    /// `--canary` and its automatic decisions.
    pub canary: Option<CanaryPlan>,
    /// `--preview`.
    pub preview: Option<&'a str>,
}

/// `bext deploy DIR --app ID [--version V] [--canary N% | --preview NAME]`.
pub(crate) fn deploy(
    config: &Path,
    server: Option<&str>,
    dir: &Path,
    app: &str,
    args: &DeployArgs<'_>,
    json: bool,
) -> anyhow::Result<()> {
    let DeployArgs {
        version,
        canary,
        preview,
    } = *args;
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let (target, platform) = Target::find(config, server)?;
    let deployed: Deployed = match &target {
        Target::Local { preview_ttl, .. } => {
            let mut registry = target.open()?;
            let by = user();
            let mut progress = Progress::new(json);
            let hooks = platform.apps.get(app).map(|a| &a.hooks);
            let options = DeployOptions {
                version,
                by: &by,
                canary,
                preview: preview.map(|name| (name, *preview_ttl)),
                hooks,
            };
            let mut deployed = registry.deploy(app, dir, &options, &mut |path, size| progress.file(path, size))?;
            drop(progress);
            // No server: the new version is what a server will serve.
            if let (Some(hooks), None, None) = (hooks, canary, preview) {
                deployed.post_deploy = registry.post_deploy(app, &deployed.version, hooks)?;
            }
            deployed
        }
        Target::Server { .. } => {
            let mut tar = tar::Builder::new(Vec::new());
            // Links go as links, and a file with holes as its bytes: the
            // server refuses links and sparse entries, and counts holes.
            tar.follow_symlinks(false);
            tar.sparse(false);
            tar.append_dir_all(".", dir)
                .with_context(|| format!("{}: cannot pack", dir.display()))?;
            let archive = tar.into_inner()?;
            if !json {
                eprintln!("uploading {} ({})", dir.display(), size(archive.len() as u64));
            }
            let mut query = Vec::new();
            if let Some(v) = version {
                query.push(format!("version={v}"));
            }
            if let Some(p) = preview {
                query.push(format!("preview={p}"));
            }
            if let Some(c) = canary {
                query.push(format!("canary={}", c.share));
                if let Some(after) = c.auto_promote_after {
                    query.push(format!("auto_promote_after={after}"));
                }
                if let Some(max) = c.max_error_rate {
                    query.push(format!("max_error_rate={max}"));
                }
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            serde_json::from_value(call(&target, "POST", &format!("/apps/{app}/deploy{query}"), archive)?)?
        }
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&deployed)?);
    } else {
        for run in deployed.pre_build.iter().chain(&deployed.post_deploy) {
            eprint!("{}", run.output);
            eprintln!(
                "{} `{}`: exit code {:?}, {} ms",
                run.hook, run.command, run.exit_code, run.millis
            );
        }
        let v = &deployed.version;
        let role = match (canary, preview) {
            (Some(c), _) => format!(" as a canary for {}% of new visitors", c.share),
            (None, Some(name)) => {
                let domains = platform.apps.get(app).map_or(&[][..], |a| &a.domains[..]);
                let hosts = preview_domains(&platform.settings.preview_domain, domains, name);
                let at = if hosts.is_empty() {
                    format!("/{}/", bext_plugin_deploy::preview_app_id(app, name))
                } else {
                    hosts.join(", ")
                };
                format!(" as preview {name} (at {at})")
            }
            (None, None) => String::new(),
        };
        out!(
            "deployed {} {}{role}: {} file{}, {} ({} new){}",
            v.app,
            v.version,
            v.files,
            if v.files == 1 { "" } else { "s" },
            size(v.bytes),
            size(deployed.new_bytes),
            if deployed.pruned.is_empty() {
                String::new()
            } else {
                format!("; removed old {}", deployed.pruned.join(", "))
            }
        );
    }
    Ok(())
}

/// `bext rollback ID`.
pub(crate) fn rollback(config: &Path, server: Option<&str>, app: &str, json: bool) -> anyhow::Result<()> {
    let (target, _) = Target::find(config, server)?;
    let version: VersionRecord = match &target {
        Target::Local { .. } => target.open()?.rollback(app)?,
        Target::Server { .. } => {
            serde_json::from_value(call(&target, "POST", &format!("/apps/{app}/rollback"), vec![])?)?
        }
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&version)?);
    } else {
        out!("{} is back on {}", version.app, version.version);
    }
    Ok(())
}

/// `bext promote ID [--to N%]`.
pub(crate) fn promote(
    config: &Path,
    server: Option<&str>,
    app: &str,
    to: Option<u8>,
    json: bool,
) -> anyhow::Result<()> {
    let (target, _) = Target::find(config, server)?;
    let record: AppRecord = match &target {
        Target::Local { .. } => target.open()?.promote(app, to)?,
        Target::Server { .. } => {
            let query = to.map(|t| format!("?to={t}")).unwrap_or_default();
            serde_json::from_value(call(&target, "POST", &format!("/apps/{app}/promote{query}"), vec![])?)?
        }
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(());
    }
    match (&record.canary, &record.current) {
        (Some(c), _) => out!("{} canary {} now gets {}% of new visitors", app, c.version, c.share),
        (None, Some(v)) => out!("{} is now on {}", app, v.version),
        (None, None) => out!("{app} has no current version"),
    }
    Ok(())
}

/// What `bext apps` does.
pub(crate) enum AppsCommand {
    List,
    Show(String),
    Versions(String),
    Remove(String),
    Previews,
    PrunePreviews,
}

/// `bext apps list|show|versions|rm`.
pub(crate) fn apps(config: &Path, server: Option<&str>, command: AppsCommand, json: bool) -> anyhow::Result<()> {
    let (target, platform) = Target::find(config, server)?;
    let local = matches!(target, Target::Local { .. });
    match command {
        AppsCommand::List => {
            let apps: Vec<AppRecord> = if local {
                target.open()?.apps()?
            } else {
                serde_json::from_value(call(&target, "GET", "/apps", vec![])?)?
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(());
            }
            out!(
                "{:<20} {:<9} {:<16} {:>8}  DEPLOYED",
                "APP",
                "ORIGIN",
                "CURRENT",
                "VERSIONS"
            );
            for a in apps {
                let (current, at) = a.current.as_ref().map_or(("-".to_owned(), "-".to_owned()), |v| {
                    (v.version.clone(), when(v.deployed_at))
                });
                out!("{:<20} {:<9} {:<16} {:>8}  {at}", a.id, a.origin, current, a.versions);
            }
        }
        AppsCommand::Show(ref id) | AppsCommand::Versions(ref id) => {
            let value = if local {
                let r = target.open()?;
                serde_json::json!({ "app": r.app(id)?, "versions": r.versions(id)? })
            } else {
                call(&target, "GET", &format!("/apps/{id}"), vec![])?
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            let app: AppRecord = serde_json::from_value(value["app"].clone())?;
            let versions: Vec<VersionRecord> = serde_json::from_value(value["versions"].clone())?;
            print_app(&app, &versions, matches!(command, AppsCommand::Show(_)));
            if matches!(command, AppsCommand::Show(_)) {
                print_history(&app, &value["canary_stats"]);
            }
        }
        AppsCommand::Previews | AppsCommand::PrunePreviews => {
            let prune = matches!(command, AppsCommand::PrunePreviews);
            let previews: Vec<PreviewRecord> = match (&target, prune) {
                (Target::Local { .. }, false) => target.open()?.previews(None)?,
                (Target::Local { .. }, true) => target.open()?.prune_previews(unix_now())?,
                (Target::Server { .. }, false) => serde_json::from_value(call(&target, "GET", "/previews", vec![])?)?,
                (Target::Server { .. }, true) => {
                    serde_json::from_value(call(&target, "POST", "/previews/prune", vec![])?)?
                }
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&previews)?);
                return Ok(());
            }
            if prune {
                out!("removed {} expired preview(s)", previews.len());
            }
            out!(
                "{:<20} {:<16} {:<10} {:<29}  HOSTS",
                "APP",
                "PREVIEW",
                "VERSION",
                "EXPIRES"
            );
            for p in &previews {
                let domains = platform.apps.get(&p.app).map_or(&[][..], |a| &a.domains[..]);
                let hosts = preview_domains(&platform.settings.preview_domain, domains, &p.name).join(", ");
                out!(
                    "{:<20} {:<16} {:<10} {:<29}  {hosts}",
                    p.app,
                    p.name,
                    p.version,
                    when(p.expires_at)
                );
            }
        }
        AppsCommand::Remove(id) => {
            if local {
                target.open()?.remove(&id)?;
            } else {
                call(&target, "DELETE", &format!("/apps/{id}"), vec![])?;
            }
            if json {
                out!("{}", serde_json::json!({ "removed": id }));
            } else {
                out!("removed {id} and its versions");
            }
        }
    }
    Ok(())
}

/// An app (with `header`) and its versions as a table.
fn print_app(app: &AppRecord, versions: &[VersionRecord], header: bool) {
    if header {
        out!("app      {}", app.id);
        out!("origin   {}", app.origin);
        match &app.current {
            Some(v) => out!("current  {} ({})", v.version, v.path.display()),
            None => out!("current  - (served from the platform file's source)"),
        }
        out!();
    }
    out!(
        "  {:<16} {:>7} {:>7} {:>10}  {:<29}  BY",
        "VERSION",
        "CURRENT",
        "FILES",
        "SIZE",
        "DEPLOYED"
    );
    for v in versions {
        out!(
            "  {:<16} {:>7} {:>7} {:>10}  {:<29}  {}",
            v.version,
            if v.current { "*" } else { "" },
            v.files,
            size(v.bytes),
            when(v.deployed_at),
            v.deployed_by
        );
    }
}

/// A canary's traffic (from a server) and the app's recent events.
fn print_history(app: &AppRecord, stats: &serde_json::Value) {
    if let Some(c) = &app.canary {
        out!();
        let mut auto = Vec::new();
        if let Some(after) = c.auto_promote_after {
            auto.push(format!("promote after {after} s"));
        }
        if let Some(max) = c.max_error_rate {
            auto.push(format!("roll back over {:.1}% 5xx", max * 100.0));
        }
        let auto = if auto.is_empty() {
            "manual".to_owned()
        } else {
            auto.join(", ")
        };
        out!(
            "canary   {} for {}% of new visitors since {} ({auto})",
            c.version,
            c.share,
            when(c.started_at)
        );
        for (name, key) in [("stable", "stable"), ("canary", "canary")] {
            let s = &stats[key];
            if s.is_object() {
                out!(
                    "  {name:<8} {:>8} requests  {:>6.2}% 5xx  {:>8.2} ms mean",
                    s["requests"].as_u64().unwrap_or(0),
                    s["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
                    s["mean_ms"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    if !app.events.is_empty() {
        out!();
        for e in &app.events {
            out!("  {}  {}", when(e.at), e.what);
        }
    }
}

/// Reports a local deploy's files as it stores them.
struct Progress {
    quiet: bool,
    tty: bool,
    files: u64,
    bytes: u64,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            files: 0,
            bytes: 0,
        }
    }

    fn file(&mut self, _path: &Path, size_of: u64) {
        self.files += 1;
        self.bytes += size_of;
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\rstored {} files, {}   ", self.files, size(self.bytes));
        } else if self.files.is_multiple_of(1000) {
            eprintln!("stored {} files, {}", self.files, size(self.bytes));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.tty && !self.quiet && self.files > 0 {
            eprintln!();
        }
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A Unix time as an HTTP date (UTC).
fn when(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version stored by an older bext, whose `bext.config.toml` names a
    /// path outside it, is not served from there.
    #[test]
    fn a_stored_bundle_config_that_leaves_its_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("versions/app/v1");
        std::fs::create_dir_all(version.join("dist")).unwrap();
        std::fs::write(version.join("dist/index.js"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path(), version.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", version.join("dist/passwd.js")).unwrap();
        let config = |text: &str| std::fs::write(version.join("bext.config.toml"), text).unwrap();
        for bad in [
            "[server]\nstatic_dir = \"/\"",
            "[server]\nstatic_dir = \"/etc\"",
            "[server]\nstatic_dir = \"../../..\"",
            "[server]\nstatic_dir = \"up\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"\nentry = \"../../../../x.js\"",
            "[server]\nruntime = \"js\"\nentry = \"/etc/passwd\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"\nentry = \"passwd.js\"",
        ] {
            config(bad);
            let err = bundle_app(&version).unwrap_err().to_string();
            assert!(err.contains("bext.config.toml: server."), "{bad}: {err}");
            assert!(err.contains("is outside the version's directory"), "{bad}: {err}");
        }
        for good in [
            "",
            "[server]\nstatic_dir = \"dist\"",
            "[server]\nstatic_dir = \"./dist/\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"",
        ] {
            config(good);
            let app = bundle_app(&version).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(app.source.unwrap().starts_with(&version));
        }
    }
}
