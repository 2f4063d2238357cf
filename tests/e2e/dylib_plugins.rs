//! Rust plugins from shared libraries: the rust-hello example built by
//! the test (its six hooks, the request body), panics contained, a rebuilt
//! library reloaded at the same path, and libraries bext must refuse.

use std::time::Duration;

use crate::support::*;

fn manifest(s: &Site, lib: &std::path::Path, config: &str) {
    s.write(
        "manifests/rust-hello.yaml",
        format!("name: rust-hello\nentry: {}\nconfig:\n{config}", lib.display()),
    );
}

#[tokio::test]
async fn the_example_plugin_loads_answers_and_adds_headers() {
    let lib = plugin_library("bext-plugin-rust-hello");
    let echo = Echo::start().await;
    let s = Site::new();
    manifest(&s, &lib, "  greeting: ahoy\n  path: /hi\n");
    let b = Bext::serve(&shop_platform(&s, echo.addr));

    let r = get(b.addr, "acme.shop.test", "/hi").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ahoy from shop (tenant acme)\n");
    assert_eq!(r.header("x-answered-by"), Some("rust-hello"));
    assert_eq!(
        r.header("x-hello"),
        Some("ahoy"),
        "on_response runs on the plugin's own answer too"
    );

    let r = get(b.addr, "shop.test", "/other").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hello"), Some("ahoy"));
    assert_eq!(
        r.json()["headers"]["x-hello-seen"],
        "1",
        "on_request edited the request"
    );
}

#[tokio::test]
async fn an_async_hook_reads_the_body_and_the_app_still_gets_it() {
    let lib = plugin_library("bext-plugin-rust-hello");
    let echo = Echo::start().await;
    let s = Site::new();
    manifest(&s, &lib, "  greeting: ahoy\n  path: /hi\n  max_body: 4\n");
    let b = Bext::serve(&shop_platform(&s, echo.addr));

    let r = send(b.addr, request("POST", "/hi", &[("host", "shop.test")], "ab")).await;
    assert_eq!(r.text(), "ahoy: 2 bytes\n");
    let r = send(b.addr, request("POST", "/hi", &[("host", "shop.test")], "abcdefgh")).await;
    assert_eq!(r.text(), "ahoy: 4 bytes\n", "at most max_body bytes are read");

    let r = send(
        b.addr,
        request("POST", "/other", &[("host", "shop.test")], "hello, app"),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["headers"]["x-hello-body-bytes"], "4");
    assert_eq!(seen["body_len"], 10, "the app got the whole body");
}

