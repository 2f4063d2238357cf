//! Rate limiting with GCRA (the generic cell rate algorithm), behind a
//! small [`RateStore`] trait with an in-memory store. In edge mode the
//! fleet's Redis runs the same algorithm (`shared.rs`) and this store is
//! the fallback when Redis does not answer in time.
//!
//! Why GCRA: it keeps one number per key (the "theoretical arrival time",
//! TAT), where a token bucket keeps two; it allows exactly `burst`
//! requests at once and then one per `interval`; `Retry-After` and
//! `RateLimit-Reset` fall out of the TAT; and a key whose TAT is in the
//! past is indistinguishable from a key never seen, so idle keys can be
//! dropped without changing any decision, which bounds memory. The same
//! arithmetic runs as one Redis script. `governor` implements GCRA too, but
//! its keyed state grows without bound unless pruned and ties one quota to
//! one limiter; here one store serves every quota.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use foldhash::quality::RandomState;
use hashbrown::HashTable;

/// Requests allowed: one per `interval` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time between requests at the sustained rate.
    pub interval: Duration,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl Quota {
    /// `per_minute` requests a minute, `burst` at once.
    pub fn per_minute(per_minute: u32, burst: u32) -> Quota {
        Quota {
            interval: Duration::from_nanos(60_000_000_000 / u64::from(per_minute.max(1))),
            burst: burst.max(1),
        }
    }

    /// `per_second` requests a second, `burst` at once.
    pub fn per_second(per_second: u32, burst: u32) -> Quota {
        Quota {
            interval: Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1))),
            burst: burst.max(1),
        }
    }

    /// The window the `RateLimit-Limit` header describes: `burst` requests
    /// per `burst * interval`.
    pub fn window(&self) -> Duration {
        self.interval * self.burst
    }

    fn interval_nanos(&self) -> u64 {
        self.interval.as_nanos().max(1) as u64
    }

    /// How far ahead of now the TAT may run: `(burst - 1) * interval`.
    fn tolerance_nanos(&self) -> u64 {
        self.interval_nanos() * u64::from(self.burst - 1)
    }
}

/// A decision, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: until one request is allowed again (`Retry-After`).
    pub retry_after: Duration,
}

/// GCRA on one key: `tat` is the stored time (ns; 0 for a new key),
/// `now` the current time. Returns the decision and the new TAT (`None`
/// when refused: the stored value stays).
pub fn decide(tat: u64, now: u64, quota: &Quota) -> (Decision, Option<u64>) {
    let interval = quota.interval_nanos();
    let tolerance = quota.tolerance_nanos();
    let tat = tat.max(now);
    let allow_at = tat.saturating_sub(tolerance);
    if now < allow_at {
        let reset = Duration::from_nanos(tat - now);
        let retry = Duration::from_nanos(allow_at - now);
        return (
            Decision {
                allowed: false,
                remaining: 0,
                reset,
                retry_after: retry,
            },
            None,
        );
    }
    let new_tat = tat + interval;
    let used = (new_tat - now).div_ceil(interval);
    let remaining = u64::from(quota.burst).saturating_sub(used) as u32;
    (
        Decision {
            allowed: true,
            remaining,
            reset: Duration::from_nanos(new_tat - now),
            retry_after: Duration::ZERO,
        },
        Some(new_tat),
    )
}

/// One bucket: a limit, the app it counts for, and the client it counts.
/// Kept as parts, not joined bytes: the in-memory store hashes the parts
/// and compares them with a bucket's bytes part by part, where joining
/// them first (on the stack) cost ~150 instructions a decision more
/// (bench/gateway-instructions.sh); a shared store joins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateKey<'a> {
    /// The limit's name.
    pub limit: &'a str,
    /// The app's id (empty outside an app).
    pub app: &'a str,
    /// Who is counted.
    pub client: Client<'a>,
}

