//! An upstream answer's fields as it sent them: the head's bytes with
//! their names lower-cased in place, and where each field lies. bext's
//! HTTP/1 writer copies them to the client as they are (most lines are
//! already `name: value\r\n`); a `HeaderMap` is built from them only when
//! something reads or changes the response's headers (an `on_response`
//! hook, the app's configured headers, HTTP/2, hyper's writer, a plugin
//! asking an app for a response). Parsing every name into a `HeaderName`
//! and hashing it into a map, for a writer that walks the map once to
//! write the same bytes back, was a fifth of a proxied request's cost.
//!
//! The fields ride beside the response, in a [`KeptFields`] the server
//! hands down with the request (only the HTTP/1 fast path keeps them, and
//! only when no `on_response` hook, configured header or HSTS will read
//! the map: the proxy builds the map at once otherwise). Whatever touches
//! a response's map first calls [`KeptFields::move_into`], so nobody
//! sees a difference but the cost.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// An answer's end-to-end fields, in the upstream's order, and the
/// `Content-Length` that follows them (hop-by-hop fields, `Connection`'s
/// list and the framing fields are gone: see `head::parse_response`).
#[derive(Clone, Debug)]
pub(crate) struct RawFields {
    /// The head's bytes, names lower-cased; values share them.
    bytes: Bytes,
    fields: Vec<Field>,
    /// Written after the fields, in its plain form: the map had it last.
    length: Option<u64>,
    /// Whether a `Date` is among the fields (the writer adds none then).
    date: bool,
}

/// Where a field lies in the head's bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Field {
    pub(super) name: (u32, u32),
    pub(super) value: (u32, u32),
}

impl Field {
    fn name<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.name.0 as usize..self.name.1 as usize]
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.value.0 as usize..self.value.1 as usize]
    }

    /// The field's whole line when it is written as the writer would
    /// write it (`name: value\r\n`), to be copied as it is.
    fn line(&self, bytes: &[u8]) -> Option<std::ops::Range<usize>> {
        let (name_end, value) = (self.name.1 as usize, self.value.0 as usize..self.value.1 as usize);
        let end = value.end + 2;
        (!value.is_empty()
            && value.start == name_end + 2
            && &bytes[name_end..value.start] == b": "
            && bytes.get(value.end..end) == Some(b"\r\n"))
        .then_some(self.name.0 as usize..end)
    }
}

impl RawFields {
    /// `head` holds the answer's head; `fields` lie in it, in order.
    /// Their names are lower-cased here, as the writer writes every name.
    pub(super) fn new(mut head: BytesMut, fields: Vec<Field>, length: Option<u64>) -> RawFields {
        let mut date = false;
        for f in &fields {
            let name = &mut head[f.name.0 as usize..f.name.1 as usize];
            name.make_ascii_lowercase();
            date |= &name[..] == b"date";
        }
        RawFields {
            bytes: head.freeze(),
            fields,
            length,
            date,
        }
    }

    /// Whether a map would iterate the fields in their order: it does
    /// unless a name comes back after another came between (a map groups
    /// a name's values where it first appeared). Otherwise the map is
    /// built at once, so that the client gets what the map would write.
    pub(crate) fn in_map_order(&self) -> bool {
        // Names' lengths seen, as bits: most names are ruled out by it.
        let mut lengths = 0u64;
        let b = &self.bytes[..];
        for (i, f) in self.fields.iter().enumerate() {
            let name = f.name(b);
            let bit = 1u64 << name.len().min(63);
            if lengths & bit != 0
                && i > 0
                && self.fields[i - 1].name(b) != name
                && self.fields[..i - 1].iter().any(|g| g.name(b) == name)
            {
                return false;
            }
            lengths |= bit;
        }
        true
    }

    /// The `Content-Length` to write after the fields.
    pub(crate) fn length(&self) -> Option<u64> {
        self.length
    }

    /// Whether the upstream sent a `Date`.
    pub(crate) fn has_date(&self) -> bool {
        self.date
    }

    /// Appends the fields to `dst` as HTTP/1 lines (`name: value\r\n`):
    /// runs of lines already in that form in one copy.
    pub(crate) fn write_lines(&self, dst: &mut Vec<u8>) {
        let b = &self.bytes[..];
        let mut run = 0..0;
        for f in &self.fields {
            match f.line(b) {
                Some(line) if line.start == run.end && !run.is_empty() => run.end = line.end,
                Some(line) => {
                    dst.extend_from_slice(&b[run]);
                    run = line;
                }
                None => {
                    dst.extend_from_slice(&b[run]);
                    run = 0..0;
                    dst.extend_from_slice(f.name(b));
                    dst.extend_from_slice(b": ");
                    dst.extend_from_slice(f.value(b));
                    dst.extend_from_slice(b"\r\n");
                }
            }
        }
        dst.extend_from_slice(&b[run]);
    }

    /// The map the fields make: each appended in order, then the length,
    /// as the map was built before the fields were kept raw.
    pub(crate) fn into_map(self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len() + 1);
        for f in &self.fields {
            // httparse let through only what these accept (RFC 9110's
            // token characters; visible bytes, space and tab), and the
            // parse refused longer names than a `HeaderName` may have.
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(f.name(&self.bytes)),
                HeaderValue::from_maybe_shared(self.bytes.slice(f.value.0 as usize..f.value.1 as usize)),
            ) else {
                debug_assert!(false, "a field httparse took that http refuses");
                continue;
            };
            headers.append(name, value);
        }
        if let Some(n) = self.length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        headers
    }

    /// The map with these fields first, then what `headers` held.
    pub(crate) fn prepend_to(self, headers: &mut HeaderMap) {
        let later = std::mem::replace(headers, self.into_map());
        let mut name = None;
        for (n, value) in later {
            // A name comes with its first value only.
            if let Some(n) = n {
                name = Some(n);
            }
            if let Some(name) = &name {
                headers.append(name, value);
            }
        }
    }
}

