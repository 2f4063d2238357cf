//! A process app's own keys (`command`, `instances`, `ready`,
//! `stop_timeout`, and `env` for its environment), decoded strictly and
//! checked without I/O, so `bext check` names the field of a mistake.

use std::collections::BTreeMap;
use std::time::Duration;

use bext_plugin_abi::units::{ByteSize, Span};
use serde::{Deserialize, Deserializer};

/// Most instances one app may ask for: each is a process and a port.
pub const MAX_INSTANCES: usize = 64;

/// Environment names bext sets for each instance, which `env` may not set.
pub const RESERVED_ENV: [&str; 4] = ["PORT", "BEXT_SOCKET", "BEXT_APP", "BEXT_INSTANCE"];

/// The program and its arguments: `command = "node server.js"` (split as a
/// shell would split words, without expansion) or `["node", "server.js"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub Vec<String>);

/// As a shell would read it back: words with spaces or shell syntax in
/// single quotes (`sh -c 'NODE_ENV=production node index.js && echo
/// done'`), so what bext says it runs is unambiguous.
impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, word) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,$".contains(&b));
            if plain {
                f.write_str(word)?;
            } else {
                write!(f, "'{}'", word.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Line(String),
            Words(Vec<String>),
        }
        let words = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("a command line (\"node server.js\") or a list of words"))?
        {
            Raw::Line(line) => split_words(&line).map_err(serde::de::Error::custom)?,
            Raw::Words(words) => words,
        };
        Ok(CommandLine(words))
    }
}

/// `ready = { path = "/health", timeout = "30s" }`: how bext knows an
/// instance can take requests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyCheck {
    /// A path answered with a status below 500 once the instance is ready;
    /// unset, the port accepting a connection is enough.
    #[serde(default)]
    pub path: Option<String>,
    /// How long a start may take before the instance counts as failed.
    #[serde(default = "default_ready_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for ReadyCheck {
    fn default() -> Self {
        ReadyCheck {
            path: None,
            timeout: default_ready_timeout(),
        }
    }
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The time between SIGTERM and SIGKILL when no `stop_timeout` is set.
pub fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

/// How long a crash-looping instance rests when no `crash_pause` is set.
pub fn default_crash_pause() -> Duration {
    Duration::from_secs(60)
}

/// `restart = { backoff = "100ms", max_backoff = "30s", crash_loop =
/// { restarts = 5, within = "60s" } }`: how soon a failed instance is
/// started again, and how many failures make a crash loop (then it rests
/// for `crash_pause`). The defaults suit most servers; a server that
/// takes long to fail, or that must come back faster, sets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// The first pause before a restart; each failure doubles it.
    #[serde(default = "default_backoff", deserialize_with = "duration")]
    pub backoff: Duration,
    /// The longest pause before a restart.
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// When failures count as a crash loop.
    #[serde(default)]
    pub crash_loop: CrashLoop,
}

/// `crash_loop = { restarts = 5, within = "60s" }`: `restarts` failures
/// within `within` make a crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoop {
    /// Failures (an exit, or no readiness in time) that make a crash loop.
    #[serde(default = "default_crash_restarts")]
    pub restarts: u32,
    /// The window they are counted in.
    #[serde(default = "default_crash_within", deserialize_with = "duration")]
    pub within: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            crash_loop: CrashLoop::default(),
        }
    }
}

impl Default for CrashLoop {
    fn default() -> Self {
        CrashLoop {
            restarts: default_crash_restarts(),
            within: default_crash_within(),
        }
    }
}

fn default_backoff() -> Duration {
    Duration::from_millis(100)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

fn default_crash_restarts() -> u32 {
    5
}

fn default_crash_within() -> Duration {
    Duration::from_secs(60)
}

/// The most failures `restart.crash_loop.restarts` may allow before a
/// rest: more is a fork storm by another name.
pub const MAX_CRASH_RESTARTS: u32 = 100;

/// What a process app's instances listen on (`listen`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listen {
    /// A TCP port on 127.0.0.1, in `PORT`: what every server can do.
    #[default]
    Port,
    /// A Unix socket path, in `BEXT_SOCKET`, in a directory only bext's
    /// user may enter: no port to allocate, nothing another local user
    /// can connect to, and no TCP cost between bext and the app.
    Socket,
}

