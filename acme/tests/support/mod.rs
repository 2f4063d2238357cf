//! The small servers that answer pebble's validations the way the
//! kernel's listeners do, around the real pebble of `pebble.rs` (which the
//! kernel's e2e tests include too).

#![allow(dead_code, unreachable_pub)]

mod pebble;
pub use pebble::*;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bext_acme::{ACME_TLS_ALPN, ChallengeResolver, Challenges};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;

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
