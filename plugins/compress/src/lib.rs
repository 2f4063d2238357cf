//! The `compress` plugin: gzip, brotli and zstd answers by the client's
//! `Accept-Encoding`, for compressible media types above a size, with
//! `Vary: Accept-Encoding`.
//!
//! A body already in memory (a cached page, a static file) is compressed
//! whole once per coding and the result kept: a cache hit sharing the
//! entry's buffer finds it by that buffer (a lookup), other bodies by a
//! SHA-256 of their bytes. Streamed bodies (a proxied upstream, a large
//! file) are compressed as they stream (`async-compression`).

pub mod config;
pub mod negotiate;

use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bext_plugin_abi::{Body, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Response, Setup};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue,
    VARY,
};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::config::{Config, Levels};
use crate::negotiate::{Encoding, choose};

/// The plugin instance.
pub struct CompressPlugin {
    encodings: Vec<Encoding>,
    min_size: u64,
    types: Vec<String>,
    levels: Levels,
    max_stored_body: usize,
    /// (SHA-256 of the body, coding) → the compressed body.
    stored: quick_cache::sync::Cache<([u8; 32], Encoding), Bytes, VariantWeight>,
    /// (address and length of the identity buffer, coding) → that buffer
    /// and its compressed body. Holding the buffer keeps its address from
    /// being reused for other bytes, so a cache hit that shares the
    /// entry's buffer finds its variant without hashing the body.
    by_buffer: quick_cache::sync::Cache<(usize, usize, Encoding), (Bytes, Bytes), BufferWeight>,
}

#[derive(Clone)]
struct BufferWeight;

impl quick_cache::Weighter<(usize, usize, Encoding), (Bytes, Bytes)> for BufferWeight {
    fn weight(&self, _: &(usize, usize, Encoding), (identity, z): &(Bytes, Bytes)) -> u64 {
        (identity.len() + z.len()) as u64 + 64
    }
}

#[derive(Clone)]
struct VariantWeight;

impl quick_cache::Weighter<([u8; 32], Encoding), Bytes> for VariantWeight {
    fn weight(&self, _: &([u8; 32], Encoding), v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

/// The coding the request accepts, kept for its response.
#[derive(Clone, Copy)]
struct Chosen(Encoding);

impl BuiltinPlugin for CompressPlugin {
    const NAME: &'static str = "compress";
    const PRIORITY: i32 = 700;
    const SUMMARY: &'static str = "gzip, brotli and zstd by Accept-Encoding; stored bodies compressed once";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/compress.yaml");
    type Config = Config;

    fn new(c: Config, _setup: &Setup<'_>) -> Result<Self, PluginError> {
        if c.encodings.is_empty() {
            return Err(PluginError::config("encodings", "name at least one of br, zstd, gzip"));
        }
        let check = |field: &str, v: i32, range: std::ops::RangeInclusive<i32>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(PluginError::config(
                    format!("levels.{field}"),
                    format!("{v} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
        check("gzip", c.levels.gzip, 1..=9)?;
        check("br", c.levels.br, 0..=11)?;
        check("zstd", c.levels.zstd, 1..=22)?;
        let store = c.store_bytes.0.max(1);
        Ok(CompressPlugin {
            encodings: c.encodings,
            min_size: c.min_size.0,
            types: c.types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            levels: c.levels,
            max_stored_body: usize::try_from(c.max_stored_body.0).unwrap_or(usize::MAX),
            stored: quick_cache::sync::Cache::with(
                usize::try_from(store / 4096).unwrap_or(1).max(16),
                store,
                VariantWeight,
                Default::default(),
                Default::default(),
            ),
            by_buffer: quick_cache::sync::Cache::with(
                usize::try_from(store / 8192).unwrap_or(1).max(16),
                store,
                BufferWeight,
                Default::default(),
                Default::default(),
            ),
        })
    }
}

impl CompressPlugin {
    fn compressible(&self, media: &str) -> bool {
        let media = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        self.types.iter().any(|t| {
            if let Some(prefix) = t.strip_suffix("/*") {
                media.split('/').next() == Some(prefix)
            } else if let Some(suffix) = t.strip_prefix('*') {
                media.ends_with(suffix)
            } else {
                *t == media
            }
        })
    }

    /// Whether `res` should be compressed at all.
    fn wanted(&self, res: &Response) -> bool {
        let h = res.headers();
        res.status() == StatusCode::OK
            && !h.contains_key(CONTENT_ENCODING)
            && h.get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| self.compressible(t))
            && !h.get_all(CACHE_CONTROL).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("no-transform"))
            })
            && match h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
                Some(n) => n >= self.min_size,
                None => res.body().as_bytes().is_none_or(|b| b.len() as u64 >= self.min_size),
            }
    }

