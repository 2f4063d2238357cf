//! `Blob`, `File`, `FormData` and `formData()` in a real isolate: bodies
//! as a browser or curl sends them, round trips, and bodies that are not
//! forms.

use std::collections::BTreeMap;

use bext_js::{Answer, Call, IsolatePool, Kind, Limits, Spec};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

const APP: &str = r#"
export default { async fetch(req) {
  const path = new URL(req.url).pathname;
  if (path === '/echo-form') {
    // What a handler does with an upload: fields and files.
    const form = await req.formData();
    const out = {};
    for (const [k, v] of form) {
      out[k] = typeof v === 'string' ? v : { file: v.name, type: v.type, size: v.size, text: await v.text(), isFile: v instanceof File };
    }
    return Response.json(out);
  }
  if (path === '/api') {
    const out = {};
    const b = new Blob(['héllo', new Uint8Array([32]), new Blob(['world'])], { type: 'Text/Plain' });
    out.blob = [b.size, b.type, await b.text(), await b.slice(-5).text(), await b.slice(1, 3, 'x/y').text(), b.slice(1, 3, 'x/y').type];
    out.blobStream = await new Response(b.stream()).text();
    const f = new File(['abc'], 'a.txt', { type: 'text/plain', lastModified: 42 });
    out.file = [f.name, f.size, f.lastModified, f instanceof Blob, Object.prototype.toString.call(f)];
    const fd = new FormData();
    fd.append('a', '1'); fd.append('a', '2'); fd.set('b', 'x'); fd.append('blob', new Blob(['zz']));
    fd.append('up', f); fd.append('renamed', f, 'b.bin');
    out.fd = [fd.getAll('a'), fd.get('b'), fd.get('missing'), fd.has('a'), fd.get('blob').name, fd.get('renamed').name, [...fd.keys()].join(',')];
    fd.delete('a'); fd.set('b', 'y');
    out.fd2 = [...fd.keys()].join(',') + '=' + fd.get('b');
    // A FormData body is multipart; read back with formData().
    const res = new Response(fd);
    out.type = res.headers.get('content-type').split(';')[0];
    const back = await res.formData();
    out.back = [back.get('b'), back.get('up').name, back.get('up').type, await back.get('up').text(), back.get('blob').type];
    // URL-encoded bodies, and blob() of a response.
    const form = await new Response('x=1&y=a+b&x=2', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }).formData();
    out.urlencoded = [form.getAll('x'), form.get('y'), form instanceof FormData];
    const blob = await new Response('hi', { headers: { 'content-type': 'text/x-hi' } }).blob();
    out.responseBlob = [blob.type, await blob.text()];
    const fromBlob = new Response(new Blob(['b'], { type: 'image/png' }));
    out.blobBody = fromBlob.headers.get('content-type');
    for (const [name, r] of [
      ['json', new Response('{}', { headers: { 'content-type': 'application/json' } })],
      ['truncated', new Response('--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv', { headers: { 'content-type': 'multipart/form-data; boundary=b' } })],
      ['noBoundary', new Response('--b--', { headers: { 'content-type': 'multipart/form-data' } })],
    ]) {
      try { await r.formData(); out[name] = 'parsed'; } catch (e) { out[name] = e.name; }
    }
    return Response.json(out);
  }
  return new Response('?');
} };
"#;

fn pool(dir: &tempfile::TempDir) -> IsolatePool {
    let entry = dir.path().join("index.js");
    std::fs::write(&entry, APP).unwrap();
    IsolatePool::start(Spec {
        name: "forms".into(),
        entry,
        kind: Kind::App,
        env: BTreeMap::new(),
        config: serde_json::Value::Null,
        limits: Limits {
            workers: 1,
            ..Limits::default()
        },
        bindings: Default::default(),
    })
    .unwrap()
}

async fn json(pool: &IsolatePool, path: &str, content_type: &str, body: &'static [u8]) -> serde_json::Value {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    let call = Call::App {
        method: Method::POST,
        url: format!("http://f.test{path}"),
        headers,
        body: Bytes::from_static(body).into(),
    };
    match pool.call(call).await.unwrap() {
        Answer::Respond(r) => serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.body)),
        other => panic!("unexpected {other:?}"),
    }
}

/// An upload as curl sends it (`curl -F title=hi -F doc=@notes.txt`).
#[tokio::test]
async fn a_multipart_upload_reads_as_fields_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir);
    let body = b"--------------------------d74496d66958873e\r\n\
Content-Disposition: form-data; name=\"title\"\r\n\r\nh\xc3\xa9llo\r\n\
--------------------------d74496d66958873e\r\n\
Content-Disposition: form-data; name=\"doc\"; filename=\"notes.txt\"\r\n\
Content-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n\
--------------------------d74496d66958873e--\r\n";
    let out = json(
        &pool,
        "/echo-form",
        "multipart/form-data; boundary=------------------------d74496d66958873e",
        body,
    )
    .await;
    assert_eq!(
        out,
        serde_json::json!({
            "title": "héllo",
            "doc": { "file": "notes.txt", "type": "text/plain", "size": 14, "text": "line 1\r\nline 2", "isFile": true },
        })
    );
    // Not a form: a TypeError, which the handler did not catch: a 500.
    let err = pool
        .call(Call::App {
            method: Method::POST,
            url: "http://f.test/echo-form".into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x").into(),
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("TypeError: formData(): the body is untyped"),
        "{err}"
    );
}

#[tokio::test]
async fn blob_file_and_form_data() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir);
    let out = json(&pool, "/api", "text/plain", b"").await;
    assert_eq!(
        out,
        serde_json::json!({
            "blob": [12, "text/plain", "héllo world", "world", "é", "x/y"],
            "blobStream": "héllo world",
            "file": ["a.txt", 3, 42, true, "[object File]"],
            "fd": [["1", "2"], "x", null, true, "blob", "b.bin", "a,a,b,blob,up,renamed"],
            "fd2": "b,blob,up,renamed=y",
            "type": "multipart/form-data",
            "back": ["y", "a.txt", "text/plain", "abc", "application/octet-stream"],
            "urlencoded": [["1", "2"], "a b", true],
            "responseBlob": ["text/x-hi", "hi"],
            "blobBody": "image/png",
            "json": "TypeError",
            "truncated": "TypeError",
            "noBoundary": "TypeError",
        })
    );
}
