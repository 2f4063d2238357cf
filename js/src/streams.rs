//! The Streams API's Rust side: loading the vendored polyfill on first
//! use, and the compression streams' coders (`flate2`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

use flate2::Compression;
use rquickjs::function::This;
use rquickjs::{Ctx, Function, Object, Result, TypedArray, Value};

use crate::bytecode::Compiled;

/// The polyfill, run as a CommonJS module: a function returning its exports.
/// Strict as a module: its UMD head takes the `exports` branch, and the
/// factory is strict already.
static POLYFILL: Compiled = Compiled::new(
    "bext:streams-polyfill",
    concat!(
        "(function () { const module = { exports: {} }; const exports = module.exports;\n",
        include_str!("web/streams-polyfill.js"),
        "\nreturn module.exports; })"
    ),
);
/// `(native, polyfillExports) => streams API`.
static STREAMS: Compiled = Compiled::new("bext:streams", include_str!("web/streams.js"));

/// Adds `native.loadStreams()` (evaluates the Streams API, once per call:
/// the prelude keeps what it returns) and the compression coders.
/// `max_output` bounds what one compression step may produce, so a small
/// gzip bomb fails with an error instead of filling Rust's heap.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>, max_output: usize) -> Result<()> {
    // `native` comes as `this` (the prelude calls `native.loadStreams()`):
    // a closure holding it would be a cycle through Rust that QuickJS's
    // collector cannot see, and would keep the whole context alive after
    // the isolate is dropped (~47 KiB of heap per isolate, bench/RESULTS.md).
    native.set(
        "loadStreams",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, native: This<Object<'js>>| -> Result<Value<'js>> {
                let polyfill: Function<'js> = POLYFILL.function(&ctx)?;
                let exports: Value<'js> = polyfill.call(())?;
                let api: Function<'js> = STREAMS.function(&ctx)?;
                api.call((native.0, exports))
            },
        )?,
    )?;

    let coders: Rc<RefCell<HashMap<u32, Box<dyn Coder>>>> = Rc::default();
    let next = Rc::new(Cell::new(0u32));
    let table = coders.clone();
    native.set(
        "zNew",
        Function::new(ctx.clone(), move |format: String, compress: bool| -> u32 {
            let id = next.get();
            next.set(id.wrapping_add(1));
            table.borrow_mut().insert(id, new_coder(&format, compress, max_output));
            id
        })?,
    )?;
    let table = coders.clone();
    native.set(
        "zPush",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, id: u32, input: TypedArray<'js, u8>, last: bool| -> Result<TypedArray<'js, u8>> {
                let input = crate::natives::copy_bytes(&input);
                let out = {
                    let mut table = table.borrow_mut();
                    let out = match table.get_mut(&id) {
                        Some(coder) => coder.push(&input),
                        None => Err(std::io::Error::other("the stream is closed")),
                    };
                    match (out, last) {
                        (Ok(mut out), true) => match table.remove(&id).map(|c| c.finish()) {
                            Some(Ok(rest)) => {
                                out.extend_from_slice(&rest);
                                Ok(out)
                            }
                            Some(Err(e)) => Err(e),
                            None => Ok(out),
                        },
                        (out, _) => out,
                    }
                };
                match out {
                    Ok(out) => TypedArray::new(ctx, out),
                    Err(e) => Err(rquickjs::Exception::throw_type(
                        &ctx,
                        &format!("compression stream: {e}"),
                    )),
                }
            },
        )?,
    )?;
    native.set(
        "zFree",
        Function::new(ctx.clone(), move |id: u32| {
            coders.borrow_mut().remove(&id);
        })?,
    )?;
    Ok(())
}

/// A compressor or decompressor fed chunk by chunk.
trait Coder {
    /// Feeds `input`; returns what came out of it.
    fn push(&mut self, input: &[u8]) -> std::io::Result<Vec<u8>>;
    /// Ends the stream; returns the rest (a decoder fails on a truncated one).
    fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>>;
}

/// A `Vec` that refuses to grow past `cap` bytes between takes.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other(format!(
                "one chunk's output is over {} bytes (the isolate's memory_limit)",
                self.cap
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

macro_rules! coder {
    ($t:ty) => {
        impl Coder for $t {
            fn push(&mut self, input: &[u8]) -> std::io::Result<Vec<u8>> {
                self.write_all(input)?;
                Ok(std::mem::take(&mut self.get_mut().buf))
            }
            fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>> {
                Ok((*self).finish()?.buf)
            }
        }
    };
}
coder!(flate2::write::GzEncoder<Capped>);
coder!(flate2::write::ZlibEncoder<Capped>);
coder!(flate2::write::DeflateEncoder<Capped>);
coder!(flate2::write::GzDecoder<Capped>);
coder!(flate2::write::ZlibDecoder<Capped>);
coder!(flate2::write::DeflateDecoder<Capped>);

/// The spec's formats: `gzip`, `deflate` (zlib) and `deflate-raw`; the
/// JavaScript side has checked the name.
fn new_coder(format: &str, compress: bool, cap: usize) -> Box<dyn Coder> {
    use flate2::write::{DeflateDecoder, DeflateEncoder, GzDecoder, GzEncoder, ZlibDecoder, ZlibEncoder};
    let out = Capped { buf: Vec::new(), cap };
    let level = Compression::default();
    match (format, compress) {
        ("gzip", true) => Box::new(GzEncoder::new(out, level)),
        ("gzip", false) => Box::new(GzDecoder::new(out)),
        ("deflate-raw", true) => Box::new(DeflateEncoder::new(out, level)),
        ("deflate-raw", false) => Box::new(DeflateDecoder::new(out)),
        (_, true) => Box::new(ZlibEncoder::new(out, level)),
        (_, false) => Box::new(ZlibDecoder::new(out)),
    }
}
