//! bext's certificates, one job: turn an app's `tls` setting into a
//! certificate the listener can present, and pick one per handshake.
//!
//! - [`load_pair`] reads a PEM chain and key and checks what a bad file
//!   would otherwise break at the first handshake (key mismatch, expiry).
//! - [`CertInfo::covers_any`] checks the names against the app's domains.
//! - [`self_signed`] makes a development certificate for given names.
//! - [`CertStore`] chooses by SNI with the vhosts rules (exact beats
//!   wildcard, the longest wildcard suffix wins); a name nobody serves gets
//!   no certificate, so the handshake fails instead of showing another
//!   app's certificate.
//! - [`server_config`] is the listener's TLS policy: TLS 1.2 and 1.3,
//!   ALPN h2 and http/1.1, session tickets and session ids.
//!
//! The crypto provider is ring, installed explicitly by [`install_provider`].

mod error;
mod names;
mod pem;
mod self_signed;
mod store;

use std::sync::Arc;

pub use error::TlsError;
pub use names::CertInfo;
pub use pem::load_pair;
pub use rustls::server::ResolvesServerCert;
pub use rustls::sign::CertifiedKey;
pub use self_signed::{SelfSigned, self_signed};
pub use store::CertStore;

/// The crypto provider every TLS object in bext uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process's default provider, so that nothing
/// (outbound clients included) has to guess which one to use. Calling it
/// again is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The listener's TLS settings: rustls' safe defaults restricted to TLS
/// 1.2 and 1.3, HTTP/2 preferred over HTTP/1.1 by ALPN, resumption by
/// stateless tickets (rotated by rustls) and by session ids (an in-memory
/// cache). `resolver` picks the certificate for each handshake.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Setup(e.to_string()))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    Ok(config)
}

/// Sessions remembered for id-based resumption (TLS 1.2 clients without
/// ticket support); about 100 bytes each.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;
