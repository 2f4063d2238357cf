//! Limits shared by an edge fleet: the same GCRA as [`crate::gcra::decide`],
//! run atomically inside Redis by one Lua script on Redis's own clock, so
//! a limit of N a minute holds for all instances together. When Redis
//! fails or is slow (100 ms), the caller decides locally instead.

use std::sync::Arc;
use std::time::Duration;

use bext_plugin_abi::Fleet;

use crate::gcra::{Decision, Quota, RateKey};

/// GCRA in microseconds: KEYS[1] holds the theoretical arrival time;
/// ARGV are the interval and the tolerance. Returns
/// `{allowed, remaining, reset_us, retry_after_us}`.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
local used = math.ceil((new_tat - now) / interval)
local remaining = burst - used
if remaining < 0 then remaining = 0 end
return {1, remaining, new_tat - now, 0}
"#;

/// The fleet's rate-limit store.
pub struct SharedStore {
    fleet: Arc<dyn Fleet>,
}

impl SharedStore {
    /// Limits kept in the fleet's store.
    pub fn new(fleet: Arc<dyn Fleet>) -> Self {
        SharedStore { fleet }
    }

    /// Whether Redis answered lately (otherwise decide locally at once).
    pub fn is_up(&self) -> bool {
        self.fleet.is_up()
    }

    /// Decides one request on `key` for the whole fleet; `None` when Redis
    /// did not answer in time.
    pub async fn check(&self, key: &RateKey<'_>, quota: &Quota) -> Option<Decision> {
        let interval = (quota.interval.as_micros() as u64).max(1);
        let tolerance = interval * u64::from(quota.burst - 1);
        let mut redis_key = self.fleet.key("rl:").into_bytes();
        redis_key.extend_from_slice(&key.to_bytes());
        let r = self
            .fleet
            .run_script(GCRA_LUA, &[&redis_key], &[interval, tolerance, u64::from(quota.burst)])
            .await?;
        let [allowed, remaining, reset, retry] = r.as_slice() else {
            return None;
        };
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        Some(Decision {
            allowed: *allowed == 1,
            remaining: u32::try_from((*remaining).max(0)).unwrap_or(u32::MAX),
            reset: us(*reset),
            retry_after: us(*retry),
        })
    }
}
