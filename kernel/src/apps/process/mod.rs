//! The `process` runtime: an app that is a server of its own (Node,
//! Python, Go...). bext starts `instances` copies of its `command` in its
//! `source` directory, each on a port of its own (`PORT`) or a Unix socket
//! (`BEXT_SOCKET`, with `listen = "socket"`), waits until
//! each is ready, and forwards requests through one proxy whose backends
//! are the ready instances (balanced, ejected and retried as a proxy app's
//! upstreams; the set is replaced as instances get ready, fail their
//! checks or end), restarts one that ends ([`supervisor`]), keeps its
//! output ([`logs`]) and stops its process group gracefully ([`child`]).
//!
//! A runtime is built without starting anything (`bext check` builds
//! them too); [`ProcessApp::start`] starts it once the pipeline holding it
//! is about to serve. Dropping it (the pipeline that used it is retired)
//! stops its instances.

mod child;
mod limits;
mod logs;
mod ready;
mod supervisor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bext_plugin_abi::{Ctx, Request, Response};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::plain;
use super::proxy::ProxyApp;
use super::upstreams::Backend;
use crate::config::platform::AppConfig;
use crate::config::process::{Listen, ReadyCheck};

pub use logs::KEPT_LINES;

/// What an app's configuration says to run, checked by the platform
/// loader.
struct Spec {
    app: Arc<str>,
    command: Vec<String>,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    instances: usize,
    ready: ReadyCheck,
    stop_timeout: Duration,
    /// The proxy keys (`balance`, `retries`, timeouts...), for the
    /// instances' proxy.
    cfg: AppConfig,
}

/// A process app: its configuration, and its instances once started.
pub struct ProcessApp {
    spec: Arc<Spec>,
    running: OnceLock<Arc<Running>>,
}

/// The started app: one slot per instance, shared with the supervisors.
struct Running {
    spec: Arc<Spec>,
    slots: Box<[Slot]>,
    /// Requests go through it to the ready instances.
    proxy: ProxyApp,
    /// Every instance's backend, by instance: the proxy's set is the
    /// ready ones among them.
    backends: Box<[Arc<Backend>]>,
    /// Held while the proxy's set is rebuilt, so two supervisors never
    /// publish out of order.
    publishing: Mutex<()>,
    logs: Arc<logs::LogRing>,
    /// The supervisors' generation; [`STOPPED`] once the app is stopped
    /// for good (reload, deploy, exit). Supervisors stop when it moves.
    stop: watch::Sender<u64>,
    /// The instances' supervisors while they run (none while idle); held
    /// while they stop, so a new run never meets the old one's ports.
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    /// With `idle_stop`: whether the instances were stopped for want of
    /// traffic (the next request starts them).
    idle: AtomicBool,
    /// With `listen = "socket"`: where the sockets are.
    sockets: Option<SocketDir>,
    /// How `limits` apply to each run of an instance.
    limits: limits::Enforcer,
    /// The control runtime the app was started on: supervisors always run
    /// there, also when a request on a worker wakes an idle app. A child's
    /// parent-death signal follows the thread that spawned it, and the
    /// workers end before bext's exit stops the apps, so a child spawned
    /// from a worker would be killed with it instead of stopped gracefully.
    home: tokio::runtime::Handle,
}

/// The generation of an app stopped for good.
const STOPPED: u64 = u64::MAX;

/// Where an instance listens.
#[derive(Debug, Clone)]
enum Endpoint {
    /// A port on 127.0.0.1 (`PORT`).
    Port(u16),
    /// A Unix socket (`BEXT_SOCKET`) in the app's [`SocketDir`].
    Socket(PathBuf),
}

/// What a server that never gets ready most likely does wrong, for the
/// ready timeout's error: it listens on a port of its own (3000, say),
/// not on the one it was given.
fn listen_hint(at: &Endpoint) -> String {
    match at {
        Endpoint::Port(port) => {
            format!(
                "the server must listen on 127.0.0.1 at the port bext gives it in `$PORT` ({port}), not a port of its own"
            )
        }
        Endpoint::Socket(path) => format!(
            "the server must listen on the Unix socket bext gives it in `$BEXT_SOCKET` ({})",
            path.display()
        ),
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Port(port) => write!(f, "port {port}"),
            Endpoint::Socket(path) => write!(f, "socket {}", path.display()),
        }
    }
}

