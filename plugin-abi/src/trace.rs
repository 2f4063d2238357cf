//! W3C Trace Context (`traceparent`): taken from a request when it is
//! valid, started otherwise, and passed on to the app with bext's own span
//! as the parent. A value that is not exactly right is never passed on.
//!
//! Here, next to [`Ctx`](crate::Ctx), because the request keeps its trace
//! in a slot of its own that is filled the first time something needs it
//! (an OTLP export, a dedicated access log, an app that forwards the
//! request): a static file pays nothing for traces.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request header of W3C Trace Context.
pub const TRACEPARENT: &str = "traceparent";
/// Vendors' trace state, meaningful only with the `traceparent` it came with.
pub const TRACESTATE: &str = "tracestate";

static TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// A request's place in a trace: kept in the request's `Ctx::ext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, the client's or a new one.
    pub trace_id: [u8; 16],
    /// bext's span for this request.
    pub span_id: [u8; 8],
    /// The client's span, when the request came with a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// Whether the trace is recorded (the `sampled` flag passed on).
    pub sampled: bool,
}

/// The client's span, from a request's only valid `traceparent`: what a
/// request keeps of its headers when its trace may be needed after they
/// are gone (the access log of a static file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl Parent {
    /// The trace it belongs to.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span `headers` name, when they have exactly one valid
    /// `traceparent`.
    pub fn of(headers: &HeaderMap) -> Option<Parent> {
        let mut values = headers.get_all(&TRACEPARENT_NAME).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => parse(v.as_bytes()).map(|(trace_id, span_id, flags)| Parent {
                trace_id,
                span_id,
                flags,
            }),
            _ => None,
        }
    }
}

/// A trace id in lower-case hex, without allocating.
pub struct Hex32([u8; 32]);

impl Hex32 {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TraceContext {
    /// The request's trace: the one its only `traceparent` names when
    /// valid, else a new one, recorded with probability `sample`. Replaces
    /// the request's `traceparent` with bext's span as the parent, and drops
    /// `tracestate` when the `traceparent` was not valid (it belongs to it).
    pub fn take(headers: &mut HeaderMap, sample: f64) -> TraceContext {
        let cx = TraceContext::read(headers, sample);
        cx.apply(headers);
        cx
    }

    /// The request's trace, as [`TraceContext::take`] finds it, without
    /// touching the headers (done when an app that forwards them is
    /// reached: [`TraceContext::apply`]).
    pub fn read(headers: &HeaderMap, sample: f64) -> TraceContext {
        TraceContext::continue_or_start(Parent::of(headers), sample)
    }

    /// The trace `parent` names, else a new one recorded with probability
    /// `sample` (for a request whose headers are gone by then).
    pub fn continue_or_start(parent: Option<Parent>, sample: f64) -> TraceContext {
        match parent {
            Some(Parent {
                trace_id,
                span_id: parent,
                flags,
            }) => TraceContext {
                trace_id,
                span_id: random_span(),
                parent: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => {
                let trace_id = new_trace_id();
                TraceContext {
                    trace_id,
                    span_id: random_span(),
                    parent: None,
                    sampled: sample >= 1.0 || (sample > 0.0 && unit_random() < sample),
                }
            }
        }
    }

    /// Gives the request the `traceparent` with bext's span as the parent;
    /// drops `tracestate` when the client's `traceparent` was not valid.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.parent.is_none() && headers.contains_key(&TRACESTATE_NAME) {
            headers.remove(&TRACESTATE_NAME);
        }
        headers.insert(TRACEPARENT_NAME.clone(), self.traceparent());
    }

    /// The `traceparent` the app gets: this trace, bext's span.
    pub fn traceparent(&self) -> HeaderValue {
        let mut v = [0u8; 55];
        v[..3].copy_from_slice(b"00-");
        hex(&self.trace_id, &mut v[3..35]);
        v[35] = b'-';
        hex(&self.span_id, &mut v[36..52]);
        v[52] = b'-';
        v[53] = b'0';
        v[54] = if self.sampled { b'1' } else { b'0' };
        HeaderValue::from_bytes(&v).unwrap_or(HeaderValue::from_static(""))
    }

    /// The trace id, as logs and OTLP write it.
    pub fn trace_id_hex(&self) -> Hex32 {
        let mut out = [0; 32];
        hex(&self.trace_id, &mut out);
        Hex32(out)
    }
}

/// A number in [0, 1).
fn unit_random() -> f64 {
    (next_random() >> 11) as f64 / (1u64 << 53) as f64
}

/// A new trace id (never all zeros): what a request's trace is when the
/// client sent none. Two draws, no span: the access log's line for a
/// request whose trace nothing read needs only this.
pub fn new_trace_id() -> [u8; 16] {
    let mut trace_id = [0; 16];
    trace_id[..8].copy_from_slice(&next_random().to_be_bytes());
    trace_id[8..].copy_from_slice(&next_random().to_be_bytes());
    if trace_id == [0; 16] {
        trace_id[15] = 1;
    }
    trace_id
}

/// A new span id (never all zeros).
pub fn random_span() -> [u8; 8] {
    let id = next_random().max(1);
    id.to_be_bytes()
}

