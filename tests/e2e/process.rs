//! Process apps: real Node and Python servers started, supervised and
//! stopped by bext. Instances share the traffic and their output is in the
//! logs endpoint with their prefix; a killed instance comes back; a
//! process that exits at once is restarted a bounded number of times, then
//! the app answers 503 and says why; one failing its check is out of
//! rotation until it passes; a process that ignores SIGTERM is
//! killed with its whole group after `stop_timeout`; `bext run` starts a
//! `package.json` or `Procfile` app; a new version that never gets ready
//! leaves the old one serving, through a reload or a deploy. Instances
//! are a pool's backends: a GET whose instance dies under it is answered
//! by another, a POST is not sent twice; with `listen = "socket"` they
//! listen on Unix sockets in a private directory. A WebSocket reaches an
//! `http2` (h2c) Node server as an extended CONNECT.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

pub(crate) const TOKEN: &str = "process-secret";

/// A platform with one process app `web` on `web.test`, its `source` the
/// example Node app copied into the site, `app_lines` added to it.
pub(crate) fn node_platform(s: &Site, app_lines: &str) -> PathBuf {
    copy_example(s, "apps/process-node", "web");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.web]
runtime = "process"
source = "web"
domains = ["web.test"]
{app_lines}
"#
    ))
}

pub(crate) fn serve(config: &Path) -> Bext {
    Bext::serve_env(config, &[("BEXT_ADMIN_TOKEN", TOKEN)])
}

/// The logs endpoint's answer for `app`, with the admin token.
pub(crate) async fn logs(b: &Bext, app: &str) -> serde_json::Value {
    let path = format!("/__bext/api/platform/apps/{app}/logs");
    let auth = format!("Bearer {TOKEN}");
    let reply = send(
        b.addr,
        request("GET", &path, &[("host", "web.test"), ("authorization", &auth)], ""),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Waits for `web.test` to answer 200, and returns the answer's JSON.
pub(crate) async fn first_answer(b: &Bext) -> serde_json::Value {
    eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "web.test", "/hello").await;
        (r.status == 200).then(|| r.json())
    })
    .await
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
pub(crate) fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub(crate) fn count(lines: &serde_json::Value, needle: &str) -> usize {
    lines
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_str().unwrap().contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_instances_share_requests_log_with_their_prefix_and_come_back_when_killed() {
    let s = Site::new();
    let config = node_platform(
        &s,
        "command = \"node server.js\"\ninstances = 2\nready = { path = \"/health\", timeout = \"20s\" }\nenv = { GREETING = \"hi there\" }",
    );
    let mut b = serve(&config);
    let first = first_answer(&b).await;
    assert_eq!(first["greeting"], "hi there", "the app's env");
    assert_eq!(first["path"], "/hello");
    assert_eq!(first["sees_admin_token"], false, "bext's secrets stay in bext");
    // Both instances answer, in turn.
    let status = eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        (l["state"] == "running" && l["instances"].as_array().unwrap().iter().all(|i| i["ready"] == true)).then_some(l)
    })
    .await;
    let mut pids = BTreeSet::new();
    for _ in 0..6 {
        let r = get(b.addr, "web.test", "/").await;
        assert_eq!(r.status, 200);
        pids.insert(r.json()["pid"].as_u64().unwrap());
    }
    let listed: BTreeSet<u64> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(pids, listed);
    // Their output, with the app and instance in front, in bext's log and
    // the logs endpoint.
    for i in 0..2 {
        assert_eq!(
            count(&status["lines"], &format!("[web/{i}] listening on 127.0.0.1:")),
            1,
            "{status:#}"
        );
        assert!(b.log().contains(&format!("[web/{i}] listening on")), "{}", b.log());
    }
    let lines = send(
        b.addr,
        request(
            "GET",
            "/__bext/api/platform/apps/web/logs?lines=1",
            &[("host", "web.test"), ("authorization", &format!("Bearer {TOKEN}"))],
            "",
        ),
    )
    .await;
    assert_eq!(lines.json()["lines"].as_array().unwrap().len(), 1);
    // The logs are the operator's: no token, a wrong one, an unknown app,
    // or an app that is not a process, get nothing.
    let path = "/__bext/api/platform/apps/web/logs";
    assert_eq!(get(b.addr, "web.test", path).await.status, 401);
    let wrong = request(
        "GET",
        path,
        &[("host", "web.test"), ("authorization", "Bearer nope")],
        "",
    );
    assert_eq!(send(b.addr, wrong).await.status, 401);
    let auth = format!("Bearer {TOKEN}");
    let ghost = request(
        "GET",
        "/__bext/api/platform/apps/ghost/logs",
        &[("host", "web.test"), ("authorization", &auth)],
        "",
    );
    assert_eq!(send(b.addr, ghost).await.status, 404);
    // The deploy plugin's routes beside it still answer.
    let apps = request(
        "GET",
        "/__bext/api/platform/apps",
        &[("host", "web.test"), ("authorization", &auth)],
        "",
    );
    assert_eq!(send(b.addr, apps).await.status, 200);

    // An instance killed from outside is started again on its port.
    let victim = listed.iter().next().copied().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let back = eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        let instances = l["instances"].as_array().unwrap().clone();
        let restarted = instances
            .iter()
            .any(|i| i["starts"] == 2 && i["ready"] == true && i["pid"].as_u64() != Some(victim));
        restarted.then_some(l)
    })
    .await;
    assert_eq!(count(&back["lines"], "exited (signal: 9"), 1, "{back:#}");
    let mut now = BTreeSet::new();
    for _ in 0..6 {
        let r = get(b.addr, "web.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        now.insert(r.json()["pid"].as_u64().unwrap());
    }
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&victim));

    // bext's exit stops every instance with SIGTERM (the app handles it).
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "bext did not exit");
    for pid in &now {
        assert!(gone(*pid), "instance {pid} outlived bext");
    }
    assert_eq!(b.log().matches("stopped by SIGTERM").count(), 2, "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_http_server_with_the_port_in_its_arguments() {
    let s = Site::new();
    s.write("py/index.html", "served by python\n");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.py]
