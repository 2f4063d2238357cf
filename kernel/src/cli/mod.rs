//! The `bext` command line: `serve`, `run`, `check`, `plugins`, and the
//! registry's `deploy`, `promote`, `rollback` and `apps` ([`registry`],
//! through the deploy plugin's admin API: [`admin_client`]).

mod admin_client;
mod check_deploy;
mod domains;
mod human;
pub mod logging;
mod registry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::platform::Platform;
use crate::pipeline::{compile, load_manifests_lenient, reload};
use crate::server::conn_limit::ConnectionLimits;
use crate::server::{Listener, Tracker, accept_loop, bind_workers};
use crate::{ConfigSource, Kernel};

/// Many web apps behind one address.
#[derive(Parser)]
#[command(name = "bext", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every app of a platform file.
    Serve {
        /// The platform file (`platform.toml`, or `.yaml` with the same fields).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve one directory as one app: static files, or the framework its
    /// package.json, Procfile or bext.config.toml names (docs/migrating.md).
    /// `bext dev`, the original bext's command for the same single-app
    /// mode, is another name for it.
    #[command(visible_alias = "dev")]
    Run {
        /// The directory (its `bext.config.toml` is read if present).
        dir: PathBuf,
        /// Address to listen on (default 127.0.0.1:3061).
        #[arg(long)]
        listen: Option<String>,
        /// Serve HTTPS too, with a self-signed certificate for localhost
        /// (kept in the directory's .bext/tls/), on 127.0.0.1:3443 unless
        /// --listen-tls says otherwise.
        #[arg(long)]
        tls: bool,
        /// Address of the HTTPS listener (implies --tls).
        #[arg(long)]
        listen_tls: Option<String>,
    },
    /// Validate a platform file and its manifests; print every error.
    Check {
        /// The platform file. A bundle's `bext.config.toml` (or a folder)
        /// is checked as `bext run` serves its folder. With `--deploy DIR`:
        /// the platform the bundle is deployed onto (its deploy manifest's
        /// `max_bundle_bytes` and `max_bundle_entries`, its apps).
        #[arg(long, short, required_unless_present = "dir")]
        config: Option<PathBuf>,
        /// A folder, checked as `bext run DIR` serves it.
        dir: Option<PathBuf>,
        /// Check the folder as `bext deploy DIR` stores and serves it (a
        /// bundle's rules), not as `bext run DIR` serves it.
        #[arg(long)]
        deploy: bool,
        /// With `--deploy DIR`: check the bundle as a version of this app
        /// of the platform file (`--config`, platform.toml by default),
        /// with its table's settings, as `bext deploy DIR --app ID` would.
        #[arg(long, requires = "deploy")]
        app: Option<String>,
    },
    /// List the built-in plugins.
    Plugins,
    /// Store a directory as a new version of an app and serve it.
    Deploy {
        /// The bundle: a static site, or a JS app with its bext.config.toml.
        dir: PathBuf,
        /// The app (created if the platform file does not declare it).
        #[arg(long)]
        app: String,
        /// The version's name (default v<N>).
        #[arg(long)]
        version: Option<String>,
        /// Serve it to this share of new visitors (`5%`) beside the current
        /// version, instead of making it current.
        #[arg(long, value_parser = percent, conflicts_with = "preview")]
        canary: Option<u8>,
        /// Serve it as preview NAME (`pr-123`) on `{name}.preview.{domain}`
        /// until `preview_ttl`, instead of making it current.
        #[arg(long, value_parser = preview_name)]
        preview: Option<String>,
        /// With --preview: how long it lives (`2h`, `3d`; 1s to 3650d)
        /// instead of the deploy manifest's `preview_ttl`.
        #[arg(long, value_parser = ttl, requires = "preview")]
        ttl: Option<u64>,
        /// With --canary: make it current after this long (`30m`) if its
        /// 5xx rate stayed at or under --max-error-rate.
        #[arg(long, value_parser = bext_plugin_abi::units::parse_duration, requires = "canary")]
        auto_promote_after: Option<std::time::Duration>,
        /// With --canary: roll it back as soon as its 5xx rate is over this
        /// (`2%`), after 20 requests.
        #[arg(long, value_parser = rate, requires = "canary")]
        max_error_rate: Option<f64>,
        #[command(flatten)]
        at: Registry,
    },
    /// Give a canary a larger share of new visitors, or make it current.
    Promote {
        /// The app.
        app: String,
        /// The canary's new share (`50%`); 100% or none makes it current.
        #[arg(long, value_parser = percent)]
        to: Option<u8>,
        #[command(flatten)]
        at: Registry,
    },
    /// Stop a running canary; with none, serve again the version that was
    /// current before the current one (`bext apps versions` marks it).
    Rollback {
        /// The app.
        app: String,
        #[command(flatten)]
        at: Registry,
    },
    /// The apps of the registry and their versions.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
        #[command(flatten)]
        at: Registry,
    },
    /// Tenants' own domains: each reaches an app as a tenant, as
    /// `tenant.<its wildcard domain>` does.
    Domains {
        #[command(subcommand)]
        command: DomainsCommand,
        #[command(flatten)]
        at: Registry,
    },
}

