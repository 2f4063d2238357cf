//! Access logs, traces and OTLP export through the real server: JSON and
//! combined lines with the request's fields, logrotate's rename and
//! SIGUSR1, `traceparent` continued or replaced (hostile spellings
//! included) on its way to an upstream, and spans posted to a collector
//! started here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A proxy app `shop` on `shop.test` to `upstream` with the WAF in detect
/// mode, and `platform` added to `[platform]`.
fn shop(s: &Site, upstream: std::net::SocketAddr, platform: &str) -> std::path::PathBuf {
    s.write(
        "manifests/waf.yaml",
        "name: waf\nenabled: true\nconfig:\n  mode: detect\n",
    );
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"
{platform}

[apps.shop]
runtime = "proxy"
upstream = "http://{upstream}"
domains = ["shop.test"]
"#
    ))
}

/// The lines of `path` once it has at least `n`.
async fn lines(path: &Path, n: usize) -> Vec<String> {
    eventually(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= n).then_some(lines)
    })
    .await
}

#[tokio::test]
async fn json_lines_carry_app_trace_upstream_time_and_waf_verdict() {
    let echo = Echo::start().await;
    let s = Site::new();
    let log = s.path("access.json");
    let cfg = shop(
        &s,
        echo.addr,
        &format!("access_log = {{ format = \"json\", path = \"{}\" }}", log.display()),
    );
    let b = Bext::serve(&cfg);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let r = send(
        b.addr,
        request(
            "GET",
            "/cart?token=secret",
            &[
                ("host", "shop.test"),
                ("traceparent", &traceparent),
                ("user-agent", "probe/1"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let cart_bytes = r.body.len() as u64;
    // A request the WAF notes (detect mode: served all the same).
    let r = send(
        b.addr,
        request(
            "GET",
            "/search?q=1%27%20OR%20%271%27%3D%271",
            &[("host", "shop.test")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let lines = lines(&log, 2).await;
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["app"], "shop");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/cart", "the query is never logged");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"].as_u64(), Some(cart_bytes));
    assert_eq!(first["trace_id"], TRACE);
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["host"], "shop.test");
    assert_eq!(first["user_agent"], "probe/1");
    assert!(first["upstream_ms"].as_f64().unwrap() <= first["duration_ms"].as_f64().unwrap());
    assert_eq!(first["request_id"].as_str().unwrap().len(), 16);
    assert!(first.get("waf").is_none(), "{first}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["waf"], "detect", "{second}");
    assert_ne!(second["trace_id"], TRACE, "a new trace");
    assert_eq!(second["trace_id"].as_str().unwrap().len(), 32);
    // Nothing of it went to the error log.
    assert!(!b.log().contains("bext::access"));
}

/// A JSON line's `cache` is bext's cache's decision (`MISS`, then `HIT`,
/// whatever `x-cache` the upstream wrote under it), and an app without the
/// cache has none, even when its upstream sends an `x-cache` of its own.
#[tokio::test]
async fn a_json_line_s_cache_is_bext_s_cache_not_an_upstream_s_header() {
    let echo = Echo::start().await;
    let s = Site::new();
    let log = s.path("access.json");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = {{ format = "json", path = "{}" }}

[apps.cached]
runtime = "proxy"
upstream = "http://{up}"
domains = ["cached.test"]
cache = {{ default_ttl = "60s" }}

[apps.plain]
runtime = "proxy"
upstream = "http://{up}"
domains = ["plain.test"]
"#,
        log.display(),
        up = echo.addr
    ));
    let b = Bext::serve(&cfg);
    // The header each answer carries, and the line's `cache`.
    let cases: [(&str, &str, Option<&str>, Option<&str>); 4] = [
        ("cached.test", "x-cache=HIT", Some("MISS"), Some("MISS")),
        ("cached.test", "x-cache=HIT", Some("HIT"), Some("HIT")),
        ("plain.test", "x-cache=HIT", Some("HIT"), None),
        ("plain.test", "x-cache=bogus", Some("bogus"), None),
    ];
    for (host, set, sent, _) in &cases {
        let r = send(
            b.addr,
            request("GET", "/page", &[("host", host), ("x-echo-set", set)], ""),
        )
        .await;
        assert_eq!((r.status, r.header("x-cache")), (200, *sent), "{host} {set}");
    }
    let lines = lines(&log, cases.len()).await;
    for ((host, set, _, cache), line) in cases.iter().zip(&lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["host"], *host, "{line}");
        assert_eq!(v["cache"].as_str(), *cache, "{host} {set}: {line}");
    }
}

/// A static file's JSON line carries the client's trace when nothing read
/// it (no upstream): whatever the header name's case, and also for heads
/// refused before (a second Host) and by (a second Authorization) the
/// kernel's checks; never for two `traceparent`s, one the client named in
/// `Connection`, or none.
#[tokio::test]
async fn a_static_file_s_json_line_carries_the_client_s_trace_however_it_was_sent() {
    let s = Site::new();
    s.write("www/index.html", "hello");
    let log = s.path("access.json");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = {{ format = "json", path = "{}" }}

[apps.site]
source = "www"
domains = ["site.test"]
"#,
        log.display()
    ));
    let b = Bext::serve(&cfg);
    let good = format!("00-{TRACE}-{PARENT}-01");
    let other = format!("00-{}-{PARENT}-01", "1".repeat(32));
    let host = ("host", "site.test");
    // The headers sent, the status, and whether the line has the client's trace.
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, bool);
    let cases: [Case<'_>; 7] = [
        (&[host, ("traceparent", &good)], 200, true),
        (&[host, ("TraceParent", &good)], 200, true),
        (&[host], 200, false),
        (&[host, ("traceparent", &good), ("traceparent", &other)], 200, false),
        // Named hop-by-hop: removed before anything reads it, as for an upstream.
        (
            &[host, ("connection", "traceparent"), ("traceparent", &good)],
            200,
            false,
        ),
        (&[host, ("host", "b.test"), ("traceparent", &good)], 400, true),
        (
            &[
                host,
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b"),
                ("TRACEPARENT", &good),
            ],
            400,
            true,
        ),
    ];
    for (headers, status, _) in &cases {
        let r = send(b.addr, request("GET", "/index.html", headers, "")).await;
        assert_eq!(r.status, *status, "{headers:?}");
    }
    let lines = lines(&log, cases.len()).await;
    for ((headers, status, client_s), line) in cases.iter().zip(&lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["status"], *status, "{line}");
        let trace_id = v["trace_id"].as_str().unwrap();
        assert_eq!(trace_id.len(), 32, "{line}");
        assert_eq!(trace_id == TRACE, *client_s, "{headers:?}: {line}");
    }
}

