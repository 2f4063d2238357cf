//! The dashboard's sessions: a random id in an HttpOnly cookie (never the
//! admin token), each with its own CSRF token for the buttons' forms. Kept
//! in the process's memory, so a restart logs everyone out; reloads keep
//! them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The cookie holding the session id.
pub(super) const COOKIE: &str = "bext_ui";
/// How long a session lasts after its login.
pub(super) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; past this the oldest is dropped.
const KEPT: usize = 1024;

/// One logged-in browser.
#[derive(Clone)]
pub(super) struct Session {
    /// The token its forms carry.
    pub(super) csrf: String,
    expires: Instant,
}

/// Sessions by the SHA-256 of their id, so a lookup's timing says nothing
/// about the ids.
fn sessions() -> &'static Mutex<HashMap<[u8; 32], Session>> {
    static SESSIONS: OnceLock<Mutex<HashMap<[u8; 32], Session>>> = OnceLock::new();
    SESSIONS.get_or_init(Default::default)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes from the OS, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a session; returns its id (the cookie's value).
pub(super) fn create() -> String {
    let id = random_hex();
    let now = Instant::now();
    let mut all = sessions().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|_, s| s.expires > now);
    if all.len() >= KEPT
        && let Some(oldest) = all.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
    {
        all.remove(&oldest);
    }
    let session = Session {
        csrf: random_hex(),
        expires: now + LIFETIME,
    };
    all.insert(key(&id), session);
    id
}

/// The live session with this id.
pub(super) fn find(id: &str) -> Option<Session> {
    let all = sessions().lock().unwrap_or_else(|e| e.into_inner());
    all.get(&key(id)).filter(|s| s.expires > Instant::now()).cloned()
}

/// Ends a session (logout).
pub(super) fn remove(id: &str) {
    sessions().lock().unwrap_or_else(|e| e.into_inner()).remove(&key(id));
}

/// The session id in the request's `Cookie` headers (HTTP/2 may send
/// several).
pub(super) fn cookie_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_found_and_removed() {
        let a = create();
        let b = create();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let s = find(&a).unwrap();
        assert_ne!(s.csrf, find(&b).unwrap().csrf);
        remove(&a);
        assert!(find(&a).is_none());
        assert!(find("not-a-session").is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_in_several_headers() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; bext_uix=2".parse().unwrap());
        h.append(http::header::COOKIE, "b=3;bext_ui=abc".parse().unwrap());
        assert_eq!(cookie_id(&h).as_deref(), Some("abc"));
        assert_eq!(cookie_id(&http::HeaderMap::new()), None);
    }
}
