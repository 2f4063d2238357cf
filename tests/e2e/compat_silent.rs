//! Configuration a new user brings from the original bext or Buntime that
//! bext used to take and then serve differently (a key the runtime
//! ignores, a preview lifetime no deploy accepts, the file's Redis over
//! the environment's): each is refused or said at `bext check` and load,
//! with the key and what to write.

use std::time::Duration;

use crate::compat::{check, check_env, js_app, p};
use crate::support::*;

/// Keys another runtime reads, on an app whose runtime ignores them, are
/// refused by `bext check` with the key and what to write instead.
#[test]
fn keys_of_another_runtime_are_refused_with_what_to_write() {
    let s = Site::new();
    js_app(&s, "shop", "shop");
    s.write("shop/dist/client/app.css", "body{}");
    s.write("site/index.html", "site");
    s.write(
        "srv/server.js",
        "require('http').createServer().listen(process.env.PORT)",
    );
    s.write("next/.next/static/x.js", "");
    let config = s.platform(
        r#"[apps.shop]
source = "shop"
runtime = "ssr"
upstream = "http://127.0.0.1:8180"
static_dir = "dist/client"

[apps.files]
source = "site"
runtime = "static"
entry = "index.js"
upstream = "http://127.0.0.1:8180"
isolate.workers = 4

[apps.srv]
source = "srv"
runtime = "process"
command = "node server.js"
isolate = { memory_limit = "128MiB" }

[apps.next]
source = "next"
runtime = "nextjs"
static_dir = "public"
entry = "x.js"

[apps.js]
source = "shop"
runtime = "js"
command = "node x"
"#,
    );
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    for want in [
        "apps.shop.upstream: an `ssr` app renders every request itself: to send `/api/*` to an upstream write `runtime = \"hybrid\"`",
        "apps.files.entry: a `static` app serves its `source` as files: for a module exporting `fetch` write `runtime = \"js\"`",
        "apps.files.upstream: a `static` app serves its `source` as files: to forward requests write `runtime = \"proxy\"`",
        "apps.files.isolate.workers: this app runs no JavaScript",
        "apps.srv.isolate.memory_limit: a process app runs no isolates: bound each instance with `limits = { memory",
        "apps.next.static_dir: a `nextjs` app serves `.next/static` and `public/` itself",
        "apps.next.entry: a `nextjs` app runs `next start`",
        "apps.js.command: only a process app runs a command (`runtime = \"process\"`, or `express`/`nextjs`",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    // The same app as the page means it passes.
    let fixed = s.platform(
        "[apps.shop]\nsource = \"shop\"\nruntime = \"hybrid\"\nupstream = \"http://127.0.0.1:8180\"\nstatic_dir = \"dist/client\"\n",
    );
    let (ok, out) = check(&fixed);
    assert!(ok, "{out}");
}

/// `[framework] type = "hono"` with `[server] spa_fallback`: the router
/// answers unknown paths, so the key is refused at `bext check DIR`.
#[test]
fn a_hono_bundle_with_spa_fallback_is_refused() {
    let s = Site::new();
    js_app(&s, ".", "hono");
    s.write(
        "bext.config.toml",
        "[framework]\ntype = \"hono\"\n[server]\nspa_fallback = true\n",
    );
    let out = bext_output(&["check", p(s.dir.path())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("server.spa_fallback: a JS app answers unknown paths itself"),
        "{err}"
    );
}

/// A preview lifetime outside the deploy plugin's range is refused where
/// it is written (`[platform] preview_ttl`, the deploy manifest's
/// `preview_ttl`), not at every preview deploy.
#[test]
fn a_preview_ttl_no_deploy_accepts_is_refused_at_its_key() {
    let s = Site::new();
    s.write("site/index.html", "site");
    for ttl in ["0s", "5000d"] {
        let config = s.platform(&format!(
            "[platform]\npreview_ttl = \"{ttl}\"\n[apps.a]\nsource = \"site\"\n"
        ));
        let (ok, out) = check(&config);
        assert!(!ok, "{ttl}: {out}");
        assert!(
            out.contains("platform.preview_ttl: a preview lives") && out.contains("\"1s\" to \"3650d\""),
            "{ttl}: {out}"
        );
    }
    s.write(
        "manifests/deploy.yaml",
        "name: deploy\nenabled: true\nconfig:\n  preview_ttl: 0s\n",
    );
    let config = s.platform("[platform]\nmanifests = \"manifests\"\n[apps.a]\nsource = \"site\"\n");
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("preview_ttl") && out.contains("a preview lives 0 s"),
        "{out}"
    );
    let config = s.platform("[platform]\npreview_ttl = \"7d\"\n[apps.a]\nsource = \"site\"\n");
    s.write("manifests/deploy.yaml", "name: deploy\nenabled: true\n");
    let (ok, out) = check(&config);
    assert!(ok, "{out}");
}

/// `REDIS_URL` wins over the file's `[redis] url` (each instance of a
/// fleet sets its own, as deployment-modes shows), and the log says so.
#[tokio::test]
async fn redis_url_from_the_environment_wins_over_the_file() {
    let redis = crate::edge::Redis::start();
    let s = Site::new();
    s.write("site/index.html", "site");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[redis]\nurl = \"redis://127.0.0.1:{dead}/\"\n[apps.a]\nsource = \"site\"\ndomains = [\"a.test\"]\n"
    ));
    let url = redis.url();
    let b = Bext::serve_env(&config, &[("REDIS_URL", &url), ("BEXT_ADMIN_TOKEN", "sekret")]);
    crate::edge::redis_is(&[&b], "up", 10).await;
    let log = b.log();
    assert!(
        log.contains("REDIS_URL (environment) is used, not the file's [redis] url"),
        "{log}"
    );
    assert!(log.contains("from=\"REDIS_URL\""), "{log}");
    assert!(!log.contains("redis unreachable at start"), "{log}");
}

