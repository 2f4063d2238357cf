//! Whether an answer is worth compressing: a 200 of a compressible media
//! type, at least `min_size` bytes, not already encoded, and not marked
//! `Cache-Control: no-transform`. Server-sent events (`text/event-stream`)
//! are never compressed: the encoder would hold each event in its buffer
//! until more arrive, and the client must see it when it is sent.

use bext_plugin_abi::Response;
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};

/// The compiled `types` and `min_size`.
pub(crate) struct Wanted {
    /// Lowercase media types: exact, `type/*` or `*suffix`.
    types: Vec<String>,
    /// Smaller bodies are sent as they are.
    min_size: u64,
}

impl Wanted {
    /// From the configured media types (any case) and least size.
    pub(crate) fn new(types: &[String], min_size: u64) -> Self {
        Wanted {
            types: types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            min_size,
        }
    }

    /// Whether `res` should be compressed at all.
    pub(crate) fn wants(&self, res: &Response) -> bool {
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

    /// Whether a `Content-Type` (parameters ignored) is one of `types`.
    /// Compared without regard to case, with no lowercase copy per answer.
    fn compressible(&self, media: &str) -> bool {
        let media = media.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            return false;
        }
        self.types.iter().any(|t| {
            if let Some(prefix) = t.strip_suffix("/*") {
                media.split('/').next().is_some_and(|m| m.eq_ignore_ascii_case(prefix))
            } else if let Some(suffix) = t.strip_prefix('*') {
                media.len() >= suffix.len()
                    && media
                        .get(media.len() - suffix.len()..)
                        .is_some_and(|m| m.eq_ignore_ascii_case(suffix))
            } else {
                media.eq_ignore_ascii_case(t)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use bext_plugin_abi::Body;

    use super::*;

    fn wanted() -> Wanted {
        Wanted::new(&["text/*".into(), "Application/JSON".into(), "*+xml".into()], 10)
    }

    fn response(status: u16, headers: &[(&'static str, &'static str)], body: Body) -> Response {
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (n, v) in headers {
            res.headers_mut().append(*n, v.parse().unwrap());
        }
        res
    }

    #[test]
    fn server_sent_events_are_never_compressed() {
        let w = Wanted::new(&["text/*".into(), "text/event-stream".into()], 0);
        for t in [
            "text/event-stream",
            "Text/Event-Stream; charset=utf-8",
            " text/event-stream ",
        ] {
            let res = response(200, &[("content-type", t)], Body::from("data: 1\n\n"));
            assert!(!w.wants(&res), "{t}");
        }
        let res = response(200, &[("content-type", "text/plain")], Body::from("data: 1\n\n"));
        assert!(w.wants(&res));
    }

    #[test]
    fn media_types_by_exact_name_prefix_or_suffix() {
        let w = wanted();
        assert!(w.compressible("text/html; charset=utf-8"));
        assert!(w.compressible("application/json"));
        assert!(w.compressible("APPLICATION/JSON"), "any case");
        assert!(w.compressible("image/svg+xml"));
        assert!(!w.compressible("application/jsonp"));
        assert!(!w.compressible("image/png"));
        assert!(!w.compressible("textual/plain"), "a prefix is a whole type");
    }

    #[test]
    fn only_plain_200s_of_a_compressible_type_and_size() {
        let w = wanted();
        let big = || Body::from("0123456789abcdef");
        assert!(w.wants(&response(200, &[("content-type", "text/plain")], big())));
        assert!(
            !w.wants(&response(206, &[("content-type", "text/plain")], big())),
            "not a 200"
        );
        assert!(!w.wants(&response(200, &[], big())), "no type");
        assert!(!w.wants(&response(200, &[("content-type", "image/png")], big())));
        let encoded = [("content-type", "text/plain"), ("content-encoding", "gzip")];
        assert!(!w.wants(&response(200, &encoded, big())), "already encoded");
        let no_transform = [
            ("content-type", "text/plain"),
            ("cache-control", "public, No-Transform"),
        ];
        assert!(!w.wants(&response(200, &no_transform, big())));
        assert!(!w.wants(&response(200, &[("content-type", "text/plain")], Body::from("short"))));
        let declared_small = [("content-type", "text/plain"), ("content-length", "9")];
        assert!(
            !w.wants(&response(200, &declared_small, big())),
            "Content-Length decides"
        );
        let declared_large = [("content-type", "text/plain"), ("content-length", "10")];
        assert!(w.wants(&response(200, &declared_large, Body::from("short"))));
    }
}
