//! Configuration written for the original bext and for Buntime, from the
//! pages in ../shared/seeds (copied under tests/compat/, each naming its
//! page): checked by `bext check`, served, and answered. What bext serves
//! differently is refused with the configuration to write instead, and
//! that configuration then runs.

use std::path::Path;
use std::time::Duration;

use crate::deploy::{cli, json, ok, upload_with};
use crate::support::*;

/// A fixture of tests/compat/ as its page writes it.
fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/compat").join(name)).unwrap()
}

/// `bext check --config FILE`: success, and stderr (errors, warnings, notes).
pub(crate) fn check(config: &Path) -> (bool, String) {
    check_env(config, &[])
}

/// [`check`] with extra environment variables (the secrets serve reads).
pub(crate) fn check_env(config: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bext"))
        .args(["check", "--config", p(config)])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

pub(crate) fn js_app(s: &Site, dir: &str, answer: &str) {
    s.write(
        &format!("{dir}/index.js"),
        format!("export default {{ fetch(req) {{ return new Response('{answer} ' + new URL(req.url).pathname); }} }}"),
    );
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// multi-app-routing.txt's platform.toml, as written: every `[platform]`
/// key is read, `ssr` apps render in isolates (a `render(request)` export
/// or a fetch handler) behind their static files, and each app answers on
/// its domains with its cache, rate limit and auth.
#[tokio::test]
async fn the_multi_app_routing_platform_toml_runs_as_written() {
    let s = Site::new();
    s.write(
        "apps/marketing/index.js",
        "export function render(request) { return '<h1>marketing ' + new URL(request.url).pathname + '</h1>'; }",
    );
    s.write("apps/marketing/public/logo.svg", "<svg/>");
    js_app(&s, "apps/dashboard", "dashboard");
    js_app(&s, "apps/api", "api");
    s.write("apps/docs/index.html", "docs");
    let page = fixture("multi-app-routing.platform.toml").replace("0.0.0.0:3000", "127.0.0.1:0");
    let config = s.platform(&page);
    let secret = [("DASHBOARD_JWT_SECRET", "a-secret-of-the-dashboard-32-bytes")];
    let (passed, text) = check_env(&config, &secret);
    assert!(passed, "{text}");
    // Without the secret, or with a short one, check refuses what serve
    // would refuse, with its words.
    let (passed, text) = check(&config);
    assert!(
        !passed && text.contains("jwt_secret_env: `DASHBOARD_JWT_SECRET` is not set"),
        "{text}"
    );
    let (passed, text) = check_env(&config, &[("DASHBOARD_JWT_SECRET", "short")]);
    assert!(!passed && text.contains("needs at least 32 bytes"), "{text}");
    let b = Bext::serve_env(&config, &secret);
    let rendered = get(b.addr, "www.example.com", "/a").await;
    assert_eq!(rendered.text(), "<h1>marketing /a</h1>");
    assert_eq!(rendered.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(get(b.addr, "example.com", "/logo.svg").await.text(), "<svg/>");
    assert_eq!(get(b.addr, "api.example.com", "/v1").await.text(), "api /v1");
    assert_eq!(get(b.addr, "docs.example.com", "/").await.text(), "docs");
    // `auth.required = true`: no token, no page.
    assert_eq!(get(b.addr, "app.example.com", "/").await.status, 401);
    // `[apps.marketing.cache]` is its isr cache: `default_ttl` keeps a
    // page that says nothing about caching.
    assert_eq!(get(b.addr, "example.com", "/c").await.header("x-cache"), Some("MISS"));
    assert_eq!(get(b.addr, "example.com", "/c").await.header("x-cache"), Some("HIT"));

    // A bundle with neither fetch nor render is refused by name.
    s.write("apps/marketing/index.js", "export const nothing = 1;");
    let (passed, text) = check_env(&config, &secret);
    assert!(!passed && text.contains("no render(request) is exported"), "{text}");
}

/// `hybrid`: the SSR bundle and its static files, with `/api/*` (or the
/// app's `api_prefix`) proxied to its upstream; other spellings of the
/// prefix are pages, not API calls.
#[tokio::test]
async fn hybrid_sends_its_api_prefix_upstream_and_renders_the_rest() {
    let s = Site::new();
    let upstream = Echo::start().await;
    s.write(
        "web/dist/server.js",
        "export default { render(request) { return 'page ' + new URL(request.url).pathname; } }",
    );
    s.write("web/package.json", r#"{"main": "dist/server.js"}"#);
    s.write("web/dist/client/app.css", "body{}");
    let app = format!(
        "[apps.web]\nruntime = \"hybrid\"\nsource = \"web\"\nstatic_dir = \"dist/client\"\nupstream = \"http://{}\"\ndomains = [\"web.test\"]\n",
        upstream.addr
    );
    let config = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n\n{app}"));
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "web.test", "/about").await.text(), "page /about");
    assert_eq!(get(b.addr, "web.test", "/app.css").await.text(), "body{}");
    let api = get(b.addr, "web.test", "/api/users?x=1").await;
    assert!(
        api.text().contains("/api/users?x=1"),
        "the echo upstream answers: {}",
        api.text()
    );
    for page in ["/apix", "/API/users", "/api/../about"] {
        let r = get(b.addr, "web.test", page).await;
        assert!(r.text().starts_with("page /"), "{page}: {}", r.text());
    }

    // Without an upstream it says what to write; a prefix elsewhere.
    let config =
        s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.web]\nruntime = \"hybrid\"\nsource = \"web\"\n");
    let (passed, text) = check(&config);
    assert!(
        !passed && text.contains("apps.web.upstream: a `hybrid` app sends `/api/*`"),
        "{text}"
    );
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n{}api_prefix = \"/backend\"\n",
        app.replace("static_dir = \"dist/client\"\n", "")
    ));
    let b = Bext::serve(&config);
    assert!(
        get(b.addr, "web.test", "/backend/x")
            .await
            .text()
            .contains("/backend/x")
    );
    assert_eq!(get(b.addr, "web.test", "/api/x").await.text(), "page /api/x");
    drop(b);

    // A deployed version renders and serves its own files.
    let config = s.platform(&format!("[platform]\nlisten = \"127.0.0.1:0\"\n\n{app}"));
    s.write("v2/package.json", r#"{"main": "dist/server.js"}"#);
    s.write(
        "v2/dist/server.js",
        "export function render(request) { return 'v2 ' + new URL(request.url).pathname; }",
    );
    s.write("v2/dist/client/app.css", "v2{}");
    ok(cli(&[
        "deploy",
        p(&s.path("v2")),
        "--app",
        "web",
        "--config",
        p(&config),
    ]));
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "web.test", "/about").await.text(), "v2 /about");
    assert_eq!(get(b.addr, "web.test", "/app.css").await.text(), "v2{}");
}

/// An SSR page waits for its data: `render(request)` may hand back an
/// async iterable, a ReadableStream or a Response with a stream body, and
/// what it makes first reaches the client while it still waits (the data
/// is held by the test until the shell has arrived), through `ssr` and
/// `hybrid` alike.
#[tokio::test]
async fn ssr_and_hybrid_stream_what_render_returns() {
    let s = Site::new();
    let gate = Gate::start().await;
    let data = format!("http://127.0.0.1:{}/", gate.addr.port());
    s.write(
        "live/index.js",
        format!(
            r#"const data = () => fetch('{data}').then((r) => r.text());
async function* page() {{
  yield '<p>shell</p>';
  yield new TextEncoder().encode('<p>' + (await data()) + '</p>');
}}
function stream() {{
  let sent = false;
  return new ReadableStream({{
    async pull(c) {{
      if (sent) {{ c.enqueue('<p>' + (await data()) + '</p>'); c.close(); return; }}
      sent = true;
      c.enqueue('<p>shell</p>');
    }},
  }});
}}
export async function render(request) {{
  const path = new URL(request.url).pathname;
  if (path === '/stream') return stream();
  if (path === '/response') return new Response(stream(), {{ status: 203, headers: {{ 'x-page': 'own' }} }});
  if (path === '/array') return ['<p>shell</p>'];
  return page();
}}
"#
        ),
    );
    s.write("live/public/app.css", "body{}");
    let upstream = Echo::start().await;
    let app = |id: &str, runtime: &str, more: &str| {
        format!(
            "[apps.{id}]\nruntime = \"{runtime}\"\nsource = \"live\"\ndomains = [\"{id}.test\"]\nisolate = {{ workers = 1, fetch = {{ allow = [\"127.0.0.1:{}\"] }} }}\n{more}\n",
            gate.addr.port()
        )
    };
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n{}{}",
        app("live", "ssr", ""),
        app("mixed", "hybrid", &format!("upstream = \"http://{}\"\n", upstream.addr))
    ));
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    for (host, path, status, header) in [
        ("live.test", "/", 200, ("content-type", "text/html; charset=utf-8")),
        (
            "live.test",
            "/stream",
            200,
            ("content-type", "text/html; charset=utf-8"),
        ),
        ("live.test", "/response", 203, ("x-page", "own")),
        ("mixed.test", "/", 200, ("content-type", "text/html; charset=utf-8")),
    ] {
        let (mut h1, _c) = h1_client(b.addr).await;
        let req = request("GET", path, &[("host", host)], "");
        // Without streaming the head waits for the whole page, and the
        // page for the gate: no answer here.
        let res = tokio::time::timeout(Duration::from_secs(20), h1.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{host}{path}: no answer while the page waits for its data: not streamed"))
            .unwrap();
        assert_eq!(res.status(), status, "{host}{path}");
        assert_eq!(res.headers()[header.0], header.1, "{host}{path}");
        let mut body = res.into_body();
        let shell = read_until(&mut body, "<p>shell</p>").await;
        assert!(!shell.contains("data"), "{host}{path}: {shell}");
        gate.open(&format!("data for {host}{path}")).await;
        let rest = read_until(&mut body, "</p>").await;
        assert_eq!(rest, format!("<p>data for {host}{path}</p>"));
        read_to_end(&mut body).await.unwrap();
    }
    // Other things render returns are still the page, as text; hybrid's
    // static files and API prefix are untouched.
    assert_eq!(get(b.addr, "live.test", "/array").await.text(), "<p>shell</p>");
    assert_eq!(get(b.addr, "mixed.test", "/app.css").await.text(), "body{}");
    assert!(get(b.addr, "mixed.test", "/api/x").await.text().contains("/api/x"));
}

