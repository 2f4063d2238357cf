//! Values found clean, remembered so a repeat costs one probe.
//!
//! Paths, query strings and header values (user agents, cookies,
//! referers, tokens) recur from request to request; one found clean with
//! every rule on needs no second look.
//!
//! Each worker thread has its own table: a probe takes no lock and
//! touches no shared cache line, which matters more here than sharing
//! what one worker learnt with the others (each learns a value on its
//! first sight of it). A table is two-way set-associative: a value's hash
//! picks a pair of slots, a new value takes the first and moves the one
//! there to the second, and there is no recency bookkeeping on a hit. Two
//! ways, not one, because two values of the same request that share a
//! slot would otherwise evict each other on every request (with a dozen
//! values a request, about one process in a hundred would draw such a
//! pair from its random seed and inspect them in full forever). Keys are
//! the values themselves, compared exactly after the hash, so no crafted
//! value can pass for a clean one (a hash alone could collide); the hash
//! is seeded per process, so nobody can aim values at one slot.
//!
//! Before the table, each thread also keeps the last request's path and
//! query, and its inspected headers, that were all found clean; and the
//! method and every header of the last bodiless request found clean, as
//! sent (names and the method as `http`'s types, which compare in a few
//! instructions): a browser's keep-alive connection sends the same user
//! agent, cookie, referer and token on every request, and comparing them
//! costs a length test and one byte comparison a header, where the table
//! costs each value a hash, a probe and the same comparison. Any
//! difference, anywhere, falls back to the table and the rules, value by
//! value.
//!
//! Bounded: `SLOTS` entries and `THREAD_BYTES` of values per thread (past
//! it the table starts again empty); values over `MAX_VALUE` bytes are
//! not kept.

use std::cell::RefCell;
use std::hash::BuildHasher;

use http::{HeaderMap, HeaderName, Method};
use thread_local::ThreadLocal;

/// Slots in each thread's table (a power of two).
const SLOTS: usize = 4096;

/// Bytes of keys a thread's table holds at most.
const THREAD_BYTES: usize = 2 << 20;

/// Longest value kept.
const MAX_VALUE: usize = 4096;

/// Longest run of headers kept as the last clean ones.
const MAX_LAST_HEADERS: usize = 16 << 10;

/// Bookkeeping charged per entry on top of its bytes.
const ENTRY_OVERHEAD: usize = 48;

/// The clean values of one engine, a table per thread.
pub(crate) struct CleanCache {
    hasher: foldhash::fast::RandomState,
    tables: ThreadLocal<RefCell<Table>>,
}

/// Where a value's verdict lives: computed once per value, used by the
/// probe and, on a miss, by the insert.
#[derive(Clone, Copy)]
pub(crate) struct Probe {
    hash: u64,
    json_request: bool,
}

struct Table {
    slots: Box<[Option<Entry>]>,
    bytes: usize,
    /// The last clean run of inspected headers.
    headers: LastHeaders,
    /// The last clean path and query.
    target: LastTarget,
    /// The last clean bodiless head.
    head: LastHead,
}

/// The path and query of the last request on this thread found clean.
#[derive(Default)]
struct LastTarget {
    /// Whether anything is kept.
    kept: bool,
    json_request: bool,
    path: Vec<u8>,
    query: Option<Vec<u8>>,
}

impl LastTarget {
    fn matches(&self, json_request: bool, path: &[u8], query: Option<&[u8]>) -> bool {
        let same = |kept: &[u8], now: &[u8]| kept.len() == now.len() && same_bytes(kept, now);
        self.kept
            && self.json_request == json_request
            && same(&self.path, path)
            && match (&self.query, query) {
                (Some(kept), Some(now)) => same(kept, now),
                (None, None) => true,
                _ => false,
            }
    }

    fn keep(&mut self, json_request: bool, path: &[u8], query: Option<&[u8]>) {
        self.kept = path.len() + query.map_or(0, <[u8]>::len) <= MAX_LAST_HEADERS;
        self.path.clear();
        if !self.kept {
            self.query = None;
            return;
        }
        self.path.extend_from_slice(path);
        match (&mut self.query, query) {
            (Some(kept), Some(now)) => {
                kept.clear();
                kept.extend_from_slice(now);
            }
            (kept, now) => *kept = now.map(<[u8]>::to_vec),
        }
        self.json_request = json_request;
    }
}

