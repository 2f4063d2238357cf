//! The request body a JS plugin reads (`limits.max_body_bytes`): read
//! once, bounded, and left whole for the plugins after it and the app.

use bext_plugin_abi::{Body, Response};
use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};

use crate::apps::plain;

/// Reads `body` for a plugin allowed `max` bytes of it. The body stays as
/// it was for whoever reads it next (what was read is replayed). Over
/// `max`, the answer is 413 naming the plugin's limit; a body the kernel
/// cut off (its own size or time limits, a malformed body) gets the
/// status the app would have given it.
pub(crate) async fn read_body(body: &mut Body, max: u64, plugin: &str) -> Result<Bytes, Response> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let cap = usize::try_from(max).unwrap_or(usize::MAX - 1);
    let seen = body.peek(cap.saturating_add(1)).await;
    if seen.len() > cap {
        tracing::debug!(plugin, max, "request body over the plugin's max_body_bytes");
        return Err(too_large(plugin, max));
    }
    if let Some(whole) = body.full_bytes() {
        return Ok(whole);
    }
    // Within the limit but not kept whole: the read failed, or trailers
    // followed the data. Both are in the replay.
    match std::mem::take(body).collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            let bytes = collected.to_bytes();
            *body = Body::stream(Full::new(bytes.clone()).with_trailers(async move { trailers.map(Ok) }));
            Ok(bytes)
        }
        Err(e) => Err(crate::apps::body_read_failed(&e)),
    }
}

fn too_large(plugin: &str, max: u64) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {max} bytes, the max_body_bytes of plugin {plugin}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bext_plugin_abi::BodyLimitError;
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static str]) -> Body {
        let frames = parts
            .iter()
            .map(|p| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(*p))));
        Body::stream(StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>())))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_and_left_whole() {
        let mut body = chunks(&["{\"a\":", "1}"]);
        assert_eq!(&read_body(&mut body, 7, "p").await.unwrap()[..], b"{\"a\":1}");
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn a_body_one_byte_over_is_413() {
        let mut body = chunks(&["{\"a\":", "1}"]);
        let refused = read_body(&mut body, 6, "p").await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let text = refused.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &text[..],
            b"request body over 6 bytes, the max_body_bytes of plugin p\n"
        );
    }

    #[tokio::test]
    async fn a_body_the_kernel_cut_keeps_the_kernel_s_status() {
        let frames: Vec<Result<http_body::Frame<Bytes>, bext_plugin_abi::BoxError>> = vec![
            Ok(http_body::Frame::data(Bytes::from("abc"))),
            Err(BodyLimitError::Timeout(std::time::Duration::from_secs(1)).into()),
        ];
        let mut body = Body::stream(StreamBody::new(futures_util::stream::iter(frames)));
        let refused = read_body(&mut body, 100, "p").await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
