//! What instances tell each other on the fleet's bus: a certificate was
//! stored (the tasks keeping certificates fresh look for it), and the
//! challenge answers of an order (every instance answers them, since the
//! ACME server's validation may reach any). Messages are checked before
//! use; another instance's message is trusted no more than the store.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::SharedStore;
use crate::manager::{Inner, Manager};
use crate::names::acme_name;

/// How long a challenge answer is given to reach the other instances
/// before the ACME server is told to validate: the bus takes a
/// millisecond, a busy instance's control runtime longer; an order takes
/// seconds anyway.
pub(crate) const CHALLENGE_SPREAD: Duration = Duration::from_secs(1);

/// The start of every bus message of ours: not JSON, so the other bus
/// readers (ISR invalidations) ignore them.
const BUS_PREFIX: &[u8] = b"bext-acme ";

/// What instances tell each other over the bus. `from` is the sender's
/// random id, so an instance ignores its own messages.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(super) enum Message {
    /// A certificate was stored under `key` (new or renewed).
    Certificate { from: u64, key: String },
    /// Answer this HTTP-01 token while the sender's order validates.
    Http01 {
        from: u64,
        token: String,
        key_authorization: String,
    },
    /// Answer TLS-ALPN-01 for `name` with this digest (hex).
    TlsAlpn01 { from: u64, name: String, digest: String },
    /// The sender's validation of `token` is over.
    Http01Done { from: u64, token: String },
    /// The sender's validation of `name` is over.
    TlsAlpn01Done { from: u64, name: String },
}

impl Message {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = BUS_PREFIX.to_vec();
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    fn decode(payload: &[u8]) -> Option<Message> {
        serde_json::from_slice(payload.strip_prefix(BUS_PREFIX)?).ok()
    }

    fn sender(&self) -> u64 {
        match self {
            Message::Certificate { from, .. }
            | Message::Http01 { from, .. }
            | Message::TlsAlpn01 { from, .. }
            | Message::Http01Done { from, .. }
            | Message::TlsAlpn01Done { from, .. } => *from,
        }
    }
}

/// Reads the bus: certificates stored by others wake the tasks keeping
/// certificates fresh; challenge answers of others' orders are
/// answered here too.
pub(super) async fn follow(manager: std::sync::Weak<Inner>, store: Arc<dyn SharedStore>) {
    let mut messages = store.messages();
    while let Some(payload) = messages.next().await {
        let Some(message) = Message::decode(&payload) else {
            continue;
        };
        let Some(inner) = manager.upgrade() else { return };
        if message.sender() == inner.instance {
            continue;
        }
        let challenges = inner.challenges.clone();
        let keep_for = inner.config.order_timeout.0;
        match message {
            Message::Certificate { key, .. } => {
                // No receiver (no certificate kept, nobody waiting) is fine.
                let _ = inner.fleet_news.send(key.into());
            }
            Message::Http01 {
                token,
                key_authorization,
                ..
            } => {
                if !plausible_token(&token) || !plausible_token(&key_authorization) {
                    tracing::warn!(token, "ACME: ignoring a malformed HTTP-01 answer from the fleet");
                    continue;
                }
                challenges.publish_http01(&token, &key_authorization);
                let challenges = challenges.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(keep_for).await;
                    challenges.remove_http01(&token);
                });
            }
            Message::TlsAlpn01 { name, digest, .. } => {
                let (Ok(name), Some(digest)) = (acme_name(&name, false), unhex(&digest)) else {
                    tracing::warn!(name, "ACME: ignoring a malformed TLS-ALPN-01 answer from the fleet");
                    continue;
                };
                if let Err(e) = challenges.publish_tls_alpn01(&name, &digest) {
                    tracing::warn!(name, error = %e, "ACME: cannot answer the fleet's TLS-ALPN-01 validation");
                    continue;
                }
                let challenges = challenges.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(keep_for).await;
                    challenges.remove_tls_alpn01(&name);
                });
            }
            Message::Http01Done { token, .. } => challenges.remove_http01(&token),
            Message::TlsAlpn01Done { name, .. } => challenges.remove_tls_alpn01(&name),
        }
    }
}

/// Tells the fleet about the challenge answers one order publishes, and
/// that they are over.
pub(crate) struct Spread {
    store: Arc<dyn SharedStore>,
    from: u64,
}

impl Spread {
    /// The spreading of `manager`'s orders, in edge mode.
    pub(crate) fn of(manager: &Manager) -> Option<Spread> {
        manager.shared_store().map(|store| Spread {
            store,
            from: manager.inner.instance,
        })
    }

    /// Asks the others to answer an HTTP-01 validation.
    pub(crate) async fn http01(&self, token: &str, key_authorization: &str) {
        let m = Message::Http01 {
            from: self.from,
            token: token.to_owned(),
            key_authorization: key_authorization.to_owned(),
        };
        self.store.publish(&m.encode()).await;
    }

    /// Asks the others to answer a TLS-ALPN-01 validation.
    pub(crate) async fn tls_alpn01(&self, name: &str, digest: &[u8]) {
        let m = Message::TlsAlpn01 {
            from: self.from,
            name: name.to_owned(),
            digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
        };
        self.store.publish(&m.encode()).await;
    }

    /// Withdraws the answers (in the background: called from a drop).
    pub(crate) fn withdraw(&self, tokens: &[String], names: &[String]) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let from = self.from;
        let messages: Vec<Vec<u8>> = tokens
            .iter()
            .map(|t| Message::Http01Done { from, token: t.clone() }.encode())
            .chain(
                names
                    .iter()
                    .map(|n| Message::TlsAlpn01Done { from, name: n.clone() }.encode()),
            )
            .collect();
        if messages.is_empty() {
            return;
        }
        let store = self.store.clone();
        runtime.spawn(async move {
            for m in messages {
                store.publish(&m).await;
            }
        });
    }
}

/// What an HTTP-01 token or key authorization may be: base64url and the
/// dot between its two halves, not too long (RFC 8555 section 8.1).
fn plausible_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A SHA-256 digest in hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_other_payloads_are_not_ours() {
        let m = Message::TlsAlpn01 {
            from: 7,
            name: "a.bext.test".into(),
            digest: "ab".repeat(32),
        };
        assert_eq!(Message::decode(&m.encode()), Some(m));
        // An ISR invalidation (JSON) and a spoofed prefix with junk.
        assert_eq!(Message::decode(br#"{"kind":"certificate","from":1,"key":"k"}"#), None);
        assert_eq!(Message::decode(b"bext-acme {not json"), None);
        assert_eq!(Message::decode(b"bext-acme {\"kind\":\"launch\",\"from\":1}"), None);
    }

    #[test]
    fn answers_from_the_bus_are_checked_before_use() {
        assert!(plausible_token(
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
        ));
        for bad in ["", "../../etc", "a b", "tok\nen", &"a".repeat(300)] {
            assert!(!plausible_token(bad), "{bad:?}");
        }
        assert_eq!(unhex(&"0f".repeat(32)), Some(vec![15; 32]));
        assert_eq!(unhex("0f"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}
