//! Caps on open connections, in all and per client address: without
//! them a few thousand silent sockets from one host use every file
//! descriptor and every other client times out (nginx's `limit_conn`,
//! HAProxy's `maxconn`).
//!
//! A connection over a cap is closed as soon as it is accepted, before any
//! byte is read: the cheapest answer, and the one that frees the
//! descriptor at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bext_plugin_abi::admin::client_key;

/// Shards of the per-address table, so workers accepting at once rarely
/// meet on one lock.
const SHARDS: usize = 32;

/// Descriptors kept back from `max_connections` for listeners, upstream
/// connections, files and logs.
const RESERVED_FDS: u64 = 256;

/// The open connections, counted against the caps.
pub struct ConnectionLimits {
    open: AtomicUsize,
    max_total: usize,
    max_per_client: usize,
    per_client: Box<[Mutex<HashMap<u128, usize>>]>,
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `max_connections` are open.
    #[error("max_connections reached")]
    Total,
    /// `max_connections_per_ip` are open from this address.
    #[error("max_connections_per_ip reached for this client")]
    PerClient,
}

/// One admitted connection; its slots are given back on drop.
pub struct ConnPermit {
    limits: Arc<ConnectionLimits>,
    client: Option<u128>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Some(key) = self.client {
            let mut shard = self.limits.shard(key).lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = shard.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    shard.remove(&key);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionLimits {
    /// Caps of `max_total` (lowered to what the descriptor limit allows)
    /// and `max_per_client` (0: none).
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        let max_total = match fd_limit() {
            Some(fds) => max_total.min(fds.saturating_sub(RESERVED_FDS).max(16) as usize),
            None => max_total,
        };
        Arc::new(ConnectionLimits {
            open: AtomicUsize::new(0),
            max_total,
            max_per_client,
            per_client: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// The total cap in force (after the descriptor limit).
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, usize>> {
        // The low bits of an IPv4 key or of a /64 prefix vary most.
        let mix = (key ^ (key >> 64)) as u64;
        &self.per_client[(mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize % SHARDS]
    }

    /// Counts a new connection from `ip`, or says which cap it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let mut permit = ConnPermit {
            limits: self.clone(),
            client: None,
        };
        if self.max_per_client > 0 {
            let key = client_key(ip);
            let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
            let n = shard.entry(key).or_insert(0);
            if *n >= self.max_per_client {
                return Err(Refused::PerClient);
            }
            *n += 1;
            permit.client = Some(key);
        }
        Ok(permit)
    }
}

/// Raises the soft descriptor limit to the hard one (as nginx's
/// `worker_rlimit_nofile` does) and returns what is in force.
fn fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(hard);
        }
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_and_total_caps() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refused::PerClient));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refused::Total));
        drop(a1);
        assert!(limits.admit(b).is_ok(), "a closed connection gives its slot back");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limits = ConnectionLimits::new(100, 1);
        let _one = limits.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Refused::PerClient)
        );
        assert!(limits.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = limits.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("::ffff:192.0.2.1".parse().unwrap()).err(),
            Some(Refused::PerClient),
            "a mapped IPv4 address is the IPv4 client"
        );
    }
}
