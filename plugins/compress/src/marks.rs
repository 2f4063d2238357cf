//! The headers of a compressed answer, and `Vary` on every answer whose
//! coding depends on the request.

use bext_plugin_abi::Response;
use http::header::{ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, HeaderValue, VARY};

use crate::negotiate::Encoding;

/// Marks `res` as compressed with `e`: `Content-Encoding`, no
/// `Content-Length` or `Accept-Ranges` (they described the identity), and
/// a weak `ETag` (the same resource, other bytes).
pub(crate) fn mark(res: &mut Response, e: Encoding) {
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
pub(crate) fn vary_on_encoding(res: &mut Response) {
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

#[cfg(test)]
mod tests {
    use bext_plugin_abi::Body;

    use super::*;

    fn response(headers: &[(&'static str, &'static str)]) -> Response {
        let mut res = Response::new(Body::empty());
        for (n, v) in headers {
            res.headers_mut().append(*n, v.parse().unwrap());
        }
        res
    }

    fn vary(res: &Response) -> Vec<&str> {
        res.headers()
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn a_compressed_answer_drops_what_described_the_identity() {
        let mut res = response(&[
            ("content-length", "100"),
            ("accept-ranges", "bytes"),
            ("etag", "\"v1\""),
        ]);
        mark(&mut res, Encoding::Zstd);
        let h = res.headers();
        assert_eq!(h[CONTENT_ENCODING], "zstd");
        assert!(h.get(CONTENT_LENGTH).is_none() && h.get(ACCEPT_RANGES).is_none());
        assert_eq!(h[ETAG], "W/\"v1\"");
        let mut weak = response(&[("etag", "W/\"v1\"")]);
        mark(&mut weak, Encoding::Gzip);
        assert_eq!(weak.headers()[ETAG], "W/\"v1\"", "already weak");
    }

    #[test]
    fn vary_names_accept_encoding_once() {
        let mut res = response(&[]);
        vary_on_encoding(&mut res);
        vary_on_encoding(&mut res);
        assert_eq!(vary(&res), ["Accept-Encoding"]);
        let mut listed = response(&[("vary", "Origin, accept-encoding")]);
        vary_on_encoding(&mut listed);
        assert_eq!(vary(&listed), ["Origin, accept-encoding"]);
        let mut any = response(&[("vary", "*")]);
        vary_on_encoding(&mut any);
        assert_eq!(vary(&any), ["*"]);
        let mut other = response(&[("vary", "Origin")]);
        vary_on_encoding(&mut other);
        assert_eq!(vary(&other), ["Origin", "Accept-Encoding"]);
    }
}
