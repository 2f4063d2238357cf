//! The `waf` plugin: stands between the internet and the apps.
//!
//! For every request, in order: the client address (behind trusted
//! proxies, `ip.rs`), the IP allow and deny lists (`lists.rs`), the
//! penalty box for clients that keep getting refused, bot handling
//! (`screen.rs`), then inspection of the path, arguments, cookies,
//! headers and the first `body_limit` bytes of the body against the
//! rules (`guard.rs`, `inspect.rs`, `rules.rs`). Every decision goes to
//! the audit log (`GET /__bext/waf/events`, `admin.rs`) and the log. See
//! `manifests/waf.yaml` and `docs/waf.md`.

mod admin;
pub mod audit;
mod body;
pub mod bots;
mod clean;
mod command_line;
pub mod config;
pub mod crs;
mod detect;
mod glob_path;
mod guard;
mod hidden;
pub mod inspect;
pub mod ip;
mod lists;
mod markdown;
pub mod normalize;
mod penalty;
mod php_call;
mod respond;
pub mod rules;
mod screen;
pub mod seclang;
mod shell;
mod shell_grammar;
mod sql;
mod ssrf_host;
mod switches;
mod walk;

use bext_plugin_abi::admin::AdminRoutes;
use bext_plugin_abi::{BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Request, Response, Setup};

use crate::admin::Admin;
use crate::audit::{AUDIT_KEY, AuditLog};
use crate::config::Config;
use crate::guard::Guard;
use crate::ip::Proxies;
use crate::lists::IpLists;

/// The plugin instance.
pub struct WafPlugin {
    name: String,
    /// Whose word on the client's address is believed.
    proxies: Proxies,
    /// The IP lists and their files.
    lists: IpLists,
    /// What `on_request` does.
    guard: Guard,
    /// The audit log's endpoint.
    admin: Admin,
}

impl BuiltinPlugin for WafPlugin {
    const NAME: &'static str = "waf";
    const PRIORITY: i32 = 50;
    const SUMMARY: &'static str = "web application firewall: IP lists, attack signatures, bots, audit log";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/waf.yaml");
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        let proxies = Proxies::new(&config.trusted_proxies, config.client_ip_header)
            .map_err(|(i, e)| PluginError::config(format!("trusted_proxies[{i}]"), e))?;
        let lists = IpLists::new(&config.ip, setup.data_dir)?;
        let guard = Guard::new(&config, setup.plugin, lists.current())?;
        let admin = Admin::new(setup.base, &config.audit)?;
        Ok(WafPlugin {
            name: setup.plugin.to_owned(),
            proxies,
            lists,
            guard,
            admin,
        })
    }
}

impl WafPlugin {
    /// The audit log this instance records to (what `{base}/events`
    /// lists): the one every instance shares, after `on_init`.
    pub fn audit(&self) -> &AuditLog {
        self.guard.audit()
    }
}

impl Plugin for WafPlugin {
    fn hooks(&self) -> Hooks {
        let hooks = Hooks::INIT | Hooks::REQUEST | Hooks::ADMIN;
        // Without trusted proxies the client is the peer, which the
        // kernel already put in `cx.client_ip` (canonical): no fetch hook
        // to run on every request for nothing.
        if self.proxies.is_empty() {
            hooks
        } else {
            hooks | Hooks::FETCH
        }
    }

    /// Reads neither `x-base` nor `x-vhost-tenant` (the WAF inspects what
    /// the client sent; the gateway keys on `cx`).
    fn reads_kernel_headers(&self) -> bool {
        false
    }

    /// Reads request headers, never adds one (a body read is a body).
    fn adds_request_headers(&self) -> bool {
        false
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let audit = host.shared(AUDIT_KEY, AuditLog::default);
        self.admin.init(&audit);
        let started = self
            .guard
            .init(audit, host)
            .and_then(|()| self.lists.start(host, &self.name));
        Hook::Ready(started.map_err(|e| PluginError::Init(e.into())))
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        // The client behind trusted proxies, before any app is known: the
        // kernel's admin routes (and their throttle of wrong tokens),
        // which come after the fetch stage, see it too, not the proxy.
        cx.client_ip = self.proxies.client(cx.peer.ip(), req.headers());
        Hook::Ready(Ok(Flow::Continue))
    }

    fn admin_routes(&self) -> Option<&AdminRoutes> {
        Some(self.admin.routes())
    }

    fn admin<'a>(&'a self, req: &'a mut Request, _cx: &'a Ctx) -> Hook<'a, Result<Response, PluginError>> {
        Hook::Ready(Ok(self.admin.events(req, self.guard.audit())))
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        let ip = self.proxies.client(cx.peer.ip(), req.headers());
        cx.client_ip = ip;
        self.guard.on_request(req, cx, ip)
    }
}

bext_plugin_abi::register!(WafPlugin);
