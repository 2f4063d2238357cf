//! The Streams API in real QuickJS isolates: the WHATWG classes, the
//! encoding and compression streams, and response bodies streamed to the
//! host chunk by chunk (threads mode) or collected (inline mode).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use bext_js::{Answer, Call, IsolatePool, JsError, Kind, Limits, Mode, Reply, Spec};
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;

struct Fixture {
    _dir: tempfile::TempDir,
    pool: IsolatePool,
}

fn start(source: &str, limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("index.js");
    std::fs::write(&entry, source).unwrap();
    let spec = Spec {
        name: "streams".into(),
        entry,
        kind: Kind::App,
        env: BTreeMap::new(),
        config: serde_json::Value::Null,
        limits,
        bindings: Default::default(),
    };
    Fixture {
        pool: IsolatePool::start(spec).unwrap(),
        _dir: dir,
    }
}

fn one_worker(mode: Mode) -> Limits {
    Limits {
        mode,
        workers: 1,
        ..Limits::default()
    }
}

fn call(path: &str, body: &'static [u8]) -> Call {
    Call::App {
        method: if body.is_empty() { Method::GET } else { Method::POST },
        url: format!("http://s.test{path}"),
        headers: HeaderMap::new(),
        body: Bytes::from_static(body).into(),
    }
}

async fn reply(pool: &IsolatePool, path: &str) -> Reply {
    match pool.call(call(path, b"")).await {
        Ok(Answer::Respond(r)) => r,
        other => panic!("unexpected {other:?}"),
    }
}

/// The whole body, streamed or not.
async fn body_of(r: Reply) -> Result<Bytes, bext_js::StreamCut> {
    match r.stream {
        Some(stream) => stream.collect().await.map(|c| c.to_bytes()),
        None => Ok(r.body),
    }
}

const API: &str = r#"
const read = async (s) => { const out = []; for await (const c of s) out.push(c); return out; };
const text = async (s) => new Response(s).text();
export default { async fetch(req) {
  const out = {};
  // getReader, read, releaseLock, cancel (the source hears the reason).
  let cancelled;
  const rs = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); }, cancel(why) { cancelled = why; } });
  const reader = rs.getReader();
  out.first = (await reader.read()).value;
  out.locked = rs.locked;
  await reader.cancel('enough');
  out.cancelled = cancelled;
  // tee, async iteration, ReadableStream.from.
  const [a, b] = ReadableStream.from(['x', 'y']).tee();
  out.tee = (await read(a)).join('') + (await read(b)).join('');
  out.fromAsync = (await read(ReadableStream.from((async function* () { yield 1; yield 2; })()))).join(',');
  // pipeTo a WritableStream, pipeThrough a TransformStream.
  const seen = [];
  await ReadableStream.from(['a', 'b']).pipeThrough(new TransformStream({ transform(c, ctl) { ctl.enqueue(c.toUpperCase()); } }))
    .pipeTo(new WritableStream({ write(c) { seen.push(c); } }));
  out.piped = seen.join('');
  // Encoding streams, with a character split between chunks.
  const euro = new TextEncoder().encode('€uro');
  const parts = ReadableStream.from([euro.slice(0, 1), euro.slice(1, 2), euro.slice(2)]);
  out.decoded = (await read(parts.pipeThrough(new TextDecoderStream()))).join('|');
  out.encoded = (await read(ReadableStream.from(['é']).pipeThrough(new TextEncoderStream())))[0].length;
  // Compression: a round trip through each format, and gzip as Rust reads it.
  for (const f of ['gzip', 'deflate', 'deflate-raw']) {
    const z = ReadableStream.from([new TextEncoder().encode('hello '.repeat(100))]).pipeThrough(new CompressionStream(f));
    out[f] = (await text(z.pipeThrough(new DecompressionStream(f)))).length;
  }
  try { new CompressionStream('brotli'); } catch (e) { out.badFormat = e.name; }
  try { await text(ReadableStream.from([new Uint8Array([1, 2, 3])]).pipeThrough(new DecompressionStream('gzip'))); }
  catch (e) { out.badGzip = e.name; }
  // A request body is a stream too, and a streamed body can be cloned.
  out.requestBody = req.body ? (await read(req.body.pipeThrough(new TextDecoderStream()))).join('') : null;
  const res = new Response(ReadableStream.from(['c', 'l']));
  out.clone = (await res.clone().text()) + (await res.text());
  if (new URL(req.url).pathname === '/gzip') {
    return new Response(ReadableStream.from([new TextEncoder().encode('zipped by js')]).pipeThrough(new CompressionStream('gzip')));
  }
  return Response.json(out);
} };
"#;

