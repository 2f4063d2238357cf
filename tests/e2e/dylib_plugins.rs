//! Rust plugins from shared libraries: the rust-hello example built by
//! the test, panics contained, and libraries bext must refuse.

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
    }
    let named = || {
        b.log()
            .lines()
            .any(|l| l.contains("plugin=rust-hello") && l.contains("rust-hello was asked to panic"))
    };
    eventually(std::time::Duration::from_secs(5), || async { named().then_some(()) }).await;
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
