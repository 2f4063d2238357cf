use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// An app as plugins see it at build time: enough to route to it without
/// reaching into the kernel's app table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppInfo {
    /// The app's id (`[apps.<id>]`).
    pub id: String,
    /// Domains the platform file gives it (exact or `*.` wildcards).
    pub domains: Vec<String>,
}

/// What a plugin may know while its configuration is checked and built:
/// pure data, no I/O, so `bext check` can run it.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The plugin's name from its manifest.
    pub plugin: &'a str,
    /// The manifest's `base`: where the plugin's own HTTP routes mount.
    pub base: Option<&'a str>,
    /// Every app of the platform.
    pub apps: &'a [AppInfo],
    /// The platform's data directory.
    pub data_dir: &'a Path,
}

/// A background task handed to the kernel's runtime.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs tasks on the kernel's runtime.
pub type Spawner = dyn Fn(Task) + Send + Sync;

/// Services the kernel lends a plugin in `on_init`; the plugin may keep it.
///
/// Later versions add more services (Redis, a pub/sub bus, metrics) as new
/// methods, so plugins never need the kernel as a dependency.
#[derive(Clone)]
pub struct Host {
    data_dir: PathBuf,
    apps: Arc<[AppInfo]>,
    spawner: Arc<Spawner>,
}

impl Host {
    /// Built by the kernel; tests may build one too.
    pub fn new(data_dir: PathBuf, apps: Arc<[AppInfo]>, spawner: Arc<Spawner>) -> Self {
        Host {
            data_dir,
            apps,
            spawner,
        }
    }

    /// Where the plugin may keep files (create a subfolder named after it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Every app of the platform.
    pub fn apps(&self) -> &[AppInfo] {
        &self.apps
    }

    /// Runs a background task on the kernel's runtime (timers, refreshers).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        (self.spawner)(Box::pin(task))
    }
}
