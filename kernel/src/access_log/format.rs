//! An access log line: what the request's head gave ([`Head`], taken on
//! arrival) and what its end gave ([`Record`]), written as JSON or as
//! nginx's `combined` by the log's own thread. Everything from the client
//! is bounded and escaped: a line is one line, whatever the client sent.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bext_plugin_abi::trace::hex_u64;

use crate::config::platform::AccessLogFormat;
use crate::server::h1::decimal;

/// Longest path (JSON) or request target (combined) logged, in bytes as
/// written (escapes counted).
const MAX_TARGET: usize = 1024;
/// Longest `User-Agent` or `Referer` logged, in bytes as written.
const MAX_HEADER: usize = 256;

/// What the access log keeps of a request's head: its raw bytes in one
/// buffer (the worker copies, the log's thread decodes and escapes),
/// kept with its record when the record is used again.
#[derive(Debug, Default)]
pub struct Head {
    /// The target (the path for JSON, path and query for combined), the
    /// `User-Agent`, the `Referer` (combined only), each bounded.
    bytes: Vec<u8>,
    target_len: u16,
    user_agent_len: u16,
    version: &'static str,
}

impl Head {
    /// Keeps what `format` writes of the head.
    pub fn new(format: AccessLogFormat, parts: &http::request::Parts) -> Head {
        let mut head = Head::default();
        head.fill(format, parts);
        head
    }

    /// Keeps what `format` writes of the head, in this head's buffer (a
    /// used record's: no allocation when it is large enough).
    pub fn fill(&mut self, format: AccessLogFormat, parts: &http::request::Parts) {
        let header = |name: http::header::HeaderName| -> &[u8] {
            parts
                .headers
                .get(name)
                .map_or(&[][..], |v| cut(v.as_bytes(), MAX_HEADER))
        };
        let target = match format {
            AccessLogFormat::Json => parts.uri.path(),
            AccessLogFormat::Combined => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        };
        let target = cut(target.as_bytes(), MAX_TARGET);
        let user_agent = header(http::header::USER_AGENT);
        let referer = match format {
            AccessLogFormat::Combined => header(http::header::REFERER),
            AccessLogFormat::Json => &[],
        };
        // At most one allocation (none in a used buffer), three copies
        // (`concat`'s generic sum and extend cost more on the worker).
        self.bytes.clear();
        self.bytes.reserve(target.len() + user_agent.len() + referer.len());
        self.bytes.extend_from_slice(target);
        self.bytes.extend_from_slice(user_agent);
        self.bytes.extend_from_slice(referer);
        // Bounded above by MAX_TARGET and MAX_HEADER.
        self.target_len = target.len() as u16;
        self.user_agent_len = user_agent.len() as u16;
        self.version = match parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        };
    }

    fn target(&self) -> &[u8] {
        &self.bytes[..usize::from(self.target_len)]
    }

    fn user_agent(&self) -> &[u8] {
        let start = usize::from(self.target_len);
        &self.bytes[start..start + usize::from(self.user_agent_len)]
    }

    fn referer(&self) -> &[u8] {
        &self.bytes[usize::from(self.target_len) + usize::from(self.user_agent_len)..]
    }

    /// Bytes held, for the buffer's bound.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A request's facts, handed by the worker to the log's thread as they
/// are (numbers, shared names, the head's bytes): the worker formats
/// nothing, reads no clock and allocates nothing of its own for a line.
#[derive(Debug)]
pub struct Record {
    /// The head.
    pub head: Head,
    /// The method.
    pub method: http::Method,
    /// When the request arrived (made a date by the log's thread).
    pub received_at: Instant,
    /// The client (behind trusted proxies).
    pub client: IpAddr,
    /// The request's host, normalised.
    pub host: Option<Box<str>>,
    /// The response's status.
    pub status: u16,
    /// Body bytes written.
    pub bytes: u64,
    /// Arrival to last byte.
    pub duration: Duration,
    /// Time the upstream (proxy or process app) took to answer its head.
    pub upstream: Option<Duration>,
    /// The app that served it.
    pub app: Option<Arc<str>>,
    /// The tenant.
    pub tenant: Option<Arc<str>>,
    /// The version (a deploy's, a canary's).
    pub version: Option<Arc<str>>,
    /// The cache's `x-cache` (`HIT`, `MISS`, `STALE`, `BYPASS`).
    pub cache: Option<&'static str>,
    /// The WAF's decision, when it made one.
    pub waf: Option<String>,
    /// bext's request id.
    pub request_id: u64,
    /// The W3C trace id.
    pub trace_id: TraceId,
    /// The client went away before the end.
    pub aborted: bool,
}

