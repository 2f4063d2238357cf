//! Test support: start the real `bext` binary on an ephemeral port, talk
//! HTTP/1.1 and h2c to it, and run an echo upstream for proxy tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A running `bext` process, killed on drop.
pub struct Bext {
    child: Child,
    /// The main listener.
    pub addr: SocketAddr,
    /// The `admin_listen` listener, when there is one.
    pub admin: Option<SocketAddr>,
    /// The `listen_tls` listener, when there is one (on 127.0.0.1 when
    /// bext names it `localhost`).
    pub tls: Option<SocketAddr>,
    /// Everything it wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    /// Set once its stderr closed (it exited): the log is whole.
    stderr_closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Bext {
    /// `bext serve --config FILE`.
    pub fn serve(config: &Path) -> Bext {
        Bext::start(&["serve", "--config", config.to_str().unwrap()])
    }

    /// `bext serve --config FILE` with extra environment variables.
    pub fn serve_env(config: &Path, env: &[(&str, &str)]) -> Bext {
        Bext::start_env(&["serve", "--config", config.to_str().unwrap()], env)
    }

    /// Starts bext with `args` and waits for its "serving" line.
    pub fn start(args: &[&str]) -> Bext {
        Bext::start_env(args, &[])
    }

    /// [`Bext::start`] with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Bext {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bext"))
            .args(args)
            // `env` may set its own (an empty RUST_LOG leaves the levels
            // to `[platform] log`).
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bext");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let stderr_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed = stderr_closed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut admin = None;
        let mut tls = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("admin endpoints on http://").nth(1) {
                        admin = rest.split('/').next().unwrap().parse().ok();
                    }
                    if let Some(rest) = line.split("serving https://").nth(1) {
                        let at = rest.split('/').next().unwrap().replace("localhost:", "127.0.0.1:");
                        tls = at.parse().ok();
                    }
                    if let Some(rest) = line.split("serving http://").nth(1) {
                        let addr = rest.split('/').next().unwrap().parse().unwrap();
                        return Bext {
                            child,
                            addr,
                            admin,
                            tls,
                            log,
                            stderr_closed,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("bext did not start; stderr:\n{}", log.lock().unwrap());
                }
            }
        }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// All of stderr, once the process has exited and its stderr closed
    /// (`None` if that takes over `limit`).
    pub fn whole_log(&self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while !self.stderr_closed.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(self.log())
    }

