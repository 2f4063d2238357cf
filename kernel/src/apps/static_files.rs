//! The `static` runtime: files under a document root.
//!
//! Safe by construction: the request path is percent-decoded once, `..`,
//! encoded separators, NUL bytes and hidden files (except `.well-known`)
//! are refused, and the resolved file must still lie under the root after
//! symlinks are followed. Small files are kept in memory and re-checked on
//! disk at most once a second, as nginx's `open_file_cache` does, so a hit
//! costs no system call.

use std::hash::{Hash, Hasher};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bext_plugin_abi::{Body, Ctx, EncodedHeaders, HeaderBlock, Request, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::apps::plain;

/// Files up to this size are held in memory.
const MAX_CACHED_FILE: u64 = 1 << 20;
/// Memory budget of the file cache shared by every static app.
const CACHE_BYTES: u64 = 256 << 20;
/// How often a cached file is checked against the disk.
const REVALIDATE: Duration = Duration::from_secs(1);

/// A static site rooted at one directory.
pub struct StaticSite {
    root: Arc<Path>,
    spa_fallback: bool,
    cache: Arc<FileCache>,
    epoch: std::time::Instant,
}

/// The in-memory file cache, shared by every static app of the process so
/// its byte budget holds in total however many apps there are, and apps
/// serving the same root share entries. It lives in the pipeline and is
/// handed on at reload.
pub struct FileCache(quick_cache::sync::Cache<FileKey, Arc<CachedFile>, ByteWeight>);

impl Default for FileCache {
    fn default() -> Self {
        FileCache(quick_cache::sync::Cache::with_weighter(16_384, CACHE_BYTES, ByteWeight))
    }
}

/// A cached file: the site's root and the raw request path.
#[derive(PartialEq, Eq)]
struct FileKey {
    root: Arc<Path>,
    path: Box<str>,
}

/// [`FileKey`] borrowed, so a lookup allocates nothing; hashes the same.
struct FileKeyRef<'a> {
    root: &'a Path,
    path: &'a str,
}

/// Hashes a key as bytes: `Path`'s own hash walks its components, which
/// cost more than the rest of a cached file's lookup.
fn hash_key<H: Hasher>(root: &Path, path: &str, state: &mut H) {
    let root = root.as_os_str().as_encoded_bytes();
    state.write_usize(root.len());
    state.write(root);
    state.write(path.as_bytes());
}

impl Hash for FileKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(&self.root, &self.path, state);
    }
}

impl Hash for FileKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.root, self.path, state);
    }
}

impl quick_cache::Equivalent<FileKey> for FileKeyRef<'_> {
    fn equivalent(&self, key: &FileKey) -> bool {
        self.path == &*key.path && (std::ptr::eq(self.root, &*key.root) || *self.root == *key.root)
    }
}

#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<FileKey, Arc<CachedFile>> for ByteWeight {
    fn weight(&self, key: &FileKey, val: &Arc<CachedFile>) -> u64 {
        key.path.len() as u64 + val.weight()
    }
}

/// One resolved file and its precompressed siblings.
struct CachedFile {
    file: Variant,
    br: Option<Variant>,
    gzip: Option<Variant>,
    /// Milliseconds since the site's epoch of the last disk check.
    checked: AtomicU64,
}

impl CachedFile {
    fn weight(&self) -> u64 {
        // The bytes, and about 1 KiB for the path and the header blocks.
        let w = |v: &Variant| v.file.bytes.as_ref().map_or(0, |b| b.len() as u64) + 1024;
        w(&self.file) + self.br.as_ref().map_or(0, w) + self.gzip.as_ref().map_or(0, w)
    }
}

/// A file as read from disk.
struct OnDisk {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
    /// The content, for files up to [`MAX_CACHED_FILE`].
    bytes: Option<Bytes>,
}

/// A file as served: the file itself or a precompressed sibling, with its
/// answers' headers.
struct Variant {
    file: OnDisk,
    etag: HeaderValue,
    /// The headers of a 200 or 206 answer but its framing: `content-type`,
    /// `etag`, `last-modified`, `accept-ranges` or `content-encoding`, and
    /// `vary` when the file has siblings. Written out once per cached file:
    /// bext's HTTP/1 writer copies them as they are, where inserting them
    /// into the response's map cost a hash and a probe each, every request
    /// (bench/RESULTS.md, static22).
    headers: HeaderBlock,
    /// A 304's: the same but `content-type`.
    not_modified: HeaderBlock,
}