/// Writes `bytes` as lower-case hex into `out` (twice as long): eight
/// bytes at a time with [`hex_u64`], the rest byte by byte.
pub fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = 0;
    while let (Some(word), Some(dst)) = (bytes.get(i..i + 8), out.get_mut(2 * i..2 * i + 16)) {
        let mut be = [0; 8];
        be.copy_from_slice(word);
        dst.copy_from_slice(&hex_u64(u64::from_be_bytes(be)));
        i += 8;
    }
    for (j, b) in bytes.iter().enumerate().skip(i) {
        out[2 * j] = DIGITS[usize::from(b >> 4)];
        out[2 * j + 1] = DIGITS[usize::from(b & 15)];
    }
}

/// The sixteen lower-case hex digits of `x`, most significant first, by
/// word arithmetic (no table, no loop): each nibble spread into a byte of
/// its own, then `'0'` added to each and `'a' - '0' - 10` more to those
/// above nine. An id's digits in a few dozen instructions.
#[inline]
pub fn hex_u64(x: u64) -> [u8; 16] {
    let spread = |word: u32| {
        let mut x = u64::from(word);
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        // 1 in each byte whose nibble is 10 or more.
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)
    };
    let digits = (u128::from(spread((x >> 32) as u32)) << 64) | u128::from(spread(x as u32));
    digits.to_be_bytes()
}

/// `version-traceid-parentid-flags` as the W3C recommendation reads it:
/// lower-case hex only, version `ff` invalid, version `00` exactly 55
/// characters, a later version at least that with a `-` after; neither
/// id all zeros. Returns the trace id, the parent's span id and the flags.
fn parse(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&v[..2])?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = unhex::<16>(&v[3..35])?;
    let parent = unhex::<8>(&v[36..52])?;
    let flags = unhex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace_id, parent, flags))
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    if s.len() != 2 * N {
        return None;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

thread_local! {
    /// Each thread's generator state, seeded from the standard library's
    /// per-process random keys and the thread.
    static STATE: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish() | 1
    });
}

/// splitmix64: ids need to be unique and unpredictable enough not to
/// collide, not secret.
fn next_random() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn hex_is_lower_case_hex_of_every_byte_at_every_length() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for len in 0..=bytes.len() {
            let mut out = vec![0; 2 * len];
            hex(&bytes[..len], &mut out);
            let expected: String = bytes[..len].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{len}");
        }
        for x in [0, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210] {
            assert_eq!(String::from_utf8(hex_u64(x).to_vec()).unwrap(), format!("{x:016x}"));
        }
        let id = new_trace_id();
        assert!(id != [0; 16] && id != new_trace_id());
    }

    fn take(values: &[&[u8]]) -> (TraceContext, HeaderMap) {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRACEPARENT, HeaderValue::from_bytes(v).unwrap());
        }
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let cx = TraceContext::take(&mut h, 0.0);
        (cx, h)
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_bext_as_the_parent() {
        let (cx, h) = take(&[GOOD.as_bytes()]);
        assert_eq!(cx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.parent, Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        assert!(cx.sampled);
        let sent = h[TRACEPARENT].to_str().unwrap();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-01"),
            "{sent}"
        );
        assert_ne!(sent, GOOD, "bext's own span is the app's parent");
        assert_eq!(h[TRACESTATE], "vendor=x", "kept with a valid traceparent");
        // A later version with more fields is read for what 00 defines.
        let (cx, _) = take(&[format!("cc-{}-what-ever", &GOOD[3..]).as_bytes()]);
        assert_eq!(cx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn hostile_spellings_are_replaced_never_passed_on() {
        let upper = GOOD.to_uppercase();
        let bad: Vec<Vec<u8>> = vec![
            upper.into_bytes(),                                                     // upper-case hex
            format!("ff{}", &GOOD[2..]).into_bytes(),                               // version ff
            format!("{GOOD}-extra").into_bytes(),                                   // 00 with more
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),       // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),       // zero parent
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01".into(),       // dash moved
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01".into(),       // separators
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01".into(),       // not hex
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),       // sign
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".into(),          // short
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff".to_vec(), // obs-text
            "".into(),
        ];
        for v in &bad {
            let (cx, h) = take(&[v]);
            assert_eq!(cx.parent, None, "{:?}", String::from_utf8_lossy(v));
            assert_ne!(cx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
            assert_eq!(parse(h[TRACEPARENT].as_bytes()).map(|p| p.0), Some(cx.trace_id));
            assert!(
                h.get(TRACESTATE).is_none(),
                "tracestate goes with an invalid traceparent"
            );
        }
        // Two traceparent headers, even two good ones: which one? Neither.
        let (cx, h) = take(&[GOOD.as_bytes(), GOOD.as_bytes()]);
        assert_eq!(cx.parent, None);
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn new_traces_are_sampled_at_the_rate_asked() {
        assert!(TraceContext::take(&mut HeaderMap::new(), 1.0).sampled);
        assert!(!TraceContext::take(&mut HeaderMap::new(), 0.0).sampled);
        let sampled = (0..10_000)
            .filter(|_| TraceContext::take(&mut HeaderMap::new(), 0.1).sampled)
            .count();
        assert!((700..1300).contains(&sampled), "{sampled}");
        let ids: std::collections::HashSet<_> = (0..1000)
            .map(|_| TraceContext::take(&mut HeaderMap::new(), 0.0).trace_id)
            .collect();
        assert_eq!(ids.len(), 1000);
    }
}