#[tokio::test]
async fn combined_lines_follow_a_rotated_file_after_sigusr1() {
    let s = Site::new();
    s.write("www/index.html", "hello");
    let log = s.path("access.log");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = {{ format = "combined", path = "{}", buffer = "64KiB" }}

[apps.site]
source = "www"
domains = ["site.test"]
"#,
        log.display()
    ));
    let b = Bext::serve(&cfg);
    let r = send(
        b.addr,
        request(
            "GET",
            "/index.html?a=1",
            &[
                ("host", "site.test"),
                ("referer", "https://r.test/"),
                ("user-agent", "say \"hi\""),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let first = lines(&log, 1).await;
    let line = &first[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /index.html?a=1 HTTP/1.1\" 200 5 \"https://r.test/\" \"say \\x22hi\\x22\""),
        "{line}"
    );
    // logrotate: rename, then SIGUSR1.
    let rotated = s.path("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    b.signal("USR1");
    eventually(Duration::from_secs(10), || async { log.exists().then_some(()) }).await;
    get(b.addr, "site.test", "/after-rotation").await;
    let after = lines(&log, 1).await;
    assert!(after[0].contains("\"GET /after-rotation HTTP/1.1\" 404"), "{after:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1, "nothing more went to the rotated file: {old}");
}

/// Requests whose path and `User-Agent` reach the log's limits (1,024 and
/// 256 bytes) with a character across the limit, with bytes that are not
/// UTF-8 (written as U+FFFD in JSON, `\xHH` in combined; a path of them
/// is refused before the log) and with bytes both formats escape: each is
/// sent on its own connection.
fn long_heads() -> Vec<Vec<u8>> {
    let straddling = (
        format!("/{}é{}", "a".repeat(1022), "b".repeat(10)).into_bytes(),
        format!("{}év", "u".repeat(255)).into_bytes(),
    );
    [
        straddling,
        (
            format!("/r/{}", "€".repeat(700)).into_bytes(),
            "\"".repeat(300).into_bytes(),
        ),
        (
            format!("/q/{}", "é".repeat(600)).into_bytes(),
            format!("{}t", "t\t".repeat(150)).into_bytes(),
        ),
        (format!("/{}", "c".repeat(3000)).into_bytes(), b"\xff".repeat(300)),
    ]
    .into_iter()
    .map(|(path, agent)| {
        let mut head = b"GET ".to_vec();
        head.extend(path);
        head.extend(b" HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\nUser-Agent: ");
        head.extend(agent);
        head.extend(b"\r\n\r\n");
        head
    })
    .collect()
}

/// The access log of a static site in `format`, after [`long_heads`].
async fn log_of_long_heads(format: &str) -> Vec<String> {
    let s = Site::new();
    s.write("www/index.html", "hello");
    let log = s.path("access.log");
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\naccess_log = {{ format = \"{format}\", path = \"{}\" }}\n\n\
         [apps.site]\nsource = \"www\"\ndomains = [\"site.test\"]\n",
        log.display()
    ));
    let b = Bext::serve(&cfg);
    let heads = long_heads();
    for head in &heads {
        let answer = raw_async(b.addr, head, Duration::from_secs(5)).await;
        assert!(status_of(&answer) > 0, "an answer: {answer}");
    }
    lines(&log, heads.len()).await
}

/// The text of the quoted JSON string after `"name":"`, as written
/// (escapes included).
fn written_json_field<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key).unwrap_or_else(|| panic!("no {name}: {line}")) + key.len();
    let mut escaped = false;
    for (i, c) in line[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return &line[start..start + i],
            _ => {}
        }
    }
    panic!("{name} not closed: {line}")
}

