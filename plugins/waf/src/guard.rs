//! The `on_request` step: screening (`screen.rs`), then the rules for this
//! path (`switches.rs`), the body read for inspection (`body.rs`) and the
//! engine's verdict (`inspect.rs`), acted on as `mode` says. Every
//! decision is recorded (`audit.rs`) and counted (`/__bext/metrics`:
//! `bext_plugin_waf_decisions_total{action}` and
//! `bext_plugin_waf_blocks_total{family,rule}`); refusals are
//! `respond.rs`'s.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock, OnceLock};

use arc_swap::ArcSwap;
use bext_plugin_abi::metrics::CounterFamily;
use bext_plugin_abi::{Ctx, Flow, Hook, Host, PluginError, Request};
use http::StatusCode;

use crate::audit::{AuditLog, record, record_with};
use crate::body::{self, Read};
use crate::config::{Config, Mode, Uninspectable};
use crate::crs::CrsTier;
use crate::inspect::{Engine, Finding, Subject, Switches};

/// Key of the WAF's decision in `Ctx::vars`, which the access log reads
/// (`block`, `detect`, `deny_ip`...).
pub(crate) const VERDICT: &str = "waf";
use crate::ip::IpTable;
use crate::respond;
use crate::screen::{Screen, Screened};
use crate::switches::RuleSwitches;

/// The rules compiled once per process: they are constants, and per-app
/// instances share them.
static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

/// The request step of one plugin instance.
pub(crate) struct Guard {
    /// The plugin's name, for the log.
    name: String,
    mode: Mode,
    deny_status: StatusCode,
    body_limit: usize,
    uninspectable: Uninspectable,
    screen: Screen,
    switches: RuleSwitches,
    /// The OWASP CRS tier, when `crs` is configured.
    crs: Option<CrsTier>,
    /// The plugin's audit log, the host's shared one from `on_init`.
    audit: OnceLock<Arc<AuditLog>>,
    /// Its counters on `/__bext/metrics`, from `on_init`.
    counters: OnceLock<Counters>,
}

/// What the WAF publishes: every decision by action, and blocks by rule
/// family and rule (both fixed sets, so the series stay few).
struct Counters {
    decisions: CounterFamily,
    blocks: CounterFamily,
}

impl Guard {
    /// The step as `config` says, screening against `lists`.
    pub(crate) fn new(config: &Config, plugin: &str, lists: Arc<ArcSwap<IpTable>>) -> Result<Self, PluginError> {
        let deny_status = StatusCode::from_u16(config.deny_status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| PluginError::config("deny_status", "must be a 4xx or 5xx status"))?;
        Ok(Guard {
            name: plugin.to_owned(),
            mode: config.mode,
            deny_status,
            body_limit: usize::try_from(config.body_limit.0).unwrap_or(usize::MAX),
            uninspectable: config.uninspectable_body,
            screen: Screen::new(config, lists)?,
            switches: RuleSwitches::new(config)?,
            crs: config.crs.as_ref().map(CrsTier::new).transpose()?,
            audit: OnceLock::new(),
            counters: OnceLock::new(),
        })
    }

    /// What needs the environment: the bot challenge's key; and the audit
    /// log the instances share.
    pub(crate) fn init(&self, audit: Arc<AuditLog>, host: &Host) -> Result<(), String> {
        let _ = self.audit.set(audit);
        let metrics = host.metrics(&self.name);
        let decisions = metrics.counter_family("decisions", "Requests the WAF acted on, by action.");
        let blocks = metrics.counter_family("blocks", "Requests the WAF refused on a rule, by family and rule.");
        let (decisions, blocks) = (
            decisions.map_err(|e| e.to_string())?,
            blocks.map_err(|e| e.to_string())?,
        );
        let _ = self.counters.set(Counters { decisions, blocks });
        self.screen.init()
    }