runtime = "process"
source = "py"
domains = ["py.test"]
command = ["python3", "-m", "http.server", "$PORT", "--bind", "127.0.0.1"]
stop_timeout = "5s"
"#,
    );
    let b = serve(&config);
    let r = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "py.test", "/index.html").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.text(), "served by python\n");
    // Its request log (stderr) is in bext's, prefixed.
    eventually(Duration::from_secs(10), || async {
        b.log().contains("[py/0] 127.0.0.1 - - ").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_at_once_is_restarted_a_bounded_number_of_times_then_503_with_the_reason() {
    let s = Site::new();
    let config = crash_looping(&s, "");
    let b = serve(&config);
    let auth = format!("Bearer {TOKEN}");
    let status = eventually(Duration::from_secs(20), || async {
        let r = send(
            b.addr,
            request(
                "GET",
                "/__bext/api/platform/apps/bad/logs",
                &[("host", "bad.test"), ("authorization", &auth)],
                "",
            ),
        )
        .await;
        let l = r.json();
        (l["state"] == "crash-loop").then_some(l)
    })
    .await;
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("crash loop") && reason.contains("exited (exit status: 3)"),
        "{reason}"
    );
    assert_eq!(status["instances"][0]["starts"], 5, "{status:#}");
    assert_eq!(count(&status["lines"], "[bad/0] booting"), 5);
    let r = get(b.addr, "bad.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert!(
        !r.text().contains("exit status"),
        "the reason is the operator's: {}",
        r.text()
    );
    let log = b.log_once_it_says("crash loop");
    assert!(log.contains("crash loop"), "{log}");
    // No more starts while it stays down.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = send(
        b.addr,
        request(
            "GET",
            "/__bext/api/platform/apps/bad/logs",
            &[("host", "bad.test"), ("authorization", &auth)],
            "",
        ),
    )
    .await;
    assert_eq!(r.json()["instances"][0]["starts"], 5);
    // The detailed health lists it with its reason.
    let h = send(
        b.addr,
        request(
            "GET",
            "/__bext/health",
            &[("host", "bad.test"), ("authorization", &auth)],
            "",
        ),
    )
    .await;
    let app = &h.json()["apps"][0];
    assert_eq!(app["state"], "crash-loop");
    assert!(app["reason"].as_str().unwrap().contains("exit status: 3"));
    // A reload (the same file) starts it afresh: five more starts, then
    // down again.
    b.signal("HUP");
    eventually(Duration::from_secs(20), || async {
        (b.log().matches("[bad/0] booting").count() == 10 && b.log().matches("crash loop").count() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(b.log().matches("[bad/0] booting").count(), 10, "{}", b.log());
}

/// A server that listens on a port of its own, not the one in `PORT`,
/// never gets ready: the error says where it must listen.
#[tokio::test]
async fn a_server_on_a_port_of_its_own_is_told_to_listen_on_dollar_port() {
    let log = lone_node_app_log(
        "require('node:http').createServer((q, r) => r.end('hi')).listen(0, '127.0.0.1', () => console.log('listening on my own port'));\n",
        "command = \"node server.js\"\nready = { timeout = \"1s\" }",
        "not ready after 1s",
    )
    .await;
    assert!(
        log.contains("the server must listen on 127.0.0.1 at the port bext gives it in `$PORT` ("),
        "{log}"
    );
}

/// A `command` whose program is not on PATH says so, and what to do, in
/// the log (a typo such as `nodee` read like a missing folder before).
#[tokio::test]
async fn a_program_not_on_path_is_named_as_such() {
    let log = lone_node_app_log(
        "",
        "command = \"nodee-not-installed server.js\"",
        "cannot start `nodee-not-installed`",
    )
    .await;
    assert!(
        log.contains("cannot start `nodee-not-installed`: no program of that name on PATH (")
            && log.contains("install it or give its full path in `command`"),
        "{log}"
    );
}

/// A server that listens where it should but answers its ready check with
/// a 500 is told that, not to listen on `$PORT`.
#[tokio::test]
async fn a_server_failing_its_ready_check_is_told_what_the_check_got() {
    let log = lone_node_app_log(
        "require('node:http').createServer((q, r) => { r.writeHead(q.url === '/health' ? 500 : 200); r.end('hi'); }).listen(Number(process.env.PORT), '127.0.0.1');\n",
        "command = \"node server.js\"\nready = { path = \"/health\", timeout = \"1s\" }",
        "not ready after 1s",
    )
    .await;
    assert!(
        log.contains("not ready after 1s: GET /health answered 500 (the check wants a status below 500)"),
        "{log}"
    );
    assert!(!log.contains("must listen on 127.0.0.1"), "{log}");
}

/// Serves one process app `lone` whose folder holds `server_js`, with
/// `app_lines`, and returns bext's log once it says `awaited`.
async fn lone_node_app_log(server_js: &str, app_lines: &str, awaited: &str) -> String {
    let s = Site::new();
    s.write("lone/server.js", server_js);
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.lone]\nruntime = \"process\"\nsource = \"lone\"\ndomains = [\"lone.test\"]\n{app_lines}\n"
    ));
    let b = serve(&config);
    eventually(Duration::from_secs(20), || async {
        let log = b.log();
        log.contains(awaited).then_some(log)
    })
    .await
}

