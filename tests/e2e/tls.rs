//! TLS termination on `listen_tls`: certificates from files (RSA and
//! ECDSA) and self-signed, chosen by SNI; h2 and HTTP/1.1 by ALPN; old
//! protocols, unknown names and plain HTTP refused; `https_redirect` and
//! `hsts`; certificates reloaded with their files; `bext check` errors.
//! The tests sign their certificates with their own CA (rcgen) and trust
//! only it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// The tests' certificate authority.
pub(crate) struct Ca {
    pub(crate) root: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and its key, PEM.
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) der: CertificateDer<'static>,
}

/// ring signs with RSA keys but cannot make them: the tests' RSA key.
const RSA_KEY: &str = include_str!("../../tls/tests/rsa2048.key");

impl Ca {
    pub(crate) fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bext test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            root: CertificateDer::from(cert.der().to_vec()),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// An ECDSA P-256 leaf for `names`.
    pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, rcgen::KeyPair::generate().unwrap(), false)
    }

    /// An RSA leaf for `names`.
    fn rsa_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, rcgen::KeyPair::from_pem(RSA_KEY).unwrap(), false)
    }

    /// A leaf whose validity ended in 2020.
    fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, rcgen::KeyPair::generate().unwrap(), true)
    }

    fn leaf_with(&self, names: &[&str], key: rcgen::KeyPair, expired: bool) -> Leaf {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: CertificateDer::from(cert.der().to_vec()),
        }
    }
}

/// How a test client connects.
#[derive(Clone)]
pub(crate) struct Client {
    roots: Vec<CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
    sni: bool,
}