/// Which registry a command works on, and how it prints.
#[derive(clap::Args)]
struct Registry {
    /// The platform file: its server, when one runs, or its data directory.
    #[arg(long, short, global = true, default_value = "platform.toml")]
    config: PathBuf,
    /// A server's address (`http://host:port`), instead of the platform's.
    #[arg(long, global = true)]
    server: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl Registry {
    fn at(&self) -> registry::At<'_> {
        registry::At {
            config: &self.config,
            server: self.server.as_deref(),
            json: self.json,
        }
    }
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Every app with its current version.
    List,
    /// One app and its versions.
    Show {
        /// The app.
        app: String,
    },
    /// An app's versions, newest first: the current one and the one
    /// `bext rollback` would restore marked.
    Versions {
        /// The app.
        app: String,
    },
    /// Forget an app and remove its versions' files.
    Rm {
        /// The app.
        app: String,
    },
    /// Deploy previews.
    Previews {
        #[command(subcommand)]
        command: PreviewsCommand,
    },
}

#[derive(Subcommand)]
enum DomainsCommand {
    /// Every tenant's domain, with its app and tenant.
    List,
    /// Route a tenant's own domain (`shop.customer.com`) to an app as that
    /// tenant; with `[platform.acme]`, its certificate is ordered at its
    /// first HTTPS handshake.
    Add {
        /// The domain: one host name (no wildcard, port or IP address).
        domain: String,
        /// The app it reaches.
        #[arg(long)]
        app: String,
        /// The tenant the app is told of (`x-vhost-tenant`).
        #[arg(long)]
        tenant: String,
    },
    /// Stop routing a tenant's domain (no new certificate is ordered for it).
    Rm {
        /// The domain.
        domain: String,
    },
}

#[derive(Subcommand)]
enum PreviewsCommand {
    /// Every preview, with its hosts and expiry.
    List,
    /// Remove the previews that have expired, with their files.
    Prune,
}