/// React 19's renderToReadableStream as an SSR bundle's render: the
/// example's bundle (examples/apps/react-ssr) imported, its stream
/// returned; the shell with the Suspense fallback comes before the menu.
#[tokio::test]
async fn a_react_stream_from_render_is_streamed() {
    let s = Site::new();
    let bundle = repo().join("examples/apps/react-ssr/dist/index.js");
    assert!(
        bundle.is_file(),
        "missing {}: run `npm ci && npm run build` in examples/apps/react-ssr",
        bundle.display()
    );
    s.write("react/react-page.js", std::fs::read(&bundle).unwrap());
    s.write(
        "react/index.js",
        "import page from './react-page.js';\nexport async function render(request) {\n  const res = await page.fetch(request);\n  return res.body;\n}\n",
    );
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.cafe]\nruntime = \"ssr\"\nsource = \"react\"\ndomains = [\"*.cafe.test\"]\n",
    );
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    let (mut h1, _c) = h1_client(b.addr).await;
    let req = request("GET", "/?delay=2000", &[("host", "acme.cafe.test")], "");
    let res = h1.send_request(req).await.unwrap();
    the_react_menu_streams(res).await;
}

/// `max_isolates`: the JS apps' isolates added up, refused at load with
/// each app and its count; `max_apps` refuses a file with more apps, a
/// reload to one, and a deploy creating one past it.
#[tokio::test]
async fn max_isolates_and_max_apps_are_enforced_with_the_counts() {
    let s = Site::new();
    js_app(&s, "a", "a");
    js_app(&s, "b", "b");
    let apps = "[apps.a]\nruntime = \"js\"\nsource = \"a\"\nisolate = { workers = 3 }\n\n[apps.b]\nruntime = \"js\"\nsource = \"b\"\n";
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmax_isolates = 4\n\n{apps}"
    ));
    let (passed, text) = check(&config);
    assert!(!passed);
    assert!(
        text.contains("platform.max_isolates: the JS apps run 5 isolates, more than max_isolates = 4 (a: 3, b: 2)"),
        "{text}"
    );
    // Said once (at its line), not again by the table serve builds.
    assert_eq!(text.matches("more than max_isolates").count(), 1, "{text}");
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmax_isolates = 5\n\n{apps}"
    ));
    assert!(check(&config).0);
    let (passed, text) = check(&s.platform(&format!(
        "[platform]\nmax_apps = 2\n\n{apps}\n[apps.c]\nsource = \"a\"\n"
    )));
    assert!(!passed);
    assert!(text.contains("3 apps are declared, more than max_apps = 2"), "{text}");
    assert_eq!(text.matches("more than max_apps").count(), 1, "{text}");
    let (passed, text) = check(&s.platform(&format!("[platform]\nmax_apps = 0\n\n{apps}")));
    assert!(!passed);
    assert!(
        text.contains("platform.max_apps: `0` allows no app at all (it does not mean \"unlimited\")"),
        "{text}"
    );

    s.write("site/index.html", "site");
    let one = "[platform]\nlisten = \"127.0.0.1:0\"\nmax_apps = 1\n\n[apps.site]\nsource = \"site\"\ndomains = [\"site.test\"]\n";
    let config = s.platform(one);
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", "deploy-secret")]);
    // A reload past it is refused; the old configuration keeps serving.
    // (Written whole at once: the watcher must not see an empty file.)
    let two = s.write(
        "two.toml",
        format!("{one}\n[apps.more]\nsource = \"site\"\ndomains = [\"more.test\"]\n"),
    );
    std::fs::rename(two, &config).unwrap();
    eventually(Duration::from_secs(10), || async {
        b.log()
            .contains("platform.max_apps: 2 apps are declared, more than max_apps = 1")
            .then_some(())
    })
    .await;
    assert_eq!(get(b.addr, "site.test", "/").await.text(), "site");
    assert_eq!(get(b.addr, "more.test", "/").await.status, 404);
    let back = s.write("one.toml", one);
    std::fs::rename(back, &config).unwrap();

    // A deploy creating a second app is refused; one to the app it has is not.
    s.write("bundle/index.html", "deployed");
    let server = format!("http://{}", b.addr);
    let c = p(&config);
    let refused = cli(&[
        "deploy",
        p(&s.path("bundle")),
        "--app",
        "new",
        "--config",
        c,
        "--server",
        &server,
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cannot create app `new`: the platform has 1 apps and max_apps = 1"),
        "{said}"
    );
    ok(cli(&[
        "deploy",
        p(&s.path("bundle")),
        "--app",
        "site",
        "--config",
        c,
        "--server",
        &server,
    ]));
    assert_eq!(get(b.addr, "site.test", "/").await.text(), "deployed");
    drop(b);

    // The registry's apps count too: with one created by a deploy, a file
    // declaring one more app than before is past max_apps = 2.
    let two = one.replace("max_apps = 1", "max_apps = 2");
    s.platform(&two);
    ok(cli(&["deploy", p(&s.path("bundle")), "--app", "made", "--config", c]));
    let config = s.platform(&format!("{two}\n[apps.more]\nsource = \"site\"\n"));
    let b = Bext::serve(&config);
    assert!(
        b.log().contains(
            "platform.max_apps: 3 apps, more than max_apps = 2: 2 declared by the file (more, site) and 1 created by deploys (made)"
        ),
        "{}",
        b.log()
    );
    // The file's apps serve; the app the deploy made is refused.
    assert_eq!(get(b.addr, "site.test", "/").await.text(), "site");
    assert_eq!(get(b.addr, "made", "/").await.status, 404);
    drop(b);
    // `bext check` counts the registry's apps as serve does.
    let (passed, text) = check(&config);
    assert!(!passed, "{text}");
    assert!(
        text.contains(
            "3 apps, more than max_apps = 2: 2 declared by the file (more, site) and 1 created by deploys (made)"
        ),
        "{text}"
    );
}

/// `max_isolates` counts what deploys start: a preview or a canary of a
/// JS app runs as many isolates as the app, a new JS app its defaults.
/// The deploy API refuses one past it (409, naming the counts) before
/// storing it; a reload whose deploys are past it is refused, a start
/// serves the file's apps without them, and an offline deploy is refused.
#[tokio::test]
async fn max_isolates_counts_the_previews_canaries_and_apps_deploys_start() {
    let s = Site::new();
    js_app(&s, "a", "a");
    js_app(&s, "v2", "v2");
    js_app(&s, "newjs", "new");
    s.write("newjs/bext.config.toml", "[server]\nruntime = \"js\"\n");
    s.write("plain/index.html", "plain");
    let file = |max: usize| {
        format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\nmax_isolates = {max}\n\n[apps.a]\nruntime = \"js\"\nsource = \"a\"\ndomains = [\"a.test\"]\nisolate = {{ workers = 3 }}\n"
        )
    };
    let config = s.platform(&file(7));
    let c = p(&config);
    let b = Bext::serve_env(&config, &[("BEXT_ADMIN_TOKEN", "deploy-secret")]);
    let server = format!("http://{}", b.addr);
    let deploy = |dir: &str, app: &str, more: &[&str]| {
        let (dir, server) = (s.path(dir), server.clone());
        let mut args = vec!["deploy".to_owned(), p(&dir).to_owned(), "--app".into(), app.into()];
        args.extend(more.iter().map(|a| (*a).to_owned()));
        args.extend(["--config".into(), c.to_owned(), "--server".into(), server]);
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // A new current version starts nothing; a preview starts a's 3 (6 of 7).
    ok(deploy("v2", "a", &[]));
    ok(deploy("v2", "a", &["--preview", "pr-1"]));
    eventually(Duration::from_secs(10), || async {
        (get(b.addr, "pr-1.preview.a.test", "/").await.text() == "v2 /").then_some(())
    })
    .await;
    for (dir, app, more, says) in [
        (
            "v2",
            "a",
            &["--canary", "10"][..],
            "cannot start `a@<version>`: it runs 3 isolates, and the JS apps run 6 of max_isolates = 7 (a: 3, a~pr-1: 3)",
        ),
        (
            "v2",
            "a",
            &["--preview", "pr-2"][..],
            "cannot start `a~pr-2`: it runs 3 isolates",
        ),
        (
            "newjs",
            "newjs",
            &[][..],
            "cannot start `newjs`: it runs 2 isolates, and the JS apps run 6 of max_isolates = 7",
        ),
    ] {
        let refused = deploy(dir, app, more);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{app} {more:?}: {said}");
        assert!(said.contains(says), "{app} {more:?}: {said}");
    }
    // The API's answer: 409, with the same words.
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", s.path("v2")).unwrap();
    let r = upload_with(&b, "a", "?preview=pr-3", tar.into_inner().unwrap()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("cannot start `a~pr-3`: it runs 3 isolates"),
        "{}",
        r.text()
    );
    let versions = json(cli(&[
        "apps", "versions", "a", "--config", c, "--server", &server, "--json",
    ]));
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "nothing refused was stored: {versions}"
    );
    // Replacing the preview starts nothing new; a static app runs none.
    ok(deploy("v2", "a", &["--preview", "pr-1"]));
    ok(deploy("plain", "plain", &[]));
    drop(b);
    // With no server, the CLI's in-process registry counts the same.
    let refused = cli(&[
        "deploy",
        p(&s.path("v2")),
        "--app",
        "a",
        "--preview",
        "pr-2",
        "--config",
        c,
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("cannot start `a~pr-2`: it runs 3 isolates"),
        "{said}"
    );

    // Fewer than the preview needs: the start serves the file's apps,
    // never nothing, and says why the preview is not served.
    let config = s.platform(&file(5));
    let b = Bext::serve(&config);
    assert!(
        b.log().contains(
            "platform.max_isolates: the JS apps run 6 isolates, more than max_isolates = 5 (a: 3, a~pr-1: 3)"
        ) && b.log().contains("only the platform file's apps"),
        "{}",
        b.log()
    );
    assert_eq!(get(b.addr, "a.test", "/").await.status, 200);
    drop(b);
    // `bext check` says so too, and an offline deploy adding isolates to a
    // table already past the limit is refused, not warned about.
    let (passed, text) = check(&config);
    assert!(!passed && text.contains("more than max_isolates = 5"), "{text}");
    // (A new JS app's isolates fit beside the file's 3, not beside the
    // preview's 3 more.)
    let refused = cli(&["deploy", p(&s.path("newjs")), "--app", "other", "--config", p(&config)]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("cannot start `other`"),
        "{said}"
    );
}