/// Who a bucket counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client<'a> {
    /// Everyone (a limit for the whole app).
    All,
    /// A client address, as [`IpPrefixes::bucket`] made it.
    Ip(IpAddr),
    /// An API key (a header's value).
    Key(&'a [u8]),
    /// A JWT subject.
    Subject(Cow<'a, str>),
}

/// How much of a client address is one client: IPv6 hosts get a whole
/// /64 each (one customer's line, SLAAC privacy addresses), so keying by
/// the /128 would give every caller 2^64 buckets. IPv4-mapped IPv6
/// (`::ffff:1.2.3.4`, a dual-stack socket's view of an IPv4 client)
/// counts as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefixes {
    /// Leading bits of an IPv4 address that name a client (32: each
    /// address).
    pub v4: u8,
    /// Leading bits of an IPv6 address that name a client (64: each
    /// subnet).
    pub v6: u8,
}

impl Default for IpPrefixes {
    fn default() -> Self {
        IpPrefixes { v4: 32, v6: 64 }
    }
}

impl IpPrefixes {
    /// The bucket's address: `ip`'s network, IPv4-mapped as IPv4. With
    /// the default /32, an IPv4 address is itself, so its stored key is
    /// what it always was.
    pub fn bucket(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.bucket(IpAddr::V4(v4)),
                None => {
                    let keep = u32::from(self.v6.min(128));
                    let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                    IpAddr::V6((u128::from(v6) & mask).into())
                }
            },
            IpAddr::V4(v4) => {
                let keep = u32::from(self.v4.min(32));
                let mask = u32::MAX.checked_shl(32 - keep).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
        }
    }
}

impl RateKey<'_> {
    /// The key as bytes, for a store that keeps it (Redis, and the
    /// in-memory store to tell keys apart):
    /// `limit|app|ip4:<4 octets>`, `...|key:<value>`, `...|sub:<subject>`.
    ///
    /// A limit name or app id with a `|` would make that spelling
    /// ambiguous (limit `a|b` of app `c` and limit `a` of app `b|c` would
    /// share a bucket), so such a key is spelt
    /// `||<len>:<limit><len>:<app>|<client>` instead: it starts with `||`
    /// and a digit, where a plain key with an empty name and app goes on
    /// with a client's `ip4:`, `ip6:`, `key:`, `sub:` or nothing, and the
    /// lengths tell the parts apart. Keys of names and ids without `|`
    /// (all the defaults, all app ids a platform file accepts) keep the
    /// plain spelling exactly: instances of two versions share buckets in
    /// the fleet's Redis during a rolling upgrade.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.limit.len() + self.app.len() + 24);
        self.parts(|part| key.extend_from_slice(part));
        key
    }

    /// Whether `bytes` is this key's [`RateKey::to_bytes`], compared part
    /// by part: no allocation on a lookup.
    fn eq_bytes(&self, bytes: &[u8]) -> bool {
        let mut rest = Some(bytes);
        self.parts(|part| rest = rest.and_then(|r| r.strip_prefix(part)));
        rest.is_some_and(<[u8]>::is_empty)
    }

    /// The pieces of [`RateKey::to_bytes`], in order.
    fn parts(&self, mut part: impl FnMut(&[u8])) {
        if [self.limit, self.app].iter().any(|s| s.bytes().any(|b| b == b'|')) {
            part(b"||");
            for name in [self.limit, self.app] {
                part(name.len().to_string().as_bytes());
                part(b":");
                part(name.as_bytes());
            }
        } else {
            part(self.limit.as_bytes());
            part(b"|");
            part(self.app.as_bytes());
        }
        part(b"|");
        match &self.client {
            Client::All => {}
            Client::Ip(IpAddr::V4(a)) => {
                part(b"ip4:");
                part(&a.octets());
            }
            Client::Ip(IpAddr::V6(a)) => {
                part(b"ip6:");
                part(&a.octets());
            }
            Client::Key(k) => {
                part(b"key:");
                part(k);
            }
            Client::Subject(s) => {
                part(b"sub:");
                part(s.as_bytes());
            }
        }
    }
}

