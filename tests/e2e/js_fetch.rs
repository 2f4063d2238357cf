//! Outbound `fetch()` from JS apps: a real upstream reached by an allowed
//! name and port, every spelling of a private address refused (before and
//! after DNS, on each redirect hop), other ports than an entry's refused,
//! bext's own listeners never reached, credentials not following a redirect
//! to another origin, the app's limits, and the wait for an answer not
//! counted against `cpu_limit`.

use std::net::SocketAddr;

use crate::support::*;

/// Fetches `?to=` and describes the answer as JSON, or answers 502 with the
/// error; `/redirect?to=` and `/big` are the upstream side of the tests.
const APP: &str = r#"
let last = 'none';
export default {
  async fetch(request, env, ctx) {
    const u = new URL(request.url);
    const to = u.searchParams.get('to');
    switch (u.pathname) {
      case '/redirect': return Response.redirect(to, Number(u.searchParams.get('status') || 302));
      case '/big': return new Response('x'.repeat(100000));
      case '/bg': ctx.waitUntil(fetch(to).then((r) => r.json()).then((j) => { last = j.uri; })); return new Response('started');
      case '/last': return new Response(last);
      case '/creds': {
        const r = await fetch(to, { headers: { authorization: 'Bearer a', cookie: 'c=1', 'proxy-authorization': 'Basic cA==' } });
        return new Response(await r.text());
      }
      case '/get': try {
        const r = await fetch(to, { redirect: u.searchParams.get('redirect') || 'follow' });
        return Response.json({ status: r.status, url: r.url, redirected: r.redirected, body: await r.text(), location: r.headers.get('location') });
      } catch (e) { return new Response(String(e), { status: 502 }); }
      case '/post': {
        const r = await fetch(new Request(to, { method: 'POST', body: JSON.stringify({ a: 1 }),
          headers: { 'content-type': 'application/json', 'x-echo-set': 'x-up=yes' } }));
        return Response.json({ echo: await r.json(), up: r.headers.get('x-up'), ok: r.ok });
      }
      case '/bytes': {
        const r = await fetch(to, { method: 'PUT', body: new Uint8Array([1, 2, 3]).buffer });
        return new Response(String((await r.json()).body_len));
      }
      case '/abort': {
        const c = new AbortController();
        const f = fetch(to, { signal: c.signal });
        setTimeout(() => c.abort(), 20);
        try { await f; return new Response('answered'); } catch (e) { return new Response(`${e.name}: ${e.message}`); }
      }
      case '/two': {
        const first = fetch(to).catch(() => null);
        try { await fetch(to); return new Response('both started'); }
        catch (e) { return new Response(String(e), { status: 502 }); }
        finally { void first; }
      }
      default: return new Response('app ' + u.pathname);
    }
  },
};
"#;

/// Accepts connections and never answers; holds them until dropped.
struct BlackHole {
    addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn start() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        BlackHole { addr, _task: task }
    }
}

/// What the apps fetch: an echo, a black hole, and a second bext running
/// the same app (redirects, big answers), since no bext fetches itself.
struct Upstreams {
    echo: Echo,
    hole: BlackHole,
    peer: Bext,
    _peer_site: Site,
}

impl Upstreams {
    async fn start() -> Upstreams {
        let site = Site::new();
        site.write("manifests/vhosts.yaml", "name: vhosts\n");
        site.write("app/index.js", APP);
        let cfg = site.platform(
            r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.peer]
runtime = "js"
source = "app"
domains = ["localhost"]
"#,
        );
        Upstreams {
            echo: Echo::start().await,
            hole: BlackHole::start().await,
            peer: Bext::serve(&cfg),
            _peer_site: site,
        }
    }

    /// The peer bext, by name.
    fn peer_url(&self) -> String {
        format!("http://localhost:{}", self.peer.addr.port())
    }
}

