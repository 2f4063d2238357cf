//! The L2 tier of edge mode: entries written through to the fleet's
//! Redis, read on an L1 miss and promoted to L1, indexed by tag, path and
//! app so an invalidation can find them. Every call fails soft: with
//! Redis down or slow, the cache is just L1.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bext_plugin_abi::Fleet;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::policy::Freshness;
use crate::store::Entry;

const VERSION: u8 = 1;

/// Redis key of the entry under the full key `full`.
pub fn entry_key(edge: &dyn Fleet, full: &str) -> String {
    edge.key(&format!("isr:e:{full}"))
}

/// Redis key of the `Vary` names of a primary key.
pub fn vary_key(edge: &dyn Fleet, primary: &str) -> String {
    edge.key(&format!("isr:v:{primary}"))
}

/// The index sets an entry belongs to: its tags, its path, its app.
pub fn index_sets(edge: &dyn Fleet, app: &str, e: &Entry) -> Vec<String> {
    let mut sets: Vec<String> = e.tags.iter().map(|t| tag_set(edge, t)).collect();
    sets.push(path_set(edge, app, &e.path));
    sets.push(app_set(edge, app));
    sets
}

/// The index set of a tag.
pub fn tag_set(edge: &dyn Fleet, tag: &str) -> String {
    edge.key(&format!("isr:tag:{tag}"))
}

/// The index set of a path of an app.
pub fn path_set(edge: &dyn Fleet, app: &str, path: &str) -> String {
    edge.key(&format!("isr:path:{app}:{path}"))
}

/// The index set of an app.
pub fn app_set(edge: &dyn Fleet, app: &str) -> String {
    edge.key(&format!("isr:app:{app}"))
}

/// How long Redis keeps an entry: as long as it may be served at all.
pub fn keep_for(f: &Freshness) -> Duration {
    f.ttl + f.swr + f.sie
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An entry as bytes: a version, the wall-clock time it was stored (so
/// another instance computes the same age), freshness, status, headers,
/// ETag, tags, path, body.
pub fn encode(e: &Entry) -> Vec<u8> {
    let stored = unix_ms(SystemTime::now()).saturating_sub(e.age(Instant::now()).as_millis() as u64);
    let mut out = Vec::with_capacity(e.body.len() + 512);
    out.push(VERSION);
    out.extend_from_slice(&stored.to_le_bytes());
    for d in [e.freshness.ttl, e.freshness.swr, e.freshness.sie] {
        out.extend_from_slice(&(d.as_millis() as u64).to_le_bytes());
    }
    out.extend_from_slice(&e.status.as_u16().to_le_bytes());
    out.extend_from_slice(&(e.headers.len() as u32).to_le_bytes());
    for (k, v) in &e.headers {
        put_bytes(&mut out, k.as_str().as_bytes());
        put_bytes(&mut out, v.as_bytes());
    }
    put_bytes(&mut out, e.etag.as_bytes());
    out.extend_from_slice(&(e.tags.len() as u32).to_le_bytes());
    for t in &e.tags {
        put_bytes(&mut out, t.as_bytes());
    }
    put_bytes(&mut out, e.path.as_bytes());
    put_bytes(&mut out, &e.body);
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads what [`encode`] wrote; `None` for anything else (another
/// version, a truncated or foreign value).
pub fn decode(bytes: &[u8]) -> Option<Entry> {
    let mut r = Reader(bytes);
    if r.take(1)?[0] != VERSION {
        return None;
    }
    let stored = r.u64()?;
    let (ttl, swr, sie) = (r.u64()?, r.u64()?, r.u64()?);
    let status = StatusCode::from_u16(u16::from_le_bytes(r.take(2)?.try_into().ok()?)).ok()?;
    let mut headers = HeaderMap::new();
    for _ in 0..r.u32()? {
        let name = HeaderName::from_bytes(r.bytes()?).ok()?;
        let value = HeaderValue::from_bytes(r.bytes()?).ok()?;
        headers.append(name, value);
    }
    let etag = HeaderValue::from_bytes(r.bytes()?).ok()?;
    let mut tags = Vec::new();
    for _ in 0..r.u32()? {
        tags.push(String::from_utf8(r.bytes()?.to_vec()).ok()?);
    }
    let path = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let body = Bytes::copy_from_slice(r.bytes()?);
    let age = Duration::from_millis(unix_ms(SystemTime::now()).saturating_sub(stored));
    Some(Entry {
        status,
        headers,
        body,
        etag,
        stored: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        freshness: Freshness {
            ttl: Duration::from_millis(ttl),
            swr: Duration::from_millis(swr),
            sie: Duration::from_millis(sie),
        },
        tags,
        path,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_trip_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/html"));
        headers.append("vary", HeaderValue::from_static("Accept-Language"));
        let e = Entry {
            status: StatusCode::NOT_FOUND,
            headers,
            body: Bytes::from_static(b"<p>gone</p>"),
            etag: HeaderValue::from_static("\"x\""),
            stored: Instant::now() - Duration::from_secs(5),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                swr: Duration::from_secs(10),
                sie: Duration::ZERO,
            },
            tags: vec!["a".into(), "b".into()],
            path: "/p/1".into(),
        };
        let bytes = encode(&e);
        let back = decode(&bytes).unwrap();
        assert_eq!(
            (back.status, &back.body, &back.tags, &back.path),
            (e.status, &e.body, &e.tags, &e.path)
        );
        assert_eq!(back.headers, e.headers);
        assert_eq!(back.freshness, e.freshness);
        let age = back.age(Instant::now()).as_secs_f64();
        assert!((4.0..7.0).contains(&age), "the age carries over: {age}");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        assert!(decode(b"\x02garbage").is_none());
    }
}