impl Variant {
    /// `file` as served with `content_type` (the original's, for a
    /// sibling), in `encoding` (a sibling's) or as it is, varying on
    /// `Accept-Encoding` when the file has siblings.
    fn new(file: OnDisk, content_type: &HeaderValue, encoding: Option<&'static str>, vary: bool) -> Option<Variant> {
        // The modification time to the nanosecond and the size (Caddy's
        // ETag): a rewrite of the same size within one second is a new
        // tag, as it is a new file to `unchanged` (seconds alone, nginx's
        // tag, kept the old one and a client holding it got 304s).
        let mtime = file.modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = HeaderValue::from_str(&format!("\"{:x}-{:x}\"", mtime.as_nanos(), file.len)).ok()?;
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(file.modified)).ok()?;
        let mut pairs = vec![
            (header::CONTENT_TYPE, content_type.clone()),
            (header::ETAG, etag.clone()),
            (header::LAST_MODIFIED, last_modified),
            match encoding {
                Some(enc) => (header::CONTENT_ENCODING, HeaderValue::from_static(enc)),
                None => (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
            },
        ];
        if vary {
            pairs.push((header::VARY, HeaderValue::from_static("accept-encoding")));
        }
        Some(Variant {
            headers: HeaderBlock::new(&pairs).ok()?,
            not_modified: HeaderBlock::new(&pairs[1..]).ok()?,
            file,
            etag,
        })
    }
}

enum Resolved {
    File(Arc<CachedFile>),
    Redirect(String),
    NotFound,
    BadRequest,
}

