//! The deploy plugin: versions deployed with the CLI (on the data
//! directory with no server, through the admin API with one), served,
//! rolled back, kept across restarts, stored by content, and switched
//! under load without a failed request; a deploy killed halfway leaves the
//! previous version serving. Hostile bundles (links, devices, sparse files,
//! names leaving the bundle, a configuration serving the host's files, more
//! than the manifest's limits) are refused by name and leave nothing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

const TOKEN: &str = "deploy-secret";

fn platform(s: &Site) -> PathBuf {
    s.write("site/index.html", "from the platform file");
    s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.blog]
source = "site"
domains = ["blog.test"]
"#,
    )
}

/// A bundle directory with `files`.
fn bundle(s: &Site, name: &str, files: &[(&str, &str)]) -> PathBuf {
    for (file, body) in files {
        s.write(&format!("{name}/{file}"), body);
    }
    s.path(name)
}

/// Runs `bext ARGS` to completion, with the admin token set.
pub(crate) fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(args)
        .env("BEXT_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// The stdout of a `bext` run that must have succeeded.
pub(crate) fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "bext failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// `bext serve` with the admin token, and its address as `--server` takes it.
fn serve(config: &Path) -> (Bext, String) {
    let b = Bext::serve_env(config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let server = format!("http://{}", b.addr);
    (b, server)
}

/// `GET /` on `host`, as a visitor with `cookie`.
async fn get_with_cookie(addr: std::net::SocketAddr, host: &str, cookie: &str) -> Reply {
    send(addr, request("GET", "/", &[("host", host), ("cookie", cookie)], "")).await
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn deploys_switch_roll_back_and_survive_a_restart() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one"), ("app.css", "body{}")]);
    let v2 = bundle(&s, "v2", &[("index.html", "version two"), ("app.css", "body{}")]);

    // No server: the CLI works on the data directory.
    let out = ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    assert!(out.contains("deployed blog v1: 2 files"), "{out}");

    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");

    // A server: through its admin API, and the switch is live at once.
    let server = format!("http://{}", b.addr);
    let out = json(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--config",
        c,
        "--server",
        &server,
        "--json",
    ]));
    assert_eq!(out["version"]["version"], "v2");
    assert_eq!(out["new_bytes"], 11, "app.css was stored already");
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version two");

    let shown = json(cli(&[
        "apps", "show", "blog", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(shown["app"]["origin"], "platform");
    assert_eq!(shown["app"]["current"]["version"], "v2");
    let versions: Vec<_> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let table = ok(cli(&["apps", "list", "--config", c, "--server", &server]));
    assert!(
        table.lines().any(|l| l.starts_with("blog") && l.contains("v2")),
        "{table}"
    );
    // Without the token, each command says what the token is for: a
    // read-only one never speaks of changing the server.
    let no_token = [("BEXT_ADMIN_TOKEN", None)];
    for (args, doing) in [
        (vec!["apps", "list"], "to list its apps"),
        (vec!["apps", "versions", "blog"], "to list an app's versions"),
        (vec!["domains", "list"], "to list tenants' domains"),
        (vec!["deploy", p(&v2), "--app", "blog"], "to deploy to it"),
        (vec!["rollback", "blog"], "to roll an app back"),
    ] {
        let mut args = args.clone();
        args.extend(["--config", c, "--server", &server]);
        let out = cli_env(&args, &no_token);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            said.contains(&format!("set BEXT_ADMIN_TOKEN {doing} through its admin API")),
            "{args:?}: {said}"
        );
    }

    // Identical files across versions are one file on disk.
    let tree = |v: &str| {
        PathBuf::from(
            shown["versions"][if v == "v2" { 0 } else { 1 }]["path"]
                .as_str()
                .unwrap(),
        )
    };
    let ino = |f: PathBuf| std::fs::metadata(f).unwrap().ino();
    assert_eq!(ino(tree("v1").join("app.css")), ino(tree("v2").join("app.css")));

    let out = ok(cli(&["rollback", "blog", "--config", c, "--server", &server]));
    assert_eq!(out.trim(), "blog is back on v1");
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");

    // A deploy can create an app; path routing reaches it.
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "docs",
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert_eq!(get(b.addr, "any.test", "/docs/").await.text(), "version two");

    // The API wants the admin token.
    assert_eq!(anonymous_list(&b).await, 401);

    // A restart serves what the registry says.
    drop(b);
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
    assert_eq!(get(b.addr, "any.test", "/docs/").await.text(), "version two");
    // Without a token the API does not exist.
    assert_eq!(anonymous_list(&b).await, 404);

    // Forgetting the app serves the platform file's source again.
    drop(b);
    ok(cli(&["apps", "rm", "blog", "--config", c]));
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "from the platform file");
}

/// The status of `GET /apps` without a token.
async fn anonymous_list(b: &Bext) -> u16 {
    let req = request("GET", "/__bext/api/platform/apps", &[("host", "x")], "");
    send(b.addr, req).await.status
}

#[tokio::test]
async fn bad_bundles_and_names_are_refused_clearly() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "one")]);
    let out = cli(&["deploy", p(&v1), "--app", "../etc", "--config", c]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("app id \"../etc\""),
        "{out:?}"
    );
    std::os::unix::fs::symlink("/etc/passwd", s.path("v1/passwd")).unwrap();
    let out = cli(&["deploy", p(&v1), "--app", "blog", "--config", c]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only files and directories"),
        "{out:?}"
    );
    let out = cli(&["rollback", "blog", "--config", c]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no deployed version"),
        "{out:?}"
    );

    // Through the API: a body that is not a tar is a 400, not a crash.
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let auth = format!("Bearer {TOKEN}");
    let r = send(
        b.addr,
        request(
            "POST",
            "/__bext/api/platform/apps/blog/deploy",
            &[("host", "x"), ("authorization", &auth)],
            "not a tar at all",
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "from the platform file");
}

