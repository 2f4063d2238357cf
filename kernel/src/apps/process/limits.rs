//! `limits = { memory, cpu }`: what each instance may use. Through cgroup
//! v2 when bext may create groups below its own (a writable, delegated
//! subtree with the `memory` and `cpu` controllers): each run of an
//! instance gets `bext-<bext's pid>/<app>/<instance>.<run>` with
//! `memory.max` (and no swap) and `cpu.max`, and is moved in before it
//! executes, so whatever it starts is counted too. Otherwise through
//! rlimits: `RLIMIT_DATA` for memory (per process: a runtime's reserved
//! but untouched address space is not counted, as `RLIMIT_AS` would), and
//! CPU is not limited (`RLIMIT_CPU` is a total of seconds that kills, not
//! a rate). The app's log says which applies.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::process::Limits;

/// The period of `cpu.max`, in microseconds (the kernel's default).
const CPU_PERIOD: u64 = 100_000;

/// How an app's limits are enforced, decided when it starts.
pub(super) enum Enforcer {
    /// No `limits`.
    Off,
    /// Groups below `dir` (`bext-<pid>/<app>`), controllers enabled.
    Cgroup { dir: PathBuf, limits: Limits },
    /// Per-process rlimits; only memory is limited.
    Rlimits { memory: Option<u64> },
}

/// What one run of an instance is started with.
pub(super) enum Applied {
    Off,
    /// The run's group, and its `cgroup.procs` open for the child to move
    /// itself in (it writes `0`) before it executes.
    Cgroup {
        dir: PathBuf,
        procs: Arc<OwnedFd>,
    },
    Rlimits {
        memory: Option<u64>,
    },
}

/// Runs started under cgroups: each gets a group of its own, so a
/// restarted instance (or a new version's, beside the old) is counted
/// afresh.
static RUNS: AtomicU64 = AtomicU64::new(0);

impl Enforcer {
    /// Decides how `limits` of `app` are enforced, and says which in the
    /// returned note (for the app's log).
    pub(super) fn new(app: &str, limits: Option<Limits>) -> (Enforcer, Option<String>) {
        let Some(limits) = limits.filter(|l| l.memory.is_some() || l.cpu.is_some()) else {
            return (Enforcer::Off, None);
        };
        let wanted = describe(&limits);
        match app_group(app) {
            Ok(dir) => {
                let note = format!("limits ({wanted}) by cgroup v2: {} per instance", dir.display());
                (Enforcer::Cgroup { dir, limits }, Some(note))
            }
            Err(why) => {
                let memory = limits.memory.map(|m| m.0);
                let cpu = match limits.cpu {
                    Some(_) => "; CPU is not limited under rlimits (RLIMIT_CPU counts seconds, it is not a rate)",
                    None => "",
                };
                let note = format!(
                    "limits ({wanted}) by rlimits{}{cpu}: no cgroup v2 group can be made ({why})",
                    if memory.is_some() {
                        ": RLIMIT_DATA per process"
                    } else {
                        ""
                    },
                );
                (Enforcer::Rlimits { memory }, Some(note))
            }
        }
    }

    /// Prepares one run of instance `index`.
    pub(super) fn for_run(&self, index: usize) -> std::io::Result<Applied> {
        match self {
            Enforcer::Off => Ok(Applied::Off),
            Enforcer::Rlimits { memory } => Ok(Applied::Rlimits { memory: *memory }),
            Enforcer::Cgroup { dir, limits } => {
                let run = RUNS.fetch_add(1, Ordering::Relaxed);
                let dir = dir.join(format!("{index}.{run}"));
                std::fs::create_dir(&dir)?;
                let set = || -> std::io::Result<Arc<OwnedFd>> {
                    if let Some(memory) = limits.memory {
                        std::fs::write(dir.join("memory.max"), memory.0.to_string())?;
                        // Swap would let an instance pass its limit slowly;
                        // a kernel without swap accounting has no such file.
                        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    }
                    if let Some(cpu) = limits.cpu {
                        let quota = ((cpu * CPU_PERIOD as f64) as u64).max(1000);
                        std::fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD}"))?;
                    }
                    let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
                    Ok(Arc::new(procs.into()))
                };
                match set() {
                    Ok(procs) => Ok(Applied::Cgroup { dir, procs }),
                    Err(e) => {
                        let _ = std::fs::remove_dir(&dir);
                        Err(e)
                    }
                }
            }
        }
    }
}

impl Applied {
    /// What the child runs between fork and exec: moves itself into its
    /// group, or sets its rlimits. One system call, no allocation.
    pub(super) fn entry(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let procs = match self {
            Applied::Cgroup { procs, .. } => Some(procs.clone()),
            _ => None,
        };
        let memory = match self {
            Applied::Rlimits { memory } => *memory,
            _ => None,
        };
        move || {
            if let Some(procs) = &procs {
                rustix::io::write(&**procs, b"0")?;
            }
            if let Some(bytes) = memory {
                let limit = rustix::process::Rlimit {
                    current: Some(bytes),
                    maximum: Some(bytes),
                };
                rustix::process::setrlimit(rustix::process::Resource::Data, limit)?;
            }
            Ok(())
        }
    }