/// `[platform] tls_cert`/`tls_key`: the certificate of every app without
/// its own on `listen_tls`; an app with its own keeps it. Without
/// `listen_tls` the error says to add it.
#[tokio::test]
async fn tls_cert_is_the_default_certificate_of_apps_without_their_own() {
    use crate::tls::{Ca, Client, files};
    let s = Site::new();
    let ca = Ca::new();
    let (wide, own) = (
        ca.leaf(&["*.example.com", "example.com"]),
        ca.leaf(&["own.example.com"]),
    );
    s.write("certs/default.pem", &wide.cert);
    s.write("certs/default.key", &wide.key);
    let own_tls = files(&s, "own", &own);
    for id in ["www", "api", "own"] {
        s.write(&format!("{id}/index.html"), id);
    }
    let apps = format!(
        "[apps.www]\nsource = \"www\"\ndomains = [\"example.com\", \"www.example.com\"]\n\n[apps.api]\nsource = \"api\"\ndomains = [\"api.example.com\"]\n\n[apps.own]\nsource = \"own\"\ndomains = [\"own.example.com\"]\ntls = {own_tls}\n"
    );
    let without = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"certs/default.pem\"\ntls_key = \"certs/default.key\"\n\n{apps}"
    ));
    let (passed, text) = check(&without);
    assert!(!passed);
    assert!(
        text.contains(
            "platform.tls_cert: is served on `listen_tls`, which is unset: add `listen_tls = \"0.0.0.0:443\"`"
        ),
        "{text}"
    );

    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\ntls_cert = \"certs/default.pem\"\ntls_key = \"certs/default.key\"\n\n{apps}"
    ));
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    let tls = b.tls.unwrap();
    let client = Client::trusting(&[&ca.root]);
    for (host, answer, leaf) in [
        ("example.com", "www", &wide.der),
        ("api.example.com", "api", &wide.der),
        ("own.example.com", "own", &own.der),
    ] {
        let (reply, _, served) = client.get(tls, host, "/").await;
        assert_eq!(reply.text(), answer);
        assert_eq!(&served, leaf, "{host}");
    }
}

/// `[platform] preview_ttl` is the deploy plugin's default lifetime of a
/// preview; `[apps.<id>] deploy.keep_versions` how many old versions that
/// app keeps.
#[tokio::test]
async fn preview_ttl_and_keep_versions_reach_the_registry() {
    let s = Site::new();
    s.write("site/index.html", "site");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\npreview_ttl = \"2h\"\n\n[apps.site]\nsource = \"site\"\ndomains = [\"site.test\"]\ndeploy.keep_versions = 1\n\n[apps.other]\nsource = \"site\"\ndomains = [\"other.test\"]\n",
    );
    let c = p(&config);
    for v in 1..=4 {
        s.write(&format!("v{v}/index.html"), format!("v{v}"));
        ok(cli(&[
            "deploy",
            p(&s.path(&format!("v{v}"))),
            "--app",
            "site",
            "--config",
            c,
        ]));
        ok(cli(&[
            "deploy",
            p(&s.path(&format!("v{v}"))),
            "--app",
            "other",
            "--config",
            c,
        ]));
    }
    let count = |app: &str| {
        json(cli(&["apps", "versions", app, "--config", c, "--json"]))["versions"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("site"), 2, "the current version and one more");
    assert_eq!(count("other"), 4, "the current version and the plugin's 5 at most");
    ok(cli(&[
        "deploy",
        p(&s.path("v1")),
        "--app",
        "site",
        "--preview",
        "pr-1",
        "--config",
        c,
    ]));
    let previews = json(cli(&["apps", "previews", "list", "--config", c, "--json"]));
    let (created, expires) = (
        previews[0]["created_at"].as_u64().unwrap(),
        previews[0]["expires_at"].as_u64().unwrap(),
    );
    assert_eq!(expires - created, 7200);
}