/// Kills a local deploy of a large bundle at several points; each time the
/// previous version stays current and complete, and the next deploy works.
#[tokio::test]
async fn a_deploy_killed_halfway_leaves_the_previous_version_serving() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    for i in 0..1500 {
        s.write(&format!("big/f{}/{i}.txt", i % 30), format!("file {i} ").repeat(200));
    }
    s.write("big/index.html", "version big");
    let mut killed_midway = 0;
    for delay in [30, 100, 250, 500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bext"))
            .args(["deploy", p(&s.path("big")), "--app", "blog", "--config", c, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let finished = out.status.success();
        let shown = json(cli(&["apps", "show", "blog", "--config", c, "--json"]));
        let current = &shown["app"]["current"];
        let index = std::fs::read_to_string(Path::new(current["path"].as_str().unwrap()).join("index.html")).unwrap();
        if finished {
            assert_eq!(index, "version big");
            break;
        }
        if current["version"] != "v1" {
            // Killed after the registry made the new version current (its
            // last step before exiting): it is whole, never half.
            assert_eq!(index, "version big", "killed after {delay} ms");
            break;
        }
        killed_midway += 1;
        assert_eq!(index, "version one", "killed after {delay} ms");
    }
    assert!(killed_midway > 0, "every deploy finished before it could be killed");
    // Nothing half-written is left, and the registry still works.
    let out = json(cli(&[
        "deploy",
        p(&s.path("big")),
        "--app",
        "blog",
        "--config",
        c,
        "--json",
    ]));
    assert_eq!(out["version"]["files"], 1501);
    let leftovers: Vec<_> = walk(&s.path(".bext/deploy"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version big");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// Ten deploys and rollbacks of a static app under steady load: no
/// request fails, and every answer is one version or the other, whole.
/// (The CLI calls block their thread; the clients run on the other.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_versions_under_load_fails_no_request() {
    let s = Site::new();
    let config = platform(&s);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    switch_under_load(&config, "blog", "blog.test", &v1, &v2).await;
}

/// The same for a JS app: each switch starts the new version's isolates
/// and drains the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_js_versions_under_load_fails_no_request() {
    let s = Site::new();
    let config = api_platform(&s, "");
    let js =
        |text: &str| format!("export default {{ async fetch() {{ await null; return new Response('{text}'); }} }}");
    let v1 = bundle(&s, "v1", &[("index.js", &js("version one"))]);
    let v2 = bundle(&s, "v2", &[("index.js", &js("version two"))]);
    switch_under_load(&config, "api", "api.test", &v1, &v2).await;
}

/// A platform with one JS app, `api` on `api.test`, with `extra` lines.
fn api_platform(s: &Site, extra: &str) -> PathBuf {
    s.write(
        "api/index.js",
        "export default { fetch() { return new Response('platform'); } }",
    );
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.api]\nruntime = \"js\"\nsource = \"api\"\ndomains = [\"api.test\"]\n{extra}"
    ))
}

