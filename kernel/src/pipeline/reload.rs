//! Building a pipeline with plugin `on_init`, swapping it in, and retiring
//! the old one: in-flight requests finish on the pipeline they started on,
//! and a broken configuration never replaces a working one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bext_plugin_abi::{AppService, AppTarget, ArrivedOverTls, Ctx, Host, Plugin, Reload, RequestId};

use super::{Pipeline, compile, load_manifests};
use crate::apps::Runtime;
use crate::config::diag::{Diagnostic, Diagnostics};
use crate::{ConfigSource, Kernel, KernelCell};

/// How long one plugin's `on_init` may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads, compiles and initialises a pipeline (no previous one).
pub(crate) async fn build(
    source: &ConfigSource,
    previous: Option<&Pipeline>,
    kernel: &KernelCell,
) -> Result<Pipeline, Diagnostics> {
    if previous.is_some()
        && let ConfigSource::File(file) = source
        && std::fs::read(file).is_ok_and(|bytes| bytes.iter().all(u8::is_ascii_whitespace))
    {
        // A file being rewritten in place is empty for a moment; a platform
        // of no apps is not what anybody meant by it.
        return Err(Diagnostic::new(
            file,
            "",
            "the platform file is empty (being written?): keeping the running configuration",
        )
        .into());
    }
    let mut platform = source.load()?;
    // From the apps the file declares, before a deploy adds its own.
    let (certs, tls_warnings) = super::tls::certificates(&platform, super::tls::Purpose::Serve)?;
    let mut manifests = load_manifests(&platform)?;
    for w in tls_warnings.iter().chain(&super::warnings(&platform, &manifests)) {
        tracing::warn!("{w}");
    }
    let file_apps = platform.clone();
    if let Err(errors) = super::app_changes::apply(&mut platform, &manifests) {
        // A reload keeps the running configuration; a start serves the
        // platform file's apps rather than nothing, and says why the
        // deploys' apps, previews and pins are not served.
        if previous.is_some() {
            return Err(errors);
        }
        for e in &errors.0 {
            tracing::error!("{e}");
        }
        tracing::error!(
            "the apps, previews and pinned versions deploys added are not served, only the platform file's apps: remove some (`bext apps rm APP`) or raise the limit, then reload"
        );
        platform = file_apps;
    }
    super::app_changes::pass_isolates(&platform, &mut manifests);
    for w in super::app_changes::unknown_host_apps(&platform, &manifests) {
        tracing::warn!("{w}");
    }
    for w in super::app_changes::ignored_bundle_keys(&platform) {
        tracing::warn!("{w}");
    }
    let fingerprint = fingerprint_of(&platform);
    let shared = super::fleet::shared_through_redis(&platform, &manifests);
    let fleet = super::fleet::fleet_for(platform.redis.as_ref(), previous, &shared);
    // The first start defers JS module checks until the server listens.
    let js_checks = if previous.is_none() {
        super::JsChecks::Deferred
    } else {
        super::JsChecks::Strict
    };
    let (mut pipeline, fresh) = compile(platform, manifests, previous, fleet, js_checks)?;
    pipeline.fingerprint = fingerprint;
    pipeline.tls = super::tls::build(certs, &pipeline.platform);
    observe(&mut pipeline, previous)?;
    init(&pipeline, fresh, kernel).await?;
    start_processes(&pipeline, previous).await?;
    Ok(pipeline)
}

/// Opens the access log and starts the OTLP exporter, or keeps the
/// previous pipeline's when their settings did not change; applies
/// `[platform] log`.
fn observe(pipeline: &mut Pipeline, previous: Option<&Pipeline>) -> Result<(), Diagnostics> {
    use crate::access_log::{AccessLog, Sink};
    use crate::config::platform::AccessLogSetting;
    let file = pipeline.platform.file.clone().unwrap_or_else(|| "<bext run>".into());
    let settings = &pipeline.platform.settings;
    pipeline.access_log = match &settings.access_log {
        AccessLogSetting::Off => Sink::Off,
        AccessLogSetting::ErrorLog => Sink::ErrorLog,
        AccessLogSetting::Dedicated(config) => match previous.map(|p| &p.access_log) {
            Some(Sink::Dedicated(log)) if log.config == *config => Sink::Dedicated(log.clone()),
            _ => match AccessLog::open(config, pipeline.metrics.access_log_dropped.clone()) {
                Ok(log) => Sink::Dedicated(Arc::new(log)),
                Err(reason) => return Err(Diagnostic::new(&file, "platform.access_log", reason).into()),
            },
        },
    };
    pipeline.otel = match &settings.otel {
        None => None,
        Some(otel) => match previous.and_then(|p| p.otel.as_ref()) {
            Some(running) if running.settings == *otel => Some(running.clone()),
            _ => match crate::trace::Otel::start(otel) {
                Ok(o) => Some(Arc::new(o)),
                Err(reason) => return Err(Diagnostic::new(&file, "platform.otel", reason).into()),
            },
        },
    };
    crate::cli::logging::set_filter(settings.log.as_deref());
    Ok(())
}