/// A Redis nothing listens on at start is a WARN, and bext serves on.
#[tokio::test]
async fn a_redis_nothing_listens_on_is_a_warning_at_start() {
    let s = Site::new();
    s.write("site/index.html", "site");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[redis]\nurl = \"redis://127.0.0.1:{dead}/\"\n[apps.a]\nsource = \"site\"\ndomains = [\"a.test\"]\n"
    ));
    let b = Bext::serve(&config);
    eventually(Duration::from_secs(10), || async {
        b.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("redis unreachable at start"))
            .then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "a.test", "/").await.text(), "site");
    let (ok, out) = check_env(&config, &[]);
    assert!(ok, "{out}");
}

/// Buntime's vhosts manifest without `enabled` is on in bext but off in
/// Buntime: bext keeps it on and says so; and a `manifests/` folder the
/// platform file does not name is said to be unread, with the key to add.
#[tokio::test]
async fn buntime_s_unset_enabled_and_an_unread_manifests_folder_are_said() {
    let s = Site::new();
    js_app(&s, "skedly", "skedly");
    s.write(
        "manifests/plugins/vhosts/manifest.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"sked.ly\": { app: skedly }\n",
    );
    let apps = "[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\n";
    let unread = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n{apps}"));
    let (ok, out) = check(&unread);
    assert!(ok, "{out}");
    assert!(
        out.contains("platform.manifests: ")
            && out.contains("holds plugin manifests that are not read")
            && out.contains("add `manifests = \"manifests\"` to [platform]"),
        "{out}"
    );
    let b = Bext::serve(&unread);
    let log = b.log_once_it_says("holds plugin manifests that are not read");
    assert!(log.contains("holds plugin manifests that are not read"), "{log}");
    drop(b);

    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"sked.ly\": { app: skedly }\n",
    );
    std::fs::remove_dir_all(s.path("manifests/plugins")).unwrap();
    let read = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n{apps}"
    ));
    let (ok, out) = check(&read);
    assert!(ok, "{out}");
    assert!(!out.contains("not read"), "{out}");
    assert!(
        out.contains("enabled: unset: the plugin is on in bext") && out.contains("Buntime would have it off"),
        "{out}"
    );
    let b = Bext::serve(&read);
    assert_eq!(get(b.addr, "sked.ly", "/").await.text(), "skedly /");
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nenabled: true\nhosts:\n  \"sked.ly\": { app: skedly }\n",
    );
    let (ok, out) = check(&read);
    assert!(ok && !out.contains("Buntime would have it off"), "{out}");
}

