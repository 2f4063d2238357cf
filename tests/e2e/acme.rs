//! ACME through the real `bext` binary against a real pebble (started as
//! bext-acme's tests start it, from the module they share): `tls = "acme"`
//! issued by HTTP-01 on the plain listener and by TLS-ALPN-01 on the TLS
//! listener, the stored certificate served after a restart with pebble
//! stopped, on-demand certificates allowed and refused by an ask server,
//! and `bext check`'s errors. bext listens on the ports pebble validates
//! (its `httpPort` and `tlsPort`), and every name resolves to 127.0.0.1
//! through pebble's test DNS server. Waits poll for a condition; nothing
//! asserts on timing.

use std::time::Duration;

use crate::pebble::{AskServer, Pebble, handshake_serial};
use crate::support::*;

/// Long enough for an order on a slow machine; only a failure waits it out.
const ISSUED_WITHIN: Duration = Duration::from_secs(90);

/// A platform on pebble's validation ports with `[platform.acme]`
/// (`acme_extra` lines added to it) and one static app `site` on
/// `domains` with `tls = "acme"`.
fn acme_platform(s: &Site, pebble: &Pebble, acme_extra: &str, domains: &str) -> std::path::PathBuf {
    acme_platform_app(s, pebble, acme_extra, "site", domains, "")
}

/// [`acme_platform`] with the static app named `app`, and `app_extra`
/// lines added to it.
pub(crate) fn acme_platform_app(
    s: &Site,
    pebble: &Pebble,
    acme_extra: &str,
    app: &str,
    domains: &str,
    app_extra: &str,
) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("site/index.html", "hello over acme");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:{http}\"\nlisten_tls = \"127.0.0.1:{tls}\"\nmanifests = \"manifests\"\nworkers = 1\n\
         [platform.acme]\ndirectory = \"{dir}\"\nca_root = \"{root}\"\nemail = \"ops@bext.test\"\n{acme_extra}\n\
         [apps.{app}]\nsource = \"site\"\ndomains = [{domains}]\ntls = \"acme\"\n{app_extra}\n",
        http = pebble.http_port,
        tls = pebble.tls_port,
        dir = pebble.directory,
        root = pebble.ca_root.display(),
    ))
}