/// `limits = { memory = "256MiB", cpu = 0.5 }`: what each instance may
/// use, so one app cannot starve the others on the host (enforced by
/// cgroup v2 when bext may create groups, by rlimits otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory of one instance (with its children under cgroups), at most.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// CPU time of one instance, in cores (`0.5`: half of one core).
    #[serde(default)]
    pub cpu: Option<f64>,
}

/// The smallest `limits.memory`: below it no runtime starts at all, and
/// the instance would only crash-loop.
pub const MIN_MEMORY: u64 = 8 << 20;

/// The most cores `limits.cpu` may name.
pub const MAX_CPU: f64 = 1024.0;

/// One instance, when `instances` is not set.
pub fn one_instance() -> usize {
    1
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Span::deserialize(d).map(|s| s.0)
}

/// Splits a command line into words as `sh` does, without expansions:
/// blanks separate words, `'…'` keeps everything, `"…"` keeps everything
/// but `\"`, `\\`, `\$` and `` \` ``, and `\` outside quotes escapes the
/// next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("`{line}`: a ' is not closed")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("`{line}`: a \" is not closed")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("`{line}`: a \" is not closed")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("`{line}`: ends with a lone \\")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The problems of a process app's keys (its `source` already made
/// absolute), as `(field, reason)`.
pub fn check(app: &super::platform::AppConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut fail = |field: &str, reason: String| problems.push((field.to_owned(), reason));
    match &app.source {
        None => fail(
            "source",
            "a process app needs `source`, its directory (where `command` starts)".into(),
        ),
        Some(s) if !s.is_dir() => fail("source", format!("{} is not a directory", s.display())),
        Some(_) => {}
    }
    let (instances, stop_timeout, env) = (app.instances, app.stop_timeout, &app.env);
    match &app.command {
        None => fail(
            "command",
            "a process app needs `command`, e.g. \"node server.js\" or [\"node\", \"server.js\"]".into(),
        ),
        Some(CommandLine(words)) if words.is_empty() || words[0].is_empty() => {
            fail("command", "names no program".into());
        }
        Some(CommandLine(words)) if words.iter().any(|w| w.contains('\0')) => {
            fail("command", "contains a NUL character".into());
        }
        Some(_) => {}
    }
    if !(1..=MAX_INSTANCES).contains(&instances) {
        fail("instances", format!("must be from 1 to {MAX_INSTANCES}"));
    }
    if let Some(r) = &app.ready {
        if let Some(p) = &r.path
            && (!p.starts_with('/') || p.parse::<http::uri::PathAndQuery>().is_err())
        {
            fail("ready.path", format!("`{p}` is not a request path like /health"));
        }
        if r.path.is_some() && app.http2 {
            fail(
                "ready.path",
                "the ready check asks over HTTP/1.1, which an `http2` (h2c) server may not speak: leave `path` unset (the port opening)".into(),
            );
        }
        if r.timeout.is_zero() {
            fail("ready.timeout", "must be longer than 0".into());
        }
    }
    if stop_timeout.is_zero() {
        fail("stop_timeout", "must be longer than 0".into());
    }
    if app.crash_pause.is_zero() {
        fail("crash_pause", "must be longer than 0".into());
    }
    let restart = &app.restart;
    if restart.backoff.is_zero() {
        fail(
            "restart.backoff",
            "must be longer than 0 (a failing process restarted at once is a fork storm)".into(),
        );
    }
    if restart.max_backoff < restart.backoff {
        fail(
            "restart.max_backoff",
            format!("must be at least `backoff` ({:?})", restart.backoff),
        );
    }
    if !(1..=MAX_CRASH_RESTARTS).contains(&restart.crash_loop.restarts) {
        fail(
            "restart.crash_loop.restarts",
            format!("must be from 1 to {MAX_CRASH_RESTARTS}"),
        );
    }
    if restart.crash_loop.within.is_zero() {
        fail("restart.crash_loop.within", "must be longer than 0".into());
    }
    if let Some(limits) = &app.limits {
        if limits.memory.is_some_and(|m| m.0 < MIN_MEMORY) {
            fail("limits.memory", "must be at least 8MiB".into());
        }
        if limits.cpu.is_some_and(|c| !(c > 0.0 && c <= MAX_CPU)) {
            fail(
                "limits.cpu",
                format!("a number of cores above 0 and at most {MAX_CPU} (0.5: half a core)"),
            );
        }
    }
    if app.idle_stop.is_some_and(|s| s.0.is_zero()) {
        fail(
            "idle_stop",
            "must be longer than 0 (leave it unset to keep the app running)".into(),
        );
    }
    // `health` on a process app is refused by `runtime_keys`, with `ready`.
    for (field, reason) in super::upstream::pool_problems(app) {
        fail(field, reason);
    }
    for (k, v) in env {
        if RESERVED_ENV.contains(&k.as_str()) {
            fail(&format!("env.{k}"), "set by bext for each instance".into());
        } else if k.is_empty() || k.contains(['=', '\0']) {
            fail(&format!("env.{k}"), "not an environment variable name".into());
        } else if v.contains('\0') {
            fail(&format!("env.{k}"), "contains a NUL character".into());
        }
    }
    problems
}

