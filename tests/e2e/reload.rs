//! Reload: file changes and SIGHUP swap the pipeline atomically; broken
//! configurations are refused; requests in flight finish.

use std::time::Duration;

use crate::support::*;

async fn generation(b: &Bext) -> u64 {
    get(b.addr, "x", "/__bext/health").await.json()["generation"]
        .as_u64()
        .unwrap()
}

fn platform(extra_app: &str) -> String {
    format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\n{extra_app}"
    )
}

fn setup() -> (Site, Bext) {
    let s = Site::new();
    s.write("a/index.html", "a");
    s.write("b/index.html", "b");
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let cfg = s.platform(&platform(""));
    let b = Bext::serve(&cfg);
    (s, b)
}

#[tokio::test]
async fn platform_and_manifest_changes_are_picked_up() {
    let (s, b) = setup();
    assert_eq!(get(b.addr, "b.test", "/").await.status, 404);
    s.platform(&platform("[apps.b]\nsource = \"b\"\ndomains = [\"b.test\"]\n"));
    let addr = b.addr;
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "b.test", "/").await.text() == "b").then_some(())
    })
    .await;
    assert_eq!(generation(&b).await, 2);

    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    \"alias.test\": { app: a }\n",
    );
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "alias.test", "/").await.text() == "a").then_some(())
    })
    .await;
}

#[tokio::test]
async fn broken_configurations_are_refused_and_the_old_one_keeps_serving() {
    let (s, b) = setup();
    s.platform("[platform\nthis is not toml");
    let log = || b.log();
    eventually(Duration::from_secs(10), || async {
        log().contains("reload rejected").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");
    assert_eq!(generation(&b).await, 1);

    // A manifest with an unknown field is refused with file, line and field.
    s.platform(&platform(""));
    s.write("manifests/vhosts.yaml", "name: vhosts\nconfig:\n  hostz: {}\n");
    eventually(Duration::from_secs(10), || async {
        log()
            .contains("vhosts.yaml:3:3: config.hostz: unknown field `hostz`")
            .then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");

    // Fixed again, and SIGHUP also reloads.
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let before = generation(&b).await;
    b.signal("HUP");
    let addr = b.addr;
    eventually(Duration::from_secs(10), || async move {
        let g = get(addr, "x", "/__bext/health").await.json()["generation"]
            .as_u64()
            .unwrap();
        (g > before).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_emptied_platform_file_is_not_a_platform_of_no_apps() {
    // A file rewritten in place is empty for a moment; the watcher must not
    // take that moment for a platform without apps.
    let (s, b) = setup();
    s.platform("\n  \n");
    let log = || b.log();
    eventually(Duration::from_secs(10), || async {
        log().contains("the platform file is empty").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");
    assert_eq!(generation(&b).await, 1);

    // Written whole again (with one more app), it is reloaded.
    s.platform(&platform("[apps.b]\nsource = \"b\"\ndomains = [\"b.test\"]\n"));
    let addr = b.addr;
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "b.test", "/").await.text() == "b").then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");
}

#[tokio::test]
async fn requests_in_flight_finish_on_the_old_pipeline() {
    let echo = Echo::start().await;
    let s = Site::new();
    let with_api = format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nwatch = false\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    );
    let cfg = s.platform(&with_api);
    let b = Bext::serve(&cfg);
    let addr = b.addr;
    let slow = tokio::spawn(async move { get(addr, "x", "/api/slow/1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The app disappears while its request is in flight.
    s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nwatch = false\n");
    b.signal("HUP");
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "x", "/api/").await.status == 404).then_some(())
    })
    .await;
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request was cut: {}", r.text());
}

/// A manifests folder overrides only the plugins it names: one holding just
/// `deploy.yaml` leaves virtual hosts on; turning them off takes a manifest
/// that says so, and the load says host routing is off.
#[tokio::test]
async fn a_manifests_folder_overrides_only_the_plugins_it_names() {
    let s = Site::new();
    s.write("a/index.html", "a");
    s.write("b/index.html", "b");
    let a = "[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\n";
    let cfg = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n{a}"));
    let b = Bext::serve(&cfg);
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "a");

    // The folder and a new app in one reload: the new app answers on its
    // host, so the reload happened with virtual hosts on.
    s.write("manifests/deploy.yaml", "name: deploy\nconfig:\n  keep_versions: 2\n");
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n{a}[apps.b]\nsource = \"b\"\ndomains = [\"b.test\"]\n"
    ));
    let addr = b.addr;
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "b.test", "/").await.text() == "b").then_some(())
    })
    .await;
    assert_eq!(get(addr, "a.test", "/").await.text(), "a");
    assert!(!b.log().contains("host routing is off"), "{}", b.log());

    s.write("manifests/vhosts.yaml", "name: vhosts\nenabled: false\n");
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "a.test", "/").await.status == 404).then_some(())
    })
    .await;
    let log = b.log();
    assert!(
        log.contains("vhosts.yaml:2:1: enabled: vhosts is off, so host routing is off"),
        "{log}"
    );
}

/// Rate-limit buckets survive a reload that changes the app table (a new
/// app, or a canary or preview deploy adding a hidden one): the gateway
/// does not read the table, so its instance is kept.
#[tokio::test]
async fn a_new_app_does_not_reset_rate_limits() {
    let s = Site::new();
    s.write("a/index.html", "a");
    s.write("b/index.html", "b");
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let limited = "rate_limit = { rpm = 5, burst = 5 }\n";
    let cfg = s.platform(&format!("{}{limited}", platform("")));
    let b = Bext::serve(&cfg);
    for i in 0..5 {
        assert_eq!(get(b.addr, "a.test", "/").await.status, 200, "request {i}");
    }
    assert_eq!(get(b.addr, "a.test", "/").await.status, 429);

    s.platform(&format!(
        "{}{limited}[apps.b]\nsource = \"b\"\ndomains = [\"b.test\"]\n",
        platform("")
    ));
    let addr = b.addr;
    eventually(Duration::from_secs(10), || async move {
        (get(addr, "b.test", "/").await.text() == "b").then_some(())
    })
    .await;
    assert_eq!(generation(&b).await, 2);
    assert_eq!(
        get(addr, "a.test", "/").await.status,
        429,
        "the reload gave the client a fresh budget"
    );
}
