//! The store an edge fleet shares, as plugins see it: a trait, so plugin
//! crates depend on neither Redis nor the kernel's client for it, and the
//! kernel may change how the fleet's store is reached without touching
//! them. In edge mode the kernel lends one with [`crate::Host::fleet`].
//!
//! Trouble with the store must never take a site down: every call has a
//! short deadline and fails soft (`None`, `false`, `0`), and callers fall
//! back to what they have locally.

use std::time::Duration;

/// The fleet's shared store (Redis in bext's kernel): keys with expiry,
/// sets of keys to delete together, atomic scripts and a broadcast bus.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync {
    /// `rest` under the fleet's prefix: every key and set a plugin uses
    /// goes through this, so fleets sharing one store stay apart.
    fn key(&self, rest: &str) -> String;

    /// Whether the last call reached the store (decide locally at once
    /// when it did not).
    fn is_up(&self) -> bool;

    /// The value under `key`; `None` when absent or when the store fails.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Stores `value` under `key` for `ttl` and adds `key` to each of
    /// `sets` (kept as long), so it can be found to delete by tag or path;
    /// whether the store took it.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration, sets: &[String]) -> bool;

    /// Deletes every key listed in `sets`, and the sets; how many keys.
    async fn delete_listed(&self, sets: &[String]) -> usize;

    /// Runs the Lua `script` atomically in the store on `keys` with integer
    /// `args`; its integer array result, `None` when the store failed.
    /// The store keeps the script loaded, so pass the same `&'static str`
    /// each time.
    async fn run_script(&self, script: &'static str, keys: &[&[u8]], args: &[u64]) -> Option<Vec<i64>>;

    /// Sends `payload` to every instance of the fleet (this one too);
    /// whether the store took it.
    async fn publish(&self, payload: &[u8]) -> bool;

    /// What instances publish from now on.
    fn messages(&self) -> Box<dyn FleetMessages>;
}

/// The fleet's broadcast bus, read in order by one listener.
#[async_trait::async_trait]
pub trait FleetMessages: Send {
    /// The next payload published; `None` once the fleet is gone. A
    /// listener too slow to keep up misses messages rather than blocking
    /// the others.
    async fn next(&mut self) -> Option<Vec<u8>>;
}
