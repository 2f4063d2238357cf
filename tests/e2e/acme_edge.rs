//! ACME in edge mode: real `bext` instances sharing a real `redis-server`
//! and one real pebble. They order each certificate once for the fleet
//! (the others load it from Redis), a later instance orders nothing, and a
//! short-lived certificate is renewed once for the fleet while clients
//! keep connecting, without a failed request.
//!
//! pebble validates HTTP-01 on one port; a TCP balancer there (the fleet's
//! load balancer) hands each validation to an instance that is NOT the one
//! ordering, so a validation only succeeds when the orderer's challenge
//! answer reached the others over the fleet's bus. Orders are counted
//! three ways: pebble's own log, bext's log line per order, and the serials
//! the instances serve. Nothing asserts on timing; waits poll.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::edge::Redis;
use crate::pebble::{Pebble, PebbleOptions, client_config, handshake_serial};
use crate::support::*;

/// Long enough for an order on a slow machine; only a failure waits it out.
const ISSUED_WITHIN: Duration = Duration::from_secs(90);

/// bext's log line before an order placed under the fleet's lock.
const ORDERING: &str = "ACME: ordering for the fleet";
/// bext's log line after each order.
const ISSUED: &str = "ACME certificate issued and stored";
/// bext's log line when it uses a certificate another instance ordered.
const LOADED: &str = "ACME certificate loaded from the fleet";
/// pebble's log line per certificate it issues.
const PEBBLE_ISSUED: &str = "Issued certificate serial";

/// One instance's platform: its own data dir, the fleet's `[redis]` and
/// `[platform.acme]`, and the app `site` on `name` with `tls = "acme"`.
fn fleet_platform(s: &Site, pebble: &Pebble, redis: &Redis, name: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("site/index.html", "hello from the fleet");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmanifests = \"manifests\"\nworkers = 1\n\
         [platform.acme]\ndirectory = \"{dir}\"\nca_root = \"{root}\"\nemail = \"ops@bext.test\"\n\
         [redis]\nurl = \"{redis}\"\nprefix = \"fleet:\"\n\
         [apps.site]\nsource = \"site\"\ndomains = [\"{name}\"]\ntls = \"acme\"\n",
        dir = pebble.directory,
        root = pebble.ca_root.display(),
        redis = redis.url(),
    ))
}

/// Starts one bext per configuration at the same time.
/// Two instances of `name`'s fleet platform started together, both behind
/// a balancer on pebble's validation port (kept, with their sites, for the
/// test's length).
async fn balanced_pair(pebble: &Pebble, redis: &Redis, name: &str) -> (Balancer, [Site; 2], Vec<Bext>) {
    let balancer = Balancer::start(pebble.http_port, 2).await;
    let sites = [Site::new(), Site::new()];
    let fleet = start_together(&[
        fleet_platform(&sites[0], pebble, redis, name),
        fleet_platform(&sites[1], pebble, redis, name),
    ]);
    balancer.add(&fleet[0]);
    balancer.add(&fleet[1]);
    (balancer, sites, fleet)
}