/// The attack pass saw a path of 1,026 bytes under the 1 KiB limit and a
/// `User-Agent` of 258 under 256: the raw bytes were cut mid-character
/// (U+FFFD added) and escapes grew the cut text. As written, a field is
/// never longer than its limit, and is cut between characters.
#[tokio::test]
async fn json_fields_stay_within_their_limits_as_written() {
    let lines = log_of_long_heads("json").await;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for (field, limit) in [("path", 1024), ("user_agent", 256)] {
            let written = written_json_field(line, field);
            assert!(
                written.len() <= limit,
                "{field}: {} bytes written: {line}",
                written.len()
            );
            assert!(v[field].as_str().unwrap().len() <= limit, "{line}");
        }
    }
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        first["path"].as_str().unwrap(),
        format!("/{}", "a".repeat(1022)),
        "cut before the character that crosses the limit, no U+FFFD"
    );
    assert_eq!(first["user_agent"].as_str().unwrap(), "u".repeat(255));
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["user_agent"].as_str().unwrap(), "\"".repeat(128), "{}", lines[1]);
}

#[tokio::test]
async fn combined_fields_stay_within_their_limits_as_written() {
    let lines = log_of_long_heads("combined").await;
    for line in &lines {
        // `"GET <target> HTTP/1.1" 404 <n> "-" "<user agent>"`: escaped,
        // neither holds a space or a quote.
        let target = line
            .split_once("\"GET ")
            .and_then(|(_, rest)| rest.split_once(" HTTP/1.1\""))
            .map(|(target, _)| target)
            .unwrap_or_else(|| panic!("no target: {line}"));
        let agent = line
            .rsplit_once(" \"")
            .and_then(|(_, rest)| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no user agent: {line}"));
        assert!(target.len() <= 1024, "target: {} bytes written: {line}", target.len());
        assert!(agent.len() <= 256, "user agent: {} bytes written: {line}", agent.len());
    }
    assert!(
        lines[0].contains(&format!("\"GET /{} HTTP/1.1\"", "a".repeat(1022))),
        "cut before the character that crosses the limit: {}",
        lines[0]
    );
    assert!(lines[0].ends_with(&format!("\"{}\"", "u".repeat(255))), "{}", lines[0]);
    assert!(
        lines[1].ends_with(&format!("\"{}\"", "\\x22".repeat(64))),
        "{}",
        lines[1]
    );
}

#[tokio::test]
async fn a_bad_access_log_or_otel_setting_is_a_clear_error() {
    let s = Site::new();
    for (setting, field, reason) in [
        (
            "access_log = { format = \"xml\" }",
            "platform.access_log",
            "unknown variant `xml`",
        ),
        ("access_log = { buffer = \"100\" }", "platform.access_log", "too small"),
        ("access_log = 3", "platform.access_log", "`true`, `false` or a table"),
        ("log = \"bext=loud\"", "platform.log", "not a log filter"),
        (
            "[platform.otel]\nendpoint = \"ftp://x\"",
            "platform.otel",
            "an http:// or https:// URL",
        ),
        (
            "[platform.otel]\nendpoint = \"https://otel.test\"\nheaders = { \"bad name\" = \"x\" }",
            "platform.otel",
            "`bad name` is not a header name",
        ),
        (
            "[platform.otel]\nendpoint = \"https://otel.test\"\nheaders = { host = \"evil.test\" }",
            "platform.otel",
            "`host` is set by bext",
        ),
        (
            "[platform.otel]\nendpoint = \"http://127.0.0.1:4318\"\nsample = 2.0",
            "platform.otel",
            "not between 0 and 1",
        ),
    ] {
        let cfg = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n{setting}\n"));
        let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting}");
        assert!(err.contains(field) && err.contains(reason), "{setting}: {err}");
    }
    // A file that cannot be opened: serve refuses to start, naming it.
    let cfg =
        s.platform("[platform]\nlisten = \"127.0.0.1:0\"\naccess_log = { path = \"/nonexistent/dir/access.log\" }\n");
    let out = bext_output(&["serve", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("platform.access_log") && err.contains("/nonexistent/dir/access.log"),
        "{err}"
    );
}

/// The `traceparent` the upstream got for a request sent with `values`.
async fn traceparent_upstream(addr: std::net::SocketAddr, values: &[&str]) -> (String, Option<String>) {
    let mut headers = vec![("host", "shop.test"), ("tracestate", "vendor=1")];
    headers.extend(values.iter().map(|v| ("traceparent", *v)));
    let r = send(addr, request("GET", "/", &headers, "")).await;
    assert_eq!(r.status, 200);
    let got = r.json();
    let tp = got["headers"]["traceparent"]
        .as_str()
        .expect("a traceparent")
        .to_owned();
    (tp, got["headers"]["tracestate"].as_str().map(str::to_owned))
}

fn well_formed(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2)
}