impl StaticSite {
    /// Serves `root`, caching files in `cache`; fails if `root` is not a
    /// readable directory.
    pub fn new(root: &Path, spa_fallback: bool, cache: Arc<FileCache>) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::other(format!("{} is not a directory", root.display())));
        }
        Ok(StaticSite {
            root: root.into(),
            spa_fallback,
            cache,
            epoch: std::time::Instant::now(),
        })
    }

    fn key<'a>(&'a self, path: &'a str) -> FileKeyRef<'a> {
        FileKeyRef { root: &self.root, path }
    }

    /// Answers one request; the request's header map becomes the
    /// response's (see [`reuse_headers`]).
    pub async fn serve(&self, req: Request, cx: &Ctx) -> Response {
        let mut added = EncodedHeaders::default();
        let mut res = self.answer(req, cx, &mut added).await;
        added.move_into(res.headers_mut());
        res
    }

    /// [`serve`](Self::serve), with a file's headers added next to the
    /// response's map in `added` (see [`Variant::headers`]) when there is
    /// room: for a caller that moves them into the map wherever one is
    /// needed (the pipeline, with `Ctx::encoded_headers`).
    pub async fn answer(&self, mut req: Request, cx: &Ctx, added: &mut EncodedHeaders) -> Response {
        match self.answer_now(&mut req, cx, added) {
            Now::Ready(res) => res,
            Now::FromDisk(file) => Box::pin(file.open()).await,
        }
    }

    /// [`answer`](Self::answer) without a future: what it answers at once
    /// (a file held in memory, a redirect, an error), or the file to open
    /// first. The request's header map becomes the response's; the rest
    /// of the request is left to the caller. The pipeline's static path
    /// calls this: every `async` level on the way to a file held in memory
    /// held the request by value and was moved into its parent's future,
    /// a copy of each level's whole state a request (bench/RESULTS.md,
    /// kern22d).
    pub fn answer_now(&self, req: &mut Request, cx: &Ctx, added: &mut EncodedHeaders) -> Now {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Now::Ready(res);
        }
        let path = req.uri().path();
        // Set when the answer was chosen by `Accept` (the SPA fallback):
        // caches must then key on it (`Vary: Accept`), or one client's
        // `Accept: application/json` 404 is served to every browser.
        let mut by_accept = false;
        let file = match self.resolve(path, cx) {
            Resolved::File(f) => f,
            Resolved::Redirect(to) => {
                let mut res = plain(StatusCode::MOVED_PERMANENTLY, "");
                if let Ok(v) = HeaderValue::from_str(&to) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                return Now::Ready(res);
            }
            Resolved::BadRequest => return Now::Ready(plain(StatusCode::BAD_REQUEST, "bad request path\n")),
            Resolved::NotFound => match self.spa_fallback.then(|| self.resolve("/index.html", cx)) {
                Some(Resolved::File(f)) if accepts_html(req.headers()) => {
                    by_accept = true;
                    f
                }
                Some(Resolved::File(_)) => {
                    let mut res = plain(StatusCode::NOT_FOUND, "not found\n");
                    add_vary(res.headers_mut(), "accept");
                    return Now::Ready(res);
                }
                _ => return Now::Ready(plain(StatusCode::NOT_FOUND, "not found\n")),
            },
        };
        let head = method == Method::HEAD;
        // `Vary` is merged in the map below: the file's headers go there.
        let added = (!by_accept).then_some(added);
        let mut now = respond(&file, std::mem::take(req.headers_mut()), head, added);
        if by_accept {
            let res = match &mut now {
                Now::Ready(res) => res,
                Now::FromDisk(file) => &mut file.res,
            };
            add_vary(res.headers_mut(), "accept");
        }
        now
    }

    /// Whether `path` names a file of the site (a folder's index.html
    /// included): what a runtime in front of another serves itself.
    pub fn has_file(&self, path: &str, cx: &Ctx) -> bool {
        matches!(self.resolve(path, cx), Resolved::File(_))
    }

    /// Milliseconds since the site's epoch at the request's arrival: the
    /// clock read once per request already, not again.
    fn now_ms(&self, cx: &Ctx) -> u64 {
        cx.received_at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn resolve(&self, raw_path: &str, cx: &Ctx) -> Resolved {
        if let Some(hit) = self.cache.0.get(&self.key(raw_path)) {
            let now = self.now_ms(cx);
            let checked = hit.checked.load(Ordering::Relaxed);
            if now.saturating_sub(checked) < REVALIDATE.as_millis() as u64 {
                return Resolved::File(hit);
            }
            if unchanged(&hit) {
                hit.checked.store(now, Ordering::Relaxed);
                return Resolved::File(hit);
            }
            self.cache.0.remove(&self.key(raw_path));
        }
        let Some(rel) = sanitise(raw_path) else {
            return Resolved::BadRequest;
        };
        let mut full = self.root.join(&rel);
        let meta = match std::fs::metadata(&full) {
            Ok(m) => m,
            Err(_) => return Resolved::NotFound,
        };
        if meta.is_dir() {
            if !raw_path.ends_with('/') {
                let base = cx.base.as_deref().unwrap_or("/").trim_end_matches('/');
                return Resolved::Redirect(format!("{base}{raw_path}/"));
            }
            full.push("index.html");
        } else if names_a_directory(raw_path) {
            // `/dump.sql/` is not the file `/dump.sql` (nginx answers 404
            // too): served as the file, it would pass every rule that
            // judges a path by its last segment (the WAF's backup and
            // restricted extensions).
            return Resolved::NotFound;
        }
        // Follow symlinks, then insist on staying under the root.
        let Ok(real) = full.canonicalize() else {
            return Resolved::NotFound;
        };
        if !real.starts_with(&self.root) {
            return Resolved::NotFound;
        }
        let Some(file) = read_file(&real) else {
            return Resolved::NotFound;
        };
        let sibling = |ext: &str| {
            let mut p = real.clone().into_os_string();
            p.push(ext);
            let p = PathBuf::from(p);
            let real = p.canonicalize().ok().filter(|r| r.starts_with(&self.root))?;
            read_file(&real)
        };
        let (br, gzip) = (sibling(".br"), sibling(".gz"));
        let vary = br.is_some() || gzip.is_some();
        let media = content_type(&real);
        let Some(file) = Variant::new(file, &media, None, vary) else {
            return Resolved::NotFound;
        };
        let entry = Arc::new(CachedFile {
            br: br.and_then(|f| Variant::new(f, &media, Some("br"), vary)),
            gzip: gzip.and_then(|f| Variant::new(f, &media, Some("gzip"), vary)),
            file,
            checked: AtomicU64::new(self.now_ms(cx)),
        });
        let key = FileKey {
            root: self.root.clone(),
            path: raw_path.into(),
        };
        self.cache.0.insert(key, entry.clone());
        Resolved::File(entry)
    }
}