/// What a directory without a `runtime` in its `bext.config.toml` starts
/// as a process app (`bext run DIR`, a deploy that creates an app): the
/// `start` script of its `package.json`, else the `web` (or first)
/// process of its `Procfile`, each run by `sh -c` as npm and Procfile
/// runners do unless it is plain words ([`shell`]). `None` when it has
/// neither: a static site.
pub fn detect(dir: &std::path::Path) -> Result<Option<Detected>, String> {
    let package = dir.join("package.json");
    if package.is_file() {
        let text = std::fs::read_to_string(&package).map_err(|e| format!("{}: {e}", package.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", package.display()))?;
        if let Some(start) = json.pointer("/scripts/start").and_then(|s| s.as_str()) {
            let bin = dir.join("node_modules").join(".bin");
            let path = std::env::var("PATH").unwrap_or_default();
            return Ok(Some(Detected {
                command: shell(start),
                env: BTreeMap::from([("PATH".to_owned(), format!("{}:{path}", bin.display()))]),
                from: "package.json `start` script",
            }));
        }
    }
    let procfile = dir.join("Procfile");
    if procfile.is_file() {
        let text = std::fs::read_to_string(&procfile).map_err(|e| format!("{}: {e}", procfile.display()))?;
        let processes: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(name, cmd)| (name.trim(), cmd.trim()))
            .filter(|(_, cmd)| !cmd.is_empty())
            .collect();
        let web = processes.iter().find(|(name, _)| *name == "web").or(processes.first());
        return match web {
            Some((_, cmd)) => Ok(Some(Detected {
                command: shell(cmd),
                env: BTreeMap::new(),
                from: "Procfile",
            })),
            None => Err(format!("{}: no `name: command` line", procfile.display())),
        };
    }
    Ok(None)
}

/// A start command found in a directory ([`detect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// What runs.
    pub command: CommandLine,
    /// What its environment needs (npm's `node_modules/.bin` on `PATH`).
    pub env: BTreeMap<String, String>,
    /// Where it was found, for the startup log.
    pub from: &'static str,
}