/// Where the per-key state lives; `now` is nanoseconds on the store's
/// clock.
pub trait RateStore: Send + Sync {
    /// Decides one request on `key` under `quota`, updating its state.
    fn check(&self, key: &RateKey<'_>, quota: &Quota, now: u64) -> Decision;
}

/// The in-memory store: sharded hash tables of buckets, bounded by
/// `max_keys`.
///
/// A bucket keeps its whole key ([`RateKey::to_bytes`]) and a lookup
/// compares it in full: two clients whose keys hash alike still count in
/// two buckets. The hash (foldhash, per-process seed) only places keys;
/// its seed comes from address-space layout and the clock, not a secret
/// an attacker cannot learn, so a 64-bit hash alone as the key would let
/// a patient one aim a key at a victim's bucket and spend its budget.
/// Keeping the key costs one allocation per new bucket, none per decision.
/// (The fleet's Redis keys by the same bytes: the same spelling on every
/// instance.)
///
/// When a shard is full, keys whose TAT has passed (equivalent to absent)
/// are dropped first; if none has, an arbitrary key is dropped, which can
/// only let that client burst again: memory stays bounded under millions
/// of distinct keys either way.
pub struct MemoryStore<S = RandomState> {
    shards: Vec<Mutex<HashTable<Bucket>>>,
    per_shard: usize,
    hasher: S,
}

/// One key's state, with its hash (to move it when the table grows).
struct Bucket {
    hash: u64,
    key: Box<[u8]>,
    tat: u64,
}

const SHARDS: usize = 64;

impl MemoryStore {
    /// A store keeping at most about `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        MemoryStore::with_hasher(max_keys, RandomState::default())
    }
}