/// A `nextjs` app without its `.next/` build, in a platform file or as
/// `[framework] type = "nextjs"` in a folder, fails check naming
/// `next build`, not at serve with 502s.
#[test]
fn an_unbuilt_nextjs_app_is_told_to_run_next_build() {
    let s = Site::new();
    s.write("m/package.json", r#"{"name": "m", "dependencies": {"next": "15"}}"#);
    let config = s.platform("[apps.m]\nsource = \"m\"\nruntime = \"nextjs\"\n");
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("apps.m.runtime: ") && out.contains("has no `.next/` build for `nextjs`: run `next build`"),
        "{out}"
    );
    s.write("empty/bext.config.toml", "[framework]\ntype = \"nextjs\"\n");
    let out = bext_output(&["check", p(&s.path("empty"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("framework.type: ") && err.contains("run `next build`"),
        "{err}"
    );
}

/// package.json's `main` is what runs: one that is not there is an error
/// naming it (not another file found by chance); a folder whose build
/// makes it is said to be unbuilt by `bext check DIR`, and `bext run`
/// builds it first and serves it.
#[tokio::test]
async fn a_missing_main_is_named_and_an_unbuilt_folder_is_built_by_run() {
    let s = Site::new();
    s.write(
        "h/package.json",
        r#"{"name": "h", "main": "./dist/server.js", "dependencies": {"hono": "4"}}"#,
    );
    // The source, which must not be what runs.
    js_app(&s, "h", "source");
    let config = s.platform("[apps.h]\nsource = \"h\"\nruntime = \"hono\"\n");
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("apps.h.entry: ") && out.contains("package.json `main` = `dist/server.js` is not a file there"),
        "{out}"
    );
    s.write(
        "h/bext.config.toml",
        "[hooks]\npre_build = \"mkdir -p dist && sed s/source/built/ index.js > dist/server.js\"\n",
    );
    let out = bext_output(&["check", p(&s.path("h"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("is not built yet: `bext run` builds it first with `mkdir -p dist"),
        "{err}"
    );
    let b = Bext::start(&["run", p(&s.path("h")), "--listen", "127.0.0.1:0"]);
    assert_eq!(get(b.addr, "localhost", "/x").await.text(), "built /x");
}

/// A folder holding only a module that exports a fetch handler is run as
/// a `js` app by `bext run`, never served as its own source.
#[tokio::test]
async fn a_folder_of_a_fetch_handler_runs_it_rather_than_serving_its_source() {
    let s = Site::new();
    js_app(&s, "w", "worker");
    let b = Bext::start(&["run", p(&s.path("w")), "--listen", "127.0.0.1:0"]);
    let r = get(b.addr, "localhost", "/index.js").await;
    assert_eq!((r.status, r.text().as_str()), (200, "worker /index.js"));
    // A plain site's script stays a file.
    s.write("site/index.html", "<script src=index.js></script>");
    s.write("site/index.js", "document.title = 'x'");
    let b = Bext::start(&["run", p(&s.path("site")), "--listen", "127.0.0.1:0"]);
    assert_eq!(
        get(b.addr, "localhost", "/index.js").await.text(),
        "document.title = 'x'"
    );
}

/// `render()` handing back an object that is no page (`{ html }`) is a
/// 500 with a log line saying what to return, not 200 `[object Object]`;
/// an array is its strings joined.
#[tokio::test]
async fn a_render_object_that_is_no_page_is_a_500_that_says_what_to_return() {
    let s = Site::new();
    s.write(
        "r/index.js",
        "export function render(request) { const p = new URL(request.url).pathname; return p === '/list' ? ['<p>a</p>', '<p>b</p>'] : { html: '<p>x</p>' }; }",
    );
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n[apps.r]\nsource = \"r\"\nruntime = \"ssr\"\ndomains = [\"r.test\"]\n",
    );
    let b = Bext::serve(&config);
    let r = get(b.addr, "r.test", "/").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains("[object Object]"));
    eventually(Duration::from_secs(5), || async {
        b.log()
            .contains("render() returned an object ({ html }), not a page: return the HTML as a string, a Response, or a ReadableStream")
            .then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "r.test", "/list").await.text(), "<p>a</p><p>b</p>");
}

/// A vhosts pin with an npm range (`skedly@^1.2`) is refused with what a
/// pin may say, once.
#[test]
fn a_pin_with_a_version_range_says_ranges_are_not_supported() {
    let s = Site::new();
    js_app(&s, "skedly", "skedly");
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nenabled: true\nhosts:\n  \"sked.ly\": { app: \"skedly@^1.2\" }\n",
    );
    let config =
        s.platform("[platform]\nmanifests = \"manifests\"\n[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\n");
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("`skedly@^1.2`: version ranges are not supported: write `skedly@latest`"),
        "{out}"
    );
    // Said once, not again as "no deployed version `^1.2`".
    assert_eq!(out.matches("hosts.sked.ly.app").count(), 1, "{out}");
    assert!(out.contains("1 error(s)"), "{out}");
}

/// The platform file's `[platform]` or `[apps.<id>]`, or one of
/// `[platform]`'s keys, written in an app's bext.config.toml (where the
/// original's single-app pages put `[server]`) says it belongs in the
/// platform file and how to serve with one; the reverse, an app's key in
/// `[platform]` or a bundle's `[server]` in a platform file, says where
/// it goes there.
#[test]
fn platform_file_tables_in_bext_config_toml_say_where_they_belong() {
    let s = Site::new();
    s.write("app/index.html", "x");
    for (written, field, says) in [
        (
            "[platform]\ntls_cert = \"site.pem\"\n",
            "platform",
            "`[platform]` is a section of the platform file, not of an app's bext.config.toml",
        ),
        (
            "[apps.blog]\nsource = \".\"\n",
            "apps",
            "`[apps.<id>]` tables are the platform file's",
        ),
        (
            "[server]\nstatic_dir = \".\"\nmax_apps = 50\n",
            "server.max_apps",
            "`max_apps` is a key of the platform file's `[platform]` table, not of bext.config.toml: write `[platform]` then `max_apps = ...` in platform.toml",
        ),
        (
            "preview_ttl = \"7d\"\n",
            "preview_ttl",
            "`preview_ttl` is a key of the platform file's `[platform]` table",
        ),
    ] {
        s.write("app/bext.config.toml", written);
        let line = written
            .lines()
            .position(|l| l.contains(field.rsplit('.').next().unwrap()))
            .unwrap()
            + 1;
        for args in [
            vec!["check", p(&s.path("app"))],
            vec!["check", "--deploy", p(&s.path("app"))],
        ] {
            let out = bext_output(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{written}: {err}");
            assert!(
                err.contains(&format!("bext.config.toml:{line}:")) && err.contains(&format!(": {field}: {says}")),
                "{written}: {err}"
            );
            assert!(err.contains("`bext serve --config platform.toml`"), "{written}: {err}");
        }
    }
    // The reverse, in a platform file.
    let config = s.platform("[platform]\nstatic_dir = \"app\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n");
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "platform.static_dir: `static_dir` is a key of one app, not of `[platform]`: write it under `[apps.<id>]`"
        ),
        "{out}"
    );
    assert!(
        out.contains("server: `[server]` is a section of a bundle's bext.config.toml")
            && out.contains("`[server] listen` is `[platform] listen`"),
        "{out}"
    );
}