/// deployment-modes.txt's single-app bext.config.toml: `[server] listen`
/// and `static_dir`, `[cache.isr]` as the app's isr cache (a page with no
/// Cache-Control is kept `default_ttl_ms`); `bext run` says what it serves.
#[tokio::test]
async fn the_single_app_bext_config_toml_serves_and_caches() {
    let s = Site::new();
    let page = fixture("deployment-modes.bext.config.toml").replace("0.0.0.0:3061", "127.0.0.1:0");
    s.write("bext.config.toml", &page);
    s.write("dist/static/index.html", "single app");
    let b = Bext::start(&["run", p(s.dir.path())]);
    assert!(b.log().contains("a static site"), "{}", b.log());
    let first = get(b.addr, "localhost", "/").await;
    assert_eq!(
        (first.text().as_str(), first.header("x-cache")),
        ("single app", Some("MISS"))
    );
    let second = get(b.addr, "localhost", "/").await;
    assert_eq!(second.header("x-cache"), Some("HIT"));

    // request-lifecycle.txt's other `[framework] type`s and `[render]`
    // are refused with what to write instead, at their line.
    for (extra, said) in [
        (
            "[framework]\ntype = \"prism\"\n",
            "framework.type: `prism` is not a runtime of bext: build the pages to a module exporting render(request)",
        ),
        (
            "[framework]\ntype = \"astro\"\n",
            "`astro` is not a runtime of bext: write \"static\"",
        ),
        ("[render]\nrsc = true\n", "render: bext does not render React itself"),
        ("[cache]\nisr = { ttl = 5 }\n", "unknown field `ttl`"),
    ] {
        s.write(
            "bext.config.toml",
            format!("[server]\nstatic_dir = \"./dist/static\"\n{extra}"),
        );
        let out = bext_output(&["run", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("bext.config.toml:") && text.contains(said),
            "{extra}: {text}"
        );
    }
}

/// deployment-modes.txt's table of per-app settings, every one on one
/// app: the hono app answers with its cache (`cache.default_ttl`) and rate
/// limit (`rate_limit.rpm`) in front, its two isolates
/// (`isolate.workers`, `isolate.memory_limit = "256mb"`) counted, and a
/// deploy runs its hooks (`deploy.keep_versions` is
/// preview_ttl_and_keep_versions_reach_the_registry's).
#[tokio::test]
async fn the_per_app_settings_of_deployment_modes_apply() {
    let s = Site::new();
    s.write(
        "srv/shop/package.json",
        r#"{"name": "shop", "type": "module", "main": "./dist/index.js", "dependencies": {"hono": "^4"}}"#,
    );
    s.write(
        "srv/shop/dist/index.js",
        "let n = 0; export default { fetch(req) { n += 1; return new Response('shop ' + new URL(req.url).pathname + ' #' + n); } }",
    );
    let as_written = fixture("deployment-modes.per-app.platform.toml")
        .replace("/var/lib/bext", "data")
        .replace("\"/srv/", "\"srv/");
    // The page's `listen = "0.0.0.0:443"` is plain HTTP there: said, not silent.
    let (passed, text) = check(&s.platform(&as_written));
    assert!(
        passed && text.contains("warning: ") && text.contains("serves plain HTTP on port 443"),
        "{text}"
    );
    let page = as_written.replace("0.0.0.0:443", "127.0.0.1:0");
    let config = s.platform(&page);
    let (passed, text) = check(&config);
    assert!(passed && !text.contains("port 443"), "{text}");
    let (passed, text) = check(&s.platform(&page.replace("[platform]\n", "[platform]\nmax_isolates = 1\n")));
    assert!(!passed && text.contains("(shop: 2)"), "isolate.workers counts: {text}");
    let config = s.platform(&page);
    let out = cli(&[
        "deploy",
        p(&s.path("srv/shop")),
        "--app",
        "shop",
        "--config",
        p(&config),
    ]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("pre-build ran") && said.contains("post-deploy ran"),
        "{said}"
    );
    let b = Bext::serve(&config);
    let first = get(b.addr, "shop.example.com", "/p").await;
    assert_eq!(first.text(), "shop /p #1");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let again = get(b.addr, "shop.example.com", "/p").await;
    assert_eq!(
        (again.text().as_str(), again.header("x-cache")),
        ("shop /p #1", Some("HIT"))
    );
    // 600 a minute, in bursts of the gateway's default (docs/gateway.md).
    assert!(first.header("ratelimit-policy").is_some(), "{:?}", first.headers);
}

/// deployment-modes.txt's edge bext.config.toml: `[redis] url` and
/// `prefix` put `bext run` in edge mode: pages one instance rendered are
/// served by another from Redis, under the prefix.
#[tokio::test]
async fn the_edge_bext_config_toml_shares_the_cache_through_redis() {
    let redis = crate::edge::Redis::start();
    let page = fixture("deployment-modes.edge.bext.config.toml")
        .replace("0.0.0.0:443", "127.0.0.1:0")
        .replace("redis://redis.internal:6379", &redis.url())
        .replace("[server]", "[server]\nstatic_dir = \"public\"");
    let (a_dir, b_dir) = (Site::new(), Site::new());
    for (s, who) in [(&a_dir, "a"), (&b_dir, "b")] {
        s.write("bext.config.toml", &page);
        s.write("public/index.html", format!("rendered by {who}"));
    }
    let token = [("BEXT_ADMIN_TOKEN", "sekret")];
    let a = Bext::start_env(&["run", p(a_dir.dir.path())], &token);
    let b = Bext::start_env(&["run", p(b_dir.dir.path())], &token);
    crate::edge::redis_is(&[&a, &b], "up", 10).await;
    assert!(
        a.log()
            .contains("edge mode: sharing the isr cache and its invalidations (app) through redis"),
        "{}",
        a.log()
    );
    assert_eq!(get(a.addr, "localhost", "/").await.text(), "rendered by a");
    // Written through to Redis, under the prefix.
    eventually(Duration::from_secs(10), || async {
        (redis.count_keys("bext:isr:e:*") > 0).then_some(())
    })
    .await;
    let from_b = get(b.addr, "localhost", "/").await;
    assert_eq!(
        (from_b.text().as_str(), from_b.header("x-cache-tier")),
        ("rendered by a", Some("L2"))
    );
}

/// A bundle's bext.config.toml names only paths inside the bundle, in
/// every spelling: `..`, absolute, a link; a fetch-handler bundle's
/// package.json entry too; and it cannot set the platform's Redis.
#[tokio::test]
async fn a_bundle_config_names_only_paths_inside_the_bundle() {
    let s = Site::new();
    s.write("site/index.html", "site");
    s.write("secret/passwords.txt", "secret");
    let config = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.site]\nsource = \"site\"\n");
    let c = p(&config);
    let cases: [(&str, &str, &str); 6] = [
        ("[server]\nstatic_dir = \"../secret\"\n", "", "a `..`"),
        ("[server]\nstatic_dir = \"/etc\"\n", "", "an absolute path"),
        ("[server]\nstatic_dir = \"out\"\n", "link", "a symbolic link"),
        (
            "[framework]\ntype = \"hono\"\n",
            "{\"main\": \"../secret/x.js\"}",
            "a `..`",
        ),
        (
            "[framework]\ntype = \"hono\"\n",
            "{\"main\": \"/etc/passwd\"}",
            "an absolute path",
        ),
        ("[redis]\nurl = \"redis://elsewhere:6379\"\n", "", "[redis]"),
    ];
    for (i, (toml, package, why)) in cases.iter().enumerate() {
        let dir = format!("b{i}");
        s.write(&format!("{dir}/index.html"), "x");
        s.write(&format!("{dir}/bext.config.toml"), toml);
        if *package == "link" {
            std::os::unix::fs::symlink(s.path("secret"), s.path(&format!("{dir}/out"))).unwrap();
        } else if !package.is_empty() {
            s.write(&format!("{dir}/package.json"), package);
        }
        let out = cli(&["deploy", p(&s.path(&dir)), "--app", "site", "--config", c]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(why), "{toml} {package}: {said}");
    }
    // Inside the bundle: served, as the app the deploy creates.
    s.write("good/public/index.html", "good");
    s.write(
        "good/bext.config.toml",
        "[server]\nstatic_dir = \"public\"\n[cache.isr]\ndefault_ttl_ms = 1000\n",
    );
    ok(cli(&["deploy", p(&s.path("good")), "--app", "fresh", "--config", c]));
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    fresh.test: { app: fresh }\n",
    );
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.site]\nsource = \"site\"\n",
    );
    let b = Bext::serve(&config);
    let page = get(b.addr, "fresh.test", "/").await;
    assert_eq!((page.text().as_str(), page.header("x-cache")), ("good", Some("MISS")));
    assert_eq!(
        get(b.addr, "fresh.test", "/").await.header("x-cache"),
        Some("HIT"),
        "its [cache.isr]"
    );
}

/// A bundle declares `ssr` or `hybrid` in its own bext.config.toml
/// (`[framework] type`, `[server] static_dir` for its assets, `entry` or
/// package.json's, and for hybrid `[server] upstream`), for `bext run`
/// and for a deploy that creates the app; what is missing is said in the
/// keys of that file.
#[tokio::test]
async fn a_bundle_declares_ssr_and_hybrid_in_its_bext_config_toml() {
    let s = Site::new();
    let upstream = Echo::start().await;
    for dir in ["web", "api"] {
        s.write(&format!("{dir}/package.json"), r#"{"main": "dist/server.js"}"#);
        s.write(
            &format!("{dir}/dist/server.js"),
            format!("export function render(request) {{ return '{dir} page ' + new URL(request.url).pathname; }}"),
        );
        s.write(&format!("{dir}/dist/client/app.css"), format!("{dir}{{}}"));
    }
    s.write(
        "web/bext.config.toml",
        "[framework]\ntype = \"ssr\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nstatic_dir = \"dist/client\"\n",
    );
    let hybrid = format!(
        "[framework]\ntype = \"hybrid\"\n\n[server]\nstatic_dir = \"dist/client\"\nupstream = \"http://{}\"\n",
        upstream.addr
    );
    s.write("api/bext.config.toml", &hybrid);

    let b = Bext::start(&["run", p(&s.path("web"))]);
    assert_eq!(get(b.addr, "localhost", "/about").await.text(), "web page /about");
    assert_eq!(get(b.addr, "localhost", "/app.css").await.text(), "web{}");
    drop(b);
    let b = Bext::start(&["run", p(&s.path("api")), "--listen", "127.0.0.1:0"]);
    assert_eq!(get(b.addr, "localhost", "/about").await.text(), "api page /about");
    assert!(
        get(b.addr, "localhost", "/api/users")
            .await
            .text()
            .contains("/api/users")
    );
    drop(b);

    // Deployed as a new app, each renders, serves its assets, and the
    // hybrid one sends /api/* upstream.
    let config = s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n");
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    web.test: { app: web }\n    api.test: { app: api }\n",
    );
    for app in ["web", "api"] {
        ok(cli(&["deploy", p(&s.path(app)), "--app", app, "--config", p(&config)]));
    }
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "web.test", "/x").await.text(), "web page /x");
    assert_eq!(get(b.addr, "web.test", "/app.css").await.text(), "web{}");
    assert_eq!(get(b.addr, "api.test", "/x").await.text(), "api page /x");
    assert_eq!(get(b.addr, "api.test", "/app.css").await.text(), "api{}");
    assert!(
        get(b.addr, "api.test", "/api/orders?n=1")
            .await
            .text()
            .contains("/api/orders?n=1")
    );
    drop(b);

    // What is missing or wrong is said in bext.config.toml's keys.
    s.write("bare/index.html", "no module");
    for (toml, key, said) in [
        ("[framework]\ntype = \"ssr\"\n", "server.entry", "no module to run"),
        (
            "[framework]\ntype = \"hybrid\"\n[server]\nentry = \"index.html\"\n",
            "server.upstream",
            "to `[server] upstream = \"http://host:port\"`, which is unset",
        ),
        (
            "[framework]\ntype = \"hybrid\"\n[server]\nentry = \"index.html\"\nupstream = \"ftp://x\"\n",
            "server.upstream",
            "starts with http:// or https://",
        ),
        (
            "[framework]\ntype = \"ssr\"\n[server]\nentry = \"index.html\"\nstatic_dir = \"nowhere\"\n",
            "server.static_dir",
            "is not a directory",
        ),
    ] {
        s.write("bare/bext.config.toml", toml);
        let out = bext_output(&["run", p(&s.path("bare")), "--listen", "127.0.0.1:0"]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}: {text}");
        assert!(
            text.contains("bext.config.toml") && text.contains(&format!("{key}: ")) && text.contains(said),
            "{toml}: {text}"
        );
        assert!(
            !text.contains("apps.app") && !text.contains("server.runtime"),
            "{toml}: {text}"
        );
        if key == "server.entry" {
            assert!(text.contains("set `[server] entry`"), "{text}");
        }
    }
    // A deploy refuses a hybrid bundle without its upstream, by the key
    // the bundle wrote.
    s.write("bare/bext.config.toml", "[framework]\ntype = \"hybrid\"\n");
    let out = cli(&["deploy", p(&s.path("bare")), "--app", "bare", "--config", p(&config)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("framework.type = \"hybrid\" sends `/api/*`"),
        "{said}"
    );
    // Nor stores an SSR bundle with no module, which would not load.
    s.write("bare/bext.config.toml", "[framework]\ntype = \"ssr\"\n");
    let out = cli(&["deploy", p(&s.path("bare")), "--app", "bare", "--config", p(&config)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("framework.type = \"ssr\" has no module to run"),
        "{said}"
    );
    let (passed, text) = check(&config);
    assert!(passed, "nothing stored: {text}");
}

/// buntime-vhosts.txt's manifest.yaml, unchanged: the scoped name is the
/// vhosts plugin, `pluginEntry` is ignored with a note, top-level `hosts`
/// route (exact, wildcard with its tenant, `pathPrefix`), `app@latest` is
/// the app's current version.
#[tokio::test]
async fn buntime_s_vhosts_manifest_routes_as_written() {
    let s = Site::new();
    s.write("manifests/manifest.yaml", fixture("buntime-vhosts.manifest.yaml"));
    s.write(
        "skedly/index.js",
        "export default { fetch(req) { return new Response('skedly ' + (req.headers.get('x-vhost-tenant') || '-') + ' ' + req.headers.get('x-base')); } }",
    );
    js_app(&s, "admin-panel", "admin");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\n\n[apps.admin-panel]\nruntime = \"js\"\nsource = \"admin-panel\"\n",
    );
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    assert!(
        text.contains("name: `@buntime/plugin-vhosts` is bext's built-in `vhosts` plugin"),
        "{text}"
    );
    assert!(text.contains("pluginEntry: `dist/plugin.js` ignored"), "{text}");
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "sked.ly", "/").await.text(), "skedly - /");
    assert_eq!(get(b.addr, "sked.ly:8000", "/").await.text(), "skedly - /");
    assert_eq!(get(b.addr, "tenant1.sked.ly", "/").await.text(), "skedly tenant1 /");
    assert_eq!(
        get(b.addr, "dashboard.example.com", "/admin/users").await.text(),
        "admin /admin/users"
    );
    assert_eq!(get(b.addr, "dashboard.example.com", "/other").await.status, 404);
    assert_eq!(get(b.addr, "unknown.example.com", "/").await.status, 404);

    // `hosts` given twice is refused rather than one silently winning.
    s.write(
        "manifests/manifest.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  a.test: { app: skedly }\nconfig:\n  hosts:\n    b.test: { app: skedly }\n",
    );
    let (passed, text) = check(&config);
    assert!(!passed && text.contains("`hosts` is given twice"), "{text}");
}

