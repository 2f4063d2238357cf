//! Process apps' `limits` and `idle_stop`: an instance allocating past
//! its memory limit is refused (rlimits) or killed (cgroup v2), whichever
//! the app's log says applies here, while the same program without limits
//! allocates as much; an app without traffic for `idle_stop` stops its
//! instances (state `idle`), the next request starts them and waits, and
//! a start that does not get ready in time answers 503 with `Retry-After`.

use std::time::Duration;

use crate::process::{TOKEN, count, first_answer, gone, logs, node_platform, serve};
use crate::support::*;

/// A Python server allocating (and touching) `?mb=N` MiB per request.
const ALLOCATOR: &str = r#"
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        mb = int(self.path.split("mb=", 1)[1]) if "mb=" in self.path else 0
        block = bytearray(mb << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        body = f"allocated {mb}MiB\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_allocating_past_its_memory_limit_is_refused_or_killed_and_the_log_says_how() {
    let s = Site::new();
    s.write("alloc/server.py", ALLOCATOR);
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.lim]
runtime = "process"
source = "alloc"
domains = ["lim.test"]
command = "python3 server.py"
limits = { memory = "64MiB", cpu = 0.5 }
stop_timeout = "5s"

[apps.free]
runtime = "process"
source = "alloc"
domains = ["free.test"]
command = "python3 server.py"
stop_timeout = "5s"
"#,
    );
    let b = serve(&config);
    let small = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "lim.test", "/?mb=8").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(small.text(), "allocated 8MiB\n", "under its limit the app works");
    let free = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "free.test", "/?mb=200").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(
        free.text(),
        "allocated 200MiB\n",
        "without limits the same program allocates 200MiB"
    );
    let big = get(b.addr, "lim.test", "/?mb=200").await;
    assert_ne!(big.status, 200, "200MiB past a 64MiB limit: {}", big.text());
    let lines = logs(&b, "lim").await["lines"].clone();
    let note = lines
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("[lim] bext: limits (memory 64MiB, cpu 0.5) by "))
        .unwrap_or_else(|| panic!("no note of how limits apply: {lines:#}"))
        .to_owned();
    let evidence = if note.contains("by cgroup v2") {
        // The kernel killed it at memory.max, and bext says why it ended.
        "bext: exited (signal: 9 (SIGKILL)): killed by the kernel for passing its memory limit (67108864 bytes)"
    } else {
        assert!(
            note.contains("by rlimits: RLIMIT_DATA per process; CPU is not limited under rlimits"),
            "{note}"
        );
        // The allocation failed inside Python, which says so on stderr.
        "[lim/0] MemoryError"
    };
    eventually(Duration::from_secs(10), || async {
        let lines = logs(&b, "lim").await["lines"].clone();
        (count(&lines, evidence) > 0).then_some(())
    })
    .await;
    assert_eq!(
        count(&logs(&b, "free").await["lines"], "limits"),
        0,
        "an app without limits has no note"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_app_stops_its_instances_and_the_next_request_starts_them_and_waits() {
    let s = Site::new();
    let config = node_platform(
        &s,
        "command = \"node server.js\"\ninstances = 2\nready = { path = \"/health\", timeout = \"20s\" }\nidle_stop = \"1s\"\nstop_timeout = \"5s\"",
    );
    let b = serve(&config);
    let before = first_answer(&b).await["pid"].as_u64().unwrap();
    // `idle` from the moment the stops begin; done once no pid is left.
    let status = eventually(Duration::from_secs(20), || async {
        let status = logs(&b, "web").await;
        let stopped = (status["instances"].as_array().unwrap().iter()).all(|i| i["pid"].is_null());
        (status["state"] == "idle" && stopped).then_some(status)
    })
    .await;
    for instance in status["instances"].as_array().unwrap() {
        assert_eq!(instance["ready"], false, "{status:#}");
    }
    assert!(gone(before), "the instance that answered was stopped");
    let lines = &status["lines"];
    assert_eq!(
        count(lines, "[web] bext: no request for 1s: stopping the instances"),
        1,
        "{lines:#}"
    );
    assert_eq!(count(lines, "bext: stopped by SIGTERM"), 2, "graceful: {lines:#}");
    let health = send(
        b.addr,
        request(
            "GET",
            "/__bext/health",
            &[("host", "web.test"), ("authorization", &format!("Bearer {TOKEN}"))],
            "",
        ),
    )
    .await
    .json();
    let web = health["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["state"], "idle", "{health:#}");

    // One request, no retry: it starts the instances and waits for one.
    let woken = get(b.addr, "web.test", "/again").await;
    assert_eq!(woken.status, 200, "{}", woken.text());
    let after = woken.json()["pid"].as_u64().unwrap();
    assert_ne!(after, before, "a new process answered");
    let status = logs(&b, "web").await;
    assert_ne!(status["state"], "idle", "{status:#}");
    assert_eq!(
        count(&status["lines"], "[web] bext: a request came: starting the instances"),
        1
    );

    // bext's exit stops the woken instances gracefully too: a request on
    // a worker started them, but they run under bext's control runtime,
    // so the workers' end (before the apps stop) does not kill them.
    let mut b = b;
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(30)).is_some(), "bext exits");
    let log = b.whole_log(Duration::from_secs(5)).unwrap();
    assert_eq!(
        log.matches("stopped by SIGTERM").count(),
        4,
        "two idle stops, two at exit: {log}"
    );
    assert!(!log.contains("still stopping"), "nothing left to kill: {log}");
    assert!(gone(after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_app_that_does_not_get_ready_in_time_answers_503_with_retry_after() {
    let s = Site::new();
    // Serves on its first start only; started again, it never listens.
    s.write(
        "app/server.js",
        r#"
const fs = require("node:fs");
if (fs.existsSync("started")) {
  setInterval(() => {}, 1000);
} else {
  fs.writeFileSync("started", "yes");
  require("node:http").createServer((req, res) => res.end("first run\n")).listen(Number(process.env.PORT), "127.0.0.1");
}
"#,
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.web]
runtime = "process"
source = "app"
domains = ["web.test"]
command = "node server.js"
ready = { timeout = "2s" }
idle_stop = "1s"
stop_timeout = "2s"
"#,
    );
    let b = serve(&config);
    let first = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "web.test", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(first.text(), "first run\n");
    eventually(Duration::from_secs(20), || async {
        (logs(&b, "web").await["state"] == "idle").then_some(())
    })
    .await;
    let r = get(b.addr, "web.test", "/").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.text(), "app starting\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_still_streaming_keeps_an_idle_stop_app_awake() {
    let s = Site::new();
    // Streams 8 lines 400 ms apart (longer than idle_stop), and ends at
    // once on SIGTERM: a stop under the stream would cut it.
    s.write(
        "app/server.js",
        r#"
process.on("SIGTERM", () => process.exit(0));
require("node:http").createServer((req, res) => {
  if (req.url !== "/stream") return res.end("ok\n");
  let n = 0;
  const timer = setInterval(() => {
    res.write(`line ${n}\n`);
    if (++n === 8) { clearInterval(timer); res.end(); }
  }, 400);
}).listen(Number(process.env.PORT), "127.0.0.1");
"#,
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.web]
runtime = "process"
source = "app"
domains = ["web.test"]
command = "node server.js"
idle_stop = "1s"
"#,
    );
    let b = serve(&config);
    eventually(Duration::from_secs(20), || async {
        (get(b.addr, "web.test", "/").await.status == 200).then_some(())
    })
    .await;
    let streamed = get(b.addr, "web.test", "/stream").await;
    let want: String = (0..8).map(|n| format!("line {n}\n")).collect();
    assert_eq!(streamed.text(), want, "the whole stream, uncut");
    // Once it is done, the app goes idle as usual.
    eventually(Duration::from_secs(20), || async {
        (logs(&b, "web").await["state"] == "idle").then_some(())
    })
    .await;
}
