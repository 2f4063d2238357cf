//! Admin endpoints: the one check every admin request gets (an
//! `Authorization: Bearer` token equal to the operator's admin token,
//! wrong guesses throttled per client), where a plugin's admin routes
//! mount ([`AdminRoutes`]) and how they answer ([`json`]).

mod routes;

pub use routes::{AdminRoutes, LocalUpload, Progress, json};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use crate::{Ctx, Request, Response, text_response};

/// `None` when `req` carries `token`; otherwise the answer: 404 when no
/// token is configured (the endpoint does not exist then), 401 with a
/// `WWW-Authenticate` challenge when the token is missing or wrong, and
/// 429 without looking at the token once the client (`cx.client_ip`, an
/// IPv6 client by its /64) has made [`GUESSES`] wrong tries in a row
/// faster than one per [`GUESS_REFILL`]. The comparison takes the same
/// time wherever the tokens differ.
pub fn refuse_unless_admin(req: &Request, cx: &Ctx, token: Option<&str>) -> Option<Response> {
    let Some(token) = token else {
        return Some(text_response(StatusCode::NOT_FOUND, "not found\n"));
    };
    let client = client_key(cx.client_ip);
    let now = Instant::now();
    if let Some(wait) = GUESS_LIMITER.blocked(client, now) {
        let mut res = text_response(StatusCode::TOO_MANY_REQUESTS, "too many wrong admin tokens\n");
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return Some(res);
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if secrets_match(presented, token) {
        return None;
    }
    GUESS_LIMITER.failed(client, now);
    let mut res = text_response(StatusCode::UNAUTHORIZED, "admin token required\n");
    res.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"bext\""));
    Some(res)
}

/// Compares two secrets without leaking where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Wrong admin tokens a client may send in a burst.
pub const GUESSES: u32 = 10;
/// After the burst, one more wrong try is allowed per this long.
pub const GUESS_REFILL: Duration = Duration::from_secs(6);
/// Clients remembered at once; past this, new ones share one bucket.
const TRACKED: usize = 10_000;
/// The shared bucket's key (no address or /64 has it).
const OVERFLOW: u128 = u128::MAX;

/// Wrong guesses per client, as buckets of [`GUESSES`] refilled one per
/// [`GUESS_REFILL`]: about 10 a minute at most, against the ~30,000 a
/// second an open endpoint allows. Process-wide, so every plugin's admin
/// routes share it.
static GUESS_LIMITER: LazyLock<GuessLimiter> = LazyLock::new(GuessLimiter::default);

#[derive(Default)]
struct GuessLimiter {
    /// Client → (wrong tries still allowed, when the count was last
    /// brought up to date).
    clients: Mutex<HashMap<u128, (u32, Instant)>>,
}

impl GuessLimiter {
    fn refilled(left: u32, since: Instant, now: Instant) -> (u32, Instant) {
        let steps = (now.saturating_duration_since(since).as_millis() / GUESS_REFILL.as_millis()) as u32;
        if steps == 0 {
            return (left, since);
        }
        ((left.saturating_add(steps)).min(GUESSES), since + GUESS_REFILL * steps)
    }

    /// How long `client` must wait, if it has no tries left.
    fn blocked(&self, client: u128, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = if clients.contains_key(&client) {
            client
        } else {
            OVERFLOW
        };
        let &(left, since) = clients.get(&key)?;
        let (left, since) = Self::refilled(left, since, now);
        (left == 0).then(|| (since + GUESS_REFILL).saturating_duration_since(now))
    }

    /// Counts a wrong try.
    fn failed(&self, client: u128, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(&client) && clients.len() >= TRACKED {
            clients.retain(|_, (left, since)| Self::refilled(*left, *since, now).0 < GUESSES);
        }
        let key = if clients.contains_key(&client) || clients.len() < TRACKED {
            client
        } else {
            OVERFLOW
        };
        let entry = clients.entry(key).or_insert((GUESSES, now));
        let (left, since) = Self::refilled(entry.0, entry.1, now);
        *entry = (left.saturating_sub(1), since);
    }
}

/// One client's key, for anything counted per client (wrong admin tokens,
/// the kernel's connection caps): an IPv4 address (also when mapped into
/// IPv6), or an IPv6 address's /64, the block one subscriber is usually
/// given.
pub fn client_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, RequestId};

    fn request(token: &str) -> Request {
        http::Request::builder()
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    }

    fn cx(ip: &str) -> Ctx {
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        cx.client_ip = ip.parse().unwrap();
        cx
    }

    #[test]
    fn right_wrong_and_missing_tokens() {
        let c = cx("192.0.2.10");
        assert!(refuse_unless_admin(&request("s3cret"), &c, Some("s3cret")).is_none());
        let wrong = refuse_unless_admin(&request("guess"), &c, Some("s3cret")).unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let off = refuse_unless_admin(&request("s3cret"), &c, None).unwrap();
        assert_eq!(off.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn guessing_is_throttled_per_client_even_for_the_right_token() {
        let attacker = cx("2001:db8:aa:1::5");
        for _ in 0..GUESSES {
            let res = refuse_unless_admin(&request("guess"), &attacker, Some("s3cret")).unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // Now refused without a look at the token, right or not, from
        // anywhere in the attacker's /64.
        let same_64 = cx("2001:db8:aa:1:ffff::1");
        for c in [&attacker, &same_64] {
            let res = refuse_unless_admin(&request("s3cret"), c, Some("s3cret")).unwrap();
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(res.headers().contains_key(RETRY_AFTER));
        }
        // Another client is not affected.
        assert!(refuse_unless_admin(&request("s3cret"), &cx("2001:db8:aa:2::5"), Some("s3cret")).is_none());
    }

    #[test]
    fn tries_come_back_with_time() {
        let limiter = GuessLimiter::default();
        let t0 = Instant::now();
        for _ in 0..GUESSES {
            limiter.failed(7, t0);
        }
        assert!(limiter.blocked(7, t0).is_some());
        assert!(limiter.blocked(7, t0 + GUESS_REFILL).is_none());
        limiter.failed(7, t0 + GUESS_REFILL);
        assert!(limiter.blocked(7, t0 + GUESS_REFILL).is_some());
    }
}