/// Deploys `v1`, then under four keep-alive clients on `host` deploys
/// `v2` and alternates rollbacks and deploys, ten switches in all.
async fn switch_under_load(config: &Path, app: &str, host: &'static str, v1: &Path, v2: &Path) {
    let c = p(config);
    ok(cli(&["deploy", p(v1), "--app", app, "--config", c]));
    let (b, server) = serve(config);

    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, served, failed, addr) = (stop.clone(), served.clone(), failed.clone(), b.addr);
        clients.push(tokio::spawn(async move {
            // Each client keeps one connection open, as browsers do.
            let (mut send, _conn) = h1_client(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let answer = async {
                    send.ready().await.ok()?;
                    let res = send
                        .send_request(request("GET", "/", &[("host", host)], ""))
                        .await
                        .ok()?;
                    let status = res.status();
                    let body = http_body_util::BodyExt::collect(res.into_body()).await.ok()?.to_bytes();
                    Some((status, body))
                }
                .await;
                match answer {
                    Some((status, body))
                        if status == 200 && (&body[..] == b"version one" || &body[..] == b"version two") =>
                    {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let deploy = ok(cli(&[
        "deploy",
        p(v2),
        "--app",
        app,
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert!(deploy.contains("v2"), "{deploy}");
    for i in 0..9 {
        let cmd: &[&str] = if i % 2 == 0 {
            &["rollback", app, "--config", c, "--server", &server]
        } else {
            &["deploy", p(v2), "--app", app, "--config", c, "--server", &server]
        };
        ok(cli(cmd));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (served, failed) = (served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "{app}: 10 switches in {:?} under 4 keep-alive clients: {served} requests served, {failed} failed",
        started.elapsed()
    );
    assert_eq!(failed, 0);
    assert!(served > 100, "the load ran ({served} requests)");
    // The server serves what the registry says is current.
    let shown = json(cli(&[
        "apps", "show", app, "--config", c, "--server", &server, "--json",
    ]));
    let current = shown["app"]["current"]["version"].as_str().unwrap().to_owned();
    let expected = if current == "v1" { "version one" } else { "version two" };
    assert_eq!(get(b.addr, host, "/").await.text(), expected);
}

/// The `Set-Cookie` value of a canary answer: `name=value`.
fn version_cookie(r: &Reply) -> String {
    let c = r.header("set-cookie").expect("a version cookie");
    c.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_canary_gets_its_share_keeps_its_visitors_and_survives_a_restart() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    let (b, server) = serve(&config);
    let out = ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--canary",
        "20%",
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert!(out.contains("as a canary for 20% of new visitors"), "{out}");

    // 2,000 visitors without a cookie.
    let mut visitors = Vec::new();
    for _ in 0..2000 {
        let r = get(b.addr, "blog.test", "/").await;
        visitors.push((r.text(), version_cookie(&r)));
    }
    let on_v2 = visitors.iter().filter(|(body, _)| body == "version two").count();
    assert!((340..=460).contains(&on_v2), "{on_v2} of 2000 on the canary");
    for (body, cookie) in &visitors {
        let expected = if body == "version two" {
            "bext_canary_blog=v2"
        } else {
            "bext_canary_blog=stable"
        };
        assert_eq!(cookie, expected);
    }
    // Each visitor that comes back with its cookie stays on its version.
    for (body, cookie) in visitors.iter().step_by(10) {
        let r = get_with_cookie(b.addr, "blog.test", cookie).await;
        assert_eq!(&r.text(), body);
        assert!(r.header("set-cookie").is_none(), "no new cookie for a known visitor");
    }
    let shown = json(cli(&[
        "apps", "show", "blog", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(shown["app"]["canary"]["share"], 20);
    assert!(shown["canary_stats"]["canary"]["requests"].as_u64().unwrap() >= on_v2 as u64);

    // A restart keeps the canary and its share.
    drop(b);
    let (b, server) = serve(&config);
    let r = get_with_cookie(b.addr, "blog.test", "bext_canary_blog=v2").await;
    assert_eq!(r.text(), "version two");
    let mut on_v2 = 0;
    for _ in 0..100 {
        on_v2 += usize::from(get(b.addr, "blog.test", "/").await.text() == "version two");
    }
    assert!((15..=25).contains(&on_v2), "{on_v2} of 100 after the restart");

    // Rollback: everyone, cookie or not, is on v1.
    let out = ok(cli(&["rollback", "blog", "--config", c, "--server", &server]));
    assert_eq!(out.trim(), "blog is back on v1");
    let r = get_with_cookie(b.addr, "blog.test", "bext_canary_blog=v2").await;
    assert_eq!(r.text(), "version one");
    for _ in 0..50 {
        assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
    }

    // Again as a canary, then promoted: 50%, then current for everyone.
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--canary",
        "5",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let out = ok(cli(&[
        "promote", "blog", "--to", "50%", "--config", c, "--server", &server,
    ]));
    assert!(out.contains("now gets 50%"), "{out}");
    let out = ok(cli(&["promote", "blog", "--config", c, "--server", &server]));
    assert!(out.contains("is now on v3"), "{out}");
    let r = get_with_cookie(b.addr, "blog.test", "bext_canary_blog=stable").await;
    assert_eq!(r.text(), "version two");
    let events = ok(cli(&["apps", "show", "blog", "--config", c, "--server", &server]));
    assert!(events.contains("promoted canary v3 to current"), "{events}");
    assert!(events.contains("canary v2 rolled back"), "{events}");
}

/// A JS app whose canary answers 500 is rolled back by itself; one that
/// stays healthy is promoted by itself.
#[tokio::test]
async fn canaries_are_rolled_back_or_promoted_automatically() {
    let s = Site::new();
    let config = api_platform(&s, "isolate = { mode = \"inline\" }\n");
    let c = p(&config);
    let good = bundle(
        &s,
        "good",
        &[(
            "index.js",
            "export default { fetch() { return new Response('good'); } }",
        )],
    );
    let bad = bundle(
        &s,
        "bad",
        &[(
            "index.js",
            "export default { fetch() { return new Response('broken', { status: 500 }); } }",
        )],
    );
    ok(cli(&["deploy", p(&good), "--app", "api", "--config", c]));
    let (b, server) = serve(&config);
    assert_eq!(get(b.addr, "api.test", "/").await.text(), "good");

    ok(cli(&[
        "deploy",
        p(&bad),
        "--app",
        "api",
        "--canary",
        "50%",
        "--max-error-rate",
        "10%",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let mut errors = 0;
    for _ in 0..60 {
        errors += usize::from(get(b.addr, "api.test", "/").await.status == 500);
    }
    assert!(errors >= 20, "the canary answered {errors} errors");
    let shown = eventually(Duration::from_secs(10), || async {
        let shown = json(cli(&[
            "apps", "show", "api", "--config", c, "--server", &server, "--json",
        ]));
        shown["app"]["canary"].is_null().then_some(shown)
    })
    .await;
    let events = shown["app"]["events"].to_string();
    assert!(events.contains("auto-rollback of canary v2"), "{events}");
    // The registry records the decision, then the reload swaps the
    // pipeline: once the first request sees it, every one does.
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "api.test", "/").await.text() == "good").then_some(())
    })
    .await;
    for _ in 0..20 {
        assert_eq!(get(b.addr, "api.test", "/").await.text(), "good");
    }

    ok(cli(&[
        "deploy",
        p(&good),
        "--app",
        "api",
        "--canary",
        "10%",
        "--auto-promote-after",
        "1s",
        "--max-error-rate",
        "10%",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let shown = eventually(Duration::from_secs(10), || async {
        let shown = json(cli(&[
            "apps", "show", "api", "--config", c, "--server", &server, "--json",
        ]));
        (shown["app"]["current"]["version"] == "v3").then_some(shown)
    })
    .await;
    assert!(shown["app"]["canary"].is_null());
    assert!(shown["app"]["events"].to_string().contains("auto-promote of canary v3"));
}

/// A canary is the app serving another version: it reads and writes the
/// app's KV namespaces (its visitors' data is still there once it is
/// rolled back or promoted), while a preview has namespaces of its own.
#[tokio::test]
async fn a_canary_shares_the_apps_kv_and_a_preview_does_not() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write(
        "api/index.js",
        "export default { fetch() { return new Response('platform'); } }",
    );
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.api]\nruntime = \"js\"\nsource = \"api\"\ndomains = [\"api.test\"]\nkv = [\"STORE\"]\n",
    );
    let c = p(&config);
    let app = |v: &str| {
        format!(
            "export default {{ async fetch(req, env) {{ const k = new URL(req.url).pathname.slice(1); \
             if (req.method === 'PUT') {{ await env.STORE.put(k, await req.text()); return new Response('{v} stored'); }} \
             return new Response('{v} ' + await env.STORE.get(k)); }} }}"
        )
    };
    let v1 = bundle(&s, "v1", &[("index.js", &app("v1"))]);
    let v2 = bundle(&s, "v2", &[("index.js", &app("v2"))]);
    ok(cli(&["deploy", p(&v1), "--app", "api", "--config", c]));
    let (b, server) = serve(&config);
    let put = |cookie: &'static str, key: &'static str, body: &'static str| {
        request(
            "PUT",
            &format!("/{key}"),
            &[("host", "api.test"), ("cookie", cookie)],
            body.to_owned(),
        )
    };
    assert_eq!(
        send(b.addr, put("bext_canary_api=stable", "cart", "3 books"))
            .await
            .text(),
        "v1 stored"
    );

    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "api",
        "--canary",
        "50%",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let on_canary = |path: &'static str| {
        request(
            "GET",
            path,
            &[("host", "api.test"), ("cookie", "bext_canary_api=v2")],
            String::new(),
        )
    };
    assert_eq!(
        send(b.addr, on_canary("/cart")).await.text(),
        "v2 3 books",
        "the canary reads what the current version wrote"
    );
    assert_eq!(
        send(b.addr, put("bext_canary_api=v2", "wish", "a pen")).await.text(),
        "v2 stored"
    );
    let stable = request(
        "GET",
        "/wish",
        &[("host", "api.test"), ("cookie", "bext_canary_api=stable")],
        String::new(),
    );
    assert_eq!(send(b.addr, stable).await.text(), "v1 a pen", "and the other way round");

    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "api",
        "--preview",
        "pr-1",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let r = eventually(Duration::from_secs(10), || async {
        let r = get(b.addr, "pr-1.preview.api.test", "/cart").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.text(), "v2 null", "a preview is another app: none of the app's data");
}

/// A preview serves its version on its own host, with the app's
/// `preview_env` instead of its `env`, survives a restart, and is removed
/// with its files once its `preview_ttl` is over.
#[tokio::test]
async fn a_preview_serves_on_its_own_host_until_it_expires() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("manifests/deploy.yaml", "name: deploy\nconfig:\n  preview_ttl: 4s\n");
    s.write(
        "shop/index.js",
        "export default { fetch() { return new Response('platform'); } }",
    );
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.shop]
runtime = "js"
source = "shop"
domains = ["shop.test"]
env = { DB = "production" }
preview_env = { DB = "staging" }
"#,
    );
    let c = p(&config);
    let app = |v: &str| {
        format!("export default {{ fetch(req, env) {{ return new Response('{v} ' + (env.DB || 'no db')); }} }}")
    };
    let v1 = bundle(&s, "v1", &[("index.js", &app("v1"))]);
    let v2 = bundle(&s, "v2", &[("index.js", &app("v2"))]);
    ok(cli(&["deploy", p(&v1), "--app", "shop", "--config", c]));
    let (b, server) = serve(&config);
    assert_eq!(get(b.addr, "shop.test", "/").await.text(), "v1 production");

    let out = ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "shop",
        "--preview",
        "pr-7",
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert!(out.contains("as preview pr-7 (at pr-7.preview.shop.test)"), "{out}");
    assert_eq!(get(b.addr, "pr-7.preview.shop.test", "/").await.text(), "v2 staging");
    assert_eq!(
        get(b.addr, "shop.test", "/").await.text(),
        "v1 production",
        "production is untouched"
    );
    let previews = json(cli(&[
        "apps", "previews", "list", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(previews[0]["name"], "pr-7");
    let tree = PathBuf::from(previews[0]["path"].as_str().unwrap());
    assert!(tree.join("index.js").is_file());
    let bad = cli(&[
        "deploy",
        p(&v2),
        "--app",
        "shop",
        "--preview",
        "PR_7",
        "--config",
        c,
        "--server",
        &server,
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("it becomes a host name"),
        "{bad:?}"
    );

    // A restart keeps it.
    drop(b);
    let (b, server) = serve(&config);
    assert_eq!(get(b.addr, "pr-7.preview.shop.test", "/").await.text(), "v2 staging");

    // Past its TTL it is gone: host, registry entry and files.
    eventually(Duration::from_secs(15), || async {
        (get(b.addr, "pr-7.preview.shop.test", "/").await.status == 404).then_some(())
    })
    .await;
    let previews = json(cli(&[
        "apps", "previews", "list", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(previews, serde_json::json!([]));
    assert!(!tree.exists(), "the preview's files are removed");
    let shown = json(cli(&[
        "apps", "show", "shop", "--config", c, "--server", &server, "--json",
    ]));
    assert!(
        shown["app"]["events"].to_string().contains("preview pr-7 (v2) expired"),
        "{shown}"
    );
    assert_eq!(get(b.addr, "shop.test", "/").await.text(), "v1 production");
}

/// `hooks.pre_build` runs in the bundle before it is stored (on the server
/// for uploads) and a failure aborts the deploy; `hooks.post_deploy` runs
/// once the version serves; their output is kept.
#[tokio::test]
async fn deploy_hooks_build_abort_and_report() {
    let s = Site::new();
    s.write("site/index.html", "platform");
    let log = s.path("post.log");
    let config = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.blog]
source = "site"
domains = ["blog.test"]
hooks = {{ pre_build = "echo building $BEXT_APP $BEXT_VERSION; echo built > built.txt", post_deploy = "echo $BEXT_VERSION >> {}" }}

[apps.broken]
source = "site"
domains = ["broken.test"]
hooks = {{ pre_build = "echo the build broke >&2; exit 7" }}
"#,
        log.display()
    ));
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "one")]);
    let out = json(cli(&["deploy", p(&v1), "--app", "blog", "--config", c, "--json"]));
    assert_eq!(out["pre_build"]["output"], "building blog v1\n");
    assert_eq!(out["post_deploy"]["exit_code"], 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "v1\n");

    let (b, server) = serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/built.txt").await.text(), "built\n");
    let v2 = bundle(&s, "v2", &[("index.html", "two")]);
    let deployed = cli(&["deploy", p(&v2), "--app", "blog", "--config", c, "--server", &server]);
    let err = String::from_utf8_lossy(&deployed.stderr).into_owned();
    ok(deployed);
    // The hook's exit code as a number, not Rust's `Some(0)`.
    assert!(err.contains("exit code 0,") && !err.contains("Some("), "{err}");
    assert!(
        !s.path("v2/built.txt").exists(),
        "the server built its own copy of the upload"
    );
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "two");
    assert_eq!(get(b.addr, "blog.test", "/built.txt").await.text(), "built\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "v1\nv2\n");

    let failed = cli(&["deploy", p(&v2), "--app", "broken", "--config", c, "--server", &server]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("exit code 7") && err.contains("the build broke"), "{err}");
    assert_eq!(
        get(b.addr, "broken.test", "/").await.text(),
        "platform",
        "nothing was deployed"
    );
    let shown = json(cli(&[
        "apps", "show", "broken", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(shown["app"]["hook_runs"][0]["exit_code"], 7);
    assert!(shown["app"]["current"].is_null());
}

/// A request in flight when a deploy switches versions finishes on the
/// version it started on; the next one gets the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_its_version() {
    let s = Site::new();
    let config = api_platform(&s, "");
    let c = p(&config);
    let js = |v: &str| {
        format!(
            "export default {{ async fetch() {{ await new Promise((r) => setTimeout(r, 2500)); return new Response('{v}'); }} }}"
        )
    };
    let v1 = bundle(&s, "v1", &[("index.js", &js("v1"))]);
    let v2 = bundle(&s, "v2", &[("index.js", &js("v2"))]);
    ok(cli(&["deploy", p(&v1), "--app", "api", "--config", c]));
    let (b, server) = serve(&config);
    let addr = b.addr;
    let in_flight = tokio::spawn(async move { get(addr, "api.test", "/").await.text() });
    // Well inside the handler's 2.5 s.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (v2, c, server2) = (p(&v2).to_owned(), c.to_owned(), server.clone());
    let deployed = tokio::task::spawn_blocking(move || {
        ok(cli(&[
            "deploy", &v2, "--app", "api", "--config", &c, "--server", &server2,
        ]))
    })
    .await
    .unwrap();
    assert!(deployed.contains("deployed api v2"), "{deployed}");
    assert_eq!(
        in_flight.await.unwrap(),
        "v1",
        "the request that started on v1 ends on v1"
    );
    assert_eq!(get(b.addr, "api.test", "/").await.text(), "v2");
}

/// Unmounts a test's small file system however the test ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A deploy that fills the disk fails with the reason, leaves the previous
/// version current and whole, frees what it wrote, and the next deploy
/// works. The data directory is a 512 KiB tmpfs, which needs root (CI runs
/// as root); elsewhere the test says so and stops.
#[tokio::test]
async fn a_deploy_that_fills_the_disk_leaves_the_previous_version_serving() {
    let s = Site::new();
    let data = s.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&data)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let _unmount = Mounted(data.clone());
    s.write("site/index.html", "from the platform file");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
data_dir = "data"

[apps.blog]
source = "site"
domains = ["blog.test"]
"#,
    );
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    for i in 0..40 {
        s.write(&format!("big/{i}.bin"), format!("{i:08}").repeat(4096));
    }
    let out = cli(&["deploy", p(&s.path("big")), "--app", "blog", "--config", c]);
    assert!(!out.status.success(), "1.25 MiB cannot fit in 512 KiB");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");

    let shown = json(cli(&["apps", "show", "blog", "--config", c, "--json"]));
    assert_eq!(shown["app"]["current"]["version"], "v1");
    assert_eq!(shown["app"]["versions"], 1);
    let leftovers: Vec<_> = walk(&data)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial-") || p.extension().is_some_and(|e| e == "bin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    ok(cli(&["deploy", p(&v2), "--app", "blog", "--config", c]));
    ok(cli(&["rollback", "blog", "--config", c]));
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
}

/// The CLI reads the deploy manifest as the server does: without `config`
/// every setting has its default. It also prints versions and progress,
/// and prunes expired previews with no server running.
#[tokio::test]
async fn the_cli_on_a_data_directory_lists_versions_and_prunes_previews() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("manifests/deploy.yaml", "name: deploy\n");
    s.write("site/index.html", "platform");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.blog]
source = "site"
domains = ["blog.test"]
"#,
    );
    let c = p(&config);
    for i in 0..1000 {
        s.write(&format!("v1/f/{i}.txt"), format!("file {i}"));
    }
    let out = cli(&["deploy", p(&s.path("v1")), "--app", "blog", "--config", c]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stored 1000 files"),
        "progress on stderr: {out:?}"
    );
    let v2 = bundle(&s, "v2", &[("index.html", "two")]);
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--version",
        "second",
        "--config",
        c,
    ]));
    let table = ok(cli(&["apps", "versions", "blog", "--config", c]));
    let rows: Vec<_> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(rows, ["second", "v1"], "{table}");
    assert!(
        table.lines().nth(1).unwrap().contains('*'),
        "the current one is marked: {table}"
    );

    // The default preview_ttl is 7 days: nothing to prune yet.
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--preview",
        "pr-1",
        "--config",
        c,
    ]));
    let out = ok(cli(&["apps", "previews", "prune", "--config", c]));
    assert!(out.starts_with("removed 0 expired preview(s)"), "{out}");
    let listed = json(cli(&["apps", "previews", "list", "--config", c, "--json"]));
    assert_eq!(listed[0]["name"], "pr-1");
    let expires = listed[0]["expires_at"].as_u64().unwrap();
    assert!(
        expires >= bext_plugin_deploy::unix_now() + 6 * 86400,
        "about a week: {expires}"
    );

    // With a one-second lifetime it is pruned, with its files.
    s.write("manifests/deploy.yaml", "name: deploy\nconfig:\n  preview_ttl: 1s\n");
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--preview",
        "pr-2",
        "--config",
        c,
    ]));
    let tree = PathBuf::from(
        json(cli(&["apps", "previews", "list", "--config", c, "--json"]))[1]["path"]
            .as_str()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(2100));
    let out = ok(cli(&["apps", "previews", "prune", "--config", c]));
    assert!(out.starts_with("removed 1 expired preview(s)"), "{out}");
    assert!(
        out.contains("pr-2") && !out.contains("pr-1"),
        "it lists what it removed: {out}"
    );
    assert!(!tree.exists());
}