/// Starts the pipeline's process apps that do not run yet (here, not when
/// compiled: `bext check` compiles too). An app whose previous runtime
/// serves keeps it until every new instance is ready, so a new version
/// (a deploy, a changed `command`) that never gets ready fails the reload
/// and the old one keeps serving.
async fn start_processes(pipeline: &Pipeline, previous: Option<&Pipeline>) -> Result<(), Diagnostics> {
    let file = pipeline.platform.file.clone().unwrap_or_else(|| "<bext run>".into());
    let mut errors = Diagnostics::default();
    let mut started = Vec::new();
    let mut replacing = Vec::new();
    for (id, entry) in &pipeline.apps {
        let Some(app) = entry.app.runtime.process() else {
            continue;
        };
        match app.start() {
            Ok(false) => {}
            Ok(true) => {
                started.push(app);
                let before = previous.and_then(|old| old.apps.get(id));
                if before.is_some_and(|e| e.app.runtime.process().is_none_or(|p| p.serving())) {
                    replacing.push((id, app));
                }
            }
            Err(e) => errors.push(Diagnostic::new(
                &file,
                format!("apps.{id}"),
                format!("cannot start: {e}"),
            )),
        }
    }
    let waits = replacing
        .iter()
        .map(|(id, app)| async move { (id, app.wait_ready().await) });
    for (id, ready) in futures_util::future::join_all(waits).await {
        if let Err(reason) = ready {
            errors.push(Diagnostic::new(
                &file,
                format!("apps.{id}"),
                format!("the new instances did not get ready, so the running ones keep serving: {reason}"),
            ));
        }
    }
    if !errors.0.is_empty() {
        futures_util::future::join_all(started.iter().map(|app| app.stop())).await;
    }
    errors.into_result(())
}

async fn init(pipeline: &Pipeline, fresh: super::compile::Fresh, kernel: &KernelCell) -> Result<(), Diagnostics> {
    let apps: Arc<[_]> = pipeline.platform.app_infos().into();
    let host = Host::new(pipeline.platform.data_dir.clone(), apps, {
        // Plugin tasks run on the control runtime, not on a worker.
        let control = tokio::runtime::Handle::current();
        Arc::new(move |task| {
            control.spawn(task);
        })
    })
    .with_app_service(app_service(pipeline))
    .with_shared_pool(pipeline.shared.clone())
    .with_metrics(pipeline.metrics.plugins().clone())
    .with_service(Arc::new(reload_service(kernel.clone())));
    let host = match &pipeline.fleet {
        Some(edge) => host.with_fleet(edge.clone()),
        None => host,
    };
    // Plugins that do not read the app table see an empty one.
    let host_without_apps = host.clone().without_apps();
    let mut errors = Diagnostics::default();
    for (name, plugin, reads_apps) in fresh {
        let host = if reads_apps { &host } else { &host_without_apps };
        if !plugin.hooks().has(bext_plugin_abi::Hooks::INIT) {
            continue;
        }
        let failed = match tokio::time::timeout(INIT_TIMEOUT, plugin.on_init(host).resolve()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("on_init took longer than {INIT_TIMEOUT:?}")),
        };
        if let Some(reason) = failed {
            errors.push(Diagnostic::new(Path::new(&*name), "on_init", reason));
        }
    }
    errors.into_result(())
}

