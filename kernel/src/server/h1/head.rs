//! A request head for the fast path: httparse reads it (the parser hyper
//! uses, so both paths accept exactly the same bytes), then a short list
//! of checks decides whether this path understands the request. Anything
//! it does not is handed to hyper untouched, so hyper stays the judge of
//! framing and every unusual case (request smuggling included): the only
//! body read here is one of a single plain `Content-Length` with no
//! `Transfer-Encoding`, which has one meaning.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use super::encode::has_token;

/// hyper's limit on header lines (`DEFAULT_MAX_HEADERS`; bext does not
/// change it): a head with more goes to hyper, which answers 431.
pub(super) const MAX_HEADERS: usize = 100;

/// hyper's longest request target (`MAX_URI_LEN`); longer goes to hyper (414).
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// What the buffered bytes are.
// Returned once a request and taken apart at once: boxing the head would
// cost an allocation a request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A head the fast path serves; its bytes were taken from the buffer.
    Fast(Head),
    /// Anything else: hyper gets the connection and the bytes.
    Handoff,
    /// `max_header_bytes` read without the end of the head, or a head at
    /// least that long: 431, as hyper answers, then the connection closes.
    TooLarge,
}

/// A request head the fast path serves: nothing to upgrade, and no body
/// but one of a plain `Content-Length` of at most the limit [`parse`]
/// was given.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) parts: http::request::Parts,
    /// The client wants the connection kept (HTTP/1.1 without `close`,
    /// HTTP/1.0 with `keep-alive`), as hyper reads it.
    pub(super) keep_alive: bool,
    /// The body's length (`Content-Length`; 0 without one).
    pub(super) body: usize,
    /// The head's bytes, to give back to hyper with the buffer should the
    /// body not be there whole ([`restore`]).
    pub(super) bytes: Bytes,
}

/// What parsing keeps from one request to the next on a busy connection
/// (hyper keeps its header map the same way), dropped while it idles.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The last response's header map, emptied: the next request's.
    pub(super) headers: Option<HeaderMap>,
    /// Each header line's name and where its value is in the head.
    lines: Vec<(HeaderName, usize, usize)>,
}