/// A request's trace id as the worker hands it over: drawing one is left
/// to the log's thread when nothing else read the request's trace (then
/// nobody else sees that id).
#[derive(Debug, Clone, Copy)]
pub enum TraceId {
    /// Read already (a forwarding app, OTLP): the one they used.
    Known([u8; 16]),
    /// Not read: the client's trace when it sent a valid `traceparent`,
    /// else a new one.
    Unread(Option<crate::trace::Parent>),
}

impl TraceId {
    fn resolve(self) -> [u8; 16] {
        match self {
            TraceId::Known(id) => id,
            TraceId::Unread(Some(parent)) => parent.trace_id(),
            TraceId::Unread(None) => bext_plugin_abi::trace::new_trace_id(),
        }
    }
}

/// A wall-clock date for an [`Instant`]: both clocks read once per batch
/// of lines, on the log's thread.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The wall clock, since the Unix epoch.
    wall: Duration,
    mono: Instant,
}

impl Clock {
    /// The clocks now.
    pub fn now() -> Clock {
        Clock::at(SystemTime::now(), Instant::now())
    }

    fn at(wall: SystemTime, mono: Instant) -> Clock {
        Clock {
            wall: wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            mono,
        }
    }

    /// The date of `at` (before now), since the Unix epoch: a `Duration`
    /// subtraction per line, where `SystemTime`'s checked arithmetic and
    /// the epoch's subtraction were two.
    pub fn date(&self, at: Instant) -> Duration {
        self.wall.saturating_sub(self.mono.saturating_duration_since(at))
    }
}

impl Record {
    /// A record to fill in: its head at the request's arrival, the rest
    /// when the response's head is answered (`received_at` is a
    /// placeholder until then).
    pub fn blank() -> Box<Record> {
        Box::new(Record {
            head: Head::default(),
            method: http::Method::GET,
            received_at: Instant::now(),
            client: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            host: None,
            status: 0,
            bytes: 0,
            duration: Duration::ZERO,
            upstream: None,
            app: None,
            tenant: None,
            version: None,
            cache: None,
            waf: None,
            request_id: 0,
            trace_id: TraceId::Known([0; 16]),
            aborted: false,
        })
    }

    /// Fills a (cleared) record for a request that had no readable head
    /// (`server::finish::unparsed`): no request line, no headers, no app.
    pub fn fill_unparsed(&mut self, client: IpAddr, status: u16, request_id: u64) {
        self.head.bytes.clear();
        (self.head.target_len, self.head.user_agent_len, self.head.version) = (0, 0, "");
        self.received_at = Instant::now();
        self.client = client;
        self.status = status;
        (self.bytes, self.duration, self.upstream, self.cache) = (0, Duration::ZERO, None, None);
        self.request_id = request_id;
        self.trace_id = TraceId::Unread(None);
        self.aborted = false;
    }

    /// Lets go of what the record shares or owns besides its head's
    /// buffer, once written, so that a worker can fill it again.
    pub fn clear(&mut self) {
        self.host = None;
        self.app = None;
        self.tenant = None;
        self.version = None;
        self.waf = None;
        self.method = http::Method::GET;
    }

