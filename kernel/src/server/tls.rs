//! HTTPS on `listen_tls`: the handshake in front of the same hyper
//! connection as plain HTTP. The certificate comes from the pipeline
//! current at the handshake (so a reload swaps certificates for new
//! connections only), then from the kernel's ACME service; a plain-HTTP
//! request sent here gets a clear 400. With `[platform.acme]`, the
//! listener also answers TLS-ALPN-01 validations (`acme-tls/1`) and waits
//! for an on-demand certificate for a name nobody serves yet: a tenant's
//! own domain, or one `on_demand_ask` allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bext_acme::{ACME_TLS_ALPN, ChallengeResolver, Challenges};
use bext_tls::{CertifiedKey, ResolvesServerCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use crate::Kernel;

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Picks certificates from the live pipeline.
struct PipelineCerts(Arc<Kernel>);

impl std::fmt::Debug for PipelineCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineCerts")
    }
}

impl ResolvesServerCert for PipelineCerts {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let key = self.0.certificate_for(name);
        if key.is_none() {
            tracing::debug!(
                sni = name.unwrap_or("(none)"),
                "no certificate for this name; handshake refused"
            );
        }
        key
    }
}

/// The acceptor every TLS listener shares (one session cache and ticket
/// key for all workers, so resumption works whichever worker accepts).
/// With ACME, validations (`acme-tls/1` alone) are answered from its
/// challenges and never get an app's certificate.
pub fn acceptor(kernel: &Arc<Kernel>) -> Result<TlsAcceptor, bext_tls::TlsError> {
    let certs: Arc<dyn ResolvesServerCert> = Arc::new(PipelineCerts(kernel.clone()));
    let config = match kernel.acme.get() {
        Some(acme) => {
            let mut config =
                bext_tls::server_config(Arc::new(ChallengeResolver::new(acme.challenges().clone(), certs)))?;
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
            config
        }
        None => bext_tls::server_config(certs)?,
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the handshake, within `limit` (the header timeout: a client that
/// never finishes one holds a connection like a slow head). `None` when it
/// failed, when the client spoke plain HTTP (answered with a 400), or when
/// it was an ACME validation (closed once the handshake is done).
pub(crate) async fn handshake(
    kernel: &Kernel,
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    limit: Duration,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    // One deadline for the first byte and the handshake together.
    let deadline = tokio::time::Instant::now() + limit;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) => {
            refuse_plain_http(stream).await;
            return None;
        }
        _ => return None,
    }
    let on_demand = kernel.acme.get().and_then(|a| a.on_demand().cloned());
    let accepted = match on_demand {
        None => tokio::time::timeout_at(deadline, acceptor.accept(stream)).await,
        Some(on_demand) => {
            let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
            let start = match tokio::time::timeout_at(deadline, lazy).await {
                Ok(Ok(start)) => start,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS ClientHello unreadable");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS ClientHello took too long");
                    return None;
                }
            };
            let unknown = {
                let hello = start.client_hello();
                match hello.server_name() {
                    Some(name)
                        if !Challenges::is_validation(&hello)
                            && kernel.certificate_for(Some(name)).is_none()
                            && !kernel.acme.get().is_some_and(|a| a.is_kept(name)) =>
                    {
                        Some(name.to_owned())
                    }
                    _ => None,
                }
            };
            if let Some(name) = unknown {
                // Bounded by `on_demand_wait` inside; a refusal leaves the
                // name unknown, so the resolver fails the handshake with an
                // alert.
                if let Err(e) = on_demand.certificate(&name).await {
                    tracing::debug!(%peer, sni = %name, error = %e, "no on-demand certificate; handshake refused");
                }
            }
            // After an on-demand order, the rest of the handshake gets a
            // limit of its own.
            tokio::time::timeout(limit, start.into_stream(acceptor.config().clone())).await
        }
    };
    match accepted {
        Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
            // RFC 8737: the validation is the handshake; no HTTP follows.
            tracing::info!(%peer, "ACME TLS-ALPN-01 validation answered");
            let mut tls = tls;
            let _ = tls.shutdown().await;
            None
        }
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake took too long");
            None
        }
    }
}

/// Answer to a plain-HTTP request on the TLS port.
const PLAIN_HTTP_ANSWER: &str = "This port speaks HTTPS; send the request again with https://\n";

/// Answers 400 and closes. What the client sent is read (a little, for a
/// moment) before closing, so the kernel does not reset the connection
/// under the answer.
async fn refuse_plain_http(mut stream: TcpStream) {
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
        PLAIN_HTTP_ANSWER.len()
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024usize;
    let drain = async {
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