/// A bodiless request's method and every header (the skipped ones too),
/// in order, of the last such request found clean: the same ones under
/// the same rules get the same verdicts from the protocol checks and the
/// headers' rules, so one comparison stands for both and leaves only the
/// path and query. Names and the method are kept as `http`'s types, so
/// each compares in a few instructions (a standard name is one byte; no
/// name is spelt out); the values are one run of bytes.
#[derive(Default)]
struct LastHead {
    /// Whether anything is kept.
    kept: bool,
    json_request: bool,
    method: Method,
    /// Each header's name and its value's length, in the map's order.
    names: Vec<(HeaderName, u32)>,
    /// The values, one after another.
    values: Vec<u8>,
}

impl LastHead {
    /// Whether `method` and `headers` are the kept ones: then the flag
    /// they were kept with.
    fn flag_if_matches(&self, method: &Method, headers: &HeaderMap) -> Option<bool> {
        // `len` counts values, as `iter` yields them: equal lengths make
        // the zip below cover both whole.
        if !self.kept || self.names.len() != headers.len() || self.method != *method {
            return None;
        }
        let mut rest = &self.values[..];
        for ((name, value), (kept_name, len)) in headers.iter().zip(&self.names) {
            let value = value.as_bytes();
            if value.len() != *len as usize || name != kept_name {
                return None;
            }
            let (kept, tail) = rest.split_at_checked(value.len())?;
            if !same_bytes(kept, value) {
                return None;
            }
            rest = tail;
        }
        Some(self.json_request)
    }

    fn keep(&mut self, json_request: bool, method: &Method, headers: &HeaderMap) {
        self.kept = false;
        self.names.clear();
        self.values.clear();
        let mut bytes = 0;
        for (name, value) in headers {
            let value = value.as_bytes();
            bytes += 4 + name.as_str().len() + value.len();
            if bytes > MAX_LAST_HEADERS {
                self.names.clear();
                self.values.clear();
                return;
            }
            self.names.push((name.clone(), value.len() as u32));
            self.values.extend_from_slice(value);
        }
        self.method = method.clone();
        self.json_request = json_request;
        self.kept = true;
    }
}

/// The inspected headers of the last request on this thread whose headers
/// were all found clean: each name and value as a 4-byte length and its
/// bytes, so no run of other headers reads the same.
#[derive(Default)]
struct LastHeaders {
    /// Whether `run` holds anything.
    kept: bool,
    json_request: bool,
    run: Vec<u8>,
}

impl LastHeaders {
    fn matches<'h>(&self, json_request: bool, headers: impl Iterator<Item = (&'h str, &'h [u8])>) -> bool {
        if !self.kept || self.json_request != json_request {
            return false;
        }
        let mut rest = &self.run[..];
        for (name, value) in headers {
            for part in [name.as_bytes(), value] {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return false;
                };
                if u32::from_le_bytes(*len) as usize != part.len()
                    || tail.len() < part.len()
                    || !same_bytes(&tail[..part.len()], part)
                {
                    return false;
                }
                rest = &tail[part.len()..];
            }
        }
        rest.is_empty()
    }

    fn keep<'h>(&mut self, json_request: bool, headers: impl Iterator<Item = (&'h str, &'h [u8])>) {
        self.run.clear();
        self.kept = false;
        for (name, value) in headers {
            for part in [name.as_bytes(), value] {
                if self.run.len() + 4 + part.len() > MAX_LAST_HEADERS {
                    self.run.clear();
                    return;
                }
                self.run.extend_from_slice(&(part.len() as u32).to_le_bytes());
                self.run.extend_from_slice(part);
            }
        }
        self.kept = true;
        self.json_request = json_request;
    }
}

