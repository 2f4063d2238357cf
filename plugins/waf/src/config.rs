//! The waf manifest's `config` block (documented in `manifests/waf.yaml`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bext_plugin_abi::units::{ByteSize, Span};
use serde::Deserialize;

use crate::ip::ClientIpHeader;
use crate::rules::Category;

/// Typed `config` of the waf plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `block` refuses what the rules find; `detect` only logs it.
    #[serde(default)]
    pub mode: Mode,
    /// Status of a refusal.
    #[serde(default = "deny_status")]
    pub deny_status: u16,
    /// Peers whose `client_ip_header` is believed (CIDRs). Everyone else
    /// is the client themselves.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies report the client in
    /// (`x-forwarded-for` or `forwarded`); the other is the client's own
    /// word and ignored.
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
    /// IP allow and deny lists.
    #[serde(default)]
    pub ip: IpConfig,
    /// How much of a request body is inspected (form, JSON, XML,
    /// multipart, text), after `Content-Encoding` is undone.
    #[serde(default = "body_limit")]
    pub body_limit: ByteSize,
    /// What happens to a body the WAF cannot inspect whole: larger than
    /// `body_limit`, in a coding it does not decode, or broken.
    #[serde(default)]
    pub uninspectable_body: Uninspectable,
    /// Attack families switched on or off (`sqli: false`); all are on.
    #[serde(default)]
    pub rules: BTreeMap<Category, bool>,
    /// Single rules switched off by id (`sqli-union`, `libinjection-xss`).
    #[serde(default)]
    pub disabled_rules: Vec<String>,
    /// Paths (and apps) where rules are silenced.
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
    /// Bot handling by user agent.
    #[serde(default)]
    pub bots: BotConfig,
    /// Clients that keep getting refused are rate-limited for a while.
    #[serde(default)]
    pub penalty: Option<PenaltyConfig>,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The OWASP CRS tier (off when absent).
    #[serde(default)]
    pub crs: Option<CrsConfig>,
    /// Markdown with quoted code in arguments and bodies read as text
    /// about code (docs/waf.md, "Code quoted in prose"). Off by default:
    /// it stops refusing comments that quote commands, and so lets plain
    /// commands quoted that way reach an app that would run them.
    #[serde(default)]
    pub markdown_prose: bool,
}

/// `crs:`: the OWASP Core Rule Set, run by bext's SecLang engine behind
/// the native rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrsConfig {
    /// The directory of CRS's `REQUEST-*.conf` and `.data` files.
    #[serde(default = "crs_rules")]
    pub rules: PathBuf,
    /// CRS's paranoia level, 1 (default) to 4.
    #[serde(default = "paranoia")]
    pub paranoia: u8,
    /// Anomaly score at which a request is refused (CRS's default 5: one
    /// critical rule).
    #[serde(default = "inbound_threshold")]
    pub inbound_threshold: u32,
    /// `block`, or `detect`: log the score and the rule ids only.
    #[serde(default)]
    pub mode: Mode,
    /// `unclear` (default): only requests whose path, query, body or
    /// cookies hold more than plain words; `all`: every request.
    #[serde(default)]
    pub scope: CrsScope,
    /// Arguments (query and body, JSON leaves included) CRS inspects at
    /// most: each costs every ARGS rule a run, so an unbounded count is a
    /// lever for a client to spend the server's CPU.
    #[serde(default = "crs_max_args")]
    pub max_args: usize,
    /// Bytes of argument names and values (`ARGS_COMBINED_SIZE`) CRS
    /// inspects at most, for the same reason.
    #[serde(default = "crs_max_bytes")]
    pub max_bytes: ByteSize,
    /// A request over `max_args` or `max_bytes`: `refuse` (413, default)
    /// or `pass` (CRS skips it; the native rules, which inspected it,
    /// decide). Either way the audit log records `crs_limit`.
    #[serde(default)]
    pub over_limit: Uninspectable,
}

/// `crs.scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrsScope {
    /// What the native pass cannot clear by its bytes.
    #[default]
    Unclear,
    /// Every inspected request.
    All,
}

fn crs_rules() -> PathBuf {
    PathBuf::from("/usr/share/modsecurity-crs/rules")
}
fn paranoia() -> u8 {
    1
}
fn crs_max_args() -> usize {
    256
}
fn crs_max_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}
fn inbound_threshold() -> u32 {
    5
}

/// What a finding does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the request.
    #[default]
    Block,
    /// Log it and let it through (to try rules on real traffic first).
    Detect,
}

