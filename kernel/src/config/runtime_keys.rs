//! Which `[apps.<id>]` keys each runtime reads, as one table: a key set on
//! an app whose runtime ignores it would be a silent difference from what
//! the file says (`upstream` on an `ssr` app meant `hybrid`; `isolate` on
//! a process app bounds nothing), so it is refused with what to write.

use super::isolate::IsolateConfig;
use super::platform::{AppConfig, RuntimeKind};

use RuntimeKind::{Express, Hono, Hybrid, Js, Nextjs, Process, Proxy, Ssr, Static};

/// Runtimes that run a JS module in isolates.
const ISOLATES: &[RuntimeKind] = &[Js, Hono, Ssr, Hybrid];
/// Runtimes that supervise processes.
const PROCESSES: &[RuntimeKind] = &[Process, Express, Nextjs];
/// Runtimes that forward requests to backends through the proxy: a proxy
/// app's upstreams, a hybrid app's `/api/*` upstream, a process app's
/// instances.
const FORWARDERS: &[RuntimeKind] = &[Proxy, Hybrid, Process, Express, Nextjs];
/// Runtimes that run code given an environment (`env`).
const WITH_ENV: &[RuntimeKind] = &[Js, Hono, Ssr, Hybrid, Process, Express, Nextjs];

/// One key (or family of keys), the runtimes that read it, and how to
/// tell whether a file set it.
struct Rule {
    /// What the reason says only these runtimes have.
    what: &'static str,
    runtimes: &'static [RuntimeKind],
    /// The keys this rule covers that the app sets.
    set: fn(&AppConfig) -> Vec<String>,
}

fn one(key: &str, set: bool) -> Vec<String> {
    those(&[(key, set)])
}

/// The keys of `keys` that are set.
fn those(keys: &[(&str, bool)]) -> Vec<String> {
    keys.iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| (*k).to_owned())
        .collect()
}

const RULES: &[Rule] = &[
    Rule {
        what: "a `source` folder",
        runtimes: &[Static, Js, Process, Hono, Express, Ssr, Hybrid, Nextjs],
        set: |a| one("source", a.source.is_some()),
    },
    Rule {
        what: "an `entry` (the JS module)",
        runtimes: ISOLATES,
        set: |a| one("entry", a.entry.is_some()),
    },
    Rule {
        what: "an `upstream`",
        runtimes: &[Proxy, Hybrid],
        set: |a| {
            let mut keys = one("upstream", a.upstream.is_some());
            keys.extend(one("upstreams", !a.upstreams.is_empty()));
            keys
        },
    },
    Rule {
        what: "isolates",
        runtimes: ISOLATES,
        set: |a| isolate_keys(&a.isolate),
    },
    Rule {
        what: "a `static_dir`",
        runtimes: &[Ssr, Hybrid, Hono, Express],
        set: |a| one("static_dir", a.static_dir.is_some()),
    },
    Rule {
        what: "an `api_prefix`",
        runtimes: &[Hybrid],
        set: |a| one("api_prefix", a.api_prefix.is_some()),
    },
    Rule {
        what: "a `spa_fallback` (index.html for unknown paths)",
        runtimes: &[Static],
        set: |a| one("spa_fallback", a.spa_fallback),
    },
    Rule {
        what: "a command",
        runtimes: PROCESSES,
        set: |a| one("command", a.command.is_some()),
    },
    Rule {
        what: "instances that listen",
        runtimes: PROCESSES,
        set: |a| one("listen", a.listen != super::process::Listen::Port),
    },
    Rule {
        what: "backends to forward requests to",
        runtimes: FORWARDERS,
        set: |a| {
            those(&[
                ("preserve_host", a.preserve_host),
                ("connect_timeout", a.connect_timeout.is_some()),
                ("response_timeout", a.response_timeout.is_some()),
                ("body_timeout", a.body_timeout.is_some()),
                ("balance", a.balance != Default::default()),
                ("hash", a.hash.is_some()),
                ("retries", a.retries.is_some()),
                ("max_connections", a.max_connections.is_some()),
                ("queue", a.queue.is_some()),
                ("http2", a.http2),
            ])
        },
    },
    Rule {
        what: "upstreams checked by `health` and verified by `ca`",
        runtimes: &[Proxy, Hybrid],
        set: |a| {
            those(&[
                ("health", a.health.is_some()),
                ("ca", a.ca.is_some()),
                ("insecure_skip_verify", a.insecure_skip_verify),
            ])
        },
    },
    Rule {
        what: "code that reads an environment",
        runtimes: WITH_ENV,
        set: |a| those(&[("env", !a.env.is_empty()), ("preview_env", !a.preview_env.is_empty())]),
    },
    Rule {
        what: "supervised instances",
        runtimes: PROCESSES,
        set: |a| {
            use super::process::{Restart, default_crash_pause, default_stop_timeout, one_instance};
            those(&[
                ("instances", a.instances != one_instance()),
                ("ready", a.ready.is_some()),
                ("stop_timeout", a.stop_timeout != default_stop_timeout()),
                ("crash_pause", a.crash_pause != default_crash_pause()),
                ("restart", a.restart != Restart::default()),
            ])
        },
    },
    Rule {
        what: "`env` bindings: KV namespaces (`kv`) and secrets from bext's environment (`secrets`)",
        runtimes: ISOLATES,
        set: |a| those(&[("kv", !a.kv.is_empty()), ("secrets", !a.secrets.is_empty())]),
    },
    Rule {
        what: "instances with `limits` and `idle_stop`",
        runtimes: PROCESSES,
        set: |a| {
            let mut keys = one("limits", a.limits.is_some());
            keys.extend(one("idle_stop", a.idle_stop.is_some()));
            keys
        },
    },
];

