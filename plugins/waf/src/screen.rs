//! Screening: the decisions about a client that need no inspection, in
//! order: the IP lists (the longest matching prefix decides; see
//! `lists.rs` for the files), the penalty box for clients refused too
//! often (`penalty.rs`), then bots by user agent, blocked or challenged
//! (`bots.rs`). Decides only: `guard.rs` records and answers.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bext_plugin_abi::PluginError;
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue, USER_AGENT};

use crate::audit;
use crate::bots::{BotFilter, Challenge};
use crate::config::{BotMode, Config, IpDefault};
use crate::ip::{IpTable, Verdict};
use crate::penalty::PenaltyBox;

/// The screening state of one plugin instance.
pub(crate) struct Screen {
    /// The IP lists, swapped whole when a list file changes.
    lists: Arc<ArcSwap<IpTable>>,
    /// Whether the lists can hold anything (entries or files configured):
    /// without, they stay empty and are not read per request.
    lists_configured: bool,
    ip_default: IpDefault,
    penalty: Option<PenaltyBox>,
    bot_mode: BotMode,
    bots: BotFilter,
    challenge_ttl: u64,
    challenge_secret_env: Option<String>,
    /// Set by [`Screen::init`]: the key comes from the environment.
    challenge: OnceLock<Challenge>,
}

/// What screening decided about a request; no decision means "inspect".
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Screened {
    /// On the allow list: let through uninspected.
    Allowed,
    /// On the deny list, or on neither with `ip.default: deny`.
    DeniedIp,
    /// In the penalty box for this long still.
    Banned(Duration),
    /// A bot, with `bots.mode: block`.
    Bot,
    /// A bot without a valid challenge cookie: this page sets one.
    Challenge(String),
}

impl Screen {
    /// Screening as `config` says, over the IP lists `lists`.
    pub(crate) fn new(config: &Config, lists: Arc<ArcSwap<IpTable>>) -> Result<Self, PluginError> {
        let penalty = match &config.penalty {
            Some(p) if p.after == 0 => return Err(PluginError::config("penalty.after", "must be at least 1")),
            Some(p) => Some(PenaltyBox::new(p.after, p.within.0, p.ban.0)),
            None => None,
        };
        let ip = &config.ip;
        Ok(Screen {
            lists,
            lists_configured: !(ip.allow.is_empty()
                && ip.deny.is_empty()
                && ip.allow_files.is_empty()
                && ip.deny_files.is_empty()),
            ip_default: config.ip.default,
            penalty,
            bot_mode: config.bots.mode,
            bots: BotFilter::new(&config.bots.allow, &config.bots.block),
            challenge_ttl: config.bots.challenge_ttl.0.as_secs().max(1),
            challenge_secret_env: config.bots.secret_env.clone(),
            challenge: OnceLock::new(),
        })
    }

    /// Makes the challenge's signing key: from `bots.secret_env`, which
    /// must then be set, or random (for this process only).
    pub(crate) fn init(&self) -> Result<(), String> {
        let key = match self.challenge_secret_env.as_deref() {
            Some(env) => match std::env::var(env) {
                Ok(secret) if !secret.is_empty() => secret.into_bytes(),
                _ => return Err(format!("bots.secret_env: `{env}` is not set")),
            },
            None => {
                let mut key = vec![0; 32];
                getrandom::fill(&mut key).map_err(|e| format!("no random key: {e}"))?;
                key
            }
        };
        self.set_challenge_key(key);
        Ok(())
    }

    fn set_challenge_key(&self, key: Vec<u8>) {
        let _ = self.challenge.set(Challenge::new(key, self.challenge_ttl));
    }

    /// Screens a request from `ip`; `None`: it is to be inspected.
    pub(crate) fn screen(&self, headers: &HeaderMap, ip: IpAddr) -> Option<Screened> {
        let listed = if self.lists_configured {
            self.lists.load().lookup(ip)
        } else {
            None
        };
        match listed {
            Some(Verdict::Allow) => return Some(Screened::Allowed),
            Some(Verdict::Deny) => return Some(Screened::DeniedIp),
            None if self.ip_default == IpDefault::Deny => return Some(Screened::DeniedIp),
            None => {}
        }
        if let Some(penalty) = &self.penalty
            && let Some(wait) = penalty.banned(ip)
        {
            return Some(Screened::Banned(wait));
        }
        if self.bot_mode != BotMode::Allow {
            let agent = headers.get(USER_AGENT).map(HeaderValue::as_bytes);
            if self.bots.is_bot(agent) {
                return self.screen_bot(headers, ip, agent.unwrap_or_default());
            }
        }
        None
    }

    fn screen_bot(&self, headers: &HeaderMap, ip: IpAddr, agent: &[u8]) -> Option<Screened> {
        if self.bot_mode == BotMode::Block {
            return Some(Screened::Bot);
        }
        let challenge = self.challenge.get()?;
        let now = audit::now();
        let cookies = headers.get(COOKIE).map(HeaderValue::as_bytes);
        if challenge.passed(cookies, ip, agent, now) {
            return None;
        }
        Some(Screened::Challenge(challenge.page(&challenge.token(ip, agent, now))))
    }

