//! The `waf` plugin: stands between the internet and the apps.
//!
//! For every request, in order: the client address (behind trusted
//! proxies), the IP allow and deny lists, the penalty box for clients that
//! keep getting refused, bot handling, then inspection of the path,
//! arguments, cookies, headers and the first `body_limit` bytes of the
//! body against the rules (`rules.rs`, `inspect.rs`). Every decision goes
//! to the audit log (`GET /__bext/waf/events`) and the log.

pub mod audit;
mod body;
pub mod bots;
mod clean;
pub mod config;
pub mod inspect;
pub mod ip;
pub mod normalize;
mod penalty;
pub mod rules;
mod walk;

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bext_plugin_abi::admin::refuse_unless_admin;
use bext_plugin_abi::{
    Body, BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, PathPattern, Plugin, PluginError, Request, Response, Setup,
    text_response,
};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Method, StatusCode};

use crate::audit::{AUDIT, Event};
use crate::body::Read;
use crate::bots::{BotFilter, Challenge};
use crate::config::{BotMode, Config, IpDefault, Mode, Uninspectable};
use crate::inspect::{Engine, Finding, Subject, Switches};
use crate::ip::{ClientIpHeader, IpTable, Verdict, client_ip, parse_net};
use crate::penalty::PenaltyBox;
use crate::rules::Category;

/// The rules compiled once per process: they are constants, and per-app
/// instances share them.
static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

/// The plugin instance.
pub struct WafPlugin {
    name: String,
    mode: Mode,
    deny_status: StatusCode,
    trusted: IpTable,
    client_ip_header: ClientIpHeader,
    /// The manifest's lists.
    listed: IpTable,
    /// The manifest's lists plus the files, swapped when a file changes.
    lists: Arc<ArcSwap<IpTable>>,
    list_files: Vec<(PathBuf, Verdict)>,
    refresh: Duration,
    ip_default: IpDefault,
    body_limit: usize,
    uninspectable: Uninspectable,
    switches: Switches,
    exclusions: Vec<Exclusion>,
    bot_mode: BotMode,
    bots: BotFilter,
    challenge_ttl: u64,
    challenge_secret_env: Option<String>,
    challenge: OnceLock<Challenge>,
    penalty: Option<PenaltyBox>,
    events_path: String,
    audit_capacity: usize,
    token_env: String,
    token: OnceLock<Option<String>>,
}

/// A compiled `exclusions:` entry.
struct Exclusion {
    path: PathPattern,
    app: Option<String>,
    /// `None`: every rule is silenced.
    silenced: Option<Switches>,
}