/// A platform with one process app `bad` on `bad.test` whose process
/// prints a line and exits at once, `app_lines` added to it.
fn crash_looping(s: &Site, app_lines: &str) -> PathBuf {
    s.write("bad/README", "exits at once");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.bad]
runtime = "process"
source = "bad"
domains = ["bad.test"]
command = "sh -c 'echo booting; exit 3'"
{app_lines}
"#
    ))
}

/// A platform with one process app `web` on `web.test`, two instances of
/// `node server.js` with `server_js` written into the site's `app`,
/// `app_lines` added to it.
fn two_node_instances(s: &Site, server_js: &str, app_lines: &str) -> PathBuf {
    s.write("app/server.js", server_js);
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.web]
runtime = "process"
source = "app"
domains = ["web.test"]
command = "node server.js"
instances = 2
{app_lines}
"#
    ))
}

/// `restart` sets what makes a crash loop: here two failures within five
/// minutes, with a 10 ms backoff, where the defaults would allow five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_sets_the_backoff_and_what_makes_a_crash_loop() {
    let s = Site::new();
    let config = crash_looping(
        &s,
        "restart = { backoff = \"10ms\", max_backoff = \"20ms\", crash_loop = { restarts = 2, within = \"5m\" } }",
    );
    let b = serve(&config);
    let auth = format!("Bearer {TOKEN}");
    let logs = || async {
        let r = send(
            b.addr,
            request(
                "GET",
                "/__bext/api/platform/apps/bad/logs",
                &[("host", "bad.test"), ("authorization", &auth)],
                "",
            ),
        )
        .await;
        r.json()
    };
    let status = eventually(Duration::from_secs(20), || async {
        let l = logs().await;
        (l["state"] == "crash-loop").then_some(l)
    })
    .await;
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("crash loop: failed 2 times within 300s"), "{reason}");
    assert_eq!(status["instances"][0]["starts"], 2, "{status:#}");
    assert!(b.log().contains("restarting in 10ms"), "{}", b.log());
    assert_eq!(get(b.addr, "bad.test", "/").await.status, 503);
}

