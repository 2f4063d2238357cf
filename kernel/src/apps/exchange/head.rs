//! The heads of bext's own HTTP/1.1 exchange with an upstream: the
//! request head written straight into one buffer, and the answer head
//! parsed (httparse) into what the client's response needs: its fields
//! kept where they lie in the bytes read ([`RawFields`]), hop-by-hop
//! fields gone and its body's framing decided.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};

use super::raw::{Field, RawFields};
use crate::server::h1::decimal;

/// The largest answer head read: hyper's default read buffer limit, so an
/// upstream's answer is refused exactly where hyper's client refused it.
pub(crate) const MAX_HEAD: usize = 8192 + 4096 * 100;

/// The most fields an answer head may have (as hyper's client).
const MAX_HEADERS: usize = 100;

/// Why an upstream's answer head is refused (the client gets 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x as RFC 9112 writes it (httparse's reason).
    #[error("the upstream's answer head is malformed: {0}")]
    Malformed(httparse::Error),
    /// Longer than [`MAX_HEAD`], or more than 100 fields.
    #[error("the upstream's answer head is too large")]
    TooLarge,
    /// A status outside 100..=999.
    #[error("the upstream answered with status {0}")]
    Status(u16),
    /// Content-Length values that disagree or are not a number: the body's
    /// end is unknown (response splitting).
    #[error("the upstream's answer has an invalid or conflicting Content-Length")]
    ContentLength,
    /// `chunked` applied twice: the body's end is ambiguous.
    #[error("the upstream's answer has a Transfer-Encoding with chunked twice")]
    TransferEncoding,
    /// A transfer coding other than `chunked` (`gzip, chunked`): bext
    /// would hand on coded bytes without a label the client could read
    /// them by (nginx refuses them too).
    #[error("the upstream's answer has a Transfer-Encoding other than chunked")]
    UnknownCoding,
    /// A 101 to a request that asked for no upgrade.
    #[error("the upstream switched protocols unasked")]
    UnaskedSwitch,
}

/// How the answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a HEAD's answer, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// An answer head, parsed.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// The end-to-end fields, in the upstream's order, and the length.
    pub(crate) fields: RawFields,
    pub(crate) framing: Framing,
    /// Whether the connection may take another request after this
    /// answer's body.
    pub(crate) keep_alive: bool,
}

