//! Reading a request body for inspection: the first `body_limit` bytes of
//! what the app will read, with `Content-Encoding` undone.
//!
//! A body the rules cannot see whole is not a clean body: an app behind
//! bext may inflate a gzip body or read past the inspected prefix, and an
//! attacker puts the payload exactly there. So every way a body can be
//! out of sight is reported ([`Read`]) and the plugin's
//! `uninspectable_body` setting decides. gzip and deflate are decoded for
//! real, each layer's output capped at the limit, so a decompression bomb
//! costs at most `body_limit` bytes and never gets past the cap. br and
//! zstd are not decoded: their decoders may hold a window of 16 MiB and
//! 128 MiB per request, a cheaper attack than the bodies they would reveal.

use bext_plugin_abi::Body;
use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};

/// Content codings deeper than this are refused as undecodable: each
/// layer costs a decode of up to `body_limit` bytes.
const MAX_LAYERS: usize = 3;

/// A content coding the WAF undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `gzip`, `x-gzip` (every member).
    Gzip,
    /// `deflate`: zlib-wrapped, as RFC 9110 says, or raw, as some clients
    /// send it.
    Deflate,
}

/// The codings of `Content-Encoding`, then those of `Transfer-Encoding`
/// but `chunked` (which the server already undid), in the order they were
/// applied (every header line, comma lists, any case, `identity` and
/// empty elements skipped); `None` when one is not decoded here or there
/// are too many.
pub(crate) fn codings(headers: &HeaderMap) -> Option<Vec<Coding>> {
    let mut out = Vec::new();
    let transfer = headers.get_all(TRANSFER_ENCODING).iter().map(|v| (v, true));
    for (value, is_transfer) in headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .map(|v| (v, false))
        .chain(transfer)
    {
        let value = value.to_str().ok()?;
        for token in value.split(',') {
            let token = token.trim();
            if token.is_empty()
                || token.eq_ignore_ascii_case("identity")
                || (is_transfer && token.eq_ignore_ascii_case("chunked"))
            {
                continue;
            }
            if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                out.push(Coding::Gzip);
            } else if token.eq_ignore_ascii_case("deflate") {
                out.push(Coding::Deflate);
            } else {
                return None;
            }
        }
    }
    (out.len() <= MAX_LAYERS).then_some(out)
}

/// Whether `Content-Length` announces more than `limit` bytes, so a body
/// can be refused before a byte of it is read.
pub(crate) fn declared_over(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// What the WAF could read of a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// All of it (decoded): inspected whole.
    Whole(Bytes),
    /// More than the limit (sent, or once decoded): the first `limit`
    /// bytes of what the app reads.
    TooLarge(Bytes),
    /// A coding that does not decode (corrupt, truncated, trailing
    /// garbage): the raw prefix.
    Corrupt(Bytes),
}

/// Reads up to `limit + 1` bytes of `body` (which stays whole for the
/// app) and undoes `codings`, each layer capped at `limit + 1` bytes.
pub(crate) async fn read(body: &mut Body, codings: &[Coding], limit: usize) -> Read {
    let raw = body.peek(limit.saturating_add(1)).await;
    let mut over = raw.len() > limit;
    let mut data = raw.clone();
    for coding in codings.iter().rev() {
        let (mut out, failed) = decode(*coding, &data, limit.saturating_add(1)).await;
        // A truncated input explains a decoder's error; otherwise the
        // body is broken and nothing says what the app makes of it.
        if failed && !over {
            return Read::Corrupt(raw.slice(..raw.len().min(limit)));
        }
        if out.len() > limit {
            over = true;
            out.truncate(limit);
        }
        data = Bytes::from(out);
    }
    if over {
        data.truncate(limit);
        Read::TooLarge(data)
    } else {
        Read::Whole(data)
    }
}

