//! The response head the fast path writes: what hyper's HTTP/1 server
//! writes for the same response (vendor/hyper/src/proto/h1/role.rs,
//! `Server::encode`, and `Conn::enforce_version`), so that a client cannot
//! tell which path served it: the request's version on the status line,
//! lower-case names, `Content-Length` from the body's exact size or
//! `Transfer-Encoding: chunked`, no body for HEAD, 204 and 304, the
//! `Connection` token the client's version needs, and a `Date` formatted
//! once a second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bext_plugin_abi::EncodedHeaders;

use crate::apps::RawFields;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Nothing (HEAD, 204, 304, or an empty body).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks, then the last chunk.
    Chunked,
    /// Bytes until the connection closes (HTTP/1.0 with no length).
    UntilClose,
}

/// What the body will be, as hyper sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodySize {
    /// Ends before its first byte.
    None,
    /// Its exact size is known.
    Known(u64),
    /// It streams.
    Unknown,
}

/// The head written, and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Encoded {
    pub(super) framing: Framing,
    /// The connection closes after this response.
    pub(super) last: bool,
}

/// The request a response answers: what its head depends on.
pub(super) struct Answering<'a> {
    pub(super) method: &'a Method,
    pub(super) version: Version,
    /// The connection stays open after the response, as far as the
    /// client and the server's state go.
    pub(super) keep_alive: bool,
}

