//! HTTPS on `listen_tls`: the handshake in front of the same hyper
//! connection as plain HTTP. The certificate comes from the pipeline
//! current at the handshake (so a reload swaps certificates for new
//! connections only); a plain-HTTP request sent here gets a clear 400.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bext_tls::{CertifiedKey, ResolvesServerCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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
        let key = self.0.pipeline.load().tls.certs.resolve(name);
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
pub fn acceptor(kernel: &Arc<Kernel>) -> Result<TlsAcceptor, bext_tls::TlsError> {
    let config = bext_tls::server_config(Arc::new(PipelineCerts(kernel.clone())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the handshake, within `limit` (the header timeout: a client that
/// never finishes one holds a connection like a slow head). `None` when it
/// failed, or when the client spoke plain HTTP (answered with a 400).
pub(crate) async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    limit: Duration,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) => {
            refuse_plain_http(stream).await;
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
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