/// Runs the command line; returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for every TLS object (listener, outbound fetches).
    bext_tls::install_provider();
    match cli.command {
        Command::Serve { config } => serve(ConfigSource::File(config)),
        Command::Run {
            dir,
            listen,
            tls,
            listen_tls,
        } => {
            let listen_tls = listen_tls.or_else(|| tls.then(|| DEFAULT_RUN_LISTEN_TLS.to_owned()));
            if std::env::args_os().nth(1).is_some_and(|c| c == "dev") {
                eprintln!(
                    "bext dev: the original bext's development command is `bext run` here (single-app mode, as in production): running `bext run {}`",
                    dir.display()
                );
            }
            if let Err(code) = build_before_run(&dir) {
                return code;
            }
            if let Some(found) = Platform::run_summary(&dir) {
                eprintln!("bext run: serving {}: {found}", dir.display());
            }
            serve(ConfigSource::Dir {
                dir,
                listen,
                listen_tls,
            })
        }
        Command::Check {
            config,
            dir: Some(_),
            deploy: false,
            ..
        } if config.is_some() => {
            eprintln!(
                "bext check: give `--config FILE` or a folder, not both (`bext check --deploy DIR --config FILE` checks a bundle against a platform)"
            );
            ExitCode::FAILURE
        }
        Command::Check {
            config,
            dir: Some(dir),
            deploy: true,
            app,
        } => {
            // `--app` checks against a platform file's app: the one
            // `bext deploy` uses by default.
            let platform = config.or_else(|| app.is_some().then(|| PathBuf::from("platform.toml")));
            check_deploy::bundle(&dir, platform.as_deref(), app.as_deref())
        }
        Command::Check {
            config, dir, deploy, ..
        } => match dir.or_else(|| config.as_deref().and_then(bundle_of)) {
            Some(dir) if deploy => check_deploy::bundle(&dir, None, None),
            None if deploy => {
                eprintln!("bext check --deploy: name the bundle's directory: `bext check --deploy DIR`");
                ExitCode::FAILURE
            }
            Some(dir) => {
                eprintln!(
                    "bext check: {}: checked as `bext run` serves it (`bext check --deploy` checks a bundle as a deploy stores it)",
                    dir.display()
                );
                let loaded = Platform::for_dir(&dir, None, None);
                match (&loaded, Platform::run_build_step(&dir)) {
                    // Only the build's output is missing, and `bext run`
                    // builds first: not a broken folder, an unbuilt one.
                    (Err(errors), Ok(Some((command, why)))) if errors.0.iter().all(awaits_build) => {
                        errors.0.iter().for_each(|e| eprintln!("note: {e}"));
                        eprintln!(
                            "bext check: {} is not built yet: `bext run` builds it first with `{command}` ({why}); run that and check again to check what it builds",
                            dir.display()
                        );
                        ExitCode::SUCCESS
                    }
                    _ => check(loaded.map(|p| (p, Default::default()))),
                }
            }
            None => check(Platform::load_lenient(
                config.as_deref().unwrap_or(std::path::Path::new("platform.toml")),
            )),
        },
        Command::Deploy {
            dir,
            app,
            version,
            canary,
            auto_promote_after,
            max_error_rate,
            preview,
            ttl,
            at,
        } => {
            let canary = canary.map(|share| registry::Canary {
                share,
                auto_promote_after: auto_promote_after.map(|d| d.as_secs()),
                max_error_rate,
            });
            let args = registry::DeployArgs {
                dir: &dir,
                app: &app,
                version: version.as_deref(),
                canary,
                preview: preview.as_deref(),
                ttl,
            };
            finish(registry::deploy(&at.at(), &args))
        }
        Command::Promote { app, to, at } => finish(registry::promote(&at.at(), &app, to)),
        Command::Rollback { app, at } => finish(registry::rollback(&at.at(), &app)),
        Command::Apps { command, at } => {
            use registry::AppsCommand as Do;
            let command = match command {
                AppsCommand::List => Do::List,
                AppsCommand::Show { app } => Do::Show(app),
                AppsCommand::Versions { app } => Do::Versions(app),
                AppsCommand::Rm { app } => Do::Remove(app),
                AppsCommand::Previews {
                    command: PreviewsCommand::List,
                } => Do::Previews,
                AppsCommand::Previews {
                    command: PreviewsCommand::Prune,
                } => Do::PrunePreviews,
            };
            finish(registry::apps(&at.at(), command))
        }
        Command::Domains { command, at } => {
            use domains::DomainsCommand as Do;
            let command = match command {
                DomainsCommand::List => Do::List,
                DomainsCommand::Add { domain, app, tenant } => Do::Add { domain, app, tenant },
                DomainsCommand::Rm { domain } => Do::Remove(domain),
            };
            finish(domains::domains(&at.at(), command))
        }
        Command::Plugins => {
            let mut regs: Vec<_> = bext_plugin_abi::registrations().collect();
            regs.sort_by_key(|r| r.name);
            println!("{:<12} {:>8}  SUMMARY", "NAME", "PRIORITY");
            for r in regs {
                println!("{:<12} {:>8}  {}", r.name, r.default_priority, r.summary);
            }
            ExitCode::SUCCESS
        }
    }
}

/// Where `bext run --tls` serves HTTPS: 443's digits after 3, beside
/// plain HTTP's 3061.
const DEFAULT_RUN_LISTEN_TLS: &str = "127.0.0.1:3443";

