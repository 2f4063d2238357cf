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
//! value can pass for a clean one (a hash alone could collide).
//!
//! The hash that picks the slots reads only a sample of a long value (its
//! length and four 8-byte words spread over it), not every byte: a browser
//! sends the same user agent, cookie, referer and token on every request,
//! and hashing all of them again cost more than the comparison that
//! follows (memcmp of equal bytes is a few instructions per 32 bytes).
//! The exact comparison is what vouches for a value, so a value that
//! differs from a clean one anywhere, sampled or not, is never taken for
//! it. The sample is hashed with a per-process seed; values made to share
//! a sample only share a pair of slots, which costs their sender a full
//! inspection each time, not a detection.
//!
//! Bounded: `SLOTS` entries and `THREAD_BYTES` of values per thread (past
//! it the table starts again empty); values over `MAX_VALUE` bytes are
//! not kept.

use std::cell::RefCell;
use std::hash::BuildHasher;

use thread_local::ThreadLocal;

/// Slots in each thread's table (a power of two).
const SLOTS: usize = 4096;

/// Bytes of keys a thread's table holds at most.
const THREAD_BYTES: usize = 2 << 20;

/// Longest value kept.
const MAX_VALUE: usize = 4096;

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
            hash: self.hasher.hash_one((sample(name.as_bytes()), sample(value))),
            json_request,
        })
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
        }
    }
}

/// What the slot hash reads of a value: its length and four words at
/// its start, a third and two thirds in, and its end (overlapping for
/// short values, zero-padded below 8 bytes), so hashing costs the same
/// for a 20-byte and a 2,000-byte value.
fn sample(bytes: &[u8]) -> [u64; 5] {
    let len = bytes.len();
    if len < 8 {
        let mut word = [0u8; 8];
        word[..len].copy_from_slice(bytes);
        return [len as u64, u64::from_le_bytes(word), 0, 0, 0];
    }
    let word = |at: usize| {
        let at = at.min(len - 8);
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    };
    [len as u64, word(0), word(len / 3), word(2 * len / 3), word(len - 8)]
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
    fn values_sharing_a_sample_are_told_apart_by_their_bytes() {
        let cache = CleanCache::new();
        let cache = cache.local();
        // A long cookie, then the same cookie with an attack spliced in
        // between the sampled words: same length, same sample, same slots.
        let clean = format!("session={};theme=dark", "a".repeat(600));
        let mut attack = clean.clone().into_bytes();
        let payload = b"' OR 1=1--";
        attack[100..100 + payload.len()].copy_from_slice(payload);
        assert_eq!(sample(clean.as_bytes()), sample(&attack));
        let p = cache.probe(false, "cookie", clean.as_bytes()).unwrap();
        cache.insert(p, "cookie", clean.as_bytes());
        let q = cache.probe(false, "cookie", &attack).unwrap();
        assert_eq!(set(p.hash), set(q.hash));
        assert!(cache.contains(p, "cookie", clean.as_bytes()));
        assert!(!cache.contains(q, "cookie", &attack));
        // Short values are sampled whole.
        assert_ne!(sample(b"a=1"), sample(b"a=2"));
        assert_ne!(sample(b"a=1"), sample(b"a=1\0"));
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
