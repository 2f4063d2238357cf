//! `[platform.acme]`: where certificates come from and how on-demand
//! issuance is bounded. Decoded strictly and checked without I/O, so
//! `bext check` can report every mistake before anything is ordered.

use std::path::PathBuf;
use std::time::Duration;

use bext_plugin_abi::units::Span;
use serde::Deserialize;

use crate::error::AcmeError;
use crate::kind::ChallengeKind;

/// Let's Encrypt's production directory, used when `directory` is not set.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The `[platform.acme]` table of the platform file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME server's directory URL; Let's Encrypt's production
    /// directory by default.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// The contact address given to the ACME server when the account is
    /// made (expiry notices go there); optional.
    #[serde(default)]
    pub email: Option<String>,
    /// A PEM file with extra roots the ACME server's own HTTPS is verified
    /// with, added to the public roots (tests, private CAs).
    #[serde(default)]
    pub ca_root: Option<PathBuf>,
    /// Asked `?domain=NAME` before a certificate is ordered for a name no
    /// app configured; a 200 answer allows it. Without it, on-demand
    /// issuance is off.
    #[serde(default)]
    pub on_demand_ask: Option<String>,
    /// The challenge the ACME server validates: `http-01` (answered on the
    /// plain listener, port 80) or `tls-alpn-01` (answered on the TLS
    /// listener, port 443).
    #[serde(default)]
    pub challenge: ChallengeKind,
    /// How long one order may take, from the new order to the certificate.
    #[serde(default = "default_order_timeout")]
    pub order_timeout: Span,
    /// At most this many on-demand orders start in any minute.
    #[serde(default = "default_per_minute")]
    pub on_demand_orders_per_minute: u32,
    /// How long a handshake for an unknown name waits for its certificate
    /// before it fails (the order goes on, and later handshakes get it).
    #[serde(default = "default_wait")]
    pub on_demand_wait: Span,
    /// How long a name that the ask refused, or whose order failed, is
    /// refused again without asking or ordering.
    #[serde(default = "default_remember")]
    pub on_demand_remember: Span,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_owned()
}
fn default_order_timeout() -> Span {
    Span(Duration::from_secs(120))
}
fn default_per_minute() -> u32 {
    10
}
fn default_wait() -> Span {
    Span(Duration::from_secs(30))
}
fn default_remember() -> Span {
    Span(Duration::from_secs(600))
}

impl AcmeConfig {
    /// A configuration for `directory` with every other key at its default.
    pub fn new(directory: impl Into<String>) -> AcmeConfig {
        AcmeConfig {
            directory: directory.into(),
            email: None,
            ca_root: None,
            on_demand_ask: None,
            challenge: ChallengeKind::default(),
            order_timeout: default_order_timeout(),
            on_demand_orders_per_minute: default_per_minute(),
            on_demand_wait: default_wait(),
            on_demand_remember: default_remember(),
        }
    }

    /// Checks what decoding cannot, without I/O: URLs that are http(s),
    /// an address that looks like one, limits that are not zero.
    pub fn validate(&self) -> Result<(), AcmeError> {
        http_url("directory", &self.directory)?;
        if let Some(ask) = &self.on_demand_ask {
            http_url("on_demand_ask", ask)?;
        }
        if let Some(email) = &self.email {
            let ok = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'))
                && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',');
            if !ok {
                return Err(config_error("email", format!("`{email}` is not an e-mail address")));
            }
        }
        if self.on_demand_orders_per_minute == 0 {
            return Err(config_error("on_demand_orders_per_minute", "must be at least 1".into()));
        }
        for (field, span) in [
            ("order_timeout", self.order_timeout),
            ("on_demand_wait", self.on_demand_wait),
        ] {
            if span.0.is_zero() {
                return Err(config_error(field, "must be longer than zero".into()));
            }
        }
        Ok(())
    }
}

fn config_error(field: &'static str, reason: String) -> AcmeError {
    AcmeError::Config { field, reason }
}

fn http_url(field: &'static str, raw: &str) -> Result<url::Url, AcmeError> {
    let url = url::Url::parse(raw).map_err(|e| config_error(field, format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(config_error(
            field,
            format!("`{raw}` is not an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<AcmeConfig, String> {
        let cfg: AcmeConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn defaults_and_every_key() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.directory, LETS_ENCRYPT);
        assert_eq!(cfg.challenge, ChallengeKind::Http01);
        assert_eq!(cfg.on_demand_orders_per_minute, 10);
        let cfg = parse(
            r#"
            directory = "https://127.0.0.1:14000/dir"
            email = "ops@example.com"
            ca_root = "/etc/bext/pebble.pem"
            on_demand_ask = "http://127.0.0.1:9/ask?token=x"
            challenge = "tls-alpn-01"
            order_timeout = "45s"
            on_demand_orders_per_minute = 3
            on_demand_wait = "5s"
            on_demand_remember = "1h"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.challenge, ChallengeKind::TlsAlpn01);
        assert_eq!(cfg.order_timeout.0, Duration::from_secs(45));
        assert_eq!(cfg.on_demand_remember.0, Duration::from_secs(3600));
        assert_eq!(
            cfg.ca_root.as_deref(),
            Some(std::path::Path::new("/etc/bext/pebble.pem"))
        );
    }

    #[test]
    fn mistakes_name_the_field() {
        for (text, needle) in [
            ("directry = \"https://x.test/\"", "unknown field `directry`"),
            ("challenge = \"dns-01\"", "unknown variant `dns-01`"),
            ("directory = \"ftp://x.test/dir\"", "directory"),
            ("directory = \"not a url\"", "directory"),
            ("on_demand_ask = \"file:///etc/passwd\"", "on_demand_ask"),
            ("email = \"nobody\"", "email"),
            ("email = \"a@b.com, c@d.com\"", "email"),
            ("on_demand_orders_per_minute = 0", "on_demand_orders_per_minute"),
            ("order_timeout = \"0s\"", "order_timeout"),
            ("on_demand_wait = \"soon\"", "on_demand_wait"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