/// Polls until a handshake for `name` verifies against pebble's issuing
/// root, and returns the served certificate's serial.
async fn issued_serial(pebble: &Pebble, root: &str, name: &str, bext: &Bext) -> String {
    let port = pebble.tls_port;
    let deadline = std::time::Instant::now() + ISSUED_WITHIN;
    loop {
        match handshake_serial(port, name, root).await {
            Ok(serial) => return serial,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!(
                    "no certificate for {name}: {e}\nbext:\n{}\npebble:\n{}",
                    bext.log(),
                    pebble.log()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn http01_issues_through_bext_and_a_restart_serves_the_stored_certificate_without_pebble() {
    let mut pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let s = Site::new();
    let cfg = acme_platform(&s, &pebble, "", "\"www.acme.bext.test\", \"acme.bext.test\"");
    // The app sends plain HTTP to https: validations are answered first.
    let text = std::fs::read_to_string(&cfg).unwrap() + "https_redirect = true\n";
    std::fs::write(&cfg, text).unwrap();
    let bext = Bext::serve(&cfg);
    let serial = issued_serial(&pebble, &root, "www.acme.bext.test", &bext).await;
    // One certificate for both names, in any spelling.
    assert_eq!(
        handshake_serial(pebble.tls_port, "ACME.bext.test", &root)
            .await
            .unwrap(),
        serial
    );
    assert!(
        bext.log().contains("ACME certificate issued and stored"),
        "{}",
        bext.log()
    );
    // Plain HTTP is redirected, the challenge prefix with an unknown token
    // too: only a token being validated is answered.
    let plain = get(bext.addr, "acme.bext.test", "/").await;
    assert_eq!(plain.status, 308);
    let unknown = get(bext.addr, "acme.bext.test", "/.well-known/acme-challenge/nothing-here").await;
    assert_eq!(unknown.status, 308);
    // An `acme-tls/1` ClientHello never gets the app's certificate.
    assert!(
        alpn_handshake(pebble.tls_port, "acme.bext.test", b"acme-tls/1")
            .await
            .is_err()
    );
    drop(bext);

    // pebble gone: the restart must not order.
    pebble.stop();
    let bext = Bext::serve(&cfg);
    assert_eq!(
        handshake_serial(pebble.tls_port, "www.acme.bext.test", &root)
            .await
            .unwrap(),
        serial,
        "{}",
        bext.log()
    );
    assert!(!bext.log().contains("ACME order failed"), "{}", bext.log());
}

#[tokio::test]
async fn a_reload_orders_for_an_app_it_adds_and_keeps_the_others() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let s = Site::new();
    let cfg = acme_platform(&s, &pebble, "", "\"first.bext.test\"");
    let bext = Bext::serve(&cfg);
    let first = issued_serial(&pebble, &root, "first.bext.test", &bext).await;
    assert!(
        handshake_serial(pebble.tls_port, "second.bext.test", &root)
            .await
            .is_err()
    );
    s.write("second/index.html", "second");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "[apps.second]\nsource = \"second\"\ndomains = [\"second.bext.test\"]\ntls = \"acme\"\n";
    std::fs::write(&cfg, text).unwrap();
    bext.signal("HUP");
    let second = issued_serial(&pebble, &root, "second.bext.test", &bext).await;
    assert_ne!(first, second);
    // The first app's certificate was kept, not ordered again.
    assert_eq!(
        handshake_serial(pebble.tls_port, "first.bext.test", &root)
            .await
            .unwrap(),
        first
    );
    // (bext's stderr reaches the test through a reader thread: wait for it)
    eventually(Duration::from_secs(5), || async {
        (bext.log().matches("ACME certificate issued and stored").count() == 2).then_some(())
    })
    .await;
    assert_eq!(
        bext.log().matches("ACME certificate issued and stored").count(),
        2,
        "{}",
        bext.log()
    );

    // An app removed: its name is no longer served (an alert, no leftover).
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"first.bext.test\"", "");
    std::fs::write(&cfg, text).unwrap();
    bext.signal("HUP");
    eventually(Duration::from_secs(20), || async {
        handshake_serial(pebble.tls_port, "first.bext.test", &root).await.err()
    })
    .await;
    assert_eq!(
        handshake_serial(pebble.tls_port, "second.bext.test", &root)
            .await
            .unwrap(),
        second
    );
}

#[tokio::test]
async fn tls_alpn01_issues_through_the_tls_listener() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let s = Site::new();
    let cfg = acme_platform(&s, &pebble, "challenge = \"tls-alpn-01\"", "\"alpn.bext.test\"");
    let bext = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", crate::metrics::TOKEN)]);
    let serial = issued_serial(&pebble, &root, "alpn.bext.test", &bext).await;
    assert!(!serial.is_empty());
    // The issued certificate's expiry is a metric like a file's.
    let m = crate::metrics::scrape(bext.addr).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let name = [("name", "alpn.bext.test")];
    let expiry = crate::metrics::value(&m, "bext_certificate_expiry_timestamp_seconds", &name);
    let left = crate::metrics::value(&m, "bext_certificate_expires_in_seconds", &name);
    assert!(
        expiry.is_some_and(|e| e > now) && left.is_some_and(|l| l > 0.0 && l <= expiry.unwrap() - now + 1.0),
        "{expiry:?} {left:?}"
    );
    // Validated on the TLS listener; the plain one saw no HTTP-01 request.
    let log = bext.log();
    assert!(log.contains("ACME TLS-ALPN-01 validation answered"), "{log}");
    assert!(!log.contains("/.well-known/acme-challenge/"), "{log}");
    // Ordinary clients still get h2 and http/1.1, never acme-tls/1.
    assert_eq!(
        alpn_handshake(pebble.tls_port, "alpn.bext.test", b"h2").await,
        Ok(Some(b"h2".to_vec()))
    );
}

#[tokio::test]
async fn on_demand_orders_for_names_the_ask_allows_and_refuses_the_others_with_an_alert() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let ask = AskServer::start(&["shop.customer.test"]).await;
    let s = Site::new();
    let cfg = acme_platform(
        &s,
        &pebble,
        &format!("on_demand_ask = \"{}\"", ask.url),
        "\"saas.bext.test\"",
    );
    let bext = Bext::serve(&cfg);
    // The app's own name is ordered by the kernel, never through the ask,
    // even by handshakes that arrive while its order runs.
    issued_serial(&pebble, &root, "saas.bext.test", &bext).await;
    assert_eq!(ask.asked(), Vec::<String>::new());
    // The first handshake for a tenant's name waits for the order.
    let serial = handshake_serial(pebble.tls_port, "shop.customer.test", &root)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", bext.log(), pebble.log()));
    // The next one is served from the kernel's map, without asking.
    assert_eq!(
        handshake_serial(pebble.tls_port, "Shop.Customer.test.", &root)
            .await
            .unwrap(),
        serial
    );
    assert_eq!(ask.asked(), vec!["shop.customer.test"]);

    let refused = handshake_serial(pebble.tls_port, "evil.customer.test", &root)
        .await
        .unwrap_err();
    assert!(refused.to_lowercase().contains("alert"), "{refused}");
    // Remembered: a second try is not asked again.
    assert!(
        handshake_serial(pebble.tls_port, "evil.customer.test", &root)
            .await
            .is_err()
    );
    assert_eq!(ask.asked(), vec!["shop.customer.test", "evil.customer.test"]);
}

