//! One instance's process: started in a process group of its own (so a
//! stop reaches the children it starts), killed with bext if bext dies
//! without stopping it (Linux), and stopped with SIGTERM, then SIGKILL.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use tokio::process::{Child, Command};

use super::{Endpoint, Spec};

/// Process groups bext started and has not seen end: what bext's exit
/// kills when an app's own stop did not finish.
static LIVE_GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// A started instance and its process group.
pub(super) struct Instance {
    /// The process (the group's leader).
    pub(super) child: Child,
    /// Its pid, which is also its process group id.
    pub(super) pid: u32,
}

/// Environment variables passed on from bext's own: what programs need to
/// run (never bext's secrets, such as the admin token).
const PASSED_ON: [&str; 8] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM"];

/// Starts instance `index` of `spec` on `at`: `command` in `source`, with
/// `PORT` (or `BEXT_SOCKET`), `BEXT_APP`, `BEXT_INSTANCE`, the passed-on
/// variables and the app's `env`; `$PORT` (or `$BEXT_SOCKET`) in an
/// argument becomes the port (or the socket's path). A socket left by the
/// instance's previous run is removed first: a server cannot listen on a
/// path that exists. `limits` are applied before the command executes.
pub(super) fn spawn(
    spec: &Spec,
    index: usize,
    at: &Endpoint,
    limits: &super::limits::Applied,
) -> std::io::Result<Instance> {
    let (name, value) = match at {
        Endpoint::Port(port) => ("PORT", port.to_string()),
        Endpoint::Socket(path) => {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let path = path
                .to_str()
                .ok_or_else(|| std::io::Error::other("the socket path is not UTF-8"))?;
            ("BEXT_SOCKET", path.to_owned())
        }
    };
    let (braced, plain) = (format!("${{{name}}}"), format!("${name}"));
    let args = spec.command[1..]
        .iter()
        .map(|a| a.replace(&braced, &value).replace(&plain, &value));
    let mut cmd = Command::new(&spec.command[0]);
    cmd.args(args)
        .current_dir(&spec.dir)
        .env_clear()
        .envs(PASSED_ON.iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
        .envs(&spec.env)
        .env(name, &value)
        .env("BEXT_APP", &*spec.app)
        .env("BEXT_INSTANCE", index.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    die_with_bext(&mut cmd);
    // SAFETY: the closure makes one async-signal-safe system call (a
    // write to an open file, or setrlimit) and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(limits.entry());
    }
    let child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_default()
        .insert(pid as i32);
    Ok(Instance { child, pid })
}

/// If bext dies without stopping its apps (SIGKILL, a crash), the kernel
/// kills the instance (Linux's parent-death signal): no server outlives
/// bext holding its port.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_bext(cmd: &mut Command) {
    // SAFETY: between fork and exec the closure makes one
    // async-signal-safe system call (prctl), allocates nothing and touches
    // no lock of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_bext(_: &mut Command) {}

/// Sends `signal` to the group `pid` leads; false when no process of it is
/// left.
pub(super) fn signal_group(pid: u32, signal: Signal) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| kill_process_group(p, signal).is_ok())
}

/// Whether any process of group `pid` is left.
fn group_alive(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| test_kill_process_group(p).is_ok())
}

/// Stops the group: SIGTERM to all of it, SIGKILL to what is left after
/// `grace`. Returns whether SIGKILL was needed.
pub(super) async fn stop(instance: &mut Instance, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    signal_group(instance.pid, Signal::TERM);
    let mut killed = tokio::time::timeout_at(deadline, instance.child.wait()).await.is_err();
    if killed {
        signal_group(instance.pid, Signal::KILL);
        let _ = instance.child.wait().await;
    }
    // Children that outlive the leader get what is left of the grace.
    while group_alive(instance.pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if group_alive(instance.pid) {
        killed |= signal_group(instance.pid, Signal::KILL);
    }
    forget(instance.pid);
    killed
}

/// After the leader ended on its own: what it left of its group is killed
/// (a crashed server's children must not hold its port).
pub(super) fn clean_up_after(pid: u32) {
    signal_group(pid, Signal::KILL);
    forget(pid);
}

fn forget(pid: u32) {
    if let Some(set) = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        set.remove(&(pid as i32));
    }
}

/// Kills every group bext started that is still alive: the last step of
/// bext's exit, after the apps' own graceful stops.
pub(super) fn kill_all_left() -> usize {
    let left: Vec<i32> = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    left.into_iter()
        .filter(|&pid| signal_group(pid as u32, Signal::KILL))
        .count()
}