/// The `isolate.*` keys set (`max_body_bytes` has its own error).
fn isolate_keys(i: &IsolateConfig) -> Vec<String> {
    [
        ("mode", i.mode.is_some()),
        ("workers", i.workers.is_some()),
        ("memory_limit", i.memory_limit.is_some()),
        ("timeout", i.timeout.is_some()),
        ("max_requests", i.max_requests.is_some()),
        ("queue", i.queue.is_some()),
        ("cpu_limit", i.cpu_limit.is_some()),
        ("idle_evict", i.idle_evict.is_some()),
        ("fetch", i.fetch.is_some()),
        ("stream_request_body", i.stream_request_body.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| format!("isolate.{k}"))
    .collect()
}

/// The runtime as the file wrote it, also after `framework::resolve`
/// turned an `ssr`/`hybrid`/`nextjs` app into one of bext's own.
fn written(app: &AppConfig) -> RuntimeKind {
    match app.layers.as_deref().map(|l| l.named) {
        Some("ssr") => Ssr,
        Some("hybrid") => Hybrid,
        Some("nextjs") => Nextjs,
        Some("hono") => Hono,
        Some("express") => Express,
        _ => app.runtime,
    }
}

/// Keys the app sets that its runtime does not read, each with what to
/// write instead: `(key, reason)`.
pub(super) fn problems(app: &AppConfig, runtime_name: fn(RuntimeKind) -> &'static str) -> Vec<(String, String)> {
    let runtime = written(app);
    let mut out = Vec::new();
    for rule in RULES.iter().filter(|r| !r.runtimes.contains(&runtime)) {
        for key in (rule.set)(app) {
            let only: Vec<String> = rule
                .runtimes
                .iter()
                .map(|r| format!("`{}`", runtime_name(*r)))
                .collect();
            let reason = match instead(&key, runtime) {
                Some(hint) => hint,
                None => format!(
                    "a `{}` app ignores it: only {} apps have {}",
                    runtime_name(runtime),
                    only.join(", "),
                    rule.what
                ),
            };
            out.push((key, reason));
        }
    }
    out
}

/// What to write instead, where the mistake has a likely meaning.
fn instead(key: &str, runtime: RuntimeKind) -> Option<String> {
    let root = key.split('.').next().unwrap_or(key);
    let hint = match (root, runtime) {
        ("upstream" | "upstreams", Ssr) => {
            "an `ssr` app renders every request itself: to send `/api/*` to an upstream write `runtime = \"hybrid\"`"
        }
        ("upstream" | "upstreams", Static) => {
            "a `static` app serves its `source` as files: to forward requests write `runtime = \"proxy\"` (or `runtime = \"hybrid\"` for `/api/*` beside a JS render)"
        }
        ("upstream" | "upstreams", Js | Hono) => {
            "a JS app answers every request itself: write `runtime = \"hybrid\"` to send `/api/*` to an upstream, or `runtime = \"proxy\"` to forward everything"
        }
        ("upstream" | "upstreams", Process | Express | Nextjs) => {
            "a process app's upstreams are its own instances: remove it (or write `runtime = \"proxy\"`)"
        }
        ("entry", Static) => {
            "a `static` app serves its `source` as files: for a module exporting `fetch` write `runtime = \"js\"`"
        }
        ("entry", Nextjs) => {
            "a `nextjs` app runs `next start` (or .next/standalone/server.js): to run another file write `command = \"node <file>\"`"
        }
        ("entry", Process | Express) => "a process app runs its `command`: write `command = \"node <file>\"`",
        ("isolate", Process | Express | Nextjs) => {
            "a process app runs no isolates: bound each instance with `limits = { memory = \"256MiB\" }` (and `instances` for copies)"
        }
        ("isolate", Static | Proxy) => {
            "this app runs no JavaScript: remove it (`runtime = \"js\"` runs a module in isolates)"
        }
        ("static_dir", Nextjs) => "a `nextjs` app serves `.next/static` and `public/` itself: remove it",
        ("static_dir", Static) => "a `static` app's folder is its `source`: write `source = \"<folder>\"`",
        ("spa_fallback", Hono | Js | Ssr | Hybrid) => {
            "a JS app answers unknown paths itself (its router's not-found): remove it, or serve the files with `runtime = \"static\"`"
        }
        ("api_prefix", Ssr) => {
            "only a `hybrid` app has an `api_prefix`: write `runtime = \"hybrid\"` with an `upstream`"
        }
        ("command", _) => {
            "only a process app runs a command (`runtime = \"process\"`, or `express`/`nextjs`, which run the package's own)"
        }
        ("listen", _) => "only a process app's instances listen (`runtime = \"process\"`, `express` or `nextjs`)",
        ("source", Proxy) => {
            "a `proxy` app forwards every request to its `upstream` and serves no folder: remove it (files of their own are a `static` app; files beside an API, `runtime = \"hybrid\"`)"
        }
        ("health", Process | Express | Nextjs) => {
            "a process app's instances are checked by `ready` (again every second while they run): write `ready = { path = \"/health\" }`"
        }
        (
            "preserve_host"
            | "connect_timeout"
            | "response_timeout"
            | "body_timeout"
            | "balance"
            | "hash"
            | "retries"
            | "max_connections"
            | "queue"
            | "http2"
            | "health"
            | "ca"
            | "insecure_skip_verify",
            Static | Js | Hono | Ssr,
        ) => {
            "this app answers every request itself and forwards none: it is for an app that does, `runtime = \"proxy\"` with an `upstream` (or `hybrid` for `/api/*` beside a JS render, or a process app's instances)"
        }
        ("ca" | "insecure_skip_verify", Process | Express | Nextjs) => {
            "a process app's instances speak plain HTTP on loopback: remove it"
        }
        ("env" | "preview_env", Static | Proxy) => {
            "this app runs no code to read it: remove it (a JS app, `runtime = \"js\"`, or a process app reads `env`)"
        }
        ("kv", Process | Express | Nextjs) => {
            "a process app has no `env` bindings (`kv` is a JS app's KV namespace): keep its data in a store it connects to itself, or run it as `runtime = \"js\"`"
        }
        ("secrets", Process | Express | Nextjs) => {
            "a process app's instances get only its `env` and PATH, HOME, USER, LANG, LC_ALL, TZ, TMPDIR, TERM of bext's environment: write `env = { NAME = \"...\" }` (`secrets` is a JS app's)"
        }
        ("kv" | "secrets", Static | Proxy) => {
            "this app runs no code to read it: remove it (a JS app, `runtime = \"js\"`, reads `env.NAME`)"
        }
        ("instances" | "ready" | "stop_timeout" | "crash_pause" | "restart" | "limits" | "idle_stop", _) => {
            "only a process app's instances have it (`runtime = \"process\"`, `express` or `nextjs`)"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(toml_text: &str) -> AppConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn name(r: RuntimeKind) -> &'static str {
        match r {
            Static => "static",
            Proxy => "proxy",
            Js => "js",
            Process => "process",
            Hono => "hono",
            Express => "express",
            Ssr => "ssr",
            Hybrid => "hybrid",
            Nextjs => "nextjs",
        }
    }

    fn keys(text: &str) -> Vec<String> {
        problems(&app(text), name).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn keys_of_other_runtimes_are_refused_with_what_to_write() {
        let p = problems(&app("runtime = 'ssr'\nupstream = 'http://127.0.0.1:1'"), name);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "upstream");
        assert!(p[0].1.contains("runtime = \"hybrid\""), "{}", p[0].1);
        assert_eq!(
            keys("runtime = 'static'\nentry = 'a.js'\nupstream = 'http://x'"),
            ["entry", "upstream"]
        );
        let p = problems(
            &app("runtime = 'process'\nisolate = { workers = 4, memory_limit = '64MiB' }"),
            name,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "isolate.workers");
        assert!(p[0].1.contains("limits = { memory"), "{}", p[0].1);
        for rt in ["static", "express", "nextjs"] {
            assert_eq!(
                keys(&format!("runtime = '{rt}'\nisolate.workers = 2")),
                ["isolate.workers"],
                "{rt}"
            );
        }
        assert_eq!(
            keys("runtime = 'nextjs'\nstatic_dir = 'public'\nentry = 'x.js'"),
            ["entry", "static_dir"]
        );
        assert_eq!(keys("runtime = 'hono'\nspa_fallback = true"), ["spa_fallback"]);
        let p = problems(&app("runtime = 'js'\ncommand = 'node x'"), name);
        assert!(p[0].1.contains("express`/`nextjs"), "{}", p[0].1);
    }

    #[test]
    fn forwarding_keys_on_apps_that_forward_nothing_are_refused() {
        for rt in ["js", "hono", "ssr", "static"] {
            let p = problems(
                &app(&format!(
                    "runtime = '{rt}'\npreserve_host = true\nconnect_timeout = '2s'\nresponse_timeout = '9s'"
                )),
                name,
            );
            let keys: Vec<_> = p.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["preserve_host", "connect_timeout", "response_timeout"], "{rt}");
            assert!(p[0].1.contains("runtime = \"proxy\""), "{}", p[0].1);
        }
        assert_eq!(
            keys(
                "runtime = 'js'\nbody_timeout = '5s'\nbalance = 'least_connections'\nretries = 2\nmax_connections = 4\nqueue = 1\nhttp2 = true"
            ),
            [
                "body_timeout",
                "balance",
                "retries",
                "max_connections",
                "queue",
                "http2"
            ]
        );
        assert_eq!(
            keys("runtime = 'static'\nhealth = { path = '/h' }\nca = 'ca.pem'\ninsecure_skip_verify = true"),
            ["health", "ca", "insecure_skip_verify"]
        );
        // A process app's instances are checked by `ready`.
        let p = problems(&app("runtime = 'express'\nhealth = { path = '/h' }"), name);
        assert!(p[0].1.contains("ready = {"), "{}", p[0].1);
        assert_eq!(
            keys("runtime = 'proxy'\nenv = { A = '1' }\npreview_env = { A = '2' }"),
            ["env", "preview_env"]
        );
        let p = problems(&app("runtime = 'proxy'\nupstream = 'http://x'\nsource = 'www'"), name);
        assert_eq!(p.len(), 1);
        assert!(p[0].0 == "source" && p[0].1.contains("serves no folder"), "{p:?}");
        assert_eq!(
            keys(
                "runtime = 'hono'\ninstances = 2\nready = {}\nstop_timeout = '3s'\ncrash_pause = '5s'\nrestart = { backoff = '1s' }"
            ),
            ["instances", "ready", "stop_timeout", "crash_pause", "restart"]
        );
    }

    #[test]
    fn keys_of_the_runtime_pass() {
        for rt in ["proxy", "hybrid", "process", "express", "nextjs"] {
            assert!(
                keys(&format!("runtime = '{rt}'\npreserve_host = true\nconnect_timeout = '2s'\nresponse_timeout = '9s'\nbody_timeout = '1s'\nretries = 0\nhttp2 = true")).is_empty(),
                "{rt}"
            );
        }
        assert!(
            keys("runtime = 'process'\nenv = { A = '1' }\ninstances = 3\nready = {}\nstop_timeout = '3s'").is_empty()
        );
        assert!(keys("runtime = 'js'\nenv = { A = '1' }\npreview_env = { A = '2' }").is_empty());
        assert!(keys("runtime = 'hybrid'\nhealth = { path = '/h' }\nca = 'ca.pem'").is_empty());
        assert!(keys("runtime = 'hybrid'\nupstream = 'http://x'\nstatic_dir = 'd'\napi_prefix = '/api'\nentry = 'a.js'\nisolate.workers = 2").is_empty());
        assert!(keys("runtime = 'static'\nspa_fallback = true").is_empty());
        assert!(keys("runtime = 'express'\ncommand = 'node s.js'\nlimits = { memory = '64MiB' }").is_empty());
        assert!(keys("runtime = 'proxy'\nupstreams = ['http://x']").is_empty());
        for rt in ["js", "hono", "ssr", "hybrid"] {
            assert!(
                keys(&format!("runtime = '{rt}'\nkv = ['S']\nsecrets = ['K']")).is_empty(),
                "{rt}"
            );
        }
    }

    /// `kv` and `secrets` are bindings in a JS app's `env`: any other
    /// runtime is told what to write instead.
    #[test]
    fn bindings_on_apps_without_isolates_are_refused() {
        for rt in ["static", "proxy", "process", "express", "nextjs"] {
            let p = problems(&app(&format!("runtime = '{rt}'\nkv = ['S']\nsecrets = ['K']")), name);
            let keys: Vec<_> = p.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["kv", "secrets"], "{rt}");
        }
        let p = problems(&app("runtime = 'express'\nsecrets = ['STRIPE_KEY']"), name);
        assert!(p[0].1.contains("write `env = { NAME"), "{}", p[0].1);
        let p = problems(&app("runtime = 'static'\nkv = ['S']"), name);
        assert!(p[0].1.contains("runs no code"), "{}", p[0].1);
    }
}