#[tokio::test]
async fn traceparent_is_continued_or_replaced_never_passed_on_as_sent() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&shop(&s, echo.addr, "access_log = false"));
    let good = format!("00-{TRACE}-{PARENT}-01");
    let (tp, state) = traceparent_upstream(b.addr, &[&good]).await;
    assert!(well_formed(&tp), "{tp}");
    assert!(tp.starts_with(&format!("00-{TRACE}-")) && tp.ends_with("-01"), "{tp}");
    assert!(!tp.contains(PARENT), "bext's span is the upstream's parent: {tp}");
    assert_eq!(
        state.as_deref(),
        Some("vendor=1"),
        "tracestate goes with a valid traceparent"
    );

    let (tp, _) = traceparent_upstream(b.addr, &[]).await;
    assert!(well_formed(&tp), "started: {tp}");

    let upper = good.to_uppercase();
    let ff = format!("ff-{TRACE}-{PARENT}-01");
    let longer = format!("{good}-00");
    let spaced = format!("00-{TRACE} -{PARENT}-01");
    let zero = format!("00-{}-{PARENT}-01", "0".repeat(32));
    let hostile: Vec<Vec<&str>> = vec![
        vec![&upper],
        vec![&ff],
        vec![&longer],
        vec![&spaced],
        vec![&zero],
        vec![&good, &good],
        vec!["00-%34bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
        vec!["garbage"],
    ];
    for values in hostile {
        let (tp, state) = traceparent_upstream(b.addr, &values).await;
        assert!(well_formed(&tp), "{values:?} → {tp}");
        assert!(!values.contains(&tp.as_str()), "passed on as sent: {tp}");
        assert!(!tp.contains(TRACE), "{values:?}: the hostile trace was continued: {tp}");
        assert_eq!(state, None, "{values:?}: tracestate of an invalid traceparent");
    }
}