/// Whether the file on disk is still the one cached.
fn unchanged(f: &CachedFile) -> bool {
    let same = |v: &Variant| {
        let f = &v.file;
        std::fs::metadata(&f.path).is_ok_and(|m| m.len() == f.len && m.modified().ok() == Some(f.modified))
    };
    same(&f.file) && f.br.as_ref().is_none_or(same) && f.gzip.as_ref().is_none_or(same)
}

fn read_file(path: &Path) -> Option<OnDisk> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let len = meta.len();
    let bytes = if len <= MAX_CACHED_FILE {
        let data = std::fs::read(path).ok()?;
        if data.len() as u64 != len {
            return None; // changed while reading; the next request retries
        }
        Some(Bytes::from(data))
    } else {
        None
    };
    Some(OnDisk {
        path: path.to_owned(),
        len,
        modified,
        bytes,
    })
}

fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == "text"
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg+xml" | "manifest+json"
        );
    let value = if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Whether a path's last segment says "directory": empty (a trailing
/// `/`) or `.` in any spelling, which [`sanitise`] skips.
fn names_a_directory(raw: &str) -> bool {
    let last = raw.rsplit('/').next().unwrap_or_default();
    last.is_empty() || last == "." || last.eq_ignore_ascii_case("%2e")
}

/// Decodes a request path into a relative file path, refusing anything that
/// could leave the root: `..`, encoded `/` or `\`, NUL, hidden segments
/// (other than `.well-known`), and invalid UTF-8.
fn sanitise(raw: &str) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for segment in raw.split('/') {
        if segment.is_empty() {
            continue;
        }
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
        if decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        if decoded == "." {
            continue;
        }
        if decoded == ".." || (decoded.starts_with('.') && decoded != ".well-known") {
            return None;
        }
        rel.push(&*decoded);
    }
    Some(rel)
}

/// Whether the client takes HTML (the SPA fallback's index): no `Accept`,
/// or `text/html`, `text/*` or `*/*` with q > 0 (media types are
/// case-insensitive).
/// Every request header a static site reads: `Accept` (the SPA
/// fallback), `Accept-Encoding`, `Range` and the conditionals. The kernel
/// leaves the headers plugins set for apps ([`Ctx::set_request_headers`])
/// out of a static site's request unless one is named here, so a header
/// read in this file must be listed.
pub(crate) const READS: [HeaderName; 8] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
];

fn accepts_html(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut it = range.split(';');
            let media = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| v.trim().parse::<f32>().ok())?
                })
                .unwrap_or(1.0);
            q > 0.0
                && ["text/html", "text/*", "*/*"]
                    .iter()
                    .any(|m| media.eq_ignore_ascii_case(m))
        })
}

/// Adds `name` to the response's `Vary` (merged into one header with
/// what is there, e.g. `accept-encoding`; never twice).
fn add_vary(headers: &mut HeaderMap, name: &str) {
    let mut names: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.iter().any(|n| n == "*" || n.eq_ignore_ascii_case(name)) {
        return;
    }
    names.push(name.to_owned());
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(header::VARY, v);
    }
}

/// Picks the encoding to send: `br`, then `gzip`, when the client accepts
/// it (q > 0) and a sibling file exists; `true` for a sibling.
fn pick_encoding<'f>(f: &'f CachedFile, headers: &HeaderMap) -> (&'f Variant, bool) {
    if f.br.is_none() && f.gzip.is_none() {
        return (&f.file, false);
    }
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |name: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            coding.eq_ignore_ascii_case(name) && q > 0.0
        })
    };
    if let Some(br) = &f.br
        && accepts("br")
    {
        return (br, true);
    }
    if let Some(gz) = &f.gzip
        && accepts("gzip")
    {
        return (gz, true);
    }
    (&f.file, false)
}

