//! The `compress` plugin: gzip, brotli and zstd answers by the client's
//! `Accept-Encoding`, for compressible media types above a size, with
//! `Vary: Accept-Encoding`.
//!
//! A body already in memory (a cached page, a static file) is compressed
//! whole once per coding and the result kept: a cache hit sharing the
//! entry's buffer finds it by that buffer (a lookup), other bodies by a
//! SHA-256 of their bytes. Streamed bodies (a proxied upstream, a large
//! file) are compressed as they stream (`async-compression`).
//!
//! One concern per file:
//!
//! - [`negotiate`]: the coding a request's `Accept-Encoding` picks;
//! - `wanted.rs`: whether an answer is worth compressing;
//! - `store.rs`: the kept copies of in-memory bodies;
//! - `encode.rs`: the encoders, whole or streaming;
//! - `marks.rs`: the headers of a compressed answer, and `Vary`.
//!
//! See `manifests/compress.yaml` and `docs/compress.md`.

pub mod config;
mod encode;
mod marks;
pub mod negotiate;
mod store;
mod wanted;

use bext_plugin_abi::{Body, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Response, Setup};
use http::Method;
use http::header::ACCEPT_ENCODING;

use crate::config::{Config, Levels};
use crate::marks::{mark, vary_on_encoding};
use crate::negotiate::{Encoding, choose};
use crate::store::Variants;
use crate::wanted::Wanted;

pub use crate::encode::compress;

/// The plugin instance.
pub struct CompressPlugin {
    encodings: Vec<Encoding>,
    wanted: Wanted,
    levels: Levels,
    max_stored_body: usize,
    stored: Variants,
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
        c.levels.check()?;
        Ok(CompressPlugin {
            encodings: c.encodings,
            wanted: Wanted::new(&c.types, c.min_size.0),
            levels: c.levels,
            max_stored_body: usize::try_from(c.max_stored_body.0).unwrap_or(usize::MAX),
            stored: Variants::new(c.store_bytes.0),
        })
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
        if !self.wanted.wants(res) {
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
                match self.stored.get(identity, e, self.levels).await {
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
        *res.body_mut() = encode::stream(body, e, self.levels);
        mark(res, e);
        Hook::Ready(Ok(()))
    }
}

bext_plugin_abi::register!(CompressPlugin);