/// The directory of a started app's sockets: created 0700 (only bext's
/// user may reach the sockets), removed with everything in it when the
/// app stops.
struct SocketDir(PathBuf);

impl SocketDir {
    /// A new directory with a name nobody can guess (another local user
    /// who made it first would keep the app from starting).
    fn create() -> std::io::Result<SocketDir> {
        use std::io::Read;
        use std::os::unix::fs::DirBuilderExt;
        let mut nonce = [0u8; 8];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
        let name = format!("bext-sockets-{:016x}", u64::from_ne_bytes(nonce));
        let mut dir = std::env::temp_dir().join(&name);
        // A socket's path has at most 107 bytes; `/tmp` when TMPDIR is
        // too deep for it.
        if dir.as_os_str().len() > 80 {
            dir = PathBuf::from("/tmp").join(&name);
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(SocketDir(dir))
    }

    fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove the app's socket directory");
        }
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One instance as requests and the admin API see it.
struct Slot {
    at: Endpoint,
    /// Whether it is in the proxy's set; changed by
    /// [`Running::set_ready`] only.
    ready: AtomicBool,
    pid: AtomicU32,
    starts: AtomicU32,
    gave_up: Mutex<Option<String>>,
    /// Why its last ready check failed, while it is not ready: for the
    /// logs endpoint and a deploy's error.
    not_ready: Mutex<Option<ready::NotReady>>,
}

impl Slot {
    /// What its last failed ready check found, or what a server that never
    /// got ready most likely does wrong.
    fn why_not_ready(&self) -> String {
        match self.not_ready.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None | Some(ready::NotReady::NotListening) => listen_hint(&self.at),
            Some(why) => why.to_string(),
        }
    }

    /// The last failed check, for the logs endpoint (`null` once ready).
    fn not_ready_note(&self) -> Option<String> {
        let why = self.not_ready.lock().unwrap_or_else(|p| p.into_inner());
        why.as_ref().map(|w| format!("ready check: {w}"))
    }

    /// Notes the outcome of a ready check.
    fn checked(&self, outcome: &Result<(), ready::NotReady>) {
        *self.not_ready.lock().unwrap_or_else(|p| p.into_inner()) = outcome.as_ref().err().cloned();
    }
}

/// Every started app, for bext's exit.
static STARTED: Mutex<Vec<Weak<Running>>> = Mutex::new(Vec::new());

impl ProcessApp {
    /// The runtime `cfg` describes (nothing runs until [`Self::start`]).
    pub fn new(id: &str, cfg: &AppConfig) -> Result<ProcessApp, String> {
        let command = cfg.command.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        if command.first().is_none_or(String::is_empty) {
            return Err("a process app needs `command`".into());
        }
        let dir = cfg.source.clone().ok_or("a process app needs `source`")?;
        Ok(ProcessApp {
            spec: Arc::new(Spec {
                app: id.into(),
                command,
                dir,
                env: cfg.env.clone(),
                instances: cfg.instances.max(1),
                ready: cfg.ready.as_deref().cloned().unwrap_or_default(),
                stop_timeout: cfg.stop_timeout,
                cfg: cfg.clone(),
            }),
            running: OnceLock::new(),
        })
    }