    /// Counts a decision (and a block's rule) on `/__bext/metrics`, and
    /// notes it for the access log (`waf` in `Ctx::vars`).
    fn count(&self, cx: &mut Ctx, action: &'static str, finding: Option<&Finding>) {
        cx.vars.insert(VERDICT.to_owned(), action.to_owned());
        let Some(c) = self.counters.get() else { return };
        c.decisions.get_or_create(&vec![("action", action.to_owned())]).inc();
        if action == "block"
            && let Some(f) = finding
        {
            let labels = vec![("family", f.category.as_str().to_owned()), ("rule", f.rule.to_owned())];
            c.blocks.get_or_create(&labels).inc();
        }
    }

    /// The audit log: the shared one, or (before `on_init`) the
    /// instance's own.
    pub(crate) fn audit(&self) -> &AuditLog {
        self.audit.get_or_init(Default::default)
    }

    /// Screens and inspects a request from `ip` (the client behind trusted
    /// proxies); waits only to read a body.
    pub(crate) fn on_request<'a>(
        &'a self,
        req: &'a mut Request,
        cx: &'a mut Ctx,
        ip: IpAddr,
    ) -> Hook<'a, Result<Flow, PluginError>> {
        if let Some(screened) = self.screen.screen(req.headers(), ip) {
            return Hook::Ready(Ok(self.screened(req, cx, ip, screened)));
        }
        let Some(on) = self.switches.for_request(req.uri().path(), cx.app()) else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        if !has_body(req) {
            return Hook::Ready(Ok(self.judge(req, cx, ip, on, b"")));
        }
        // Refusals that need no byte of the body come first.
        let refusing = self.uninspectable == Uninspectable::Refuse && self.mode == Mode::Block;
        if refusing
            && body::declared_over(req.headers(), self.body_limit)
            && let Some(refused) = self.uninspectable(req, cx, ip, StatusCode::PAYLOAD_TOO_LARGE)
        {
            return Hook::Ready(Ok(refused));
        }
        let codings = match body::codings(req.headers()) {
            Some(codings) => codings,
            None => match self.uninspectable(req, cx, ip, StatusCode::UNSUPPORTED_MEDIA_TYPE) {
                Some(refused) => return Hook::Ready(Ok(refused)),
                // Passed on: the raw bytes are all there is to inspect.
                None => Vec::new(),
            },
        };
        Hook::later(async move {
            let (body, status) = match body::read(req.body_mut(), &codings, self.body_limit).await {
                Read::Whole(b) => (b, None),
                Read::TooLarge(prefix) => (prefix, Some(StatusCode::PAYLOAD_TOO_LARGE)),
                Read::Corrupt(raw) => (raw, Some(StatusCode::BAD_REQUEST)),
            };
            if let Some(status) = status
                && let Some(refused) = self.uninspectable(req, cx, ip, status)
            {
                return Ok(refused);
            }
            Ok(self.judge(req, cx, ip, on, &body))
        })
    }

    /// Acts on what screening decided.
    fn screened(&self, req: &Request, cx: &mut Ctx, ip: IpAddr, screened: Screened) -> Flow {
        let (action, res) = match screened {
            Screened::Allowed => return Flow::Continue,
            Screened::DeniedIp => ("deny_ip", self.refusal(cx)),
            Screened::Banned(wait) => ("rate_limit", respond::too_many(wait.as_secs())),
            Screened::Bot => ("bot", self.refusal(cx)),
            Screened::Challenge(page) => ("challenge", respond::challenge(page)),
        };
        record(self.audit(), &self.name, req, cx, ip, action, None);
        self.count(cx, action, None);
        Flow::Respond(res)
    }

    /// Inspects the request and acts on a finding.
    fn judge(&self, req: &Request, cx: &mut Ctx, ip: IpAddr, on: &Switches, body: &[u8]) -> Flow {
        let subject = Subject {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
            body,
        };
        let inspection = ENGINE.inspect_whole(&subject, on);
        let Some(finding) = inspection.finding else {
            // Values past the inspection budget were never looked at.
            if !inspection.complete
                && let Some(refused) = self.uninspectable(req, cx, ip, StatusCode::PAYLOAD_TOO_LARGE)
            {
                return refused;
            }
            return self.crs_tier(req, cx, ip, on, &subject);
        };
        self.found(req, cx, ip, &finding)
    }

    /// The CRS tier on what the native rules let through: a score at the
    /// threshold refuses it (unless `crs.mode` or `mode` is `detect`,
    /// where any score is logged), with the rules that made it.
    fn crs_tier(&self, req: &Request, cx: &mut Ctx, ip: IpAddr, on: &Switches, subject: &Subject<'_>) -> Flow {
        let Some(tier) = &self.crs else { return Flow::Continue };
        let Some(outcome) = tier.judge(subject, &ip.to_string(), &on.crs) else {
            return Flow::Continue;
        };
        let blocking = self.mode == Mode::Block && tier.mode == Mode::Block;
        let refuse = outcome.refused && blocking;
        if outcome.over_limit {
            // Too much for CRS to inspect: always recorded, refused as
            // configured (413, like a body over `body_limit`).
            record_with(
                self.audit(),
                &self.name,
                req,
                cx,
                ip,
                "crs_limit",
                None,
                Some(outcome.event),
            );
            self.count(cx, "crs_limit", None);
            if !refuse {
                return Flow::Continue;
            }
            return Flow::Respond(respond::refusal(StatusCode::PAYLOAD_TOO_LARGE, cx.request_id));
        }
        // Below the threshold, only detect mode (tuning) logs the score.
        if blocking && !outcome.refused {
            return Flow::Continue;
        }
        let action = if refuse { "block" } else { "detect" };
        record_with(self.audit(), &self.name, req, cx, ip, action, None, Some(outcome.event));
        self.count(cx, action, None);
        if !refuse {
            return Flow::Continue;
        }
        self.screen.strike(ip);
        Flow::Respond(self.refusal(cx))
    }

    /// A finding: logged in detect mode, refused (and a strike towards the
    /// penalty box) in block mode.
    fn found(&self, req: &Request, cx: &mut Ctx, ip: IpAddr, finding: &Finding) -> Flow {
        match self.mode {
            Mode::Detect => {
                record(self.audit(), &self.name, req, cx, ip, "detect", Some(finding));
                self.count(cx, "detect", Some(finding));
                Flow::Continue
            }
            Mode::Block => {
                record(self.audit(), &self.name, req, cx, ip, "block", Some(finding));
                self.count(cx, "block", Some(finding));
                self.screen.strike(ip);
                Flow::Respond(self.refusal(cx))
            }
        }
    }

    /// A body the rules cannot see whole: refused with `status` unless
    /// `uninspectable_body: pass` or detect mode, which log it and go on
    /// (`None`) to inspect what could be read.
    fn uninspectable(&self, req: &Request, cx: &mut Ctx, ip: IpAddr, status: StatusCode) -> Option<Flow> {
        if self.uninspectable == Uninspectable::Pass {
            return None;
        }
        record(self.audit(), &self.name, req, cx, ip, "uninspectable_body", None);
        self.count(cx, "uninspectable_body", None);
        if self.mode == Mode::Detect {
            return None;
        }
        Some(Flow::Respond(respond::refusal(status, cx.request_id)))
    }

    fn refusal(&self, cx: &Ctx) -> bext_plugin_abi::Response {
        respond::refusal(self.deny_status, cx.request_id)
    }
}

/// Whether the request may have a body to read: the kernel hands over an
/// empty body when the client's ended with the head, so anything else
/// (an HTTP/2 stream without `Content-Length` included) is read.
fn has_body(req: &Request) -> bool {
    req.body().as_bytes().is_none_or(|b| !b.is_empty())
}
