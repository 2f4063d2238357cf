//! Compressed copies of in-memory bodies, made once per coding: a cache
//! hit sharing the entry's buffer finds its copy by that buffer (a
//! lookup), other bodies by a SHA-256 of their bytes.

use std::io;

use bytes::Bytes;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use crate::config::Levels;
use crate::encode::compress;
use crate::negotiate::Encoding;

/// The kept copies, up to a number of bytes each way.
pub(crate) struct Variants {
    /// (SHA-256 of the body, coding) → the compressed body.
    by_content: Cache<([u8; 32], Encoding), Bytes, ContentWeight>,
    /// (address and length of the identity buffer, coding) → that buffer
    /// and its compressed body. Holding the buffer keeps its address from
    /// being reused for other bytes, so a cache hit that shares the
    /// entry's buffer finds its variant without hashing the body.
    by_buffer: Cache<(usize, usize, Encoding), (Bytes, Bytes), BufferWeight>,
}

/// Weighs a `by_buffer` entry by both of its bodies.
#[derive(Clone)]
struct BufferWeight;

impl quick_cache::Weighter<(usize, usize, Encoding), (Bytes, Bytes)> for BufferWeight {
    fn weight(&self, _: &(usize, usize, Encoding), (identity, z): &(Bytes, Bytes)) -> u64 {
        (identity.len() + z.len()) as u64 + 64
    }
}

/// Weighs a `by_content` entry by its compressed body.
#[derive(Clone)]
struct ContentWeight;

impl quick_cache::Weighter<([u8; 32], Encoding), Bytes> for ContentWeight {
    fn weight(&self, _: &([u8; 32], Encoding), v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

impl Variants {
    /// Caches holding up to `bytes` (at least 1) each.
    pub(crate) fn new(bytes: u64) -> Self {
        let bytes = bytes.max(1);
        Variants {
            by_content: Cache::with(
                usize::try_from(bytes / 4096).unwrap_or(1).max(16),
                bytes,
                ContentWeight,
                Default::default(),
                Default::default(),
            ),
            by_buffer: Cache::with(
                usize::try_from(bytes / 8192).unwrap_or(1).max(16),
                bytes,
                BufferWeight,
                Default::default(),
                Default::default(),
            ),
        }
    }

    /// `identity` compressed with `e`: found by its buffer (a cache hit
    /// sharing the entry's bytes), else by its content's hash, else made
    /// now; kept both ways.
    pub(crate) async fn get(&self, identity: Bytes, e: Encoding, levels: Levels) -> io::Result<Bytes> {
        let buffer = (identity.as_ptr() as usize, identity.len(), e);
        if let Some((held, z)) = self.by_buffer.get(&buffer)
            && held.as_ptr() == identity.as_ptr()
        {
            return Ok(z);
        }
        let key = (Sha256::digest(&identity).into(), e);
        let z = match self.by_content.get(&key) {
            Some(z) => z,
            None => {
                let z = Bytes::from(compress(e, levels, &identity).await?);
                self.by_content.insert(key, z.clone());
                z
            }
        };
        self.by_buffer.insert(buffer, (identity, z.clone()));
        Ok(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Bytes {
        Bytes::from("<p>kept once, found twice</p>\n".repeat(100))
    }

    #[tokio::test]
    async fn a_body_is_compressed_once_per_coding_and_found_by_buffer_or_content() {
        let v = Variants::new(1 << 20);
        let levels = Levels::default();
        let first = page();
        let z = v.get(first.clone(), Encoding::Gzip, levels).await.unwrap();
        let shared = v.get(first.clone(), Encoding::Gzip, levels).await.unwrap();
        assert_eq!(shared.as_ptr(), z.as_ptr(), "the same buffer: the kept copy");
        let copy = v.get(page(), Encoding::Gzip, levels).await.unwrap();
        assert_eq!(copy.as_ptr(), z.as_ptr(), "the same bytes elsewhere: the kept copy");
        let other = v.get(first, Encoding::Zstd, levels).await.unwrap();
        assert_ne!(other, z, "another coding, another copy");
        assert_eq!(v.by_content.len(), 2);
    }
}