/// A tiny OTLP/HTTP collector: keeps every JSON body posted to
/// `/v1/traces`, with the `authorization` header it came with.
struct Collector {
    addr: std::net::SocketAddr,
    posts: Posts,
    _task: tokio::task::JoinHandle<()>,
}

type Posts = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

impl Collector {
    /// Over plain HTTP.
    async fn start() -> Collector {
        Collector::start_with(None).await
    }

    /// Over https, with a certificate for `localhost` from a CA of its
    /// own; returns the CA's PEM too.
    async fn start_tls() -> (Collector, String) {
        let (tls, ca_pem) = private_ca_tls();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        (Collector::start_with(Some(acceptor)).await, ca_pem)
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let posts: Posts = Arc::default();
        let kept = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, tls) = (kept.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        // A client that does not trust the CA hangs up here.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                collect(stream, kept).await;
                            }
                        }
                        None => collect(stream, kept).await,
                    }
                });
            }
        });
        Collector {
            addr,
            posts,
            _task: task,
        }
    }

    /// The `authorization` of every post so far.
    fn authorizations(&self) -> Vec<Option<String>> {
        self.posts.lock().unwrap().iter().map(|(a, _)| a.clone()).collect()
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<serde_json::Value> {
        let posts = self.posts.lock().unwrap();
        let mut spans = Vec::new();
        for (_, p) in posts.iter() {
            for rs in p["resourceSpans"].as_array().unwrap() {
                assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
                }
            }
        }
        spans
    }
}

/// Serves one connection to the collector: a JSON post to `/v1/traces`
/// is kept (200), anything else refused (400).
async fn collect<S>(stream: S, kept: Posts)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let kept = kept.clone();
        async move {
            let ok = req.method() == "POST"
                && req.uri().path() == "/v1/traces"
                && req
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/json");
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let status = match serde_json::from_slice(&body) {
                Ok(v) if ok => {
                    kept.lock().unwrap().push((auth, v));
                    200
                }
                _ => 400,
            };
            let res = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test]