/// A crash-looped instance rests for `crash_pause` (the app's
/// `Retry-After` meanwhile), then is tried again: a bug a client can
/// trigger does not keep the app down until an operator acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looped_instance_is_tried_again_after_its_pause() {
    let s = Site::new();
    let config = crash_looping(&s, "crash_pause = \"3s\"");
    let b = serve(&config);
    eventually(Duration::from_secs(20), || async {
        (b.log().matches("crash loop").count() == 1).then_some(())
    })
    .await;
    let r = get(b.addr, "bad.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(b.log().matches("[bad/0] booting").count(), 5, "{}", b.log());
    // After the pause, five more tries and a second rest, with no reload.
    eventually(Duration::from_secs(20), || async {
        (b.log().matches("[bad/0] booting").count() == 10 && b.log().matches("crash loop").count() == 2).then_some(())
    })
    .await;
}

/// The logs are on the admin surface: not on a tenant's host whatever the
/// token, nor without the token on `admin_listen`; other spellings of the
/// path are not a way around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_are_only_on_the_admin_surface_and_only_with_the_token() {
    let s = Site::new();
    s.write("app/x", "");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_hosts = ["admin.test"]

[apps.web]
runtime = "process"
source = "app"
command = "sh -c 'echo secret-output; exec sleep 300'"
ready = { timeout = "1s" }
domains = ["web.test"]
"#,
    );
    let b = serve(&config);
    let auth = format!("Bearer {TOKEN}");
    let ask = |host: &'static str, path: &'static str, token: bool| {
        let auth = auth.clone();
        async move {
            let mut headers = vec![("host", host)];
            if token {
                headers.push(("authorization", auth.as_str()));
            }
            send(b.addr, request("GET", path, &headers, "")).await
        }
    };
    let path = "/__bext/api/platform/apps/web/logs";
    let r = eventually(Duration::from_secs(20), || async {
        let r = ask("admin.test", path, true).await;
        r.text().contains("secret-output").then_some(r)
    })
    .await;
    assert_eq!(r.status, 200);
    for (host, path, token) in [
        ("web.test", path, true),
        ("WEB.test", path, true),
        ("web.test.", path, true),
        ("web.test", "/__bext/api/platform/apps/web/logs/", true),
        ("web.test", "/__bext/api/platform/apps/web%2Flogs", true),
        ("web.test", "/__bext/api/platform/apps/./web/logs", true),
        ("admin.test", "/__bext/api/platform/apps/web/logs", false),
        ("admin.test", "/__bext/api/platform/apps/web%2Flogs", true),
        ("admin.test", "/__bext/api/platform/apps/web/logs/", true),
    ] {
        let r = ask(host, path, token).await;
        assert!(
            [400, 401, 404].contains(&r.status),
            "{host} {path} {token}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("secret-output"), "{host} {path}");
    }
    // On admin_listen, with and without the /__bext prefix, the token is
    // still asked for.
    let admin = b.admin.unwrap();
    for path in [path, "/api/platform/apps/web/logs"] {
        let r = send(admin, request("GET", path, &[("host", "x")], "")).await;
        assert_eq!(r.status, 401, "{path}");
        let r = send(
            admin,
            request("GET", path, &[("host", "x"), ("authorization", &auth)], ""),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains("secret-output"));
    }
    // A bad `lines` is a 400, not a panic.
    let r = send(
        admin,
        request(
            "GET",
            "/api/platform/apps/web/logs?lines=-1",
            &[("host", "x"), ("authorization", &auth)],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ignoring_sigterm_is_killed_after_stop_timeout_with_its_children() {
    let s = Site::new();
    s.write(
        "stubborn/server.js",
        r#"
const http = require("node:http");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
const child = spawn("sleep", ["300"], { stdio: "ignore" });
fs.writeFileSync("pids", `${process.pid} ${child.pid}`);
http.createServer((req, res) => res.end("stubborn\n")).listen(Number(process.env.PORT), "127.0.0.1");
"#,
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.stubborn]
runtime = "process"
source = "stubborn"
domains = ["stubborn.test"]
command = "node server.js"
stop_timeout = "1s"
"#,
    );
    let mut b = serve(&config);
    eventually(Duration::from_secs(20), || async {
        (get(b.addr, "stubborn.test", "/").await.status == 200).then_some(())
    })
    .await;
    let pids: Vec<u64> = std::fs::read_to_string(s.path("stubborn/pids"))
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| !gone(*p)));
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "bext did not exit");
    for pid in &pids {
        assert!(gone(*pid), "{pid} outlived bext: {}", b.log());
    }
    // The log's reader may trail bext's exit.
    let log = b.log_once_it_says("SIGKILL after stop_timeout");
    assert!(log.contains("[stubborn/0] ignoring SIGTERM"), "{log}");
    assert!(log.contains("SIGKILL after stop_timeout"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bext_run_starts_a_package_json_start_script_or_a_procfile() {
    let s = Site::new();
    let dir = copy_example(&s, "apps/process-node", "app");
    let b = Bext::start(&["run", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let r = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "localhost", "/from-run").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.json()["path"], "/from-run");
    assert!(b.log().contains("package.json `start` script"), "{}", b.log());
    // bext killed outright (SIGKILL, no stop): the kernel kills the
    // instance too, which is the server itself, not a shell above it.
    let pid = r.json()["pid"].as_u64().unwrap();
    drop(b);
    eventually(Duration::from_secs(10), || async { gone(pid).then_some(()) }).await;

    // A Procfile's `web` process, run by sh (so `$PORT` is the shell's).
    s.write(
        "py/Procfile",
        "worker: sleep 1000\nweb: python3 -m http.server $PORT --bind 127.0.0.1\n",
    );
    s.write("py/hello.txt", "from the Procfile\n");
    let b = Bext::start(&["run", s.path("py").to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let r = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "localhost", "/hello.txt").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.text(), "from the Procfile\n");
    assert!(b.log().contains("from its Procfile"), "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_that_never_gets_ready_leaves_the_old_one_serving() {
    let s = Site::new();
    let lines = "command = \"node server.js\"\nready = { path = \"/health\", timeout = \"5s\" }";
    let config = node_platform(&s, lines);
    let b = serve(&config);
    let old = first_answer(&b).await["pid"].as_u64().unwrap();
    // The next version listens nowhere: the reload waits for it, gives up
    // and keeps the running one.
    s.write(
        "never/server.js",
        "require('fs').writeFileSync('pid', String(process.pid)); console.log('not listening'); setInterval(() => {}, 1000);\n",
    );
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("source = \"web\"", "source = \"never\""),
    )
    .unwrap();
    b.signal("HUP");
    eventually(Duration::from_secs(20), || async {
        b.log().contains("did not get ready").then_some(())
    })
    .await;
    for _ in 0..3 {
        let r = get(b.addr, "web.test", "/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["pid"].as_u64(), Some(old));
    }
    // The failed version's instance was started, and is stopped, not left
    // behind.
    assert!(b.log().contains("[web/0] not listening"), "{}", b.log());
    // Read once written whole (the file exists, empty, a moment first).
    let never: u64 = eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(s.path("never/pid")).ok()?.trim().parse().ok()
    })
    .await;
    eventually(Duration::from_secs(10), || async { gone(never).then_some(()) }).await;
    assert_eq!(logs(&b, "web").await["state"], "running");
    // A version that gets ready replaces it once ready; the old one stops.
    s.write("v2/VERSION", "2");
    copy_example(&s, "apps/process-node", "v2");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("source = \"never\"", "source = \"v2\""),
    )
    .unwrap();
    b.signal("HUP");
    let new = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "web.test", "/").await;
        (r.status == 200 && r.json()["version"] == "2").then(|| r.json()["pid"].as_u64().unwrap())
    })
    .await;
    assert_ne!(new, old);
    eventually(Duration::from_secs(20), || async { gone(old).then_some(()) }).await;
}