impl<S> MemoryStore<S> {
    /// The same, placing keys with `hasher`.
    pub fn with_hasher(max_keys: usize, hasher: S) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            per_shard: (max_keys / SHARDS).max(16),
            hasher,
        }
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S: BuildHasher + Send + Sync> RateStore for MemoryStore<S> {
    fn check(&self, key: &RateKey<'_>, quota: &Quota, now: u64) -> Decision {
        let hash = self.hasher.hash_one(key);
        // Middle bits pick the shard: the table takes its slot from the
        // low bits and its 7-bit tags from the top ones, and keys of one
        // shard that shared those would all be compared in full.
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        let mut table = shard.lock().unwrap_or_else(|p| p.into_inner());
        // A known key (the common case) is decided and updated in place.
        if let Some(bucket) = table.find_mut(hash, |b| key.eq_bytes(&b.key)) {
            let (decision, new_tat) = decide(bucket.tat, now, quota);
            if let Some(new_tat) = new_tat {
                bucket.tat = new_tat;
            }
            return decision;
        }
        let (decision, new_tat) = decide(0, now, quota);
        if let Some(tat) = new_tat {
            if table.len() >= self.per_shard {
                table.retain(|b| b.tat > now);
                if table.len() >= self.per_shard {
                    let mut victim = true;
                    table.retain(|_| !std::mem::take(&mut victim));
                }
            }
            let bucket = Bucket {
                hash,
                key: key.to_bytes().into_boxed_slice(),
                tat,
            };
            table.insert_unique(hash, bucket, |b| b.hash);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Client `n`'s bucket of one limit.
    fn key(n: u32) -> RateKey<'static> {
        RateKey {
            limit: "l",
            app: "a",
            client: Client::Ip(IpAddr::from(n.to_be_bytes())),
        }
    }

    #[test]
    fn allows_a_burst_then_the_rate() {
        let q = Quota::per_second(10, 5);
        let store = MemoryStore::new(1000);
        let allowed = (0..20).filter(|_| store.check(&key(1), &q, SEC).allowed).count();
        assert_eq!(allowed, 5, "the burst, all at once");
        let d = store.check(&key(1), &q, SEC);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        assert!(
            store.check(&key(1), &q, SEC + SEC / 10).allowed,
            "one more after an interval"
        );
        // Over 10 s at a steady pace: the burst plus the rate.
        let store = MemoryStore::new(1000);
        let mut ok = 0;
        for i in 0..10_000u64 {
            if store.check(&key(1), &q, SEC + i * SEC / 1000).allowed {
                ok += 1;
            }
        }
        assert!((104..=106).contains(&ok), "{ok}");
    }

    #[test]
    fn reports_remaining_and_reset() {
        let q = Quota::per_minute(60, 3);
        let (d, tat) = decide(0, SEC, &q);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        assert_eq!(d.reset, Duration::from_secs(1));
        let (d, tat) = decide(tat.unwrap(), SEC, &q);
        assert_eq!(d.remaining, 1);
        let (d, tat) = decide(tat.unwrap(), SEC, &q);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset, Duration::from_secs(3));
        let (d, _) = decide(tat.unwrap(), SEC, &q);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn keys_as_bytes_keep_their_parts_apart() {
        let k = |client| {
            RateKey {
                limit: "per-ip",
                app: "shop",
                client,
            }
            .to_bytes()
        };
        assert_eq!(k(Client::All), b"per-ip|shop|");
        assert_eq!(
            k(Client::Ip("10.0.0.1".parse().unwrap())),
            b"per-ip|shop|ip4:\x0a\x00\x00\x01"
        );
        assert_eq!(k(Client::Key(b"k1")), b"per-ip|shop|key:k1");
        assert_eq!(k(Client::Subject("ana".into())), b"per-ip|shop|sub:ana");
        assert_ne!(k(Client::Key(b"ana")), k(Client::Subject("ana".into())));
    }

    #[test]
    fn a_bar_in_a_limit_or_app_cannot_make_two_buckets_one() {
        let k = |limit, app, client| RateKey { limit, app, client }.to_bytes();
        // Spelt plainly, each pair would be one key.
        let pairs = [
            (k("a|b", "c", Client::All), k("a", "b|c", Client::All)),
            (k("n|a|key:k", "", Client::All), k("n", "a", Client::Key(b"k||"))),
            (k("|", "", Client::All), k("", "|", Client::All)),
            (k("", "", Client::Key(b"x")), k("|", "", Client::Key(b"x"))),
        ];
        for (one, other) in &pairs {
            assert_ne!(
                one,
                other,
                "{:?} {:?}",
                String::from_utf8_lossy(one),
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(k("a|b", "c", Client::All), b"||3:a|b1:c|");
        assert_eq!(k("l", "x|y", Client::Key(b"k")), b"||1:l3:x|y|key:k");
        // Through the store: two buckets, each with its own burst.
        let q = Quota::per_minute(60, 1);
        let store = MemoryStore::new(1000);
        let key = |limit, app| RateKey {
            limit,
            app,
            client: Client::All,
        };
        assert!(store.check(&key("a|b", "c"), &q, SEC).allowed);
        assert!(store.check(&key("a", "b|c"), &q, SEC).allowed, "its own bucket");
        assert!(!store.check(&key("a", "b|c"), &q, SEC).allowed);
    }

    #[test]
    fn ipv6_clients_are_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let p = IpPrefixes::default();
        let b = |s: &str| p.bucket(s.parse().unwrap());
        assert_eq!(b("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), b("2001:db8:1:2::1"), "one /64");
        assert_eq!(b("2001:db8:1:2:ffff:ffff:ffff:ffff"), b("2001:db8:1:2::"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"), "the next /64");
        assert_eq!(b("::ffff:198.51.100.7"), b("198.51.100.7"), "IPv4-mapped is IPv4");
        assert_ne!(b("198.51.100.7"), b("198.51.100.8"), "each IPv4 address");
        assert_ne!(
            b("::ffff:198.51.100.7"),
            b("::ffff:198.51.100.8"),
            "mapped addresses are not one /64"
        );
        let wide = IpPrefixes { v4: 24, v6: 48 };
        let w = |s: &str| wide.bucket(s.parse().unwrap());
        assert_eq!(w("198.51.100.7"), w("198.51.100.200"));
        assert_eq!(w("2001:db8:1:2::1"), w("2001:db8:1:ffff::1"));
        let exact = IpPrefixes { v4: 32, v6: 128 };
        assert_ne!(
            exact.bucket("2001:db8::1".parse().unwrap()),
            exact.bucket("2001:db8::2".parse().unwrap())
        );
        let all = IpPrefixes { v4: 0, v6: 0 };
        assert_eq!(
            all.bucket("198.51.100.7".parse().unwrap()),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            all.bucket("2001:db8::1".parse().unwrap()),
            "::".parse::<IpAddr>().unwrap()
        );

        // The stored key of an IPv4 client is what it always was; IPv6
        // ones name the network.
        let key = |ip: &str| {
            RateKey {
                limit: "l",
                app: "a",
                client: Client::Ip(p.bucket(ip.parse().unwrap())),
            }
            .to_bytes()
        };
        assert_eq!(key("10.0.0.1"), b"l|a|ip4:\x0a\x00\x00\x01");
        assert_eq!(key("::ffff:10.0.0.1"), b"l|a|ip4:\x0a\x00\x00\x01");
        let mut v6 = b"l|a|ip6:".to_vec();
        v6.extend_from_slice(&"2001:db8:1:2::".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), v6);

        // Through the store: one /64 shares one bucket.
        let q = Quota::per_minute(60, 2);
        let store = MemoryStore::new(1000);
        let mut allowed = 0;
        for host in 1..=10u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 1, 2, host, host, host, host]);
            let k = RateKey {
                limit: "l",
                app: "a",
                client: Client::Ip(p.bucket(ip)),
            };
            allowed += usize::from(store.check(&k, &q, SEC).allowed);
        }
        assert_eq!(allowed, 2, "ten addresses of one /64 are one client");
    }

    /// Hashes every key alike.
    #[derive(Default)]
    struct Colliding;

    impl std::hash::Hasher for Colliding {
        fn finish(&self) -> u64 {
            42
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn keys_whose_hashes_collide_keep_their_own_buckets() {
        let q = Quota::per_minute(60, 2);
        let store = MemoryStore::with_hasher(6400, std::hash::BuildHasherDefault::<Colliding>::default());
        assert!(store.check(&key(1), &q, SEC).allowed);
        assert!(store.check(&key(1), &q, SEC).allowed);
        assert!(!store.check(&key(1), &q, SEC).allowed, "client 1 spent its burst");
        for n in 2..50 {
            let d = store.check(&key(n), &q, SEC);
            assert!(d.allowed && d.remaining == 1, "client {n} has its own bucket: {d:?}");
        }
        assert_eq!(store.len(), 49);
        // Keys that are prefixes of each other, or alike but for their kind.
        let other = |client| RateKey {
            limit: "l",
            app: "a",
            client,
        };
        for client in [
            Client::Key(b"k"),
            Client::Key(b"k1"),
            Client::Subject("k".into()),
            Client::All,
        ] {
            assert_eq!(store.check(&other(client.clone()), &q, SEC).remaining, 1, "{client:?}");
            assert_eq!(store.check(&other(client.clone()), &q, SEC).remaining, 0, "{client:?}");
        }
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let q = Quota::per_minute(60, 10);
        let store = MemoryStore::new(10_000);
        for i in 0..300_000u32 {
            store.check(&key(i), &q, SEC);
        }
        assert!(store.len() <= 10_000 + SHARDS, "{}", store.len());
        // Idle keys (TAT passed) are dropped first, losing nothing.
        let later = SEC + 3600 * SEC;
        for i in 0..20_000u32 {
            store.check(&key(i + 5_000_000), &q, later);
        }
        assert!(store.len() <= 10_000 + SHARDS);
    }
}