#[tokio::test]
async fn on_init_on_complete_and_on_shutdown_run() {
    let lib = plugin_library("bext-plugin-rust-hello");
    let echo = Echo::start().await;
    let s = Site::new();
    manifest(&s, &lib, "  greeting: ahoy\n  path: /hi\n  log: true\n");
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let log = s.path(".bext/rust-hello/completed.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.exists(), "on_init opened the log in the data dir");

    let r = get(b.addr, "shop.test", "/hi").await;
    let line = format!(" 200 {}\n", r.body.len());
    eventually(Duration::from_secs(5), || async {
        read().ends_with(&line).then_some(())
    })
    .await;
    assert!(!read().contains("shutdown"));

    // A new config retires the old instance.
    manifest(&s, &lib, "  greeting: hoy\n  path: /hi\n  log: true\n");
    eventually(Duration::from_secs(10), || async {
        read().contains("shutdown\n").then_some(())
    })
    .await;
    assert_eq!(
        get(b.addr, "shop.test", "/hi").await.text(),
        "hoy from shop (tenant -)\n"
    );
}

#[tokio::test]
async fn a_library_rebuilt_at_the_same_path_is_reloaded() {
    let echo = Echo::start().await;
    let s = Site::new();
    let lib = s.path("lib/libplugin.so");
    std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
    std::fs::copy(plugin_library("bext-plugin-rust-hello"), &lib).unwrap();
    manifest(&s, &lib, "  greeting: ahoy\n");
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let addr = b.addr;
    let x_hello = || async move { get(addr, "shop.test", "/").await.header("x-hello").map(str::to_owned) };
    assert_eq!(x_hello().await.as_deref(), Some("ahoy"));

    for (build, says) in [
        ("bext-test-plugin-rebuilt", "rebuilt"),
        ("bext-plugin-rust-hello", "ahoy"),
    ] {
        // Replace the file, as `cargo build` and `cp` do.
        let next = s.path("lib/next.so");
        std::fs::copy(plugin_library(build), &next).unwrap();
        std::fs::rename(&next, &lib).unwrap();
        b.signal("HUP");
        eventually(Duration::from_secs(10), || async {
            (x_hello().await.as_deref() == Some(says)).then_some(())
        })
        .await;
    }
    let copies = std::fs::read_dir(s.path(".bext/plugin-libs")).unwrap().count();
    assert_eq!(copies, 0, "the copies loaded from are removed");
}

#[tokio::test]
async fn a_panic_in_a_hook_is_a_500_for_that_request_only() {
    let lib = plugin_library("bext-plugin-rust-hello");
    let echo = Echo::start().await;
    let s = Site::new();
    manifest(&s, &lib, "  greeting: ahoy\n");
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    for _ in 0..3 {
        let r = get(b.addr, "shop.test", "/__panic").await;
        assert_eq!(r.status, 500);
        assert_eq!(get(b.addr, "shop.test", "/fine").await.status, 200);
        let r = send(b.addr, request("POST", "/__panic", &[("host", "shop.test")], "abc")).await;
        assert_eq!(r.status, 500, "a panic in a hook's future too");
        assert_eq!(get(b.addr, "shop.test", "/fine").await.status, 200);
    }
    let named = |in_future: bool| {
        b.log().lines().any(|l| {
            l.contains("plugin=rust-hello")
                && l.contains("rust-hello was asked to panic")
                && l.contains("after reading 3 bytes") == in_future
        })
    };
    for in_future in [false, true] {
        eventually(Duration::from_secs(5), || async { named(in_future).then_some(()) }).await;
    }
}

#[test]
fn config_errors_point_at_the_manifest() {
    let lib = plugin_library("bext-plugin-rust-hello");
    let s = Site::new();
    manifest(&s, &lib, "  greeting: ahoy\n  path: no-slash\n");
    let cfg = platform_without_apps(&s);
    let err = check_errors(&cfg);
    assert!(
        err.contains("rust-hello.yaml") && err.contains("config.path") && err.contains("must start with `/`"),
        "{err}"
    );

    manifest(&s, &lib, "  greting: typo\n");
    let err = check_errors(&cfg);
    assert!(err.contains("rust-hello.yaml") && err.contains("greting"), "{err}");

    manifest(&s, &lib, "  greeting: ahoy\n  max_body: lots\n");
    let err = check_errors(&cfg);
    assert!(
        err.contains("rust-hello.yaml:5:3: config.max_body: invalid type: string \"lots\""),
        "the manifest's line, not the JSON's: {err}"
    );
    assert!(!err.contains("column"), "{err}");
}

#[test]
fn libraries_that_are_not_compatible_plugins_are_refused_with_their_file() {
    let s = Site::new();
    let cfg = platform_without_apps(&s);
    let cases = [
        (
            plugin_library("bext-test-plugin-old-sdk"),
            "built against bext-plugin-sdk 0.0.1",
        ),
        (plugin_library("bext-test-plugin-wrong-abi"), "ABI does not match"),
        (plugin_library("bext-test-plugin-no-export"), "not a bext plugin"),
        (s.write("fake.so", "not an ELF file"), "cannot load the library"),
        (s.path("absent.so"), "no such file"),
    ];
    for (lib, reason) in cases {
        s.write("manifests/p.yaml", format!("name: p\nentry: {}\n", lib.display()));
        let err = check_errors(&cfg);
        assert!(err.contains(&lib.display().to_string()), "names the file: {err}");
        assert!(err.contains(reason), "{reason}: {err}");
    }
}

fn platform_without_apps(s: &Site) -> std::path::PathBuf {
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n")
}

fn check_errors(cfg: &std::path::Path) -> String {
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}