/// `20%` or `20`, 0 to 100.
fn percent(s: &str) -> Result<u8, String> {
    match s.trim_end_matches('%').parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("{s}: a percentage from 0 to 100, like 5%")),
    }
}

/// `2%` or `0.5%` as a fraction (0.02, 0.005).
fn rate(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{s}: a percentage from 0 to 100, like 2%")),
    }
}

/// A preview's name: a DNS label, as the registry takes it. Checked here
/// too, so a bad name stops the command before the bundle is read.
fn preview_name(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "preview name {s:?}: use 1 to 63 of a-z 0-9 - (it becomes a host name)"
        ))
    }
}

/// Most seconds a preview may live: 3650 days, as the registry takes it.
const MAX_TTL: u64 = 3650 * 86400;

/// A preview's lifetime (`2h`, `3d`) in whole seconds, 1 s to 3650 days.
fn ttl(s: &str) -> Result<u64, String> {
    let bad = || format!("{s}: a preview's lifetime from 1s to 3650d, like 2h or 3d");
    // Ten digits before any unit are past the longest lifetime already
    // (and a duration past u64::MAX seconds cannot be made).
    if s.trim().bytes().take_while(u8::is_ascii_digit).count() > 9 {
        return Err(bad());
    }
    // `--ttl 90` is seconds, as the API's `ttl=` is; config files need a unit.
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => bext_plugin_abi::units::parse_duration(s).map_err(|e| format!("{e}; {}", bad()))?,
    };
    match d.as_secs() {
        secs @ 1..=MAX_TTL => Ok(secs),
        _ => Err(bad()),
    }
}

/// The exit code of a registry command; its error on stderr.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bext run DIR`'s build, when its bext.config.toml or its framework
/// asks for one: run once in DIR by `sh -c`, its output on stderr, with
/// what runs and why said first; a failed build stops `bext run`.
fn build_before_run(dir: &std::path::Path) -> Result<(), ExitCode> {
    let step = match Platform::run_build_step(dir) {
        Ok(step) => step,
        Err(errors) => return Err(report(&errors)),
    };
    let Some((command, why)) = step else {
        return Ok(());
    };
    eprintln!("bext run: building {} with `{command}` ({why})", dir.display());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => {
            eprintln!("bext run: build done");
            Ok(())
        }
        Ok(s) => {
            eprintln!("error: the build `{command}` failed ({s})");
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: cannot run the build `{command}`: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// A problem a folder's build resolves: its module or `.next/` build is
/// not there yet.
fn awaits_build(d: &crate::config::diag::Diagnostic) -> bool {
    d.problem == crate::config::diag::Problem::NotBuilt
}

/// The folder `--config` names when it is not a platform file but a
/// folder, or a bundle's `bext.config.toml` (no `[platform]` or `[apps]`):
/// a user checking the file `bext run DIR` reads means that folder.
fn bundle_of(config: &std::path::Path) -> Option<PathBuf> {
    if config.is_dir() {
        return Some(config.to_owned());
    }
    if config.file_name()? != "bext.config.toml" {
        return None;
    }
    let text = std::fs::read_to_string(config).ok()?;
    let top: toml::Table = toml::from_str(&text).ok()?;
    if top.contains_key("platform") || top.contains_key("apps") {
        return None;
    }
    let dir = config.parent()?;
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_owned()
    })
}

