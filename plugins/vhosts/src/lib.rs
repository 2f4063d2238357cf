//! The `vhosts` plugin: routes a request to an app by its Host.
//!
//! Runs in the `fetch` stage. Its matcher merges the manifest's `hosts`
//! map with every app's `domains` from the platform file; on a match it
//! sets the request's app, tenant (wildcard and regex hosts, and apps'
//! `tenant_domains`: tenants' own domains, each naming its tenant) and
//! base `/`.
//! The kernel then sends `x-base` and `x-vhost-tenant` to the app, after
//! removing any client-sent copies. See `manifests/vhosts.yaml`.

pub mod config;
pub mod matcher;

use bext_plugin_abi::{BuiltinPlugin, Ctx, Flow, Hook, Hooks, Plugin, PluginError, Request, Setup};

use crate::config::Config;
use crate::matcher::{Matcher, MatcherBuilder};

/// The plugin instance: one compiled matcher.
#[derive(Debug)]
pub struct Vhosts {
    matcher: Matcher,
}

impl Vhosts {
    /// The compiled matcher (for benchmarks and diagnostics).
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }
}

impl BuiltinPlugin for Vhosts {
    const NAME: &'static str = "vhosts";
    const PRIORITY: i32 = 10;
    const SUMMARY: &'static str = "Host header -> app: exact, wildcard tenants, regex, pathPrefix";
    // Rebuilt when the app table changes: its matcher is built from the apps' domains.
    const READS_APP_TABLE: bool = true;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/vhosts.yaml");
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        let mut b = MatcherBuilder::default();
        for (pattern, entry) in &config.hosts {
            // An entry naming an app that does not exist is not refused
            // here: the kernel answers it with 502, and the app may be
            // deployed later; one that cannot name an app is.
            config::check_app(&entry.app)
                .map_err(|reason| PluginError::config(format!("hosts.{pattern}.app"), reason))?;
            b.add(
                pattern,
                config::served_app(&entry.app),
                entry.path_prefix.as_deref(),
                entry.bypass,
            )
            .map_err(|e| PluginError::config(format!("hosts.{pattern}"), e.reason))?;
        }
        if config.app_domains {
            for app in setup.apps {
                for domain in &app.domains {
                    b.add(domain, &app.id, None, false).map_err(|e| {
                        PluginError::config(
                            String::new(),
                            format!("domain `{domain}` of app `{}`: {}", app.id, e.reason),
                        )
                    })?;
                }
            }
        }
        if config.app_domains {
            // Last: a tenant's own domain never takes a host the manifest or
            // the platform file routes; such a one is left out, not fatal
            // (it was recorded at run time, and must not stop a reload).
            for app in setup.apps {
                for (domain, tenant) in &app.tenant_domains {
                    if let Err(e) = b.add_tenant_domain(domain, &app.id, tenant) {
                        tracing::warn!(target: "bext::vhosts", app = %app.id, domain, reason = %e.reason, "tenant domain not routed");
                    }
                }
            }
        }
        let matcher = b.build().map_err(|e| PluginError::config("hosts", e.to_string()))?;
        Ok(Vhosts { matcher })
    }
}

impl Plugin for Vhosts {
    fn hooks(&self) -> Hooks {
        Hooks::FETCH
    }

    /// Routes by the host and path; never adds a request header (the
    /// kernel writes the tenant's).
    fn adds_request_headers(&self) -> bool {
        false
    }

    fn fetch<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        if cx.app().is_none()
            && let Some(host) = cx.host.as_deref()
            && let Some(m) = self.matcher.find(host, req.uri().path())
        {
            // A tenant's own domain shares its route's tenant; a captured
            // one is copied out of the host.
            let tenant = m.route.tenant.clone().or_else(|| m.tenant.map(Into::into));
            let (app, bypass) = (m.route.app.clone(), m.route.bypass);
            // Cannot fail: the app was checked to be unset above.
            let _ = cx.set_app(app);
            if let Some(t) = tenant {
                let _ = cx.set_tenant(t);
            }
            cx.base = Some("/".into());
            cx.bypass = bypass;
        }
        Hook::Ready(Ok(Flow::Continue))
    }
}

bext_plugin_abi::register!(Vhosts);
