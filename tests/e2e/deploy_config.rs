//! A deployed bundle's own `bext.config.toml` on an app of the platform
//! file (docs/deploy.md, "A bundle's bext.config.toml"): its keys apply
//! where the file says nothing, the file wins with a warning naming both
//! where both say something, and what it names stays inside the bundle.
//! A bundle whose index.js exports a fetch handler runs as `bext run`
//! runs it, never served as its source. `bext check --deploy DIR` refuses
//! what a deploy refuses, and `bext check DIR` tells an unbuilt folder
//! from a broken one by the error's kind, not its words.

use std::path::Path;
use std::time::Duration;

use crate::deploy::{cli, ok};
use crate::support::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const MODULE: &str = "export default { fetch() { return new Response('ran the module'); } }";

#[tokio::test]
async fn a_bundles_config_applies_where_the_platform_file_says_nothing() {
    let s = Site::new();
    s.write("site/index.html", "from the platform file");
    s.write(
        "api/app.js",
        "export default { fetch() { return new Response('platform source'); } }",
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.blog]
source = "site"
domains = ["blog.test"]

[apps.api]
runtime = "js"
source = "api"
entry = "app.js"
domains = ["api.test"]
"#,
    );
    let c = p(&config);
    // blog: the bundle's static_dir and [cache.isr] (the file says neither).
    s.write("blog-v1/index.html", "the bundle's root");
    s.write("blog-v1/dist/index.html", "from dist");
    s.write(
        "blog-v1/bext.config.toml",
        "[server]\nstatic_dir = \"dist\"\n\n[cache.isr]\ndefault_ttl_ms = 60000\n",
    );
    // api: the bundle names another module than the file: the file wins.
    s.write(
        "api-v1/app.js",
        "export default { fetch() { return new Response('app.js of the bundle'); } }",
    );
    s.write(
        "api-v1/main.js",
        "export default { fetch() { return new Response('main.js of the bundle'); } }",
    );
    s.write("api-v1/bext.config.toml", "[server]\nentry = \"main.js\"\n");
    // A path out of the bundle is refused on a platform app too.
    s.write("bad/index.html", "x");
    s.write("bad/bext.config.toml", "[server]\nstatic_dir = \"../..\"\n");
    let out = cli(&["deploy", p(&s.path("bad")), "--app", "blog", "--config", c]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("bext.config.toml:2:14: server.static_dir = \"../..\": ") && err.contains("`..`"),
        "{err}"
    );

    ok(cli(&["deploy", p(&s.path("blog-v1")), "--app", "blog", "--config", c]));
    ok(cli(&["deploy", p(&s.path("api-v1")), "--app", "api", "--config", c]));
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "from dist");
    // `[cache.isr]` turned the app's cache on: the second answer is a HIT.
    let again = get(b.addr, "blog.test", "/").await;
    assert_eq!(
        (again.text(), again.header("x-cache")),
        ("from dist".into(), Some("HIT"))
    );
    assert_eq!(get(b.addr, "api.test", "/").await.text(), "app.js of the bundle");
    let said = "server.entry: `entry = \"main.js\"` is not used: app `api` of ";
    let log = eventually(Duration::from_secs(10), || async {
        let log = b.log();
        log.contains(said).then_some(log)
    })
    .await;
    assert!(
        log.contains("says `entry = \"app.js\"`, and the platform file wins"),
        "{log}"
    );
    let out = bext_output(&["check", "--config", c]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: ") && err.contains(said), "{err}");
}

#[tokio::test]
async fn a_deployed_server_module_runs_and_is_never_served_as_source_silently() {
    let s = Site::new();
    s.write("site/index.html", "from the platform file");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.blog]
source = "site"
domains = ["blog.test"]

[apps.files]
runtime = "static"
source = "site"
domains = ["files.test"]
"#,
    );
    let c = p(&config);
    s.write("module/index.js", MODULE);
    for app in ["blog", "fresh", "files"] {
        ok(cli(&["deploy", p(&s.path("module")), "--app", app, "--config", c]));
    }
    let b = Bext::serve(&config);
    // Onto an app whose table says no runtime, and as a new app.
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "ran the module");
    assert_eq!(get(b.addr, "x", "/fresh/").await.text(), "ran the module");
    // `runtime = "static"` written: the file wins, and says so.
    assert_eq!(get(b.addr, "files.test", "/index.js").await.text(), MODULE);
    let log = eventually(Duration::from_secs(10), || async {
        let log = b.log();
        log.contains("app `files` of").then_some(log)
    })
    .await;
    assert!(
        log.contains("index.js: `index.js`, a server module (it exports a `fetch` handler), is not used")
            && log.contains("says `runtime = \"static\"`: its source is served as a file"),
        "{log}"
    );
}