/// Validates everything it can in a loaded platform: a broken app does
/// not stop the manifests and the other apps from being checked.
fn check(loaded: Result<(Platform, crate::config::diag::Diagnostics), crate::config::diag::Diagnostics>) -> ExitCode {
    let mut errors = crate::config::diag::Diagnostics::default();
    let result = loaded.and_then(|(platform, platform_errors)| {
        errors.0.extend(platform_errors.0);
        match crate::pipeline::tls::certificates(&platform, crate::pipeline::tls::Purpose::Check) {
            Ok((store, warnings)) => {
                warnings.iter().for_each(|w| eprintln!("warning: {w}"));
                // Self-signed certificates are made at serve, not by check.
                let self_signed = (platform.apps.values())
                    .any(|a| matches!(a.tls, Some(crate::config::platform::AppTls::SelfSigned)));
                let empty = store.is_empty() && !self_signed;
                if let Some(w) = crate::pipeline::tls::no_certificate_warning(&platform, empty) {
                    eprintln!("warning: {w}");
                }
            }
            Err(certs) => errors.0.extend(certs.0),
        }
        let (mut manifests, manifest_errors) = load_manifests_lenient(&platform);
        errors.0.extend(manifest_errors.0);
        for w in crate::pipeline::warnings(&platform, &manifests) {
            eprintln!("warning: {w}");
        }
        // The table serve builds: the deploy registry's apps, previews and
        // pins counted against max_apps and max_isolates as serve counts them.
        let mut platform = platform;
        match crate::pipeline::app_changes::apply(&mut platform, &manifests) {
            Ok(()) => {
                crate::pipeline::app_changes::pass_isolates(&platform, &mut manifests);
                for w in crate::pipeline::app_changes::ignored_bundle_keys(&platform) {
                    eprintln!("warning: {w}");
                }
            }
            Err(more) => {
                // The file's own overrun (`max_apps`, `max_isolates`) is
                // said once, with its position, not again by the table.
                let said: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                let limits: Vec<(std::path::PathBuf, String)> = (errors.0.iter())
                    .filter(|e| matches!(e.field.as_str(), "platform.max_apps" | "platform.max_isolates"))
                    .map(|e| (e.file.clone(), e.field.clone()))
                    .collect();
                errors.0.extend(more.0.into_iter().filter(|e| {
                    !said.contains(&e.to_string()) && !limits.contains(&(e.file.clone(), e.field.clone()))
                }));
            }
        }
        errors
            .0
            .extend(crate::pipeline::app_changes::unknown_host_apps(&platform, &manifests));
        compile(platform, manifests, None, None, crate::pipeline::JsChecks::Strict)
    });
    match result {
        Ok((p, _)) if errors.0.is_empty() => {
            println!("ok: {} app(s), {} plugin instance(s)", p.apps.len(), p.instances.len());
            ExitCode::SUCCESS
        }
        Ok(_) => report(&errors),
        Err(more) => {
            errors.0.extend(more.0);
            report(&errors)
        }
    }
}

pub(super) fn report(errors: &crate::config::diag::Diagnostics) -> ExitCode {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    eprintln!("{} error(s)", errors.0.len());
    ExitCode::FAILURE
}