impl Client {
    pub(crate) fn trusting(roots: &[&CertificateDer<'static>]) -> Client {
        Client {
            roots: roots.iter().map(|r| (*r).clone()).collect(),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            sni: true,
        }
    }

    fn alpn(mut self, protocols: &[&[u8]]) -> Client {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    fn without_sni(mut self) -> Client {
        self.sni = false;
        self
    }

    /// A TLS connection to `addr` for `name` (its SNI, unless turned off).
    async fn connect(&self, addr: SocketAddr, name: &str) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for r in &self.roots {
            roots.add(r.clone()).unwrap();
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        TlsConnector::from(Arc::new(config)).connect(server_name, tcp).await
    }

    /// `GET path` on `host` over a fresh TLS connection: the reply, the
    /// HTTP version ALPN chose, and the leaf certificate presented.
    pub(crate) async fn get(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
    ) -> (Reply, http::Version, CertificateDer<'static>) {
        let tls = self.connect(addr, host).await.unwrap();
        let (_, session) = tls.get_ref();
        let leaf = session.peer_certificates().unwrap()[0].clone();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let reply = if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get(format!("https://{host}{path}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            collect(sender.send_request(req).await.unwrap()).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get(path)
                .header("host", host)
                .body(Full::<Bytes>::default())
                .unwrap();
            collect(sender.send_request(req).await.unwrap()).await
        };
        let version = if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        (reply, version, leaf)
    }

    /// `req` (origin-form, its own Host header) over a fresh TLS
    /// connection for `name`, in HTTP/1.1.
    pub(crate) async fn send(&self, addr: SocketAddr, name: &str, req: Request<Full<Bytes>>) -> Reply {
        let tls = self.clone().alpn(&[b"http/1.1"]).connect(addr, name).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        collect(sender.send_request(req).await.unwrap()).await
    }

    /// An HTTP/2 connection over TLS for `name` (ALPN h2 only).
    pub(crate) async fn h2(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let tls = self.clone().alpn(&[b"h2"]).connect(addr, name).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    /// The leaf certificate presented for `name`, or the handshake error.
    pub(crate) async fn leaf_for(&self, addr: SocketAddr, name: &str) -> Result<CertificateDer<'static>, String> {
        match self.connect(addr, name).await {
            Ok(tls) => Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A platform with vhosts and `listen_tls` on port 0, then `apps`.
fn tls_platform(s: &Site, apps: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n{apps}"
    ))
}

/// [`tls_platform`] with `default_app` set: unknown hosts reach that app.
fn tls_platform_with_default(s: &Site, apps: &str, default_app: &str) -> std::path::PathBuf {
    tls_platform(s, &format!("default_app = \"{default_app}\"\n{apps}"))
}

/// A static app `id` answering its own id, on `domains`, with `tls`.
fn app(s: &Site, id: &str, domains: &str, tls: &str) -> String {
    s.write(&format!("{id}/index.html"), id);
    format!("[apps.{id}]\nsource = \"{id}\"\ndomains = [{domains}]\ntls = {tls}\n")
}

/// Writes a leaf's files as `name.pem` and `name.key`.
pub(crate) fn files(s: &Site, name: &str, leaf: &Leaf) -> String {
    s.write(&format!("certs/{name}.pem"), &leaf.cert);
    s.write(&format!("certs/{name}.key"), &leaf.key);
    format!("{{ cert = \"certs/{name}.pem\", key = \"certs/{name}.key\" }}")
}

#[tokio::test]
async fn file_certificates_rsa_and_ecdsa_serve_h2_and_http11_by_alpn() {
    let s = Site::new();
    let ca = Ca::new();
    let (ec, rsa) = (ca.leaf(&["ec.test"]), ca.rsa_leaf(&["rsa.test"]));
    let apps =
        app(&s, "ec", "\"ec.test\"", &files(&s, "ec", &ec)) + &app(&s, "rsa", "\"rsa.test\"", &files(&s, "rsa", &rsa));
    let b = Bext::serve(&tls_platform(&s, &apps));
    let tls = b.tls.expect("the TLS listener is announced");
    let client = Client::trusting(&[&ca.root]);

    let (reply, version, leaf) = client.get(tls, "ec.test", "/").await;
    assert_eq!(
        (reply.status, reply.text().as_str(), version),
        (200, "ec", http::Version::HTTP_2)
    );
    assert_eq!(leaf, ec.der);
    let (reply, version, leaf) = client.clone().alpn(&[b"http/1.1"]).get(tls, "rsa.test", "/").await;
    assert_eq!(
        (reply.status, reply.text().as_str(), version),
        (200, "rsa", http::Version::HTTP_11)
    );
    assert_eq!(leaf, rsa.der);
    // No ALPN at all: HTTP/1.1.
    let (reply, version, _) = client.clone().alpn(&[]).get(tls, "ec.test", "/").await;
    assert_eq!((reply.status, version), (200, http::Version::HTTP_11));
    // Plain HTTP still works beside it.
    assert_eq!(get(b.addr, "ec.test", "/").await.text(), "ec");
}

#[tokio::test]
async fn sni_picks_exact_over_wildcard_and_the_most_specific_wildcard() {
    let s = Site::new();
    let ca = Ca::new();
    let exact = ca.leaf(&["a.shop.test"]);
    let shop = ca.leaf(&["*.shop.test", "shop.test"]);
    let eu = ca.leaf(&["*.eu.shop.test"]);
    let apps = app(&s, "exact", "\"a.shop.test\"", &files(&s, "exact", &exact))
        + &app(&s, "shop", "\"shop.test\", \"*.shop.test\"", &files(&s, "shop", &shop))
        + &app(&s, "eu", "\"*.eu.shop.test\"", &files(&s, "eu", &eu));
    let b = Bext::serve(&tls_platform(&s, &apps));
    let tls = b.tls.unwrap();
    let client = Client::trusting(&[&ca.root]);

    assert_eq!(client.leaf_for(tls, "a.shop.test").await.unwrap(), exact.der);
    assert_eq!(client.leaf_for(tls, "b.shop.test").await.unwrap(), shop.der);
    assert_eq!(client.leaf_for(tls, "shop.test").await.unwrap(), shop.der);
    assert_eq!(client.leaf_for(tls, "x.eu.shop.test").await.unwrap(), eu.der);
    // Other spellings of the same names.
    assert_eq!(client.leaf_for(tls, "A.Shop.TEST").await.unwrap(), exact.der);
    assert_eq!(client.leaf_for(tls, "x.EU.shop.test").await.unwrap(), eu.der);
    // The app behind the certificate answers.
    let (reply, _, _) = client.get(tls, "x.eu.shop.test", "/").await;
    assert_eq!(reply.text(), "eu");

    // A name nobody serves and a hello without SNI: a handshake alert,
    // never another app's certificate.
    for name in ["other.test", "shop.test.evil", "xshop.test", "eu.shop.test.other"] {
        let err = client.leaf_for(tls, name).await.unwrap_err();
        assert!(err.contains("alert") || err.contains("Alert"), "{name}: {err}");
    }
    let err = client
        .clone()
        .without_sni()
        .leaf_for(tls, "a.shop.test")
        .await
        .unwrap_err();
    assert!(err.contains("alert") || err.contains("Alert"), "{err}");
    // The listener keeps serving after refusals.
    assert_eq!(client.leaf_for(tls, "a.shop.test").await.unwrap(), exact.der);
}

/// A ClientHello for `name` built by hand (no client library speaks TLS
/// 1.0 any more): `version` in the record and the hello, suites TLS 1.2
/// has (ECDHE with AES-GCM) and the extensions a TLS 1.2 server needs.
fn client_hello(version: [u8; 2], name: &str) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut body = version.to_vec();
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x2f]); // suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut exts = Vec::new();
    let name = name.as_bytes();
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    ext(&mut exts, 0x0000, &sni);
    ext(&mut exts, 0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]); // x25519, P-256
    ext(&mut exts, 0x000b, &[0x01, 0x00]); // uncompressed points
    ext(&mut exts, 0x000d, &[0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature algorithms
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, version[0], version[1]];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends `hello` and returns the first bytes the server answers.
async fn answer_to(addr: SocketAddr, hello: Vec<u8>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&hello).unwrap();
        let mut out = vec![0u8; 16];
        let n = c.read(&mut out).unwrap_or(0);
        out.truncate(n);
        out
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tls10_is_refused_and_plain_http_on_the_tls_port_gets_400() {
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["a.test"]);
    let b = Bext::serve(&tls_platform(&s, &app(&s, "a", "\"a.test\"", &files(&s, "a", &leaf))));
    let tls = b.tls.unwrap();

    // The same hello as TLS 1.2 gets a ServerHello: the hello is sound,
    // so the refusal below is about the version.
    let answer = answer_to(tls, client_hello([0x03, 0x03], "a.test")).await;
    assert_eq!(answer.get(..3), Some(&[0x16, 0x03, 0x03][..]), "{answer:?}");
    // As TLS 1.0: a fatal alert (protocol_version or handshake_failure), no ServerHello.
    let answer = answer_to(tls, client_hello([0x03, 0x01], "a.test")).await;
    assert!(answer.len() >= 7, "{answer:?}");
    assert_eq!((answer[0], answer[5]), (0x15, 2), "{answer:?}");
    assert!([40, 70].contains(&answer[6]), "{answer:?}");

    let raw = raw_async(tls, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", Duration::from_secs(10)).await;
    assert_eq!(status_of(&raw), 400, "{raw}");
    assert!(raw.contains("This port speaks HTTPS"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("connection: close"), "{raw}");
    // And the TLS listener still works.
    let (reply, _, _) = Client::trusting(&[&ca.root]).get(tls, "a.test", "/").await;
    assert_eq!(reply.text(), "a");
}

#[tokio::test]
async fn https_redirect_keeps_host_path_and_query_and_hostile_hosts_go_nowhere_else() {
    let s = Site::new();
    let ca = Ca::new();
    let secure = ca.leaf(&["secure.test", "*.secure.test"]);
    let open = ca.leaf(&["open.test"]);
    let apps = app(
        &s,
        "secure",
        "\"secure.test\", \"*.secure.test\"",
        &files(&s, "secure", &secure),
    ) + "https_redirect = true\nhsts = \"max-age=63072000; includeSubDomains\"\n"
        + &app(&s, "open", "\"open.test\"", &files(&s, "open", &open))
        + "hsts = \"max-age=600\"\n";
    // The secure app is also the default app: unknown hosts reach it.
    let cfg = tls_platform_with_default(&s, &apps, "secure");
    let b = Bext::serve(&cfg);
    let tls = b.tls.unwrap();
    let port = tls.port();

    let location = |r: &Reply| r.header("location").unwrap_or("").to_owned();
    let r = get(b.addr, "secure.test", "/a/b?x=1&y=%20").await;
    assert_eq!(r.status, 308);
    assert_eq!(location(&r), format!("https://secure.test:{port}/a/b?x=1&y=%20"));
    assert!(
        r.header("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    // A POST keeps its method: 308, not 301.
    let r = send(b.addr, request("POST", "/form", &[("host", "t1.secure.test")], "x=1")).await;
    assert_eq!(
        (r.status, location(&r)),
        (308, format!("https://t1.secure.test:{port}/form"))
    );

    // Hostile spellings: the Location's host is always one the app serves.
    let want_prefix = |host: &str| format!("https://{host}:{port}/");
    for (host, goes_to) in [
        ("SECURE.test.", "secure.test"),
        ("secure.test:80", "secure.test"),
        ("evil.test", "secure.test"),
        ("secure.test.evil.test", "secure.test"),
    ] {
        let r = get(b.addr, host, "/p").await;
        assert_eq!(r.status, 308, "{host}");
        assert_eq!(location(&r), format!("{}p", want_prefix(goes_to)), "{host}");
    }
    // A path that looks like another authority stays a path on our host.
    let r = get(b.addr, "secure.test", "//evil.test/x").await;
    assert!(
        location(&r).starts_with(&want_prefix("secure.test")),
        "{}",
        location(&r)
    );
    // Absolute-form target naming another host.
    let raw = raw_async(
        b.addr,
        b"GET http://evil.test/x HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status_of(&raw), 308, "{raw}");
    assert!(
        raw.contains(&format!("location: https://secure.test:{port}/x")),
        "{raw}"
    );
    // Hosts that are not host names, and two Hosts: 400, no redirect.
    for head in [
        "GET / HTTP/1.1\r\nHost: evil.test/@secure.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: secure.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: evil.test\\.secure.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: secure.test%2f@evil.test\r\nConnection: close\r\n\r\n",
    ] {
        let raw = raw_async(b.addr, head.as_bytes(), Duration::from_secs(10)).await;
        assert_eq!(status_of(&raw), 400, "{head:?}: {raw}");
        assert!(!raw.to_ascii_lowercase().contains("location:"), "{head:?}: {raw}");
    }

    // Over HTTPS: served, with HSTS for the apps that set it.
    let client = Client::trusting(&[&ca.root]);
    let (r, _, _) = client.get(tls, "secure.test", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "secure"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    let (r, _, _) = client.clone().alpn(&[b"http/1.1"]).get(tls, "open.test", "/").await;
    assert_eq!(r.header("strict-transport-security"), Some("max-age=600"));
    // The app without https_redirect is served over plain HTTP, without HSTS.
    let r = get(b.addr, "open.test", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "open"));
    assert!(r.header("strict-transport-security").is_none());
}

/// A default app with no domains of its own reaches any Host: its
/// redirect may name only a host bext holds a certificate for, never the
/// one the client sent.
#[tokio::test]
async fn a_default_app_without_domains_redirects_only_to_names_it_has_certificates_for() {
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["home.test"]);
    let apps = app(&s, "home", "", &files(&s, "home", &leaf)) + "https_redirect = true\n";
    let cfg = tls_platform_with_default(&s, &apps, "home");
    let b = Bext::serve(&cfg);
    let port = b.tls.unwrap().port();
    let r = get(b.addr, "HOME.test.", "/p?q=1").await;
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some(format!("https://home.test:{port}/p?q=1").as_str()))
    );
    for host in ["evil.test", "evil.test:1234", "home.test.evil.test"] {
        let r = get(b.addr, host, "/p").await;
        assert_eq!(r.status, 400, "{host}");
        assert!(r.header("location").is_none(), "{host}");
    }
    let raw = raw_async(
        b.addr,
        b"GET http://evil.test/x HTTP/1.1\r\nHost: home.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(!raw.to_ascii_lowercase().contains("location: https://evil"), "{raw}");
}

/// A name is served with the certificate of the app that claims it as a
/// domain, whatever the order of the apps: a default app's certificate
/// covers only names no app claims, and an app with only `~regex` domains
/// gets no certificate (it would claim `localhost`).
#[tokio::test]
async fn a_name_gets_the_certificate_of_the_app_that_claims_it() {
    let s = Site::new();
    let ca = Ca::new();
    let (wide, own, local) = (
        ca.leaf(&["b.test", "c.test"]),
        ca.leaf(&["b.test"]),
        ca.leaf(&["localhost"]),
    );
    // "aaa" sorts first; it has no domains and a certificate for b and c.
    let apps = app(&s, "aaa", "", &files(&s, "aaa", &wide))
        + &app(&s, "b", "\"b.test\"", &files(&s, "b", &own))
        + &app(&s, "local", "\"localhost\"", &files(&s, "local", &local))
        + &app(&s, "apattern", "\"~^r[0-9]+\\\\.test$\"", "\"self-signed\"");
    let b = Bext::serve(&tls_platform_with_default(&s, &apps, "aaa"));
    let (tls, client) = (b.tls.unwrap(), Client::trusting(&[&ca.root]));
    assert_eq!(client.leaf_for(tls, "b.test").await.unwrap(), own.der, "b's own");
    assert_eq!(
        client.leaf_for(tls, "c.test").await.unwrap(),
        wide.der,
        "the default app's"
    );
    assert_eq!(
        client.leaf_for(tls, "localhost").await.unwrap(),
        local.der,
        "not the regex app's"
    );
}

/// Whether the server closes `stream` (rather than the wait running out).
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(mut stream: S) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn the_tls_port_has_the_limits_of_the_plain_port() {
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["a.test"]);
    let apps = app(&s, "a", "\"a.test\"", &files(&s, "a", &leaf));
    let limits = "[platform.limits]\nheader_read_timeout = \"300ms\"\n";
    let b = Bext::serve(&tls_platform(&s, &format!("{limits}{apps}")));
    let tls = b.tls.unwrap();
    let client = Client::trusting(&[&ca.root]).alpn(&[b"http/1.1"]);
    // A client that never says hello, and one that says nothing after the
    // handshake: both dropped by header_read_timeout, as on plain HTTP.
    let silent = tokio::net::TcpStream::connect(tls).await.unwrap();
    assert!(closed_by_server(silent).await, "a silent TCP connection is closed");
    let quiet = client.connect(tls, "a.test").await.unwrap();
    assert!(
        closed_by_server(quiet).await,
        "a TLS connection sending no request is closed"
    );

    // One connection cap for both ports.
    let s = Site::new();
    let apps = app(&s, "a", "\"a.test\"", &files(&s, "a", &leaf));
    let limits = "[platform.limits]\nmax_connections_per_ip = 2\n";
    let b = Bext::serve(&tls_platform(&s, &format!("{limits}{apps}")));
    let tls = b.tls.unwrap();
    // Two kept-alive plain connections, each known to be accepted (it
    // answered), fill the cap.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut sender, conn) = h1_client(b.addr).await;
        let req = Request::get("/")
            .header("host", "a.test")
            .body(Full::<Bytes>::default())
            .unwrap();
        assert_eq!(collect(sender.send_request(req).await.unwrap()).await.text(), "a");
        held.push((sender, conn));
    }
    // The refusal happens at accept, after the TCP handshake: the TLS
    // handshake is what fails.
    let refused = client.connect(tls, "a.test").await;
    assert!(refused.is_err(), "a third connection, on the TLS port, is over the cap");
    drop(held);
    let c = client.clone();
    eventually(Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.connect(tls, "a.test").await.ok().map(|_| ()) }
    })
    .await;
}