/// POSTs `tar` to the admin API as a deploy of `app`.
async fn upload(b: &Bext, app: &str, tar: Vec<u8>) -> Reply {
    upload_with(b, app, "", tar).await
}

/// [`upload`] with a query (`?preview=pr-1`, `?canary=10`).
pub(crate) async fn upload_with(b: &Bext, app: &str, query: &str, tar: Vec<u8>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let path = format!("/__bext/api/platform/apps/{app}/deploy{query}");
    let headers = [
        ("host", "x"),
        ("authorization", auth.as_str()),
        ("content-type", "application/x-tar"),
    ];
    send(b.addr, request("POST", &path, &headers, tar)).await
}

/// A tar of `entries` (name, type, body, link target), names and targets
/// written as they are: the tar crate's own setters refuse `..` and
/// absolute names, which an attacker's archive has.
fn hostile_tar(entries: &[(&str, tar::EntryType, &str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, body, link) in entries {
        let mut h = tar::Header::new_gnu();
        if name.len() <= 100 {
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        if name.len() > 100 {
            // Through a GNU long-name entry, as tar writes long names.
            b.append_data(&mut h, name, body.as_bytes()).unwrap();
        } else {
            h.set_cksum();
            b.append(&h, body.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// The archives GNU tar makes of a 2 GiB file that is one byte and holes:
/// GNU sparse, and PAX sparse 0.0, 0.1 and 1.0, each about 10 KB. None
/// when GNU tar is not installed.
fn gnu_tar_sparse(s: &Site) -> Option<Vec<(String, Vec<u8>)>> {
    let version = Command::new("tar").arg("--version").output().ok()?;
    if !String::from_utf8_lossy(&version.stdout).contains("GNU tar") {
        return None;
    }
    let dir = s.path("sparse");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("huge.img")).unwrap();
    file.set_len(2 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"x", (2 << 30) - 1).unwrap();
    let mut out = Vec::new();
    for (label, args) in [
        ("GNU sparse", &["--format=gnu"][..]),
        ("PAX sparse 0.0", &["--format=posix", "--sparse-version=0.0"]),
        ("PAX sparse 0.1", &["--format=posix", "--sparse-version=0.1"]),
        ("PAX sparse 1.0", &["--format=posix", "--sparse-version=1.0"]),
    ] {
        let made = Command::new("tar")
            .args(args)
            .args(["-cSf", "-", "-C"])
            .arg(&dir)
            .arg("huge.img")
            .output()
            .unwrap();
        assert!(made.status.success(), "{label}: {made:?}");
        assert!(made.stdout.len() < 64 * 1024, "{label}: {} bytes", made.stdout.len());
        out.push((label.to_owned(), made.stdout));
    }
    std::fs::remove_file(dir.join("huge.img")).unwrap();
    Some(out)
}

/// Every file under the registry, and their total apparent size.
fn registry_files(s: &Site) -> (Vec<PathBuf>, u64) {
    let files: Vec<_> = walk(&s.path(".bext/deploy"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let size = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    (files, size)
}

/// Uploads that would write outside the bundle, materialise gigabytes or
/// devices, or make the server serve the host's files are refused with a
/// 400 naming the entry and the reason, for an existing app and a new one;
/// the previous version keeps serving, and nothing is left behind.
#[tokio::test]
async fn hostile_bundles_are_refused_by_name_and_the_previous_version_serves() {
    use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    let (b, server) = serve(&config);
    let (_, size_before) = registry_files(&s);

    let long = "n".repeat(300);
    let mut cases: Vec<(String, Vec<u8>, String)> = [
        (
            &[("index.html", Regular, "x", ""), ("passwd", Symlink, "", "/etc/passwd")][..],
            "bundle entry `passwd`: a symbolic link (to `/etc/passwd`)",
        ),
        (
            &[("up", Symlink, "", "../../../../etc")],
            "bundle entry `up`: a symbolic link (to `../../../../etc`)",
        ),
        (
            &[("a", Symlink, "", "b"), ("b", Symlink, "", "/")],
            "bundle entry `a`: a symbolic link (to `b`)",
        ),
        (
            &[("shadow", Link, "", "/etc/shadow")],
            "bundle entry `shadow`: a hard link (to `/etc/shadow`)",
        ),
        (
            &[("index.html", Regular, "x", ""), ("copy", Link, "", "index.html")],
            "bundle entry `copy`: a hard link (to `index.html`)",
        ),
        (&[("null", Char, "", "")], "bundle entry `null`: a character device"),
        (&[("sda", Block, "", "")], "bundle entry `sda`: a block device"),
        (&[("pipe", Fifo, "", "")], "bundle entry `pipe`: a FIFO"),
        (
            &[("/etc/cron.d/evil", Regular, "x", "")],
            "bundle entry `/etc/cron.d/evil`: an absolute path",
        ),
        (
            &[("./../../evil.html", Regular, "x", "")],
            "bundle entry `./../../evil.html`: a `..`",
        ),
        (
            &[("a/", Directory, "", ""), ("a/../../evil.html", Regular, "x", "")],
            "bundle entry `a/../../evil.html`: a `..`",
        ),
        (&[("..\\..\\evil.html", Regular, "x", "")], "a backslash"),
        (&[(long.as_str(), Regular, "x", "")], "a name of 300 bytes (at most 255"),
        (
            &[("index.html", Regular, "a", ""), ("./index.html", Regular, "b", "")],
            "bundle entry `./index.html`: named twice",
        ),
        (
            &[
                ("public", Symlink, "", "/"),
                ("bext.config.toml", Regular, "[server]\nstatic_dir = \"public\"", ""),
            ],
            "bundle entry `public`: a symbolic link (to `/`)",
        ),
        (
            &[
                ("index.html", Regular, "x", ""),
                ("bext.config.toml", Regular, "[server]\nstatic_dir = \"/\"", ""),
            ],
            "bext.config.toml:2:14: server.static_dir = \"/\": an absolute path",
        ),
        (
            &[
                ("index.html", Regular, "x", ""),
                ("bext.config.toml", Regular, "[server]\nstatic_dir = \"../../etc\"", ""),
            ],
            "server.static_dir = \"../../etc\": a `..`",
        ),
        (
            &[
                ("index.js", Regular, "x", ""),
                (
                    "bext.config.toml",
                    Regular,
                    "[server]\nruntime = \"js\"\nentry = \"/etc/passwd\"",
                    "",
                ),
            ],
            "server.entry = \"/etc/passwd\": an absolute path",
        ),
        (
            &[("bext.config.toml", Regular, "[server]\nruntime = \"proxy\"", "")],
            "bext.config.toml:2:11: server.runtime = \"proxy\": a bundle cannot be a proxy app",
        ),
        (
            &[("bext.config.toml", Regular, "[server]\nroot = \"/\"", "")],
            "bext.config.toml:2:1: unknown field `root`",
        ),
    ]
    .into_iter()
    .map(|(entries, why)| (format!("{entries:?}"), hostile_tar(entries), why.to_owned()))
    .collect();
    match gnu_tar_sparse(&s) {
        Some(sparse) => {
            for (label, tar) in sparse {
                let why = if label == "GNU sparse" {
                    "bundle entry `huge.img`: a GNU sparse file"
                } else {
                    // `huge.img` (0.0) or `GNUSparseFile.<n>/huge.img`.
                    "huge.img`: a PAX sparse file (GNU.sparse.* headers)"
                };
                cases.push((label, tar, why.to_owned()));
            }
        }
        None => eprintln!("GNU tar is not installed: its sparse archives are only tested in the plugin's unit tests"),
    }

    for (label, tar, why) in &cases {
        for app in ["blog", "fresh"] {
            let r = upload(&b, app, tar.clone()).await;
            assert_eq!(r.status, 400, "{label} for {app}: {}", r.text());
            let err = r.json()["error"].as_str().unwrap().to_owned();
            assert!(err.contains(why.as_str()), "{label} for {app}: {err}");
        }
        assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one", "{label}");
    }

    // Nothing was recorded, created or left behind: no app `fresh`, one
    // version of blog, no partial tree, no upload, no 2 GiB file.
    let apps = json(cli(&["apps", "list", "--config", c, "--server", &server, "--json"]));
    let ids: Vec<_> = apps.as_array().unwrap().iter().map(|a| a["id"].clone()).collect();
    assert_eq!(ids, ["blog"]);
    let shown = json(cli(&[
        "apps", "show", "blog", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(shown["app"]["versions"], 1);
    assert_eq!(shown["app"]["current"]["version"], "v1");
    let (files, size_after) = registry_files(&s);
    let stray: Vec<_> = files
        .iter()
        .filter(|f| {
            let f = f.to_string_lossy();
            f.contains(".partial-") || f.contains("/incoming/")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(
        size_after < size_before + (1 << 20),
        "{size_before} then {size_after} bytes"
    );

    // The CLI names the entry too: it packs links as links.
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    std::os::unix::fs::symlink("/etc/passwd", s.path("v2/passwd")).unwrap();
    let out = cli(&["deploy", p(&v2), "--app", "blog", "--config", c, "--server", &server]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bundle entry `passwd`: a symbolic link (to `/etc/passwd`)"),
        "{err}"
    );
    std::fs::remove_file(s.path("v2/passwd")).unwrap();
    // And a good bundle still deploys.
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version two");
}

/// `max_bundle_bytes` and `max_bundle_entries` come from the deploy
/// manifest; a bundle over either is refused, locally and through the
/// API (413), with the entry that crossed the line; the previous version
/// keeps serving.
#[tokio::test]
async fn bundle_limits_come_from_the_manifest() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write(
        "manifests/deploy.yaml",
        "name: deploy\nconfig:\n  max_bundle_bytes: 64KiB\n  max_bundle_entries: 50\n",
    );
    s.write("site/index.html", "platform");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.blog]
source = "site"
domains = ["blog.test"]
"#,
    );
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    s.write("big/data.bin", vec![7u8; 100 * 1024]);
    for i in 0..60 {
        s.write(&format!("many/{i:02}.txt"), "x");
    }
    let too_big = "bundle entry `data.bin` (100 KiB): the bundle's files come to more than 64 KiB (the deploy manifest's max_bundle_bytes)";
    let too_many =
        "the bundle has more than 50 entries (files and directories; the deploy manifest's max_bundle_entries)";

    // No server: on the data directory.
    for (dir, why) in [("big", too_big), ("many", too_many)] {
        let out = cli(&["deploy", p(&s.path(dir)), "--app", "blog", "--config", c]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{out:?}");
    }

    // A server: through its API.
    let (b, server) = serve(&config);
    for (dir, why) in [("big", too_big), ("many", too_many)] {
        let out = cli(&[
            "deploy",
            p(&s.path(dir)),
            "--app",
            "blog",
            "--config",
            c,
            "--server",
            &server,
        ]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{out:?}");
    }
    let many: Vec<_> = (0..60)
        .map(|i| (format!("{i:02}.txt"), tar::EntryType::Regular, "x", ""))
        .collect();
    let many: Vec<_> = many.iter().map(|(n, k, b, l)| (n.as_str(), *k, *b, *l)).collect();
    let r = upload(&b, "blog", hostile_tar(&many)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("bundle entry `50.txt`: the bundle has more than 50 entries")
    );
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
    let shown = json(cli(&[
        "apps", "show", "blog", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(shown["app"]["versions"], 1);
}

/// 19,000 empty files held the registry's lock for 74 s when every file
/// was synced on its own; with one sync for the version, the same upload
/// (within the default 10 MiB body limit) is served in seconds.
#[tokio::test]
async fn nineteen_thousand_empty_files_deploy_in_seconds() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    let (b, _server) = serve(&config);
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..19_000 {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        tar.append_data(&mut h, format!("d{}/e{i}.txt", i % 100), &b""[..])
            .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let started = Instant::now();
    let r = upload(&b, "blog", tar).await;
    let took = started.elapsed();
    eprintln!("19,000 empty files: deployed and served in {took:?}");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"]["files"], 19_000);
    assert!(took < Duration::from_secs(15), "{took:?} (it was 74 s)");
    let reply = get(b.addr, "blog.test", "/d7/e18907.txt").await;
    assert_eq!((reply.status, reply.text()), (200, String::new()));
}

/// `bext ARGS` with the admin token and `env` (`None` removes a variable).
fn cli_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bext"));
    command.args(args).env("BEXT_ADMIN_TOKEN", TOKEN);
    for (key, value) in env {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command.output().unwrap()
}

/// The rows of a `bext apps versions` table: (version, current, the one
/// `rollback` restores), read at the marks' columns.
fn marks(table: &str) -> Vec<(String, bool, bool)> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let at = |name: &str| header.find(name).unwrap() + name.len() - 1;
    let (current, rollback) = (at("CURRENT"), at("ROLLBACK"));
    lines
        .map(|l| {
            let mark = |i: usize| l.as_bytes().get(i) == Some(&b'*');
            (
                l.split_whitespace().next().unwrap().to_owned(),
                mark(current),
                mark(rollback),
            )
        })
        .collect()
}

/// Deploy v2, roll back (v1 live), deploy v3, roll back: v1 is live again,
/// not v2, which was rolled back from already. On the data directory and
/// through a server alike; `bext apps versions` and `show` say which
/// version a rollback restores.
#[tokio::test]
async fn rollback_restores_what_was_current_before_with_a_server_and_without() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v: Vec<PathBuf> = ["one", "two", "three", "four", "five", "six"]
        .iter()
        .enumerate()
        .map(|(i, body)| {
            bundle(
                &s,
                &format!("v{}", i + 1),
                &[("index.html", &format!("version {body}"))],
            )
        })
        .collect();
    let deploy = |dir: &Path, server: Option<&str>| {
        let mut args = vec!["deploy", p(dir), "--app", "blog", "--config", c];
        args.extend(server.map(|s| ["--server", s]).into_iter().flatten());
        ok(cli(&args))
    };
    let rollback = |server: Option<&str>| {
        let mut args = vec!["rollback", "blog", "--config", c];
        args.extend(server.map(|s| ["--server", s]).into_iter().flatten());
        ok(cli(&args)).trim().to_owned()
    };
    let versions = |server: Option<&str>| {
        let mut args = vec!["apps", "versions", "blog", "--config", c];
        args.extend(server.map(|s| ["--server", s]).into_iter().flatten());
        marks(&ok(cli(&args)))
    };
    let row = |version: &str, current: bool, rollback: bool| (version.to_owned(), current, rollback);

    // No server.
    deploy(&v[0], None);
    deploy(&v[1], None);
    assert_eq!(versions(None), [row("v2", true, false), row("v1", false, true)]);
    assert_eq!(rollback(None), "blog is back on v1");
    deploy(&v[2], None);
    assert_eq!(
        versions(None),
        [row("v3", true, false), row("v2", false, false), row("v1", false, true)]
    );
    let shown = ok(cli(&["apps", "show", "blog", "--config", c]));
    assert!(
        shown.contains("rollback v1, current before (`bext rollback blog`)"),
        "{shown}"
    );
    assert_eq!(rollback(None), "blog is back on v1");
    let out = cli(&["rollback", "blog", "--config", c]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("blog has no version to roll back to"),
        "{out:?}"
    );

    // A server: the same history, through its API.
    let (b, url) = serve(&config);
    let server = Some(url.as_str());
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
    deploy(&v[3], server);
    deploy(&v[4], server);
    assert_eq!(rollback(server), "blog is back on v4");
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version four");
    deploy(&v[5], server);
    let marked = versions(server);
    assert_eq!(marked[0], row("v6", true, false));
    assert!(marked.contains(&row("v4", false, true)), "{marked:?}");
    assert!(marked.contains(&row("v5", false, false)), "{marked:?}");
    let shown = json(cli(&[
        "apps", "show", "blog", "--config", c, "--server", &url, "--json",
    ]));
    assert_eq!(shown["app"]["rollback_to"], "v4");
    assert_eq!(rollback(server), "blog is back on v4");
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version four");
    assert_eq!(rollback(server), "blog is back on v1");
    assert_eq!(get(b.addr, "blog.test", "/").await.text(), "version one");
    let events = ok(cli(&["apps", "show", "blog", "--config", c, "--server", &url]));
    assert!(events.contains("rolled back from v6 to v4 by"), "{events}");

    // A restart keeps the history.
    drop(b);
    deploy(&v[1], None);
    assert_eq!(rollback(None), "blog is back on v1");
}

/// A deploy through the admin API as `user` (no `X-Bext-User` with
/// `None`), with `query`.
async fn upload_as(b: &Bext, app: &str, query: &str, user: Option<&str>, tar: Vec<u8>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let path = format!("/__bext/api/platform/apps/{app}/deploy{query}");
    let mut headers = vec![
        ("host", "x"),
        ("authorization", auth.as_str()),
        ("content-type", "application/x-tar"),
    ];
    if let Some(user) = user {
        headers.push(("x-bext-user", user));
    }
    send(b.addr, request("POST", &path, &headers, tar)).await
}

/// `bext apps list` lists the apps (those of the platform file as
/// `platform`, those created by deploys as `deploy`), not the previews and
/// canaries a running server serves as hidden apps; each version records
/// who deployed it as the caller says (the CLI, an API caller naming
/// itself or not); a preview's name is checked before its bundle is read,
/// and its lifetime is set per deploy with `--ttl`.
#[tokio::test]
async fn listings_through_a_server_show_apps_who_deployed_and_preview_lifetimes() {
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    let as_alice = [("USER", Some("alice")), ("LOGNAME", None)];
    ok(cli_env(&["deploy", p(&v1), "--app", "blog", "--config", c], &as_alice));
    let (b, server) = serve(&config);
    let at = ["--config", c, "--server", server.as_str()];
    fn with<'a>(at: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [args, at].concat()
    }

    // A preview for two hours, a canary, an app created by a deploy.
    let out = ok(cli_env(
        &with(
            &at,
            &["deploy", p(&v2), "--app", "blog", "--preview", "pr-7", "--ttl", "2h"],
        ),
        &as_alice,
    ));
    assert!(
        out.contains("as preview pr-7 (at pr-7.preview.blog.test) until "),
        "{out}"
    );
    assert_eq!(get(b.addr, "pr-7.preview.blog.test", "/").await.text(), "version two");
    let previews = json(cli(&with(&at, &["apps", "previews", "list", "--json"])));
    let lifetime = previews[0]["expires_at"].as_u64().unwrap() - previews[0]["created_at"].as_u64().unwrap();
    assert_eq!(lifetime, 7200);
    ok(cli_env(
        &with(&at, &["deploy", p(&v2), "--app", "blog", "--canary", "10%"]),
        &[("USER", None), ("LOGNAME", None)],
    ));
    ok(cli(&with(&at, &["deploy", p(&v2), "--app", "docs"])));

    let listed = |server: bool| {
        let args = if server {
            with(&at, &["apps", "list", "--json"])
        } else {
            vec!["apps", "list", "--json", "--config", c]
        };
        let apps = json(cli(&args));
        apps.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["id"].as_str().unwrap().to_owned(),
                    a["origin"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let expected = [
        ("blog".to_owned(), "platform".to_owned()),
        ("docs".to_owned(), "deploy".to_owned()),
    ];
    assert_eq!(listed(true), expected);
    let table = ok(cli(&with(&at, &["apps", "list"])));
    assert!(!table.contains('~') && !table.contains('@'), "{table}");

    // deployed_by: the CLI with and without a user, the API as it says.
    let tar = || hostile_tar(&[("index.html", tar::EntryType::Regular, "by the api", "")]);
    let r = upload_as(&b, "blog", "?version=anon", None, tar()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = upload_as(&b, "blog", "?version=bot", Some("ci-bot"), tar()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = upload_as(&b, "blog", "?version=long", Some(&"x".repeat(65)), tar()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("x-bext-user"), "{}", r.text());
    let shown = json(cli(&with(&at, &["apps", "versions", "blog", "--json"])));
    let by: Vec<(String, String)> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["deployed_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by = |version: &str| by.iter().find(|(v, _)| v == version).map(|(_, b)| b.as_str()).unwrap();
    assert_eq!(by("v1"), "alice (cli)");
    assert_eq!(by("v2"), "alice (cli)", "the preview, through the server");
    assert_eq!(by("v3"), "cli", "the canary, with no user set");
    assert_eq!(by("anon"), "api");
    assert_eq!(by("bot"), "ci-bot");
    let rolled = ok(cli_env(&with(&at, &["rollback", "blog"]), &as_alice));
    assert!(rolled.contains("blog is back on"), "{rolled}");

    // A bad preview name is refused before the upload is read: the
    // garbage after it is never looked at.
    let r = upload_as(&b, "blog", "?preview=PR_7", None, b"not a tar archive".to_vec()).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("preview name \\\"PR_7\\\""), "{}", r.text());
    for (query, why) in [
        ("?preview=pr-9&ttl=0", "preview lifetime 0 s"),
        ("?preview=pr-9&ttl=soon", "ttl=soon"),
        ("?ttl=60", "ttl is a preview's lifetime"),
    ] {
        let r = upload_as(&b, "blog", query, None, b"not a tar archive".to_vec()).await;
        assert_eq!(r.status, 400, "{query}");
        assert!(r.text().contains(why), "{query}: {}", r.text());
    }
    // The CLI checks the name and the lifetime before it reads the bundle.
    for (args, why) in [
        (vec!["--preview", "PR_7"], "it becomes a host name"),
        (
            vec!["--preview", "pr-9", "--ttl", "0s"],
            "a preview's lifetime from 1s to 3650d",
        ),
        (
            vec!["--preview", "pr-9", "--ttl", "soon"],
            "a preview's lifetime from 1s to 3650d",
        ),
        (vec!["--ttl", "2h"], "--preview"),
    ] {
        let out = cli(&with(
            &at,
            &[&["deploy", "/no/such/bundle", "--app", "blog"][..], &args[..]].concat(),
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{args:?}: {err}");
        assert!(!err.contains("/no/such/bundle"), "{args:?}: {err}");
    }

    // Without a server: the same apps, nothing of the hidden ones.
    drop(b);
    assert_eq!(listed(false), expected);
    let table = ok(cli(&["apps", "list", "--config", c]));
    assert!(!table.contains('~') && !table.contains('@'), "{table}");
}

#[tokio::test]
async fn canary_and_stable_answers_are_counted_by_version_on_metrics() {
    use crate::metrics::{scrape_as, value};
    let s = Site::new();
    let config = platform(&s);
    let c = p(&config);
    let v1 = bundle(&s, "v1", &[("index.html", "version one")]);
    let v2 = bundle(&s, "v2", &[("index.html", "version two")]);
    ok(cli(&["deploy", p(&v1), "--app", "blog", "--config", c]));
    let (b, server) = serve(&config);
    ok(cli(&[
        "deploy",
        p(&v2),
        "--app",
        "blog",
        "--canary",
        "50%",
        "--config",
        c,
        "--server",
        &server,
    ]));
    let visit = |path: &'static str, cookie: &'static str| {
        let addr = b.addr;
        async move {
            send(
                addr,
                request("GET", path, &[("host", "blog.test"), ("cookie", cookie)], ""),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(visit("/", "bext_canary_blog=v2").await.text(), "version two");
    }
    for _ in 0..5 {
        assert_eq!(visit("/", "bext_canary_blog=stable").await.text(), "version one");
    }
    assert_eq!(visit("/missing", "bext_canary_blog=v2").await.status, 404);
    let samples = scrape_as(b.addr, TOKEN).await;
    let count = |version: &str, role: &str, class: &str| {
        value(
            &samples,
            "bext_plugin_deploy_version_requests_total",
            &[
                ("app", "blog"),
                ("version", version),
                ("role", role),
                ("status_class", class),
            ],
        )
    };
    assert_eq!(count("v2", "canary", "2xx"), Some(3.0));
    assert_eq!(count("v2", "canary", "4xx"), Some(1.0));
    assert_eq!(count("v1", "stable", "2xx"), Some(5.0));
    assert_eq!(count("v1", "stable", "4xx"), None);
}

/// A `pre_build` hook that nests directories far deeper than a bundle may
/// (and than a recursive removal's stack or `PATH_MAX` allow): the deploy
/// is refused with the depth, the server stays up and serves, and the
/// upload's files go, now and not at the next start.
#[tokio::test]
async fn a_build_that_nests_directories_without_end_is_refused_and_removed() {
    let s = Site::new();
    s.write("site/index.html", "platform");
    let config = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.deep]
source = "site"
domains = ["deep.test"]
hooks = { pre_build = "python3 -c \"import os\nfor _ in range(20000): os.mkdir('z'); os.chdir('z')\"" }
"#,
    );
    let (b, _) = serve(&config);
    let tar = hostile_tar(&[("index.html", tar::EntryType::Regular, "v1", "")]);
    let r = upload(&b, "deep", tar).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("directories deep (at most 64)"), "{}", r.text());
    assert_eq!(get(b.addr, "deep.test", "/").await.text(), "platform", "still serving");
    let data = s.path(".bext/deploy");
    eventually(Duration::from_secs(60), || async {
        let left = |dir: &str| std::fs::read_dir(data.join(dir)).map_or(0, |d| d.count());
        (left("incoming") == 0 && left("trash") == 0).then_some(())
    })
    .await;
}
