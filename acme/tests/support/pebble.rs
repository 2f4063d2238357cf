//! A real pebble (Let's Encrypt's ACME test server, Debian's `pebble`
//! package; tests/run installs it) on free loopback ports, with
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every
//! name; a TLS client that reports the served certificate's serial, and a
//! small on-demand ask server. Shared by bext-acme's tests and the
//! kernel's e2e tests (`#[path]`-included), so it names no bext crate.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A free TCP port on 127.0.0.1, never one this process handed out
/// before: tests run in parallel, and a port released here is bound by
/// pebble or a test listener only later, so another test could be given
/// it meanwhile (seen as `AddrInUse` for a challenge listener).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// pebble and its DNS server, killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// The PEM root that pebble's own HTTPS is signed by (`ca_root`).
    pub ca_root: PathBuf,
    /// The management interface (`/roots/0` is the issuing root).
    pub management: SocketAddr,
    /// Where pebble connects for HTTP-01.
    pub http_port: u16,
    /// Where pebble connects for TLS-ALPN-01.
    pub tls_port: u16,
    /// pebble's own, its DNS server's and that one's management port.
    ports: [u16; 3],
}

/// What a test changes in pebble's configuration.
#[derive(Default, Clone)]
pub struct PebbleOptions {
    /// `certificateValidityPeriod`, in seconds (pebble's default is 5 years).
    pub validity_secs: Option<u64>,
    /// Names pebble refuses to issue for (`domainBlocklist`).
    pub blocklist: Vec<String>,
}

impl Pebble {
    /// Starts pebble with its defaults.
    pub fn start() -> Pebble {
        Pebble::start_with(PebbleOptions::default())
    }

    /// Starts pebble-challtestsrv (DNS only) and pebble, and waits until
    /// both listen.
    pub fn start_with(options: PebbleOptions) -> Pebble {
        let mut dir = tempfile::tempdir().unwrap();
        // pebble's HTTPS certificate, signed by a root of the test's own
        // (the package ships no test certificates).
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bext test ACME server root");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let ca_root = dir.path().join("ca-root.pem");
        std::fs::write(&ca_root, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("pebble-cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();

        // A port picked free may be taken again before pebble binds it
        // (other tests bind port 0 all the time): new ports, a few times.
        let mut last = String::new();
        for _ in 0..5 {
            let (acme, management, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
            let (http_port, tls_port) = (free_port(), free_port());
            let mut config = serde_json::json!({
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.path().join("pebble-cert.pem"),
                "privateKey": dir.path().join("pebble-key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "domainBlocklist": options.blocklist,
            });
            if let Some(secs) = options.validity_secs {
                config["certificateValidityPeriod"] = secs.into();
            }
            let file = dir.path().join("pebble.json");
            std::fs::write(&file, serde_json::json!({ "pebble": config }).to_string()).unwrap();
            let mut pebble = Pebble {
                dir,
                children: Vec::new(),
                directory: format!("https://127.0.0.1:{acme}/dir"),
                ca_root: ca_root.clone(),
                management: SocketAddr::from(([127, 0, 0, 1], management)),
                http_port,
                tls_port,
                ports: [acme, dns, dns_mgmt],
            };
            match pebble.spawn() {
                Ok(()) => return pebble,
                Err(e) => {
                    last = e;
                    pebble.stop();
                    dir = std::mem::replace(&mut pebble.dir, tempfile::tempdir().unwrap());
                }
            }
        }
        panic!("pebble did not start: {last}");
    }

    /// Starts the two processes on the ports chosen at first; an error
    /// when one exits before it listens (its port was taken).
    fn spawn(&mut self) -> Result<(), String> {
        let [acme, dns, dns_mgmt] = self.ports;
        let dir = self.dir.path();
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap()
        };
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.log"))
            .spawn()
            .expect("pebble-challtestsrv is needed (apt-get install pebble; tests/run does)");
        self.children.push(dns_server);
        wait_listening(dns_mgmt, "pebble-challtestsrv", self.children.last_mut().unwrap())?;
        let server = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every nonce good and every authorization new, so each order
            // really validates and no retry hides a bug.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.log"))
            .spawn()
            .expect("pebble is needed (apt-get install pebble; tests/run does)");
        self.children.push(server);
        wait_listening(acme, "pebble", self.children.last_mut().unwrap())
            .map_err(|e| format!("{e}\n{}", self.log()))?;
        // The management port is bound after the ACME one: when another
        // process took it meanwhile, pebble exits, and the port answers
        // someone else (seen in CI). Then new ports, as for the others.
        let management = self.management.port();
        let child = self.children.last_mut().unwrap();
        wait_listening(management, "pebble's management", child).map_err(|e| format!("{e}\n{}", self.log()))?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        match self.children.last_mut().unwrap().try_wait() {
            Ok(None) => Ok(()),
            _ => Err(format!(
                "pebble exited after it listened: a port was taken\n{}",
                self.log()
            )),
        }
    }

    /// Stops pebble and starts it again on the same ports: a server that
    /// has forgotten every account and order (pebble keeps them in memory).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap();
    }

    /// What pebble logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Stops pebble (and its DNS server) now.
    pub fn stop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The root pebble issues under (from its management interface), PEM.
    /// pebble may answer on its ACME port before its management one is up
    /// (seen on a loaded machine): asked again for up to 20 s.
    pub async fn issuing_root(&self) -> String {
        let client = https_client(&self.ca_root);
        let url = format!("https://127.0.0.1:{}/roots/0", self.management.port());
        let mut tries = 0;
        let rsp = loop {
            let asked = client
                .request(Request::get(&url).body(Full::new(Bytes::new())).unwrap())
                .await;
            match asked {
                Ok(rsp) if rsp.status() == 200 => break rsp,
                other if tries == 100 => panic!("pebble's management interface: {other:?}"),
                _ => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        };
        String::from_utf8(rsp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `port` accepts connections; an error if `child` exits
/// first, or after a minute (a loaded machine starts pebble slowly).
fn wait_listening(port: u16, what: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}) before listening on {port}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("{what} did not listen on {port}"))
}

type TestClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn https_client(root: &Path) -> TestClient {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// A TLS client (HTTP/1.1 by ALPN) that trusts only `root_pem`.
pub fn client_config(root_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Handshakes with `name` on `port` trusting only `root_pem`, and returns
/// the serial of the certificate the server presented.
pub async fn handshake_serial(port: u16, name: &str, root_pem: &str) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(client_config(root_pem));
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(server_name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(cert.raw_serial_as_string())
}

/// A small on-demand ask server: 200 for the names in `allowed`, 403 for
/// any other; every `domain` asked is recorded.
pub struct AskServer {
    /// Its URL (`http://127.0.0.1:PORT/ask`).
    pub url: String,
    /// The `domain` of each request, in order.
    pub asked: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl AskServer {
    /// Starts it on a free port.
    pub async fn start(allowed: &[&str]) -> AskServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ask", listener.local_addr().unwrap());
        let allowed: Arc<Vec<String>> = Arc::new(allowed.iter().map(|s| s.to_string()).collect());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (allowed, record) = (allowed.clone(), record.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let domain = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                            .find(|(k, _)| k == "domain")
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        record.lock().unwrap().push(domain.clone());
                        let status = if req.uri().path() == "/ask" && allowed.contains(&domain) {
                            200
                        } else {
                            403
                        };
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        AskServer {
            url,
            asked,
            _task: task,
        }
    }

    /// The domains asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}