/// Decodes one layer, keeping at most `cap` bytes of output; true when
/// the decoder failed (what it produced before is kept).
async fn decode(coding: Coding, input: &[u8], cap: usize) -> (Vec<u8>, bool) {
    use async_compression::tokio::bufread::{DeflateDecoder, GzipDecoder, ZlibDecoder};
    use tokio::io::AsyncReadExt;

    let cap = cap as u64;
    let mut out = Vec::new();
    let failed = match coding {
        Coding::Gzip => {
            let mut d = GzipDecoder::new(input);
            d.multiple_members(true);
            d.take(cap).read_to_end(&mut out).await.is_err()
        }
        Coding::Deflate => {
            let zlib = ZlibDecoder::new(input).take(cap).read_to_end(&mut out).await;
            if zlib.is_err() && out.is_empty() {
                DeflateDecoder::new(input)
                    .take(cap)
                    .read_to_end(&mut out)
                    .await
                    .is_err()
            } else {
                zlib.is_err()
            }
        }
    };
    (out, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_compression::tokio::bufread::{GzipEncoder, ZlibEncoder};
    use tokio::io::AsyncReadExt;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CONTENT_ENCODING, l.parse().unwrap());
        }
        h
    }

    async fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    }

    async fn zlib(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ZlibEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    }

    #[test]
    fn codings_in_every_spelling() {
        use Coding::*;
        assert_eq!(codings(&headers(&[])), Some(vec![]));
        assert_eq!(codings(&headers(&["GZIP"])), Some(vec![Gzip]));
        assert_eq!(codings(&headers(&["gzip, identity"])), Some(vec![Gzip]));
        assert_eq!(codings(&headers(&["Identity"])), Some(vec![]));
        assert_eq!(codings(&headers(&["x-gzip"])), Some(vec![Gzip]));
        assert_eq!(codings(&headers(&[" deflate ,, gzip "])), Some(vec![Deflate, Gzip]));
        assert_eq!(
            codings(&headers(&["deflate", "gzip"])),
            Some(vec![Deflate, Gzip]),
            "lines in order"
        );
        for unknown in [
            "br",
            "zstd",
            "compress",
            "gzip, br",
            "gzip;q=1",
            "gzip, gzip, gzip, gzip",
        ] {
            assert_eq!(codings(&headers(&[unknown])), None, "{unknown}");
        }
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, http::HeaderValue::from_bytes(b"gz\xffip").unwrap());
        assert_eq!(codings(&h), None);
        // Transfer codings come after the content codings; `chunked` is
        // the server's to undo.
        let mut h = headers(&["deflate"]);
        h.insert(TRANSFER_ENCODING, "gzip, Chunked".parse().unwrap());
        assert_eq!(codings(&h), Some(vec![Deflate, Gzip]));
        h.insert(TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert_eq!(codings(&h), Some(vec![Deflate]));
        h.insert(TRANSFER_ENCODING, "br, chunked".parse().unwrap());
        assert_eq!(codings(&h), None);
    }

    #[tokio::test]
    async fn layers_are_undone_in_reverse_order() {
        let text = b"q=1' UNION SELECT password FROM users--";
        let both = gzip(&zlib(text).await).await;
        let mut body = Body::from(both.clone());
        assert_eq!(
            read(&mut body, &[Coding::Deflate, Coding::Gzip], 1024).await,
            Read::Whole(Bytes::from_static(text))
        );
        assert_eq!(body.as_bytes(), Some(&both[..]), "the app gets the body as sent");

        let mut two_members = gzip(b"a=1&").await;
        two_members.extend(gzip(b"b=<script>").await);
        assert_eq!(
            read(&mut Body::from(two_members), &[Coding::Gzip], 1024).await,
            Read::Whole(Bytes::from_static(b"a=1&b=<script>")),
            "every gzip member, as an app reading them all would"
        );

        let mut raw = Vec::new();
        async_compression::tokio::bufread::DeflateEncoder::new(&text[..])
            .read_to_end(&mut raw)
            .await
            .unwrap();
        assert_eq!(
            read(&mut Body::from(raw), &[Coding::Deflate], 1024).await,
            Read::Whole(Bytes::from_static(text)),
            "raw deflate too"
        );
    }

    #[tokio::test]
    async fn bombs_stop_at_the_cap_and_broken_bodies_are_reported() {
        // 64 MiB of zeros in about 64 KiB: never inflated past the cap.
        let bomb = gzip(&vec![0u8; 64 << 20]).await;
        match read(&mut Body::from(bomb), &[Coding::Gzip], 4096).await {
            Read::TooLarge(prefix) => assert_eq!(prefix.len(), 4096),
            other => panic!("{other:?}"),
        }
        // A bomb inside a bomb: each layer capped.
        let nested = gzip(&gzip(&vec![0u8; 8 << 20]).await).await;
        assert!(matches!(
            read(&mut Body::from(nested), &[Coding::Gzip, Coding::Gzip], 4096).await,
            Read::TooLarge(_)
        ));
        // Too large as sent.
        let mut big = Body::from(vec![b'a'; 5000]);
        assert!(matches!(read(&mut big, &[], 4096).await, Read::TooLarge(p) if p.len() == 4096));
        assert_eq!(big.as_bytes().map(<[u8]>::len), Some(5000), "still whole for the app");
        // Not gzip at all, truncated, or with garbage after it.
        assert!(matches!(
            read(&mut Body::from("q=1"), &[Coding::Gzip], 4096).await,
            Read::Corrupt(_)
        ));
        let whole = gzip(b"q=<script>alert(1)</script>").await;
        let cut = whole[..whole.len() - 6].to_vec();
        assert!(matches!(
            read(&mut Body::from(cut), &[Coding::Gzip], 4096).await,
            Read::Corrupt(_)
        ));
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"&x=<script>");
        assert!(matches!(
            read(&mut Body::from(trailing), &[Coding::Gzip], 4096).await,
            Read::Corrupt(_)
        ));
    }

    #[test]
    fn declared_lengths() {
        let mut h = HeaderMap::new();
        assert!(!declared_over(&h, 10));
        h.insert(CONTENT_LENGTH, "11".parse().unwrap());
        assert!(declared_over(&h, 10));
        h.insert(CONTENT_LENGTH, "10".parse().unwrap());
        assert!(!declared_over(&h, 10));
    }
}