/// Whether `a` and `b` (of one length) hold the same bytes. Most names
/// and many values in a head are under 16 bytes: two overlapping word
/// compares settle those inline, where `==` calls `memcmp` for each.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0..4 => a == b,
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A value found clean: in a JSON request or not (a JSON body relaxes
/// one rule), under which name, and its bytes (`key` is the name, then
/// the value).
struct Entry {
    hash: u64,
    json_request: bool,
    name_len: u32,
    key: Box<[u8]>,
}

impl Entry {
    fn is(&self, probe: Probe, name: &str, value: &[u8]) -> bool {
        self.hash == probe.hash
            && self.json_request == probe.json_request
            && self.name_len as usize == name.len()
            && self.key.len() == name.len() + value.len()
            && self.key[..name.len()] == *name.as_bytes()
            && self.key[name.len()..] == *value
    }
}

impl CleanCache {
    pub(crate) fn new() -> Self {
        CleanCache {
            hasher: foldhash::fast::RandomState::default(),
            tables: ThreadLocal::new(),
        }
    }

    /// This thread's table, made on its first request: looked up once per
    /// request, not once per value.
    pub(crate) fn local(&self) -> Local<'_> {
        Local {
            hasher: &self.hasher,
            table: self.tables.get_or(|| RefCell::new(Table::new())),
        }
    }
}

/// One thread's table, for the values of one request.
#[derive(Clone, Copy)]
pub(crate) struct Local<'c> {
    hasher: &'c foldhash::fast::RandomState,
    table: &'c RefCell<Table>,
}

impl Local<'_> {
    /// The probe for a value, or `None` for a value too long to keep.
    pub(crate) fn probe(&self, json_request: bool, name: &str, value: &[u8]) -> Option<Probe> {
        (value.len() <= MAX_VALUE).then(|| Probe {
            hash: self.hasher.hash_one((name, value)),
            json_request,
        })
    }

    /// Whether `values` (named, in order) are exactly the last run of
    /// inspected headers that this thread found all clean. Inlined: it is
    /// the whole of a repeated request's inspection of its headers.
    #[inline]
    pub(crate) fn same_clean_headers<'h>(
        &self,
        json_request: bool,
        values: impl Iterator<Item = (&'h str, &'h [u8])>,
    ) -> bool {
        self.table.borrow().headers.matches(json_request, values)
    }

    /// Whether `path` and `query` are exactly the last ones this thread
    /// found clean.
    #[inline]
    pub(crate) fn same_clean_target(&self, json_request: bool, path: &[u8], query: Option<&[u8]>) -> bool {
        self.table.borrow().target.matches(json_request, path, query)
    }

    /// Remembers `path` and `query`, found clean, as the last clean ones.
    pub(crate) fn keep_clean_target(&self, json_request: bool, path: &[u8], query: Option<&[u8]>) {
        self.table.borrow_mut().target.keep(json_request, path, query);
    }

    /// Whether `method` and `headers` are exactly the last clean
    /// bodiless head this thread kept ([`LastHead`]), and if so, whether
    /// it was kept for a JSON request.
    #[inline]
    pub(crate) fn clean_head_flag(&self, method: &Method, headers: &HeaderMap) -> Option<bool> {
        self.table.borrow().head.flag_if_matches(method, headers)
    }

    /// Remembers `method` and `headers`, found clean, as the last clean
    /// bodiless head.
    pub(crate) fn keep_clean_head(&self, json_request: bool, method: &Method, headers: &HeaderMap) {
        self.table.borrow_mut().head.keep(json_request, method, headers);
    }

    /// Remembers `values`, every one found clean, as the last clean run
    /// of inspected headers.
    pub(crate) fn keep_clean_headers<'h>(&self, json_request: bool, values: impl Iterator<Item = (&'h str, &'h [u8])>) {
        self.table.borrow_mut().headers.keep(json_request, values);
    }

    /// Whether this thread found the value clean before.
    pub(crate) fn contains(&self, probe: Probe, name: &str, value: &[u8]) -> bool {
        let table = self.table.borrow();
        let at = set(probe.hash);
        table.slots[at..at + 2]
            .iter()
            .flatten()
            .any(|e| e.is(probe, name, value))
    }

    /// Remembers a value found clean in the first slot of its pair; the
    /// value there moves to the second, and the second's is dropped.
    pub(crate) fn insert(&self, probe: Probe, name: &str, value: &[u8]) {
        let mut table = self.table.borrow_mut();
        let weight = name.len() + value.len() + ENTRY_OVERHEAD;
        let at = set(probe.hash);
        if let Some(old) = table.slots[at + 1].take() {
            table.bytes -= old.key.len() + ENTRY_OVERHEAD;
        }
        table.slots.swap(at, at + 1);
        if table.bytes + weight > THREAD_BYTES {
            table.slots.iter_mut().for_each(|s| *s = None);
            table.bytes = 0;
        }
        let mut key = Vec::with_capacity(name.len() + value.len());
        key.extend_from_slice(name.as_bytes());
        key.extend_from_slice(value);
        table.slots[at] = Some(Entry {
            hash: probe.hash,
            json_request: probe.json_request,
            name_len: name.len() as u32,
            key: key.into_boxed_slice(),
        });
        table.bytes += weight;
    }
}