/// Buntime's folder layout (buntime-vhosts.txt: "All configuration lives
/// in plugins/plugin-vhosts/manifest.yaml"): a plugin folder's
/// `manifest.yaml` under the manifests folder, directly or under
/// `plugins/`, is loaded as Buntime means it; a YAML file in a folder bext
/// does not read manifests from is refused, saying where bext reads them.
#[tokio::test]
async fn buntime_s_plugin_folder_layout_is_loaded_or_refused_never_ignored() {
    let s = Site::new();
    s.write(
        "skedly/index.js",
        "export default { fetch(req) { return new Response('skedly ' + (req.headers.get('x-vhost-tenant') || '-')); } }",
    );
    js_app(&s, "admin-panel", "admin");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\n\n[apps.admin-panel]\nruntime = \"js\"\nsource = \"admin-panel\"\n",
    );
    for folder in ["manifests/plugins/plugin-vhosts", "manifests/plugin-vhosts"] {
        let _ = std::fs::remove_dir_all(s.path("manifests"));
        s.write(
            &format!("{folder}/manifest.yaml"),
            fixture("buntime-vhosts.manifest.yaml"),
        );
        // The plugin's own files beside it are not manifests.
        s.write(&format!("{folder}/pnpm-lock.yaml"), "lockfileVersion: '9.0'\n");
        let (passed, text) = check(&config);
        assert!(passed, "{folder}: {text}");
        assert!(
            text.contains("pluginEntry: `dist/plugin.js` ignored"),
            "{folder}: {text}"
        );
        let b = Bext::serve(&config);
        assert_eq!(
            get(b.addr, "tenant1.sked.ly", "/").await.text(),
            "skedly tenant1",
            "{folder}"
        );
        assert_eq!(
            get(b.addr, "dashboard.example.com", "/admin/x").await.text(),
            "admin /admin/x"
        );
    }
    // A manifest where bext reads none: refused by check and by serve,
    // naming where manifests go.
    let _ = std::fs::remove_dir_all(s.path("manifests"));
    for stray in ["manifests/plugins/vhosts.yaml", "manifests/vhosts/config.yaml"] {
        s.write(stray, fixture("buntime-vhosts.manifest.yaml"));
        let (passed, text) = check(&config);
        assert!(!passed, "{stray}: {text}");
        assert!(
            text.contains(&format!(
                "{}: not read: bext reads plugin manifests from",
                s.path(stray).display()
            )) && text.contains("/plugins/<plugin>/manifest.yaml"),
            "{stray}: {text}"
        );
        let out = bext_output(&["serve", "--config", p(&config)]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains("not read: bext reads plugin manifests"),
            "{said}"
        );
        std::fs::remove_file(s.path(stray)).unwrap();
    }
}

/// A bundle's `[server] listen` is for `bext run`: deployed onto a
/// platform, the platform's `listen` serves it, and the log (a WARN) and
/// `bext check` say so, naming the bundle's file and the key.
#[tokio::test]
async fn a_deployed_bundle_s_listen_is_said_to_be_unused() {
    let s = Site::new();
    s.write("site/index.html", "site");
    s.write("bundle/public/index.html", "bundle");
    s.write(
        "bundle/bext.config.toml",
        "[server]\nlisten = \"0.0.0.0:3061\"\nstatic_dir = \"public\"\n",
    );
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.site]\nsource = \"site\"\ndomains = [\"site.test\"]\n",
    );
    let (passed, text) = check(&config);
    assert!(passed && !text.contains("server.listen"), "{text}");
    // A new app, and a version of the platform file's app.
    ok(cli(&[
        "deploy",
        p(&s.path("bundle")),
        "--app",
        "fresh",
        "--config",
        p(&config),
    ]));
    ok(cli(&[
        "deploy",
        p(&s.path("bundle")),
        "--app",
        "site",
        "--config",
        p(&config),
    ]));
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\nconfig:\n  hosts:\n    fresh.test: { app: fresh }\n",
    );
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("server.listen")).collect();
    assert_eq!(warnings.len(), 2, "one per stored bundle: {text}");
    for w in &warnings {
        assert!(
            w.starts_with("warning: ")
                && w.contains("bext.config.toml:2:10: server.listen: `0.0.0.0:3061` is not used")
                && w.contains("served on its `listen` (127.0.0.1:0)"),
            "{w}"
        );
    }
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "fresh.test", "/").await.text(), "bundle");
    // The platform file's app takes the bundle's `static_dir`, which its
    // table leaves unset (docs/deploy.md, "A bundle's bext.config.toml").
    assert_eq!(get(b.addr, "site.test", "/").await.text(), "bundle");
    // The log is read on another thread: wait for the line, not a clock.
    eventually(Duration::from_secs(10), || async {
        (b.log().lines())
            .any(|l| l.contains("WARN") && l.contains("server.listen: `0.0.0.0:3061` is not used"))
            .then_some(())
    })
    .await;
}

/// buntime-vhosts.txt's multi-tenant manifest and its custom-domain
/// `hosts` (the page's fragment, under the plugin's name as in the file it
/// goes in): the landing, each tenant's subdomain with its tenant, and a
/// tenant's own domain, all to the one app.
#[tokio::test]
async fn buntime_s_multi_tenant_and_custom_domain_manifests_route() {
    let s = Site::new();
    s.write(
        "skedly/index.js",
        "export default { fetch(req) { return new Response('skedly ' + (req.headers.get('x-vhost-tenant') || '-')); } }",
    );
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\n",
    );
    for (manifest, answers) in [
        (
            fixture("buntime-vhosts.multi-tenant.manifest.yaml"),
            [
                ("sked.ly", "skedly -"),
                ("tenant1.sked.ly", "skedly tenant1"),
                ("scheduling.acme.com", ""),
            ],
        ),
        (
            format!(
                "name: \"@buntime/plugin-vhosts\"\n{}",
                fixture("buntime-vhosts.custom-domains.manifest.yaml")
            ),
            [
                ("acme.sked.ly", "skedly acme"),
                ("scheduling.acme.com", "skedly -"),
                ("sked.ly", ""),
            ],
        ),
    ] {
        s.write("manifests/manifest.yaml", &manifest);
        let (passed, text) = check(&config);
        assert!(passed, "{text}");
        let b = Bext::serve(&config);
        for (host, answer) in answers {
            let r = get(b.addr, host, "/").await;
            match answer {
                "" => assert_eq!(r.status, 404, "{host}: {}", r.text()),
                _ => assert_eq!(r.text(), answer, "{host}"),
            }
        }
    }
}

/// `app@1.2` in a Buntime hosts entry is the newest deployed version of
/// the app that matches, served beside the current one.
#[tokio::test]
async fn a_pinned_version_is_served_from_the_registry() {
    let s = Site::new();
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"sked.ly\": { app: \"skedly@latest\" }\n  \"old.sked.ly\": { app: \"skedly@1.2\" }\n  \"none.sked.ly\": { app: \"skedly@9\" }\n",
    );
    s.write("skedly/index.html", "platform");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.skedly]\nsource = \"skedly\"\n",
    );
    let c = p(&config);
    for v in ["1.2.0", "1.2.3", "1.3.0"] {
        s.write(&format!("{v}/index.html"), format!("version {v}"));
        ok(cli(&[
            "deploy",
            p(&s.path(v)),
            "--app",
            "skedly",
            "--version",
            v,
            "--config",
            c,
        ]));
    }
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "sked.ly", "/").await.text(), "version 1.3.0");
    assert_eq!(get(b.addr, "old.sked.ly", "/").await.text(), "version 1.2.3");
    let none = get(b.addr, "none.sked.ly", "/").await;
    assert_eq!(
        (none.status, none.text().trim()),
        (502, "Virtual host app not found: skedly@9")
    );
}