/// Lets plugins (the deploy registry) rebuild the pipeline. The reload runs
/// on the control runtime whichever thread asks, so plugin tasks started
/// by the new pipeline's `on_init` land there too.
fn reload_service(kernel: KernelCell) -> Reload {
    Reload::new(move || {
        let kernel = kernel.clone();
        Box::pin(async move {
            let (weak, control) = kernel.get().ok_or("the server is still starting")?;
            let kernel = weak.upgrade().ok_or("the server is shutting down")?;
            let reloaded = control.spawn(async move { reload(&kernel).await });
            match reloaded.await {
                Ok(Ok(generation)) => Ok(generation),
                Ok(Err(errors)) => Err(errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
                Err(e) => Err(format!("reload failed: {e}")),
            }
        })
    })
}

/// Lets this pipeline's plugins ask its apps' runtimes for responses
/// (a cache's background refresh): the runtimes are shared, not the
/// pipeline, so a retired pipeline's plugins keep working until dropped.
fn app_service(pipeline: &Pipeline) -> Arc<AppService> {
    let runtimes: HashMap<Arc<str>, (Arc<Runtime>, http::HeaderMap)> = pipeline
        .apps
        .iter()
        .map(|(id, e)| (id.clone(), (e.app.runtime.clone(), e.app.headers.clone())))
        .collect();
    let next_id = AtomicU64::new(1 << 63);
    Arc::new(move |to: AppTarget, req| {
        let Some((id, (runtime, headers))) = runtimes.get_key_value(to.app.as_str()) else {
            return Box::pin(async { None });
        };
        let (runtime, headers) = (runtime.clone(), headers.clone());
        let mut cx = Ctx::new(
            RequestId(next_id.fetch_add(1, Ordering::Relaxed)),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        let _ = cx.set_app(id.clone());
        if let Some(t) = to.tenant {
            let _ = cx.set_tenant(t);
        }
        cx.host = to.host.map(Into::into);
        cx.base = to.base.map(Into::into);
        // A page the cache keeps for `https://` clients is rendered as
        // one: the app's scheme (`request.url`, `X-Forwarded-Proto`)
        // follows the marker the plugin put on the request.
        if req.extensions().get::<ArrivedOverTls>().is_some() {
            cx.ext.insert(crate::apps::OverTls);
            cx.ext.insert(ArrivedOverTls);
        }
        Box::pin(async move {
            // The plugin reads the map: an upstream's fields go into it.
            let mut res = runtime.serve(req, &cx, &mut crate::apps::KeptFields::map_only()).await;
            for (k, v) in &headers {
                res.headers_mut().insert(k, v.clone());
            }
            Some(res)
        })
    })
}

/// Re-reads the configuration and swaps in a new pipeline; on any error
/// the current one keeps serving and the errors are returned.
pub async fn reload(kernel: &Kernel) -> Result<u64, Diagnostics> {
    let _one_at_a_time = kernel.reload_lock.lock().await;
    let old = kernel.pipeline.load_full();
    let new = match build(&kernel.source, Some(&old), &kernel.cell).await {
        Ok(new) => new,
        Err(errors) => {
            old.metrics.reloaded(false);
            return Err(errors);
        }
    };
    let s = &new.platform.settings;
    let o = &old.platform.settings;
    if s.listen != o.listen || s.listen_tls != o.listen_tls || s.admin_listen != o.admin_listen || s.limits != o.limits
    {
        tracing::warn!("listen addresses and limits take effect after a restart");
    }
    if let Some(acme) = kernel.acme.get() {
        if acme.config_changed(s.acme.as_ref()) {
            tracing::warn!("[platform.acme] changes take effect after a restart");
        }
        // The names to keep fresh follow the apps; stored certificates
        // make a set that did not change free.
        acme.use_fleet(new.fleet.as_ref());
        acme.keep(&new.platform);
    } else if s.acme.is_some() {
        tracing::warn!("[platform.acme] takes effect after a restart");
    }
    let generation = new.generation;
    let added: Vec<&str> = new
        .apps
        .keys()
        .filter(|k| !old.apps.contains_key(*k))
        .map(|k| &**k)
        .collect();
    let removed: Vec<&str> = old
        .apps
        .keys()
        .filter(|k| !new.apps.contains_key(*k))
        .map(|k| &**k)
        .collect();
    tracing::info!(
        generation,
        ?added,
        ?removed,
        apps = new.apps.len(),
        "configuration reloaded"
    );
    let retired: Vec<Arc<dyn Plugin>> = old
        .instances
        .iter()
        .filter(|(k, _)| !new.instances.contains_key(*k))
        .map(|(_, p)| p.clone())
        .collect();
    // Process apps the new pipeline replaced stop once the old one's
    // requests are done, even if a plugin's handle to the old app table
    // still holds them.
    let replaced: Vec<Arc<Runtime>> = old
        .apps
        .values()
        .map(|e| e.app.runtime.clone())
        .filter(|r| r.process().is_some() && !new.apps.values().any(|n| Arc::ptr_eq(&n.app.runtime, r)))
        .collect();
    new.metrics.reloaded(true);
    kernel.pipeline.store(Arc::new(new));
    tokio::spawn(retire(old, retired, replaced));
    Ok(generation)
}

/// Waits for the last request on `old` to finish, then shuts down the
/// instances and process apps the new pipeline no longer uses.
async fn retire(old: Arc<Pipeline>, retired: Vec<Arc<dyn Plugin>>, replaced: Vec<Arc<Runtime>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(old);
    shut_down(&retired).await;
    let stops = replaced.iter().filter_map(|r| r.process()).map(|p| p.stop());
    futures_util::future::join_all(stops).await;
}

/// Runs `on_shutdown` of every instance that has it.
pub async fn shut_down<'a>(plugins: impl IntoIterator<Item = &'a Arc<dyn Plugin>>) {
    for p in plugins {
        if p.hooks().has(bext_plugin_abi::Hooks::SHUTDOWN) {
            p.on_shutdown().resolve().await;
        }
    }
}

/// Starts reloading on SIGHUP and, if enabled, when the platform file or a
/// manifest changes (debounced). Both are registered before this returns,
/// so no change made after it is missed.
pub fn start_reloader(kernel: Arc<Kernel>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = tx.send("SIGHUP").await;
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP"),
    }
    let pipeline = kernel.pipeline.load_full();
    let watcher = if pipeline.platform.settings.watch {
        file_watcher(&pipeline, tx.clone())
    } else {
        None
    };
    // Catch a change made between the first load and the watch starting.
    let _ = tx.try_send(FILE_CHANGE);
    let mut seen = pipeline.fingerprint;
    drop(pipeline);
    tokio::spawn(async move {
        let _watcher = watcher;
        while let Some(why) = rx.recv().await {
            // Reading the files during a reload produces events of its own;
            // only new content makes the watcher reload, once.
            if why == FILE_CHANGE {
                let now = fingerprint_of(&kernel.pipeline.load().platform);
                if now == seen {
                    continue;
                }
                seen = now;
            }
            match reload(&kernel).await {
                Ok(g) => tracing::info!(trigger = why, generation = g, "reload done"),
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!(trigger = why, "{e}");
                    }
                    tracing::error!("reload rejected; the previous configuration keeps serving");
                }
            }
        }
    });
}