/// A `hybrid` app's `/api/*` upstream goes through the proxy a `proxy`
/// app's does: its keys get the same checks and the same errors.
#[test]
fn a_hybrid_app_s_upstream_gets_a_proxy_app_s_checks() {
    let s = Site::new();
    js_app(&s, "shop", "shop");
    s.write("ca.pem", "not a certificate");
    // A proxy app serves no folder; a hybrid app renders from one.
    let app = |id: &str, runtime: &str, upstream: &str| {
        let source = if runtime == "hybrid" { "source = \"shop\"\n" } else { "" };
        format!(
            "[apps.{id}]\n{source}runtime = \"{runtime}\"\nupstream = \"{upstream}\"\nca = \"ca.pem\"\nhash = \"client\"\nmax_connections = 0\n"
        )
    };
    let config = s.platform(&format!(
        "{}\n{}\n[apps.bad]\nsource = \"shop\"\nruntime = \"hybrid\"\nupstream = \"ftp://127.0.0.1:1\"\n",
        app("shop", "hybrid", "http://127.0.0.1:8180"),
        app("edge", "proxy", "http://127.0.0.1:8180"),
    ));
    let (ok, out) = check(&config);
    assert!(!ok, "{out}");
    let reasons = |id: &str| -> Vec<String> {
        (out.lines())
            .filter_map(|l| l.split_once(&format!("apps.{id}.")).map(|(_, r)| r.to_owned()))
            .collect()
    };
    let (hybrid, proxy) = (reasons("shop"), reasons("edge"));
    assert_eq!(hybrid, proxy, "{out}");
    for key in ["ca: ", "hash: ", "max_connections: "] {
        assert!(hybrid.iter().any(|r| r.starts_with(key)), "{key}: {out}");
    }
    assert!(out.contains("apps.bad.upstream: "), "{out}");
}

/// `kv` and `secrets` are bindings in a JS app's `env`: on a process or
/// static app they are refused with what to write instead.
#[test]
fn kv_and_secrets_off_js_apps_say_what_to_write() {
    let s = Site::new();
    s.write("site/index.html", "x");
    s.write(
        "srv/server.js",
        "require('http').createServer().listen(process.env.PORT)",
    );
    let config = s.platform(
        "[apps.srv]\nsource = \"srv\"\nruntime = \"process\"\ncommand = \"node server.js\"\nsecrets = [\"STRIPE_KEY\"]\nkv = [\"SESSIONS\"]\n\n[apps.site]\nsource = \"site\"\nkv = [\"SESSIONS\"]\n",
    );
    let (ok, out) = check_env(&config, &[("STRIPE_KEY", "sk")]);
    assert!(!ok, "{out}");
    for want in [
        "apps.srv.secrets: a process app's instances get only its `env`",
        "write `env = { NAME = \"...\" }`",
        "apps.srv.kv: a process app has no `env` bindings",
        "apps.site.kv: this app runs no code to read it",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert_eq!(out.matches("apps.srv.kv").count(), 1, "said once: {out}");
}