    /// Memory it holds, for the buffer's bound.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Record>()
            + self.head.len()
            + self.host.as_ref().map_or(0, |h| h.len())
            + self.waf.as_ref().map_or(0, String::len)
    }

    /// The line, ending in `\n`, appended to `out`; `clock` dates it.
    pub fn write(&self, format: AccessLogFormat, clock: &Clock, out: &mut Vec<u8>) {
        let time = clock.date(self.received_at);
        match format {
            AccessLogFormat::Json => self.write_json(time, out),
            AccessLogFormat::Combined => self.write_combined(time, out),
        }
    }

    /// nginx's `combined` line, written by hand into `out` as JSON lines
    /// are: `fmt` into a `String` cost twice the JSON line.
    fn write_combined(&self, time: Duration, out: &mut Vec<u8>) {
        client(self.client, out);
        out.extend_from_slice(b" - - [");
        combined_time(time, out);
        out.extend_from_slice(b"] \"");
        if self.head.version.is_empty() {
            // No head was read (a request hyper could not parse): nginx's
            // `-` for the request line.
            out.push(b'-');
        } else {
            method(self.method.as_str().as_bytes(), out);
            out.push(b' ');
            escape_text(out, self.head.target(), MAX_TARGET);
            out.push(b' ');
            out.extend_from_slice(self.head.version.as_bytes());
        }
        out.extend_from_slice(b"\" ");
        decimal(out, u64::from(self.status));
        out.push(b' ');
        decimal(out, self.bytes);
        out.extend_from_slice(b" \"");
        header_or_dash(out, self.head.referer(), Seen::Referer);
        out.extend_from_slice(b"\" \"");
        header_or_dash(out, self.head.user_agent(), Seen::UserAgent);
        out.extend_from_slice(b"\"\n");
    }

    /// The JSON line, written by hand: serde_json with `fmt` for the
    /// numbers and the time cost several times more. A key comes with
    /// its punctuation, and the two ids with theirs: one append each
    /// (three per field were an eighth of a debug build's line).
    fn write_json(&self, time: Duration, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        json_time(time, out);
        let mut ids =
            *b"\",\"request_id\":\"0123456789abcdef\",\"trace_id\":\"0123456789abcdef0123456789abcdef\",\"client\":\"";
        // Fixed-size copies of word-arithmetic digits (the generic
        // `hex` walks slices).
        let trace = u128::from_be_bytes(self.trace_id.resolve());
        ids[16..32].copy_from_slice(&hex_u64(self.request_id));
        ids[46..62].copy_from_slice(&hex_u64((trace >> 64) as u64));
        ids[62..78].copy_from_slice(&hex_u64(trace as u64));
        out.extend_from_slice(&ids);
        client(self.client, out);
        out.extend_from_slice(b"\",\"method\":\"");
        if self.head.version.is_empty() {
            out.push(b'-');
        } else {
            method(self.method.as_str().as_bytes(), out);
        }
        out.push(b'"');
        if let Some(h) = &self.host {
            field_str(out, b",\"host\":\"", h.as_bytes());
        }
        field_str_within(out, b",\"path\":\"", self.head.target(), MAX_TARGET);
        out.extend_from_slice(b",\"status\":");
        decimal(out, u64::from(self.status));
        out.extend_from_slice(b",\"bytes\":");
        decimal(out, self.bytes);
        out.extend_from_slice(b",\"duration_ms\":");
        millis(self.duration, out);
        if let Some(u) = self.upstream {
            out.extend_from_slice(b",\"upstream_ms\":");
            millis(u, out);
        }
        for (key, value) in [
            (&b",\"app\":\""[..], self.app.as_deref()),
            (b",\"tenant\":\"", self.tenant.as_deref()),
            (b",\"version\":\"", self.version.as_deref()),
            (b",\"cache\":\"", self.cache),
            (b",\"waf\":\"", self.waf.as_deref()),
        ] {
            if let Some(v) = value {
                field_str(out, key, v.as_bytes());
            }
        }
        let user_agent = self.head.user_agent();
        if !user_agent.is_empty() {
            user_agent_field(out, user_agent);
        }
        if self.aborted {
            out.extend_from_slice(b",\"aborted\":true");
        }
        out.extend_from_slice(b"}\n");
    }
}

/// The method, copied without an escape scan: `http::Method` holds only
/// token characters (RFC 9110 `tchar`: printable ASCII without `"` or
/// `\`), which neither format escapes.
fn method(method: &[u8], out: &mut Vec<u8>) {
    debug_assert!(method.iter().all(|&b| !json_escape(b) && !nginx_escape(b)));
    out.extend_from_slice(method);
}

/// `std::fmt::Write` into a byte buffer (for the rare IPv6 client).
struct Utf8Vec<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Vec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `bytes` as UTF-8, invalid sequences replaced (`U+FFFD`), for a value
/// the escape scan found non-ASCII bytes in: `str::from_utf8` first (the
/// bytes used as they are), `from_utf8_lossy`'s byte-by-byte walk only
/// for the rare invalid value.
fn utf8(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match std::str::from_utf8(bytes) {
        Ok(_) => Cow::Borrowed(bytes),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).into_owned().into_bytes()),
    }
}

/// The first byte of `value` that `hit` picks, looked for sixteen bytes
/// at a time with [`any16`] (memchr finds at most three exact bytes;
/// escapes are ranges); the last block overlaps the one before it (no
/// copy into a padded block). A value shorter than a block is checked
/// byte by byte.
#[inline(always)]
fn find(value: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    if value.len() < 16 {
        return value.iter().position(|&b| hit(b));
    }
    let blocks = value.chunks_exact(16);
    let rest = blocks.remainder().len();
    for (n, block) in blocks.enumerate() {
        if block.try_into().is_ok_and(|block| any16(block, &hit)) {
            return block.iter().position(|&b| hit(b)).map(|i| 16 * n + i);
        }
    }
    // The bytes before the last `rest` have no hit: one here is theirs.
    let last = value.len() - 16;
    if rest == 0 || !value[last..].try_into().is_ok_and(|block| any16(block, &hit)) {
        return None;
    }
    value[last..].iter().position(|&b| hit(b)).map(|i| last + i)
}