impl BuiltinPlugin for WafPlugin {
    const NAME: &'static str = "waf";
    const PRIORITY: i32 = 50;
    const SUMMARY: &'static str = "web application firewall: IP lists, attack signatures, bots, audit log";
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/waf.yaml");
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        let deny_status = StatusCode::from_u16(config.deny_status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| PluginError::config("deny_status", "must be a 4xx or 5xx status"))?;
        let mut trusted = IpTable::default();
        for (i, net) in config.trusted_proxies.iter().enumerate() {
            trusted.insert(
                parse_net(net).map_err(|e| PluginError::config(format!("trusted_proxies[{i}]"), e))?,
                Verdict::Allow,
            );
        }
        let mut listed = IpTable::default();
        for (field, list, verdict) in [
            ("ip.allow", &config.ip.allow, Verdict::Allow),
            ("ip.deny", &config.ip.deny, Verdict::Deny),
        ] {
            for (i, net) in list.iter().enumerate() {
                listed.insert(
                    parse_net(net).map_err(|e| PluginError::config(format!("{field}[{i}]"), e))?,
                    verdict,
                );
            }
        }
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                setup.data_dir.join(p)
            }
        };
        let list_files = config
            .ip
            .allow_files
            .iter()
            .map(|p| (resolve(p), Verdict::Allow))
            .chain(config.ip.deny_files.iter().map(|p| (resolve(p), Verdict::Deny)))
            .collect();

        let mut switches = Switches::default();
        for (category, on) in &config.rules {
            if !on {
                switches.off_categories |= category.bit();
            }
        }
        for (i, id) in config.disabled_rules.iter().enumerate() {
            if inspect::rule_category(id).is_none() {
                return Err(PluginError::config(
                    format!("disabled_rules[{i}]"),
                    format!("unknown rule `{id}`"),
                ));
            }
        }
        switches.off_rules = config.disabled_rules.clone();
        let exclusions = config
            .exclusions
            .iter()
            .enumerate()
            .map(|(i, e)| compile_exclusion(i, e, &switches))
            .collect::<Result<_, _>>()?;
        let penalty = match &config.penalty {
            Some(p) if p.after == 0 => return Err(PluginError::config("penalty.after", "must be at least 1")),
            Some(p) => Some(PenaltyBox::new(p.after, p.within.0, p.ban.0)),
            None => None,
        };
        if config.audit.capacity == 0 {
            return Err(PluginError::config("audit.capacity", "must be at least 1"));
        }
        let base = setup.base.unwrap_or("/__bext/waf").trim_end_matches('/');
        Ok(WafPlugin {
            name: setup.plugin.to_owned(),
            mode: config.mode,
            deny_status,
            trusted,
            client_ip_header: config.client_ip_header,
            lists: Arc::new(ArcSwap::from_pointee(listed.clone())),
            listed,
            list_files,
            refresh: config.ip.refresh.0.max(Duration::from_secs(1)),
            ip_default: config.ip.default,
            body_limit: usize::try_from(config.body_limit.0).unwrap_or(usize::MAX),
            uninspectable: config.uninspectable_body,
            switches,
            exclusions,
            bot_mode: config.bots.mode,
            bots: BotFilter::new(&config.bots.allow, &config.bots.block),
            challenge_ttl: config.bots.challenge_ttl.0.as_secs().max(1),
            challenge_secret_env: config.bots.secret_env.clone(),
            challenge: OnceLock::new(),
            penalty,
            events_path: format!("{base}/events"),
            audit_capacity: config.audit.capacity,
            token_env: config.audit.token_env.clone(),
            token: OnceLock::new(),
        })
    }
}

fn compile_exclusion(i: usize, e: &config::Exclusion, base: &Switches) -> Result<Exclusion, PluginError> {
    let path = PathPattern::parse(format!("exclusions[{i}].path"), &e.path)?;
    let silenced = if e.rules.is_empty() {
        None
    } else {
        let mut s = base.clone();
        for (j, r) in e.rules.iter().enumerate() {
            match Category::ALL.iter().find(|c| c.as_str() == r) {
                Some(c) => s.off_categories |= c.bit(),
                None if inspect::rule_category(r).is_some() => s.off_rules.push(r.clone()),
                None => {
                    return Err(PluginError::config(
                        format!("exclusions[{i}].rules[{j}]"),
                        format!("`{r}` is neither a category nor a rule id"),
                    ));
                }
            }
        }
        Some(s)
    };
    Ok(Exclusion {
        path,
        app: e.app.clone(),
        silenced,
    })
}