/// Writes the head of a request for an HTTP/1.1 upstream: `target`'s
/// origin form, `host`, the request's `headers` as they are (the proxy
/// made them final: no hop-by-hop ones, no `Host`, no forwarding fields),
/// bext's `own` fields (its `X-Forwarded-*`), and a `Content-Length` for a
/// body of `body_len` bytes (one the client sent too, even 0, stays).
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    method: &Method,
    target: &Uri,
    host: &HeaderValue,
    headers: &HeaderMap,
    own: &[(&HeaderName, HeaderValue)],
    body_len: usize,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length = body_len > 0;
    let fields = headers.iter().chain(own.iter().map(|(n, v)| (*n, v)));
    for (name, value) in fields {
        if name == header::CONTENT_LENGTH {
            length = true;
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if length {
        out.extend_from_slice(b"content-length: ");
        decimal(out, body_len as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The answer head at the front of `buf`, split off it once whole
/// (interim 1xx answers before it are read and dropped, as hyper's client
/// does); `None` while more bytes are needed. `head_request`: the answer
/// to a HEAD has no body whatever its fields say.
pub(crate) fn parse_response(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    loop {
        let Some(head) = parse_one(buf, head_request)? else {
            return Ok(None);
        };
        if head.status.is_informational() {
            continue;
        }
        return Ok(Some(head));
    }
}

/// What the parse does with a field, by its name (any case).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Connection,
    TransferEncoding,
    ContentLength,
    /// Another field that concerns one connection (RFC 9110 §7.6.1),
    /// never relayed.
    HopByHop,
    /// An end-to-end field.
    Other,
}

/// `name`'s kind: most names are ruled out by their length alone.
fn known(name: &[u8]) -> Known {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        2 if is(b"te") => Known::HopByHop,
        7 if is(b"trailer") || is(b"upgrade") => Known::HopByHop,
        10 if is(b"connection") => Known::Connection,
        10 if is(b"keep-alive") => Known::HopByHop,
        14 if is(b"content-length") => Known::ContentLength,
        16 if is(b"proxy-connection") => Known::HopByHop,
        17 if is(b"transfer-encoding") => Known::TransferEncoding,
        18 if is(b"proxy-authenticate") => Known::HopByHop,
        19 if is(b"proxy-authorization") => Known::HopByHop,
        _ => Known::Other,
    }
}

/// The longest name a `HeaderName` may have (http's limit): a longer one
/// is refused here, where the map it may become would refuse it.
const MAX_NAME: usize = (1 << 16) - 1;

fn parse_one(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    if buf.is_empty() {
        // Nothing read yet (a kept connection's buffer starts empty).
        return Ok(None);
    }
    // Uninitialised slots: a hundred empty headers written for every
    // answer cost more than parsing its eight.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e)),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let code = res.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status(code))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(HeadError::UnaskedSwitch);
    }
    let http10 = res.version == Some(0);
    let start = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - start) as u32;
    // What `Connection` lists goes with it; `close` and `keep-alive`
    // decide the connection's reuse.
    let mut close = http10;
    let mut listed: Vec<&[u8]> = Vec::new();
    let mut chunked = None;
    let mut length: Option<u64> = None;
    // One pass: each name is looked at once, the framing fields read, the
    // hop-by-hop ones dropped; the others are kept where they lie.
    let mut fields = Vec::with_capacity(res.headers.len());
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if name.len() > MAX_NAME {
            return Err(HeadError::Malformed(httparse::Error::HeaderName));
        }
        match known(name) {
            Known::Connection => {
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        close &= !http10;
                    } else {
                        listed.push(token);
                    }
                }
            }
            Known::TransferEncoding => {
                if !only_chunked(h.value) {
                    return Err(HeadError::UnknownCoding);
                }
                for _ in tokens(h.value) {
                    if chunked == Some(true) {
                        return Err(HeadError::TransferEncoding);
                    }
                    chunked = Some(true);
                }
                chunked.get_or_insert(false);
            }
            Known::ContentLength => {
                // Written anew after the fields, once, in its plain form
                // (`5, 5` and `05` are one length: RFC 9110 §8.6), or not
                // at all when `Transfer-Encoding` frames the body.
                for value in h.value.split(|&b| b == b',') {
                    let n = digits(trim(value)).ok_or(HeadError::ContentLength)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HeadError::ContentLength);
                    }
                    length = Some(n);
                }
            }
            Known::HopByHop => {}
            Known::Other => {
                let name = at(name);
                // An empty value may not point into the head.
                let value = if h.value.is_empty() { 0 } else { at(h.value) };
                fields.push(Field {
                    name: (name, name + h.name.len() as u32),
                    value: (value, value + h.value.len() as u32),
                });
            }
        }
    }
    if !listed.is_empty() {
        fields.retain(|f| {
            let name = &buf[f.name.0 as usize..f.name.1 as usize];
            !listed.iter().any(|l| l.eq_ignore_ascii_case(name))
        });
    }
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (chunked, length) {
        _ if bodiless => Framing::Empty,
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    // A bodiless answer that announces a body of its own (a 204 with a
    // length, any with `chunked`) may be followed by one: its connection
    // is not kept, so those bytes are never read as another answer.
    let announced = chunked == Some(true) || (status == StatusCode::NO_CONTENT && length.is_some_and(|n| n > 0));
    // A 204 has no `Content-Length` (RFC 9110 §8.6; nginx drops an
    // upstream's): hyper's HTTP/2 writer would pass it on. A 304 keeps
    // its representation's, as nginx does.
    let length = length.filter(|_| chunked.is_none() && status != StatusCode::NO_CONTENT);
    let fields = RawFields::new(buf.split_to(len), fields, length);
    Ok(Some(Head {
        status,
        fields,
        framing,
        keep_alive: !close && framing != Framing::Close && !(bodiless && announced),
    }))
}

