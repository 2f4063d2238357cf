//! Bots by user agent, and the JavaScript challenge.
//!
//! A challenged client gets a small page whose script sets a cookie and
//! reloads; the cookie is `<expiry>.<HMAC-SHA256(key, ip | user agent |
//! expiry)>`, so it cannot be made up, moved to another address or
//! reused after it expires. Clients that do not run JavaScript (most
//! scrapers and attack tools) never get past it.

use std::net::IpAddr;

use bext_plugin_abi::admin::secrets_match;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the cookie a solved challenge sets.
pub const COOKIE: &str = "__bext_waf";

/// User-agent fragments of automated clients (lower case).
const AUTOMATION: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "scrape",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "lwp::",
    "httpclient",
    "axios/",
    "node-fetch",
    "undici",
    "headlesschrome",
    "phantomjs",
    "selenium",
    "puppeteer",
    "playwright",
    "httpie",
    "powershell/",
    "guzzlehttp",
    "ruby",
    "mechanize",
    "nutch",
    "heritrix",
    "http_request",
    "winhttp",
    "postmanruntime",
];

/// Classifies user agents.
pub struct BotFilter {
    allow: Vec<String>,
    block: Vec<String>,
}

impl BotFilter {
    /// `allow` wins over `block` and the built-in list.
    pub fn new(allow: &[String], block: &[String]) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        BotFilter {
            allow: lower(allow),
            block: lower(block),
        }
    }

    /// Whether `agent` (as sent; `None` when missing) is an automated
    /// client that is not on the allow list.
    pub fn is_bot(&self, agent: Option<&[u8]>) -> bool {
        let Some(agent) = agent.map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()) else {
            return true;
        };
        let agent = agent.trim();
        if agent.is_empty() {
            return true;
        }
        if self.allow.iter().any(|a| agent.contains(a.as_str())) {
            return false;
        }
        self.block.iter().any(|b| agent.contains(b.as_str())) || AUTOMATION.iter().any(|b| agent.contains(b))
    }
}

/// Issues and checks challenge cookies.
pub struct Challenge {
    key: Vec<u8>,
    ttl_secs: u64,
}

impl Challenge {
    /// A challenge signing with `key`, whose cookies last `ttl_secs`.
    pub fn new(key: Vec<u8>, ttl_secs: u64) -> Self {
        Challenge { key, ttl_secs }
    }

    fn mac(&self, ip: IpAddr, agent: &[u8], expiry: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(ip.to_string().as_bytes());
        mac.update(b"|");
        mac.update(agent);
        mac.update(b"|");
        mac.update(expiry.to_string().as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A cookie value valid until `now + ttl`.
    pub fn token(&self, ip: IpAddr, agent: &[u8], now: u64) -> String {
        let expiry = now + self.ttl_secs;
        format!("{expiry}.{}", self.mac(ip, agent, expiry))
    }

    /// Whether `cookie_header` carries a valid, unexpired token.
    pub fn passed(&self, cookie_header: Option<&[u8]>, ip: IpAddr, agent: &[u8], now: u64) -> bool {
        let Some(header) = cookie_header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        header
            .split(';')
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|value| {
                let Some((expiry, mac)) = value.split_once('.') else {
                    return false;
                };
                let Ok(expiry) = expiry.parse::<u64>() else {
                    return false;
                };
                // Compare in constant time: the MAC is the secret part.
                expiry >= now && secrets_match(mac, &self.mac(ip, agent, expiry))
            })
    }

    /// The page a challenged client gets: its script sets the cookie
    /// (assembled at run time, so a client that only reads the HTML does
    /// not find it) and reloads.
    pub fn page(&self, token: &str) -> String {
        let reversed: String = token.chars().rev().collect();
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
<title>Checking your browser</title></head><body><noscript>Please enable JavaScript to continue.</noscript>\
<p>Checking your browser&hellip;</p><script>(function(){{var t=\"{reversed}\".split(\"\").reverse().join(\"\");\
document.cookie=\"{COOKIE}=\"+t+\"; path=/; max-age={ttl}; SameSite=Lax\";location.reload();}})();</script></body></html>",
            ttl = self.ttl_secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_user_agents() {
        let f = BotFilter::new(&["googlebot".into()], &["evilscraper".into()]);
        assert!(f.is_bot(None));
        assert!(f.is_bot(Some(b"curl/8.5.0")));
        assert!(f.is_bot(Some(b"EvilScraper/1.0")));
        assert!(!f.is_bot(Some(b"Mozilla/5.0 (compatible; Googlebot/2.1)")));
        assert!(!f.is_bot(Some(b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")));
    }

    #[test]
    fn tokens_are_bound_to_client_and_time() {
        let c = Challenge::new(b"k".to_vec(), 60);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let t = c.token(ip, b"ua", 1000);
        let cookie = format!("a=b; {COOKIE}={t}");
        assert!(c.passed(Some(cookie.as_bytes()), ip, b"ua", 1000));
        assert!(!c.passed(Some(cookie.as_bytes()), ip, b"other", 1000));
        assert!(!c.passed(Some(cookie.as_bytes()), "1.2.3.5".parse().unwrap(), b"ua", 1000));
        assert!(!c.passed(Some(cookie.as_bytes()), ip, b"ua", 2000), "expired");
        assert!(!c.passed(Some(b"__bext_waf=9999999999.00"), ip, b"ua", 1000));
        assert!(c.page(&t).contains(&t.chars().rev().collect::<String>()));
    }
}
