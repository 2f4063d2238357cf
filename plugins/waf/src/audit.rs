//! The audit log: every decision the WAF takes, in a bounded ring buffer
//! readable at `GET /__bext/waf/events`, and as a log line.
//!
//! One log shared by every instance of the plugin (per-app configurations
//! build separate instances), so the endpoint shows all apps' decisions;
//! it is the host's shared value [`AUDIT_KEY`] (`Host::shared`), so a
//! reload that rebuilds the instances keeps the history.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use bext_plugin_abi::{Ctx, Request};
use serde::Serialize;

use crate::inspect::Finding;

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The request id (as in the access log and error pages).
    pub request_id: String,
    /// `block`, `detect`, `deny_ip`, `rate_limit`, `challenge`, `bot`,
    /// `uninspectable_body` or `crs_limit`.
    pub action: &'static str,
    /// The client address the decision was about.
    pub client_ip: String,
    /// Request method.
    pub method: String,
    /// Host header.
    pub host: String,
    /// Request path (at most 200 bytes).
    pub path: String,
    /// App the request was routed to.
    pub app: Option<String>,
    /// Rule id, when a rule decided.
    pub rule: Option<&'static str>,
    /// Rule family.
    pub category: Option<&'static str>,
    /// Where the match was (`arg`, `header`, `path`...).
    pub part: Option<&'static str>,
    /// The argument, header or cookie name.
    pub name: Option<String>,
    /// Start of the matching value, as the rule saw it.
    pub sample: Option<String>,
    /// The CRS tier's verdict, when it ran and scored the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crs: Option<CrsEvent>,
}

/// What the CRS tier found: the anomaly score against the threshold,
/// and each rule that matched.
#[derive(Debug, Clone, Serialize)]
pub struct CrsEvent {
    /// Why CRS did not run: the request is over `crs.max_args` or
    /// `crs.max_bytes` (`"812 arguments, crs.max_args 256"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_limit: Option<String>,
    pub score: i64,
    pub threshold: u32,
    pub paranoia: u8,
    pub rules: Vec<CrsRule>,
}

/// One CRS rule that matched.
#[derive(Debug, Clone, Serialize)]
pub struct CrsRule {
    pub id: u32,
    pub msg: String,
    /// Where: `ARGS:q`, `REQUEST_HEADERS:User-Agent`.
    pub var: String,
    /// The matched value as the rule saw it, cut to 80 bytes.
    pub data: String,
}

/// A bounded, newest-last list of events.
pub struct AuditLog {
    events: Mutex<VecDeque<Event>>,
    capacity: AtomicUsize,
}

/// The key of the instances' log among the host's shared values.
pub const AUDIT_KEY: &str = "waf:audit";

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog {
            events: Mutex::new(VecDeque::new()),
            capacity: AtomicUsize::new(1000),
        }
    }
}

impl AuditLog {
    /// Sets how many events are kept (the newest configuration wins).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
    }

    /// Records an event, dropping the oldest beyond capacity.
    pub fn push(&self, event: Event) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        while events.len() >= capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The newest `limit` events, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().rev().take(limit).cloned().collect()
    }
}

/// Records a decision about `req` from `ip` (`action`, and the finding
/// when a rule decided): in `log`, and as a `bext::waf` log line naming
/// `plugin`.
pub(crate) fn record(
    log: &AuditLog,
    plugin: &str,
    req: &Request,
    cx: &Ctx,
    ip: IpAddr,
    action: &'static str,
    finding: Option<&Finding>,
) {
    record_with(log, plugin, req, cx, ip, action, finding, None);
}

/// [`record`] with the CRS tier's verdict.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_with(
    log: &AuditLog,
    plugin: &str,
    req: &Request,
    cx: &Ctx,
    ip: IpAddr,
    action: &'static str,
    finding: Option<&Finding>,
    crs: Option<CrsEvent>,
) {
    let path = req.uri().path();
    let event = Event {
        time: now(),
        request_id: cx.request_id.to_string(),
        action,
        client_ip: ip.to_string(),
        method: req.method().to_string(),
        host: cx.host.as_deref().unwrap_or("").to_owned(),
        path: path[..path.floor_char_boundary(200)].to_owned(),
        app: cx.app().map(str::to_owned),
        rule: finding.map(|f| f.rule),
        category: finding.map(|f| f.category.as_str()),
        part: finding.map(|f| f.part.as_str()),
        name: finding.map(|f| f.name.clone()),
        sample: finding.map(|f| f.sample.clone()),
        crs,
    };
    tracing::warn!(
        target: "bext::waf",
        plugin = %plugin,
        request_id = %cx.request_id,
        action,
        client_ip = %ip,
        rule = finding.map_or("", |f| f.rule),
        category = finding.map_or("", |f| f.category.as_str()),
        part = finding.map_or("", |f| f.part.as_str()),
        name = finding.map_or("", |f| f.name.as_str()),
        crs_score = event.crs.as_ref().map_or(0, |c| c.score),
        crs_rules = ?event.crs.as_ref().map(|c| c.rules.iter().map(|r| r.id).collect::<Vec<_>>()),
        path = %event.path,
        "waf decision"
    );
    log.push(event);
}

/// Seconds since the epoch, for event times.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            time: n,
            request_id: n.to_string(),
            action: "block",
            client_ip: "127.0.0.1".into(),
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            app: None,
            rule: None,
            category: None,
            part: None,
            name: None,
            sample: None,
            crs: None,
        }
    }

    #[test]
    fn a_record_says_who_what_and_which_rule() {
        use crate::rules::{Category, Part};
        use bext_plugin_abi::{Body, RequestId};

        let mut req = Request::new(Body::empty());
        *req.method_mut() = http::Method::POST;
        let long = format!("/{}", "a".repeat(300));
        *req.uri_mut() = long.parse().unwrap();
        let mut cx = Ctx::new(RequestId(0xa0d17), "192.0.2.9:4000".parse().unwrap());
        cx.host = Some("shop.test".into());
        let _ = cx.set_app("shop");
        let finding = Finding::new("sqli-union", Category::Sqli, Part::Arg, "q", "' union select");
        let log = AuditLog::default();
        record(
            &log,
            "waf",
            &req,
            &cx,
            "203.0.113.7".parse().unwrap(),
            "block",
            Some(&finding),
        );
        let id = cx.request_id.to_string();
        let e = log.recent(usize::MAX).into_iter().find(|e| e.request_id == id).unwrap();
        assert_eq!(
            (
                e.action,
                e.client_ip.as_str(),
                e.method.as_str(),
                e.host.as_str(),
                e.app.as_deref()
            ),
            ("block", "203.0.113.7", "POST", "shop.test", Some("shop"))
        );
        assert_eq!(
            (e.rule, e.category, e.part),
            (Some("sqli-union"), Some("sqli"), Some("arg"))
        );
        assert_eq!(
            (e.name.as_deref(), e.sample.as_deref()),
            (Some("q"), Some("' union select"))
        );
        // The path as sent, cut to 200 bytes.
        assert_eq!(e.path, long[..200]);
    }

    #[test]
    fn keeps_only_the_newest() {
        let log = AuditLog {
            events: Mutex::new(VecDeque::new()),
            capacity: AtomicUsize::new(3),
        };
        for n in 0..5 {
            log.push(event(n));
        }
        let times: Vec<u64> = log.recent(10).iter().map(|e| e.time).collect();
        assert_eq!(times, vec![4, 3, 2]);
        assert_eq!(log.recent(1).len(), 1);
    }
}
