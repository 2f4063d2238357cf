//! Response headers a plugin adds without touching the response's
//! `HeaderMap`: each insert into http's map costs a hash, a probe and
//! sometimes a growth, paid again on every response for headers whose
//! values a configuration fixes. A [`HeaderBlock`] is such a set, checked
//! and written out in HTTP/1 form once per configuration; a response
//! carries its blocks and a few numbers ([`EncodedHeaders`], in
//! [`Ctx::encoded_headers`](crate::Ctx::encoded_headers)), which bext's
//! HTTP/1 writer copies as they are. Wherever a map is needed (a later
//! `on_response` hook, HTTP/2, hyper's HTTP/1 path) the kernel first
//! appends them to the map, so nobody sees a difference but the cost.

use std::sync::Arc;

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};

/// Names a block may not hold: the HTTP/1 writer decides them itself
/// (framing, connection, date), so a copy from a block would contradict it.
const WRITER_OWNED: [&HeaderName; 4] = [&CONTENT_LENGTH, &TRANSFER_ENCODING, &CONNECTION, &DATE];

/// Why a [`HeaderBlock`] cannot hold a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The server writes this header itself.
    #[error("{0} is written by the server and cannot be part of a header block")]
    WriterOwned(HeaderName),
    /// A name twice: a block is a set of distinct headers.
    #[error("{0} is in the block twice")]
    Duplicate(HeaderName),
}

/// A fixed set of response headers, written once as `name: value\r\n`
/// lines (lower-case names, as the HTTP/1 writer writes every name).
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct HeaderBlock(Arc<Block>);

#[derive(Debug)]
struct Block {
    lines: Box<[u8]>,
    pairs: Box<[(HeaderName, HeaderValue)]>,
    /// The names' lengths as bits (all set if one is 64 or longer), to
    /// rule most names out before comparing.
    lengths: u64,
}

impl HeaderBlock {
    /// Checks and writes out `pairs`, in order. Fails for a name given
    /// twice or one the server writes itself (`content-length`,
    /// `transfer-encoding`, `connection`, `date`).
    pub fn new(pairs: &[(HeaderName, HeaderValue)]) -> Result<Self, BlockError> {
        let mut lines = Vec::new();
        for (i, (name, value)) in pairs.iter().enumerate() {
            if WRITER_OWNED.contains(&name) {
                return Err(BlockError::WriterOwned(name.clone()));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(BlockError::Duplicate(name.clone()));
            }
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        let lengths = pairs.iter().fold(0, |bits, (n, _)| bits | length_bit(n));
        Ok(HeaderBlock(Arc::new(Block {
            lines: lines.into(),
            pairs: pairs.into(),
            lengths,
        })))
    }

    /// The headers as HTTP/1 lines, each ending in CRLF.
    pub fn lines(&self) -> &[u8] {
        &self.0.lines
    }

    /// The headers, in order.
    pub fn pairs(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0.pairs
    }

    /// Whether `other` is this very block (a clone of it), not merely an
    /// equal one: one pointer comparison, for a plugin that remembers
    /// what it found in a block (the static runtime adds the same block
    /// for every answer of a file).
    pub fn same(&self, other: &HeaderBlock) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether the block has a header named `name`.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.lengths & length_bit(name) != 0 && self.0.pairs.iter().any(|(n, _)| n == name)
    }

    /// Whether `headers` has a header of one of the block's names: one
    /// look over the map's names, most ruled out by their length.
    pub fn names_any_of(&self, headers: &HeaderMap) -> bool {
        headers.keys().any(|k| self.contains(k))
    }
}

fn length_bit(name: &HeaderName) -> u64 {
    1u64.checked_shl(name.as_str().len() as u32).unwrap_or(u64::MAX)
}

/// How many blocks one response carries.
const BLOCKS: usize = 4;
/// How many numeric headers one response carries.
const NUMBERS: usize = 4;

/// The blocks and numeric headers a response carries next to its map, in
/// the order they were added. Added headers are appended, as
/// `HeaderMap::append` would: a plugin that must replace a value the map
/// may hold checks the map first ([`HeaderBlock::names_any_of`]) and uses
/// the map when it does.
///
/// Boxed, and allocated only by the first header added: every request's
/// `Ctx` and every response body carries one, and most add nothing, so a
/// pointer costs them nothing to make, move and drop where the slots
/// inline (~190 bytes) cost every request (bench/RESULTS.md, secperf4).
#[derive(Default, Debug)]
pub struct EncodedHeaders(Option<Box<Added>>);

/// What a response's plugins added, in free slots from the first.
#[derive(Default, Debug)]
struct Added {
    blocks: [Option<HeaderBlock>; BLOCKS],
    numbers: [Option<(HeaderName, u64)>; NUMBERS],
}

/// The response has no room left; the caller adds the header to the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response carries as many encoded headers as it can")]
pub struct Full;

impl EncodedHeaders {
    /// Adds a block (a shared reference, no copy).
    pub fn push_block(&mut self, block: &HeaderBlock) -> Result<(), Full> {
        let added = self.0.get_or_insert_default();
        let slot = added.blocks.iter_mut().find(|b| b.is_none()).ok_or(Full)?;
        *slot = Some(block.clone());
        Ok(())
    }