    /// Whether the kernel killed the run for passing `memory.max` (known
    /// under cgroups only; under rlimits the runtime reports its failed
    /// allocation itself, in its output).
    pub(super) fn out_of_memory(&self) -> bool {
        let Applied::Cgroup { dir, .. } = self else {
            return false;
        };
        std::fs::read_to_string(dir.join("memory.events")).is_ok_and(|events| {
            events
                .lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
        })
    }

    /// Removes the run's group once the instance ended or was stopped:
    /// what is left in it (a process that left the instance's process
    /// group, a daemon it started) is killed first (`cgroup.kill`, Linux
    /// 5.14), then the group goes (the kernel refuses while a process is
    /// left, briefly after they were reaped too).
    pub(super) async fn remove(&self) {
        let Applied::Cgroup { dir, .. } = self else {
            return;
        };
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        for _ in 0..40 {
            match std::fs::remove_dir(dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            }
        }
        tracing::warn!(dir = %dir.display(), "cannot remove an instance's cgroup: processes are left in it");
    }
}

fn describe(limits: &Limits) -> String {
    let memory = limits
        .memory
        .map(|m| format!("memory {}MiB", m.0 as f64 / (1 << 20) as f64));
    let cpu = limits.cpu.map(|c| format!("cpu {c}"));
    [memory, cpu].into_iter().flatten().collect::<Vec<_>>().join(", ")
}

/// bext's own group for apps (`<bext's cgroup>/bext-<pid>`), made once:
/// controllers enabled down to it, or why that cannot be done here.
fn bext_group() -> Result<&'static Path, String> {
    static GROUP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    GROUP
        .get_or_init(|| {
            let mountinfo =
                std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
            let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
            let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
            let own = own_group(&own).ok_or("bext is in no cgroup v2 group")?;
            let own = mount.join(own.trim_start_matches('/'));
            let controllers = std::fs::read_to_string(own.join("cgroup.controllers"))
                .map_err(|e| format!("{}: {e}", own.join("cgroup.controllers").display()))?;
            for needed in ["memory", "cpu"] {
                if !controllers.split_whitespace().any(|c| c == needed) {
                    return Err(format!(
                        "the `{needed}` controller is not available in {}",
                        own.display()
                    ));
                }
            }
            if let Err(e) = enable(&own) {
                // A group with processes of its own cannot hand controllers
                // down (cgroup v2's rule, the root group aside): bext moves
                // itself into a leaf, as a delegated service is expected to.
                if e.raw_os_error() != Some(rustix::io::Errno::BUSY.raw_os_error()) {
                    return Err(format!("{}: {e}", own.join("cgroup.subtree_control").display()));
                }
                let leaf = own.join(format!("bext-{}-self", std::process::id()));
                std::fs::create_dir_all(&leaf)
                    .and_then(|()| std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()))
                    .and_then(|()| enable(&own))
                    .map_err(|e| format!("{} holds other processes: {e}", own.display()))?;
            }
            let group = own.join(format!("bext-{}", std::process::id()));
            std::fs::create_dir_all(&group)
                .and_then(|()| enable(&group))
                .map_err(|e| format!("{}: {e}", group.display()))?;
            Ok(group)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The app's group below bext's, controllers enabled for its instances.
fn app_group(app: &str) -> Result<PathBuf, String> {
    let dir = bext_group()?.join(app);
    std::fs::create_dir_all(&dir)
        .and_then(|()| enable(&dir))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn enable(group: &Path) -> std::io::Result<()> {
    std::fs::write(group.join("cgroup.subtree_control"), "+memory +cpu")
}

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo`.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        let mount = fields.split_whitespace().nth(4)?;
        (rest.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// bext's group in the v2 hierarchy, from `/proc/self/cgroup` (`0::/path`).
fn own_group(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Removes bext's groups of apps (empty by then): bext's exit.
pub(super) fn remove_bext_group() {
    let Ok(group) = bext_group() else { return };
    if let Ok(apps) = std::fs::read_dir(group) {
        for app in apps.flatten() {
            let _ = std::fs::remove_dir(app.path());
        }
    }
    let _ = std::fs::remove_dir(group);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_mount_and_own_group_are_read_from_proc() {
        let mountinfo = "25 30 0:22 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n\
                         31 30 0:28 / /sys/fs/cgroup/unified rw,relatime shared:15 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(mountinfo), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_mount("25 30 0:22 / /x rw - cgroup cgroup rw\n"), None);
        assert_eq!(
            own_group("4:memory:/a\n0::/system.slice/bext.service\n"),
            Some("/system.slice/bext.service")
        );
        assert_eq!(own_group("4:memory:/a\n"), None);
    }

    #[test]
    fn the_note_says_what_is_limited_and_how() {
        let limits = Limits {
            memory: Some(bext_plugin_abi::units::ByteSize(256 << 20)),
            cpu: Some(0.5),
        };
        assert_eq!(describe(&limits), "memory 256MiB, cpu 0.5");
        assert!(matches!(Enforcer::new("x", None).0, Enforcer::Off));
    }
}