fn start_together(configs: &[std::path::PathBuf]) -> Vec<Bext> {
    std::thread::scope(|scope| {
        let started: Vec<_> = configs.iter().map(|c| scope.spawn(move || Bext::serve(c))).collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Whether an instance's log says it is ordering now: an [`ORDERING`]
/// line after its last [`ISSUED`] one.
fn ordering_now(log: &str) -> bool {
    log.rfind(ORDERING) > log.rfind(ISSUED)
}

/// The fleet's load balancer on the port pebble validates HTTP-01 on.
/// Each connection goes to an instance that is not ordering now
/// (waiting until `expected` instances are known).
/// Instances behind the balancer: where each listens and its log.
type Targets = Arc<Mutex<Vec<(SocketAddr, Arc<Mutex<String>>)>>>;

struct Balancer {
    targets: Targets,
    /// Which target (by index) each connection went to.
    sent_to: Arc<Mutex<Vec<usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(port: u16, expected: usize) -> Balancer {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let targets: Targets = Arc::default();
        let sent_to: Arc<Mutex<Vec<usize>>> = Arc::default();
        let (t, sent) = (targets.clone(), sent_to.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let (t, sent) = (t.clone(), sent.clone());
                tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let chosen = loop {
                        let pick = {
                            let targets = t.lock().unwrap();
                            (targets.len() >= expected)
                                .then(|| {
                                    targets
                                        .iter()
                                        .position(|(_, log)| !ordering_now(&log.lock().unwrap()))
                                        .map(|i| (i, targets[i].0))
                                })
                                .flatten()
                        };
                        match pick {
                            Some(p) => break Some(p),
                            None if Instant::now() > deadline => break None,
                            None => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    };
                    let Some((index, addr)) = chosen else { return };
                    sent.lock().unwrap().push(index);
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Balancer { targets, sent_to, task }
    }

    fn add(&self, bext: &Bext) {
        self.targets.lock().unwrap().push((bext.addr, bext.log.clone()));
    }

    fn sent_to(&self) -> Vec<usize> {
        self.sent_to.lock().unwrap().clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls until a handshake with `bext`'s TLS listener for `name` verifies
/// against pebble's issuing root, and returns the served serial.
async fn served_serial(bext: &Bext, name: &str, root: &str, others: &[&Bext], pebble: &Pebble) -> String {
    let port = bext.tls.unwrap().port();
    let deadline = Instant::now() + ISSUED_WITHIN;
    loop {
        match handshake_serial(port, name, root).await {
            Ok(serial) => return serial,
            Err(e) if Instant::now() > deadline => panic!(
                "no certificate for {name}: {e}\nthis bext:\n{}\nothers:\n{}\npebble:\n{}",
                bext.log(),
                others.iter().map(|b| b.log()).collect::<Vec<_>>().join("\n----\n"),
                pebble.log()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn count(logs: &[&Bext], line: &str) -> usize {
    logs.iter().map(|b| b.log().matches(line).count()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_orders_one_certificate_and_a_later_instance_loads_it_from_redis() {
    let redis = Redis::start();
    let mut pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let name = "fleet.bext.test";
    let balancer = Balancer::start(pebble.http_port, 2).await;
    let (sa, sb) = (Site::new(), Site::new());
    // Two names in one certificate: two validations, both answered by the
    // instance that is not ordering.
    let two_names = |s: &Site| {
        let cfg = fleet_platform(s, &pebble, &redis, name);
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            &format!("domains = [\"{name}\"]"),
            &format!("domains = [\"{name}\", \"www.{name}\"]"),
        );
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    let configs = [two_names(&sa), two_names(&sb)];
    let fleet = start_together(&configs);
    let (a, b) = (&fleet[0], &fleet[1]);
    balancer.add(a);
    balancer.add(b);

    let serial_a = served_serial(a, name, &root, &[b], &pebble).await;
    let serial_b = served_serial(b, name, &root, &[a], &pebble).await;
    assert_eq!(serial_a, serial_b, "both serve the same certificate");
    let www = format!("www.{name}");
    assert_eq!(served_serial(b, &www, &root, &[a], &pebble).await, serial_a);
    let all = [a, b];
    let logs = || format!("A:\n{}\nB:\n{}\npebble:\n{}", a.log(), b.log(), pebble.log());
    // One order: pebble issued one certificate, one instance ordered, the
    // other loaded it, and one ACME account was made for the fleet.
    assert_eq!(pebble.log().matches(PEBBLE_ISSUED).count(), 1, "{}", logs());
    assert_eq!(count(&all, ORDERING), 1, "{}", logs());
    assert_eq!(count(&all, ISSUED), 1, "{}", logs());
    assert_eq!(count(&all, LOADED), 1, "{}", logs());
    assert_eq!(count(&all, "ACME account created"), 1, "{}", logs());
    // The validation reached the instance that did not order: it answered
    // with the challenge the orderer sent over the bus.
    let orderer = usize::from(!a.log().contains(ORDERING));
    let sent = balancer.sent_to();
    assert!(!sent.is_empty(), "pebble validated through the balancer\n{}", logs());
    assert!(!sent.contains(&orderer), "{sent:?}\n{}", logs());

    // A third instance, started later: it serves the fleet's certificate
    // without ordering (pebble issues nothing more).
    let sc = Site::new();
    let cfg_c = two_names(&sc);
    let c = Bext::serve(&cfg_c);
    let serial_c = served_serial(&c, name, &root, &all, &pebble).await;
    assert_eq!(serial_c, serial_a);
    assert!(c.log().contains(LOADED), "{}", c.log());
    assert!(!c.log().contains(ORDERING), "{}", c.log());
    assert_eq!(pebble.log().matches(PEBBLE_ISSUED).count(), 1, "{}", pebble.log());
    // It stored it locally: a restart serves it with Redis and pebble gone.
    drop(c);
    drop(redis);
    pebble.stop();
    let c = Bext::serve(&cfg_c);
    let port = c.tls.unwrap().port();
    assert_eq!(
        handshake_serial(port, name, &root).await.unwrap(),
        serial_a,
        "{}",
        c.log()
    );
    assert!(!c.log().contains(ISSUED), "{}", c.log());
}

/// What the clients saw during the renewal test.
#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    failed: Mutex<Vec<String>>,
    serials: Mutex<std::collections::BTreeSet<String>>,
    stop: AtomicBool,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A verified TLS connection speaking HTTP/1.1, and the served serial.
async fn connect(config: &Arc<rustls::ClientConfig>, addr: SocketAddr, name: &str) -> Result<(Sender, String), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let serial = cert.raw_serial_as_string();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok((sender, serial))
}

/// `GET /` on an open connection; an error unless it is the site's page.
async fn get_page(sender: &mut Sender, name: &str) -> Result<(), String> {
    let req = hyper::Request::get("/")
        .header("host", name)
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != 200 || &body[..] != b"hello from the fleet" {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// Until `load.stop`: one new connection per request on `addr`.
async fn new_connections(load: Arc<Load>, config: Arc<rustls::ClientConfig>, addr: SocketAddr, name: &'static str) {
    while !load.stop.load(Ordering::SeqCst) {
        let result = match connect(&config, addr, name).await {
            Ok((mut sender, serial)) => {
                load.serials.lock().unwrap().insert(serial);
                get_page(&mut sender, name).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => load.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                load.failed
                    .lock()
                    .unwrap()
                    .push(format!("new connection to {addr}: {e}"));
                0
            }
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Until `load.stop`: requests on one kept-alive connection to `addr`
/// (a new one only when the server closed it between requests).
async fn kept_alive(load: Arc<Load>, config: Arc<rustls::ClientConfig>, addr: SocketAddr, name: &'static str) {
    let mut open: Option<Sender> = None;
    while !load.stop.load(Ordering::SeqCst) {
        if open.as_ref().is_none_or(|s| s.is_closed()) {
            match connect(&config, addr, name).await {
                Ok((sender, _)) => open = Some(sender),
                Err(e) => {
                    load.failed
                        .lock()
                        .unwrap()
                        .push(format!("keep-alive connect to {addr}: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let sender = open.as_mut().unwrap();
        if sender.ready().await.is_err() {
            open = None;
            continue;
        }
        match get_page(sender, name).await {
            Ok(()) => {
                load.ok.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => load
                .failed
                .lock()
                .unwrap()
                .push(format!("keep-alive request to {addr}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_once_for_the_fleet_while_clients_keep_connecting() {
    let redis = Redis::start();
    // 30 s certificates: renewed when 10 s are left (up to 2 s earlier).
    let pebble = Pebble::start_with(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    });
    let root = pebble.issuing_root().await;
    let name = "renew.fleet.bext.test";
    let (_balancer, _sites, fleet) = balanced_pair(&pebble, &redis, name).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let first = served_serial(a, name, &root, &[b], &pebble).await;
    assert_eq!(served_serial(b, name, &root, &[a], &pebble).await, first);
    assert_eq!(pebble.log().matches(PEBBLE_ISSUED).count(), 1, "{}", pebble.log());

    // Clients on both instances: new connections and kept-alive ones.
    let load = Arc::new(Load::default());
    let config = client_config(&root);
    let mut clients = Vec::new();
    for bext in [a, b] {
        let addr = bext.tls.unwrap();
        clients.push(tokio::spawn(new_connections(load.clone(), config.clone(), addr, name)));
        clients.push(tokio::spawn(kept_alive(load.clone(), config.clone(), addr, name)));
    }
    // Both instances move to one new certificate.
    let deadline = Instant::now() + ISSUED_WITHIN;
    let renewed = loop {
        let sa = handshake_serial(a.tls.unwrap().port(), name, &root).await;
        let sb = handshake_serial(b.tls.unwrap().port(), name, &root).await;
        match (sa, sb) {
            (Ok(sa), Ok(sb)) if sa != first && sa == sb => break sa,
            _ if Instant::now() > deadline => panic!(
                "not renewed on both\nA:\n{}\nB:\n{}\npebble:\n{}",
                a.log(),
                b.log(),
                pebble.log()
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // Keep the load on a little after the switch, then stop it.
    let seen = load.ok.load(Ordering::SeqCst);
    eventually(Duration::from_secs(30), || async {
        (load.ok.load(Ordering::SeqCst) >= seen + 50).then_some(())
    })
    .await;
    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let logs = || format!("A:\n{}\nB:\n{}\npebble:\n{}", a.log(), b.log(), pebble.log());
    let failed = load.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed requests: {failed:?}\n{}",
        failed.len(),
        logs()
    );
    let serials = load.serials.lock().unwrap().clone();
    assert!(
        serials.contains(&first) && serials.contains(&renewed),
        "clients saw both certificates: {serials:?}"
    );
    // Renewed once for the fleet: two certificates issued in all, two
    // orders placed (the first and the renewal).
    assert_eq!(pebble.log().matches(PEBBLE_ISSUED).count(), 2, "{}", logs());
    assert_eq!(count(&[a, b], ISSUED), 2, "{}", logs());
    eprintln!(
        "renewal under load: {} requests, 0 failed, serials {serials:?}",
        load.ok.load(Ordering::SeqCst)
    );
}

/// One instance of the fleet listening on pebble's HTTP-01 port itself.
fn lone_platform(s: &Site, pebble: &Pebble, redis_url: &str, name: &str) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("site/index.html", "hello from the fleet");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:{http}\"\nlisten_tls = \"127.0.0.1:0\"\nmanifests = \"manifests\"\nworkers = 1\n\
         [platform.acme]\ndirectory = \"{dir}\"\nca_root = \"{root}\"\n\
         [redis]\nurl = \"{redis_url}\"\nprefix = \"fleet:\"\n\
         [apps.site]\nsource = \"site\"\ndomains = [\"{name}\"]\ntls = \"acme\"\n",
        http = pebble.http_port,
        dir = pebble.directory,
        root = pebble.ca_root.display(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_an_instance_orders_alone_and_serves() {
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let name = "alone.fleet.bext.test";
    // Nothing listens there.
    let down = format!("redis://127.0.0.1:{}/", crate::pebble::free_port());
    let s = Site::new();
    let bext = Bext::serve(&lone_platform(&s, &pebble, &down, name));
    let serial = served_serial(&bext, name, &root, &[], &pebble).await;
    assert!(!serial.is_empty());
    let log = bext.log_once_it_says(ISSUED);
    assert!(
        log.contains("the fleet's store is unreachable; ordering without it"),
        "{log}"
    );
    assert_eq!(log.matches(ISSUED).count(), 1, "{log}");
}

/// Sends one command to `redis` and returns its answer's first line.
fn redis_command(redis: &Redis, args: &[&str]) -> String {
    use std::io::{BufRead, Write};
    let mut stream =
        std::net::TcpStream::connect(redis.url().trim_start_matches("redis://").trim_end_matches('/')).unwrap();
    let mut command = format!("*{}\r\n", args.len());
    for a in args {
        command.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(command.as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_of_a_crashed_holder_expires_and_the_waiting_instance_orders() {
    let redis = Redis::start();
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let name = "crashed.fleet.bext.test";
    // The lock a holder that crashed mid-order left: bext's key for this
    // directory and name set, under the fleet's prefix, expiring in 3 s.
    let lock = fleet_key("lock", &pebble.directory, name);
    assert_eq!(redis_command(&redis, &["SET", &lock, "12345", "PX", "3000"]), "+OK");
    let s = Site::new();
    let bext = Bext::serve(&lone_platform(&s, &pebble, &redis.url(), name));
    served_serial(&bext, name, &root, &[], &pebble).await;
    let log = bext.log();
    let waited = log
        .find("another instance is ordering; waiting")
        .unwrap_or_else(|| panic!("{log}"));
    let ordered = log.find(ORDERING).unwrap_or_else(|| panic!("{log}"));
    assert!(waited < ordered, "{log}");
    assert_eq!(log.matches(ISSUED).count(), 1, "{log}");
    // Released after the order: nobody holds it now.
    assert_eq!(redis_command(&redis, &["EXISTS", &lock]), ":0");
}

/// bext's key for `what` (`lock`, `cert`) of the name set `[name]` from
/// `directory`, under the tests' prefix `fleet:`.
fn fleet_key(what: &str, directory: &str, name: &str) -> String {
    use sha2::Digest;
    let id: String = sha2::Sha256::digest(format!("{directory}\n{name}").as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("fleet:acme:{what}:{id}")
}

/// Stores a certificate under `key` as an instance of the fleet would, and
/// tells the fleet on its bus.
fn store_in_fleet(redis: &Redis, key: &str, directory: &str, name: &str, chain: &str, private_key: &str) {
    let entry = serde_json::json!({
        "directory": directory,
        "names": [name],
        "chain_pem": chain,
        "key_pem": private_key,
    });
    assert_eq!(
        redis_command(redis, &["SET", key, &entry.to_string(), "EX", "3600"]),
        "+OK"
    );
    let message = format!(
        "bext-acme {}",
        serde_json::json!({"kind": "certificate", "from": 1, "key": key})
    );
    redis_command(redis, &["PUBLISH", "fleet:bus", &message]);
}

/// A CA of the test's own (its PEM) and a maker of leaves it signs for
/// some names, valid until 2099 (longer than pebble's five years): chain
/// and key PEM.
fn long_lived_issuer() -> (String, impl Fn(Vec<String>) -> (String, String)) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = move |names: Vec<String>| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        (params.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    (ca_pem, leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_stored_by_another_instance_is_served_by_every_instance_at_once() {
    let redis = Redis::start();
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let name = "news.fleet.bext.test";
    let (_balancer, _sites, fleet) = balanced_pair(&pebble, &redis, name).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let first = served_serial(a, name, &root, &[b], &pebble).await;
    assert_eq!(served_serial(b, name, &root, &[a], &pebble).await, first);

    // Another member of the fleet renews: a certificate valid longer than
    // pebble's five years. Neither instance is due for years, so only the
    // bus message can make them switch. Signed by a CA of the test's own.
    let (ca_pem, leaf) = long_lived_issuer();
    let key = fleet_key("cert", &pebble.directory, name);
    // First what an attacker with write access but no certificate for the
    // name could store: one for another name, and the right one with a key
    // that does not go with it. Both are refused.
    // (Each is read when its message arrives: the next waits until both
    // instances refused the one before.)
    const REFUSED: &str = "the fleet's certificate is unusable; ignoring it";
    let refused = |times: usize| {
        eventually(Duration::from_secs(30), move || async move {
            (a.log().matches(REFUSED).count() == times && b.log().matches(REFUSED).count() == times).then_some(())
        })
    };
    let (other_chain, other_key) = leaf(vec!["other.bext.test".into()]);
    store_in_fleet(&redis, &key, &pebble.directory, name, &other_chain, &other_key);
    refused(1).await;
    let (chain, private_key) = leaf(vec![name.into()]);
    store_in_fleet(&redis, &key, &pebble.directory, name, &chain, &other_key);
    refused(2).await;
    // Then a good one.
    store_in_fleet(&redis, &key, &pebble.directory, name, &chain, &private_key);
    for bext in [a, b] {
        let port = bext.tls.unwrap().port();
        let serial = eventually(Duration::from_secs(30), || async {
            handshake_serial(port, name, &ca_pem).await.ok()
        })
        .await;
        assert_ne!(serial, first);
        let log = bext.log();
        assert_eq!(
            log.matches("the fleet's certificate is unusable; ignoring it").count(),
            2,
            "{log}"
        );
        assert!(log.contains(LOADED), "{log}");
    }
    // Nothing was ordered for it.
    assert_eq!(pebble.log().matches(PEBBLE_ISSUED).count(), 1, "{}", pebble.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_redis_shares_the_next_orders_with_the_fleet() {
    let redis = Redis::start();
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let s = Site::new();
    // Started without `[redis]`: the first app's order is this instance's.
    let cfg = lone_platform(&s, &pebble, &redis.url(), "solo.fleet.bext.test");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let without_redis = text.replace(
        &format!("[redis]\nurl = \"{}\"\nprefix = \"fleet:\"\n", redis.url()),
        "",
    );
    assert_ne!(without_redis, text);
    std::fs::write(&cfg, &without_redis).unwrap();
    let bext = Bext::serve(&cfg);
    served_serial(&bext, "solo.fleet.bext.test", &root, &[], &pebble).await;
    assert!(!bext.log().contains(ORDERING), "{}", bext.log());

    // A reload adds `[redis]` and an app: its order goes through the fleet,
    // and its certificate is in Redis for the others.
    s.write("second/index.html", "second");
    std::fs::write(
        &cfg,
        text + "[apps.second]\nsource = \"second\"\ndomains = [\"second.fleet.bext.test\"]\ntls = \"acme\"\n",
    )
    .unwrap();
    bext.signal("HUP");
    served_serial(&bext, "second.fleet.bext.test", &root, &[], &pebble).await;
    let log = bext.log();
    assert_eq!(log.matches(ORDERING).count(), 1, "{log}");
    assert!(log.contains("ACME certificate shared with the fleet"), "{log}");
    let key = fleet_key("cert", &pebble.directory, "second.fleet.bext.test");
    assert_eq!(redis_command(&redis, &["EXISTS", &key]), ":1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_fails_is_not_repeated_at_once_by_the_rest_of_the_fleet() {
    let redis = Redis::start();
    // pebble refuses to issue for the name: the new order fails.
    let name = "refused.fleet.bext.test";
    let pebble = Pebble::start_with(PebbleOptions {
        blocklist: vec![name.into()],
        ..Default::default()
    });
    let (sa, sb) = (Site::new(), Site::new());
    let fleet = start_together(&[
        fleet_platform(&sa, &pebble, &redis, name),
        fleet_platform(&sb, &pebble, &redis, name),
    ]);
    let (a, b) = (&fleet[0], &fleet[1]);
    // Both instances fail: one placed the order, the other backed off.
    eventually(Duration::from_secs(30), || async {
        (a.log().contains("ACME order failed") && b.log().contains("ACME order failed")).then_some(())
    })
    .await;
    let logs = format!("A:\n{}\nB:\n{}\npebble:\n{}", a.log(), b.log(), pebble.log());
    assert_eq!(pebble.log().matches("POST /order-plz").count(), 1, "{logs}");
    assert_eq!(count(&[a, b], ORDERING), 1, "{logs}");
    assert_eq!(
        count(&[a, b], "another instance's order failed a moment ago"),
        1,
        "{logs}"
    );
    assert!(logs.contains("rejectedIdentifier"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_after_the_fleet_renewed_serves_the_renewal_at_once() {
    let redis = Redis::start();
    let pebble = Pebble::start();
    let root = pebble.issuing_root().await;
    let name = "back.fleet.bext.test";
    let s = Site::new();
    let cfg = lone_platform(&s, &pebble, &redis.url(), name);
    let bext = Bext::serve(&cfg);
    let first = served_serial(&bext, name, &root, &[], &pebble).await;
    drop(bext);
    // While it is down, the fleet renews (with a certificate valid longer
    // than the five-year one on its disk, so it is not due for years).
    let (ca_pem, leaf) = long_lived_issuer();
    let (chain, key) = leaf(vec![name.into()]);
    store_in_fleet(
        &redis,
        &fleet_key("cert", &pebble.directory, name),
        &pebble.directory,
        name,
        &chain,
        &key,
    );
    let bext = Bext::serve(&cfg);
    let port = bext.tls.unwrap().port();
    let renewed = eventually(Duration::from_secs(30), || async {
        handshake_serial(port, name, &ca_pem).await.ok()
    })
    .await;
    assert_ne!(renewed, first);
    assert!(bext.log().contains(LOADED), "{}", bext.log());
    assert!(!bext.log().contains(ORDERING), "{}", bext.log());
}