fn serve(source: ConfigSource) -> ExitCode {
    let _flush_logs_on_exit = logging::init();
    // The control runtime: signals, reload, plugin background tasks. Requests
    // are served by the worker threads `serve_async` starts.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_async(source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_async(source: ConfigSource) -> anyhow::Result<()> {
    // Until the start's compile and module checks are over.
    let usual_purge = crate::server::memory::purge_at_once();
    let cell = crate::KernelCell::default();
    let pipeline = match reload::build(&source, None, &cell).await {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            anyhow::bail!("{} configuration error(s); nothing served", errors.0.len());
        }
    };
    let settings = pipeline.platform.settings.clone();
    crate::pipeline::admin::warn_if_on_every_host(&settings);
    let kernel = Arc::new(Kernel::new(pipeline, source, cell.clone()));
    let _ = cell.set((Arc::downgrade(&kernel), tokio::runtime::Handle::current()));
    if let Some(config) = settings.acme.clone() {
        let data_dir = kernel.pipeline.load().platform.data_dir.clone();
        let acme = crate::server::acme::Acme::start(config, &data_dir, tokio::runtime::Handle::current())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        acme.use_fleet(kernel.pipeline.load().fleet.as_ref());
        acme.keep(&kernel.pipeline.load().platform);
        kernel.pipeline.load().metrics.watch_acme(acme.clone());
        let _ = kernel.acme.set(acme);
    }
    let listen: std::net::SocketAddr = settings.listen.parse()?;
    let workers = match settings.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listeners = bind_workers(listen, workers).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listeners[0].local_addr()?;
    // HTTPS on the same workers, each with its own socket.
    let mut tls_listeners: Vec<Option<std::net::TcpListener>> = (0..workers).map(|_| None).collect();
    let mut tls = None;
    if let Some(listen_tls) = &settings.listen_tls {
        let at: std::net::SocketAddr = listen_tls.parse()?;
        let bound = bind_workers(at, workers).map_err(|e| anyhow::anyhow!("cannot listen on {at}: {e}"))?;
        let tls_addr = bound[0].local_addr()?;
        let _ = kernel.tls_port.set(tls_addr.port());
        tls = Some((tls_addr, crate::server::tls::acceptor(&kernel)?));
        for (slot, l) in tls_listeners.iter_mut().zip(bound) {
            *slot = Some(l);
        }
        let pipeline = kernel.pipeline.load();
        if let Some(w) = crate::pipeline::tls::no_certificate_warning(&pipeline.platform, pipeline.tls.certs.is_empty())
        {
            tracing::warn!("{w}");
        }
    }
    let admin = match &settings.admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?,
        ),
        None => None,
    };
    // No app's fetch() reaches bext itself, as bound: the admin listener
    // answers health details without a token, and the front door would
    // let one app call others' routes from inside.
    let mut own = vec![addr];
    own.extend(tls.as_ref().map(|(a, _)| *a));
    own.extend(admin.as_ref().and_then(|a| a.local_addr().ok()));
    bext_js::set_own_listeners(&own);
    bext_js::configure_shared(bext_js::SharedSettings {
        threads: settings.js_threads,
        isolates_per_thread: settings.js_isolates_per_thread.max(1),
    });
    // The listeners are bound: JS modules queued at start are checked now,
    // in the background (an app's first request checks its own if sooner).
    // Once they are, the checker gives its freed pages back and serving
    // keeps freed pages a while again (see `memory::purge_at_once`).
    bext_js::start_deferred_checks(move || {
        crate::server::memory::trim();
        crate::server::memory::purge_as_usual(usual_purge);
    });
    reload::start_reloader(kernel.clone());
    // What the compile freed goes back now; the main thread then trims as
    // the workers do (reloads compile here too, and threads that ended
    // leave their pages for it to take).
    crate::server::memory::trim();
    tokio::spawn(crate::server::memory::trim_periodically());
    tokio::spawn(crate::apps::sweep_idle_periodically());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tracker = Tracker::default();
    kernel.pipeline.load().metrics.watch_connections(tracker.clone());
    let caps = ConnectionLimits::new(kernel.limits.max_connections, kernel.limits.max_connections_per_ip);
    if caps.max_total() < kernel.limits.max_connections {
        tracing::warn!(
            configured = kernel.limits.max_connections,
            in_force = caps.max_total(),
            "max_connections lowered to what the file-descriptor limit allows"
        );
    }
    crate::server::memory::no_huge_pages();
    let mut threads = Vec::new();
    for (i, (listener, tls_listener)) in listeners.into_iter().zip(tls_listeners).enumerate() {
        let (kernel, stop, tracker, caps) = (kernel.clone(), stop_rx.clone(), tracker.clone(), caps.clone());
        let deadline = kernel.limits.shutdown_timeout;
        let acceptor = tls.as_ref().map(|(_, a)| a.clone());
        let worker = move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                tokio::spawn(crate::server::memory::trim_periodically());
                tokio::spawn(crate::apps::sweep_idle_periodically());
                let listener = TcpListener::from_std(listener)?;
                let plain = accept_loop(
                    kernel.clone(),
                    listener,
                    Listener::Plain,
                    stop.clone(),
                    tracker.clone(),
                    caps.clone(),
                );
                match (tls_listener, acceptor) {
                    (Some(l), Some(acceptor)) => {
                        let l = TcpListener::from_std(l)?;
                        let https = accept_loop(kernel, l, Listener::Tls(acceptor), stop, tracker.clone(), caps);
                        tokio::join!(plain, https);
                    }
                    _ => plain.await,
                }
                // Keep this worker's connections running until all drain.
                let _ = tokio::time::timeout(deadline, tracker.drained()).await;
                Ok::<(), std::io::Error>(())
            })
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("bext-worker-{i}"))
                .spawn(worker)?,
        );
    }
    if let Some(a) = admin {
        println!("bext admin endpoints on http://{}/", a.local_addr()?);
        // Its own caps, so a flood on the public port cannot lock operators out.
        let admin_caps = ConnectionLimits::new(kernel.limits.max_connections, 0);
        tokio::spawn(accept_loop(
            kernel.clone(),
            a,
            Listener::Admin,
            stop_rx.clone(),
            tracker.clone(),
            admin_caps,
        ));
    }
    if let Some((tls_addr, _)) = &tls {
        let shown = match kernel.source {
            // `bext run --tls`: its certificate is for localhost.
            ConfigSource::Dir { .. } => format!("localhost:{}", tls_addr.port()),
            ConfigSource::File(_) => tls_addr.to_string(),
        };
        println!("bext serving https://{shown}/ (TLS 1.2 and 1.3, h2 and http/1.1)");
    }
    println!(
        "bext {} serving http://{addr}/ ({}; {workers} worker(s))",
        env!("CARGO_PKG_VERSION"),
        apps_summary(kernel.pipeline.load().platform.apps.keys())
    );

    reopen_logs_on_sigusr1();
    let signal = shutdown_signal().await;
    tracing::info!(
        signal,
        connections = tracker.live(),
        "shutting down: no new connections, draining"
    );
    let _ = stop_tx.send(true);
    crate::pipeline::ui::stop_streams();
    let deadline = kernel.limits.shutdown_timeout;
    if tokio::time::timeout(deadline, tracker.drained()).await.is_err() {
        tracing::warn!(
            connections = tracker.live(),
            "shutdown deadline reached; closing what is left"
        );
    }
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "a worker failed"),
            Err(_) => tracing::error!("a worker panicked"),
        }
    }
    crate::apps::process::stop_everything().await;
    reload::shut_down(kernel.pipeline.load().instances().map(|(_, p)| p)).await;
    crate::access_log::close_all();
    tracing::info!("stopped");
    Ok(())
}