/// Whether `hit` picks a byte of `block`: one fold without early exit,
/// which the compiler makes a few vector compares (about 20 instructions
/// for the 16 bytes). Not inlined: inlined into [`find`]'s loop, the
/// compiler left most of it byte by byte (callgrind: 2.5 instructions a
/// byte, more than the whole-slice fold it replaced).
#[inline(never)]
fn any16(block: &[u8; 16], hit: &impl Fn(u8) -> bool) -> bool {
    block.iter().fold(false, |any, &b| any | hit(b))
}

/// A byte JSON escapes.
#[inline(always)]
fn json_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// What a byte costs written in a JSON string: its escape's length.
fn json_cost(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\t' | b'\r' => 2,
        0..0x20 => 6,
        _ => 1,
    }
}

/// The longest start of `value` that takes at most `max` bytes written,
/// each byte taking `cost` (at most `worst`), and that does not end inside
/// a UTF-8 sequence: a field's limit holds for what is written, escapes
/// and U+FFFD replacements included, and no character is cut in two.
fn fit(value: &[u8], max: usize, worst: usize, cost: impl Fn(u8) -> usize) -> usize {
    if value.len().saturating_mul(worst) <= max {
        return value.len();
    }
    let mut used = 0;
    let end = value
        .iter()
        .position(|&b| {
            used += cost(b);
            used > max
        })
        .unwrap_or(value.len());
    char_start(value, end)
}

/// `end`, moved back to the start of the UTF-8 sequence it falls inside
/// (at most three bytes back: bytes that are not UTF-8 are cut anywhere).
fn char_start(value: &[u8], mut end: usize) -> usize {
    let floor = end.saturating_sub(3);
    while end > floor && value.get(end).is_some_and(|&b| b & 0xc0 == 0x80) {
        end -= 1;
    }
    end
}

/// `value` cut to at most `max` bytes, between characters: what the worker
/// keeps of a field the log bounds by `max`.
fn cut(value: &[u8], max: usize) -> &[u8] {
    if value.len() <= max {
        value
    } else {
        &value[..char_start(value, max)]
    }
}

/// `key` (`,"name":"` with its punctuation), then `value"` with JSON's
/// escapes, invalid UTF-8 replaced (`U+FFFD`). Inlined: the key's copy is
/// then of a known length (stores, not a `memcpy` call).
#[inline(always)]
fn field_str(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    field_str_within(out, key, value, usize::MAX);
}