#[test]
fn check_names_the_file_line_and_field_of_each_process_mistake_and_starts_nothing() {
    let s = Site::new();
    s.write("app/server.js", "require('fs').writeFileSync('started', 'yes');\n");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.nocommand]
runtime = "process"
source = "app"

[apps.many]
runtime = "process"
source = "app"
command = "node server.js"
instances = 0
ready = { path = "health", timeout = "0s" }
stop_timeout = "0s"
env = { PORT = "80" }
hash = "client"
max_connections = 0
limits = { memory = "1MiB", cpu = 0 }
idle_stop = "0s"
restart = { backoff = "0s", crash_loop = { restarts = 0 } }

[apps.nosource]
runtime = "process"
command = ["node", "server.js"]

[apps.quote]
runtime = "process"
source = "app"
command = "node 'server.js"

[apps.static]
source = "app"
command = "node server.js"
listen = "socket"
limits = { memory = "64MiB" }
idle_stop = "15m"

[apps.good]
runtime = "process"
source = "app"
command = "node server.js"
"#,
    );
    let out = bext_output(&["check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "platform.toml:5:1: apps.nocommand.command: a process app needs `command`",
        "platform.toml:13:13: apps.many.instances: must be from 1 to 64",
        "apps.many.ready.path: `health` is not a request path",
        "apps.many.ready.timeout: must be longer than 0",
        "apps.many.stop_timeout: must be longer than 0",
        "apps.many.env.PORT: set by bext for each instance",
        "apps.nosource.source: a process app needs `source`",
        "apps.quote.command: `node 'server.js`: a ' is not closed",
        "apps.static.command: only a process app",
        "apps.static.listen: only a process app's instances listen",
        "apps.many.hash: `hash` goes with `balance = \"consistent_hash\"`",
        "apps.many.max_connections: must be at least 1",
        "apps.many.limits.memory: must be at least 8MiB",
        "apps.many.limits.cpu: a number of cores above 0",
        "apps.many.idle_stop: must be longer than 0",
        "apps.many.restart.backoff: must be longer than 0",
        "apps.many.restart.crash_loop.restarts: must be from 1 to 100",
        "apps.static.limits: only a process app's instances have it",
        "apps.static.idle_stop: only a process app's instances have it",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    assert!(!err.contains("apps.good"), "{err}");
    assert!(!s.path("app/started").exists(), "bext check started a process");
}

/// Runs `bext ARGS` with the admin token; its exit status and output.
fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(args)
        .env("BEXT_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_switch_once_the_new_instances_are_ready_and_a_version_that_never_is_is_undone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let s = Site::new();
    let lines = "command = \"node server.js\"\ninstances = 2\nready = { path = \"/health\", timeout = \"5s\" }";
    let config = node_platform(&s, lines);
    std::fs::write(s.path("web/VERSION"), "1").unwrap();
    let b = serve(&config);
    assert_eq!(first_answer(&b).await["version"], "1");
    eventually(Duration::from_secs(20), || async {
        (logs(&b, "web").await["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ready"] == true))
        .then_some(())
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, served, failed, addr) = (stop.clone(), served.clone(), failed.clone(), b.addr);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = get(addr, "web.test", "/").await;
                    let counter = if r.status == 200 { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    copy_example(&s, "apps/process-node", "v2");
    std::fs::write(s.path("v2/VERSION"), "2").unwrap();
    let server = format!("http://{}", b.addr);
    let (c, v2) = (config.to_str().unwrap(), s.path("v2"));
    let out = cli(&[
        "deploy",
        v2.to_str().unwrap(),
        "--app",
        "web",
        "--config",
        c,
        "--server",
        &server,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Served at once by the new version, which was ready before it got
    // traffic.
    let r = get(b.addr, "web.test", "/").await;
    assert_eq!(r.json()["version"], "2");

    // A version that never answers: the deploy fails, v2 keeps serving,
    // and the registry says so.
    s.write(
        "v3/server.js",
        "console.log('never listening'); setInterval(() => {}, 1000);\n",
    );
    let v3 = s.path("v3");
    let out = cli(&[
        "deploy",
        v3.to_str().unwrap(),
        "--app",
        "web",
        "--config",
        c,
        "--server",
        &server,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not get ready"), "{err}");
    assert!(
        err.contains(
            "was stored but could not be served, so it was rolled back and the previous version keeps serving"
        ),
        "{err}"
    );
    assert!(!err.contains("recorded, but"), "{err}");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} served",
        served.load(Ordering::Relaxed)
    );
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(get(b.addr, "web.test", "/").await.json()["version"], "2");
    let shown = cli(&["apps", "show", "web", "--config", c, "--server", &server, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    // The registry names deploys v1, v2...: the first (our "2") is current
    // again, the refused one rolled back from.
    assert_eq!(shown["app"]["current"]["version"], "v1", "{shown:#}");
    assert!(shown.to_string().contains("rolled back from v2 to v1"), "{shown:#}");
    assert!(b.log().contains("[web/0] never listening"), "{}", b.log());

    // A deploy that creates an app never runs its bundle's start command:
    // the app is a static site, its package.json a file.
    let marker = s.path("ran");
    let package = format!(r#"{{"scripts":{{"start":"touch {}"}}}}"#, marker.display());
    s.write("fresh/package.json", &package);
    s.write("fresh/index.html", "static fresh");
    let fresh = s.path("fresh");
    let out = cli(&[
        "deploy",
        fresh.to_str().unwrap(),
        "--app",
        "fresh",
        "--config",
        c,
        "--server",
        &server,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(b.addr, "localhost", "/fresh/").await.text(), "static fresh");
    assert_eq!(get(b.addr, "localhost", "/fresh/package.json").await.text(), package);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "a bundle's start script ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_failing_its_check_is_out_of_rotation_until_it_passes_again() {
    let s = Site::new();
    let config = two_node_instances(
        &s,
        r#"
const http = require("node:http");
const fs = require("node:fs");
const me = process.env.BEXT_INSTANCE;
http.createServer((req, res) => {
  if (req.url === "/health" && fs.existsSync(`sick-${me}`)) {
    res.writeHead(500);
    return res.end();
  }
  res.end(me);
}).listen(Number(process.env.PORT), "127.0.0.1");
"#,
        r#"ready = { path = "/health", timeout = "10s" }"#,
    );
    let b = serve(&config);
    let answers = || async {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let r = get(b.addr, "web.test", "/").await;
            assert_eq!(r.status, 200);
            seen.insert(r.text());
        }
        seen
    };
    let both: BTreeSet<String> = ["0".to_owned(), "1".to_owned()].into();
    eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        (l["instances"].as_array().unwrap().iter().all(|i| i["ready"] == true)).then_some(())
    })
    .await;
    assert_eq!(answers().await, both);
    s.write("app/sick-0", "");
    let out = eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        (l["instances"][0]["ready"] == false).then_some(l)
    })
    .await;
    assert_eq!(out["state"], "running");
    assert_eq!(out["instances"][0]["starts"], 1, "taken out, not restarted");
    assert_eq!(
        count(
            &out["lines"],
            "[web/0] bext: failed its check 3 times in a row: out of rotation (GET /health answered 500 (the check wants a status below 500))"
        ),
        1,
        "{out:#}"
    );
    assert_eq!(
        out["instances"][0]["reason"], "ready check: GET /health answered 500 (the check wants a status below 500)",
        "{out:#}"
    );
    assert_eq!(answers().await, ["1".to_owned()].into());
    std::fs::remove_file(s.path("app/sick-0")).unwrap();
    eventually(Duration::from_secs(20), || async {
        (answers().await == both).then_some(())
    })
    .await;
}

/// The pids of the instances of `dir` that hold a `/hang` request (their
/// `hung-PID` marker files).
fn hung(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("hung-")?.parse().ok())
        .collect()
}

fn kill(pid: u64) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_whose_instance_dies_under_it_goes_to_the_other_and_a_post_is_not_replayed() {
    let s = Site::new();
    // `/hang` is held (never answered) by the first instance to get it
    // while no other holds one; every POST is written down.
    let config = two_node_instances(
        &s,
        r#"
const http = require("node:http");
const fs = require("node:fs");
http.createServer((req, res) => {
  if (req.method === "POST") fs.appendFileSync("posts.log", `${process.pid}\n`);
  if (req.url === "/hang" && !fs.readdirSync(".").some((f) => f.startsWith("hung-"))) {
    fs.writeFileSync(`hung-${process.pid}`, "");
    return;
  }
  req.resume();
  req.on("end", () => res.end(String(process.pid)));
}).listen(Number(process.env.PORT), "127.0.0.1");
"#,
        "",
    );
    let b = serve(&config);
    let all_ready_after = |starts: u64| {
        let b = &b;
        move || async move {
            let l = logs(b, "web").await;
            let instances = l["instances"].as_array().unwrap().clone();
            let total: u64 = instances.iter().map(|i| i["starts"].as_u64().unwrap()).sum();
            (total == starts && instances.iter().all(|i| i["ready"] == true)).then_some(())
        }
    };
    eventually(Duration::from_secs(20), all_ready_after(2)).await;
    let dir = s.path("app");
    let addr = b.addr;

    // A loop of GETs runs through the whole kill and restart.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = get(addr, "web.test", "/").await;
                if r.status != 200 {
                    failed.push((r.status, r.text()));
                }
                sent += 1;
            }
            (sent, failed)
        }
    });
    let held = tokio::spawn(async move { get(addr, "web.test", "/hang").await });
    let victim = eventually(Duration::from_secs(20), || async { hung(&dir).pop() }).await;
    kill(victim);
    let answer = held.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_ne!(answer.text(), victim.to_string(), "answered by the other instance");
    eventually(Duration::from_secs(20), all_ready_after(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = looping.await.unwrap();
    assert!(sent > 0);
    assert!(failed.is_empty(), "{failed:?} of {sent}");

    // A POST whose instance dies under it is answered 502, not sent again.
    std::fs::remove_file(dir.join(format!("hung-{victim}"))).unwrap();
    let held = tokio::spawn(async move { send(addr, request("POST", "/hang", &[("host", "web.test")], "once")).await });
    let victim = eventually(Duration::from_secs(20), || async { hung(&dir).pop() }).await;
    kill(victim);
    let answer = held.await.unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    let posts = std::fs::read_to_string(dir.join("posts.log")).unwrap();
    assert_eq!(
        posts.lines().collect::<Vec<_>>(),
        [victim.to_string()],
        "the POST reached one instance once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_listen_on_unix_sockets_in_a_private_directory_removed_at_stop() {
    use std::os::unix::fs::PermissionsExt;
    let s = Site::new();
    let config = two_node_instances(
        &s,
        r#"
const http = require("node:http");
http.createServer((req, res) => {
  res.end(JSON.stringify({ pid: process.pid, socket: process.env.BEXT_SOCKET, port: process.env.PORT ?? null, host: req.headers.host }));
}).listen(process.env.BEXT_SOCKET);
"#,
        r#"listen = "socket""#,
    );
    let mut b = serve(&config);
    let status = eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        (l["instances"].as_array().unwrap().iter().all(|i| i["ready"] == true)).then_some(l)
    })
    .await;
    let sockets: BTreeSet<String> = (status["instances"].as_array().unwrap().iter())
        .map(|i| {
            assert!(i["port"].is_null(), "{i}");
            i["socket"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sockets.len(), 2);
    let dir = Path::new(sockets.first().unwrap()).parent().unwrap().to_owned();
    assert!(sockets.iter().all(|p| Path::new(p).parent() == Some(&*dir)));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    // Requests reach both instances, over their sockets.
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let r = get(b.addr, "web.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        assert!(answer["port"].is_null(), "no PORT with a socket");
        assert_eq!(answer["host"], "localhost");
        seen.insert(answer["socket"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, sockets);
    // A killed instance comes back on the same path (its old socket file
    // removed before the restart).
    let victim = status["instances"][0]["pid"].as_u64().unwrap();
    kill(victim);
    eventually(Duration::from_secs(20), || async {
        let l = logs(&b, "web").await;
        (l["instances"][0]["starts"] == 2 && l["instances"][0]["ready"] == true).then_some(())
    })
    .await;
    let mut again = BTreeSet::new();
    for _ in 0..6 {
        let r = get(b.addr, "web.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        again.insert(r.json()["socket"].as_str().unwrap().to_owned());
    }
    assert_eq!(again, sockets);
    // bext's exit stops the instances and removes the directory.
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "bext did not exit");
    assert!(!dir.exists(), "{} outlived bext", dir.display());
}

/// A Node HTTP/2 server (h2c) that allows extended CONNECT (RFC 8441):
/// with `http2 = true`, a WebSocket reaches it as an extended CONNECT,
/// from an HTTP/2 client and from an HTTP/1.1 upgrade alike, and bytes
/// go both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_reaches_an_http2_process_app_as_an_extended_connect() {
    let s = Site::new();
    s.write(
        "h2/server.js",
        r#"const http2 = require('node:http2');
const server = http2.createServer({ settings: { enableConnectProtocol: true } });
server.on('stream', (stream, headers) => {
  if (headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket') {
    stream.respond({ ':status': 200, 'x-saw': `${headers[':path']} ${headers[':protocol']}` });
    stream.pipe(stream);
  } else {
    stream.respond({ ':status': 200 });
    stream.end('plain h2');
  }
});
server.listen(Number(process.env.PORT), '127.0.0.1');
"#,
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
default_app = "live"

[apps.live]
runtime = "process"
source = "h2"
command = "node server.js"
http2 = true
"#,
    );
    let b = serve(&config);
    eventually(Duration::from_secs(20), || async {
        let r = send_h2(b.addr, request("GET", "http://x/", &[], "")).await;
        (r.text() == "plain h2").then_some(())
    })
    .await;
    let (mut sender, _conn) = h2_client(b.addr).await;
    let first = sender.send_request(request("GET", "http://x/", &[], "")).await.unwrap();
    assert_eq!(collect(first).await.text(), "plain h2");
    let res = sender
        .send_request(websocket_connect("http://x/chat", "websocket"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-saw"], "/chat websocket");
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(res).await.unwrap());
    echoes_through(&mut io).await;
    // The same server, from an HTTP/1.1 client's upgrade.
    let (head, mut conn) = h1_websocket(b.addr, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    echoes_through(&mut conn).await;
}