/// Writes the head of a response with `status` and its headers (an
/// upstream's [`RawFields`], as the map would hold them before anything
/// else, then the map, then the plugins' [`EncodedHeaders`], which hold
/// no name the framing below decides) to `dst`.
pub(super) fn encode(
    dst: &mut Vec<u8>,
    req: &Answering<'_>,
    mut status: StatusCode,
    (raw, headers, added): (Option<&RawFields>, &HeaderMap, &EncodedHeaders),
    mut body: BodySize,
) -> Encoded {
    let empty = HeaderMap::new();
    let mut headers = headers;
    let mut raw = raw;
    let informational = status.is_informational();
    if informational {
        // hyper answers a 1xx from a service with a bare 500 and closes.
        status = StatusCode::INTERNAL_SERVER_ERROR;
        headers = &empty;
        raw = None;
        body = BodySize::None;
    }
    let http10 = req.version == Version::HTTP_10;
    let mut last = !req.keep_alive || informational;
    if http10 {
        extend(dst, b"HTTP/1.0 ");
    } else if status == StatusCode::OK {
        extend(dst, b"HTTP/1.1 200 OK\r\n");
    } else {
        extend(dst, b"HTTP/1.1 ");
    }
    if http10 || status != StatusCode::OK {
        extend(dst, status.as_str().as_bytes());
        extend(dst, b" ");
        extend(dst, status.canonical_reason().unwrap_or("<none>").as_bytes());
        extend(dst, b"\r\n");
    }

    let head = req.method == Method::HEAD;
    let no_body = head || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut framing = None;
    let mut wrote_date = false;
    let mut keep_alive_token = false;
    let mut close_token = false;
    // What a `Content-Length` in the headers does: it may frame the body
    // (the first one: hyper writes it and trusts it), and is written then.
    let length = |framing: &mut Option<Framing>, declared: Option<u64>| {
        if framing.is_some() {
            return false;
        }
        match (body, declared) {
            (BodySize::Known(n), _) => *framing = Some(Framing::Length(n)),
            (BodySize::Unknown, Some(n)) => *framing = Some(Framing::Length(n)),
            // HEAD keeps the length a GET would have had.
            (BodySize::None, _) if head => *framing = Some(Framing::Empty),
            // A length for no body, or one that does not parse: the
            // framing below decides instead.
            _ => return false,
        }
        !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
    };
    if let Some(raw) = raw {
        // No framing or connection fields among them: the exchange took
        // those out, and its length comes after the fields, as in a map.
        raw.write_lines(dst);
        wrote_date |= raw.has_date();
        if let Some(n) = raw.length()
            && length(&mut framing, Some(n))
        {
            extend(dst, b"content-length: ");
            decimal(dst, n);
            extend(dst, b"\r\n");
        }
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            if !length(&mut framing, parse_length(value.as_bytes())) {
                continue;
            }
        } else if name == TRANSFER_ENCODING {
            // The framing below decides (chunked when the size is unknown).
            continue;
        } else if name == CONNECTION {
            close_token |= has_token(value.as_bytes(), "close");
            keep_alive_token |= has_token(value.as_bytes(), "keep-alive");
        } else if name == DATE {
            wrote_date = true;
        }
        extend(dst, name.as_str().as_bytes());
        extend(dst, b": ");
        extend(dst, value.as_bytes());
        extend(dst, b"\r\n");
    }
    if !informational {
        for block in added.blocks() {
            extend(dst, block.lines());
        }
        for (name, n) in added.numbers() {
            extend(dst, name.as_str().as_bytes());
            extend(dst, b": ");
            decimal(dst, n);
            extend(dst, b"\r\n");
        }
    }
    last |= close_token;
    // What hyper's `enforce_version` adds for the client's version.
    if http10 {
        if !last && !keep_alive_token {
            extend(dst, b"connection: keep-alive\r\n");
        }
    } else if last && !close_token {
        extend(dst, b"connection: close\r\n");
    }

    let framing = match framing {
        Some(f) => f,
        None => match body {
            BodySize::Unknown if http10 || no_body => {
                if !no_body {
                    last = true;
                }
                Framing::UntilClose
            }
            BodySize::Unknown => {
                extend(dst, b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodySize::None | BodySize::Known(0) => {
                if !no_body {
                    extend(dst, b"content-length: 0\r\n");
                }
                Framing::Empty
            }
            BodySize::Known(n) => {
                if !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
                    extend(dst, b"content-length: ");
                    decimal(dst, n);
                    extend(dst, b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    let framing = if no_body { Framing::Empty } else { framing };
    if !wrote_date {
        extend(dst, b"date: ");
        date(dst);
        extend(dst, b"\r\n");
    }
    extend(dst, b"\r\n");
    Encoded { framing, last }
}

/// hyper's answer to a head over `max_header_bytes` (the connection
/// closes after it).
pub(super) fn too_large(dst: &mut Vec<u8>) {
    extend(
        dst,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
    );
    date(dst);
    extend(dst, b"\r\n\r\n");
}

fn extend(dst: &mut Vec<u8>, bytes: &[u8]) {
    dst.extend_from_slice(bytes);
}

/// Appends `n` in decimal: the one writer of numbers into heads and log
/// lines (the HTTP/1 encoder, the proxy's upstream exchange, the access
/// log), no formatter machinery on the hot path; two digits a division
/// (a head carries several numbers: `Content-Length`, `RateLimit-*`).
pub(crate) fn decimal(dst: &mut Vec<u8>, mut n: u64) {
    // Statuses, octets, small sizes: appends of a constant length
    // (stores, not a `memcpy` call for the digits' variable length).
    let digit = |d: u64| b'0' + (d % 10) as u8;
    match n {
        0..=9 => return dst.push(digit(n)),
        10..=99 => return dst.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => return dst.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        1000..=9999 => {
            return dst.extend_from_slice(&[digit(n / 1000), digit(n / 100), digit(n / 10), digit(n)]);
        }
        _ => {}
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[(n % 100) as usize]);
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[n as usize]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    dst.extend_from_slice(&digits[at..]);
}

/// `00` to `99`.
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// A `Content-Length` value as hyper reads it: digits only.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Whether a comma-separated header value has `token` (any case). As
/// hyper (`HeaderValue::to_str`), a value with bytes other than visible
/// ASCII, space and tab has no tokens: `Connection: close, \xff` keeps a
/// connection open on both paths.
pub(super) fn has_token(value: &[u8], token: &str) -> bool {
    if !value.iter().all(|b| matches!(b, b'\t' | b' '..=b'~')) {
        return false;
    }
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

thread_local! {
    /// The second last formatted, and its `Date` value (IMF-fixdate, 29
    /// bytes): each worker formats the date once a second, as hyper does.
    static DATE_CACHE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current time as an HTTP date.
fn date(dst: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE_CACHE.with_borrow_mut(|(cached, value)| {
        if *cached != secs {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == value.len() {
                value.copy_from_slice(formatted.as_bytes());
                *cached = secs;
            }
        }
        dst.extend_from_slice(value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(
        method: &Method,
        version: Version,
        keep_alive: bool,
        status: u16,
        headers: &[(&str, &str)],
        body: BodySize,
    ) -> (String, Encoded) {
        let none = EncodedHeaders::default();
        head_added(method, version, keep_alive, status, (headers, &none), body)
    }

    /// [`head`] with headers a plugin added next to the map.
    fn head_added(
        method: &Method,
        version: Version,
        keep_alive: bool,
        status: u16,
        (headers, added): (&[(&str, &str)], &EncodedHeaders),
        body: BodySize,
    ) -> (String, Encoded) {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut dst = Vec::new();
        let req = Answering {
            method,
            version,
            keep_alive,
        };
        let enc = encode(
            &mut dst,
            &req,
            StatusCode::from_u16(status).unwrap(),
            (None, &map, added),
            body,
        );
        let text = String::from_utf8(dst).unwrap();
        // The date changes; everything else is compared whole.
        let (before, after) = text.split_once("date: ").expect("a date");
        let (date, rest) = after.split_once("\r\n").unwrap();
        assert_eq!(date.len(), 29, "{date}");
        assert!(date.ends_with(" GMT"), "{date}");
        (format!("{before}{rest}"), enc)
    }

    const GET: &Method = &Method::GET;

    #[test]
    fn a_known_length_is_written_with_the_headers_in_order() {
        let (text, enc) = head(
            GET,
            Version::HTTP_11,
            true,
            200,
            &[("content-type", "text/html"), ("etag", "\"a\"")],
            BodySize::Known(1024),
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\netag: \"a\"\r\ncontent-length: 1024\r\n\r\n"
        );
        assert_eq!(
            enc,
            Encoded {
                framing: Framing::Length(1024),
                last: false
            }
        );
    }

    #[test]
    fn added_headers_follow_the_maps_on_every_answer_with_a_head() {
        let block = bext_plugin_abi::HeaderBlock::new(&[
            (http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                http::HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from_static("5"),
            ),
        ])
        .unwrap();
        let mut added = EncodedHeaders::default();
        added.push_block(&block).unwrap();
        added
            .push_number(&http::HeaderName::from_static("ratelimit-reset"), 60)
            .unwrap();
        let lines = "x-frame-options: DENY\r\nratelimit-limit: 5\r\nratelimit-reset: 60\r\n";
        let app = [("content-type", "text/html")];
        let (text, enc) = head_added(GET, Version::HTTP_11, true, 200, (&app, &added), BodySize::Known(3));
        assert_eq!(
            text,
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n{lines}content-length: 3\r\n\r\n")
        );
        assert_eq!(enc.framing, Framing::Length(3));
        // HEAD and 304 keep their headers (and no body), as the map's.
        let (text, enc) = head_added(
            &Method::HEAD,
            Version::HTTP_11,
            true,
            200,
            (&[], &added),
            BodySize::None,
        );
        assert_eq!(text, format!("HTTP/1.1 200 OK\r\n{lines}\r\n"));
        assert_eq!(enc.framing, Framing::Empty);
        let (text, _) = head_added(GET, Version::HTTP_11, true, 304, (&[], &added), BodySize::None);
        assert_eq!(text, format!("HTTP/1.1 304 Not Modified\r\n{lines}\r\n"));
        // A 1xx from a service becomes hyper's bare 500: nothing added.
        let (text, _) = head_added(GET, Version::HTTP_11, true, 103, (&app, &added), BodySize::None);
        assert_eq!(
            text,
            "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_streaming_body_is_chunked_on_http11_and_ends_the_connection_on_http10() {
        let (text, enc) = head(GET, Version::HTTP_11, true, 200, &[], BodySize::Unknown);
        assert_eq!(text, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(
            enc,
            Encoded {
                framing: Framing::Chunked,
                last: false
            }
        );
        let (text, enc) = head(GET, Version::HTTP_10, true, 200, &[], BodySize::Unknown);
        assert_eq!(text, "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n");
        assert_eq!(
            enc,
            Encoded {
                framing: Framing::UntilClose,
                last: true
            }
        );
        // The handler's own Transfer-Encoding does not frame the body twice.
        let (text, _) = head(
            GET,
            Version::HTTP_11,
            true,
            200,
            &[("transfer-encoding", "chunked")],
            BodySize::Unknown,
        );
        assert_eq!(text, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    }

    #[test]
    fn a_declared_length_frames_a_streaming_body() {
        let (text, enc) = head(
            GET,
            Version::HTTP_11,
            true,
            200,
            &[("content-length", "5")],
            BodySize::Unknown,
        );
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(enc.framing, Framing::Length(5));
        // Two lines: the first counts, as in hyper.
        let (text, _) = head(
            GET,
            Version::HTTP_11,
            true,
            200,
            &[("content-length", "5"), ("content-length", "5")],
            BodySize::Known(5),
        );
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    }

    #[test]
    fn head_204_and_304_have_no_body() {
        // HEAD keeps the length its GET would have.
        let (text, enc) = head(
            &Method::HEAD,
            Version::HTTP_11,
            true,
            200,
            &[("content-length", "1024")],
            BodySize::None,
        );
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\n");
        assert_eq!(enc.framing, Framing::Empty);
        let (text, enc) = head(&Method::HEAD, Version::HTTP_11, true, 200, &[], BodySize::Unknown);
        assert_eq!(text, "HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            enc,
            Encoded {
                framing: Framing::Empty,
                last: false
            }
        );
        let (text, enc) = head(GET, Version::HTTP_11, true, 304, &[("etag", "\"a\"")], BodySize::None);
        assert_eq!(text, "HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n");
        assert_eq!(enc.framing, Framing::Empty);
        let (text, _) = head(GET, Version::HTTP_11, true, 204, &[], BodySize::Known(3));
        assert_eq!(text, "HTTP/1.1 204 No Content\r\n\r\n");
        // An empty 200 says so.
        let (text, _) = head(GET, Version::HTTP_11, true, 200, &[], BodySize::None);
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn connection_tokens_follow_the_clients_version() {
        // HTTP/1.1, client asked to close: said so, and closed.
        let (text, enc) = head(GET, Version::HTTP_11, false, 404, &[], BodySize::Known(0));
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(enc.last);
        // The handler closing: not said twice.
        let (text, enc) = head(
            GET,
            Version::HTTP_11,
            true,
            200,
            &[("connection", "Close")],
            BodySize::Known(0),
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(enc.last);
        // HTTP/1.0 keep-alive: the token is answered.
        let (text, enc) = head(GET, Version::HTTP_10, true, 200, &[], BodySize::Known(2));
        assert_eq!(
            text,
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n"
        );
        assert!(!enc.last);
        // HTTP/1.0 without it: closed, nothing added.
        let (text, enc) = head(GET, Version::HTTP_10, false, 200, &[], BodySize::Known(2));
        assert_eq!(text, "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n");
        assert!(enc.last);
    }

    /// An upstream's fields written as they came read as the map built
    /// from them writes them: same lines, same order, same framing, for
    /// the answers the exchange hands on.
    #[test]
    fn an_upstreams_fields_are_written_as_their_map_would_be() {
        let block = bext_plugin_abi::HeaderBlock::new(&[
            (http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (http::header::VARY, HeaderValue::from_static("Origin")),
        ])
        .unwrap();
        let heads: &[&[u8]] = &[
            // nginx's, as the benches' upstream sends it.
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 02:00:00 GMT\r\n\
              Content-Type: text/html\r\nContent-Length: 1024\r\nLast-Modified: Mon, 07 Dec 2026 01:00:00 GMT\r\n\
              Connection: keep-alive\r\nETag: \"6932\"\r\nAccept-Ranges: bytes\r\n\r\n",
            // Names in any case, repeated ones side by side, values with
            // space around them or none, bare LF lines, no date.
            b"HTTP/1.1 201 Created\nSET-COOKIE: a=1\nset-cookie: b=2; Path=/\nX-Empty:\nX-Spaced:   v  w  \n\
              Vary: accept-encoding\nlocation: /x?y=1\nContent-Length: 05, 5\n\n",
            // Framed by chunks: no length written from the upstream.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:b\r\nContent-Length: 3\r\n\r\n",
            // What `Connection` names goes, hop-by-hop fields go.
            b"HTTP/1.1 404 Not Found\r\nX-Secret: 1\r\nConnection: x-secret, Keep-Alive\r\nKeep-Alive: timeout=5\r\n\
              Upgrade: h2c\r\nTE: trailers\r\nX-Kept: \xff\tok\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nContent-Length: 12\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nDATE: Mon, 07 Dec 2026 02:00:00 GMT\r\n\r\n",
        ];
        for head in heads {
            for (method, body) in [
                (GET, BodySize::Known(1024)),
                (GET, BodySize::Unknown),
                (GET, BodySize::None),
                (&Method::HEAD, BodySize::None),
            ] {
                for version in [Version::HTTP_11, Version::HTTP_10] {
                    let raw = crate::apps::fields_of(head, method == Method::HEAD);
                    assert!(raw.in_map_order());
                    let map = raw.clone().into_map();
                    let mut added = EncodedHeaders::default();
                    added.push_block(&block).unwrap();
                    let none = HeaderMap::new();
                    let req = Answering {
                        method,
                        version,
                        keep_alive: true,
                    };
                    let status = StatusCode::from_bytes(&head[9..12]).unwrap();
                    let (mut copied, mut mapped) = (Vec::new(), Vec::new());
                    let c = encode(&mut copied, &req, status, (Some(&raw), &none, &added), body);
                    let m = encode(&mut mapped, &req, status, (None, &map, &added), body);
                    // The writer's own date may be a second apart.
                    let lines = |out: &[u8]| -> Vec<Vec<u8>> {
                        let dated = |l: &[u8]| l.starts_with(b"date: ") && !l.windows(8).any(|w| w == b"02:00:00");
                        (out.split(|&b| b == b'\n'))
                            .map(|l| if dated(l) { b"date: <now>".to_vec() } else { l.to_vec() })
                            .collect()
                    };
                    assert_eq!(
                        (lines(&copied), c),
                        (lines(&mapped), m),
                        "{method} {body:?} {version:?}: {}",
                        String::from_utf8_lossy(&copied)
                    );
                }
            }
        }
    }

    #[test]
    fn an_informational_status_from_a_handler_becomes_a_500_that_closes() {
        let (text, enc) = head(
            GET,
            Version::HTTP_11,
            true,
            103,
            &[("link", "</a>")],
            BodySize::Known(3),
        );
        assert_eq!(
            text,
            "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(enc.last);
    }

    #[test]
    fn decimals() {
        for n in [
            0,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            404,
            999,
            1000,
            1024,
            9999,
            10_000,
            999_999,
            1_000_000,
            u64::MAX,
        ] {
            let mut dst = Vec::new();
            decimal(&mut dst, n);
            assert_eq!(dst, n.to_string().as_bytes());
        }
    }

    #[test]
    fn lengths_parse_as_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"1024"), Some(1024));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1,1", b"99999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
