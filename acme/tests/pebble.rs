//! bext-acme against a real pebble on loopback: issuance by HTTP-01 and
//! TLS-ALPN-01, a second manager on the same storage that does not order
//! again, renewal of a short-lived certificate, refusals with the ACME
//! server's problem document, and on-demand issuance gated by an ask
//! server.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bext_acme::{AcmeConfig, AcmeError, Certificate, ChallengeKind, Manager, OnCertificate, OnDemand, renewal};
use support::*;

fn config(pebble: &Pebble, challenge: ChallengeKind) -> AcmeConfig {
    let mut config = AcmeConfig::new(pebble.directory.clone());
    config.email = Some("ops@bext.test".into());
    config.ca_root = Some(pebble.ca_root.clone());
    config.challenge = challenge;
    config.order_timeout = bext_plugin_abi::units::Span(Duration::from_secs(60));
    config
}

/// Collects the certificates a manager hands over.
fn collector() -> (OnCertificate, Arc<Mutex<Vec<Arc<Certificate>>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    (Arc::new(move |c: Arc<Certificate>| sink.lock().unwrap().push(c)), got)
}

async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_and_a_second_manager_reuses_the_stored_certificate() {
    let mut pebble = Pebble::start();
    let data = tempfile::tempdir().unwrap();
    let storage = data.path().join("acme");
    let manager = Manager::new(config(&pebble, ChallengeKind::Http01), &storage).unwrap();
    let _http = serve_http01(pebble.http_port, manager.challenges()).await;

    let names = vec!["www.bext.test".to_owned(), "Bext.Test.".to_owned()];
    let cert = manager
        .certificate(&names)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pebble.log()));
    assert_eq!(cert.names, ["www.bext.test", "bext.test"], "names are kept normalised");
    assert!(cert.not_after > SystemTime::now());
    assert!(manager.challenges().is_empty(), "answers withdrawn after the order");
    // An ECDSA P-256 key of its own (not the account's).
    let leaf = cert.key.end_entity_cert().unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let spki = &parsed.public_key().algorithm;
    assert_eq!(spki.algorithm.to_id_string(), "1.2.840.10045.2.1", "id-ecPublicKey");
    let curve = spki.parameters.as_ref().unwrap().as_oid().unwrap();
    assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7", "prime256v1");
    let root = pebble.issuing_root().await;

    // Stored where the docs say, the key private, the account kept.
    let dir = manager.storage().certificate_dir(&cert.names);
    for file in ["chain.pem", "key.pem", "meta.json"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let accounts: Vec<_> = std::fs::read_dir(storage.join("accounts")).unwrap().collect();
    assert_eq!(accounts.len(), 1);

    // The chain verifies against pebble's issuing root (served by a real
    // TLS listener, as the kernel will).
    let served = Arc::new(Served::default());
    served.put("www.bext.test", cert.key.clone());
    let _tls = serve_tls(pebble.tls_port, manager.challenges(), served).await;
    assert_eq!(
        handshake_serial(pebble.tls_port, "www.bext.test", &root).await,
        Ok(cert.serial())
    );

    // pebble goes away: a second manager on the same storage (a restart)
    // still has the certificate, so it did not order.
    pebble.stop();
    let again = Manager::new(config(&pebble, ChallengeKind::Http01), &storage).unwrap();
    let stored = again.certificate(&names).await.expect("served from storage, no order");
    assert_eq!(stored.serial(), cert.serial());
    let (on_cert, got) = collector();
    let keeper = tokio::spawn({
        let again = again.clone();
        async move { again.keep_fresh(names, on_cert).await }
    });
    let first = wait_for(Duration::from_secs(10), || got.lock().unwrap().first().cloned()).await;
    assert_eq!(first.serial(), cert.serial(), "handed over at once from storage");
    keeper.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_through_a_rustls_listener() {
    let pebble = Pebble::start();
    let data = tempfile::tempdir().unwrap();
    let manager = Manager::new(config(&pebble, ChallengeKind::TlsAlpn01), data.path()).unwrap();
    let served = Arc::new(Served::default());
    let _tls = serve_tls(pebble.tls_port, manager.challenges(), served.clone()).await;
    // No HTTP-01 server: only TLS-ALPN-01 can succeed.

    let cert = manager
        .certificate(&["alpn.bext.test".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pebble.log()));
    assert!(manager.challenges().is_empty());
    served.put("alpn.bext.test", cert.key.clone());
    let root = pebble.issuing_root().await;
    assert_eq!(
        handshake_serial(pebble.tls_port, "alpn.bext.test", &root).await,
        Ok(cert.serial())
    );
    // A name nobody serves gets no certificate at all.
    assert!(
        handshake_serial(pebble.tls_port, "other.bext.test", &root)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_and_the_old_one_served_until_then() {
    let pebble = Pebble::start_with(PebbleOptions {
        validity_secs: Some(15),
        ..Default::default()
    });
    let data = tempfile::tempdir().unwrap();
    let manager = Manager::new(config(&pebble, ChallengeKind::Http01), data.path())
        .unwrap()
        .with_policy(renewal::RenewalPolicy {
            retry_first: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
        });
    let http = serve_http01(pebble.http_port, manager.challenges()).await;
    let (on_cert, got) = collector();
    let names = vec!["short.bext.test".to_owned()];
    let keeper = tokio::spawn({
        let manager = manager.clone();
        let names = names.clone();
        async move { manager.keep_fresh(names, on_cert).await }
    });
    let first = wait_for(Duration::from_secs(60), || got.lock().unwrap().first().cloned()).await;
    let lifetime = first.not_after.duration_since(first.not_before).unwrap();
    assert!(
        lifetime <= Duration::from_secs(20),
        "pebble honoured the short validity: {lifetime:?}"
    );
    let second = wait_for(Duration::from_secs(60), || got.lock().unwrap().get(1).cloned()).await;
    let handed_over = SystemTime::now();
    assert_ne!(second.serial(), first.serial(), "a new certificate");
    assert!(first.not_after >= handed_over, "renewed before the old one expired");
    // The new one was stored before it was handed over.
    let stored = manager.storage().load_certificate(&names).unwrap().unwrap();
    assert_eq!(stored.chain_pem, second.chain_pem);

    // Validation starts failing: the renewal is retried (more than once),
    // nothing new is handed over, the last good certificate stays.
    http.answering.store(false, Ordering::SeqCst);
    wait_for(Duration::from_secs(60), || {
        (http.refused.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert_eq!(got.lock().unwrap().len(), 2, "a failed renewal hands nothing over");
    let stored = manager.storage().load_certificate(&names).unwrap().unwrap();
    assert_eq!(
        stored.serial(),
        second.serial(),
        "a failed renewal leaves storage alone"
    );
    // It answers again: the next retry renews.
    http.answering.store(true, Ordering::SeqCst);
    let third = wait_for(Duration::from_secs(60), || got.lock().unwrap().get(2).cloned()).await;
    assert_ne!(third.serial(), second.serial());
    keeper.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_acme_server_s_problem_document() {
    let pebble = Pebble::start_with(PebbleOptions {
        blocklist: vec!["blocked.bext.test".into()],
        ..Default::default()
    });
    let data = tempfile::tempdir().unwrap();
    let manager = Manager::new(config(&pebble, ChallengeKind::Http01), data.path()).unwrap();

    // Refused at the new order: a name pebble's policy forbids.
    let err = manager
        .certificate(&["blocked.bext.test".to_owned()])
        .await
        .unwrap_err();
    let problem = err.problem().unwrap_or_else(|| panic!("no problem document: {err}"));
    assert_eq!(
        problem.kind.as_deref(),
        Some("urn:ietf:params:acme:error:rejectedIdentifier")
    );
    assert!(
        problem.detail.as_deref().unwrap_or("").contains("blocked.bext.test"),
        "{problem}"
    );
    assert!(
        matches!(
            err,
            AcmeError::Problem {
                during: "new order",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("rejectedIdentifier"), "{err}");

    // Refused at validation: nothing answers HTTP-01 on pebble's port.
    let err = manager.certificate(&["nobody.bext.test".to_owned()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            AcmeError::Problem {
                during: "validation",
                ..
            }
        ),
        "{err}"
    );
    let problem = err.problem().unwrap();
    assert_eq!(
        problem.kind.as_deref(),
        Some("urn:ietf:params:acme:error:connection"),
        "{problem}"
    );
    assert!(err.to_string().contains("nobody.bext.test"), "{err}");
    assert!(manager.challenges().is_empty(), "answers withdrawn after a failure");

    // A wildcard needs DNS-01, which bext does not answer: a clear error.
    let err = manager.certificate(&["*.Wild.bext.test".to_owned()]).await.unwrap_err();
    assert!(matches!(err, AcmeError::NoChallenge { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "*.wild.bext.test: the ACME server offers no http-01 challenge"
    );

    // A directory that does not answer is an error, not a hang or a panic.
    let mut bad = config(&pebble, ChallengeKind::Http01);
    bad.directory = format!("https://127.0.0.1:{}/dir", free_port());
    let other = tempfile::tempdir().unwrap();
    let err = Manager::new(bad, other.path())
        .unwrap()
        .certificate(&["x.bext.test".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AcmeError::Protocol {
                during: "new account",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forgot_the_account_gets_a_new_one() {
    let mut pebble = Pebble::start();
    let data = tempfile::tempdir().unwrap();
    let manager = Manager::new(config(&pebble, ChallengeKind::Http01), data.path()).unwrap();
    let _http = serve_http01(pebble.http_port, manager.challenges()).await;
    manager.certificate(&["one.bext.test".to_owned()]).await.unwrap();
    let account_file = manager.storage().account_path(&pebble.directory);
    let first_account = std::fs::read(&account_file).unwrap();

    // pebble keeps accounts in memory: restarted, it knows none.
    pebble.restart();
    let cert = manager
        .certificate(&["two.bext.test".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pebble.log()));
    assert_eq!(cert.names, ["two.bext.test"]);
    assert_ne!(
        std::fs::read(&account_file).unwrap(),
        first_account,
        "the new account is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_asks_once_orders_once_and_remembers_refusals() {
    let mut pebble = Pebble::start();
    let ask = AskServer::start(&["tenant.customer.test", "second.customer.test", "third.customer.test"]).await;
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&pebble, ChallengeKind::Http01);
    cfg.on_demand_ask = Some(ask.url.clone());
    cfg.on_demand_orders_per_minute = 2;
    let manager = Manager::new(cfg.clone(), data.path()).unwrap();
    let _http = serve_http01(pebble.http_port, manager.challenges()).await;
    let served = Arc::new(Served::default());
    let (on_cert, got) = collector();
    let on_cert: OnCertificate = Arc::new({
        let served = served.clone();
        move |cert: Arc<Certificate>| {
            served.put(&cert.names[0], cert.key.clone());
            on_cert(cert)
        }
    });
    let on_demand = OnDemand::new(manager.clone(), on_cert.clone(), tokio::runtime::Handle::current())
        .expect("on_demand_ask is set");
    let (port, _tls) = serve_on_demand_tls(served.clone(), on_demand.clone()).await;
    let root = pebble.issuing_root().await;

    // Four TLS handshakes and two direct calls at once, in several
    // spellings of one name: one ask, one order, one certificate for all.
    let mut waits = Vec::new();
    for _ in 0..4 {
        let root = root.clone();
        waits.push(tokio::spawn(async move {
            handshake_serial(port, "tenant.customer.test", &root).await
        }));
    }
    for name in ["TENANT.customer.test.", "Tenant.Customer.Test"] {
        let on_demand = on_demand.clone();
        waits.push(tokio::spawn(async move {
            on_demand
                .certificate(name)
                .await
                .map(|c| c.serial())
                .map_err(|e| e.to_string())
        }));
    }
    let mut serials = Vec::new();
    for w in waits {
        serials.push(w.await.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", pebble.log())));
    }
    assert!(serials.iter().all(|s| *s == serials[0]), "{serials:?}");
    assert_eq!(ask.asked(), ["tenant.customer.test"]);
    assert_eq!(got.lock().unwrap().len(), 1, "handed to the kernel once");
    // Later handshakes are served from the store: no ask.
    assert_eq!(
        handshake_serial(port, "tenant.customer.test", &root).await,
        Ok(serials[0].clone())
    );
    assert_eq!(ask.asked().len(), 1);

    // Refused by the ask: the handshake fails, and the name is remembered,
    // so the next handshake is refused without asking.
    assert!(handshake_serial(port, "evil.customer.test", &root).await.is_err());
    let err = on_demand.certificate("EVIL.customer.test.").await.unwrap_err();
    assert!(matches!(*err, AcmeError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("403") && err.to_string().contains("remembered"),
        "{err}"
    );
    assert_eq!(ask.asked(), ["tenant.customer.test", "evil.customer.test"]);

    // What is not a DNS name never reaches the ask.
    for bad in [
        "127.0.0.1",
        "localhost",
        "a_b.customer.test",
        "*.customer.test",
        "x.test:443",
    ] {
        let err = on_demand.certificate(bad).await.unwrap_err();
        assert!(matches!(*err, AcmeError::BadName { .. }), "{bad}: {err}");
    }
    assert_eq!(ask.asked().len(), 2);

    // Two orders a minute: the second allowed name gets one, the third waits its turn.
    on_demand.certificate("second.customer.test").await.unwrap();
    let err = on_demand.certificate("third.customer.test").await.unwrap_err();
    assert!(matches!(*err, AcmeError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("2 on-demand orders a minute"), "{err}");

    // A restart: a new OnDemand on the same storage serves the stored
    // certificate without asking or ordering (pebble is not even needed).
    drop(on_demand);
    pebble.stop();
    let asked_before = ask.asked().len();
    let restarted = OnDemand::new(
        Manager::new(cfg, data.path()).unwrap(),
        on_cert,
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let again = restarted.certificate("tenant.customer.test").await.unwrap();
    assert_eq!(again.serial(), serials[0]);
    assert_eq!(ask.asked().len(), asked_before);
}

/// Names the operator vouched for (tenants' own domains) are ordered
/// without asking, an earlier refusal forgotten, but within the same
/// orders-a-minute limit; once no longer vouched for, they are asked
/// about again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vouched_names_are_ordered_without_asking_within_the_rate_limit() {
    let pebble = Pebble::start();
    let ask = AskServer::start(&[]).await;
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&pebble, ChallengeKind::Http01);
    cfg.on_demand_ask = Some(ask.url.clone());
    cfg.on_demand_orders_per_minute = 1;
    let manager = Manager::new(cfg, data.path()).unwrap();
    let _http = serve_http01(pebble.http_port, manager.challenges()).await;
    let (on_cert, got) = collector();
    let on_demand = OnDemand::new(manager, on_cert, tokio::runtime::Handle::current()).unwrap();

    let err = on_demand.certificate("one.customer.test").await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(ask.asked(), ["one.customer.test"]);

    on_demand.vouch(["one.customer.test".to_owned(), "two.customer.test".to_owned()]);
    on_demand
        .certificate("One.Customer.Test.")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pebble.log()));
    assert_eq!(got.lock().unwrap().len(), 1);
    let err = on_demand.certificate("two.customer.test").await.unwrap_err();
    assert!(matches!(*err, AcmeError::Busy { .. }), "{err}");
    assert_eq!(
        ask.asked(),
        ["one.customer.test"],
        "vouched names are never asked about"
    );

    on_demand.vouch([]);
    let err = on_demand.certificate("two.customer.test").await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(ask.asked(), ["one.customer.test", "two.customer.test"]);
}