    /// Adds `name: n`, written in decimal by whoever writes the head.
    /// `name` must not be one the server writes itself (see
    /// [`HeaderBlock::new`]); such a name is refused as [`Full`] too, so
    /// the caller's map fallback applies.
    pub fn push_number(&mut self, name: &HeaderName, n: u64) -> Result<(), Full> {
        if WRITER_OWNED.contains(&name) {
            return Err(Full);
        }
        let added = self.0.get_or_insert_default();
        let slot = added.numbers.iter_mut().find(|s| s.is_none()).ok_or(Full)?;
        *slot = Some((name.clone(), n));
        Ok(())
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|a| a.blocks[0].is_none() && a.numbers[0].is_none())
    }

    /// The blocks added, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &HeaderBlock> {
        self.0.iter().flat_map(|a| a.blocks.iter().map_while(Option::as_ref))
    }

    /// The numeric headers added, in order.
    pub fn numbers(&self) -> impl Iterator<Item = (&HeaderName, u64)> {
        self.0
            .iter()
            .flat_map(|a| a.numbers.iter().map_while(|s| s.as_ref().map(|(n, v)| (n, *v))))
    }

    /// The names of the headers added, blocks first.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        (self.blocks().flat_map(|b| b.pairs().iter().map(|(n, _)| n))).chain(self.numbers().map(|(n, _)| n))
    }

    /// Whether a header named `name` was added.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.blocks().any(|b| b.contains(name)) || self.numbers().any(|(n, _)| n == name)
    }

    /// Appends everything added to `headers`, and forgets it: what the
    /// kernel does before anything that reads or writes the map.
    pub fn move_into(&mut self, headers: &mut HeaderMap) {
        if self.is_empty() {
            return;
        }
        let taken = std::mem::take(self);
        for block in taken.blocks() {
            for (name, value) in block.pairs() {
                headers.append(name, value.clone());
            }
        }
        for (name, n) in taken.numbers() {
            headers.append(name, HeaderValue::from(n));
        }
    }

    /// Forgets everything added (the response it was for was replaced).
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&'static str, &'static str)]) -> Vec<(HeaderName, HeaderValue)> {
        list.iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn a_block_is_its_lines_and_its_pairs() {
        let b = HeaderBlock::new(&pairs(&[("x-frame-options", "DENY"), ("x-a", "1")])).unwrap();
        assert_eq!(b.lines(), b"x-frame-options: DENY\r\nx-a: 1\r\n");
        assert_eq!(b.pairs().len(), 2);
        assert!(b.contains(&HeaderName::from_static("x-a")));
        assert!(!b.contains(&HeaderName::from_static("x-b")), "same length, other name");
        assert!(!b.contains(&HeaderName::from_static("x-aa")));
    }

    #[test]
    fn a_block_refuses_what_the_writer_owns_and_duplicates() {
        for owned in ["content-length", "transfer-encoding", "connection", "date"] {
            let err = HeaderBlock::new(&pairs(&[("x-a", "1"), (owned, "2")])).unwrap_err();
            assert_eq!(err, BlockError::WriterOwned(HeaderName::from_static(owned)));
            let mut e = EncodedHeaders::default();
            assert_eq!(e.push_number(&HeaderName::from_static(owned), 1), Err(Full));
        }
        let err = HeaderBlock::new(&pairs(&[("x-a", "1"), ("x-a", "2")])).unwrap_err();
        assert!(matches!(err, BlockError::Duplicate(_)));
    }

    #[test]
    fn a_long_name_is_found_too() {
        let long: &'static str = Box::leak(format!("x-{}", "l".repeat(70)).into_boxed_str());
        let b = HeaderBlock::new(&pairs(&[(long, "1")])).unwrap();
        assert!(b.contains(&HeaderName::from_static(long)));
        let mut map = HeaderMap::new();
        map.insert("x-other", HeaderValue::from_static("1"));
        assert!(!b.names_any_of(&map));
        map.insert(long, HeaderValue::from_static("2"));
        assert!(b.names_any_of(&map));
    }

    #[test]
    fn moving_into_a_map_appends_everything_once() {
        let b = HeaderBlock::new(&pairs(&[("x-a", "1"), ("vary", "Origin")])).unwrap();
        let mut e = EncodedHeaders::default();
        assert!(e.is_empty());
        e.push_block(&b).unwrap();
        e.push_number(&HeaderName::from_static("ratelimit-reset"), 42).unwrap();
        assert!(e.contains(&HeaderName::from_static("ratelimit-reset")));
        assert!(e.contains(&HeaderName::from_static("vary")));
        let mut map = HeaderMap::new();
        map.insert("vary", HeaderValue::from_static("accept-encoding"));
        e.move_into(&mut map);
        assert!(e.is_empty(), "forgotten once moved");
        assert_eq!(
            map.get_all("vary").iter().collect::<Vec<_>>(),
            ["accept-encoding", "Origin"]
        );
        assert_eq!(map["x-a"], "1");
        assert_eq!(map["ratelimit-reset"], "42");
        e.move_into(&mut map);
        assert_eq!(map.len(), 4, "nothing twice");
    }

    #[test]
    fn a_full_response_says_so() {
        let b = HeaderBlock::new(&pairs(&[("x-a", "1")])).unwrap();
        let mut e = EncodedHeaders::default();
        for _ in 0..BLOCKS {
            e.push_block(&b).unwrap();
        }
        assert_eq!(e.push_block(&b), Err(Full));
        let n = HeaderName::from_static("x-n");
        for i in 0..NUMBERS {
            e.push_number(&n, i as u64).unwrap();
        }
        assert_eq!(e.push_number(&n, 9), Err(Full));
        assert_eq!(e.numbers().map(|(_, v)| v).collect::<Vec<_>>(), [0, 1, 2, 3]);
        e.clear();
        assert!(e.is_empty());
    }
}