/// The apps under test; each `allow` entry names the port it opens.
fn platform(s: &Site, up: &Upstreams) -> std::path::PathBuf {
    let (echo, hole, peer) = (up.echo.addr.port(), up.hole.addr.port(), up.peer.addr.port());
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.app]
runtime = "js"
source = "app"
domains = ["app.test", "localhost"]
isolate = {{ workers = 4, fetch = {{ allow = ["localhost:{echo}", "localhost:{peer}"], max_response_bytes = "50KiB" }} }}

[apps.open]
runtime = "js"
source = "app"
domains = ["open.test"]
isolate = {{ fetch = {{ allow = ["*", "*:{echo}"] }} }}

[apps.hole]
runtime = "js"
source = "app"
domains = ["hole.test"]
isolate = {{ fetch = {{ allow = ["127.0.0.1:{hole}"], timeout = "300ms", max_concurrent = 1 }} }}

[apps.inline]
runtime = "js"
source = "app"
domains = ["inline.test"]
isolate = {{ mode = "inline", cpu_limit = "50ms", fetch = {{ allow = ["localhost:{echo}"] }} }}

[apps.short]
runtime = "js"
source = "app"
domains = ["short.test"]
isolate = {{ timeout = "300ms", fetch = {{ allow = ["127.0.0.1:{hole}"] }} }}

[apps.bg]
runtime = "js"
source = "app"
domains = ["bg.test"]
isolate = {{ workers = 1, fetch = {{ allow = ["localhost:{echo}"] }} }}

[apps.bginline]
runtime = "js"
source = "app"
domains = ["bginline.test"]
isolate = {{ mode = "inline", fetch = {{ allow = ["localhost:{echo}"] }} }}

[apps.plain]
runtime = "js"
source = "app"
domains = ["plain.test"]
isolate = {{ fetch = {{ allow = ["localhost", "127.0.0.1", "[::1]"] }} }}

[apps.closed]
runtime = "js"
source = "app"
domains = ["closed.test"]
"#
    ))
}

