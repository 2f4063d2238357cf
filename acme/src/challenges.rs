//! What the server must answer while an order is being validated, shared
//! between the ordering task and the listeners. Reads are lock-free
//! (an `ArcSwap` of a small map); writes happen a few times per order.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::AcmeError;

/// The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737). The TLS
/// listener must list it in its ALPN protocols, answer such a ClientHello
/// with [`Challenges::tls_alpn01`], and close the connection after the
/// handshake without speaking HTTP.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 validation requests (RFC 8555 section 8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

type Map<V> = ArcSwap<HashMap<Box<str>, V>>;

/// The challenge answers currently published: HTTP-01 tokens and
/// TLS-ALPN-01 certificates. Each is removed when its order ends.
#[derive(Default)]
pub struct Challenges {
    http: Map<Arc<str>>,
    alpn: Map<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http01", &self.http.load().len())
            .field("tls_alpn01", &self.alpn.load().len())
            .finish()
    }
}

impl Challenges {
    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>`
    /// with (status 200, `content-type: application/octet-stream`).
    pub fn http01(&self, token: &str) -> Option<Arc<str>> {
        self.http.load().get(token).cloned()
    }

    /// [`Challenges::http01`] for a request path; `None` for any other
    /// path, so the plain listener can ask for every request.
    pub fn http01_for_path(&self, path: &str) -> Option<Arc<str>> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        if token.is_empty() || token.contains('/') {
            return None;
        }
        self.http01(token)
    }

    /// The validation certificate for a name (normalised like SNI: any
    /// case, an optional trailing dot).
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.alpn.load();
        if map.is_empty() {
            return None;
        }
        let name = bext_plugin_abi::normalise_host(name.as_bytes()).ok()?;
        map.get(&*name).cloned()
    }

    /// Whether a ClientHello asks for a TLS-ALPN-01 validation: its ALPN
    /// list is `acme-tls/1` alone, as RFC 8737 requires of validators. A
    /// client that also offers `h2` or `http/1.1` is an ordinary client.
    pub fn is_validation(hello: &ClientHello<'_>) -> bool {
        hello.alpn().is_some_and(only_acme_tls)
    }

    /// How many answers are published (HTTP-01 and TLS-ALPN-01).
    pub fn len(&self) -> usize {
        self.http.load().len() + self.alpn.load().len()
    }

    /// Whether nothing is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn publish_http01(&self, token: &str, key_authorization: &str) {
        let (token, value): (Box<str>, Arc<str>) = (token.into(), key_authorization.into());
        self.http.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(token.clone(), value.clone());
            map
        });
    }

    pub(crate) fn remove_http01(&self, token: &str) {
        self.http.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(token);
            map
        });
    }

    /// Publishes a self-signed certificate for `name` carrying the
    /// acmeIdentifier extension with `digest` (SHA-256 of the key
    /// authorization), as RFC 8737 section 3 describes.
    pub(crate) fn publish_tls_alpn01(&self, name: &str, digest: &[u8]) -> Result<(), AcmeError> {
        let key = Arc::new(validation_certificate(name, digest)?);
        let name: Box<str> = name.into();
        self.alpn.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.clone(), key.clone());
            map
        });
        Ok(())
    }

    pub(crate) fn remove_tls_alpn01(&self, name: &str) {
        self.alpn.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(name);
            map
        });
    }
}

fn only_acme_tls<'a>(mut protocols: impl Iterator<Item = &'a [u8]>) -> bool {
    protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
}

fn validation_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, AcmeError> {
    let bad = |e: String| AcmeError::Protocol {
        during: "tls-alpn-01 certificate",
        reason: e,
    };
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| bad(e.to_string()))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| bad(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| bad(e.to_string()))?;
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| bad(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

/// A certificate resolver for the TLS listener: a ClientHello offering
/// `acme-tls/1` gets the validation certificate for its name (or none, so
/// the handshake fails), never an app's certificate; every other
/// ClientHello goes to `inner` (the SNI store).
#[derive(Debug)]
pub struct ChallengeResolver {
    challenges: Arc<Challenges>,
    inner: Arc<dyn ResolvesServerCert>,
}

impl ChallengeResolver {
    /// Answers validations from `challenges` and everything else from `inner`.
    pub fn new(challenges: Arc<Challenges>, inner: Arc<dyn ResolvesServerCert>) -> ChallengeResolver {
        ChallengeResolver { challenges, inner }
    }
}

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if Challenges::is_validation(&hello) {
            return self.challenges.tls_alpn01(hello.server_name()?);
        }
        self.inner.resolve(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_its_exact_path() {
        let c = Challenges::default();
        c.publish_http01("tok-1", "tok-1.thumb");
        assert_eq!(
            c.http01_for_path("/.well-known/acme-challenge/tok-1").as_deref(),
            Some("tok-1.thumb")
        );
        for other in [
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/tok-1/",
            "/.well-known/acme-challenge/tok-1/x",
            "/.well-known/acme-challenge/TOK-1",
            "/.well-known/acme-challenge/tok-2",
            "/.well-known/acme-challenge//tok-1",
            "/x/.well-known/acme-challenge/tok-1",
            "/.well-known/acme-challenge/tok-1%00",
        ] {
            assert_eq!(c.http01_for_path(other), None, "{other}");
        }
        c.remove_http01("tok-1");
        assert_eq!(c.http01("tok-1"), None);
        assert!(c.is_empty());
    }

    #[test]
    fn only_an_alpn_list_of_acme_tls_alone_is_a_validation() {
        let check = |list: &[&[u8]]| only_acme_tls(list.iter().copied());
        assert!(check(&[b"acme-tls/1"]));
        assert!(!check(&[]));
        assert!(!check(&[b"h2", b"acme-tls/1"]));
        assert!(!check(&[b"acme-tls/1", b"http/1.1"]));
        assert!(!check(&[b"ACME-TLS/1"]));
        assert!(!check(&[b"acme-tls/1\0"]));
        assert!(!check(&[b"acme-tls/2"]));
    }

    #[test]
    fn tls_alpn01_certificate_carries_the_digest_and_matches_any_spelling() {
        let c = Challenges::default();
        let digest = [7u8; 32];
        c.publish_tls_alpn01("a.bext.test", &digest).unwrap();
        let key = c.tls_alpn01("A.Bext.TEST.").expect("found by another spelling");
        assert!(c.tls_alpn01("b.bext.test").is_none());
        let der = key.end_entity_cert().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        // id-pe-acmeIdentifier, an OCTET STRING of the digest, critical.
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert_eq!(&ext.value[2..], &digest);
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(format!("{:?}", sans.value.general_names), "[DNSName(\"a.bext.test\")]");
        c.remove_tls_alpn01("a.bext.test");
        assert!(c.tls_alpn01("a.bext.test").is_none());
    }
}