/// Most app ids the startup line names; past that it gives only their
/// number, so a platform of 1,000 apps still starts with a short line.
const APPS_NAMED_AT_START: usize = 10;

/// The apps part of the startup line: `3 app(s): a, b, c`, or `1000 app(s)`.
fn apps_summary<'a>(ids: impl ExactSizeIterator<Item = &'a String>) -> String {
    let count = ids.len();
    if count == 0 || count > APPS_NAMED_AT_START {
        return format!("{count} app(s)");
    }
    let names: Vec<&str> = ids.map(String::as_str).collect();
    format!("{count} app(s): {}", names.join(", "))
}

/// SIGUSR1 reopens the access logs' files (logrotate's `postrotate`).
fn reopen_logs_on_sigusr1() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    crate::access_log::reopen_all();
                    tracing::info!("SIGUSR1: access logs reopened");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGUSR1; access logs are not reopened"),
    }
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_names_and_lifetimes_are_checked_as_the_registry_does() {
        for good in ["pr-7", "a", "0-x", &"a".repeat(63)] {
            assert_eq!(preview_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "PR_7", "-x", "x-", "a.b", "pr 7", &"a".repeat(64)] {
            let err = preview_name(bad).unwrap_err();
            assert!(err.contains("it becomes a host name"), "{bad}: {err}");
        }
        assert_eq!(ttl("2h"), Ok(7200));
        assert_eq!(ttl("3d"), Ok(3 * 86400));
        assert_eq!(ttl("90"), Ok(90));
        assert_eq!(ttl("3650d"), Ok(MAX_TTL));
        for bad in [
            "0s",
            "500ms",
            "3651d",
            "soon",
            "-1h",
            "99999999999999999999999d",
            "1y",
            "",
        ] {
            let err = ttl(bad).unwrap_err();
            assert!(err.contains("a preview's lifetime from 1s to 3650d"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_startup_line_names_few_apps_and_counts_many() {
        let few: Vec<String> = ["blog", "shop"].map(String::from).to_vec();
        assert_eq!(apps_summary(few.iter()), "2 app(s): blog, shop");
        let ten: Vec<String> = (1..=APPS_NAMED_AT_START).map(|i| format!("a{i}")).collect();
        assert!(apps_summary(ten.iter()).ends_with(": a1, a2, a3, a4, a5, a6, a7, a8, a9, a10"));
        let many: Vec<String> = (0..1000).map(|i| format!("site{i}")).collect();
        assert_eq!(apps_summary(many.iter()), "1000 app(s)");
        assert_eq!(apps_summary([].iter()), "0 app(s)");
    }
}