/// The request's header map, emptied, to hold the response's headers. The
/// parser has just written it, so it is in cache, and no map is allocated:
/// a fresh one is cold memory (the allocator hands out a page's blocks in
/// turn), and every header a response plugin adds is a miss on it. hyper
/// parses the next request into the written response's map, so a
/// keep-alive connection keeps one map.
fn reuse_headers(mut map: HeaderMap) -> HeaderMap {
    map.clear();
    // Room for what response plugins add (CORS, rate limit and security
    // headers) without growing the map; a no-op on a reused map.
    map.reserve(16);
    map
}

/// The answer for `f`; its headers go next to the map in `added` when
/// given and there is room, else into the map.
fn respond(f: &CachedFile, req_headers: HeaderMap, head: bool, added: Option<&mut EncodedHeaders>) -> Now {
    let req = &req_headers;
    let (v, encoded) = pick_encoding(f, req);
    // Most requests are neither conditional nor ranged: one look over the
    // names (a browser sends about ten) rather than a lookup for each.
    let asks = req.keys().any(|k| {
        k == header::IF_NONE_MATCH
            || k == header::IF_MODIFIED_SINCE
            || k == header::RANGE
            || k == header::IF_MATCH
            || k == header::IF_UNMODIFIED_SINCE
    });
    if asks && precondition_fails(v, req) {
        return Now::Ready(plain(StatusCode::PRECONDITION_FAILED, ""));
    }
    let not_modified = asks && not_modified(v, req);
    let range = match asks.then(|| req.get(header::RANGE)).flatten() {
        Some(r) if !encoded && !not_modified && if_range_holds(v, req) => {
            parse_range(r.to_str().unwrap_or(""), v.file.len)
        }
        _ => RangeSpec::Full,
    };
    let mut headers = reuse_headers(req_headers);
    let len = v.file.len;
    if not_modified {
        put(&v.not_modified, &mut headers, added);
        let mut res = plain(StatusCode::NOT_MODIFIED, "");
        *res.headers_mut() = headers;
        return Now::Ready(res);
    }
    let (status, start, len) = match range {
        RangeSpec::Full => (StatusCode::OK, 0, len),
        RangeSpec::Part(start, end) => {
            let cr = format!("bytes {start}-{end}/{len}");
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("ascii"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeSpec::Unsatisfiable => {
            let mut res = plain(StatusCode::RANGE_NOT_SATISFIABLE, "");
            let cr = format!("bytes */{len}");
            res.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("ascii"));
            return Now::Ready(res);
        }
    };
    put(&v.headers, &mut headers, added);
    // An in-memory body tells every writer its length itself; a HEAD
    // answer (no body) and a file streamed from disk say it here.
    if head || v.file.bytes.is_none() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let body = match &v.file.bytes {
        _ if head => Body::empty(),
        Some(bytes) => Body::full(bytes.slice(start as usize..(start + len) as usize)),
        None => Body::empty(),
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    if head || v.file.bytes.is_some() {
        return Now::Ready(res);
    }
    Now::FromDisk(Box::new(FromDisk {
        path: v.file.path.clone(),
        start,
        len,
        res,
    }))
}

/// A static site's answer: ready, or a file to open and stream from disk
/// first ([`FromDisk::open`]).
pub enum Now {
    /// The whole answer.
    Ready(Response),
    /// A file too large to hold in memory (boxed: rare, and its future
    /// stays out of the callers' while they wait for a file held in
    /// memory).
    FromDisk(Box<FromDisk>),
}

/// A file streamed from disk: its answer but for the body.
pub struct FromDisk {
    path: PathBuf,
    start: u64,
    len: u64,
    res: Response,
}

impl FromDisk {
    /// Opens the file and streams its part as the body (a 404 when it
    /// cannot be opened any more).
    pub async fn open(self: Box<Self>) -> Response {
        let FromDisk {
            path,
            start,
            len,
            mut res,
        } = *self;
        match open_stream(&path, start, len).await {
            Ok(body) => {
                *res.body_mut() = body;
                res
            }
            Err(_) => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// Adds `block` next to the map (`added`), or into it.
fn put(block: &HeaderBlock, headers: &mut HeaderMap, added: Option<&mut EncodedHeaders>) {
    if added.is_some_and(|a| a.push_block(block).is_ok()) {
        return;
    }
    for (name, value) in block.pairs() {
        headers.append(name, value.clone());
    }
}

async fn open_stream(path: &Path, start: u64, len: u64) -> std::io::Result<Body> {
    let mut file = tokio::fs::File::open(path).await?;
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
    Ok(Body::stream(http_body_util::StreamBody::new(
        futures_util::StreamExt::map(stream, |chunk| chunk.map(http_body::Frame::data)),
    )))
}

/// `If-Match` and `If-Unmodified-Since` (RFC 9110 §13.1.1, §13.1.4,
/// evaluated first as §13.2.2 orders): a client that must act on the
/// version it holds (a resumed download, an edit) gets 412 when the file
/// changed, never another version. `If-Match` compares strongly, so a
/// weak tag never matches; `*` matches any file.
fn precondition_fails(v: &Variant, req: &HeaderMap) -> bool {
    // One list, however many lines it came in.
    let mut lines = req.get_all(header::IF_MATCH).iter().peekable();
    if lines.peek().is_some() {
        let tag = v.etag.as_bytes();
        return !lines.any(|line| {
            line.to_str().is_ok_and(|line| {
                line.split(',').any(|t| {
                    let t = t.trim();
                    t == "*" || t.as_bytes() == tag
                })
            })
        });
    }
    if let Some(ius) = req.get(header::IF_UNMODIFIED_SINCE).and_then(|h| h.to_str().ok())
        && let Ok(since) = httpdate::parse_http_date(ius)
    {
        return whole_seconds(v.file.modified) > whole_seconds(since);
    }
    false
}

/// A time as HTTP dates carry it: whole seconds (a file's modification
/// time has nanoseconds, which a date never matches).
fn whole_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn not_modified(v: &Variant, req: &HeaderMap) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok()) {
        let tag = v.etag.to_str().unwrap_or("");
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag
        });
    }
    if let Some(ims) = req.get(header::IF_MODIFIED_SINCE).and_then(|h| h.to_str().ok())
        && let Ok(since) = httpdate::parse_http_date(ims)
    {
        return whole_seconds(v.file.modified) <= whole_seconds(since);
    }
    false
}

fn if_range_holds(v: &Variant, req: &HeaderMap) -> bool {
    match req.get(header::IF_RANGE).and_then(|h| h.to_str().ok()) {
        None => true,
        Some(r) if r.starts_with('"') => r == v.etag,
        Some(r) => httpdate::parse_http_date(r)
            .is_ok_and(|d| d == v.file.modified || { whole_seconds(d) == whole_seconds(v.file.modified) }),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges or a malformed header get the whole
/// file, as RFC 9110 allows.
fn parse_range(h: &str, len: u64) -> RangeSpec {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeSpec::Full,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeSpec::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => None,
        },
        (false, _) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), _) if b.is_empty() => Some((s, len.saturating_sub(1))),
            (Ok(s), Ok(e)) if e >= s => Some((s, e.min(len.saturating_sub(1)))),
            _ => None,
        },
    };
    match parsed {
        None => RangeSpec::Full,
        Some((s, _)) if s >= len => RangeSpec::Unsatisfiable,
        Some((s, e)) => RangeSpec::Part(s, e),
    }
}