async fn sampled_requests_reach_an_otlp_collector_with_their_parent_and_hooks() {
    let collector = Collector::start().await;
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = shop(
        &s,
        echo.addr,
        &format!(
            "access_log = false\n[platform.otel]\nendpoint = \"http://{}\"\nsample = 0.0",
            collector.addr
        ),
    );
    let b = Bext::serve(&cfg);
    // Not sampled (the client says so; new traces are not at 0.0).
    let unsampled = format!("00-{}-{PARENT}-00", "1".repeat(32));
    let (tp, _) = traceparent_upstream(b.addr, &[&unsampled]).await;
    assert!(tp.ends_with("-00"));
    let (_, _) = traceparent_upstream(b.addr, &[]).await;
    // Sampled by the client: recorded, as a child of the client's span.
    let sampled = format!("00-{TRACE}-{PARENT}-01");
    let (tp, _) = traceparent_upstream(b.addr, &[&sampled]).await;
    let bext_span = tp.split('-').nth(2).unwrap().to_owned();

    let spans = eventually(Duration::from_secs(15), || async {
        let spans = collector.spans();
        spans.iter().any(|s| s["kind"] == 2).then_some(spans)
    })
    .await;
    let servers: Vec<_> = spans.iter().filter(|s| s["kind"] == 2).collect();
    assert_eq!(servers.len(), 1, "only the sampled request: {servers:?}");
    let server = servers[0];
    assert_eq!(server["traceId"], TRACE);
    assert_eq!(server["parentSpanId"], PARENT);
    assert_eq!(
        server["spanId"],
        bext_span.as_str(),
        "the upstream's parent is the request's span"
    );
    assert_eq!(server["name"], "GET shop");
    assert_eq!(attr(server, "http.response.status_code").unwrap()["intValue"], "200");
    assert_eq!(attr(server, "bext.app").unwrap()["stringValue"], "shop");
    let start: u128 = server["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = server["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start <= end);
    // The WAF's hook, a child of the request's span.
    let hooks: Vec<_> = spans.iter().filter(|s| s["kind"] == 1).collect();
    let waf = hooks
        .iter()
        .find(|h| h["name"] == "waf on_request")
        .unwrap_or_else(|| panic!("no waf hook span in {hooks:?}"));
    assert_eq!(waf["traceId"], TRACE);
    assert_eq!(waf["parentSpanId"], bext_span.as_str());
    assert!(hooks.iter().all(|h| h["traceId"] == TRACE), "{hooks:?}");

    let metrics = send(b.addr, request("GET", "/__bext/metrics", &[("host", "localhost")], "")).await;
    // No token configured: no endpoint; the counters are checked in metrics.rs.
    assert_eq!(metrics.status, 404);
}

/// A collector behind https with a private CA (trusted through
/// `SSL_CERT_FILE`, as an https upstream's is) that wants a token: every
/// post carries `headers`, and the token never reaches the log.
#[tokio::test]
async fn spans_reach_an_https_collector_with_the_configured_headers() {
    let (collector, ca_pem) = Collector::start_tls().await;
    let echo = Echo::start().await;
    let s = Site::new();
    s.write("collector-ca.pem", &ca_pem);
    let cfg = shop(
        &s,
        echo.addr,
        &format!(
            "access_log = false\n[platform.otel]\nendpoint = \"https://localhost:{}\"\n\
             headers = {{ authorization = \"Bearer otel-secret\", \"x-tenant\" = \"ops\" }}",
            collector.addr.port()
        ),
    );
    let ca = s.path("collector-ca.pem");
    let b = Bext::serve_env(&cfg, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    let (tp, _) = traceparent_upstream(b.addr, &[]).await;
    let trace = tp.split('-').nth(1).unwrap().to_owned();
    let spans = eventually(Duration::from_secs(15), || async {
        let spans = collector.spans();
        spans.iter().any(|s| s["kind"] == 2).then_some(spans)
    })
    .await;
    assert!(spans.iter().any(|s| s["traceId"] == trace.as_str()), "{spans:?}");
    let auths = collector.authorizations();
    assert!(
        !auths.is_empty() && auths.iter().all(|a| a.as_deref() == Some("Bearer otel-secret")),
        "{auths:?}"
    );
    assert!(!b.log().contains("otel-secret"), "{}", b.log());

    // Trusting another CA only, the collector is not trusted: spans are
    // dropped (counted), and the request is still served.
    drop(b);
    let other = s.write("other-ca.pem", private_ca_tls().1);
    let b = Bext::serve_env(&cfg, &[("SSL_CERT_FILE", other.to_str().unwrap())]);
    let before = collector.authorizations().len();
    let (tp, _) = traceparent_upstream(b.addr, &[]).await;
    assert!(!tp.is_empty());
    eventually(Duration::from_secs(15), || async {
        b.log()
            .contains("cannot post spans to the OTLP collector")
            .then_some(())
    })
    .await;
    assert_eq!(collector.authorizations().len(), before);
}

#[tokio::test]
async fn platform_log_sets_levels_by_module_unless_rust_log_does() {
    let s = Site::new();
    s.write("www/index.html", "hello");
    let platform = |log: &str| {
        s.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\n{log}\n[apps.site]\nsource = \"www\"\ndomains = [\"site.test\"]\n"
        ))
    };
    // (levels, RUST_LOG) → whether info lines of bext::cli are written.
    for (log, rust_log, cli_info) in [
        ("log = \"warn,bext::access=info\"", "", false),
        ("log = \"warn,bext::access=info,bext::cli=info\"", "", true),
        ("log = \"warn,bext::access=info\"", "info", true),
    ] {
        let mut b = Bext::serve_env(&platform(log), &[("RUST_LOG", rust_log)]);
        get(b.addr, "site.test", "/").await;
        eventually(Duration::from_secs(10), || async {
            // The access line itself (the "log levels" line names the target too).
            b.log().contains(" bext::access: ").then_some(())
        })
        .await;
        b.signal("TERM");
        // Beyond `shutdown_timeout` (30 s), in case a kept-alive connection delays the drain.
        assert!(b.wait_exit(Duration::from_secs(60)).is_some());
        let text = b.whole_log(Duration::from_secs(10)).expect("stderr closes at exit");
        assert_eq!(
            text.contains("shutting down"),
            cli_info,
            "{log} RUST_LOG={rust_log:?}:\n{text}"
        );
    }
}