/// Pins that resolve to the version the app serves (`skedly@1.3` while
/// 1.3.0 is current, as `skedly@latest`) share the app's runtime: one
/// isolate counts the requests of both; an older pin has its own.
#[tokio::test]
async fn pins_of_the_current_version_share_its_runtime() {
    let s = Site::new();
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"sked.ly\": { app: \"skedly@latest\" }\n  \"new.sked.ly\": { app: \"skedly@1.3\" }\n  \"old.sked.ly\": { app: \"skedly@1.2\" }\n",
    );
    js_app(&s, "skedly", "file");
    let config = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.skedly]\nruntime = \"js\"\nsource = \"skedly\"\nisolate = { workers = 1 }\n",
    );
    for v in ["1.2.0", "1.3.0"] {
        s.write(
            &format!("{v}/index.js"),
            format!("let n = 0; export default {{ fetch() {{ n += 1; return new Response('{v} #' + n); }} }}"),
        );
        ok(cli(&[
            "deploy",
            p(&s.path(v)),
            "--app",
            "skedly",
            "--version",
            v,
            "--config",
            p(&config),
        ]));
    }
    let b = Bext::serve(&config);
    assert_eq!(get(b.addr, "sked.ly", "/").await.text(), "1.3.0 #1");
    assert_eq!(get(b.addr, "new.sked.ly", "/").await.text(), "1.3.0 #2");
    assert_eq!(get(b.addr, "old.sked.ly", "/").await.text(), "1.2.0 #1");
    assert_eq!(get(b.addr, "sked.ly", "/").await.text(), "1.3.0 #3");
}

/// A Buntime pin that names no version (`one@`), no app (`@1.2`), an app
/// neither in the file nor deployed (`admin-panl`) or a misspelt version
/// (`one@Latest`) is refused by `bext check`, naming the host and what to
/// write instead; serve warns.
#[tokio::test]
async fn a_pin_without_a_version_or_an_app_is_refused() {
    let s = Site::new();
    s.write("one/index.html", "one");
    let config =
        s.platform("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.one]\nsource = \"one\"\n");
    for (app, says) in [
        (
            "one@",
            "`one@` has no version after `@`: write `one@latest` (its current version), `one@1.2`, or `one`",
        ),
        ("@1.2", "`@1.2` names no app before `@`"),
        ("one@1@2", "must be one word"),
        // Neither in the file nor deployed: a host that would answer 502.
        (
            "admin-panl",
            "`admin-panl` is neither an app of the platform file nor a deployed one (apps: one)",
        ),
        ("one@Latest", "`one@Latest`: write `one@latest` (lower case)"),
        ("one@9.9", "app `one` has no deployed version `9.9`"),
    ] {
        s.write(
            "manifests/vhosts.yaml",
            format!("name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"one.test\": {{ app: \"{app}\" }}\n"),
        );
        let (passed, text) = check(&config);
        assert!(!passed, "{app}: {text}");
        assert!(
            text.contains("hosts.one.test.app") && text.contains(says),
            "{app}: {text}"
        );
        // At the entry's line and column, like every other config error.
        assert!(text.contains("vhosts.yaml:3:"), "{app}: {text}");
    }
    // Serve loads it (the app may be deployed next), with a warning.
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"one.test\": { app: \"one@Latest\" }\n",
    );
    let b = Bext::serve(&config);
    let log = b.log_once_it_says("write `one@latest` (lower case)");
    assert!(
        log.contains("WARN") && log.contains("write `one@latest` (lower case)"),
        "{log}"
    );
    drop(b);
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"one.test\": { app: \"one@latest\" }\n",
    );
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
}

/// Buntime's `workerDirs` (buntime-vhosts.txt: apps "must be installed in
/// one of the global workerDirs"), in a vhosts manifest or the platform
/// file: refused with what bext uses instead, not serde's list of fields.
#[test]
fn buntime_s_worker_dirs_say_what_bext_uses_instead() {
    let s = Site::new();
    s.write("one/index.html", "one");
    let app = "[apps.one]\nsource = \"one\"\n";
    let manifest =
        "name: \"@buntime/plugin-vhosts\"\nworkerDirs: [\"./apps\"]\nhosts:\n  \"one.test\": { app: \"one\" }\n";
    s.write("manifests/vhosts.yaml", manifest);
    for (body, field) in [
        (
            format!("[platform]\nmanifests = \"manifests\"\n{app}"),
            "vhosts.yaml:2:1: workerDirs",
        ),
        (
            format!("[platform]\nworkerDirs = [\"./apps\"]\n{app}"),
            "platform.toml:2:1: platform.workerDirs",
        ),
        (
            format!("workerDirs = [\"./apps\"]\n{app}"),
            "platform.toml:1:1: workerDirs",
        ),
    ] {
        let (passed, text) = check(&s.platform(&body));
        assert!(!passed, "{body}: {text}");
        assert!(
            text.contains(field)
                && text.contains("[apps.<id>] source")
                && text.contains("bext deploy <dir> --app <id>")
                && !text.contains("expected one of"),
            "{body}: {text}"
        );
    }
}

