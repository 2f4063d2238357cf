//! A real pebble (Let's Encrypt's ACME test server, Debian's `pebble`
//! package; tests/run installs it) on free loopback ports, with
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every
//! name, and the small servers that answer its validations the way the
//! kernel's listeners will.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bext_acme::{ACME_TLS_ALPN, ChallengeResolver, Challenges};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
        let dir = tempfile::tempdir().unwrap();
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

        let (acme, management, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
        let (http_port, tls_port) = (free_port(), free_port());
        let mut pebble = serde_json::json!({
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
            pebble["certificateValidityPeriod"] = secs.into();
        }
        let config = dir.path().join("pebble.json");
        std::fs::write(&config, serde_json::json!({ "pebble": pebble }).to_string()).unwrap();

        let mut pebble = Pebble {
            dir,
            children: Vec::new(),
            directory: format!("https://127.0.0.1:{acme}/dir"),
            ca_root,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            http_port,
            tls_port,
            ports: [acme, dns, dns_mgmt],
        };
        pebble.spawn();
        pebble
    }

    /// Starts the two processes on the ports chosen at first.
    fn spawn(&mut self) {
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
        wait_listening(dns_mgmt, "pebble-challtestsrv");
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
        wait_listening(acme, "pebble");
    }

    /// Stops pebble and starts it again on the same ports: a server that
    /// has forgotten every account and order (pebble keeps them in memory).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
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
    pub async fn issuing_root(&self) -> String {
        let client = https_client(&self.ca_root);
        let url = format!("https://127.0.0.1:{}/roots/0", self.management.port());
        let rsp = client
            .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        assert_eq!(rsp.status(), 200);
        String::from_utf8(rsp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
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

/// The plain listener's share of ACME: `GET /.well-known/acme-challenge/<token>`
/// answered from `challenges`, anything else 404. While `answering` is
/// off, challenge requests get 404 too and are counted as `refused`.
pub struct Http01Server {
    /// Whether challenges are answered.
    pub answering: Arc<AtomicBool>,
    /// Challenge requests answered 404 while not answering.
    pub refused: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

/// Starts an [`Http01Server`] on 127.0.0.1:`port`; returns when listening.
pub async fn serve_http01(port: u16, challenges: Arc<Challenges>) -> Http01Server {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let answering = Arc::new(AtomicBool::new(true));
    let refused = Arc::new(AtomicUsize::new(0));
    let (on, count) = (answering.clone(), refused.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (challenges, on, count) = (challenges.clone(), on.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path();
                    let answer = if on.load(Ordering::SeqCst) {
                        challenges.http01_for_path(path)
                    } else {
                        if path.starts_with(bext_acme::HTTP01_PREFIX) {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        None
                    };
                    async move {
                        let rsp = match answer {
                            Some(key_authorization) => Response::builder()
                                .header("content-type", "application/octet-stream")
                                .body(Full::new(Bytes::from(key_authorization.to_string()))),
                            None => Response::builder().status(404).body(Full::new(Bytes::new())),
                        };
                        Ok::<_, Infallible>(rsp.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Http01Server {
        answering,
        refused,
        _task: task,
    }
}

/// The app certificates a test's TLS listener serves (the kernel's SNI
/// store stands here): one name each.
#[derive(Debug, Default)]
pub struct Served(Mutex<Vec<(String, Arc<CertifiedKey>)>>);

impl Served {
    /// Serves `key` for `name` from now on (replacing an older one).
    pub fn put(&self, name: &str, key: Arc<CertifiedKey>) {
        let mut all = self.0.lock().unwrap();
        all.retain(|(n, _)| n != name);
        all.push((name.to_owned(), key));
    }

    /// The certificate for a ClientHello's name, in any spelling.
    pub fn get(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = bext_plugin_abi::normalise_host(server_name.as_bytes()).ok()?;
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, k)| k.clone())
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
    }
}

/// The TLS listener's share of ACME, as the kernel will do it: a
/// ClientHello offering `acme-tls/1` gets the validation certificate and
/// the connection closes after the handshake; any other gets `served`'s
/// certificate and a one-line HTTP answer. Returns when listening.
pub async fn serve_tls(port: u16, challenges: Arc<Challenges>, served: Arc<Served>) -> tokio::task::JoinHandle<()> {
    let resolver = Arc::new(ChallengeResolver::new(challenges, served));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                    let _ = tls.shutdown().await;
                    return;
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    })
}

/// The TLS listener with on-demand certificates, as the kernel will accept:
/// read the ClientHello first (`LazyConfigAcceptor`); a name `served` does
/// not know waits for `on_demand` (whose callback puts it in `served`);
/// no certificate means the handshake is dropped. Returns when listening.
pub async fn serve_on_demand_tls(
    served: Arc<Served>,
    on_demand: Arc<bext_acme::OnDemand>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(served.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (served, on_demand, config) = (served.clone(), on_demand.clone(), config.clone());
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
                let Ok(start) = acceptor.await else { return };
                let Some(name) = start.client_hello().server_name().map(str::to_owned) else {
                    return;
                };
                if served.get(&name).is_none() && on_demand.certificate(&name).await.is_err() {
                    return;
                }
                let Ok(mut tls) = start.into_stream(config).await else {
                    return;
                };
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task)
}

/// Handshakes with `name` on `port` trusting only `root_pem`, and returns
/// the serial of the certificate the server presented.
pub async fn handshake_serial(port: u16, name: &str, root_pem: &str) -> Result<String, String> {
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
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
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