/// One HTTP/1.1 request over a fresh connection made with `config`; how
/// its handshake went (full or resumed) and the status line. Reading the
/// answer also reads the session tickets TLS 1.3 sends after the handshake.
async fn request_with(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> (rustls::HandshakeKind, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config.clone())
        .connect(server_name, tcp)
        .await
        .unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    (kind, answer.lines().next().unwrap_or("").to_owned())
}

#[tokio::test]
async fn sessions_resume_by_ticket_and_by_session_id() {
    use rustls::client::{Resumption, Tls12Resumption};
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["a.test"]);
    let b = Bext::serve(&tls_platform(&s, &app(&s, "a", "\"a.test\"", &files(&s, "a", &leaf))));
    let tls = b.tls.unwrap();
    let config = |versions: &[&'static rustls::SupportedProtocolVersion], tls12: Tls12Resumption| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.root.clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.resumption = Resumption::in_memory_sessions(16).tls12_resumption(tls12);
        Arc::new(c)
    };
    let cases = [
        (
            "TLS 1.3 tickets",
            config(&[&rustls::version::TLS13], Tls12Resumption::Disabled),
        ),
        (
            "TLS 1.2 tickets",
            config(&[&rustls::version::TLS12], Tls12Resumption::SessionIdOrTickets),
        ),
        (
            "TLS 1.2 session ids",
            config(&[&rustls::version::TLS12], Tls12Resumption::SessionIdOnly),
        ),
    ];
    for (what, config) in cases {
        let (first, status) = request_with(&config, tls, "a.test").await;
        assert_eq!(first, rustls::HandshakeKind::Full, "{what}");
        assert_eq!(status, "HTTP/1.1 200 OK", "{what}");
        let (second, status) = request_with(&config, tls, "a.test").await;
        assert_eq!(second, rustls::HandshakeKind::Resumed, "{what}");
        assert_eq!(status, "HTTP/1.1 200 OK", "{what}");
    }
}