/// A script of plain words (and `$PORT`, which bext fills in) runs as
/// those words, without a shell in between: the server itself is the
/// instance's process, which the kernel kills if bext is killed outright
/// (a shell's children outlive it then). Anything a shell would interpret
/// runs by `sh -c`.
fn shell(script: &str) -> CommandLine {
    let without_port = script.replace("${PORT}", "").replace("$PORT", "");
    let plain = !without_port.contains(|c: char| "$;&|<>()`*?[]{}~!#\n\\".contains(c));
    match split_words(script) {
        Ok(words) if plain && !words.is_empty() && !words[0].contains('=') => CommandLine(words),
        _ => CommandLine(vec!["sh".into(), "-c".into(), script.into()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_show_as_a_shell_reads_them_back() {
        let shown = |words: &[&str]| CommandLine(words.iter().map(|w| (*w).to_owned()).collect()).to_string();
        assert_eq!(shown(&["node", "server.js"]), "node server.js");
        assert_eq!(
            shown(&["sh", "-c", "NODE_ENV=production node index.js && echo done"]),
            "sh -c 'NODE_ENV=production node index.js && echo done'"
        );
        assert_eq!(shown(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
    }

    #[test]
    fn command_lines_split_as_a_shell_splits_words() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w("node server.js"), ["node", "server.js"]);
        assert_eq!(w("  python3  -m\thttp.server "), ["python3", "-m", "http.server"]);
        assert_eq!(
            w(r#"sh -c 'echo "$PORT"; exit 1'"#),
            ["sh", "-c", r#"echo "$PORT"; exit 1"#]
        );
        assert_eq!(w(r#"a "b \"c\" \d" e\ f ''"#), ["a", r#"b "c" \d"#, "e f", ""]);
        for bad in ["node 'x", "node \"x", "node \\"] {
            assert!(split_words(bad).is_err(), "{bad}");
        }
        let c: CommandLine =
            toml::from_str::<BTreeMap<String, CommandLine>>("c = ['node', 'a b']").unwrap()["c"].clone();
        assert_eq!(c.0, ["node", "a b"]);
        assert!(toml::from_str::<BTreeMap<String, CommandLine>>("c = 'node \"x'").is_err());
        assert!(toml::from_str::<BTreeMap<String, CommandLine>>("c = 3").is_err());
    }

    #[test]
    fn package_json_start_then_procfile_web_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(dir.path()), Ok(None));
        std::fs::write(
            dir.path().join("Procfile"),
            "# comment\nworker: node w.js\nweb: python3 app.py $PORT\n",
        )
        .unwrap();
        let found = detect(dir.path()).unwrap().unwrap();
        assert_eq!(
            found.command.0,
            ["python3", "app.py", "$PORT"],
            "plain words need no shell"
        );
        std::fs::write(dir.path().join("package.json"), r#"{"scripts":{"build":"x"}}"#).unwrap();
        assert_eq!(detect(dir.path()).unwrap().unwrap().from, "Procfile", "no start script");
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"scripts":{"start":"node server.js"}}"#,
        )
        .unwrap();
        let found = detect(dir.path()).unwrap().unwrap();
        assert_eq!(found.command.0, ["node", "server.js"]);
        assert!(found.env["PATH"].contains("node_modules/.bin"));
        for script in [
            "npm run build && node server.js",
            "NODE_ENV=production node server.js",
            "node server.js > log",
            "node $ENTRY",
            "node dist/*.js",
            "node 'server.js",
        ] {
            assert_eq!(shell(script).0, ["sh", "-c", script], "{script}");
        }
        assert_eq!(shell("next start -p ${PORT}").0, ["next", "start", "-p", "${PORT}"]);
        std::fs::write(dir.path().join("package.json"), "{").unwrap();
        assert!(detect(dir.path()).unwrap_err().contains("not JSON"));
        std::fs::remove_file(dir.path().join("package.json")).unwrap();
        std::fs::write(dir.path().join("Procfile"), "nothing here\n").unwrap();
        assert!(detect(dir.path()).is_err());
    }

    #[test]
    fn every_problem_of_the_keys_names_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let app = |lines: &str| {
            let mut app: super::super::platform::AppConfig =
                toml::from_str(&format!("runtime = 'process'\n{lines}")).unwrap();
            app.source = app.source.map(|s| dir.path().join(s));
            app
        };
        let fields = |lines: &str| -> Vec<String> { check(&app(lines)).into_iter().map(|(f, _)| f).collect() };
        assert_eq!(
            fields(
                "instances = 0\nready = { path = 'health', timeout = '0s' }\nstop_timeout = '0s'\ncrash_pause = '0s'\nenv = { PORT = '1', 'A=B' = '1', OK = 'fine' }\n\
                 restart = { backoff = '0s', crash_loop = { restarts = 0, within = '0s' } }"
            ),
            [
                "source",
                "command",
                "instances",
                "ready.path",
                "ready.timeout",
                "stop_timeout",
                "crash_pause",
                "restart.backoff",
                "restart.crash_loop.restarts",
                "restart.crash_loop.within",
                "env.A=B",
                "env.PORT"
            ]
        );
        assert_eq!(fields("source = 'missing'\ncommand = []"), ["source", "command"]);
        assert_eq!(fields("source = '.'\ncommand = ['node', \"a\\u0000b\"]"), ["command"]);
        assert!(fields("source = '.'\ncommand = 'node server.js'\ninstances = 64\nready = {}").is_empty());
        // The pool's keys are checked as a proxy app's.
        assert_eq!(
            fields("source = '.'\ncommand = 'node'\nhash = 'client'\nmax_connections = 0\nbody_timeout = '0s'"),
            ["hash", "max_connections", "body_timeout"]
        );
        assert_eq!(fields("source = '.'\ncommand = 'node'\nqueue = 3"), ["queue"]);
        assert!(
            fields("source = '.'\ncommand = 'node'\nbalance = 'consistent_hash'\nhash = 'header:X-User'\nretries = 1\nmax_connections = 8\nqueue = 4\nbody_timeout = '5s'").is_empty()
        );
        assert_eq!(fields("source = '.'\ncommand = 'node'\ninstances = 65"), ["instances"]);
        assert_eq!(
            fields("source = '.'\ncommand = 'node'\nlimits = { memory = '4MiB', cpu = 0 }\nidle_stop = '0s'"),
            ["limits.memory", "limits.cpu", "idle_stop"]
        );
        assert_eq!(
            fields("source = '.'\ncommand = 'node'\nlimits = { cpu = 1e9 }"),
            ["limits.cpu"]
        );
        assert!(
            fields("source = '.'\ncommand = 'node'\nlimits = { memory = '256MiB', cpu = 0.5 }\nidle_stop = '15m'")
                .is_empty()
        );
        assert_eq!(
            fields(
                "source = '.'\ncommand = 'node'\nrestart = { backoff = '2s', max_backoff = '1s', crash_loop = { restarts = 101 } }"
            ),
            ["restart.max_backoff", "restart.crash_loop.restarts"]
        );
        let set = app(
            "source = '.'\ncommand = 'node'\nrestart = { backoff = '1s', max_backoff = '1m', crash_loop = { restarts = 10, within = '5m' } }",
        );
        assert!(check(&set).is_empty());
        assert_eq!(
            (
                set.restart.backoff,
                set.restart.max_backoff,
                set.restart.crash_loop.restarts,
                set.restart.crash_loop.within
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(60),
                10,
                Duration::from_secs(300)
            )
        );
        let partial = app("restart = { crash_loop = { restarts = 3 } }");
        assert_eq!(
            partial.restart.crash_loop.within,
            Duration::from_secs(60),
            "unset keys keep their defaults"
        );
        assert_eq!(partial.restart.backoff, Duration::from_millis(100));
        let unknown = toml::from_str::<super::super::platform::AppConfig>("restart = { crash_loop = { max = 3 } }");
        assert!(unknown.unwrap_err().to_string().contains("unknown field `max`"));
        let unknown = toml::from_str::<super::super::platform::AppConfig>("limits = { mem = '1GiB' }");
        assert!(unknown.unwrap_err().to_string().contains("unknown field `mem`"));
    }
}