    /// Starts the instances on the current tokio runtime (bext's control
    /// runtime, whose thread lives as long as bext: a child's
    /// parent-death signal follows the thread that started it). `Ok(false)`
    /// when already started.
    pub fn start(&self) -> std::io::Result<bool> {
        if self.running.get().is_some() {
            return Ok(false);
        }
        let n = self.spec.instances;
        let (sockets, endpoints) = match self.spec.cfg.listen {
            Listen::Port => (None, Self::ports(n)?),
            Listen::Socket => {
                let dir = SocketDir::create()?;
                let paths = (0..n).map(|i| Endpoint::Socket(dir.0.join(format!("{i}.sock"))));
                let paths = paths.collect();
                (Some(dir), paths)
            }
        };
        let mut slots = Vec::with_capacity(n);
        let mut urls = Vec::with_capacity(n);
        for at in endpoints {
            urls.push(match &at {
                Endpoint::Port(port) => crate::config::upstream::parse_upstream(&format!("http://127.0.0.1:{port}"))
                    .map_err(std::io::Error::other)?,
                Endpoint::Socket(path) => crate::config::upstream::Upstream::unix(path),
            });
            slots.push(Slot {
                at,
                ready: AtomicBool::new(false),
                pid: AtomicU32::new(0),
                starts: AtomicU32::new(0),
                gave_up: Mutex::new(None),
                not_ready: Mutex::new(None),
            });
        }
        let proxy = ProxyApp::for_instances(&urls, &self.spec.cfg).map_err(std::io::Error::other)?;
        let (limits, note) = limits::Enforcer::new(&self.spec.app, self.spec.cfg.limits);
        let logs: Arc<logs::LogRing> = Arc::default();
        if let Some(note) = note {
            tracing::info!(app = &*self.spec.app, "{note}");
            logs.app_event(&self.spec.app, &note);
        }
        let backends = proxy.upstreams().current().list.clone().into_boxed_slice();
        // No instance is ready yet.
        proxy.upstreams().replace(Vec::new());
        let run = Arc::new(Running {
            spec: self.spec.clone(),
            slots: slots.into_boxed_slice(),
            proxy,
            backends,
            publishing: Mutex::new(()),
            logs,
            stop: watch::Sender::new(0),
            tasks: tokio::sync::Mutex::default(),
            idle: AtomicBool::new(false),
            sockets,
            limits,
            home: tokio::runtime::Handle::current(),
        });
        if self.running.set(run.clone()).is_err() {
            return Ok(false);
        }
        if let Ok(mut tasks) = run.tasks.try_lock() {
            run.spawn_supervisors(&mut tasks);
        }
        if let Some(after) = self.spec.cfg.idle_stop {
            tokio::spawn(idle_watch(Arc::downgrade(&run), after.0));
        }
        let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
        started.retain(|w| w.strong_count() > 0);
        started.push(Arc::downgrade(&run));
        Ok(true)
    }

    /// `n` free ports on 127.0.0.1, each an instance's across its
    /// restarts. They are held together while chosen, so two instances
    /// never share one.
    fn ports(n: usize) -> std::io::Result<Vec<Endpoint>> {
        let held: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<_>>()?;
        held.iter()
            .map(|l| Ok(Endpoint::Port(l.local_addr()?.port())))
            .collect()
    }