async fn api_in(mode: Mode) {
    // Loading the Streams API takes ~15 ms in a release build, ~30 ms in a
    // debug one, more on a loaded machine: inline mode's `cpu_limit` must
    // not cut the first use short here.
    let limits = Limits {
        cpu_limit: Duration::from_secs(5),
        ..one_worker(mode)
    };
    let f = start(API, limits);
    let r = match f.pool.call(call("/", b"posted body")).await {
        Ok(Answer::Respond(r)) => r,
        other => panic!("unexpected {other:?}"),
    };
    let body = body_of(r).await.unwrap();
    let out: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        out,
        serde_json::json!({
            "first": 1, "locked": true, "cancelled": "enough",
            "tee": "xyxy", "fromAsync": "1,2", "piped": "AB",
            "decoded": "€uro", "encoded": 2,
            "gzip": 600, "deflate": 600, "deflate-raw": 600,
            "badFormat": "TypeError", "badGzip": "TypeError",
            "requestBody": "posted body", "clone": "clcl",
        })
    );
    let gz = body_of(reply(&f.pool, "/gzip").await).await.unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, "zipped by js");
}

#[tokio::test]
async fn the_streams_api_in_threads_mode() {
    api_in(Mode::Threads).await;
}

#[tokio::test]
async fn the_streams_api_in_inline_mode() {
    api_in(Mode::Inline).await;
}

/// The first chunk reaches the host while the stream is still open: the
/// stream closes only once the host has taken it (`pull` is called again
/// when the first chunk has left the isolate).
#[tokio::test]
async fn a_response_stream_is_sent_chunk_by_chunk() {
    let f = start(
        r#"let n = 0;
        export default { fetch() {
          return new Response(new ReadableStream({
            pull(c) { n++; if (n <= 3) c.enqueue(new TextEncoder().encode(`event ${n}\n`)); else c.close(); },
          }, { highWaterMark: 0 }), { headers: { 'content-type': 'text/event-stream' } });
        } };"#,
        one_worker(Mode::Threads),
    );
    let r = reply(&f.pool, "/").await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert!(r.body.is_empty());
    let mut stream = r.stream.expect("a streamed body");
    let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "event 1\n");
    let rest = stream.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "event 2\nevent 3\n");
}

/// A stream that never ends is cut at the call's timeout: the body ends
/// in an error (not a clean end a client would take for the whole body),
/// and the isolate answers the next call.
#[tokio::test]
async fn a_stream_past_the_timeout_is_cut() {
    let f = start(
        r#"export default { fetch(req) {
          if (req.url.endsWith('/ok')) return new Response('still here');
          let t;
          return new Response(new ReadableStream({
            start(c) { c.enqueue('tick\n'); t = setInterval(() => c.enqueue('tick\n'), 20); },
            cancel() { clearInterval(t); },
          }));
        } };"#,
        Limits {
            timeout: Duration::from_millis(500),
            ..one_worker(Mode::Threads)
        },
    );
    let r = reply(&f.pool, "/").await;
    let cut = body_of(r).await.unwrap_err();
    assert!(cut.to_string().contains("cut"), "{cut}");
    let next = body_of(reply(&f.pool, "/ok").await).await.unwrap();
    assert_eq!(next, "still here");
}