#[test]
fn check_names_the_acme_key_with_its_position() {
    let s = Site::new();
    s.write("a/index.html", "a");
    s.write("not-a-root.pem", "nothing\n");
    let cfg = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n\n[platform.acme]\nemail = \"nobody\"\non_demand_ask = \"ftp://ask.test/\"\nca_root = \"not-a-root.pem\"\n\n[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\ntls = \"acme\"\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let file = cfg.display().to_string();
    for want in [
        format!("{file}:6:9: platform.acme.email: `nobody` is not an e-mail address"),
        format!("{file}:7:17: platform.acme.on_demand_ask: `ftp://ask.test/` is not an http(s) URL with a host"),
        format!("{file}:8:11: platform.acme.ca_root: "),
        "not-a-root.pem: no PEM certificate in it".to_owned(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("apps.a"), "{err}");

    // Unknown keys and challenge types are decoding errors with positions.
    let s = Site::new();
    s.write("a/index.html", "a");
    let cfg = s.platform(
        "[platform]\nlisten_tls = \"127.0.0.1:0\"\n[platform.acme]\nchallenge = \"dns-01\"\n[apps.a]\nsource = \"a\"\ntls = \"acme\"\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown variant `dns-01`"), "{err}");
    assert!(err.contains(&format!("{}:4:", cfg.display())), "{err}");

    // `tls = "acme"` without `[platform.acme]` names the field.
    let s = Site::new();
    s.write("a/index.html", "a");
    let cfg = s.platform("[platform]\nlisten_tls = \"127.0.0.1:0\"\n[apps.a]\nsource = \"a\"\ntls = \"acme\"\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5:7: apps.a.tls: `acme` needs a `[platform.acme]` table",
            cfg.display()
        )),
        "{err}"
    );

    // ACME without a TLS listener has nowhere to serve its certificates.
    let s = Site::new();
    s.write("a/index.html", "a");
    let cfg = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n[platform.acme]\n[apps.a]\nsource = \"a\"\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("platform.acme: needs `[platform] listen_tls`"), "{err}");

    // A good one passes.
    let s = Site::new();
    s.write("a/index.html", "a");
    let cfg = s.platform(
        "[platform]\nlisten_tls = \"127.0.0.1:0\"\n[platform.acme]\ndirectory = \"https://127.0.0.1:14000/dir\"\n[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\ntls = \"acme\"\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A handshake offering only `alpn`, trusting any certificate (what is
/// checked is whether one is presented and which protocol is agreed).
async fn alpn_handshake(port: u16, name: &str, alpn: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use std::sync::Arc;
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}