async fn fetch_via(b: &Bext, app: &str, path: &str, to: &str) -> Reply {
    let target = format!("{path}?to={}", urlencode(to));
    get(b.addr, app, &target).await
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn an_allowed_name_reaches_its_upstream() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let up = format!("http://localhost:{}", ups.echo.addr.port());

    let r = fetch_via(&b, "app.test", "/get", &format!("{up}/hello?x=1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["status"], 200);
    assert_eq!(j["redirected"], false);
    assert_eq!(j["url"], format!("{up}/hello?x=1"));
    let echoed: serde_json::Value = serde_json::from_str(j["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["uri"], "/hello?x=1");

    // A JSON body, request headers out, response headers back.
    let r = fetch_via(&b, "app.test", "/post", &format!("{up}/p")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["echo"]["method"], "POST");
    assert_eq!(j["echo"]["body_len"], 7);
    assert_eq!(j["echo"]["headers"]["content-type"], "application/json");
    assert_eq!((j["up"].clone(), j["ok"].clone()), ("yes".into(), true.into()));
    // An ArrayBuffer body.
    let r = fetch_via(&b, "app.test", "/bytes", &format!("{up}/b")).await;
    assert_eq!(r.text(), "3");

    // Inline isolates too; and the wait for an answer (300 ms) is not
    // JavaScript running, so it is not cut off at cpu_limit (50 ms).
    let r = fetch_via(&b, "inline.test", "/get", &format!("{up}/slow/300")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], 200);
}

/// A fetch that outlives its call (`ctx.waitUntil`) still completes: the
/// isolate hands its answer to JavaScript between calls (threads), or on
/// its next call (inline).
#[tokio::test]
async fn a_fetch_in_wait_until_completes_after_the_response() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let to = format!("http://localhost:{}/slow/100", ups.echo.addr.port());
    for app in ["bg.test", "bginline.test"] {
        let r = fetch_via(&b, app, "/bg", &to).await;
        assert_eq!((r.status, r.text()), (200, "started".to_owned()));
        eventually(std::time::Duration::from_secs(5), || async {
            (get(b.addr, app, "/last").await.text() == "/slow/100").then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn private_addresses_are_refused_in_every_spelling() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let port = ups.echo.addr.port();
    for host in [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "0.0.0.0",
        "[::]",
        "10.0.0.1",
        "169.254.169.254",
    ] {
        let r = fetch_via(&b, "app.test", "/get", &format!("http://{host}:{port}/")).await;
        assert_eq!(r.status, 502, "{host}: {}", r.text());
        assert!(
            r.text().starts_with("TypeError") && r.text().contains("private address not in isolate.fetch.allow"),
            "{host}: {}",
            r.text()
        );
    }
    // Credentials in the URL are refused whatever the host.
    let r = fetch_via(&b, "app.test", "/get", &format!("http://localhost@127.0.0.1:{port}/")).await;
    assert!(r.status == 502 && r.text().contains("credentials"), "{}", r.text());
    // A name not listed, a scheme that is not HTTP.
    let r = fetch_via(&b, "app.test", "/get", &format!("http://localhost.evil.test:{port}/")).await;
    assert!(
        r.status == 502 && r.text().contains("not in isolate.fetch.allow"),
        "{}",
        r.text()
    );
    let r = fetch_via(&b, "app.test", "/get", "file:///etc/passwd").await;
    assert!(
        r.status == 502 && r.text().contains("only http and https"),
        "{}",
        r.text()
    );

    // `*` allows any public host (`*:<port>` on that port); `localhost` is
    // a name, but it resolves to a loopback address: refused after DNS.
    let r = fetch_via(&b, "open.test", "/get", &format!("http://localhost:{port}/")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("resolves to a private address"), "{}", r.text());
    let r = fetch_via(&b, "open.test", "/get", &format!("http://127.0.0.1:{port}/")).await;
    assert!(r.status == 502 && r.text().contains("private address"), "{}", r.text());

    // No `fetch` table: nothing may be fetched.
    let r = fetch_via(&b, "closed.test", "/get", &format!("http://localhost:{port}/")).await;
    assert!(
        r.status == 502 && r.text().contains("isolate.fetch.allow is empty"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn each_redirect_hop_is_checked_again() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    // The peer bext redirects, reached as `localhost:<port>` (allowed).
    let peer = ups.peer_url();
    let redirect = |to: &str, status: u16| format!("{peer}/redirect?status={status}&to={}", urlencode(to));
    let echo_by_name = format!("http://localhost:{}/landed", ups.echo.addr.port());
    let echo_by_ip = format!("http://127.0.0.1:{}/landed", ups.echo.addr.port());

    for status in [301, 302, 303, 307, 308] {
        let r = fetch_via(&b, "app.test", "/get", &redirect(&echo_by_name, status)).await;
        assert_eq!(r.status, 200, "{status}: {}", r.text());
        let j = r.json();
        assert_eq!(
            (j["status"].as_u64(), j["redirected"].as_bool()),
            (Some(200), Some(true))
        );
        assert_eq!(j["url"], echo_by_name);
    }
    // From an allowed host to a private address it does not allow.
    let r = fetch_via(&b, "app.test", "/get", &redirect(&echo_by_ip, 302)).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("127.0.0.1 is a private address"), "{}", r.text());
    // Two hops, the second one private.
    let r = fetch_via(&b, "app.test", "/get", &redirect(&redirect(&echo_by_ip, 307), 302)).await;
    assert!(r.status == 502 && r.text().contains("private address"), "{}", r.text());

    // `manual` answers with the 3xx; `error` fails.
    let target = format!("{}&redirect=manual", urlencode(&redirect(&echo_by_ip, 302)));
    let r = get(b.addr, "app.test", &format!("/get?to={target}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["status"].as_u64(), r.json()["location"].as_str()),
        (Some(302), Some(echo_by_ip.as_str()))
    );
    let target = format!("{}&redirect=error", urlencode(&redirect(&echo_by_name, 302)));
    let r = get(b.addr, "app.test", &format!("/get?to={target}")).await;
    assert!(
        r.status == 502 && r.text().contains("redirect is 'error'"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn limits_time_size_concurrency_and_abort() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let hole_url = format!("http://127.0.0.1:{}/", ups.hole.addr.port());

    // A black hole ends at the fetch's timeout, as a rejected fetch.
    let r = fetch_via(&b, "hole.test", "/get", &hole_url).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("timed out after 300ms (isolate.fetch.timeout)"),
        "{}",
        r.text()
    );
    // The wait counts against the request's own timeout (300 ms, the
    // fetch's is 30 s): 504, and the app goes on.
    let r = fetch_via(&b, "short.test", "/get", &hole_url).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(get(b.addr, "short.test", "/fine").await.text(), "app /fine");
    // An aborted fetch rejects with the signal's reason.
    let r = fetch_via(&b, "hole.test", "/abort", &hole_url).await;
    assert!(r.status == 200 && r.text().starts_with("AbortError: "), "{}", r.text());
    // max_concurrent = 1: a second fetch while one is in flight fails at once.
    let r = fetch_via(&b, "hole.test", "/two", &hole_url).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("max_concurrent"), "{}", r.text());

    // max_response_bytes (50 KiB) against a 100 000 byte answer.
    let me = ups.peer_url();
    let r = fetch_via(&b, "app.test", "/get", &format!("{me}/big")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("larger than 51200 bytes"), "{}", r.text());
    let r = fetch_via(&b, "app.test", "/get", &format!("{me}/small")).await;
    assert_eq!(r.json()["body"], "app /small");
}

/// An `allow` entry without a port opens only the scheme's default port
/// (`localhost` is not every loopback port); with one, only that port.
#[tokio::test]
async fn an_entry_opens_its_own_port_only() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let port = ups.echo.addr.port();
    for host in [
        "localhost",
        "LOCALHOST.",
        "127.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
    ] {
        let r = fetch_via(&b, "plain.test", "/get", &format!("http://{host}:{port}/")).await;
        assert_eq!(r.status, 502, "{host}: {}", r.text());
        assert!(
            r.text().contains(&format!("port {port} is not in isolate.fetch.allow")),
            "{host}: {}",
            r.text()
        );
    }
    // `localhost:<port>` reaches that port, and no other.
    let r = fetch_via(&b, "app.test", "/get", &format!("http://localhost:{port}/in")).await;
    assert_eq!(r.json()["status"], 200, "{}", r.text());
    let r = fetch_via(
        &b,
        "app.test",
        "/get",
        &format!("http://localhost:{}/", ups.hole.addr.port()),
    )
    .await;
    assert!(
        r.status == 502 && r.text().contains("is not in isolate.fetch.allow"),
        "{}",
        r.text()
    );
}

/// A port nobody listens on now (a race with another test taking it is
/// harmless: bext then fails to start and says so).
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// bext's own listeners (main, TLS, admin: health details without a token)
/// are never fetched, even when `allow` lists them, by any name or spelling.
#[tokio::test]
async fn bext_s_own_listeners_are_never_fetched() {
    let (main, tls, admin) = (unused_port(), unused_port(), unused_port());
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:{main}"
listen_tls = "127.0.0.1:{tls}"
admin_listen = "127.0.0.1:{admin}"
manifests = "manifests"

[apps.app]
runtime = "js"
source = "app"
domains = ["app.test"]
isolate = {{ fetch = {{ allow = ["localhost:{main}", "localhost:{tls}", "localhost:{admin}", "127.0.0.1:{admin}", "0.0.0.0:{main}", "[::ffff:127.0.0.1]:{admin}"] }} }}

[apps.webhook]
runtime = "js"
source = "app"
domains = ["webhook.test"]
isolate = {{ fetch = {{ allow = ["localhost"] }} }}
"#
    ));
    let b = Bext::serve(&cfg);
    let r = get(b.admin.expect("admin listener"), "x", "/__bext/health").await;
    assert_eq!(r.status, 200, "what an app must not read: {}", r.text());
    for to in [
        format!("http://localhost:{admin}/__bext/health"),
        format!("http://127.0.0.1:{admin}/health"),
        format!("http://127.1:{admin}/health"),
        format!("http://[::ffff:127.0.0.1]:{admin}/health"),
        format!("http://localhost:{main}/"),
        format!("http://0.0.0.0:{main}/"),
        format!("https://localhost:{tls}/"),
    ] {
        let r = fetch_via(&b, "app.test", "/get", &to).await;
        assert_eq!(r.status, 502, "{to}: {}", r.text());
        assert!(r.text().contains("bext's own listeners"), "{to}: {}", r.text());
    }
    // The issue's case: `allow = ["localhost"]` (the webhook example's)
    // does not open the admin port.
    let to = format!("http://localhost:{admin}/__bext/health");
    let r = fetch_via(&b, "webhook.test", "/get", &to).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text()
            .contains(&format!("port {admin} is not in isolate.fetch.allow")),
        "{}",
        r.text()
    );
}

/// `authorization`, `cookie` and `proxy-authorization` reach the origin
/// they were set for, and none follows a redirect to another origin.
#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let ups = Upstreams::start().await;
    let s = Site::new();
    let b = Bext::serve(&platform(&s, &ups));
    let echo = format!("http://localhost:{}/creds", ups.echo.addr.port());
    let names = ["authorization", "cookie", "proxy-authorization"];

    let r = fetch_via(&b, "app.test", "/creds", &echo).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = r.json()["headers"].clone();
    for name in names {
        assert!(sent[name].is_string(), "{name} is sent to its own origin: {sent}");
    }
    for status in [301, 302, 303, 307, 308] {
        let via = format!("{}/redirect?status={status}&to={}", ups.peer_url(), urlencode(&echo));
        let r = fetch_via(&b, "app.test", "/creds", &via).await;
        assert_eq!(r.status, 200, "{status}: {}", r.text());
        let sent = r.json()["headers"].clone();
        assert_eq!(r.json()["uri"], "/creds", "{status}: the redirect was followed");
        for name in names {
            assert!(
                sent.get(name).is_none(),
                "{status}: {name} followed the redirect: {sent}"
            );
        }
    }
}

/// examples/apps/webhook-js: an HMAC-signed event is checked with
/// `crypto.subtle` and forwarded with `fetch()`; a bad signature is not.
#[tokio::test]
async fn the_webhook_example_verifies_and_forwards() {
    let echo = Echo::start().await;
    let s = Site::new();
    copy_example(&s, "apps/webhook-js", "hook");
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.hook]
runtime = "js"
source = "hook"
domains = ["hook.test"]
env = {{ SECRET = "s3cret", FORWARD_TO = "http://localhost:{port}/events" }}
isolate = {{ fetch = {{ allow = ["localhost:{port}"] }} }}
"#,
        port = echo.addr.port()
    ));
    let b = Bext::serve(&cfg);
    let body = r#"{"event":"paid"}"#;
    // HMAC-SHA256("s3cret", body), computed outside bext.
    let good = "sha256=1ddb7b2578fcae7ce93bc82d9fb3b2afc9f0b62dc4401529644d44e0d5ddc740";
    let bad = "sha256=0ddb7b2578fcae7ce93bc82d9fb3b2afc9f0b62dc4401529644d44e0d5ddc740";
    let post = |sig: &'static str| {
        let addr = b.addr;
        async move {
            let headers = [
                ("host", "hook.test"),
                ("x-signature", sig),
                ("content-type", "application/json"),
            ];
            send(addr, request("POST", "/", &headers, body)).await
        }
    };
    let r = post(good).await;
    assert_eq!(
        (r.status, r.text()),
        (202, "forwarded: 200\n".to_owned()),
        "{}",
        b.log()
    );
    let r = post(bad).await;
    assert_eq!((r.status, r.text()), (401, "bad signature\n".to_owned()));
    let r = post("sha256=zz").await;
    assert_eq!(r.status, 401);
}

#[test]
fn a_bad_allow_entry_is_reported_by_check() {
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
manifests = "manifests"

[apps.app]
runtime = "js"
source = "app"
domains = ["app.test"]
isolate = { fetch = { allow = ["*.10.0.0.1"] } }
"#,
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("isolate.fetch.allow") && err.contains("*.10.0.0.1"),
        "{err}"
    );
}