/// Whether a `Transfer-Encoding` value names no coding but `chunked`:
/// any other would reach the client as coded bytes without a label (see
/// [`HeadError::UnknownCoding`]; hyper's client path asks this too).
pub(crate) fn only_chunked(value: &[u8]) -> bool {
    tokens(value).all(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// The comma-separated tokens of a field value, trimmed, empty ones
/// skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of at most 19 digits, nothing else.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Head {
        /// The map the fields make, as the client's response would have it.
        fn headers(&self) -> HeaderMap {
            self.fields.clone().into_map()
        }
    }

    fn parse(raw: &[u8]) -> Result<Option<Head>, HeadError> {
        parse_response(&mut BytesMut::from(raw), false)
    }

    #[test]
    fn the_request_head_is_one_buffer_with_a_length_for_its_body() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.append("x-a", HeaderValue::from_static("1"));
        let host = HeaderValue::from_static("up.test");
        let xff = HeaderName::from_static("x-forwarded-for");
        let own = [(&xff, HeaderValue::from_static("10.0.0.1"))];
        let mut out = Vec::new();
        write_request(
            &mut out,
            &Method::POST,
            &"/p?q=1".parse().unwrap(),
            &host,
            &h,
            &own,
            16384,
        );
        assert_eq!(
            out,
            &b"POST /p?q=1 HTTP/1.1\r\nhost: up.test\r\nx-a: 1\r\nx-forwarded-for: 10.0.0.1\r\ncontent-length: 16384\r\n\r\n"[..]
        );
        let mut out = Vec::new();
        h.remove(header::CONTENT_LENGTH);
        write_request(&mut out, &Method::GET, &Uri::default(), &host, &h, &[], 0);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: up.test\r\nx-a: 1\r\n\r\n");
        // A client's `Content-Length: 0` stays said.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let mut out = Vec::new();
        write_request(&mut out, &Method::PUT, &"/".parse().unwrap(), &host, &h, &[], 0);
        assert!(
            out.ends_with(b"content-length: 0\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn a_head_split_anywhere_waits_for_its_end_and_leaves_the_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        for cut in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..cut]);
            if cut < raw.len() - 2 {
                assert!(parse_response(&mut buf, false).unwrap().is_none(), "cut at {cut}");
                buf.extend_from_slice(&raw[cut..]);
            } else {
                buf.extend_from_slice(&raw[cut..]);
            }
            let head = parse_response(&mut buf, false).unwrap().unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(head.framing, Framing::Length(2));
            assert_eq!(head.headers()["content-type"], "text/plain");
            assert!(head.keep_alive);
            assert_eq!(&buf[..], b"ok");
        }
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_lists_are_dropped() {
        let head = parse(
            b"HTTP/1.1 200 OK\r\nX-Early: 1\r\nConnection: X-Secret, keep-alive, x-EARLY\r\nX-Secret: 1\r\nx-secret: 2\r\n\
              Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nProxy-Connection: x\r\nTE: trailers\r\n\
              Trailer: x\r\nUpgrade: h2c\r\nX-Kept: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        let headers = head.headers();
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["content-length", "set-cookie", "x-kept"]);
        assert_eq!(head.headers().get_all("set-cookie").iter().count(), 2);
        assert!(head.keep_alive);
    }

    #[test]
    fn conflicting_lengths_and_chunked_before_another_coding_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw).unwrap_err(),
                HeadError::ContentLength,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let te = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!(te.unwrap_err(), HeadError::UnknownCoding);
        let te = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(te.unwrap_err(), HeadError::UnknownCoding);
        let te = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(te.unwrap_err(), HeadError::TransferEncoding);
        // The same length twice is one length (RFC 9110 §8.6).
        let same = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(same.unwrap().unwrap().framing, Framing::Length(5));
    }

    #[test]
    fn transfer_encoding_frames_the_body_over_a_content_length() {
        let head = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.headers().is_empty(), "{:?}", head.headers());
        // Codings bext would pass on unlabelled are refused.
        for te in ["gzip, Chunked", "gzip", "identity", "chunked, chunked"] {
            let answer = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert!(parse(answer.as_bytes()).is_err(), "{te}");
        }
        let head = parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Close, false));
    }

    #[test]
    fn head_204_and_304_have_no_body_whatever_their_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n";
        let head = parse_response(&mut BytesMut::from(&raw[..]), true).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Empty);
        assert_eq!(
            head.headers()["content-length"],
            "1024",
            "a HEAD's answer keeps its length"
        );
        // Announcing a body it may still send, the answer's connection is
        // not kept; a 304's length is its representation's, and is.
        for (status, field, kept) in [
            ("204 No Content", "Transfer-Encoding: chunked", false),
            ("304 Not Modified", "Transfer-Encoding: chunked", false),
            ("204 No Content", "Content-Length: 5", false),
            ("204 No Content", "Content-Length: 0", true),
            ("304 Not Modified", "Content-Length: 5", true),
        ] {
            let raw = format!("HTTP/1.1 {status}\r\n{field}\r\n\r\n");
            let head = parse(raw.as_bytes()).unwrap().unwrap();
            assert_eq!(
                (head.framing, head.keep_alive),
                (Framing::Empty, kept),
                "{status} {field}"
            );
            let length = head.headers().get("content-length").cloned();
            assert_eq!(
                length.is_some(),
                status.starts_with("304") && field.starts_with("Content-Length"),
                "{status} {field}: only a 304 keeps its length"
            );
        }
    }

    #[test]
    fn a_length_of_equal_values_goes_on_as_one_plain_number() {
        for field in [
            "Content-Length: 5, 5",
            "Content-Length: 05",
            "Content-Length: 5\r\nContent-Length: 5",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\n{field}\r\n\r\nhello");
            let head = parse(raw.as_bytes()).unwrap().unwrap();
            let headers = head.headers();
            let lengths: Vec<_> = headers
                .get_all("content-length")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!((lengths, head.framing), (vec!["5"], Framing::Length(5)), "{field}");
        }
    }

    #[test]
    fn interim_answers_are_skipped_and_an_unasked_switch_refused() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let head = parse_response(&mut buf, false).unwrap().unwrap();
        assert_eq!((head.status, head.framing), (StatusCode::CREATED, Framing::Length(0)));
        assert!(buf.is_empty());
        // Only the interim answer arrived yet.
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
        assert!(parse_response(&mut buf, false).unwrap().is_none());
        assert!(buf.is_empty());
        let switch = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(switch.unwrap_err(), HeadError::UnaskedSwitch);
    }

    #[test]
    fn hostile_heads_are_refused() {
        // obs-fold (a value continued on the next line), a space before
        // the colon, a bare CR, a NUL in a value, a status of two digits.
        for raw in [
            &b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\0\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(HeadError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(raw),
                parse(raw)
            );
        }
        // Too many fields, and a head that never ends.
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let endless = format!("HTTP/1.1 200 OK\r\nX-A: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse(endless.as_bytes()).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn bare_lf_lines_read_as_hyper_read_them() {
        let head = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok")
            .unwrap()
            .unwrap();
        assert_eq!((head.status, head.framing), (StatusCode::OK, Framing::Length(2)));
        assert_eq!(head.headers()["x-a"], "1");
    }

    #[test]
    fn http_1_0_answers_keep_the_connection_only_when_they_say_so() {
        let head = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive);
        let head = parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
        let head = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
    }
}