    /// Counts a refusal of `ip` towards the penalty box, if there is one.
    pub(crate) fn strike(&self, ip: IpAddr) {
        if let Some(penalty) = &self.penalty {
            penalty.strike(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn screen(config: serde_json::Value) -> Screen {
        let config: Config = serde_json::from_value(config).unwrap();
        let mut lists = IpTable::default();
        lists.insert_all(&config.ip.allow, Verdict::Allow).unwrap();
        lists.insert_all(&config.ip.deny, Verdict::Deny).unwrap();
        Screen::new(&config, Arc::new(ArcSwap::from_pointee(lists))).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap()))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const BROWSER: (&str, &str) = ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0");

    #[test]
    fn the_lists_decide_first() {
        let s = screen(serde_json::json!({
            "ip": {"allow": ["10.1.0.0/16"], "deny": ["10.0.0.0/8"]},
            "bots": {"mode": "block"},
        }));
        let bot = headers(&[("user-agent", "curl/8")]);
        assert_eq!(s.screen(&bot, ip("10.1.2.3")), Some(Screened::Allowed));
        assert_eq!(s.screen(&headers(&[BROWSER]), ip("10.2.0.1")), Some(Screened::DeniedIp));
        assert_eq!(s.screen(&headers(&[BROWSER]), ip("192.0.2.1")), None);
        let closed = screen(serde_json::json!({"ip": {"allow": ["10.1.0.0/16"], "default": "deny"}}));
        assert_eq!(
            closed.screen(&headers(&[BROWSER]), ip("192.0.2.1")),
            Some(Screened::DeniedIp)
        );
        assert_eq!(
            closed.screen(&headers(&[BROWSER]), ip("10.1.0.1")),
            Some(Screened::Allowed)
        );
    }

    #[test]
    fn repeat_offenders_wait_in_the_penalty_box() {
        let s = screen(serde_json::json!({"penalty": {"after": 2, "within": "1m", "ban": "30s"}}));
        let h = headers(&[BROWSER]);
        s.strike(ip("192.0.2.1"));
        assert_eq!(s.screen(&h, ip("192.0.2.1")), None);
        s.strike(ip("192.0.2.1"));
        match s.screen(&h, ip("192.0.2.1")) {
            Some(Screened::Banned(wait)) => assert!(wait > Duration::from_secs(25), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.screen(&h, ip("192.0.2.2")), None);
        // Without a penalty box, strikes count for nothing.
        let none = screen(serde_json::json!({}));
        none.strike(ip("192.0.2.1"));
        none.strike(ip("192.0.2.1"));
        assert_eq!(none.screen(&h, ip("192.0.2.1")), None);
    }

    #[test]
    fn bots_are_blocked_or_challenged_as_configured() {
        let agent = headers(&[("user-agent", "python-requests/2.31")]);
        let ip = ip("192.0.2.1");
        assert_eq!(screen(serde_json::json!({})).screen(&agent, ip), None);
        let block = screen(serde_json::json!({"bots": {"mode": "block"}}));
        assert_eq!(block.screen(&agent, ip), Some(Screened::Bot));
        assert_eq!(
            block.screen(&HeaderMap::new(), ip),
            Some(Screened::Bot),
            "no user agent"
        );
        assert_eq!(block.screen(&headers(&[BROWSER]), ip), None);
        assert_eq!(
            block.screen(&headers(&[("user-agent", "Googlebot/2.1")]), ip),
            None,
            "a good bot"
        );

        let challenge = screen(serde_json::json!({"bots": {"mode": "challenge"}}));
        // No key yet (before `on_init`): nothing to challenge with.
        assert_eq!(challenge.screen(&agent, ip), None);
        challenge.set_challenge_key(b"key".to_vec());
        let Some(Screened::Challenge(page)) = challenge.screen(&agent, ip) else {
            panic!("challenged");
        };
        // The page's script sets the token (written reversed); a client
        // that runs it comes back with it and is let on.
        let reversed = page.split("var t=\"").nth(1).and_then(|t| t.split('"').next()).unwrap();
        let token: String = reversed.chars().rev().collect();
        let solved = headers(&[
            ("user-agent", "python-requests/2.31"),
            ("cookie", &format!("{}={token}", crate::bots::COOKIE)),
        ]);
        assert_eq!(challenge.screen(&solved, ip), None);
    }

    #[test]
    fn a_named_challenge_secret_must_be_set() {
        let s = screen(serde_json::json!({"bots": {"secret_env": "BEXT_WAF_TEST_UNSET_SECRET"}}));
        assert_eq!(
            s.init(),
            Err("bots.secret_env: `BEXT_WAF_TEST_UNSET_SECRET` is not set".into())
        );
        assert!(screen(serde_json::json!({})).init().is_ok());
    }
}