/// [`sanitise`] for the crate's randomised tests.
#[cfg(test)]
pub(crate) fn sanitise_for_tests(raw: &str) -> Option<PathBuf> {
    sanitise(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_key_finds_its_owned_entry_and_only_it() {
        use std::hash::BuildHasher;
        let root: Arc<Path> = Path::new("/srv/site").into();
        let owned = FileKey {
            root: root.clone(),
            path: "/a.css".into(),
        };
        let state = std::hash::RandomState::new();
        let borrowed = FileKeyRef {
            root: &root,
            path: "/a.css",
        };
        assert_eq!(state.hash_one(&owned), state.hash_one(&borrowed));
        let cache = FileCache::default();
        let file = |path: &str| {
            let on_disk = OnDisk {
                path: path.into(),
                len: 0,
                modified: SystemTime::UNIX_EPOCH,
                bytes: None,
            };
            Variant::new(on_disk, &HeaderValue::from_static("text/css"), None, false).unwrap()
        };
        let entry = Arc::new(CachedFile {
            file: file("/srv/site/a.css"),
            br: None,
            gzip: None,
            checked: AtomicU64::new(0),
        });
        cache.0.insert(owned, entry);
        assert!(cache.0.get(&borrowed).is_some());
        // Another root with the same bytes split differently is another key.
        let other: Arc<Path> = Path::new("/srv/sit").into();
        assert!(
            cache
                .0
                .get(&FileKeyRef {
                    root: &other,
                    path: "e/a.css"
                })
                .is_none()
        );
        assert!(
            cache
                .0
                .get(&FileKeyRef {
                    root: &root,
                    path: "/b.css"
                })
                .is_none()
        );
    }

    #[test]
    fn sanitise_refuses_escapes() {
        assert_eq!(sanitise("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(sanitise("/a/./b"), Some(PathBuf::from("a/b")));
        assert_eq!(sanitise("/.well-known/x"), Some(PathBuf::from(".well-known/x")));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/%2E%2E/x",
            "/a%2fb",
            "/a%5cb",
            "/a%00b",
            "/.env",
            "/.git/config",
            "/%ff",
        ] {
            assert_eq!(sanitise(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn apps_on_one_root_share_one_bounded_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "shared").unwrap();
        let cache = Arc::new(FileCache::default());
        let one = StaticSite::new(dir.path(), false, cache.clone()).unwrap();
        let two = StaticSite::new(dir.path(), false, cache.clone()).unwrap();
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        for site in [&one, &two, &one] {
            let mut req = Request::new(Body::empty());
            *req.uri_mut() = "/a.txt".parse().unwrap();
            let res = site.serve(req, &cx).await;
            assert_eq!(res.body().as_bytes(), Some(&b"shared"[..]));
        }
        assert_eq!(cache.0.len(), 1, "both apps use the same entry");
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("a.txt"), "other root").unwrap();
        let three = StaticSite::new(other.path(), false, cache.clone()).unwrap();
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = "/a.txt".parse().unwrap();
        assert_eq!(three.serve(req, &cx).await.body().as_bytes(), Some(&b"other root"[..]));
        assert_eq!(cache.0.len(), 2, "another root never shares an entry");
    }

    #[tokio::test]
    async fn a_files_headers_go_next_to_the_map_and_serve_puts_them_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
        let site = StaticSite::new(dir.path(), false, Arc::new(FileCache::default())).unwrap();
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        let request = |method: Method, headers: &[(&'static str, &str)]| {
            let mut req = Request::new(Body::empty());
            *req.method_mut() = method;
            *req.uri_mut() = "/a.txt".parse().unwrap();
            for (k, v) in headers {
                req.headers_mut().append(*k, HeaderValue::from_str(v).unwrap());
            }
            req
        };
        let names = |block: &HeaderBlock| {
            let names: Vec<String> = block.pairs().iter().map(|(n, _)| n.to_string()).collect();
            names
        };
        let mut added = EncodedHeaders::default();
        let get = site.answer(request(Method::GET, &[]), &cx, &mut added).await;
        assert!(get.headers().is_empty(), "{:?}", get.headers());
        let blocks: Vec<_> = added.blocks().collect();
        assert_eq!(
            names(blocks[0]),
            ["content-type", "etag", "last-modified", "accept-ranges"]
        );
        assert_eq!(get.body().as_bytes(), Some(&b"hello"[..]), "its length is the body's");
        let etag = blocks[0].pairs()[1].1.to_str().unwrap().to_owned();

        // A 304 has the same but its type; HEAD says its length in the map.
        let mut added = EncodedHeaders::default();
        let res = site
            .answer(request(Method::GET, &[("if-none-match", &etag)]), &cx, &mut added)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            names(added.blocks().next().unwrap()),
            ["etag", "last-modified", "accept-ranges"]
        );
        let mut added = EncodedHeaders::default();
        let head = site.answer(request(Method::HEAD, &[]), &cx, &mut added).await;
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(added.blocks().count(), 1);

        // `serve` answers with every header in the map, as before.
        let res = site.serve(request(Method::GET, &[("range", "bytes=1-2")]), &cx).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        let h = res.headers();
        assert_eq!(h[header::CONTENT_RANGE], "bytes 1-2/5");
        assert_eq!(h[header::ETAG], etag.as_str());
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[tokio::test]
    async fn the_response_keeps_no_request_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        let site = StaticSite::new(dir.path(), false, Arc::new(FileCache::default())).unwrap();
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        for (name, value) in [("range", "bytes=0-0"), ("if-none-match", "*"), ("accept", "*/*")] {
            let mut req = Request::new(Body::empty());
            *req.uri_mut() = "/a.txt".parse().unwrap();
            let h = req.headers_mut();
            h.insert("cookie", HeaderValue::from_static("session=secret"));
            h.insert("authorization", HeaderValue::from_static("Bearer secret"));
            h.insert(name, HeaderValue::from_static(value));
            let res = site.serve(req, &cx).await;
            let names: Vec<_> = res.headers().keys().map(|k| k.as_str()).collect();
            for leaked in ["cookie", "authorization", "range", "if-none-match", "accept"] {
                assert!(!names.contains(&leaked), "{name}: {names:?}");
            }
            assert!(
                names.contains(&"etag"),
                "{name}: the response's own headers are there: {names:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_answer_chosen_by_accept_varies_on_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>spa</h1>").unwrap();
        std::fs::write(dir.path().join("index.html.gz"), "GZ").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        let site = StaticSite::new(dir.path(), true, Arc::new(FileCache::default())).unwrap();
        let cx = Ctx::new(bext_plugin_abi::RequestId(1), "127.0.0.1:1".parse().unwrap());
        let serve = |path: &str, headers: &[(&'static str, &'static str)]| {
            let mut req = Request::new(Body::empty());
            *req.uri_mut() = path.parse().unwrap();
            for (k, v) in headers {
                req.headers_mut().append(*k, HeaderValue::from_static(v));
            }
            site.serve(req, &cx)
        };
        let vary = |res: &Response| {
            let all: Vec<_> = res.headers().get_all(header::VARY).iter().collect();
            assert!(all.len() <= 1, "one Vary header: {all:?}");
            all.first().map(|v| v.to_str().unwrap().to_owned())
        };
        let index = serve("/app/42", &[("accept", "text/html")]).await;
        assert_eq!(
            (index.status(), vary(&index).as_deref()),
            (StatusCode::OK, Some("accept-encoding, accept")),
            "index.html has a .gz sibling: both are named"
        );
        let json = serve("/app/42", &[("accept", "application/json")]).await;
        assert_eq!(
            (json.status(), vary(&json).as_deref()),
            (StatusCode::NOT_FOUND, Some("accept"))
        );
        let gz = serve("/app/42", &[("accept", "*/*"), ("accept-encoding", "gzip")]).await;
        assert_eq!(vary(&gz).as_deref(), Some("accept-encoding, accept"), "merged");
        let file = serve("/a.txt", &[("accept", "application/json")]).await;
        assert_eq!(vary(&file), None, "a file is a file whatever the Accept");
        for (accept, html) in [
            ("TEXT/HTML", true),
            ("application/json, */*;q=0.1", true),
            ("text/*", true),
            ("text/html;q=0", false),
            ("text/htmlx", false),
            ("application/json", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(accepts_html(&h), html, "{accept}");
        }
        assert!(accepts_html(&HeaderMap::new()), "no Accept: anything goes");
    }

    #[test]
    fn ranges_never_panic_and_stay_in_bounds() {
        for h in [
            "bytes=",
            "bytes=-",
            "bytes=--1",
            "bytes=18446744073709551615-",
            "bytes=-18446744073709551615",
            "bytes=0-18446744073709551615",
            "bytes= 1 - 2 ",
            "bytes=a-b",
        ] {
            for len in [0u64, 1, 10] {
                if let RangeSpec::Part(s, e) = parse_range(h, len) {
                    assert!(s <= e && e < len, "{h} {len} -> {s}-{e}");
                }
            }
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), RangeSpec::Part(0, 4));
        assert_eq!(parse_range("bytes=5-", 10), RangeSpec::Part(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), RangeSpec::Part(7, 9));
        assert_eq!(parse_range("bytes=8-100", 10), RangeSpec::Part(8, 9));
        assert_eq!(parse_range("bytes=10-", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), RangeSpec::Full);
        assert_eq!(parse_range("items=0-1", 10), RangeSpec::Full);
        assert_eq!(parse_range("bytes=5-2", 10), RangeSpec::Full);
    }
}