/// Reads one head from the start of `buf`, taking its bytes when it is
/// one the fast path serves. `max_bytes` is `max_header_bytes`: hyper
/// applies it to its read buffer, so whether it refuses a head a little
/// over it depends on how the bytes arrived; here a head of that size is
/// refused however it came. `max_body` is the longest body the fast path
/// reads itself (a request with a longer one goes to hyper, which streams
/// it).
pub(super) fn parse(buf: &mut BytesMut, max_bytes: usize, max_body: usize, scratch: &mut Scratch) -> Parsed {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len < max_bytes => len,
        Ok(httparse::Status::Partial) if buf.len() < max_bytes => return Parsed::Partial,
        Ok(_) => return Parsed::TooLarge,
        // Too many headers (hyper: 431), or bytes httparse refuses (400).
        Err(_) => return Parsed::Handoff,
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Handoff;
    };
    // Whether a body is read here (of a plain `Content-Length`, or none
    // without one, RFC 9112 §6.3); for the others only `Content-Length: 0`.
    let (method, with_body) = match method {
        "GET" => (Method::GET, false),
        "HEAD" => (Method::HEAD, false),
        "POST" => (Method::POST, true),
        "PUT" => (Method::PUT, true),
        "PATCH" => (Method::PATCH, true),
        // CONNECT tunnels; rare ones are not worth a second code path:
        // hyper serves them.
        "OPTIONS" => (Method::OPTIONS, false),
        "DELETE" => (Method::DELETE, false),
        _ => return Parsed::Handoff,
    };
    let mut body = 0;
    // Origin-form only: absolute-form, authority-form and `*` go to hyper.
    if !target.starts_with('/') || target.len() > MAX_TARGET {
        return Parsed::Handoff;
    }
    let version = if minor == 1 { Version::HTTP_11 } else { Version::HTTP_10 };
    let mut keep_alive = version == Version::HTTP_11;
    let mut saw_close = false;
    let start = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - start;
    let target_at = offset(target.as_bytes());
    let target_range = target_at..target_at + target.len();
    let lines = &mut scratch.lines;
    lines.clear();
    for header in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            return Parsed::Handoff;
        };
        if name == TRANSFER_ENCODING || name == EXPECT || name == UPGRADE {
            return Parsed::Handoff;
        }
        if name == CONTENT_LENGTH {
            // Exactly one, plain decimal (`0`, or no leading zero), within
            // the limit; a body only where one is read here. Anything else
            // (a list, a sign, a second line): hyper decides.
            let value = header.value;
            let plain = matches!(value, [b'0'] | [b'1'..=b'9', ..])
                && value.len() <= 19
                && value.iter().all(u8::is_ascii_digit);
            if !plain || lines.iter().any(|(n, ..)| n == CONTENT_LENGTH) {
                return Parsed::Handoff;
            }
            body = value.iter().fold(0usize, |n, d| {
                n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            if body > 0 && (!with_body || body > max_body) {
                return Parsed::Handoff;
            }
        } else if name == CONNECTION {
            // As hyper: once a line asks to close, nothing reopens it.
            if saw_close || has_token(header.value, "close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(header.value, "keep-alive");
            }
        }
        let at = offset(header.value);
        lines.push((name, at, at + header.value.len()));
    }
    let head: Bytes = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target_range)) else {
        return restore(buf, &head);
    };
    let mut headers = scratch.headers.take().unwrap_or_default();
    // Kept emptied (clearing an empty map still walks its whole index).
    if !headers.is_empty() {
        headers.clear();
    }
    headers.reserve(lines.len());
    for (name, from, to) in lines.drain(..) {
        match HeaderValue::from_maybe_shared(head.slice(from..to)) {
            Ok(value) => {
                headers.append(name, value);
            }
            Err(_) => return restore(buf, &head),
        }
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Parsed::Fast(Head {
        parts,
        keep_alive,
        body,
        bytes: head,
    })
}