/// deployment-modes.txt's multi-app platform.toml, as written: `hono` is
/// a js app with its entry from package.json, `express` runs the
/// package's start script (a real Express app from npm) as a process app,
/// `nextjs` runs its standalone server.js with bext serving
/// `/_next/static/*` and `public/` (immutable) and caching pages by their
/// Cache-Control.
#[tokio::test]
async fn hono_express_and_nextjs_runtimes_run_as_written() {
    let s = Site::new();
    let express = repo().join("tests/compat/express-app");
    assert!(
        express.join("node_modules/express").is_dir(),
        "the Express fixture's packages are missing: they are committed (tests/compat/express-app/node_modules, what npm ci leaves)"
    );
    // What `next build` with `output: "standalone"` leaves, reduced to the
    // parts bext relies on: the server, the hashed assets, public/.
    s.write(
        "srv/marketing/.next/standalone/server.js",
        "let n = 0; require('http').createServer((q, r) => { n++; r.setHeader('cache-control', q.url === '/fresh' ? 'no-store' : 's-maxage=60, stale-while-revalidate=600'); r.end('next page ' + q.url + ' #' + n + ' on ' + process.env.HOSTNAME); }).listen(Number(process.env.PORT), process.env.HOSTNAME);",
    );
    s.write(
        "srv/marketing/.next/static/chunks/main-abc123.js",
        "console.log('chunk')",
    );
    s.write("srv/marketing/public/robots.txt", "User-agent: *");
    s.write(
        "srv/blog/package.json",
        r#"{"name": "blog", "type": "module", "main": "./dist/index.js", "dependencies": {"hono": "^4"}}"#,
    );
    s.write(
        "srv/blog/dist/index.js",
        "export default { fetch(req) { return new Response('hono blog ' + new URL(req.url).pathname); } }",
    );
    std::os::unix::fs::symlink(&express, s.path("srv/api")).unwrap();
    let page = fixture("deployment-modes.platform.toml")
        .replace("0.0.0.0:443", "127.0.0.1:0")
        .replace("/var/lib/bext", "data")
        .replace("\"/srv/", "\"srv/");
    let config = s.platform(&page);
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    assert_eq!(
        get(b.addr, "blog.example.com", "/posts").await.text(),
        "hono blog /posts"
    );
    let express = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "api.example.com", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(
        express.text().starts_with("express on 127.0.0.1:"),
        "{}",
        express.text()
    );
    let user = get(b.addr, "api.example.com", "/users/7").await;
    assert_eq!(user.json(), serde_json::json!({"id": "7", "framework": "express"}));

    let first = eventually(Duration::from_secs(20), || async {
        let r = get(b.addr, "example.com", "/pricing").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(first.text(), "next page /pricing #1 on 127.0.0.1");
    let again = get(b.addr, "example.com", "/pricing").await;
    assert_eq!(
        (again.text().as_str(), again.header("x-cache")),
        ("next page /pricing #1 on 127.0.0.1", Some("HIT"))
    );
    let fresh = get(b.addr, "example.com", "/fresh").await;
    assert_ne!(fresh.header("x-cache"), Some("HIT"));
    let chunk = get(b.addr, "example.com", "/_next/static/chunks/main-abc123.js").await;
    assert_eq!(chunk.text(), "console.log('chunk')");
    assert_eq!(
        chunk.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let robots = get(b.addr, "example.com", "/robots.txt").await;
    assert_eq!(
        (robots.text().as_str(), robots.header("cache-control")),
        ("User-agent: *", Some("public, max-age=31536000, immutable"))
    );
    // A static path with no file is the app's, never a file elsewhere.
    assert!(
        get(b.addr, "example.com", "/_next/static/../../package.json")
            .await
            .text()
            .starts_with("next page")
    );
    assert!(
        get(b.addr, "example.com", "/_next/static/missing.js")
            .await
            .text()
            .starts_with("next page")
    );

    // A `hono` app whose package.json `main` is not there says so.
    std::fs::remove_file(s.path("srv/blog/dist/index.js")).unwrap();
    let (passed, text) = check(&config);
    assert!(
        !passed
            && text.contains("apps.blog.entry:")
            && text.contains("package.json `main` = `dist/index.js` is not a file there"),
        "{text}"
    );
    let (passed, text) = check(&s.platform(&page.replace("runtime = \"hono\"", "runtime = \"sveltekit\"")));
    assert!(
        !passed && text.contains("apps.blog.runtime: `sveltekit` is not a runtime of bext: write \"express\""),
        "{text}"
    );
}

/// `bext run .` detects the framework from package.json, runs the build
/// the framework's `build` script makes (progress on stderr), and says
/// what it detected.
#[tokio::test]
async fn bext_run_detects_builds_and_says_what_it_found() {
    let s = Site::new();
    s.write(
        "package.json",
        r#"{"name": "edge", "type": "module", "scripts": {"build": "node build.mjs"}, "dependencies": {"hono": "^4"}}"#,
    );
    s.write(
        "build.mjs",
        "import fs from 'node:fs'; fs.mkdirSync('dist', { recursive: true }); fs.writeFileSync('dist/index.js', \"export default { fetch() { return new Response('built'); } }\"); console.log('built dist/index.js');",
    );
    let b = Bext::start(&["run", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
    let log = b.log();
    assert!(log.contains("building") && log.contains("npm run build"), "{log}");
    assert!(log.contains("built dist/index.js"), "{log}");
    assert!(
        log.contains("hono (package.json depends on `hono`): js app, the build output dist/index.js"),
        "{log}"
    );
    assert_eq!(get(b.addr, "localhost", "/").await.text(), "built");
    drop(b);

    // `[hooks] pre_build` of bext.config.toml runs instead, and a failing
    // build stops `bext run` with its output.
    s.write(
        "bext.config.toml",
        "[hooks]\npre_build = \"echo building by hook; exit 3\"\n",
    );
    let out = bext_output(&["run", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("building by hook") && said.contains("failed"), "{said}");
}

/// `bext dev`, which deployment-modes.txt names for single-app mode
/// during development, is `bext run`, and says so.
#[tokio::test]
async fn bext_dev_runs_as_bext_run_and_says_so() {
    let s = Site::new();
    s.write("index.html", "dev home");
    let b = Bext::start(&["dev", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
    assert_eq!(get(b.addr, "localhost", "/").await.text(), "dev home");
    let log = b.log();
    assert!(
        log.contains("bext dev: the original bext's development command is `bext run` here"),
        "{log}"
    );
    assert!(log.contains("bext run: serving"), "{log}");
}

/// The file a fixture comes from is the page's own text (a guard against
/// a fixture edited into something the page does not say).
#[test]
fn fixtures_name_their_pages() {
    for (fixture_name, page) in [
        ("multi-app-routing.platform.toml", "multi-app-routing.txt"),
        ("deployment-modes.platform.toml", "deployment-modes.txt"),
        ("deployment-modes.bext.config.toml", "deployment-modes.txt"),
        ("deployment-modes.edge.bext.config.toml", "deployment-modes.txt"),
        ("buntime-vhosts.manifest.yaml", "buntime-vhosts.txt"),
        ("buntime-vhosts.multi-tenant.manifest.yaml", "buntime-vhosts.txt"),
        ("buntime-vhosts.custom-domains.manifest.yaml", "buntime-vhosts.txt"),
        ("deployment-modes.per-app.platform.toml", "deployment-modes.txt"),
    ] {
        let text = fixture(fixture_name);
        assert!(text.starts_with(&format!("# seeds/{page}")), "{fixture_name}");
    }
}

/// The Next.js fixture (tests/compat/nextjs-app) with its committed build
/// (`npm run build` there makes it; .ci/run checks it is current).
fn next_fixture() -> std::path::PathBuf {
    let app = repo().join("tests/compat/nextjs-app");
    assert!(
        app.join(".next/standalone/server.js").is_file(),
        "the Next.js fixture's build is missing: it is committed (tests/compat/nextjs-app/.next/standalone and .next/static)"
    );
    app
}

/// A Next.js build served through `runtime = "nextjs"`, from `app`: the
/// server renders, bext serves the hashed assets and `public/` with
/// immutable caching, and keeps the ISR page as its Cache-Control says.
/// The startup log says how the app is run (`ran_by`).
async fn serves_the_next_build(app: &Path, ran_by: &str) {
    let s = Site::new();
    let config = s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\n\n[apps.marketing]\nsource = \"{}\"\ndomains = [\"example.com\"]\nruntime = \"nextjs\"\nenv = {{ NEXT_TELEMETRY_DISABLED = \"1\" }}\n",
        app.display()
    ));
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
    let b = Bext::serve(&config);
    let home = eventually(Duration::from_secs(30), || async {
        let r = get(b.addr, "example.com", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    let log = b.log();
    assert!(log.contains(&format!("runtime `nextjs`: process ({ran_by}")), "{log}");
    let html = home.text();
    assert!(html.contains("next home rendered at"), "{html}");
    assert!(
        home.header("cache-control").is_some_and(|c| c.contains("s-maxage=60")),
        "{:?}",
        home.headers
    );
    let again = get(b.addr, "example.com", "/").await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.text(), html, "the same rendering, from the cache");

    let chunk = html
        .split("src=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .find(|src| src.starts_with("/_next/static/chunks/"))
        .expect("the page loads a chunk");
    let served = get(b.addr, "example.com", chunk).await;
    let file = std::fs::read(
        app.join(".next/static")
            .join(chunk.trim_start_matches("/_next/static/")),
    )
    .unwrap();
    assert_eq!(served.body, file);
    assert_eq!(
        served.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let robots = get(b.addr, "example.com", "/robots.txt").await;
    assert_eq!(robots.text().trim(), "User-agent: *");
    assert_eq!(
        robots.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
}

/// A real Next.js app built with `output: "standalone"`: its
/// .next/standalone/server.js runs. It runs from a copy of the committed
/// build in another folder: what Next writes (its ISR cache) stays out of
/// the checkout, and a path of the build machine it needed would show.
#[tokio::test]
async fn a_next_build_runs_through_the_nextjs_runtime() {
    let fixture = next_fixture();
    let s = Site::new();
    let app = s.path("next-app");
    for part in [".next/standalone", ".next/static", "public"] {
        copy_tree(&fixture.join(part), &app.join(part));
    }
    serves_the_next_build(&app, "the standalone .next/standalone/server.js").await;
}

/// A Next.js build without `output: "standalone"` runs by `next start`
/// (the package's own `next`, from its node_modules/.bin), from a platform
/// file and from `bext run` alike. The fixture's committed build is
/// reused, laid out as `next build` without `output` leaves it: the
/// standalone build's .next with the hashed assets, next.config.js without
/// `output`, and as node_modules the standalone one, which holds what
/// `next start` needs of `next` too (the fixture's add-next-start.js).
#[tokio::test]
async fn a_next_build_without_standalone_runs_by_next_start() {
    let fixture = next_fixture();
    let s = Site::new();
    let app = s.path("next-app");
    copy_tree(&fixture.join(".next/standalone/.next"), &app.join(".next"));
    copy_tree(&fixture.join(".next/static"), &app.join(".next/static"));
    copy_tree(&fixture.join("public"), &app.join("public"));
    std::fs::copy(fixture.join("package.json"), app.join("package.json")).unwrap();
    s.write("next-app/next.config.js", "module.exports = {};\n");
    // A copy, not a link: from the checkout, Node would find a file missing
    // there in tests/compat/nextjs-app/node_modules, which `npm ci` fills.
    copy_tree(
        &fixture.join(".next/standalone/node_modules"),
        &app.join("node_modules"),
    );
    serves_the_next_build(&app, "`next start`").await;

    // `bext run .` of the folder alone: `next` in package.json's
    // dependencies makes it a `nextjs` app, said on stderr, with bext
    // serving public/ itself (`next start` would answer max-age=0).
    let b = Bext::start_env(
        &["run", p(&app), "--listen", "127.0.0.1:0"],
        &[("NEXT_TELEMETRY_DISABLED", "1")],
    );
    let home = eventually(Duration::from_secs(30), || async {
        let r = get(b.addr, "localhost", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(home.text().contains("next home rendered at"), "{}", home.text());
    let log = b.log();
    assert!(
        log.contains(
            "nextjs (package.json depends on `next`): process app, `next start`, /_next/static/* and public/ served by bext"
        ),
        "{log}"
    );
    let robots = get(b.addr, "localhost", "/robots.txt").await;
    assert_eq!(
        robots.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    drop(b);

    // request-lifecycle.txt's `[framework] type = "nextjs"` in the app's
    // bext.config.toml, with `bext run .`: the same.
    s.write("next-app/bext.config.toml", "[framework]\ntype = \"nextjs\"\n");
    let b = Bext::start_env(
        &["run", p(&app), "--listen", "127.0.0.1:0"],
        &[("NEXT_TELEMETRY_DISABLED", "1")],
    );
    let log = b.log();
    assert!(
        log.contains(
            "nextjs (bext.config.toml): process app, `next start`, /_next/static/* and public/ served by bext"
        ),
        "{log}"
    );
    let home = eventually(Duration::from_secs(30), || async {
        let r = get(b.addr, "localhost", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(home.text().contains("next home rendered at"), "{}", home.text());
    assert_eq!(get(b.addr, "localhost", "/").await.header("x-cache"), Some("HIT"));
}

/// Copies the folder `from` to `to`. Links stay links (npm's
/// node_modules/.bin).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A duration without a unit is refused (never read as seconds: the
/// original's `preview_ttl = 7` meant days to its author), and so is a
/// `[redis] url` without a scheme (never a server silently without its
/// fleet, whether from the file or from `REDIS_URL`), and a JS heap
/// without a unit: `bext check` (the load `bext serve` does too) names
/// the key and what to write instead.
#[test]
fn a_unitless_duration_or_a_schemeless_redis_url_says_what_to_write() {
    let s = Site::new();
    s.write("site/index.html", "hi");
    let app = "[apps.site]\nsource = \"site\"\ndomains = [\"site.test\"]\n";
    for (body, key, write) in [
        (format!("[platform]\npreview_ttl = 7\n{app}"), "preview_ttl", "\"7d\""),
        (
            format!("[platform]\npreview_ttl = \"7\"\n{app}"),
            "preview_ttl",
            "\"7d\"",
        ),
        (
            format!("[platform]\n{app}[apps.site.cache]\ndefault_ttl = 60\n"),
            "default_ttl",
            "\"60s\"",
        ),
        (
            format!("[platform]\n{app}[apps.site.cache]\ndefault_ttl = \"60\"\n"),
            "default_ttl",
            "\"60s\"",
        ),
        (
            format!("[platform]\n{app}[redis]\nurl = \"redis.internal:6379\"\n"),
            "url",
            "\"redis://redis.internal:6379\"",
        ),
    ] {
        let config = s.platform(&body);
        let (passed, text) = check(&config);
        assert!(!passed, "{body}: {text}");
        assert!(text.contains(key) && text.contains(write), "{body}: {text}");
    }
    // `REDIS_URL` is the same URL, from the environment: refused as
    // `[redis] url` is, naming the variable.
    let config = s.platform(&format!("[platform]\n{app}"));
    let (passed, text) = check_env(&config, &[("REDIS_URL", "redis.internal:6379")]);
    assert!(!passed, "{text}");
    assert!(
        text.contains("REDIS_URL") && text.contains("\"redis://redis.internal:6379\""),
        "{text}"
    );
    // A JS heap as a bare number is 128 bytes: refused with the unit meant.
    s.write(
        "js/index.js",
        "export default { fetch() { return new Response('js'); } }",
    );
    let config = s.platform(&format!(
        "[platform]\n{app}[apps.js]\nruntime = \"js\"\nsource = \"js\"\nisolate = {{ memory_limit = 128 }}\n"
    ));
    let (passed, text) = check(&config);
    assert!(!passed, "{text}");
    assert!(
        text.contains("apps.js.isolate.memory_limit") && text.contains("\"128MiB\"") && !text.contains("Allocation"),
        "{text}"
    );
    // Written with their units, the same keys pass.
    let config = s.platform(&format!(
        "[platform]\npreview_ttl = \"7d\"\n{app}[apps.site.cache]\ndefault_ttl = \"60s\"\n"
    ));
    let (passed, text) = check(&config);
    assert!(passed, "{text}");
}

/// A Hono app's package.json whose `build` script makes its module
/// (dist/index.js) and its assets (dist/static/s.txt).
const HONO_SITE_PACKAGE: &str = r#"{"name": "site", "type": "module", "scripts": {"build": "mkdir -p dist/static && echo 'export default { fetch(r) { return new Response(\"site \" + new URL(r.url).pathname) } }' > dist/index.js && echo asset > dist/static/s.txt"}, "dependencies": {"hono": "4"}}"#;

/// docs/migrating.md's own bext.config.toml block runs as written: its
/// pre_build builds the app, `static_dir` is the Hono app's assets served
/// by bext beside it (the module found from the folder, never looked for
/// in `static_dir`), and paths print without `./`. Before the build,
/// `bext check DIR` says the folder is not built yet.
#[tokio::test]
async fn the_bext_config_toml_block_of_migrating_md_runs_as_written() {
    let s = Site::new();
    let block = fixture("migrating.bext.config.toml");
    assert!(block.contains("type = \"hono\"") && block.contains("static_dir = \"./dist/static\""));
    s.write("bext.config.toml", block.replace("0.0.0.0:3061", "127.0.0.1:0"));
    s.write("package.json", HONO_SITE_PACKAGE);
    let out = bext_output(&["check", p(s.dir.path())]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("is not built yet"), "{text}");
    let b = Bext::start(&["run", p(s.dir.path())]);
    let asset = get(b.addr, "localhost", "/s.txt").await;
    assert_eq!((asset.status, asset.text().trim()), (200, "asset"));
    let page = get(b.addr, "localhost", "/x").await;
    assert_eq!((page.status, page.text().as_str()), (200, "site /x"));
    let log = b.log();
    assert!(
        log.contains("hono (bext.config.toml): js app, the build output dist/index.js, static files from dist/static"),
        "{log}"
    );
    assert!(!log.contains("./dist"), "{log}");
}

/// A framework folder whose bext.config.toml has only `[server]
/// static_dir`: the framework is detected from package.json (as
/// docs/migrating.md says), never served as a static site; an Express
/// app's `static_dir` is its assets, served by bext in front of it.
#[tokio::test]
async fn a_static_dir_beside_a_framework_s_package_json_is_its_assets() {
    let s = Site::new();
    s.write("bext.config.toml", "[server]\nstatic_dir = \"dist/static\"\n");
    s.write("package.json", HONO_SITE_PACKAGE);
    let b = Bext::start(&["run", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
    let page = get(b.addr, "localhost", "/x").await;
    assert_eq!((page.status, page.text().as_str()), (200, "site /x"));
    assert_eq!(get(b.addr, "localhost", "/s.txt").await.text().trim(), "asset");
    let log = b.log();
    assert!(
        log.contains("hono (package.json depends on `hono`)") && !log.contains("a static site"),
        "{log}"
    );
    drop(b);

    let e = Site::new();
    e.write(
        "bext.config.toml",
        "[framework]\ntype = \"express\"\n[server]\nstatic_dir = \"public\"\n",
    );
    e.write(
        "package.json",
        r#"{"name": "api", "scripts": {"start": "node server.js"}, "dependencies": {"express": "4"}}"#,
    );
    e.write(
        "server.js",
        "require('http').createServer((req, res) => res.end('node ' + req.url)).listen(process.env.PORT, '127.0.0.1');",
    );
    e.write("public/p.txt", "public file");
    let b = Bext::start(&["run", p(e.dir.path()), "--listen", "127.0.0.1:0"]);
    let page = eventually(Duration::from_secs(30), || async {
        let r = get(b.addr, "localhost", "/api").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(page.text(), "node /api");
    assert_eq!(get(b.addr, "localhost", "/p.txt").await.text(), "public file");
    assert!(b.log().contains("static files from public"), "{}", b.log());
}

/// `[hooks] pre_build` making a static site's `static_dir`: before the
/// build `bext check DIR` says it is not built yet (exit 0), as `bext
/// run` builds and serves it.
#[test]
fn a_static_dir_made_by_pre_build_is_not_built_yet_for_check() {
    let s = Site::new();
    s.write(
        "bext.config.toml",
        "[hooks]\npre_build = \"mkdir -p out && echo built > out/index.html\"\n[server]\nstatic_dir = \"out\"\n",
    );
    let out = bext_output(&["check", p(s.dir.path())]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("is not built yet") && text.contains("mkdir -p out"),
        "{text}"
    );
    // Without a hook a missing folder is an error still.
    s.write("bext.config.toml", "[server]\nstatic_dir = \"out\"\n");
    let out = bext_output(&["check", p(s.dir.path())]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A `[redis]` of only `prefix` takes its URL from `REDIS_URL`; without
/// it, the error says to write `url` or set `REDIS_URL`.
#[test]
fn a_redis_prefix_alone_takes_its_url_from_redis_url() {
    let s = Site::new();
    let file = s.write("bext.config.toml", "[redis]\nprefix = \"site:\"\n");
    s.write("index.html", "home");
    let (passed, text) = check_env(&file, &[("REDIS_URL", "redis://127.0.0.1:6379")]);
    assert!(passed, "{text}");
    let (passed, text) = check(&file);
    assert!(!passed, "{text}");
    assert!(
        text.contains("redis.url: `[redis]` has no `url`: write `url = \"redis://host:6379\"`, or set the REDIS_URL environment variable"),
        "{text}"
    );
}

/// `[platform] tls_cert` is read at its key even when no app takes it: a
/// missing file fails `bext check` and serve; a valid default no app
/// takes, and `listen_tls` with no certificate at all, are warned of by
/// `bext check` as serve warns of them.
#[test]
fn a_default_certificate_is_read_at_its_key_and_listen_tls_without_one_is_warned_of() {
    use crate::tls::Ca;
    let s = Site::new();
    let leaf = Ca::new().leaf(&["example.com"]);
    s.write("cert.pem", &leaf.cert);
    s.write("key.pem", &leaf.key);
    let missing = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\ntls_cert = \"nope.pem\"\ntls_key = \"key.pem\"\n",
    );
    let said = "platform.tls_cert: ";
    let (passed, text) = check(&missing);
    assert!(
        !passed && text.contains(said) && text.contains("nope.pem: cannot read"),
        "{text}"
    );
    let served = bext_output(&["serve", "--config", p(&missing)]);
    let text = String::from_utf8_lossy(&served.stderr);
    assert!(
        !served.status.success() && text.contains("nope.pem: cannot read"),
        "{text}"
    );

    let unused = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    );
    let (passed, text) = check(&unused);
    assert!(passed, "{text}");
    assert!(
        text.contains("warning: listen_tls serves `[platform] tls_cert`") && text.contains("the file declares none"),
        "{text}"
    );
    assert!(!text.contains("no app has `tls`"), "{text}");

    s.write("site/index.html", "site");
    let none = s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n\n[apps.site]\nsource = \"site\"\ndomains = [\"example.com\"]\n",
    );
    let (passed, text) = check(&none);
    assert!(passed, "{text}");
    assert!(
        text.contains("warning: listen_tls is set but no app has `tls`: every handshake will be refused"),
        "{text}"
    );
}

/// Edge mode with nothing to share (no `[cache.isr]`, KV or rate limits)
/// says so, never "sharing cache" with no cache.
#[test]
fn edge_mode_with_nothing_to_share_says_so() {
    let s = Site::new();
    s.write("bext.config.toml", "[redis]\nurl = \"redis://127.0.0.1:1\"\n");
    s.write("index.html", "home");
    let b = Bext::start(&["run", p(s.dir.path()), "--listen", "127.0.0.1:0"]);
    let log = b.log_once_it_says("edge mode: ");
    assert!(log.contains("edge mode: nothing is shared through redis"), "{log}");
    assert!(!log.contains("sharing"), "{log}");
}