/// Where an upstream answer's fields go on their way to the client: kept
/// as they came ([`RawFields`]) for bext's HTTP/1 writer, or into the
/// response's map at once when something will read the map (hyper writes
/// the response, an `on_response` hook runs, the app has `headers` or
/// HSTS). Made by the server per request and handed down to the app by
/// reference: carrying the fields in the response's extensions cost a
/// proxied GET ~450 instructions (three allocations), a `&mut` costs none.
#[derive(Debug, Default)]
pub(crate) struct KeptFields {
    keep: bool,
    fields: Option<RawFields>,
}

impl KeptFields {
    /// `keep`: the response's writer copies raw fields (bext's HTTP/1
    /// fast path); otherwise every answer's fields go into its map.
    pub(crate) fn new(keep: bool) -> Self {
        KeptFields { keep, fields: None }
    }

    /// Every answer's fields into its map: for whoever reads the map.
    pub(crate) fn map_only() -> Self {
        Self::new(false)
    }

    /// From now on answers' fields go into their map (called before the
    /// app answers, by what will read the map).
    pub(crate) fn need_map(&mut self) {
        self.keep = false;
    }

    /// Whether an answer's fields may stay raw.
    pub(crate) fn keeps(&self) -> bool {
        self.keep
    }

    /// Keeps `fields` for the writer (the caller checked [`Self::keeps`]).
    pub(crate) fn keep(&mut self, fields: RawFields) {
        self.fields = Some(fields);
    }

    /// Puts the kept fields, if any, into `headers`, before what it
    /// already holds. Whatever reads or changes a response's headers
    /// calls this first.
    pub(crate) fn move_into(&mut self, headers: &mut HeaderMap) {
        if let Some(raw) = self.fields.take() {
            raw.prepend_to(headers);
        }
    }

    /// The kept fields, taken: for the writer.
    pub(crate) fn take(&mut self) -> Option<RawFields> {
        self.fields.take()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields_of;
    use super::*;

    fn names(map: &HeaderMap) -> Vec<(&str, &[u8])> {
        map.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect()
    }

    #[test]
    fn lines_are_copied_as_the_writer_writes_them() {
        let raw = fields_of(
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\nX-B:2\r\nX-C:  3 \r\nX-D: \r\n\
              Content-Length: 2\r\nSet-Cookie: a\r\n\r\nok",
            false,
        );
        let mut out = Vec::new();
        raw.write_lines(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "server: up\r\nx-a: 1\r\nx-b: 2\r\nx-c: 3\r\nx-d: \r\nset-cookie: a\r\n"
        );
        assert_eq!((raw.length(), raw.has_date()), (Some(2), false));
        let map = raw.into_map();
        assert_eq!(
            names(&map),
            [
                ("server", &b"up"[..]),
                ("x-a", b"1"),
                ("x-b", b"2"),
                ("x-c", b"3"),
                ("x-d", b""),
                ("set-cookie", b"a"),
                ("content-length", b"2"),
            ]
        );
    }

    #[test]
    fn a_name_that_comes_back_later_is_not_in_a_maps_order() {
        let back = fields_of(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nX-A: 1\r\nset-cookie: b\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(!back.in_map_order());
        // The map groups them where the name first appeared.
        assert_eq!(
            names(&back.into_map()),
            [
                ("set-cookie", &b"a"[..]),
                ("set-cookie", b"b"),
                ("x-a", b"1"),
                ("content-length", b"0")
            ]
        );
        for ordered in [
            &b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nset-cookie: b\r\nX-A: 1\r\n\r\n"[..],
            // Same length, other names.
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-C: 4\r\n\r\n",
        ] {
            assert!(fields_of(ordered, false).in_map_order());
        }
    }

    #[test]
    fn fields_go_before_what_the_map_held() {
        let raw = fields_of(
            b"HTTP/1.1 200 OK\r\nDate: x\r\nVary: a\r\nContent-Length: 1\r\n\r\nx",
            false,
        );
        assert!(raw.has_date());
        let mut headers = HeaderMap::new();
        headers.append("vary", HeaderValue::from_static("b"));
        headers.append("x-late", HeaderValue::from_static("1"));
        headers.append("x-late", HeaderValue::from_static("2"));
        let mut kept = KeptFields::new(true);
        assert!(kept.keeps());
        kept.keep(raw);
        kept.move_into(&mut headers);
        assert!(kept.take().is_none(), "taken");
        assert_eq!(
            names(&headers),
            [
                ("date", &b"x"[..]),
                ("vary", b"a"),
                ("vary", b"b"),
                ("content-length", b"1"),
                ("x-late", b"1"),
                ("x-late", b"2"),
            ]
        );
        // Nothing to do the second time.
        kept.move_into(&mut headers);
        assert_eq!(headers.len(), 6);
        kept.need_map();
        assert!(!kept.keeps() && !KeptFields::map_only().keeps());
    }
}
