//! Graceful shutdown and the admin listener.

use std::time::{Duration, Instant};

use crate::support::*;

async fn slow_server(shutdown_timeout: &str) -> (Site, Bext, Echo) {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[platform.limits]\nshutdown_timeout = \"{shutdown_timeout}\"\n[apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\n",
        echo.addr
    ));
    let b = Bext::serve(&cfg);
    (s, b, echo)
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let (_s, mut b, _e) = slow_server("10s").await;
    let addr = b.addr;
    let slow = tokio::spawn(async move { get(addr, "x", "/api/slow/1000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.signal("TERM");
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request lost: {}", r.text());
    let status = tokio::task::spawn_blocking(move || {
        let s = b.wait_exit(Duration::from_secs(5));
        (s, b)
    })
    .await
    .unwrap();
    assert!(status.0.expect("bext did not exit").success());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn the_shutdown_deadline_bounds_the_drain() {
    let (_s, mut b, _e) = slow_server("300ms").await;
    let addr = b.addr;
    let _slow = tokio::spawn(async move { get(addr, "x", "/api/slow/20000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    b.signal("INT");
    let exited = tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(10)).is_some())
        .await
        .unwrap();
    assert!(exited, "bext did not exit");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn admin_listen_serves_endpoints_without_prefix_and_no_apps() {
    let s = Site::new();
    s.write("www/index.html", "app");
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"{admin}\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\n"
    ));
    let b = Bext::serve(&cfg);
    let r = get(admin, "x", "/health").await;
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(get(admin, "x", "/").await.status, 404);
    assert_eq!(get(b.addr, "x", "/").await.text(), "app");
}