    /// `identity` compressed with `e`: found by its buffer (a cache hit
    /// sharing the entry's bytes), else by its content's hash, else made
    /// now; kept both ways.
    async fn stored_variant(&self, identity: Bytes, e: Encoding) -> io::Result<Bytes> {
        let buffer = (identity.as_ptr() as usize, identity.len(), e);
        if let Some((held, z)) = self.by_buffer.get(&buffer)
            && held.as_ptr() == identity.as_ptr()
        {
            return Ok(z);
        }
        let key = (Sha256::digest(&identity).into(), e);
        let z = match self.stored.get(&key) {
            Some(z) => z,
            None => {
                let z = Bytes::from(compress(e, self.levels, &identity).await?);
                self.stored.insert(key, z.clone());
                z
            }
        };
        self.by_buffer.insert(buffer, (identity, z.clone()));
        Ok(z)
    }
}

/// `bytes` compressed with `e` at its configured level.
pub async fn compress(e: Encoding, levels: Levels, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
    encoder(e, levels, bytes).read_to_end(&mut out).await?;
    Ok(out)
}

/// A streaming encoder for `e` over `input`.
fn encoder<'r, R: AsyncBufRead + Send + Unpin + 'r>(
    e: Encoding,
    levels: Levels,
    input: R,
) -> Box<dyn AsyncRead + Send + Unpin + 'r> {
    match e {
        Encoding::Br => Box::new(BrotliEncoder::with_quality(input, Level::Precise(levels.br))),
        Encoding::Zstd => Box::new(ZstdEncoder::with_quality(input, Level::Precise(levels.zstd))),
        Encoding::Gzip => Box::new(GzipEncoder::with_quality(input, Level::Precise(levels.gzip))),
    }
}

/// A reader only ever used through `&mut` (a response body is polled by
/// one task), made `Sync` for the body type by a mutex that is never
/// locked: `Mutex::get_mut` needs no lock.
struct Exclusive<R>(std::sync::Mutex<R>);

impl<R: AsyncRead + Unpin> AsyncRead for Exclusive<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|p| p.into_inner());
        std::pin::Pin::new(inner).poll_read(cx, buf)
    }
}

/// Marks `res` as compressed with `e`: `Content-Encoding`, `Vary`, no
/// `Content-Length` or `Accept-Ranges` (they described the identity), and
/// a weak `ETag` (the same resource, other bytes).
fn mark(res: &mut Response, e: Encoding) {
    let h = res.headers_mut();
    h.insert(CONTENT_ENCODING, HeaderValue::from_static(e.token()));
    h.remove(CONTENT_LENGTH);
    h.remove(ACCEPT_RANGES);
    if let Some(tag) = h.get(ETAG).and_then(|t| t.to_str().ok())
        && !tag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}"))
    {
        h.insert(ETAG, weak);
    }
}

/// Adds `Accept-Encoding` to `Vary` unless it is there (or `Vary: *`).
fn vary_on_encoding(res: &mut Response) {
    let listed = res
        .headers()
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case("accept-encoding"));
    if !listed {
        res.headers_mut()
            .append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

impl Plugin for CompressPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        if *req.method() != Method::HEAD
            && let Some(e) = req
                .headers()
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| choose(a, &self.encodings))
        {
            cx.ext.insert(Chosen(e));
        }
        Hook::Ready(Ok(Flow::Continue))
    }

    fn on_response<'a>(&'a self, res: &'a mut Response, cx: &'a mut Ctx) -> Hook<'a, Result<(), PluginError>> {
        if !self.wanted(res) {
            return Hook::Ready(Ok(()));
        }
        // The answer depends on Accept-Encoding from here on, compressed
        // or not.
        vary_on_encoding(res);
        let Some(Chosen(e)) = cx.ext.get::<Chosen>().copied() else {
            return Hook::Ready(Ok(()));
        };
        if res.body().as_bytes().is_some_and(|b| b.len() <= self.max_stored_body) {
            return Hook::later(async move {
                let identity = res.body().full_bytes().unwrap_or_default();
                match self.stored_variant(identity, e).await {
                    Ok(z) => {
                        mark(res, e);
                        *res.body_mut() = Body::full(z);
                    }
                    Err(err) => tracing::warn!(error = %err, "compress: sent uncompressed"),
                }
                Ok(())
            });
        }
        let body = std::mem::replace(res.body_mut(), Body::empty());
        let input = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
        let output = ReaderStream::new(Exclusive(std::sync::Mutex::new(encoder(e, self.levels, input))));
        *res.body_mut() = Body::stream(http_body_util::StreamBody::new(output.map_ok(http_body::Frame::data)));
        mark(res, e);
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(CompressPlugin);
