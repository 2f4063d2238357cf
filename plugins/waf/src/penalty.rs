//! The penalty box: a client refused `after` times within `within` is
//! answered 429 for `ban`, so a scanner stops costing inspection time.
//! Memory is bounded: past `MAX_CLIENTS` tracked addresses, idle ones are
//! dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most, before idle ones are swept.
const MAX_CLIENTS: usize = 100_000;

struct Strikes {
    count: u32,
    since: Instant,
    banned_until: Option<Instant>,
}

/// Refusal counts per client address.
pub(crate) struct PenaltyBox {
    after: u32,
    within: Duration,
    ban: Duration,
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

impl PenaltyBox {
    pub(crate) fn new(after: u32, within: Duration, ban: Duration) -> Self {
        PenaltyBox {
            after,
            within,
            ban,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` still has to wait, if it is banned.
    pub(crate) fn banned(&self, ip: IpAddr) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let until = clients.get(&ip)?.banned_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts one refusal of `ip`.
    pub(crate) fn strike(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            let (within, ban) = (self.within, self.ban);
            clients.retain(|_, s| {
                now.duration_since(s.since) < within || s.banned_until.is_some_and(|u| u > now) || ban.is_zero()
            });
            if clients.len() >= MAX_CLIENTS {
                return;
            }
        }
        let s = clients.entry(ip).or_insert(Strikes {
            count: 0,
            since: now,
            banned_until: None,
        });
        if now.duration_since(s.since) > self.within {
            s.count = 0;
            s.since = now;
        }
        s.count += 1;
        if s.count >= self.after {
            s.banned_until = Some(now + self.ban);
            s.count = 0;
            s.since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_repeated_refusals() {
        let p = PenaltyBox::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        p.strike(ip);
        p.strike(ip);
        assert!(p.banned(ip).is_none());
        p.strike(ip);
        let wait = p.banned(ip).expect("banned");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        assert!(p.banned("1.2.3.5".parse().unwrap()).is_none());
    }
}