/// Requests no head could be read from (hyper's 400 for a malformed
/// field or request line, 431 for a head over the limit, the fast path's
/// 431) still get a line in either format and a count among the requests
/// no app served, as nginx logs them: probes leave a trace.
#[tokio::test]
async fn requests_with_no_readable_head_are_logged_and_counted() {
    for format in ["json", "combined"] {
        let s = Site::new();
        s.write("www/index.html", "hello");
        let log = s.path("access.log");
        let cfg = s.platform(&format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\naccess_log = {{ format = \"{format}\", path = \"{}\" }}\n\
             [platform.limits]\nmax_header_bytes = \"8KiB\"\n\n\
             [apps.site]\nsource = \"www\"\ndomains = [\"site.test\"]\n",
            log.display()
        ));
        let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", crate::metrics::TOKEN)]);
        let long = format!(
            "GET / HTTP/1.1\r\nHost: site.test\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(16384)
        );
        let heads: [&[u8]; 4] = [
            b"GET /x HTTP/1.1\r\nHost: site.test\r\nBad Header: x\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"GET /x HTTP/9.9\r\nHost: site.test\r\n\r\n",
            long.as_bytes(),
        ];
        let mut statuses = Vec::new();
        for head in heads {
            let answer = raw_async(b.addr, head, Duration::from_secs(5)).await;
            statuses.push(status_of(&answer));
        }
        assert_eq!(statuses, [400, 400, 400, 431], "{format}");
        // One served request after them, so the log has a line to wait for.
        assert_eq!(get(b.addr, "site.test", "/").await.status, 200);
        // In any order: hyper's answer can reach the client before its
        // connection's end is logged.
        let lines = lines(&log, 5).await;
        let mut logged: Vec<u16> = Vec::new();
        for line in &lines {
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["method"] == "-" {
                    assert_eq!(v["client"], "127.0.0.1", "{line}");
                    assert!(v.get("app").is_none() && v["path"] == "", "{line}");
                    logged.push(v["status"].as_u64().unwrap() as u16);
                }
            } else if let Some((_, rest)) = line.split_once("] \"-\" ") {
                assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
                let (status, rest) = rest.split_once(' ').unwrap();
                assert_eq!(rest, "0 \"-\" \"-\"", "{line}");
                logged.push(status.parse().unwrap());
            }
        }
        logged.sort_unstable();
        assert_eq!(logged, statuses, "{format}: {lines:#?}");
        let samples = crate::metrics::scrape(b.addr).await;
        let no_app = |class: &str| {
            crate::metrics::value(
                &samples,
                "bext_requests_total",
                &[("app", "-"), ("status_class", class), ("method", "other")],
            )
        };
        assert_eq!(no_app("4xx"), Some(4.0), "{format}");
    }
}