/// A client that stops reading stops the producer: `pull` is not called
/// while the chunks in flight are not taken, so the app's writes pause.
#[tokio::test]
async fn a_client_that_does_not_read_pauses_the_stream() {
    let f = start(
        r#"globalThis.pulls = 0;
        export default { fetch(req) {
          if (req.url.endsWith('/pulls')) return new Response(String(globalThis.pulls));
          return new Response(new ReadableStream({
            pull(c) { globalThis.pulls++; c.enqueue(new Uint8Array(1024)); },
          }, { highWaterMark: 0 }));
        } };"#,
        one_worker(Mode::Threads),
    );
    let r = reply(&f.pool, "/").await;
    let mut stream = r.stream.unwrap();
    // Time for a producer without backpressure to run far ahead (this
    // sleep is not what the test measures).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.frame().await.unwrap().unwrap();
    // The client reads one chunk, then leaves: the isolate is told at its
    // next send, cancels the stream and answers again.
    drop(stream);
    let pulls: usize = String::from_utf8(body_of(reply(&f.pool, "/pulls").await).await.unwrap().to_vec())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        pulls <= bext_js::CHUNKS_IN_FLIGHT + 3,
        "{pulls} chunks made for a client that read one"
    );
}

/// The writer side, as Hono's `streamSSE` uses it: a handler writing into a
/// TransformStream in a loop waits on `write` while the client does not
/// read, so its loop pauses too.
#[tokio::test]
async fn a_writer_loop_waits_for_the_client() {
    let f = start(
        r#"globalThis.written = 0;
        export default { fetch(req) {
          if (req.url.endsWith('/written')) return new Response(String(globalThis.written));
          const { readable, writable } = new TransformStream();
          const writer = writable.getWriter();
          (async () => {
            for (;;) { await writer.ready; await writer.write(new Uint8Array(1024)); globalThis.written++; }
          })().catch(() => {});
          return new Response(readable);
        } };"#,
        one_worker(Mode::Threads),
    );
    let mut stream = reply(&f.pool, "/").await.stream.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.frame().await.unwrap().unwrap();
    drop(stream);
    let written: usize = String::from_utf8(body_of(reply(&f.pool, "/written").await).await.unwrap().to_vec())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        written <= bext_js::CHUNKS_IN_FLIGHT + 4,
        "{written} writes done for a client that read one chunk"
    );
}

/// A stream that errors cuts the body; the isolate lives on.
#[tokio::test]
async fn a_stream_that_errors_cuts_the_body() {
    let f = start(
        r#"export default { fetch(req) {
          if (req.url.endsWith('/ok')) return new Response('fine');
          if (req.url.endsWith('/at-once')) return new Response(new ReadableStream({ start(c) { c.enqueue('part'); c.error(new Error('broken')); } }));
          return new Response(new ReadableStream({ start(c) { c.enqueue('part'); setTimeout(() => c.error(new Error('broken')), 5); } }));
        } };"#,
        one_worker(Mode::Threads),
    );
    // After the head: the body is cut.
    assert!(body_of(reply(&f.pool, "/").await).await.is_err());
    // Before anything could be sent: the call fails (a 500), with the error.
    match f.pool.call(call("/at-once", b"")).await {
        Err(JsError::Exception(e)) => assert!(e.contains("broken"), "{e}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(body_of(reply(&f.pool, "/ok").await).await.unwrap(), "fine");
}

/// A stream whose `pull` never settles, with nothing left to wait for,
/// is cut at once rather than holding the isolate until the timeout.
#[tokio::test]
async fn a_stream_stalled_on_nothing_is_cut() {
    let f = start(
        "export default { fetch() { return new Response(new ReadableStream({ pull() { return new Promise(() => {}); } })); } };",
        one_worker(Mode::Threads),
    );
    let r = reply(&f.pool, "/").await;
    assert!(body_of(r).await.is_err());
}
