//! The verdicts on tokens already verified, for the next request of the
//! same session: a hit costs a byte comparison, not a signature check.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thread_local::ThreadLocal;

use crate::caller::Principal;
use crate::keys::{self, Key};

/// Tokens that passed verification, keyed by the whole token (an exact
/// match, not a hash). A hit still has its `exp` and `nbf` checked against
/// the clock, and counts only while the key set it was verified with is
/// the live one (a JWKS refresh or a reload starts over). Bounded: at most
/// 4,096 tokens of at most 2 KiB each, and one more per worker thread.
///
/// In front of the shared cache, each worker thread keeps the last token
/// it saw: a client sends the same token on request after request (a page
/// and its assets, an API client's calls, all on one connection that one
/// worker serves), so the next request is usually answered by comparing
/// bytes, with no hash, lock or probe. Another client's token differs
/// within its first segments, so a miss costs little.
pub(crate) struct VerifiedTokens {
    cache: quick_cache::sync::Cache<String, Arc<Verified>>,
    last: ThreadLocal<RefCell<LastToken>>,
    leeway: u64,
}

/// A worker thread's last token and its verdict.
#[derive(Default)]
struct LastToken {
    token: String,
    verdict: Option<Arc<Verified>>,
}

impl LastToken {
    fn remember(&mut self, token: &str, verdict: &Arc<Verified>) {
        // The buffer is reused: no allocation once it fits the tokens seen.
        self.token.clear();
        self.token.push_str(token);
        self.verdict = Some(verdict.clone());
    }
}

struct Verified {
    principal: Arc<Principal>,
    /// When the verdict lapses, on the monotonic clock: when the token
    /// expires (with leeway), or [`MAX_CACHED_FOR`] after it was checked.
    /// A hit reads no clock: the kernel read it when the request came.
    /// `nbf` needs no second look: a token that passed it stays past it.
    until: Instant,
    /// The key set it was verified with.
    keys: Arc<Vec<Key>>,
}

const MAX_CACHED_TOKEN: usize = 2048;

/// How long a verdict is kept at most. Expiry is counted on the monotonic
/// clock from the check, so a stepped wall clock shifts it; this bounds
/// by how much.
const MAX_CACHED_FOR: Duration = Duration::from_secs(60);

impl Verified {
    /// The principal, if the verdict holds at `at` under `keys`.
    fn holds(&self, keys: &Arc<Vec<Key>>, at: Instant) -> Option<Arc<Principal>> {
        (at < self.until && Arc::ptr_eq(&self.keys, keys)).then(|| self.principal.clone())
    }
}

impl VerifiedTokens {
    pub(crate) fn new(leeway: Duration) -> Self {
        VerifiedTokens {
            cache: quick_cache::sync::Cache::new(4096),
            last: ThreadLocal::new(),
            leeway: leeway.as_secs(),
        }
    }

    /// The principal of a token verified before with `keys`, if its
    /// verdict still holds at `at`. Takes the token as sent: the thread's
    /// last one is compared as bytes (it was text when kept, so an equal
    /// one is too); only the shared cache needs it as text.
    pub(crate) fn get(&self, token: &[u8], keys: &Arc<Vec<Key>>, at: Instant) -> Option<Arc<Principal>> {
        let mut last = self.last.get_or_default().borrow_mut();
        if last.token.as_bytes() == token
            && let Some(verdict) = &last.verdict
        {
            return verdict.holds(keys, at);
        }
        let token = std::str::from_utf8(token).ok()?;
        let hit = self.cache.get(token)?;
        let principal = hit.holds(keys, at)?;
        last.remember(token, &hit);
        Some(principal)
    }

    /// Keeps the verdict on a token that was verified for a request that
    /// came `at`; tokens without a numeric `exp` are not kept.
    pub(crate) fn insert(
        &self,
        token: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
        principal: &Arc<Principal>,
        keys: &Arc<Vec<Key>>,
        at: Instant,
    ) {
        if token.len() > MAX_CACHED_TOKEN {
            return;
        }
        let Ok(Some(exp)) = keys::numeric_date(claims, "exp") else {
            return;
        };
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return;
        };
        // The checks count whole seconds: the token holds until the second
        // after `exp + leeway` begins. `at` is a little before now, so the
        // verdict lapses no later than the token.
        let lapses = Duration::from_secs(exp.saturating_add(self.leeway).saturating_add(1));
        let Some(left) = lapses.checked_sub(now) else {
            return;
        };
        let verdict = Arc::new(Verified {
            principal: principal.clone(),
            until: at + left.min(MAX_CACHED_FOR),
            keys: keys.clone(),
        });
        self.last.get_or_default().borrow_mut().remember(token, &verdict);
        self.cache.insert(token.to_owned(), verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_still_expire_and_follow_the_key_set() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cache = VerifiedTokens::new(Duration::from_secs(5));
        let keys = Arc::new(vec![
            keys::key_from_config("HS256", Some(&[7; 32]), None, None).unwrap(),
        ]);
        let claims = |exp: u64| {
            let mut m = serde_json::Map::new();
            m.insert("exp".into(), exp.into());
            m
        };
        let who = Arc::new(Principal {
            subject: Some("u".into()),
            scopes: Vec::new(),
            forwarded: Vec::new().into(),
        });
        let at = Instant::now();
        cache.insert("fresh", &claims(now + 100), &who, &keys, at);
        cache.insert("stale", &claims(now - 100), &who, &keys, at);
        cache.insert("leeway", &claims(now - 2), &who, &keys, at);
        assert!(cache.get(b"fresh", &keys, at).is_some());
        // "fresh" is now this thread's last token: only the same bytes hit.
        for near in ["fres", "freshh", "Fresh", ""] {
            assert!(cache.get(near.as_bytes(), &keys, at).is_none(), "{near:?} is not fresh");
        }
        std::thread::scope(|s| {
            s.spawn(|| assert!(cache.get(b"fresh", &keys, at).is_some(), "shared across threads"));
        });
        assert!(
            cache.get(b"stale", &keys, at).is_none(),
            "an expired token is verified again (and refused)"
        );
        assert!(cache.get(b"leeway", &keys, at).is_some());
        let later = |secs| at + Duration::from_secs(secs);
        assert!(
            cache.get(b"leeway", &keys, later(5)).is_none(),
            "past exp + leeway, the verdict lapses"
        );
        assert!(cache.get(b"fresh", &keys, later(59)).is_some());
        assert!(
            cache.get(b"fresh", &keys, later(60)).is_none(),
            "kept at most a minute however far exp is"
        );
        let rotated = Arc::new(vec![
            keys::key_from_config("HS256", Some(&[8; 32]), None, None).unwrap(),
        ]);
        assert!(cache.get(b"fresh", &rotated, at).is_none(), "new keys: verified again");
        cache.insert(&"x".repeat(MAX_CACHED_TOKEN + 1), &claims(now + 100), &who, &keys, at);
        assert!(
            cache
                .get("x".repeat(MAX_CACHED_TOKEN + 1).as_bytes(), &keys, at)
                .is_none(),
            "huge tokens are not kept"
        );
        let no_exp = serde_json::Map::new();
        cache.insert("no-exp", &no_exp, &who, &keys, at);
        assert!(cache.get(b"no-exp", &keys, at).is_none(), "no exp: never kept");
    }
}
