//! The encoders: a whole body at once, or a body as it streams.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bext_plugin_abi::Body;
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, ReadBuf};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::config::Levels;
use crate::negotiate::Encoding;

/// `bytes` compressed with `e` at its configured level.
pub async fn compress(e: Encoding, levels: Levels, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
    encoder(e, levels, bytes).read_to_end(&mut out).await?;
    Ok(out)
}

/// `body` compressed with `e` as it streams.
pub(crate) fn stream(body: Body, e: Encoding, levels: Levels) -> Body {
    let input = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
    let output = ReaderStream::new(Exclusive(std::sync::Mutex::new(encoder(e, levels, input))));
    Body::stream(http_body_util::StreamBody::new(output.map_ok(http_body::Frame::data)))
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
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|p| p.into_inner());
        Pin::new(inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;

    /// `z` decoded as `e`.
    async fn decode(e: Encoding, z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match e {
            Encoding::Br => BrotliDecoder::new(z).read_to_end(&mut out).await,
            Encoding::Zstd => ZstdDecoder::new(z).read_to_end(&mut out).await,
            Encoding::Gzip => GzipDecoder::new(z).read_to_end(&mut out).await,
        }
        .unwrap();
        out
    }

    fn text() -> Vec<u8> {
        "a line that repeats, and repeats, and repeats\n"
            .repeat(200)
            .into_bytes()
    }

    #[tokio::test]
    async fn whole_bodies_decode_to_what_went_in() {
        for e in [Encoding::Br, Encoding::Zstd, Encoding::Gzip] {
            let z = compress(e, Levels::default(), &text()).await.unwrap();
            assert!(z.len() < text().len() / 10, "{e:?} compresses");
            assert_eq!(decode(e, &z).await, text(), "{e:?}");
        }
    }

    #[tokio::test]
    async fn streamed_bodies_decode_to_what_went_in() {
        let chunks: Vec<Bytes> = text().chunks(1000).map(Bytes::copy_from_slice).collect();
        for e in [Encoding::Br, Encoding::Zstd, Encoding::Gzip] {
            let input = Body::stream(http_body_util::StreamBody::new(
                futures_util::stream::iter(chunks.clone()).map(|c| Ok::<_, io::Error>(http_body::Frame::data(c))),
            ));
            let z = stream(input, e, Levels::default()).collect().await.unwrap().to_bytes();
            assert_eq!(decode(e, &z).await, text(), "{e:?}");
        }
    }
}