/// Reads CIDR list files: one address or CIDR per line, `#` comments.
fn read_list_file(path: &Path) -> Result<Vec<ipnet::IpNet>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| (n, line.split('#').next().unwrap_or("").trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| parse_net(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// The manifest's lists with every file's entries added.
fn build_lists(listed: &IpTable, files: &[(PathBuf, Verdict)]) -> Result<IpTable, String> {
    let mut table = listed.clone();
    for (path, verdict) in files {
        for net in read_list_file(path)? {
            table.insert(net, *verdict);
        }
    }
    Ok(table)
}

fn modified(files: &[(PathBuf, Verdict)]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|(p, _)| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Keeps the file lists fresh; ends when the plugin instance is gone.
async fn refresh_lists(
    lists: Weak<ArcSwap<IpTable>>,
    listed: IpTable,
    files: Vec<(PathBuf, Verdict)>,
    every: Duration,
    plugin: String,
) {
    let mut seen = modified(&files);
    loop {
        tokio::time::sleep(every).await;
        let Some(lists) = lists.upgrade() else { return };
        let now = modified(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match build_lists(&listed, &files) {
            Ok(table) => {
                lists.store(Arc::new(table));
                tracing::info!(plugin = %plugin, "waf ip lists reloaded");
            }
            Err(e) => tracing::error!(plugin = %plugin, error = %e, "waf ip list not reloaded; the previous one stays"),
        }
    }
}

impl WafPlugin {
    /// Switches for this request, after exclusions; `None` when every
    /// rule is silenced here.
    fn switches_for(&self, path: &str, app: Option<&str>) -> Option<Cow<'_, Switches>> {
        for e in &self.exclusions {
            let path_hit = e.path.matches(path);
            if path_hit && e.app.as_deref().is_none_or(|a| Some(a) == app) {
                return e.silenced.as_ref().map(Cow::Borrowed);
            }
        }
        Some(Cow::Borrowed(&self.switches))
    }

    /// Records a decision: audit log and log line.
    fn record(&self, req: &Request, cx: &Ctx, ip: IpAddr, action: &'static str, finding: Option<&Finding>) {
        let path = req.uri().path();
        let event = Event {
            time: audit::now(),
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
        };
        tracing::warn!(
            target: "bext::waf",
            plugin = %self.name,
            request_id = %cx.request_id,
            action,
            client_ip = %ip,
            rule = finding.map_or("", |f| f.rule),
            category = finding.map_or("", |f| f.category.as_str()),
            part = finding.map_or("", |f| f.part.as_str()),
            name = finding.map_or("", |f| f.name.as_str()),
            path = %event.path,
            "waf decision"
        );
        AUDIT.push(event);
    }

    /// A refusal: the status, and the request id to quote, nothing that
    /// tells an attacker which rule fired.
    fn deny(&self, cx: &Ctx) -> Flow {
        let reason = self.deny_status.canonical_reason().unwrap_or("Refused");
        let mut res = text_response(self.deny_status, format!("{reason} (request id {})\n", cx.request_id));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Flow::Respond(res)
    }

    /// A body the rules cannot see whole: refused with `status` unless
    /// `uninspectable_body: pass` or detect mode, which log it and go on
    /// (`None`) to inspect what could be read.
    fn uninspectable(&self, req: &Request, cx: &Ctx, ip: IpAddr, status: StatusCode) -> Option<Flow> {
        if self.uninspectable == Uninspectable::Pass {
            return None;
        }
        self.record(req, cx, ip, "uninspectable_body", None);
        if self.mode == Mode::Detect {
            return None;
        }
        let reason = status.canonical_reason().unwrap_or("Refused");
        let mut res = text_response(status, format!("{reason} (request id {})\n", cx.request_id));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(Flow::Respond(res))
    }

    fn too_many(&self, retry_after: u64) -> Flow {
        let mut res = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Flow::Respond(res)
    }

    /// IP lists, penalty box and bots: decisions that need no inspection.
    /// `Some(flow)` ends the WAF's work for this request.
    fn screen(&self, req: &Request, cx: &Ctx, ip: IpAddr) -> Option<Flow> {
        match self.lists.load().lookup(ip) {
            Some(Verdict::Allow) => return Some(Flow::Continue),
            Some(Verdict::Deny) => {
                self.record(req, cx, ip, "deny_ip", None);
                return Some(self.deny(cx));
            }
            None if self.ip_default == IpDefault::Deny => {
                self.record(req, cx, ip, "deny_ip", None);
                return Some(self.deny(cx));
            }
            None => {}
        }
        if let Some(penalty) = &self.penalty
            && let Some(wait) = penalty.banned(ip)
        {
            self.record(req, cx, ip, "rate_limit", None);
            return Some(self.too_many(wait.as_secs()));
        }
        if self.bot_mode != BotMode::Allow {
            let agent = req.headers().get(USER_AGENT).map(HeaderValue::as_bytes);
            if self.bots.is_bot(agent) {
                return self.screen_bot(req, cx, ip, agent.unwrap_or_default());
            }
        }
        None
    }

    fn screen_bot(&self, req: &Request, cx: &Ctx, ip: IpAddr, agent: &[u8]) -> Option<Flow> {
        if self.bot_mode == BotMode::Block {
            self.record(req, cx, ip, "bot", None);
            return Some(self.deny(cx));
        }
        let challenge = self.challenge.get()?;
        let now = audit::now();
        let cookies = req.headers().get(http::header::COOKIE).map(HeaderValue::as_bytes);
        if challenge.passed(cookies, ip, agent, now) {
            return None;
        }
        self.record(req, cx, ip, "challenge", None);
        let page = challenge.page(&challenge.token(ip, agent, now));
        let mut res = Response::new(Body::from(page));
        *res.status_mut() = StatusCode::FORBIDDEN;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(Flow::Respond(res))
    }

    /// Inspects the request and acts on a finding.
    fn judge(&self, req: &Request, cx: &Ctx, ip: IpAddr, on: &Switches, body: &[u8]) -> Flow {
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
            return Flow::Continue;
        };
        match self.mode {
            Mode::Detect => {
                self.record(req, cx, ip, "detect", Some(&finding));
                Flow::Continue
            }
            Mode::Block => {
                self.record(req, cx, ip, "block", Some(&finding));
                if let Some(penalty) = &self.penalty {
                    penalty.strike(ip);
                }
                self.deny(cx)
            }
        }
    }

    /// `GET {base}/events`: the audit log, newest first, for an admin.
    fn events(&self, req: &Request, cx: &Ctx) -> Response {
        if let Some(refused) = refuse_unless_admin(req, cx, self.token.get().and_then(Option::as_deref)) {
            return refused;
        }
        if req.method() != Method::GET {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        let limit = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(100);
        let body = serde_json::json!({ "events": AUDIT.recent(limit) });
        let mut res = Response::new(Body::from(body.to_string()));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// Whether the request may have a body to read: the kernel hands over an
/// empty body when the client's ended with the head, so anything else
/// (an HTTP/2 stream without `Content-Length` included) is read.
fn has_body(req: &Request) -> bool {
    req.body().as_bytes().is_none_or(|b| !b.is_empty())
}

impl Plugin for WafPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::FETCH | Hooks::REQUEST
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        AUDIT.set_capacity(self.audit_capacity);
        let token = std::env::var(&self.token_env).ok().filter(|t| !t.is_empty());
        let _ = self.token.set(token);
        let key = match self.challenge_secret_env.as_deref().map(std::env::var) {
            Some(Ok(secret)) if !secret.is_empty() => secret.into_bytes(),
            Some(_) => {
                let env = self.challenge_secret_env.as_deref().unwrap_or_default();
                return Hook::Ready(Err(PluginError::Init(
                    format!("bots.secret_env: `{env}` is not set").into(),
                )));
            }
            None => {
                let mut key = vec![0; 32];
                if let Err(e) = getrandom::fill(&mut key) {
                    return Hook::Ready(Err(PluginError::Init(format!("no random key: {e}").into())));
                }
                key
            }
        };
        let _ = self.challenge.set(Challenge::new(key, self.challenge_ttl));
        if !self.list_files.is_empty() {
            match build_lists(&self.listed, &self.list_files) {
                Ok(table) => self.lists.store(Arc::new(table)),
                Err(e) => return Hook::Ready(Err(PluginError::Init(e.into()))),
            }
            host.spawn(refresh_lists(
                Arc::downgrade(&self.lists),
                self.listed.clone(),
                self.list_files.clone(),
                self.refresh,
                self.name.clone(),
            ));
        }
        Hook::Ready(Ok(()))
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        // Admin endpoints answer in the fetch stage, before `on_request`:
        // they, and their throttle of wrong tokens, see the client behind
        // trusted proxies too, not the proxy.
        cx.client_ip = client_ip(cx.peer.ip(), req.headers(), &self.trusted, self.client_ip_header);
        if req.uri().path() == self.events_path {
            return Hook::Ready(Ok(Flow::Respond(self.events(req, cx))));
        }
        Hook::Ready(Ok(Flow::Continue))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let ip = client_ip(cx.peer.ip(), req.headers(), &self.trusted, self.client_ip_header);
        cx.client_ip = ip;
        if let Some(flow) = self.screen(req, cx, ip) {
            return Hook::Ready(Ok(flow));
        }
        let Some(on) = self.switches_for(req.uri().path(), cx.app()) else {
            return Hook::Ready(Ok(Flow::Continue));
        };
        if !has_body(req) {
            return Hook::Ready(Ok(self.judge(req, cx, ip, &on, b"")));
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
            Ok(self.judge(req, cx, ip, &on, &body))
        })
    }
}

bext_plugin_abi::register!(WafPlugin);