    /// Forwards a request to a ready instance (picked by `balance`,
    /// retried on another when safe); 503 with `Retry-After` while none
    /// is ready.
    pub(crate) async fn serve(&self, req: Request, cx: &Ctx, kept: &mut crate::apps::KeptFields) -> Response {
        if let Some(run) = self.running.get() {
            // Counted from its arrival, so a request waiting for a start
            // keeps the app from going idle again.
            let _busy = run.proxy.activity().map(|a| a.enter());
            if self.spec.cfg.idle_stop.is_some() && !run.any_ready() {
                // An idle app starts again for this request, which waits
                // for an instance (as long as a start may take).
                if run.idle.load(Ordering::Acquire) {
                    run.wake().await;
                }
                let deadline = tokio::time::Instant::now() + self.spec.ready.timeout;
                while !run.any_ready() && !self.crash_looped() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            if run.any_ready() {
                return run.proxy.serve(req, cx, kept).await;
            }
        }
        let (body, retry) = match self.crash_looped() {
            // The reason (an exit status, the app's output) is for the
            // operator: the log and the admin API.
            true => (
                "app unavailable: its processes keep failing\n",
                self.spec.cfg.crash_pause.as_secs().max(1),
            ),
            false => ("app starting\n", 1),
        };
        let mut res = plain(StatusCode::SERVICE_UNAVAILABLE, body);
        res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry));
        res
    }

    /// Whether every instance gave up after a crash loop.
    fn crash_looped(&self) -> bool {
        self.running.get().is_some_and(|run| {
            run.slots
                .iter()
                .all(|s| s.gave_up.lock().unwrap_or_else(|p| p.into_inner()).is_some())
        })
    }

    /// A crash-looped app is started afresh by the next reload or deploy.
    pub fn is_current(&self) -> bool {
        !self.crash_looped()
    }

    /// Whether at least one instance takes requests.
    pub fn serving(&self) -> bool {
        self.running
            .get()
            .is_some_and(|run| run.slots.iter().any(|s| s.ready.load(Ordering::Acquire)))
    }

    /// Waits until every instance is ready: what a new version must reach
    /// before traffic moves to it. Errs after the `ready` timeout, or when
    /// an instance gives up sooner.
    pub async fn wait_ready(&self) -> Result<(), String> {
        let Some(run) = self.running.get() else {
            return Err("not started".into());
        };
        let limit = self.spec.ready.timeout + Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if run.slots.iter().all(|s| s.ready.load(Ordering::Acquire)) {
                return Ok(());
            }
            for (i, s) in run.slots.iter().enumerate() {
                if let Some(why) = &*s.gave_up.lock().unwrap_or_else(|p| p.into_inner()) {
                    return Err(format!("instance {i}: {why}"));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let last = run.logs.last(3).join(" | ");
                let waiting = run.slots.iter().find(|s| !s.ready.load(Ordering::Acquire));
                return Err(format!(
                    "not ready after {}s (ready check: {}; {}); last lines: {last}",
                    self.spec.ready.timeout.as_secs_f32(),
                    self.spec.ready.path.as_deref().unwrap_or(match self.spec.cfg.listen {
                        Listen::Port => "the port opening",
                        Listen::Socket => "the socket accepting",
                    }),
                    waiting.map_or_else(String::new, Slot::why_not_ready),
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops every instance gracefully and waits until they are gone.
    pub async fn stop(&self) {
        if let Some(run) = self.running.get() {
            run.stop_all().await;
        }
    }

    /// The app's state for the admin API: `running`, `starting`,
    /// `crash-loop`, `idle` or `stopped`, each instance, and why it gave
    /// up.
    pub fn status(&self) -> serde_json::Value {
        let Some(run) = self.running.get() else {
            return serde_json::json!({ "state": "stopped", "instances": [] });
        };
        let stopping = *run.stop.borrow() == STOPPED;
        let instances: Vec<_> = run
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let gave_up = s.gave_up.lock().unwrap_or_else(|p| p.into_inner()).clone();
                serde_json::json!({
                    "instance": i,
                    "pid": match s.pid.load(Ordering::Relaxed) { 0 => None, pid => Some(pid) },
                    "port": match &s.at { Endpoint::Port(port) => Some(*port), Endpoint::Socket(_) => None },
                    "socket": match &s.at { Endpoint::Socket(path) => Some(path.display().to_string()), Endpoint::Port(_) => None },
                    "ready": s.ready.load(Ordering::Acquire),
                    "starts": s.starts.load(Ordering::Relaxed),
                    "reason": gave_up.or_else(|| s.not_ready_note()),
                })
            })
            .collect();
        let state = if stopping {
            "stopped"
        } else if run.idle.load(Ordering::Acquire) {
            "idle"
        } else if self.serving() {
            "running"
        } else if self.crash_looped() {
            "crash-loop"
        } else {
            "starting"
        };
        let reason = run
            .slots
            .iter()
            .find_map(|s| s.gave_up.lock().unwrap_or_else(|p| p.into_inner()).clone());
        serde_json::json!({ "state": state, "reason": reason, "instances": instances })
    }

    /// The last `n` lines of the instances' output and of bext's notes on
    /// them, oldest first.
    pub fn logs(&self, n: usize) -> Vec<String> {
        self.running.get().map_or_else(Vec::new, |run| run.logs.last(n))
    }
}

impl Running {
    /// Puts instance `index` in the proxy's set or takes it out. One put
    /// back starts afresh: what its previous run's failures said of it
    /// is forgotten.
    fn set_ready(&self, index: usize, ready: bool) {
        let _order = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        if self.slots[index].ready.swap(ready, Ordering::AcqRel) == ready {
            return;
        }
        if ready {
            self.backends[index].succeeded();
        }
        let set = (self.slots.iter().zip(&self.backends))
            .filter(|(s, _)| s.ready.load(Ordering::Acquire))
            .map(|(_, b)| b.clone())
            .collect();
        self.proxy.upstreams().replace(set);
    }

    /// Whether an instance takes requests.
    fn any_ready(&self) -> bool {
        self.slots.iter().any(|s| s.ready.load(Ordering::Acquire))
    }

    /// One supervisor per instance, of the current generation.
    fn spawn_supervisors(self: &Arc<Self>, tasks: &mut Vec<JoinHandle<()>>) {
        let generation = *self.stop.borrow();
        if generation == STOPPED || !tasks.is_empty() {
            return;
        }
        *tasks = (0..self.slots.len())
            .map(|i| {
                let stop = supervisor::Stop {
                    rx: self.stop.subscribe(),
                    generation,
                };
                self.home.spawn(supervisor::supervise(self.clone(), i, stop))
            })
            .collect();
    }

    /// Starts the instances of an idle app again, once the stop that made
    /// it idle is over.
    async fn wake(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock().await;
        if self.idle.swap(false, Ordering::AcqRel) {
            let what = "a request came: starting the instances";
            tracing::info!(app = &*self.spec.app, "{what}");
            self.logs.app_event(&self.spec.app, what);
            self.spawn_supervisors(&mut tasks);
        }
    }

    /// Stops the instances gracefully and waits until they are gone: for
    /// good (`forever`), or until the next request (idle).
    async fn sleep(&self, forever: bool) {
        if forever {
            self.stop.send_replace(STOPPED);
        }
        let mut tasks = self.tasks.lock().await;
        if !forever {
            self.idle.store(true, Ordering::Release);
            self.stop.send_modify(|g| {
                if *g != STOPPED {
                    *g += 1;
                }
            });
        }
        for t in std::mem::take(&mut *tasks) {
            let _ = t.await;
        }
    }

    async fn stop_all(&self) {
        self.sleep(true).await;
        if let Some(dir) = &self.sockets {
            dir.remove();
        }
    }
}

impl Drop for ProcessApp {
    /// The pipeline that used this app is gone: its instances stop (their
    /// supervisors run the graceful stop).
    fn drop(&mut self) {
        if let Some(run) = self.running.get() {
            run.stop.send_replace(STOPPED);
        }
    }
}

/// `idle_stop`: stops the instances of an app that nothing used (no
/// request, response body or WebSocket in flight) for `after`; the next
/// request starts them
/// ([`ProcessApp::serve`]). Ends with the app.
async fn idle_watch(run: Weak<Running>, after: Duration) {
    let every = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(every).await;
        let Some(run) = run.upgrade() else { return };
        if *run.stop.borrow() == STOPPED {
            return;
        }
        let quiet = run.proxy.activity().and_then(|a| a.quiet_for());
        if quiet.is_none_or(|q| q < after) || run.idle.load(Ordering::Acquire) {
            continue;
        }
        let what = format!(
            "no request for {}: stopping the instances until the next one (idle_stop)",
            humantime_secs(after)
        );
        tracing::info!(app = &*run.spec.app, "{what}");
        run.logs.app_event(&run.spec.app, &what);
        run.sleep(false).await;
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Stops every app's instances gracefully, then kills whatever is left:
/// bext's exit, after the connections drained.
pub async fn stop_everything() {
    let started: Vec<Arc<Running>> = STARTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .filter_map(|w| w.upgrade())
        .collect();
    let stops = started.iter().map(|r| r.stop_all());
    futures_util::future::join_all(stops).await;
    let killed = child::kill_all_left();
    limits::remove_bext_group();
    if killed > 0 {
        tracing::warn!(groups = killed, "killed app processes that were still stopping");
    }
}
