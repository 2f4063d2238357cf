//! Streamed request bodies in outbound `fetch()`: a `ReadableStream` body
//! is sent as the connection asks for it (a body far larger than the
//! isolate's heap goes through), `request.body` passed on makes a JS
//! proxy, and a stream that fails or gives something that is not bytes,
//! or a redirect that would send it twice, fails the fetch clearly.

use crate::support::*;

const APP: &str = r#"
export default {
  async fetch(request) {
    const u = new URL(request.url);
    const to = u.searchParams.get('to');
    const post = (body) => fetch(to, { method: 'POST', body, duplex: 'half' });
    try {
      switch (u.pathname) {
        case '/generate': {
          // MiBs in 64 KiB chunks, each made when the connection asks.
          const total = Number(u.searchParams.get('mib')) * (1 << 20);
          const chunk = new Uint8Array(64 << 10).fill(120);
          let sent = 0;
          const body = new ReadableStream({
            pull(c) {
              if (sent >= total) { c.close(); return; }
              c.enqueue(chunk.slice());
              sent += chunk.length;
            },
          }, { highWaterMark: 0 });
          // As a Request object too: its body moves to the fetch (a tee
          // would keep every chunk for the branch nobody reads).
          const r = u.searchParams.has('request')
            ? await fetch(new Request(to, { method: 'POST', body, duplex: 'half' }))
            : await post(body);
          return new Response(await r.text());
        }
        case '/proxy':
          return fetch(to, { method: request.method, headers: request.headers, body: request.body });
        case '/bad-chunk':
          await post(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1])); c.enqueue({ length: 1e9 }); c.close(); } }));
          return new Response('sent');
        case '/broken':
          await post(new ReadableStream({ pull(c) { c.error(new Error('the source broke')); } }));
          return new Response('sent');
        case '/text-chunks': {
          const r = await post(new ReadableStream({ start(c) { c.enqueue('héllo '); c.enqueue(new TextEncoder().encode('wörld')); c.close(); } }));
          return new Response(await r.text());
        }
        default: return new Response('app');
      }
    } catch (e) {
      return new Response(String(e), { status: 502 });
    }
  },
};
"#;

/// The peer: echoes a body back as it gets it, and redirects.
const PEER: &str = r#"
export default {
  fetch(request) {
    const u = new URL(request.url);
    if (u.pathname === '/redirect') return Response.redirect(u.searchParams.get('to'), Number(u.searchParams.get('status')));
    return new Response(request.body, { headers: { 'x-framing': request.headers.has('content-length') ? 'length' : 'chunked' } });
  },
};
"#;

struct Setup {
    b: Bext,
    echo: Echo,
    peer: Bext,
    _sites: (Site, Site),
}

async fn setup() -> Setup {
    let echo = Echo::start().await;
    let ps = Site::new();
    ps.write("manifests/vhosts.yaml", "name: vhosts\n");
    ps.write("peer/index.js", PEER);
    let peer = Bext::serve(&ps.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.peer]\nruntime = \"js\"\nsource = \"peer\"\ndomains = [\"localhost\"]\n",
    ));
    let s = Site::new();
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    s.write("app/index.js", APP);
    let (e, p) = (echo.addr.port(), peer.addr.port());
    let b = Bext::serve(&s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n\n[apps.app]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"app.test\"]\nisolate = {{ memory_limit = \"16MiB\", fetch = {{ allow = [\"localhost:{e}\", \"localhost:{p}\"], max_response_bytes = \"1MiB\" }} }}\n\n[apps.inline]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"inline.test\"]\nisolate = {{ mode = \"inline\", memory_limit = \"16MiB\", fetch = {{ allow = [\"localhost:{e}\", \"localhost:{p}\"] }} }}\n"
    )));
    Setup {
        b,
        echo,
        peer,
        _sites: (s, ps),
    }
}

fn to(path: &str, url: &str) -> String {
    format!(
        "{path}{}to={}",
        if path.contains('?') { "&" } else { "?" },
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    )
}

/// 64 MiB made in a 16 MiB isolate reach the upstream whole: the stream is
/// read as the connection sends, never collected.
#[tokio::test]
async fn a_stream_body_larger_than_the_heap_is_sent_as_it_is_made() {
    let t = setup().await;
    let echo = format!("http://localhost:{}/in", t.echo.addr.port());
    for (app, path) in [
        ("app.test", "/generate?mib=64"),
        ("inline.test", "/generate?mib=64"),
        ("app.test", "/generate?mib=64&request"),
    ] {
        let r = get(t.b.addr, app, &to(path, &echo)).await;
        assert_eq!(r.status, 200, "{app}{path}: {}\n{}", r.text(), t.b.log());
        let j = r.json();
        assert_eq!(j["body_len"], 64 << 20, "{app}");
        assert_eq!(j["method"], "POST");
        assert_eq!(j["headers"]["transfer-encoding"], "chunked", "no length was known");
    }
    // Strings in the stream are sent as UTF-8.
    let peer = format!("http://localhost:{}/", t.peer.addr.port());
    let r = get(t.b.addr, "app.test", &to("/text-chunks", &peer)).await;
    assert_eq!((r.status, r.text()), (200, "héllo wörld".to_owned()));
}

/// `body: request.body` passes the client's body on byte for byte, as a
/// JS proxy does; the answer streams back.
#[tokio::test]
async fn request_body_passed_on_makes_a_proxy() {
    let t = setup().await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let peer = format!("http://localhost:{}/echo", t.peer.addr.port());
    let r = send(
        t.b.addr,
        request(
            "POST",
            &to("/proxy", &peer),
            &[("host", "app.test"), ("content-type", "application/octet-stream")],
            body.clone(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-framing"), Some("chunked"));
    assert!(r.body[..] == body[..], "{} bytes back", r.body.len());
    let echo = format!("http://localhost:{}/in", t.echo.addr.port());
    let r = send(
        t.b.addr,
        request(
            "PUT",
            &to("/proxy", &echo),
            &[("host", "app.test")],
            vec![b'z'; 3 << 20],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["method"].clone(), r.json()["body_len"].clone()),
        ("PUT".into(), (3 << 20).into())
    );
}

/// A chunk that is not bytes, a stream that errors and a redirect that
/// would need the body again each fail the fetch with the reason; the
/// upstream never gets a body that looks complete.
#[tokio::test]
async fn a_failing_stream_body_fails_its_fetch() {
    let t = setup().await;
    let echo = format!("http://localhost:{}/in", t.echo.addr.port());
    for (path, says) in [
        ("/bad-chunk", "a body stream chunk must be a Uint8Array"),
        ("/broken", "the source broke"),
    ] {
        let r = get(t.b.addr, "app.test", &to(path, &echo)).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert!(
            r.text().starts_with("TypeError: fetch failed") && r.text().contains(says),
            "{path}: {}",
            r.text()
        );
    }
    let peer = t.peer.addr.port();
    for status in [307, 308] {
        let hop = format!("http://localhost:{peer}/redirect?status={status}&to=http://localhost:{peer}/");
        let r = get(t.b.addr, "app.test", &to("/text-chunks", &hop)).await;
        assert_eq!(r.status, 502, "{status}: {}", r.text());
        assert!(
            r.text().contains("cannot be followed with a streamed body"),
            "{status}: {}",
            r.text()
        );
    }
    // 303 goes on as a GET without the body.
    let hop = format!("http://localhost:{peer}/redirect?status=303&to=http://localhost:{peer}/");
    let r = get(t.b.addr, "app.test", &to("/text-chunks", &hop)).await;
    assert_eq!((r.status, r.text()), (200, String::new()));
}
