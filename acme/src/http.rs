//! The HTTP client that talks to the ACME server and to the on-demand ask:
//! hyper over rustls with ring, the public roots plus `ca_root`, and a
//! timeout on every request so a silent server cannot hold an order.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{AcmeError, chain};

/// One request's limit (connect, send, response head).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS (and HTTP) client with bext's roots; cheap to clone.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
}

impl HttpClient {
    /// Trusts the public roots and, when given, every certificate in the
    /// `ca_root` PEM file.
    pub(crate) fn new(ca_root: Option<&Path>) -> Result<HttpClient, AcmeError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_root {
            let bad = |reason: String| AcmeError::CaRoot {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("not a usable root certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no certificate in the file".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Protocol {
                during: "client setup",
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// A GET, answered with its status (the body is not needed).
    pub(crate) async fn get_status(&self, url: &str) -> Result<http::StatusCode, String> {
        let req = Request::get(url)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(BodyWrapper::default())
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(rsp)) => Ok(rsp.status()),
            Ok(Err(e)) => Err(chain(&e)),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

const USER_AGENT: &str = concat!("bext-acme/", env!("CARGO_PKG_VERSION"));

impl instant_acme::HttpClient for HttpClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.client.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
                Ok(Ok(rsp)) => Ok(BytesResponse::from(rsp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(chain(&e).into())),
                Err(_) => Err(instant_acme::Error::Other(
                    format!("the ACME server did not answer within {REQUEST_TIMEOUT:?}").into(),
                )),
            }
        })
    }
}