impl Table {
    fn new() -> Self {
        Table {
            slots: (0..SLOTS).map(|_| None).collect(),
            bytes: 0,
            headers: LastHeaders::default(),
            target: LastTarget::default(),
            head: LastHead::default(),
        }
    }
}

/// The first of a value's two slots.
fn set(hash: u64) -> usize {
    // The high bits: foldhash mixes them best.
    (hash >> 52) as usize & (SLOTS - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_sees_a_change_at_any_place_of_any_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for at in 0..n {
                for flip in [1u8, 0x80, 0xff] {
                    let mut b = a.clone();
                    b[at] ^= flip;
                    assert!(!same_bytes(&a, &b), "length {n}, byte {at}");
                }
            }
        }
    }

    #[test]
    fn a_run_matches_only_the_same_names_and_values_in_order() {
        let mut last = LastHeaders::default();
        let run = [
            ("user-agent", &b"Mozilla/5.0 (X11)"[..]),
            ("cookie", b"a=1; b=2"),
            ("x", b""),
        ];
        last.keep(false, run.into_iter());
        assert!(last.matches(false, run.into_iter()));
        assert!(!last.matches(true, run.into_iter()), "kept for another kind of request");
        let other = [
            vec![
                ("user-agent", &b"Mozilla/5.0 (X11)"[..]),
                ("cookie", b"a=1; b=3"),
                ("x", b""),
            ],
            vec![("user-agent", b"Mozilla/5.0 (X11)"), ("cookie", b"a=1; b=2")],
            vec![
                ("user-agent", b"Mozilla/5.0 (X11)"),
                ("cookie", b"a=1; b=2"),
                ("x", b""),
                ("y", b""),
            ],
            vec![
                ("user-agent", b"Mozilla/5.0 (X11)"),
                ("cookie", b"a=1; b=2"),
                ("y", b""),
            ],
            vec![
                ("cookie", b"a=1; b=2"),
                ("user-agent", b"Mozilla/5.0 (X11)"),
                ("x", b""),
            ],
            vec![
                ("user-agent", b"Mozilla/5.0 (X11)c"),
                ("ookie", b"a=1; b=2"),
                ("x", b""),
            ],
        ];
        for o in other {
            assert!(!last.matches(false, o.clone().into_iter()), "{o:?}");
        }
    }

    #[test]
    fn a_head_matches_only_the_same_method_names_and_values_in_order() {
        let map = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(*n, v.parse().unwrap());
            }
            h
        };
        let long = "a".repeat(300);
        let kept = map(&[
            ("host", "shop.example.com"),
            ("user-agent", "Mozilla/5.0 (X11)"),
            ("x-custom-name", "1"),
            ("cookie", &long),
        ]);
        let mut last = LastHead::default();
        assert_eq!(last.flag_if_matches(&Method::GET, &kept), None, "nothing kept yet");
        last.keep(true, &Method::GET, &kept);
        assert_eq!(last.flag_if_matches(&Method::GET, &kept), Some(true));
        assert_eq!(last.flag_if_matches(&Method::GET, &kept.clone()), Some(true), "a copy");
        assert_eq!(last.flag_if_matches(&Method::HEAD, &kept), None, "another method");
        let mut spliced = long.clone().into_bytes();
        spliced[200] = b'\'';
        let spliced = String::from_utf8(spliced).unwrap();
        for other in [
            map(&[
                ("host", "shop.example.com"),
                ("user-agent", "Mozilla/5.0 (X11)"),
                ("x-custom-name", "1"),
            ]),
            map(&[
                ("host", "shop.example.com"),
                ("user-agent", "Mozilla/5.0 (X11)"),
                ("x-custom-name", "1"),
                ("cookie", &spliced),
            ]),
            map(&[
                ("host", "shop.example.com"),
                ("user-agent", "Mozilla/5.0 (X11)"),
                ("x-custom-namf", "1"),
                ("cookie", &long),
            ]),
            map(&[
                ("host", "shop.example.com"),
                ("user-agent", "Mozilla/5.0 (X11)"),
                ("x-custom-name", "1"),
                ("cookie", &long),
                ("cookie", "b=2"),
            ]),
            map(&[
                ("host", "shop.example.com"),
                ("referer", "Mozilla/5.0 (X11)"),
                ("x-custom-name", "1"),
                ("cookie", &long),
            ]),
            map(&[
                ("host", "shop.example.com"),
                ("user-agent", "Mozilla/5.0 (X11)c"),
                ("x-custom-name", ""),
                ("cookie", &long),
            ]),
        ] {
            assert_eq!(last.flag_if_matches(&Method::GET, &other), None, "{other:?}");
        }
        // Too long a head is not kept at all.
        let huge = map(&[("cookie", &"a".repeat(MAX_LAST_HEADERS))]);
        last.keep(false, &Method::GET, &huge);
        assert_eq!(last.flag_if_matches(&Method::GET, &huge), None);
        assert_eq!(last.flag_if_matches(&Method::GET, &kept), None, "the old one is gone");
    }

    #[test]
    fn only_the_same_value_under_the_same_name_and_rules_is_clean() {
        let cache = CleanCache::new();
        let cache = cache.local();
        let p = cache.probe(false, "cookie", b"a=1").unwrap();
        assert!(!cache.contains(p, "cookie", b"a=1"));
        cache.insert(p, "cookie", b"a=1");
        assert!(cache.contains(p, "cookie", b"a=1"));
        for (json, name, value) in [
            (true, "cookie", &b"a=1"[..]),
            (false, "cookiea", b"=1"),
            (false, "cookie", b"a=2"),
            (false, "referer", b"a=1"),
        ] {
            let q = cache.probe(json, name, value).unwrap();
            assert!(!cache.contains(q, name, value), "{json} {name}");
        }
        // Even a probe forged to the same hash finds nothing but its value.
        assert!(!cache.contains(p, "cookie", b"a=2"));
        assert!(!cache.contains(p, "cookiea", b"=1"));
    }

    #[test]
    fn the_last_clean_headers_match_only_the_same_run() {
        let cache = CleanCache::new();
        let cache = cache.local();
        let cookie = format!("session={};theme=dark", "a".repeat(600));
        let run = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, Vec<u8>)> {
            pairs.iter().map(|(n, v)| (*n, v.as_bytes().to_vec())).collect()
        };
        fn iter<'r>(r: &'r [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'r [u8])> {
            r.iter().map(|(n, v)| (*n, &v[..])).collect()
        }
        let kept = run(&[("user-agent", "Mozilla/5.0"), ("cookie", &cookie)]);
        assert!(
            !cache.same_clean_headers(false, iter(&kept).into_iter()),
            "nothing kept yet"
        );
        cache.keep_clean_headers(false, iter(&kept).into_iter());
        assert!(cache.same_clean_headers(false, iter(&kept).into_iter()));
        assert!(
            !cache.same_clean_headers(true, iter(&kept).into_iter()),
            "JSON requests apart"
        );
        let mut spliced = cookie.clone().into_bytes();
        spliced[300..310].copy_from_slice(b"' OR 1=1--");
        let spliced = String::from_utf8(spliced).unwrap();
        for other in [
            run(&[("user-agent", "Mozilla/5.0"), ("cookie", &spliced)]),
            run(&[("user-agent", "Mozilla/5.0")]),
            run(&[("user-agent", "Mozilla/5.0"), ("cookie", &cookie), ("cookie", "x=1")]),
            run(&[("cookie", &cookie), ("user-agent", "Mozilla/5.0")]),
            run(&[("user-agent", "Mozilla/5.0c"), ("ookie", &cookie)]),
            run(&[("user-agent", "Mozilla/5.0"), ("referer", &cookie)]),
        ] {
            assert!(
                !cache.same_clean_headers(false, iter(&other).into_iter()),
                "{:?}",
                other[0]
            );
        }
        // Too long a run is not kept at all.
        let huge = run(&[("cookie", &"a".repeat(MAX_LAST_HEADERS))]);
        cache.keep_clean_headers(false, iter(&huge).into_iter());
        assert!(!cache.same_clean_headers(false, iter(&huge).into_iter()));
        assert!(!cache.same_clean_headers(false, std::iter::empty()));
        // The path and query are kept apart.
        cache.keep_clean_headers(false, iter(&kept).into_iter());
        assert!(!cache.same_clean_target(false, b"Mozilla/5.0", None));
    }

    #[test]
    fn the_last_clean_target_matches_only_the_same_path_and_query() {
        let cache = CleanCache::new();
        let cache = cache.local();
        assert!(!cache.same_clean_target(false, b"/", None), "nothing kept yet");
        cache.keep_clean_target(false, b"/index.html", Some(b"page=2"));
        assert!(cache.same_clean_target(false, b"/index.html", Some(b"page=2")));
        for (json, path, query) in [
            (true, &b"/index.html"[..], Some(&b"page=2"[..])),
            (false, b"/index.html", None),
            (false, b"/index.html", Some(b"")),
            (false, b"/index.html", Some(b"page=3")),
            (false, b"/index.htm", Some(b"lpage=2")),
            (false, b"/index.htmlpage=2", None),
        ] {
            assert!(!cache.same_clean_target(json, path, query), "{path:?} {query:?}");
        }
        cache.keep_clean_target(false, b"/a", None);
        assert!(cache.same_clean_target(false, b"/a", None));
        assert!(!cache.same_clean_target(false, b"/a", Some(b"")));
        let long = vec![b'a'; MAX_LAST_HEADERS + 1];
        cache.keep_clean_target(false, &long, None);
        assert!(!cache.same_clean_target(false, &long, None), "too long to keep");
        assert!(!cache.same_clean_target(false, b"/a", None));
    }

    #[test]
    fn long_values_are_not_kept_and_bytes_are_bounded() {
        let cache = CleanCache::new();
        let cache = cache.local();
        assert!(cache.probe(false, "x", &[b'a'; MAX_VALUE + 1]).is_none());
        for i in 0..20_000u32 {
            let value = format!("{i:04096}");
            let p = cache.probe(false, "x", value.as_bytes()).unwrap();
            cache.insert(p, "x", value.as_bytes());
            let table = cache.table.borrow();
            assert!(table.bytes <= THREAD_BYTES);
            let held: usize = table.slots.iter().flatten().map(|e| e.key.len() + ENTRY_OVERHEAD).sum();
            assert_eq!(held, table.bytes);
        }
    }

    #[test]
    fn two_values_sharing_a_pair_of_slots_both_stay() {
        let cache = CleanCache::new();
        let cache = cache.local();
        // Values whose hashes pick the same pair, found by trying.
        let mut same: Vec<(String, Probe)> = Vec::new();
        for i in 0.. {
            let v = format!("value-{i}");
            let p = cache.probe(false, "x", v.as_bytes()).unwrap();
            if same.first().is_none_or(|(_, q)| set(q.hash) == set(p.hash)) {
                same.push((v, p));
            }
            if same.len() == 3 {
                break;
            }
        }
        let [(a, pa), (b, pb), (c, pc)] = <[_; 3]>::try_from(same).ok().unwrap();
        cache.insert(pa, "x", a.as_bytes());
        cache.insert(pb, "x", b.as_bytes());
        assert!(cache.contains(pa, "x", a.as_bytes()));
        assert!(cache.contains(pb, "x", b.as_bytes()));
        // A third takes the pair's first slot: the oldest goes.
        cache.insert(pc, "x", c.as_bytes());
        assert!(cache.contains(pc, "x", c.as_bytes()));
        assert!(cache.contains(pb, "x", b.as_bytes()));
        assert!(!cache.contains(pa, "x", a.as_bytes()));
    }

    #[test]
    fn each_thread_learns_on_its_own() {
        let cache = CleanCache::new();
        let here = cache.local();
        let p = here.probe(false, "ua", b"curl/8").unwrap();
        here.insert(p, "ua", b"curl/8");
        std::thread::scope(|s| {
            s.spawn(|| assert!(!cache.local().contains(p, "ua", b"curl/8")));
        });
        assert!(here.contains(p, "ua", b"curl/8"));
    }
}