/// [`field_str`] with at most `max` bytes written between the quotes.
#[inline(always)]
fn field_str_within(out: &mut Vec<u8>, key: &[u8], value: &[u8], max: usize) {
    out.extend_from_slice(key);
    // Most values are ASCII and need no escape: one vectorised scan (it
    // also stands for the UTF-8 check), then a copy.
    if value.len() <= max && find(value, |b| json_escape(b) | (b >= 0x80)).is_none() {
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    // Copied in runs between the escapes.
    let value = utf8(value);
    let mut rest = &value[..fit(&value, max, 6, json_cost)];
    while let Some(i) = find(rest, json_escape) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(DIGITS[usize::from(b >> 4)]);
                out.push(DIGITS[usize::from(b & 15)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// A duration in milliseconds with three decimals (microseconds).
fn millis(d: Duration, out: &mut Vec<u8>) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    decimal(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

thread_local! {
    /// The last second formatted (`2026-12-06T09:05:09.`), by its Unix
    /// second: lines of the same second reuse it.
    static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
}

/// `since` (the Unix epoch) as RFC 3339 in UTC with milliseconds.
fn json_time(since: Duration, out: &mut Vec<u8>) {
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let t = time_parts(SystemTime::UNIX_EPOCH + since);
        let mut s = String::with_capacity(20);
        let _ = write!(
            s,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        );
        if s.len() == 20 {
            prefix.copy_from_slice(s.as_bytes());
            SECOND.set((secs, prefix));
        } else {
            // A year outside 0..=9999: not cached.
            out.extend_from_slice(s.as_bytes());
            let ms = since.subsec_millis();
            let _ = write!(Utf8Vec(out), "{ms:03}Z");
            return;
        }
    }
    out.extend_from_slice(&prefix);
    let ms = since.subsec_millis();
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// A byte nginx escapes in logged variables: `"`, `\\` and bytes outside
/// printable ASCII.
#[inline(always)]
fn nginx_escape(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
}

/// nginx's escaping of logged variables, as `\xHH`; the plain runs
/// between escapes copied whole; at most `max` bytes written.
fn escape(out: &mut Vec<u8>, value: &[u8], max: usize) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    // A plain value within the limit (nearly all): one scan, one copy.
    if value.len() <= max && find(value, nginx_escape).is_none() {
        out.extend_from_slice(value);
        return;
    }
    let mut rest = &value[..fit(value, max, 4, |b| if nginx_escape(b) { 4 } else { 1 })];
    while let Some(i) = find(rest, nginx_escape) {
        out.extend_from_slice(&rest[..i]);
        let b = rest[i];
        out.extend_from_slice(&[b'\\', b'x', DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// [`escape`] of text the client sent (the target), invalid UTF-8
/// replaced first; a plain value (nearly all) is copied after one scan.
fn escape_text(out: &mut Vec<u8>, value: &[u8], max: usize) {
    if value.len() <= max && find(value, nginx_escape).is_none() {
        out.extend_from_slice(value);
    } else {
        escape(out, &utf8(value), max);
    }
}

fn escape_or_dash(out: &mut Vec<u8>, value: &[u8], max: usize) {
    if value.is_empty() {
        out.push(b'-');
    } else {
        escape(out, value, max);
    }
}

/// The header values whose last plain spelling the log's thread keeps
/// ([`SEEN`]), one slot each.
#[derive(Clone, Copy)]
enum Seen {
    /// A JSON line's `user_agent`.
    JsonUserAgent,
    /// A combined line's `User-Agent`.
    UserAgent,
    /// A combined line's `Referer`.
    Referer,
}

/// A header value a line wrote as it came (nothing to escape, within
/// [`MAX_HEADER`]), kept so that the next line with the same value skips
/// the scan.
struct Plain {
    bytes: [u8; MAX_HEADER],
    len: usize,
}

thread_local! {
    /// The last plain value of each [`Seen`] header: a client sends the
    /// same `User-Agent` on every request (and a page's resources the same
    /// `Referer`), so lines in a row often repeat it. A comparison
    /// (`memcmp`, about 25 instructions for a browser's 110 bytes) stands
    /// for the scan (about 190); a value that differs costs the
    /// comparison, and a copy when it is plain.
    static SEEN: std::cell::RefCell<[Plain; 3]> = const {
        std::cell::RefCell::new([const { Plain { bytes: [0; MAX_HEADER], len: 0 } }; 3])
    };
}

/// Whether `value` is the last plain value of `slot`.
fn seen_plain(slot: Seen, value: &[u8]) -> bool {
    SEEN.with_borrow(|seen| {
        let last = &seen[slot as usize];
        last.bytes[..last.len] == *value
    })
}

/// Keeps `value` (plain, at most [`MAX_HEADER`] bytes) as `slot`'s last.
fn keep_plain(slot: Seen, value: &[u8]) {
    SEEN.with_borrow_mut(|seen| {
        let last = &mut seen[slot as usize];
        if let Some(dst) = last.bytes.get_mut(..value.len()) {
            dst.copy_from_slice(value);
            last.len = value.len();
        }
    });
}

/// A JSON line's `user_agent` (not empty), as [`field_str_within`] writes
/// it; without the scan when it is the last plain one.
fn user_agent_field(out: &mut Vec<u8>, value: &[u8]) {
    const KEY: &[u8] = b",\"user_agent\":\"";
    let seen = seen_plain(Seen::JsonUserAgent, value);
    if seen || (value.len() <= MAX_HEADER && find(value, |b| json_escape(b) | (b >= 0x80)).is_none()) {
        if !seen {
            keep_plain(Seen::JsonUserAgent, value);
        }
        out.extend_from_slice(KEY);
        out.extend_from_slice(value);
        out.push(b'"');
    } else {
        field_str_within(out, KEY, value, MAX_HEADER);
    }
}

/// A combined line's `Referer` or `User-Agent`, as [`escape_or_dash`]
/// writes it; without the scan when it is the last plain one.
fn header_or_dash(out: &mut Vec<u8>, value: &[u8], slot: Seen) {
    if !value.is_empty() && seen_plain(slot, value) {
        out.extend_from_slice(value);
    } else if !value.is_empty() && value.len() <= MAX_HEADER && find(value, nginx_escape).is_none() {
        keep_plain(slot, value);
        out.extend_from_slice(value);
    } else {
        escape_or_dash(out, value, MAX_HEADER);
    }
}

thread_local! {
    /// The last client address written, and its text: a log's lines
    /// mostly come from a few clients in turn (keep-alive connections,
    /// a proxy in front), so most lines copy it instead of formatting it.
    static CLIENT: std::cell::Cell<(Option<IpAddr>, u8, [u8; 48])> =
        const { std::cell::Cell::new((None, 0, [0; 48])) };
}

/// The client's address (IPv4 without `fmt`), from [`CLIENT`] when it is
/// the last one's.
fn client(ip: IpAddr, out: &mut Vec<u8>) {
    let (last, len, mut text) = CLIENT.get();
    if last == Some(ip) {
        out.extend_from_slice(&text[..usize::from(len)]);
        return;
    }
    let start = out.len();
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, u64::from(*octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(Utf8Vec(out), "{v6}");
        }
    }
    // At most 45 bytes (an IPv4-mapped IPv6 address).
    let written = &out[start..];
    if let Some(dst) = text.get_mut(..written.len()) {
        dst.copy_from_slice(written);
        CLIENT.set((Some(ip), written.len() as u8, text));
    }
}

thread_local! {
    /// The last second formatted for combined (`06/Dec/2026:09:05:09
    /// +0000`), by its Unix second.
    static COMBINED_SECOND: std::cell::Cell<(u64, [u8; 26])> = const { std::cell::Cell::new((u64::MAX, [0; 26])) };
}

/// `since` (the Unix epoch) as nginx's `$time_local` in UTC.
fn combined_time(since: Duration, out: &mut Vec<u8>) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = since.as_secs();
    let (cached, mut text) = COMBINED_SECOND.get();
    if cached == secs {
        out.extend_from_slice(&text);
        return;
    }
    let t = time_parts(SystemTime::UNIX_EPOCH + since);
    let mut s = String::with_capacity(26);
    let _ = write!(
        s,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day,
        MONTHS[usize::from(t.month - 1)],
        t.year,
        t.hour,
        t.minute,
        t.second
    );
    if s.len() == text.len() {
        text.copy_from_slice(s.as_bytes());
        COMBINED_SECOND.set((secs, text));
    }
    // Else a year outside 0..=9999: not cached.
    out.extend_from_slice(s.as_bytes());
}

/// A UTC date and time, for log lines.
#[derive(Debug, PartialEq, Eq)]
pub struct TimeParts {
    /// Year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Milliseconds.
    pub millis: u16,
}

/// `time` in UTC (Howard Hinnant's days-to-civil).
pub fn time_parts(time: SystemTime) -> TimeParts {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    TimeParts {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        millis: since.subsec_millis() as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str, headers: &[(&str, &[u8])]) -> http::request::Parts {
        let mut b = http::Request::builder().method("GET").uri(target);
        for (n, v) in headers {
            b = b.header(*n, http::HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    /// A clock at 2026-12-06T09:05:09.623Z, and a request that arrived
    /// half a second before.
    fn sample(head: Head) -> (Record, Clock) {
        let now = Instant::now();
        let clock = Clock::at(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_547_909_623),
            now + Duration::from_millis(500),
        );
        let record = Record {
            head,
            method: http::Method::GET,
            received_at: now,
            client: "203.0.113.9".parse().unwrap(),
            host: Some("shop.test".into()),
            status: 200,
            bytes: 512,
            duration: Duration::from_micros(1_500),
            upstream: Some(Duration::from_micros(1_000)),
            app: Some("shop".into()),
            tenant: None,
            version: Some("v2".into()),
            cache: Some("MISS"),
            waf: Some("detect".into()),
            request_id: 0xab,
            trace_id: TraceId::Known([
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
            ]),
            aborted: false,
        };
        (record, clock)
    }

    /// JSON's and nginx's escapes as they were written before the block
    /// scan: byte by byte.
    fn escaped_bytewise(json: bool, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if json {
            for c in String::from_utf8_lossy(value).chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
                    c => out.extend_from_slice(c.to_string().as_bytes()),
                }
            }
        } else {
            for &b in value {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
                } else {
                    out.push(b);
                }
            }
        }
        out
    }

    #[test]
    fn escapes_are_found_in_every_place_of_a_block_and_the_runs_copied_whole() {
        // Every length up to three blocks, each special byte at every
        // place (block edges, the padded tail), alone and with a second.
        for len in 0..48 {
            for special in [&b"\""[..], b"\\", b"\n", b"\x01", b"\x7f", b"\xff", "é".as_bytes()] {
                for at in 0..=len {
                    let mut value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    value.splice(at..at, special.iter().copied());
                    if at % 7 == 0 {
                        value.push(b'"');
                    }
                    let mut json = Vec::new();
                    field_str(&mut json, b"", &value);
                    let mut expected = escaped_bytewise(true, &value);
                    expected.push(b'"');
                    assert_eq!(json, expected, "json {value:?}");
                    let mut nginx = Vec::new();
                    escape(&mut nginx, &value, usize::MAX);
                    assert_eq!(nginx, escaped_bytewise(false, &value), "nginx {value:?}");
                }
            }
        }
    }

    #[test]
    fn fields_stay_within_their_limits_as_written_and_cut_between_characters() {
        let mut values: Vec<Vec<u8>> = vec![
            b"a".repeat(5000),
            b"\"".repeat(5000),
            b"\\\t".repeat(2000),
            b"\xff".repeat(5000),
            b"\x01".repeat(5000),
            b"\xc3".repeat(5000),
        ];
        // Two-, three- and four-byte characters at every offset from a limit.
        for c in ["é", "€", "😀"] {
            for skew in 0..4 {
                values.push([b"a".repeat(skew), c.repeat(2000).into_bytes()].concat());
            }
        }
        for max in [MAX_HEADER, MAX_TARGET] {
            for value in &values {
                let kept = cut(value, max);
                assert!(kept.len() <= max && value.starts_with(kept));
                let mut whole = Vec::new();
                field_str(&mut whole, b"", value);
                let mut json = Vec::new();
                field_str_within(&mut json, b"", kept, max);
                assert_eq!(json.pop(), Some(b'"'));
                assert!(json.len() <= max && json.len() + 6 > max, "{max}: {}", json.len());
                assert!(whole.starts_with(&json), "a cut of the whole, escapes whole");
                let text = std::str::from_utf8(&json).expect("JSON is UTF-8");
                if std::str::from_utf8(value).is_ok() {
                    assert!(!text.contains('\u{FFFD}'), "no character cut in two: {text}");
                }
                for written in [
                    {
                        let mut out = Vec::new();
                        escape_text(&mut out, kept, max);
                        out
                    },
                    {
                        let mut out = Vec::new();
                        escape_or_dash(&mut out, kept, max);
                        out
                    },
                ] {
                    assert!(
                        written.len() <= max && written.len() + 16 > max,
                        "{max}: {}",
                        written.len()
                    );
                }
            }
        }
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let t = time_parts(SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_547_909_123));
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis),
            (2026, 12, 6, 9, 5, 9, 123)
        );
        let leap = time_parts(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn json_lines_carry_bext_fields_and_only_the_path() {
        let head = Head::new(
            AccessLogFormat::Json,
            &parts("/cart?token=secret", &[("user-agent", b"curl/8 \"x\"\tevil")]),
        );
        let (record, clock) = sample(head);
        let mut out = Vec::new();
        record.write(AccessLogFormat::Json, &clock, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-12-06T09:05:09.123Z", "the arrival");
        assert_eq!(v["path"], "/cart", "no query (tokens live there)");
        assert_eq!(v["request_id"], "00000000000000ab");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["upstream_ms"], 1.0);
        assert_eq!(
            (&v["app"], &v["version"], &v["cache"], &v["waf"]),
            (&"shop".into(), &"v2".into(), &"MISS".into(), &"detect".into())
        );
        assert_eq!(v["user_agent"], "curl/8 \"x\"\tevil");
        assert!(v.get("tenant").is_none() && v.get("aborted").is_none());
    }

    #[test]
    fn a_json_line_is_exactly_this() {
        let head = Head::new(
            AccessLogFormat::Json,
            &parts(
                "/cart?token=secret",
                &[("user-agent", "curl/8 \"x\"\tevil é".as_bytes())],
            ),
        );
        let (record, clock) = sample(head);
        let mut out = Vec::new();
        record.write(AccessLogFormat::Json, &clock, &mut out);
        let expected = concat!(
            r#"{"time":"2026-12-06T09:05:09.123Z","request_id":"00000000000000ab","#,
            r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","client":"203.0.113.9","method":"GET","#,
            r#""host":"shop.test","path":"/cart","status":200,"bytes":512,"duration_ms":1.500,"#,
            r#""upstream_ms":1.000,"app":"shop","version":"v2","cache":"MISS","waf":"detect","#,
            r#""user_agent":"curl/8 \"x\"\tevil é"}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn a_record_used_again_writes_the_line_a_new_one_writes() {
        let parts = parts("/p?q=1", &[("user-agent", b"ua"), ("referer", b"https://r.test/")]);
        for format in [AccessLogFormat::Json, AccessLogFormat::Combined] {
            let (fresh, clock) = sample(Head::new(format, &parts));
            let mut expected = Vec::new();
            fresh.write(format, &clock, &mut expected);
            // A record that held a longer head and other names, cleared.
            let long = self::parts(&format!("/{}", "x".repeat(900)), &[("user-agent", &[b'u'; 200])]);
            let (mut used, _) = sample(Head::new(AccessLogFormat::Combined, &long));
            used.clear();
            let mut head = std::mem::take(&mut used.head);
            head.fill(format, &parts);
            let (again, _) = sample(head);
            let mut out = Vec::new();
            again.write(format, &clock, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
        }
    }

    #[test]
    fn a_header_value_seen_before_is_written_as_a_new_thread_writes_it() {
        // Repeats, a hostile value after a plain one and back, a
        // non-ASCII one, an empty one, one over the limit and one at it: each line as a thread that has seen nothing
        // writes it.
        let long = "u".repeat(MAX_HEADER + 10);
        let values: Vec<&[u8]> = vec![
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 \"x\"\t",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.",
            "ua é".as_bytes(),
            "ua é".as_bytes(),
            b"",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.",
            long.as_bytes(),
            long.as_bytes(),
            &long.as_bytes()[..MAX_HEADER],
            &long.as_bytes()[..MAX_HEADER],
        ];
        for format in [AccessLogFormat::Json, AccessLogFormat::Combined] {
            let line = move |value: &[u8]| {
                let head = Head::new(format, &parts("/p", &[("user-agent", value), ("referer", value)]));
                let (record, clock) = sample(head);
                let mut out = Vec::new();
                record.write(format, &clock, &mut out);
                String::from_utf8(out).unwrap()
            };
            for value in &values {
                let value = value.to_vec();
                let fresh = std::thread::spawn({
                    let value = value.clone();
                    move || line(&value)
                })
                .join()
                .unwrap();
                assert_eq!(line(&value), fresh, "{:?}", String::from_utf8_lossy(&value));
            }
        }
    }

    #[test]
    fn a_user_agent_that_is_not_utf8_is_written_with_replacements() {
        // ASCII is copied as is; valid UTF-8 too; invalid bytes become U+FFFD.
        let head = Head::new(
            AccessLogFormat::Json,
            &parts("/", &[("user-agent", b"probe \xff\xfe/1 \xc3\xa9")]),
        );
        let (record, clock) = sample(head);
        let mut out = Vec::new();
        record.write(AccessLogFormat::Json, &clock, &mut out);
        let text = String::from_utf8(out).expect("a JSON line is UTF-8");
        assert!(
            text.ends_with(",\"user_agent\":\"probe \u{FFFD}\u{FFFD}/1 \u{e9}\"}\n"),
            "{text}"
        );
    }

    #[test]
    fn an_unread_trace_is_the_client_s_or_a_new_one() {
        let json = |trace_id: TraceId| {
            let (mut record, clock) = sample(Head::default());
            record.trace_id = trace_id;
            let mut out = Vec::new();
            record.write(AccessLogFormat::Json, &clock, &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            v["trace_id"].as_str().unwrap().to_owned()
        };
        let mut sent = http::HeaderMap::new();
        sent.insert(
            crate::trace::TRACEPARENT,
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let parent = crate::trace::Parent::of(&sent);
        assert_eq!(json(TraceId::Unread(parent)), "4bf92f3577b34da6a3ce929d0e0e4736");
        let (a, b) = (json(TraceId::Unread(None)), json(TraceId::Unread(None)));
        assert!(a.len() == 32 && a != b && a != "0".repeat(32), "{a} {b}");
    }

    #[test]
    fn cached_dates_follow_the_second_and_ipv6_clients_are_written_whole() {
        let (mut record, clock) = sample(Head::new(AccessLogFormat::Combined, &parts("/", &[])));
        record.client = "2001:db8::1".parse().unwrap();
        let mut out = Vec::new();
        record.write(AccessLogFormat::Combined, &clock, &mut out);
        record.received_at -= Duration::from_secs(61);
        record.write(AccessLogFormat::Combined, &clock, &mut out);
        record.write(AccessLogFormat::Json, &clock, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("2001:db8::1 - - [06/Dec/2026:09:05:09 +0000] \"GET / HTTP/1.1\""),
            "{text}"
        );
        assert!(
            lines[1].starts_with("2001:db8::1 - - [06/Dec/2026:09:04:08 +0000] "),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(
            (&v["time"], &v["client"]),
            (&"2026-12-06T09:04:08.123Z".into(), &"2001:db8::1".into())
        );
    }

    #[test]
    fn combined_lines_are_nginx_s_with_hostile_bytes_escaped() {
        let long = format!("/{}", "a".repeat(5000));
        let head = Head::new(
            AccessLogFormat::Combined,
            &parts(
                "/p?q=1",
                &[("user-agent", b"Mozilla\" \\ \t\xff"), ("referer", b"https://r.test/")],
            ),
        );
        let (record, clock) = sample(head);
        let mut out = Vec::new();
        record.write(AccessLogFormat::Combined, &clock, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "203.0.113.9 - - [06/Dec/2026:09:05:09 +0000] \"GET /p?q=1 HTTP/1.1\" 200 512 \"https://r.test/\" \"Mozilla\\x22 \\x5C \\x09\\xFF\"\n"
        );
        let (record, clock) = sample(Head::new(AccessLogFormat::Combined, &parts(&long, &[])));
        let mut out = Vec::new();
        record.write(AccessLogFormat::Combined, &clock, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!("\"GET /{} HTTP/1.1\" 200 512 \"-\" \"-\"", "a".repeat(1023))),
            "{text}"
        );
    }
}