#[tokio::test]
async fn proxied_requests_say_which_scheme_the_client_used() {
    let echo = Echo::start().await;
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["shop.test", "*.shop.test"]);
    let cfg = shop_platform_with(&s, echo.addr, &format!("tls = {}", files(&s, "shop", &leaf)), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("[platform]\n", "[platform]\nlisten_tls = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let b = Bext::serve(&cfg);
    let client = Client::trusting(&[&ca.root]);

    let (r, _, _) = client.get(b.tls.unwrap(), "shop.test", "/x").await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    let (r, _, _) = client
        .clone()
        .alpn(&[b"http/1.1"])
        .get(b.tls.unwrap(), "t.shop.test", "/x")
        .await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    let r = send(
        b.addr,
        request(
            "GET",
            "/x",
            &[("host", "shop.test"), ("x-forwarded-proto", "https")],
            "",
        ),
    )
    .await;
    assert_eq!(
        r.json()["headers"]["x-forwarded-proto"],
        "http",
        "a client's claim is replaced"
    );
    // Every other spelling of the claim that frameworks honour is dropped.
    let spellings = [
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-scheme", "https"),
        ("x-forwarded-protocol", "https"),
        ("front-end-https", "on"),
        ("x-url-scheme", "https"),
        ("x-scheme", "https"),
        ("cf-visitor", "{\"scheme\":\"https\"}"),
        ("X-Forwarded-SSL", "on"),
    ];
    let mut headers = vec![("host", "shop.test")];
    headers.extend(spellings);
    let r = send(b.addr, request("GET", "/x", &headers, "")).await;
    for (name, _) in spellings {
        assert!(
            r.json()["headers"].get(name.to_ascii_lowercase()).is_none(),
            "{name} reached the upstream"
        );
    }
}

/// A browser's WebSocket over HTTP/2 on the TLS port (extended CONNECT,
/// RFC 8441) reaches an HTTP/1.1 upstream as an upgrade and an HTTP/2
/// one as an extended CONNECT; bytes go both ways.
#[tokio::test]
async fn websockets_over_http2_on_the_tls_port_reach_either_kind_of_upstream() {
    let echo = Echo::start().await;
    let h2_up = h2_websocket_upstream(true).await;
    let ca = Ca::new();
    let leaf = ca.leaf(&["shop.test"]);
    for (upstream, app_lines) in [(echo.addr, ""), (h2_up, "http2 = true")] {
        let s = Site::new();
        let lines = format!("{app_lines}\ntls = {}", files(&s, "shop", &leaf));
        let cfg = shop_platform_with(&s, upstream, &lines, "");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("[platform]\n", "[platform]\nlisten_tls = \"127.0.0.1:0\"\n"),
        )
        .unwrap();
        let b = Bext::serve(&cfg);
        let mut sender = Client::trusting(&[&ca.root]).h2(b.tls.unwrap(), "shop.test").await;
        let first = sender
            .send_request(request("GET", "https://shop.test/", &[], ""))
            .await
            .unwrap();
        assert_eq!(collect(first).await.status, 200, "{app_lines}");
        let res = sender
            .send_request(websocket_connect("https://shop.test/chat", "websocket"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{app_lines}");
        let mut io = TokioIo::new(hyper::upgrade::on(res).await.unwrap());
        echoes_through(&mut io).await;
        let res = sender
            .send_request(websocket_connect("https://shop.test/chat", "connect-udp"))
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{app_lines}");
    }
}

#[tokio::test]
async fn javascript_sees_the_scheme_the_client_used() {
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["js.test"]);
    s.write(
        "js/index.js",
        "export default { fetch(request) { const h = request.headers; \
         if (new URL(request.url).pathname === '/h') return Response.json({ proto: h.get('x-forwarded-proto'), \
         ssl: h.get('x-forwarded-ssl'), scheme: h.get('x-forwarded-scheme') }); \
         return new Response(request.url); } }",
    );
    let apps = format!(
        "[apps.js]\nruntime = \"js\"\nsource = \"js\"\ndomains = [\"js.test\"]\ntls = {}\n",
        files(&s, "js", &leaf)
    );
    let b = Bext::serve(&tls_platform(&s, &apps));
    let (r, _, _) = Client::trusting(&[&ca.root])
        .get(b.tls.unwrap(), "js.test", "/a?b=1")
        .await;
    assert_eq!(r.text(), "https://js.test/a?b=1");
    assert_eq!(get(b.addr, "js.test", "/a?b=1").await.text(), "http://js.test/a?b=1");
    // The forwarding headers are bext's, not the client's claims.
    let claims = [
        ("host", "js.test"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-scheme", "https"),
    ];
    let r = send(b.addr, request("GET", "/h", &claims, "")).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"proto": "http", "ssl": null, "scheme": null})
    );
    let (r, _, _) = Client::trusting(&[&ca.root]).get(b.tls.unwrap(), "js.test", "/h").await;
    assert_eq!(r.json()["proto"], "https");
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let s = Site::new();
    let ca = Ca::new();
    let (first, second, third) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let b = Bext::serve(&tls_platform(&s, &app(&s, "a", "\"a.test\"", &files(&s, "a", &first))));
    let tls = b.tls.unwrap();
    let client = Client::trusting(&[&ca.root]);
    assert_eq!(client.leaf_for(tls, "a.test").await.unwrap(), first.der);

    // A connection opened before the swap keeps working after it.
    let before = client
        .clone()
        .alpn(&[b"http/1.1"])
        .connect(tls, "a.test")
        .await
        .unwrap();
    let (mut before_tx, before_conn) = hyper::client::conn::http1::handshake(TokioIo::new(before))
        .await
        .unwrap();
    tokio::spawn(before_conn);

    // A new certificate, then its key: a reload that sees only the first
    // (they do not match) is refused, the next one takes both.
    files(&s, "a", &second);
    let c = client.clone();
    let want = second.der.clone();
    eventually(Duration::from_secs(15), || {
        let (c, want) = (c.clone(), want.clone());
        async move { (c.leaf_for(tls, "a.test").await.ok()? == want).then_some(()) }
    })
    .await;
    let req = Request::get("/")
        .header("host", "a.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let r = collect(before_tx.send_request(req).await.unwrap()).await;
    assert_eq!(r.text(), "a", "the connection from before the swap still serves");

    // A key that is not the certificate's: refused (the swap above may
    // have logged refusals of its own: count from here); the current one stays.
    let refusals = || b.log().matches("reload rejected").count();
    let before = refusals();
    s.write("certs/a.key", &third.key);
    eventually(Duration::from_secs(15), || async {
        (refusals() > before).then_some(())
    })
    .await;
    assert!(b.log().contains("does not match the certificate"), "{}", b.log());
    assert_eq!(client.leaf_for(tls, "a.test").await.unwrap(), second.der);
    let (r, _, _) = client.get(tls, "a.test", "/").await;
    assert_eq!(r.text(), "a");

    // Its certificate arrives: the pair is taken.
    s.write("certs/a.pem", &third.cert);
    let want = third.der.clone();
    eventually(Duration::from_secs(15), || {
        let (c, want) = (client.clone(), want.clone());
        async move { (c.leaf_for(tls, "a.test").await.ok()? == want).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn self_signed_certificates_for_an_app_and_for_bext_run() {
    // An app's domains, wildcards included; kept under data_dir.
    let s = Site::new();
    let b = Bext::serve(&tls_platform(
        &s,
        &app(&s, "dev", "\"dev.test\", \"*.dev.test\"", "\"self-signed\""),
    ));
    let kept = std::fs::read(s.path(".bext/tls/self-signed/dev.crt")).expect("the certificate is kept");
    let root = first_cert(&kept);
    let client = Client::trusting(&[&root]);
    let (r, version, leaf) = client.get(b.tls.unwrap(), "t1.dev.test", "/").await;
    assert_eq!((r.text().as_str(), version), ("dev", http::Version::HTTP_2));
    assert_eq!(leaf, root);
    assert_eq!(client.leaf_for(b.tls.unwrap(), "dev.test").await.unwrap(), root);
    drop(b);
    // A restart serves the same certificate.
    let b = Bext::serve(&s.path("platform.toml"));
    assert_eq!(client.leaf_for(b.tls.unwrap(), "dev.test").await.unwrap(), root);

    // `bext run --tls`: localhost, announced with its port.
    let site = Site::new();
    site.write("index.html", "hello");
    let dir = site.dir.path().to_str().unwrap();
    // (written as users of nginx and Caddy do: a name and a port)
    let b = Bext::start(&["run", dir, "--listen", "localhost:0", "--listen-tls", "localhost:0"]);
    let kept = std::fs::read(site.path(".bext/tls/self-signed/app.crt")).unwrap();
    let root = first_cert(&kept);
    let (r, _, _) = Client::trusting(&[&root]).get(b.tls.unwrap(), "localhost", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

/// The first certificate of a PEM file.
pub(crate) fn first_cert(pem: &[u8]) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).next().unwrap().unwrap()
}

#[test]
fn check_names_the_file_and_the_reason_for_every_bad_certificate() {
    let s = Site::new();
    let ca = Ca::new();
    let good = ca.leaf(&["good.test"]);
    let other = ca.leaf(&["wrong-key.test"]);
    let expired = ca.expired_leaf(&["expired.test"]);
    let elsewhere = ca.leaf(&["elsewhere.test", "*.elsewhere.test"]);
    s.write("certs/wrong-key.pem", &other.cert);
    s.write("certs/wrong-key.key", &good.key);
    let apps = app(&s, "good", "\"good.test\"", &files(&s, "good", &good))
        + &app(
            &s,
            "wrongkey",
            "\"wrong-key.test\"",
            "{ cert = \"certs/wrong-key.pem\", key = \"certs/wrong-key.key\" }",
        )
        + &app(&s, "expired", "\"expired.test\"", &files(&s, "expired", &expired))
        + &app(
            &s,
            "missing",
            "\"missing.test\"",
            "{ cert = \"certs/nope.pem\", key = \"certs/nope.key\" }",
        )
        + &app(
            &s,
            "names",
            "\"shop.test\", \"*.shop.test\"",
            &files(&s, "names", &elsewhere),
        )
        + &app(
            &s,
            "notpem",
            "\"notpem.test\"",
            "{ cert = \"index-not-pem.txt\", key = \"certs/good.key\" }",
        )
        + &app(&s, "acme", "\"acme.test\"", "\"acme\"")
        + &app(&s, "typo", "\"typo.test\"", "\"self-sigend\"");
    s.write("index-not-pem.txt", "just text\n");
    let cfg = tls_platform(&s, &apps);
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let dir = s.dir.path().display().to_string();
    for want in [
        format!("apps.wrongkey.tls.key: {dir}/certs/wrong-key.key: the private key does not match the certificate"),
        format!("apps.expired.tls.cert: {dir}/certs/expired.pem: the certificate expired on"),
        format!("apps.missing.tls.cert: {dir}/certs/nope.pem: cannot read"),
        format!(
            "apps.names.tls.cert: {dir}/certs/names.pem: the certificate's names (elsewhere.test, *.elsewhere.test) cover none of the app's domains (shop.test, *.shop.test)"
        ),
        format!("apps.notpem.tls.cert: {dir}/index-not-pem.txt: no CERTIFICATE block"),
        "apps.acme.tls: `acme` needs a `[platform.acme]` table".to_owned(),
        "apps.typo.tls".to_owned(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("apps.good"), "{err}");

    // Without listen_tls, https settings have nowhere to apply.
    let s = Site::new();
    s.write("a/index.html", "a");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.a]\nsource = \"a\"\nhttps_redirect = true\nhsts = \"1 year\"\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps.a.https_redirect: needs `[platform] listen_tls`"),
        "{err}"
    );
    assert!(
        err.contains("apps.a.hsts: `1 year`: starts with max-age=<seconds>"),
        "{err}"
    );
}

#[test]
fn check_warns_of_names_a_certificate_leaves_out_and_redirects_to_no_certificate() {
    let s = Site::new();
    let ca = Ca::new();
    let part = ca.leaf(&["a.test"]);
    let apps = app(&s, "part", "\"a.test\", \"b.test\"", &files(&s, "part", &part))
        + "https_redirect = true\n"
        + "[apps.bare]\nsource = \"part\"\ndomains = [\"bare.test\", \"*.bare.test\"]\nhttps_redirect = true\n"
        + &app(&s, "dev", "\"dev.test\"", "\"self-signed\"")
        + "https_redirect = true\n";
    let cfg = tls_platform(&s, &apps);
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warnings, not errors: {err}");
    let dir = s.dir.path().display().to_string();
    for want in [
        format!("warning: {dir}/platform.toml: apps.part.tls.cert: {dir}/certs/part.pem serves a.test but not b.test"),
        "apps.part.https_redirect: no certificate serves b.test:".to_owned(),
        "apps.bare.https_redirect: no certificate serves bare.test:".to_owned(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("apps.dev"), "its own certificate covers it: {err}");
}

#[tokio::test]
async fn a_certificate_is_not_served_for_an_app_domain_it_does_not_name() {
    let s = Site::new();
    let ca = Ca::new();
    let part = ca.leaf(&["a.test"]);
    let b = Bext::serve(&tls_platform(
        &s,
        &app(&s, "part", "\"a.test\", \"b.test\"", &files(&s, "part", &part)),
    ));
    let (tls, client) = (b.tls.unwrap(), Client::trusting(&[&ca.root]));
    assert_eq!(client.leaf_for(tls, "a.test").await.unwrap(), part.der);
    let err = client.leaf_for(tls, "b.test").await.unwrap_err();
    assert!(err.contains("alert") || err.contains("Alert"), "{err}");
}

/// Writes `raw` on a TLS connection for `sni` made by `client` and reads
/// until the server closes or 10 s pass: what came back, as text.
async fn raw_exchange(client: &Client, addr: SocketAddr, sni: &str, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = client.connect(addr, sni).await.unwrap();
    tls.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_for_a_host_the_connection_was_not_opened_for_is_misdirected() {
    let s = Site::new();
    let ca = Ca::new();
    let (a, b_leaf, w) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]), ca.leaf(&["*.w.test"]));
    let apps = app(&s, "a", "\"a.test\"", &files(&s, "a", &a))
        + &app(&s, "b", "\"b.test\"", &files(&s, "b", &b_leaf))
        + &app(&s, "w", "\"*.w.test\"", &files(&s, "w", &w));
    let b = Bext::serve(&tls_platform(&s, &apps));
    let tls = b.tls.unwrap();
    let h1 = Client::trusting(&[&ca.root]).alpn(&[b"http/1.1"]);
    let status = |answer: &str| answer.lines().next().unwrap_or("").to_owned();
    let ask = |sni: &'static str, head: String| {
        let h1 = h1.clone();
        async move { raw_exchange(&h1, tls, sni, head.as_bytes()).await }
    };
    let close = "Connection: close\r\n\r\n";

    // The name the connection was opened for, in other spellings: served.
    for host in ["a.test", "A.TEST", "a.test.", "a.test:443"] {
        let answer = ask("a.test", format!("GET / HTTP/1.1\r\nHost: {host}\r\n{close}")).await;
        assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{host}");
        assert!(answer.ends_with('a'), "{host}: {answer}");
    }
    // Another app's host on a.test's connection: 421, never b's content
    // behind a certificate the client checked for a.test. Also when the
    // other host hides in an absolute-form target.
    for head in [
        format!("GET / HTTP/1.1\r\nHost: b.test\r\n{close}"),
        format!("GET / HTTP/1.1\r\nHost: B.Test.\r\n{close}"),
        format!("GET https://b.test/ HTTP/1.1\r\nHost: a.test\r\n{close}"),
        format!("GET / HTTP/1.1\r\nHost: unknown.test\r\n{close}"),
    ] {
        let answer = ask("a.test", head.clone()).await;
        assert_eq!(status(&answer), "HTTP/1.1 421 Misdirected Request", "{head}");
        assert!(!answer.ends_with('b'), "{head}: {answer}");
    }
    // Two tenants under one wildcard certificate share connections (what
    // HTTP/2 clients do); the app answers.
    let answer = ask("x.w.test", format!("GET / HTTP/1.1\r\nHost: y.w.test\r\n{close}")).await;
    assert_eq!(status(&answer), "HTTP/1.1 200 OK");
    // HTTP/1.0 without a Host: the app of the name the handshake was for.
    let answer = ask("b.test", "GET / HTTP/1.0\r\n\r\n".into()).await;
    assert!(answer.starts_with("HTTP/1.0 200") && answer.ends_with('b'), "{answer}");

    // HTTP/2: `:authority` is checked the same way.
    let client = Client::trusting(&[&ca.root]);
    let connection = client.connect(tls, "a.test").await.unwrap();
    assert_eq!(connection.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(connection))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (authority, want) in [("a.test", 200), ("b.test", 421), ("A.test", 200), ("b.test:443", 421)] {
        let req = Request::get(format!("https://{authority}/"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let reply = collect(sender.send_request(req).await.unwrap()).await;
        assert_eq!(reply.status, want, "{authority}");
    }
}

#[tokio::test]
async fn the_protocol_alpn_settled_is_the_one_spoken() {
    let s = Site::new();
    let ca = Ca::new();
    let a = ca.leaf(&["a.test"]);
    let b = Bext::serve(&tls_platform(&s, &app(&s, "a", "\"a.test\"", &files(&s, "a", &a))));
    let tls = b.tls.unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let is_h2 = |answer: &str| answer.as_bytes().get(3) == Some(&4);
    // Agreed on http/1.1, then an HTTP/2 preface: HTTP/1.1 refuses it
    // (hyper closes), never answers with HTTP/2's SETTINGS.
    let h1 = Client::trusting(&[&ca.root]).alpn(&[b"http/1.1"]);
    let answer = raw_exchange(&h1, tls, "a.test", preface).await;
    assert!(
        !is_h2(&answer) && (answer.is_empty() || answer.starts_with("HTTP/1.1 400")),
        "{answer:?}"
    );
    // Agreed on h2, then HTTP/1.1: HTTP/2 (a GOAWAY for the bad preface),
    // never an HTTP/1.1 answer.
    let h2 = Client::trusting(&[&ca.root]).alpn(&[b"h2"]);
    let answer = raw_exchange(&h2, tls, "a.test", b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert!(!answer.contains("HTTP/1.1"), "{answer:?}");
    // Without ALPN, HTTP/1.1 only (RFC 9113 §3.2: h2 over TLS needs ALPN).
    let none = Client::trusting(&[&ca.root]).alpn(&[]);
    let answer = raw_exchange(
        &none,
        tls,
        "a.test",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let answer = raw_exchange(&none, tls, "a.test", preface).await;
    assert!(!is_h2(&answer), "{answer:?}");
    // Plain HTTP still tells h2c (prior knowledge) from HTTP/1.1.
    let answer = raw_async(b.addr, preface, Duration::from_secs(2)).await;
    assert!(is_h2(&answer), "{answer:?}");
    let answer = raw_async(
        b.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// The cache keys on the scheme the app sees: a page rendered for an
/// `http://` request (its links, redirects, canonical URL) is never
/// served to an `https://` client, nor the reverse.
#[tokio::test]
async fn the_cache_keeps_http_and_https_pages_apart() {
    let (_s, ca, platform) = cached_js_page(
        "export default { fetch: (r) => new Response(r.url, { headers: { 'cache-control': 'public, max-age=60' } }) }",
    );
    let b = Bext::serve(&platform);
    let tls = b.tls.expect("the TLS listener is announced");
    let client = Client::trusting(&[&ca.root]);
    let plain = get(b.addr, "page.test", "/p").await;
    assert_eq!(
        (plain.text().as_str(), plain.header("x-cache")),
        ("http://page.test/p", Some("MISS"))
    );
    let (secure, _, _) = client.get(tls, "page.test", "/p").await;
    assert_eq!(secure.header("x-cache"), Some("MISS"), "{}", secure.text());
    assert!(secure.text().starts_with("https://page.test"), "{}", secure.text());
    let (again, _, _) = client.get(tls, "page.test", "/p").await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(get(b.addr, "page.test", "/p").await.text(), "http://page.test/p");
}

/// An `https://` page is rendered again as `https://`: by the background
/// refresh of a stale entry, and by `revalidate` with `"scheme": "https"`
/// (the app saw `http://` in both before, and its links went into the
/// page kept for `https://` clients).
#[tokio::test]
async fn the_cache_renders_https_pages_again_as_https() {
    let (_s, ca, platform) = cached_js_page(
        "let n = 0;\nexport default { fetch: (r) => new Response(`${r.url} n=${++n}`, \
         { headers: { 'cache-control': 'public, max-age=1, stale-while-revalidate=60' } }) }",
    );
    let b = Bext::serve_env(&platform, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    let tls = b.tls.expect("the TLS listener is announced");
    let client = Client::trusting(&[&ca.root]);

    let (first, _, _) = client.get(tls, "page.test", "/p").await;
    assert_eq!(first.header("x-cache"), Some("MISS"), "{}", first.text());
    let first = first.text();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (stale, _, _) = client.get(tls, "page.test", "/p").await;
    assert_eq!((stale.header("x-cache"), stale.text()), (Some("STALE"), first.clone()));
    let refreshed = eventually(Duration::from_secs(10), || async {
        let (r, _, _) = client.get(tls, "page.test", "/p").await;
        (r.text() != first).then(|| r.text())
    })
    .await;
    assert!(refreshed.starts_with("https://page.test/p n="), "{refreshed}");

    let revalidate = |body: &'static str| {
        let addr = b.addr;
        async move {
            send(
                addr,
                request(
                    "POST",
                    "/__bext/api/revalidate",
                    &[("host", "page.test"), ("authorization", "Bearer sekret")],
                    body,
                ),
            )
            .await
        }
    };
    let r = revalidate(r#"{"app":"page","path":"/q","host":"page.test","scheme":"https"}"#).await;
    assert_eq!(
        (r.status, r.json()["stored"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    let (hit, _, _) = client.get(tls, "page.test", "/q").await;
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.text());
    assert!(hit.text().starts_with("https://page.test/q n="), "{}", hit.text());
    // Without a scheme the page is rendered for `http://` clients, as before.
    let r = revalidate(r#"{"app":"page","path":"/r","host":"page.test"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let plain = get(b.addr, "page.test", "/r").await;
    assert_eq!(plain.header("x-cache"), Some("HIT"));
    assert!(plain.text().starts_with("http://page.test/r n="), "{}", plain.text());
    let r = revalidate(r#"{"app":"page","path":"/r","host":"page.test","scheme":"ftp"}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`scheme` \"ftp\""), "{}", r.text());
}

/// A site with the isr plugin and one JS app `page` on `page.test` over
/// TLS (a certificate of the returned CA), its code `script`; and the
/// platform file.
fn cached_js_page(script: &str) -> (Site, Ca, std::path::PathBuf) {
    let s = Site::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["page.test"]);
    s.write("manifests/isr.yaml", "name: isr\nenabled: true\n");
    s.write("page/index.js", script);
    let apps = format!(
        "[apps.page]\nruntime = \"js\"\nsource = \"page\"\ndomains = [\"page.test\"]\ncache = {{ default_ttl = \"60s\" }}\ntls = {}\n",
        files(&s, "page", &leaf)
    );
    let platform = tls_platform(&s, &apps);
    (s, ca, platform)
}