const FILE_CHANGE: &str = "file change";

/// A hash of the platform file and every manifest, names and contents,
/// and of the size and time of every JS module named by them.
pub(crate) fn fingerprint_of(platform: &crate::config::platform::Platform) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for entry in code_files(platform) {
        crate::apps::js::stamp(&entry).hash(&mut h);
    }
    if let Some(f) = &platform.file {
        std::fs::read(f).ok().hash(&mut h);
    }
    for f in super::tls::watched_files(platform) {
        std::fs::read(f).ok().hash(&mut h);
    }
    if let Some(dir) = &platform.settings.manifests
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            f.hash(&mut h);
            std::fs::read(&f).ok().hash(&mut h);
        }
    }
    h.finish()
}

/// JS modules whose change should reload: JS apps' entries and JS
/// plugins' entries.
fn code_files(platform: &crate::config::platform::Platform) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = platform
        .apps
        .values()
        .filter(|a| a.runtime == crate::config::platform::RuntimeKind::Js)
        .filter_map(|a| a.js_entry())
        .collect();
    if let Some(dir) = &platform.settings.manifests {
        out.extend(crate::config::manifest::file_entries(dir));
    }
    out
}

fn file_watcher(
    pipeline: &Pipeline,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>> {
    use notify::RecursiveMode;
    let mut watched: Vec<PathBuf> = Vec::new();
    let mut files: Vec<PathBuf> = pipeline.platform.file.iter().cloned().collect();
    files.extend(super::tls::watched_files(&pipeline.platform));
    for f in &files {
        if let Some(parent) = f.parent() {
            watched.push(parent.to_owned());
        }
    }
    let manifests = pipeline.platform.settings.manifests.clone();
    if let Some(m) = &manifests {
        watched.push(m.clone());
        // Plugin folders' manifest.yaml, and the folder Buntime keeps them in.
        let (found, _) = crate::config::manifest::manifest_files(m).unwrap_or_default();
        watched.extend(found.iter().filter_map(|f| f.parent().map(Path::to_path_buf)));
        if m.join("plugins").is_dir() {
            watched.push(m.join("plugins"));
        }
    }
    let code = code_files(&pipeline.platform);
    for f in &code {
        if let Some(parent) = f.parent() {
            watched.push(parent.to_owned());
        }
    }
    watched.sort();
    watched.dedup();
    let relevant = move |p: &Path| {
        files
            .iter()
            .chain(code.iter())
            .any(|f| p == f || p.file_name() == f.file_name() && p.parent() == f.parent())
            || manifests.as_ref().is_some_and(|m| {
                p.starts_with(m) && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
    };
    let handler = move |res: notify_debouncer_mini::DebounceEventResult| {
        if let Ok(events) = res
            && events.iter().any(|e| relevant(&e.path))
        {
            let _ = tx.try_send(FILE_CHANGE);
        }
    };
    let mut debouncer = match notify_debouncer_mini::new_debouncer(Duration::from_millis(250), handler) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch configuration files; reload with SIGHUP");
            return None;
        }
    };
    for dir in watched {
        if let Err(e) = debouncer.watcher().watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch");
        }
    }
    Some(debouncer)
}