    /// stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// stderr once it holds `needle`, or all of it after 10 s (for the
    /// assertion's message): another thread reads the log, so its lines
    /// may trail what the server has already done.
    pub fn log_once_it_says(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bext {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bext` to completion (for `check`).
pub fn bext_output(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bext")).args(args).output().unwrap()
}

/// A temporary platform: a directory with a platform file, manifests and
/// app folders.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating folders.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Writes `platform.toml` with `listen` on port 0 prepended.
    pub fn platform(&self, body: &str) -> PathBuf {
        self.write("platform.toml", format!("{body}\n"))
    }
}

/// An HTTP response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// A connection task; it finishes when the server closes the connection.
pub type ConnTask = tokio::task::JoinHandle<Result<(), hyper::Error>>;

/// A fresh HTTP/1.1 client connection.
pub async fn h1_client(addr: SocketAddr) -> (hyper::client::conn::http1::SendRequest<Full<Bytes>>, ConnTask) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(conn))
}

/// A fresh h2c (prior knowledge) client connection.
pub async fn h2_client(addr: SocketAddr) -> (hyper::client::conn::http2::SendRequest<Full<Bytes>>, ConnTask) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let handshake = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream));
    let (sender, conn) = handshake.await.unwrap();
    (sender, tokio::spawn(conn))
}

/// Sends one request over a fresh HTTP/1.1 connection. `req`'s URI may be
/// origin-form (`/path`) or absolute-form; its headers are sent as given.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let (mut sender, _conn) = h1_client(addr).await;
    collect(sender.send_request(req).await.unwrap()).await
}

/// Sends one request over a fresh h2c (prior knowledge) connection.
pub async fn send_h2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let (mut sender, _conn) = h2_client(addr).await;
    collect(sender.send_request(req).await.unwrap()).await
}

/// Reads a response in full.
pub async fn collect(res: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// `GET path` with `Host: host` over HTTP/1.1.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(
        addr,
        Request::get(path).header("host", host).body(Full::default()).unwrap(),
    )
    .await
}

/// Builds a request.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

/// Writes raw bytes and reads until the server closes or `wait` passes.
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`raw`] off the async runtime, so upstreams in this process keep running.
pub async fn raw_async(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || raw(addr, &bytes, wait))
        .await
        .unwrap()
}

/// A keep-alive upstream that writes `answer(head)` for each request head
/// it reads, byte for byte.
pub async fn raw_upstream(answer: fn(&[u8]) -> String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = seen.drain(..end + 4).collect();
                        if tokio::io::AsyncWriteExt::write_all(&mut s, answer(&head).as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    match tokio::io::AsyncReadExt::read(&mut s, &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, task)
}

/// The status code of the first response in raw HTTP/1 output.
pub fn status_of(raw: &str) -> u16 {
    raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Polls `f` until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An upstream that answers with a JSON description of the request it got:
/// `{method, uri, headers, body_len}`. `/slow/<ms>` waits first; each
/// `x-echo-set: name=value` request header becomes a response header.
pub struct Echo {
    pub addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(echo);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Echo { addr, _task: task }
    }
}

async fn echo(
    mut req: Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    if req.headers().contains_key("upgrade") {
        // Accept the upgrade and echo whatever bytes arrive.
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let res = http::Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::default())
            .unwrap();
        return Ok(res);
    }
    if let Some(ms) = req.uri().path().strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    let set: Vec<(String, String)> = req
        .headers()
        .get_all("x-echo-set")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        headers.insert(k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned());
    }
    // The names that came more than once (the map above keeps one value).
    let repeated: Vec<&str> = req
        .headers()
        .keys()
        .filter(|k| req.headers().get_all(*k).iter().count() > 1)
        .map(|k| k.as_str())
        .collect();
    let repeated = serde_json::json!(repeated);
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let out = serde_json::json!({"method": method, "uri": uri, "headers": headers, "repeated": repeated, "body_len": body.len()});
    let mut res = http::Response::builder()
        .header("content-type", "application/json")
        .header("connection", "keep-alive, x-upstream-private")
        .header("x-upstream-private", "secret")
        .header("keep-alive", "timeout=5");
    for (name, value) in set {
        res = res.header(name, value);
    }
    Ok(res.body(Full::new(Bytes::from(out.to_string()))).unwrap())
}

/// Reads frames until `want` is in what arrived; returns it all.
pub async fn read_until(body: &mut hyper::body::Incoming, want: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(want) {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in 20 s; got {seen:?}"))
            .unwrap_or_else(|| panic!("the body ended before {want:?}: {seen:?}"))
            .unwrap();
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    seen
}

/// Reads the rest of a body: `Err` when the server cut it.
pub async fn read_to_end(body: &mut hyper::body::Incoming) -> Result<(), String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
            Err(_) => panic!("the stream did not end within 30 s"),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The react-ssr example's page, read as it streams: the shell (with the
/// tenant's name) arrives before the menu's data, then the menu, then the
/// end.
pub async fn the_react_menu_streams(res: hyper::Response<hyper::body::Incoming>) {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let mut body = res.into_body();
    let shell = read_until(&mut body, "Loading the menu").await;
    assert!(shell.contains("Welcome to café <!-- -->acme"), "{shell}");
    assert!(
        !shell.contains("flat white"),
        "the data came with the shell: not streamed\n{shell}"
    );
    let rest = read_until(&mut body, "flat white").await;
    assert!(rest.contains("<li>espresso</li>"), "{rest}");
    read_to_end(&mut body).await.unwrap();
}

/// An upstream that answers nothing until the test says so: one request
/// at a time, each answered `body` by [`Gate::open`]. What a page waits
/// on (its data) made to wait for the test, not for a clock.
pub struct Gate {
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
}

impl Gate {
    pub async fn start() -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Gate {
            addr: listener.local_addr().unwrap(),
            listener,
        }
    }

    /// Takes the next request waiting and answers it `body`.
    pub async fn open(&self, body: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(20), self.listener.accept())
            .await
            .expect("nobody called the gate within 20 s")
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the caller hung up before its request ended");
            head.extend_from_slice(&buf[..n]);
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Builds the plugin libraries of the workspace (the example and the
/// broken fixtures) once per test run and returns the path of `package`'s.
pub fn plugin_library(package: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<BTreeMap<String, PathBuf>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--message-format=json", "--manifest-path"])
            .arg(repo().join("Cargo.toml"));
        for p in [
            "bext-plugin-rust-hello",
            "bext-test-plugin-old-sdk",
            "bext-test-plugin-wrong-abi",
            "bext-test-plugin-no-export",
            "bext-test-plugin-rebuilt",
        ] {
            cmd.args(["-p", p]);
        }
        let out = cmd.stderr(Stdio::inherit()).output().expect("run cargo build");
        assert!(out.status.success(), "building the plugin libraries failed");
        let mut libs = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_cdylib = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if msg["reason"] == "compiler-artifact" && is_cdylib {
                let file = msg["filenames"][0].as_str().unwrap().to_owned();
                let package = msg["target"]["name"].as_str().unwrap().replace('_', "-");
                libs.insert(package, PathBuf::from(file));
            }
        }
        libs
    });
    built
        .get(package)
        .unwrap_or_else(|| panic!("no library for {package}: {built:?}"))
        .clone()
}

/// Copies the example JS app or plugin folder `rel` (under `examples/`)
/// into the site.
pub fn copy_example(site: &Site, rel: &str, to: &str) -> PathBuf {
    let from = repo().join("examples").join(rel);
    let dest = site.path(to);
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
    dest
}

/// A platform with the vhosts plugin, the site's `manifests/` and one
/// proxy app, `shop`, on `shop.test` and `*.shop.test`.
pub fn shop_platform(s: &Site, upstream: SocketAddr) -> PathBuf {
    shop_platform_with(s, upstream, "", "")
}

/// [`shop_platform`] with `app_lines` added to `[apps.shop]` and `tables`
/// (more TOML tables, such as `[redis]`) after it.
pub fn shop_platform_with(s: &Site, upstream: SocketAddr, app_lines: &str, tables: &str) -> PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.shop]
runtime = "proxy"
upstream = "http://{upstream}"
domains = ["shop.test", "*.shop.test"]
{app_lines}
{tables}"#
    ))
}

/// The TLS settings of a server for `localhost` whose certificate comes
/// from a CA of its own (a service behind a private CA), and that CA's
/// certificate (PEM), for the client to trust.
pub fn private_ca_tls() -> (tokio_rustls::rustls::ServerConfig, String) {
    use tokio_rustls::rustls;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bext test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (tls, ca.pem())
}

/// An https server whose certificate comes from a CA of its own (as a
/// service behind a private CA): answers every request with the document
/// it holds now (and the HTTP version it was asked with in
/// `x-request-version`), and counts the requests.
pub struct HttpsServer {
    pub addr: SocketAddr,
    pub document: Arc<Mutex<String>>,
    pub fetches: Arc<std::sync::atomic::AtomicUsize>,
    /// The server name (SNI) the last client sent.
    pub sni: Arc<Mutex<Option<String>>>,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    _task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// A server with a certificate for `localhost`, speaking HTTP/1.1
    /// only.
    pub async fn start(document: String) -> HttpsServer {
        HttpsServer::start_alpn(document, false).await
    }

    /// With `h2`, it accepts h2 by ALPN (before http/1.1) and speaks
    /// HTTP/2 on the connections that chose it.
    pub async fn start_alpn(document: String, h2: bool) -> HttpsServer {
        let (mut tls, ca_pem) = private_ca_tls();
        if h2 {
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(None));
        let (doc, count, seen) = (document.clone(), fetches.clone(), sni.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, doc, count, seen) = (acceptor.clone(), doc.clone(), count.clone(), seen.clone());
                tokio::spawn(async move {
                    // A client that does not trust the CA hangs up here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    *seen.lock().unwrap() = tls.get_ref().1.server_name().map(str::to_owned);
                    let chose_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = doc.lock().unwrap().clone();
                        let version = format!("{:?}", req.version());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .header("x-request-version", version)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    if chose_h2 {
                        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    }
                });
            }
        });
        HttpsServer {
            addr,
            document,
            fetches,
            sni,
            ca_pem,
            _task: task,
        }
    }
}

/// An HTTP/2 upstream (h2c, prior knowledge) for WebSockets over HTTP/2:
/// with `allow`, its SETTINGS enable extended CONNECT (RFC 8441) and it
/// accepts `CONNECT` with `:protocol websocket` with a 200 and echoes the
/// stream's bytes; it says in `x-saw` the method, protocol and whether a
/// `sec-websocket-key` came. Other requests get `plain h2`.
pub async fn h2_websocket_upstream(allow: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|mut req: Request<hyper::body::Incoming>| async move {
                    let protocol = req
                        .extensions()
                        .get::<hyper::ext::Protocol>()
                        .map(|p| p.as_str().to_owned());
                    let Some(protocol) = protocol else {
                        return Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                            "plain h2",
                        ))));
                    };
                    let saw = format!(
                        "{} {protocol} key={}",
                        req.method(),
                        req.headers().contains_key("sec-websocket-key")
                    );
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(io) = on.await {
                            let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        }
                    });
                    Ok(http::Response::builder()
                        .header("x-saw", saw)
                        .header("sec-websocket-protocol", "chat")
                        .body(Full::default())
                        .unwrap())
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                if allow {
                    builder.enable_connect_protocol();
                }
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

/// An extended CONNECT for a WebSocket to `uri` (absolute), as a browser
/// sends it over HTTP/2 (RFC 8441 §5).
pub fn websocket_connect(uri: &str, protocol: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method("CONNECT")
        .uri(uri)
        .extension(hyper::ext::Protocol::from_static(protocol))
        .header("sec-websocket-version", "13")
        .body(Full::default())
        .unwrap()
}

/// Writes each message on an open tunnel and reads it back (the
/// upstream echoes): what was sent both ways arrived.
pub async fn echoes_through<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(io: &mut S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A masked text frame "hi" (RFC 6455 §5.7), then raw bytes.
    for msg in [&b"\x81\x82\x37\xfa\x21\x3d\x5f\x93"[..], b"hello", b"both ways"] {
        io.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

/// The HTTP/1.1 WebSocket handshake on a raw connection: the answer's
/// head, lower case, and the connection (the tunnel when it is a 101).
pub async fn h1_websocket(addr: std::net::SocketAddr, extra: &str) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).to_lowercase(), conn)
}