/// Puts a head taken from `buf` back in front of it, for hyper (a value
/// the `http` crate refuses where httparse did not, a body not there
/// whole: rare, so copied).
pub(super) fn restore(buf: &mut BytesMut, head: &[u8]) -> Parsed {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(head);
    whole.extend_from_slice(buf);
    *buf = whole;
    Parsed::Handoff
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;
    const BODY: usize = 16;

    fn fast(bytes: &[u8]) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        match parse(&mut buf, MAX, BODY, &mut Scratch::default()) {
            Parsed::Fast(head) => (head, buf),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    /// Handed to hyper with every byte still there.
    fn handed_off(bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        let parsed = parse(&mut buf, MAX, BODY, &mut Scratch::default());
        assert!(
            matches!(parsed, Parsed::Handoff),
            "{parsed:?} for {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(&buf[..], bytes, "bytes kept for hyper");
    }

    #[test]
    fn a_browser_get_is_read_whole_and_the_next_request_stays_buffered() {
        let (head, rest) = fast(
            b"GET /index.html?page=2 HTTP/1.1\r\nHost: Example.com\r\nAccept: text/html\r\nX-Two: a\r\nx-two: b\r\nContent-Length: 0\r\n\r\nGET /next HTTP/1.1\r\n",
        );
        let p = &head.parts;
        assert_eq!(p.method, Method::GET);
        assert_eq!(p.uri.path(), "/index.html");
        assert_eq!(p.uri.query(), Some("page=2"));
        assert_eq!(p.version, Version::HTTP_11);
        assert_eq!(p.headers["host"], "Example.com");
        assert_eq!(p.headers.get_all("x-two").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.headers.len(), 5);
        assert!(head.keep_alive);
        assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n");
    }

    #[test]
    fn a_recycled_header_map_starts_empty() {
        let mut old = HeaderMap::new();
        old.insert("x-old", HeaderValue::from_static("1"));
        let mut scratch = Scratch {
            headers: Some(old),
            ..Scratch::default()
        };
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
        let Parsed::Fast(head) = parse(&mut buf, MAX, BODY, &mut scratch) else {
            panic!("not served")
        };
        assert_eq!(head.parts.headers.len(), 1);
        assert!(!head.parts.headers.contains_key("x-old"));
    }

    #[test]
    fn keep_alive_is_read_as_hyper_reads_it() {
        let ka = |bytes: &[u8]| fast(bytes).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: TE, CLOSE\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        // Once closed, a later line does not reopen it.
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert_eq!(fast(b"HEAD / HTTP/1.0\r\n\r\n").0.parts.version, Version::HTTP_10);
        // hyper reads tokens only from a visible-ASCII value.
        assert!(ka(b"GET / HTTP/1.1\r\nConnection: close, \xff\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\nConnection: keep-alive, \xff\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection:\tclose \r\n\r\n"));
    }

    #[test]
    fn a_body_of_a_plain_length_within_the_limit_is_read_here() {
        for (bytes, method, body) in [
            (
                &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"[..],
                Method::POST,
                3,
            ),
            (b"PUT / HTTP/1.1\r\nContent-Length: 16\r\n\r\n", Method::PUT, 16),
            (b"PATCH / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", Method::PATCH, 0),
            // No length and no coding: no body (RFC 9112 §6.3).
            (b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", Method::POST, 0),
        ] {
            let (head, rest) = fast(bytes);
            assert_eq!((head.parts.method, head.body), (method, body));
            assert_eq!(rest.len(), bytes.len() - head.bytes.len(), "the body stays buffered");
        }
    }

    #[test]
    fn anything_with_another_body_or_an_upgrade_goes_to_hyper() {
        for bytes in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 03\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"DELETE / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: +0\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\ncontent-length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
            b"GET / HTTP/1.1\r\nTRANSFER-ENCODING: Chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        ] {
            handed_off(bytes);
        }
    }

    #[test]
    fn unusual_targets_and_bytes_httparse_refuses_go_to_hyper() {
        for bytes in [
            &b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET a.example:80 HTTP/1.1\r\n\r\n",
            // obs-fold, a space before the colon, a bad name, a bad version.
            b"GET / HTTP/1.1\r\nX-A: b\r\n  folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX(A): b\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: b\0c\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            handed_off(bytes);
        }
    }

    #[test]
    fn limits_are_hypers() {
        // More header lines than hyper takes.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        handed_off(&many);
        // Exactly hyper's count is fine.
        let mut enough = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            enough.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        enough.extend_from_slice(b"\r\n");
        assert_eq!(fast(&enough).0.parts.headers.len(), MAX_HEADERS);
        // A head as long as the limit, complete or not.
        let long = format!("GET / HTTP/1.1\r\nX-A: {}\r\n\r\n", "a".repeat(MAX));
        for bytes in [long.as_bytes(), &long.as_bytes()[..MAX + 10], &long.as_bytes()[..MAX]] {
            let parsed = parse(&mut BytesMut::from(bytes), MAX, BODY, &mut Scratch::default());
            assert!(matches!(parsed, Parsed::TooLarge), "{parsed:?}");
        }
        let just = format!("GET / HTTP/1.1\r\nX-A: {}\r\n\r\n", "a".repeat(MAX - 26));
        assert_eq!(just.len(), MAX - 1);
        assert!(matches!(
            parse(&mut BytesMut::from(just.as_bytes()), MAX, BODY, &mut Scratch::default()),
            Parsed::Fast(_)
        ));
        // Shorter and incomplete: wait for more.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..]);
        assert!(matches!(
            parse(&mut buf, MAX, BODY, &mut Scratch::default()),
            Parsed::Partial
        ));
        assert_eq!(buf.len(), 25);
    }
}
