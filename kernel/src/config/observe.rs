//! `[platform] access_log`, `[platform] log` and `[platform.otel]`: what
//! bext writes about the requests it serves, and where.

use std::path::PathBuf;

use bext_plugin_abi::units::ByteSize;
use serde::{Deserialize, Deserializer};

/// `[platform] access_log`: `true` (one `bext::access` line per request in
/// the error log, as before), `false`, or a table for a dedicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogSetting {
    /// No access log.
    Off,
    /// The `bext::access` line in the error log (stderr).
    ErrorLog,
    /// A dedicated log written by its own thread.
    Dedicated(AccessLogConfig),
}

impl AccessLogSetting {
    /// Whether requests are logged at all.
    pub fn is_on(&self) -> bool {
        !matches!(self, AccessLogSetting::Off)
    }
}

/// `access_log = { format = "json", path = "...", buffer = "64KiB" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Line format.
    #[serde(default)]
    pub format: AccessLogFormat,
    /// File to append to (reopened on SIGUSR1, for logrotate); unset:
    /// standard output.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Lines waiting for the writer thread, in bytes: beyond it, lines are
    /// dropped (and counted) rather than a request delayed.
    #[serde(default = "default_buffer")]
    pub buffer: ByteSize,
}

fn default_buffer() -> ByteSize {
    ByteSize(64 * 1024)
}

/// An access log line's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// One JSON object per line, with bext's fields (app, tenant, trace…).
    #[default]
    Json,
    /// nginx's `combined` format, for tools that read it.
    Combined,
}

impl<'de> Deserialize<'de> for AccessLogSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AccessLogSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`true`, `false` or a table { format, path, buffer }")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(if on {
                    AccessLogSetting::ErrorLog
                } else {
                    AccessLogSetting::Off
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let c = AccessLogConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                if c.buffer.0 < 1024 {
                    return Err(serde::de::Error::custom(format!(
                        "buffer: {} bytes is too small for a line (1KiB at least)",
                        c.buffer.0
                    )));
                }
                Ok(AccessLogSetting::Dedicated(c))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[platform.otel]`: OpenTelemetry traces over OTLP/HTTP (JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans are
    /// posted to its `/v1/traces`.
    pub endpoint: String,
    /// Share of new traces recorded, 0 to 1 (a request whose
    /// `traceparent` says sampled is always recorded).
    #[serde(default = "one")]
    pub sample: f64,
    /// `service.name` of the spans.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// Headers sent with every post: what a collector asks for, such as
    /// `authorization` (values are never logged).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Headers bext sets itself on a post, which `headers` may not replace.
const OWN_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

fn one() -> f64 {
    1.0
}

fn default_service() -> String {
    "bext".into()
}

impl OtelSettings {
    /// The URL spans are posted to, or why `endpoint` is not one.
    pub fn traces_url(&self) -> Result<http::Uri, String> {
        let base = self.endpoint.trim_end_matches('/');
        let uri: http::Uri = format!("{base}/v1/traces")
            .parse()
            .map_err(|e| format!("endpoint: `{}` is not a URL: {e}", self.endpoint))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "endpoint: `{}`: an http:// or https:// URL of an OTLP/HTTP collector",
                self.endpoint
            ));
        }
        Ok(uri)
    }

    /// `headers` as a request carries them, or which one is not a header.
    pub fn header_map(&self) -> Result<http::HeaderMap, String> {
        let mut map = http::HeaderMap::new();
        for (name, value) in &self.headers {
            let n = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: `{name}` is not a header name"))?;
            if OWN_HEADERS.contains(&n.as_str()) {
                return Err(format!("headers: `{name}` is set by bext"));
            }
            let mut v = http::HeaderValue::from_str(value)
                .map_err(|_| format!("headers: the value of `{name}` is not a header value (a control character?)"))?;
            v.set_sensitive(true);
            map.insert(n, v);
        }
        Ok(map)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample) {
            return Err(format!("sample: {} is not between 0 and 1", self.sample));
        }
        self.header_map()?;
        self.traces_url().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct P {
        access_log: AccessLogSetting,
    }

    fn parse(text: &str) -> Result<AccessLogSetting, String> {
        toml::from_str::<P>(text)
            .map(|p| p.access_log)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn access_log_takes_a_switch_or_a_table() {
        assert_eq!(parse("access_log = false").unwrap(), AccessLogSetting::Off);
        assert_eq!(parse("access_log = true").unwrap(), AccessLogSetting::ErrorLog);
        let AccessLogSetting::Dedicated(c) =
            parse(r#"access_log = { format = "combined", path = "/tmp/a.log", buffer = "1MiB" }"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.format, AccessLogFormat::Combined);
        assert_eq!(c.buffer.0, 1024 * 1024);
        let AccessLogSetting::Dedicated(c) = parse("access_log = {}").unwrap() else {
            panic!()
        };
        assert_eq!((c.format, c.path, c.buffer.0), (AccessLogFormat::Json, None, 65536));
        for bad in [
            r#"access_log = { format = "xml" }"#,
            r#"access_log = { colour = "red" }"#,
            r#"access_log = { buffer = "12" }"#,
            r#"access_log = "yes""#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn otel_endpoint_and_sample_are_checked() {
        let o = |endpoint: &str, sample: f64| OtelSettings {
            endpoint: endpoint.into(),
            sample,
            service_name: "bext".into(),
            headers: Default::default(),
        };
        assert_eq!(
            o("http://127.0.0.1:4318/", 0.1).traces_url().unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            o("https://otel.example:4318", 1.0).traces_url().unwrap(),
            "https://otel.example:4318/v1/traces"
        );
        assert!(o("http://c:4318", 1.5).validate().is_err());
        assert!(o("ftp://c:4318", 1.0).validate().is_err());
        assert!(o("not a url", 1.0).validate().is_err());
        let with = |name: &str, value: &str| {
            let mut s = o("https://c:4318", 1.0);
            s.headers.insert(name.into(), value.into());
            s.validate()
        };
        assert!(with("Authorization", "Bearer x").is_ok());
        for (name, value, why) in [
            ("bad name", "x", "not a header name"),
            ("x-key", "a\nb", "not a header value"),
            ("Content-Type", "text/plain", "set by bext"),
            ("HOST", "evil.test", "set by bext"),
        ] {
            let err = with(name, value).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
