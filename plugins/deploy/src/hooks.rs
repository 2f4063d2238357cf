//! `hooks.pre_build` and `hooks.post_deploy`: an app's shell commands run
//! around its deploys. A pre-build runs in the bundle's directory before
//! anything is stored, and a failure aborts the deploy; a post-deploy runs
//! once the new version serves. Their output is kept in the registry.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The most output kept of one run.
const MAX_OUTPUT: usize = 64 * 1024;
/// How long a hook may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(600);

/// An app's hooks (`[apps.<id>] hooks` in the platform file, which the
/// kernel passes on as [`crate::config::Config::app_hooks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployHooks {
    /// Run with `sh -c` in the bundle's directory before it is stored.
    #[serde(default)]
    pub pre_build: Option<String>,
    /// Run with `sh -c` once the new version serves (not for canaries
    /// and previews, which are not what the app serves).
    #[serde(default)]
    pub post_deploy: Option<String>,
}

/// One run of a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// `pre_build` or `post_deploy`.
    pub hook: String,
    /// The command.
    pub command: String,
    /// Its exit code (`None`: killed, or it could not start).
    pub exit_code: Option<i32>,
    /// stdout then stderr, the first 64 KiB.
    pub output: String,
    /// How long it ran, in milliseconds.
    pub millis: u64,
}

impl HookRun {
    /// Whether it exited with 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `command` with `sh -c` in `dir`, with `env` added, for at most ten
/// minutes.
pub fn run(hook: &str, command: &str, dir: &Path, env: &[(&str, &str)]) -> HookRun {
    let started = Instant::now();
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return HookRun {
                hook: hook.into(),
                command: command.into(),
                exit_code: None,
                output: format!("cannot start sh: {e}"),
                millis: 0,
            };
        }
    };
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.by_ref().take(MAX_OUTPUT as u64).read_to_end(&mut buf);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() < TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output = out.join().unwrap_or_default();
    output.extend(err.join().unwrap_or_default());
    output.truncate(MAX_OUTPUT);
    HookRun {
        hook: hook.into(),
        command: command.into(),
        exit_code: status,
        output: String::from_utf8_lossy(&output).into_owned(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_codes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run(
            "pre_build",
            "echo built > out.txt; echo to stdout; echo to stderr >&2",
            dir.path(),
            &[],
        );
        assert!(ok.succeeded());
        assert_eq!(ok.output, "to stdout\nto stderr\n");
        assert!(dir.path().join("out.txt").is_file(), "it ran in the directory");
        let failed = run(
            "pre_build",
            "echo $BEXT_APP; exit 3",
            dir.path(),
            &[("BEXT_APP", "shop")],
        );
        assert_eq!((failed.exit_code, failed.output.as_str()), (Some(3), "shop\n"));
    }
}