#[test]
fn check_deploy_refuses_what_a_deploy_refuses() {
    let s = Site::new();
    let config = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n");
    // `[redis]` is `bext run`'s (edge mode), never a bundle's.
    s.write("edge/index.html", "x");
    s.write("edge/bext.config.toml", "[redis]\nurl = \"redis://127.0.0.1:6379\"\n");
    let edge = s.path("edge");
    let dir = p(&edge);
    let run = bext_output(&["check", dir]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("(`bext check --deploy` checks a bundle as a deploy stores it)"));
    let check = bext_output(&["check", "--deploy", dir]);
    let deploy = cli(&["deploy", dir, "--app", "edge", "--config", p(&config)]);
    for out in [&check, &deploy] {
        let err = stderr(out);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("bext.config.toml:1:1: [redis]: a deployed app shares the platform's Redis"),
            "{err}"
        );
    }
    // A link is refused by the deploy's own copy, entry by entry.
    s.write("linked/index.html", "x");
    std::os::unix::fs::symlink("/etc/passwd", s.path("linked/passwd")).unwrap();
    let err = stderr(&bext_output(&["check", "--deploy", p(&s.path("linked"))]));
    assert!(err.contains("bundle entry `passwd`: a symbolic link"), "{err}");
    // What deploys is said as it would be served.
    s.write("module/index.js", MODULE);
    let out = bext_output(&["check", "--deploy", p(&s.path("module"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("deploys as a js app") && said.contains("index.js"),
        "{said}"
    );
    // An `ssr` bundle is said as one, and its `[server] listen`, unused
    // once deployed, is flagged now rather than by the deploy's load.
    s.write("ssr/index.js", MODULE);
    s.write(
        "ssr/bext.config.toml",
        "[framework]\ntype = \"ssr\"\n\n[server]\nlisten = \"0.0.0.0:3061\"\n",
    );
    let out = bext_output(&["check", "--deploy", p(&s.path("ssr"))]);
    let (said, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{err}");
    assert!(
        said.contains("deploys as an ssr app, ") && said.contains("/ssr/index.js rendered in isolates"),
        "{said}"
    );
    assert!(
        err.contains("server.listen: `0.0.0.0:3061` is not used when deployed: the platform's `listen` serves the app"),
        "{err}"
    );
    // A framework's package.json beside a bundle served as files is said.
    s.write("fw/package.json", r#"{"dependencies": {"hono": "4"}}"#);
    s.write("fw/dist/index.html", "x");
    s.write("fw/bext.config.toml", "[server]\nstatic_dir = \"dist\"\n");
    let out = bext_output(&["check", "--deploy", p(&s.path("fw"))]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("package.json depends on `hono`, but a deployed bundle is served as its bext.config.toml says (a static site here): write `[framework] type = \"hono\"`"),
        "{err}"
    );
    let err = stderr(&bext_output(&["check", "--deploy", "--config", p(&config)]));
    assert!(err.contains("`bext check --deploy DIR`"), "{err} {config:?}");
}

/// A folder whose only problem is a build `bext run` makes first passes
/// `bext check DIR` with a note; one whose error merely reads like that
/// (a folder named "build the app") fails.
#[test]
fn check_tells_an_unbuilt_folder_by_the_errors_kind_not_its_words() {
    let s = Site::new();
    s.write(
        "h/package.json",
        r#"{"dependencies": {"hono": "^4"}, "scripts": {"build": "true"}, "main": "dist/server.js"}"#,
    );
    let out = bext_output(&["check", p(&s.path("h"))]);
    let err = stderr(&out);
    assert!(out.status.success() && err.contains("is not built yet"), "{err}");
    // A `static_dir` the build may still make is awaited like the module;
    // one that is a file is wrong whatever the build does.
    s.write(
        "h/bext.config.toml",
        "[framework]\ntype = \"hono\"\n\n[server]\nstatic_dir = \"build the app\"\n",
    );
    let out = bext_output(&["check", p(&s.path("h"))]);
    assert!(
        out.status.success() && stderr(&out).contains("is not built yet"),
        "{}",
        stderr(&out)
    );
    s.write("h/build the app", "a file");
    let out = bext_output(&["check", p(&s.path("h"))]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("build the app is not a directory") && !err.contains("not built yet"),
        "{err}"
    );
}

/// A `hybrid` bundle's `[server] upstream` may not make bext forward
/// anonymous requests to its own admin listener (or a link-local
/// address): the connection is refused after DNS, with a 502 naming the
/// app. The same upstream written in the platform file is the operator's
/// choice and is not held to it.
#[tokio::test]
async fn a_bundles_upstream_never_reaches_bexts_own_listeners() {
    let s = Site::new();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
admin_listen = "{admin}"

[apps.shop]
source = "shop"
domains = ["shop.test"]

[apps.ops]
runtime = "proxy"
upstream = "http://{admin}"
domains = ["ops.test"]
"#
    ));
    s.write("shop/index.html", "x");
    s.write("v1/index.js", MODULE);
    for host in [admin.to_string(), format!("localhost:{}", admin.port())] {
        s.write(
            "v1/bext.config.toml",
            format!(
                "[framework]\ntype = \"hybrid\"\n[server]\nentry = \"index.js\"\nupstream = \"http://{host}\"\napi_prefix = \"/api\"\n"
            ),
        );
        ok(cli(&[
            "deploy",
            p(&s.path("v1")),
            "--app",
            "shop",
            "--config",
            p(&config),
        ]));
        let b = Bext::serve(&config);
        assert_eq!(get(b.addr, "shop.test", "/").await.text(), "ran the module");
        let refused = get(b.addr, "shop.test", "/api/x").await;
        assert_eq!(refused.status, 502, "{host}: {}", refused.text());
        let log = b.log_once_it_says("a deployed bundle's upstream reaches");
        assert!(log.contains("it is one of bext's own listeners"), "{log}");
        // The platform file's own proxy to the same address reaches it
        // (the admin listener answers the unknown path itself).
        let ops = get(b.addr, "ops.test", "/api/x").await;
        assert_eq!(ops.status, 404, "{}", ops.text());
    }
}

/// `bext check --deploy DIR --config FILE --app ID` checks a bundle as
/// `bext deploy DIR --app ID` stores and serves it: within the deploy
/// manifest's `max_bundle_bytes`, onto the app's table. What a load of it
/// would warn about (a bundle key the table overrides) is told to the
/// user who deploys it, and every problem of the bundle's
/// bext.config.toml names its line and column.
#[test]
fn a_bundle_is_checked_and_deployed_onto_its_app_with_its_platform_s_limits() {
    let s = Site::new();
    s.write("site/index.html", "site");
    s.write("api/app.js", MODULE);
    s.write(
        "manifests/deploy.yaml",
        "name: deploy\nconfig:\n  max_bundle_bytes: 1KiB\n",
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.web]
source = "site"

[apps.api]
runtime = "js"
source = "api"
entry = "app.js"
"#,
    );
    let c = p(&config);
    // Over the platform's max_bundle_bytes: refused by the check as by
    // the deploy; the plugin's default (1 GiB) holds it without a platform.
    let big_dir = s.path("big");
    s.write("big/index.html", "x".repeat(2048));
    let big = p(&big_dir);
    let check = bext_output(&["check", "--deploy", big, "--config", c]);
    let deploy = cli(&["deploy", big, "--app", "web", "--config", c]);
    for out in [&check, &deploy] {
        let err = stderr(out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("max_bundle_bytes"), "{err}");
    }
    let alone = bext_output(&["check", "--deploy", big]);
    assert!(alone.status.success(), "{}", stderr(&alone));

    // Onto `api`, whose table names another module: checked, then
    // deployed, each saying which key is not used and where it is.
    s.write("api-v2/app.js", MODULE);
    s.write("api-v2/main.js", MODULE);
    s.write("api-v2/bext.config.toml", "[server]\nentry = \"main.js\"\n");
    let api_v2 = s.path("api-v2");
    let dir = p(&api_v2);
    let said = "bext.config.toml:2:9: server.entry: `entry = \"main.js\"` is not used: app `api` of ";
    let check = bext_output(&["check", "--deploy", dir, "--config", c, "--app", "api"]);
    let err = stderr(&check);
    assert!(check.status.success(), "{err}");
    assert!(
        err.contains("as a version of app `api`") && err.contains(&format!("warning: {}", s.path("api-v2").display())),
        "{err}"
    );
    assert!(err.contains(said), "{err}");
    // A platform and a folder without `--deploy` is ambiguous: refused.
    let both = bext_output(&["check", "--config", c, dir]);
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("give `--config FILE` or a folder, not both"),
        "{}",
        stderr(&both)
    );
    // Without `--app` it is a new app's bundle: nothing overrides it.
    let err = stderr(&bext_output(&["check", "--deploy", dir, "--config", c]));
    assert!(!err.contains("is not used"), "{err}");
    let out = cli(&["deploy", dir, "--app", "api", "--config", c]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("warning: {}", s.path("api-v2").display())) && err.contains(said),
        "{err}"
    );

    // A `hybrid` bundle's own `/api/*` upstream is checked as a proxy
    // app's is, and refused at its line and column (credentials: a URL,
    // but not one the proxy sends requests to).
    s.write("hy/index.js", MODULE);
    s.write(
        "hy/bext.config.toml",
        "[framework]\ntype = \"hybrid\"\n[server]\nupstream = \"http://me:pw@127.0.0.1:1\"\n",
    );
    let out = bext_output(&["check", "--deploy", p(&s.path("hy")), "--config", c, "--app", "web"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "bext.config.toml:4:12: server.upstream = \"http://me:pw@127.0.0.1:1\": an upstream URL has no credentials"
        ),
        "{err}"
    );
    // `--app` alone checks against ./platform.toml, as `bext deploy` does.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(["check", "--deploy", p(&s.path("hy")), "--app", "web"])
        .current_dir(s.path("site"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("platform.toml"), "{}", stderr(&out));
}