/// `uninspectable_body`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Uninspectable {
    /// Refuse it: 413 (too large), 415 (a coding not decoded here), 400
    /// (a coding that does not decode). What the rules did not see could
    /// be the attack.
    #[default]
    Refuse,
    /// Inspect what can be read (the first `body_limit` bytes; the raw
    /// bytes of a coding not decoded) and let it through.
    Pass,
}

/// `ip:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpConfig {
    /// Addresses let through without inspection (CIDRs or addresses).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Files of allowed CIDRs, one per line (`#` comments), relative to
    /// the data directory unless absolute; re-read when they change.
    #[serde(default)]
    pub allow_files: Vec<PathBuf>,
    /// Files of denied CIDRs.
    #[serde(default)]
    pub deny_files: Vec<PathBuf>,
    /// Addresses on neither list: `inspect` (default) or `deny` (an
    /// allow-list setup).
    #[serde(default)]
    pub default: IpDefault,
    /// How often the files are checked for changes.
    #[serde(default = "refresh")]
    pub refresh: Span,
}

impl Default for IpConfig {
    fn default() -> Self {
        IpConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            allow_files: Vec::new(),
            deny_files: Vec::new(),
            default: IpDefault::default(),
            refresh: refresh(),
        }
    }
}

/// `ip.default`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpDefault {
    /// Inspect the request.
    #[default]
    Inspect,
    /// Refuse it.
    Deny,
}

/// One `exclusions:` entry: silence rules for a path (and app).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// An exact path, or a prefix ending in `*` (`/admin/editor/*`).
    pub path: String,
    /// Only for this app (when the WAF runs for several).
    #[serde(default)]
    pub app: Option<String>,
    /// Categories or rule ids silenced; empty means every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only in these arguments (query, form, JSON key, multipart field
    /// names, any case): the rules stay on for the rest of the request,
    /// as CRS's `ctl:ruleRemoveTargetById` does. Empty: the whole request.
    #[serde(default)]
    pub args: Vec<String>,
}

/// `bots:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// `allow` (default), `challenge` (a JavaScript check, then a cookie)
    /// or `block`.
    #[serde(default)]
    pub mode: BotMode,
    /// User-agent fragments always let through (search engines, link
    /// previews). User agents can be forged: this is not authentication.
    #[serde(default = "good_bots")]
    pub allow: Vec<String>,
    /// Extra user-agent fragments treated as bots.
    #[serde(default)]
    pub block: Vec<String>,
    /// How long a solved challenge is good for.
    #[serde(default = "challenge_ttl")]
    pub challenge_ttl: Span,
    /// Environment variable holding the challenge cookie's signing key
    /// (so several instances accept each other's cookies); a random key
    /// per process when unset.
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            mode: BotMode::default(),
            allow: good_bots(),
            block: Vec::new(),
            challenge_ttl: challenge_ttl(),
            secret_env: None,
        }
    }
}

/// `bots.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotMode {
    /// Bots are treated like browsers.
    #[default]
    Allow,
    /// Bots get a page that needs JavaScript to pass.
    Challenge,
    /// Bots are refused.
    Block,
}

/// `penalty:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PenaltyConfig {
    /// Refusals from one client...
    pub after: u32,
    /// ...within this window...
    pub within: Span,
    /// ...rate-limit it (429 with `Retry-After`) for this long.
    pub ban: Span,
}

/// `audit:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Decisions kept in memory for `GET /__bext/waf/events`.
    #[serde(default = "capacity")]
    pub capacity: usize,
    /// Environment variable holding the admin token the events endpoint
    /// asks for (`Authorization: Bearer <token>`); without it the
    /// endpoint is off.
    #[serde(default = "token_env")]
    pub token_env: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            capacity: capacity(),
            token_env: token_env(),
        }
    }
}

fn deny_status() -> u16 {
    403
}
fn body_limit() -> ByteSize {
    ByteSize(64 * 1024)
}
fn refresh() -> Span {
    Span(std::time::Duration::from_secs(30))
}
fn challenge_ttl() -> Span {
    Span(std::time::Duration::from_secs(3600))
}
fn capacity() -> usize {
    1000
}
fn token_env() -> String {
    "BEXT_ADMIN_TOKEN".into()
}

/// Crawlers and link previewers a site usually wants.
fn good_bots() -> Vec<String> {
    [
        "googlebot",
        "bingbot",
        "duckduckbot",
        "applebot",
        "yandexbot",
        "baiduspider",
        "slurp",
        "facebookexternalhit",
        "twitterbot",
        "linkedinbot",
        "slackbot",
        "discordbot",
        "telegrambot",
        "whatsapp",
        "uptimerobot",
    ]
    .map(String::from)
    .to_vec()
}
