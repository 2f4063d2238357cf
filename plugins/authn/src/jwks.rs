//! JWKS documents: where they come from (a file, or a URL fetched over
//! rustls), reading one, and the task that fetches it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bext_plugin_abi::PluginError;

use crate::config::resolve;
use crate::keys::{Key, keys_from_jwks};

/// Where the JWKS is.
#[derive(Clone)]
pub(crate) enum JwksSource {
    File(PathBuf),
    Url(http::Uri, Box<JwksClient>),
}

impl JwksSource {
    /// `jwt.jwks` (a URL, or a file relative to `data_dir`) with its
    /// `jwt.jwks_ca`, checked.
    pub(crate) fn new(jwks: &str, jwks_ca: Option<&str>, data_dir: &Path) -> Result<Self, PluginError> {
        if jwks.starts_with("http://") || jwks.starts_with("https://") {
            let url: http::Uri = jwks
                .parse()
                .map_err(|e| PluginError::config("jwt.jwks", format!("not a URL: {e}")))?;
            let ca = jwks_ca.map(|f| resolve(data_dir, Path::new(f)));
            let client =
                JwksClient::new(ca.as_deref()).map_err(|e| PluginError::config("jwt.jwks_ca", e.to_string()))?;
            Ok(JwksSource::Url(url, Box::new(client)))
        } else {
            if jwks_ca.is_some() {
                return Err(PluginError::config("jwt.jwks_ca", "only for an https:// `jwks` URL"));
            }
            Ok(JwksSource::File(resolve(data_dir, Path::new(jwks))))
        }
    }
}

/// The HTTP(S) client for a JWKS URL: rustls with Mozilla's roots (plus
/// `jwks_ca`), kept for the refreshes so they reuse the connection.
#[derive(Clone)]
pub(crate) struct JwksClient(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Empty<bytes::Bytes>,
    >,
);

/// Why a `jwks_ca` file cannot be used.
#[derive(Debug, thiserror::Error)]
enum CaError {
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: no PEM certificate in it")]
    Empty(String),
    #[error("{0}: {1}")]
    Bad(String, String),
}

impl JwksClient {
    fn new(extra_ca: Option<&Path>) -> Result<Self, CaError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_ca {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| CaError::Read(shown.clone(), e))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| CaError::Bad(shown.clone(), e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| CaError::Bad(shown.clone(), e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(CaError::Empty(shown));
            }
        }
        // The provider is named here, not installed process-wide: nothing
        // depends on which one another crate compiled in.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(JwksClient(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
        ))
    }
}

/// Reads a JWKS document from a file or a URL.
pub(crate) async fn load_jwks(source: &JwksSource) -> Result<Vec<Key>, String> {
    let bytes = match source {
        JwksSource::File(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        JwksSource::Url(url, client) => fetch(url, client).await?,
    };
    keys_from_jwks(&bytes)
}

async fn fetch(url: &http::Uri, client: &JwksClient) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    // The error's sources say why (an unknown certificate authority, a
    // refused connection): the top level alone says only "client error".
    let why = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        format!("{url}: {text}")
    };
    let res = tokio::time::timeout(Duration::from_secs(5), client.0.get(url.clone()))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| why(&e))?;
    if !res.status().is_success() {
        return Err(format!("{url}: status {}", res.status()));
    }
    let body = http_body_util::Limited::new(res.into_body(), 1 << 20);
    let bytes = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(bytes.to_bytes().to_vec())
}

/// Refetches the JWKS every `every`, or sooner when a token names an
/// unknown `kid`; ends when the plugin instance is gone.
pub(crate) async fn refresh_jwks(
    keys: std::sync::Weak<ArcSwap<Vec<Key>>>,
    static_keys: Vec<Key>,
    source: JwksSource,
    every: Duration,
    refetch: Arc<tokio::sync::Notify>,
    plugin: String,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = refetch.notified() => {}
        }
        let Some(keys) = keys.upgrade() else { return };
        match load_jwks(&source).await {
            Ok(fresh) => {
                let mut all = static_keys.clone();
                all.extend(fresh);
                keys.store(Arc::new(all));
            }
            Err(e) => tracing::warn!(plugin = %plugin, error = %e, "JWKS not refreshed; the previous keys stay"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(r: Result<JwksSource, PluginError>) -> (String, String) {
        match r {
            Err(PluginError::Config { path, reason }) => (path, reason),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bext-authn-jwks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_are_relative_to_the_data_dir_and_urls_get_a_client() {
        let data = Path::new("/srv/bext");
        match JwksSource::new("keys/jwks.json", None, data).unwrap() {
            JwksSource::File(p) => assert_eq!(p, Path::new("/srv/bext/keys/jwks.json")),
            JwksSource::Url(..) => panic!("a file"),
        }
        match JwksSource::new("/etc/jwks.json", None, data).unwrap() {
            JwksSource::File(p) => assert_eq!(p, Path::new("/etc/jwks.json")),
            JwksSource::Url(..) => panic!("a file"),
        }
        for url in ["https://idp.test/.well-known/jwks.json", "http://127.0.0.1:9/jwks"] {
            match JwksSource::new(url, None, data).unwrap() {
                JwksSource::Url(u, _) => assert_eq!(u.to_string(), url),
                JwksSource::File(_) => panic!("a URL"),
            }
        }
    }

    #[test]
    fn bad_urls_and_cas_are_config_errors() {
        let data = Path::new("/nonexistent-bext-data");
        let (path, reason) = config_error(JwksSource::new("https://bad host/", None, data));
        assert_eq!(path, "jwt.jwks");
        assert!(reason.starts_with("not a URL"), "{reason}");
        let (path, reason) = config_error(JwksSource::new("keys/jwks.json", Some("ca.pem"), data));
        assert_eq!(
            (path.as_str(), reason.as_str()),
            ("jwt.jwks_ca", "only for an https:// `jwks` URL")
        );
        let (path, reason) = config_error(JwksSource::new("https://idp.test/jwks", Some("ca.pem"), data));
        assert_eq!(path, "jwt.jwks_ca");
        assert!(reason.starts_with("/nonexistent-bext-data/ca.pem: "), "{reason}");

        let dir = scratch("ca");
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        let (_, reason) = config_error(JwksSource::new("https://idp.test/jwks", Some("empty.pem"), &dir));
        assert!(reason.ends_with("empty.pem: no PEM certificate in it"), "{reason}");
        std::fs::write(
            dir.join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let (_, reason) = config_error(JwksSource::new("https://idp.test/jwks", Some("bad.pem"), &dir));
        assert!(reason.contains("bad.pem: "), "{reason}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_jwks_file_is_read() {
        let dir = scratch("file");
        let file = dir.join("jwks.json");
        std::fs::write(
            &file,
            r#"{"keys":[{"kty":"oct","kid":"s","alg":"HS256","k":"c2VjcmV0"},{"kty":"oct","k":"c2VjcmV0"}]}"#,
        )
        .unwrap();
        let keys = load_jwks(&JwksSource::File(file.clone())).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.kid.as_deref()).collect::<Vec<_>>(), [Some("s")]);
        std::fs::write(&file, "{").unwrap();
        let err = load_jwks(&JwksSource::File(file.clone())).await.err().unwrap();
        assert!(err.starts_with("not a JWKS document"), "{err}");
        std::fs::remove_file(&file).unwrap();
        let err = load_jwks(&JwksSource::File(file.clone())).await.err().unwrap();
        assert!(err.starts_with(&file.display().to_string()), "the path is named: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
