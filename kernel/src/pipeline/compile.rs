//! Building a [`Pipeline`]: pure apart from opening app directories, so
//! `bext check` runs the very same code.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bext_plugin_abi::{AppInfo, Hooks, Plugin, PluginError, Setup};

use super::{AdminMount, AppEntry, Chain, InstanceKey, Pipeline, Slot};
use crate::apps::{App, Runtime, header_map};
use crate::config::diag::{Diagnostic, Diagnostics};
use crate::config::manifest::{self, Entry, Manifest};
use crate::config::platform::{AppConfig, AppPlugin, Platform};

/// The manifests a platform uses: its `manifests` directory, or every
/// built-in plugin's default manifest.
pub fn load_manifests(platform: &Platform) -> Result<Vec<Manifest>, Diagnostics> {
    let (manifests, errors) = load_manifests_lenient(platform);
    errors.into_result(manifests)
}

/// The manifests that load, and the errors of those that do not.
/// Each app's `hooks` are passed on to the deploy manifest
/// ([`super::shortcuts`]).
pub fn load_manifests_lenient(platform: &Platform) -> (Vec<Manifest>, Diagnostics) {
    let (mut manifests, errors) = match &platform.settings.manifests {
        Some(dir) => manifest::load_dir_lenient(dir),
        None => (manifest::defaults(), Diagnostics::default()),
    };
    super::shortcuts::pass_on(platform, &mut manifests);
    (manifests, errors)
}

/// What a configuration turns off that its author may not have meant to,
/// logged at every load and printed by `bext check`: host routing, when
/// the vhosts manifest says `enabled: false` and no app turns it on; and
/// plain HTTP on port 443 ([`plain_http_on_443`]).
pub fn warnings(platform: &Platform, manifests: &[Manifest]) -> Vec<Diagnostic> {
    plain_http_on_443(platform)
        .into_iter()
        .chain(unread_manifests(platform))
        .chain(vhost_warnings(platform, manifests))
        .collect()
}

/// A `manifests/` folder with manifests in it next to a platform file
/// that names no `[platform] manifests`: bext reads only the folder the
/// file names (docs/configuration.md), so a Buntime user's folder would
/// otherwise be ignored without a word.
fn unread_manifests(platform: &Platform) -> Option<Diagnostic> {
    if platform.settings.manifests.is_some() {
        return None;
    }
    let file = platform.file.as_ref()?;
    if file.file_name().is_some_and(|n| n == "bext.config.toml") {
        return None;
    }
    let folder = file.parent()?.join("manifests");
    if !holds_yaml(&folder, 3) {
        return None;
    }
    Some(Diagnostic::new(
        file,
        "platform.manifests",
        format!(
            "{} holds plugin manifests that are not read (unset, the built-in defaults are used): add `manifests = \"manifests\"` to [platform] to use them",
            folder.display()
        ),
    ))
}

/// Whether `dir`, or a folder under it up to `depth` levels down, holds
/// a `.yaml`/`.yml` file.
fn holds_yaml(dir: &Path, depth: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        match path.is_dir() {
            true => depth > 0 && holds_yaml(&path, depth - 1),
            false => path.extension().is_some_and(|x| x == "yaml" || x == "yml"),
        }
    })
}

/// `listen` on port 443: `listen` is always plain HTTP, so browsers and
/// clients that speak TLS to 443 get garbage back, and nothing says why.
/// HTTPS is served on `listen_tls`.
fn plain_http_on_443(platform: &Platform) -> Option<Diagnostic> {
    let listen = &platform.settings.listen;
    let port = listen.parse::<std::net::SocketAddr>().ok()?.port();
    if port != 443 {
        return None;
    }
    let (file, field) = match &platform.file {
        Some(f) if f.file_name().is_some_and(|n| n == "bext.config.toml") => (f.clone(), "server.listen"),
        Some(f) => (f.clone(), "platform.listen"),
        None => (std::path::PathBuf::from("bext run"), "--listen"),
    };
    let tls = if platform.settings.listen_tls.is_some() {
        "HTTPS is served on `listen_tls`"
    } else {
        "no TLS is configured; HTTPS is served on `[platform] listen_tls = \"0.0.0.0:443\"` with `tls_cert`/`tls_key` or `[platform.acme]`"
    };
    let reason = format!(
        "`{listen}` serves plain HTTP on port 443, where clients speak TLS: {tls}; plain HTTP usually listens on port 80 (`listen = \"0.0.0.0:80\"`)"
    );
    Some(Diagnostic::new(&file, field, reason).at(Platform::position_in(&file, field)))
}

/// Host routing turned off by the vhosts manifest while no app turns it on.
fn vhost_warnings(platform: &Platform, manifests: &[Manifest]) -> Vec<Diagnostic> {
    let vhosts_on_for_an_app = platform
        .apps
        .values()
        .any(|a| a.plugins.get(VHOSTS).and_then(|p| p.enabled) == Some(true));
    manifests
        .iter()
        .filter(|m| m.name == VHOSTS && !m.enabled && !vhosts_on_for_an_app)
        .map(|m| {
            Diagnostic::new(
                &m.file,
                "enabled",
                "vhosts is off, so host routing is off: apps' `domains` and the `hosts` map route nothing; only `/{app}/` paths and `default_app` do",
            )
            .at(m.position("enabled"))
        })
        .chain(manifests.iter().flat_map(|m| m.notes.iter().cloned()))
        .collect()
}

/// The plugin that routes requests by Host.
const VHOSTS: &str = "vhosts";

/// Instances built by a compile (not taken from the previous pipeline),
/// which still need `on_init`: name, instance, and whether it reads the
/// app table ([`reads_app_table`]).
pub(crate) type Fresh = Vec<(Arc<str>, Arc<dyn Plugin>, bool)>;

/// Whether a manifest's plugin reads the app table
/// (`BuiltinPlugin::READS_APP_TABLE`); plugins loaded from files may, so
/// they do.
pub(crate) fn reads_app_table(m: &Manifest) -> bool {
    match m.entry {
        Entry::Builtin => crate::loader::find(&m.name).is_none_or(|r| r.reads_app_table),
        Entry::Js(_) | Entry::Dylib(_) => true,
    }
}

/// Where a plugin's settings for one chain come from.
struct Use<'m> {
    manifest: &'m Manifest,
    enabled: bool,
    priority: i32,
    /// The manifest's own unless the platform file overrides it for an
    /// app: borrowed, so that an app without overrides costs no copy
    /// (the deploy plugin's config lists every app: copying it for each
    /// app made a compile quadratic in the number of apps).
    config: Cow<'m, serde_json::Value>,
    /// `Some(app)` when the platform file overrides the config for `app`.
    override_of: Option<&'m str>,
}

/// When JS apps' modules are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsChecks {
    /// Before the compile returns: a module that does not load is a
    /// configuration error (`bext check`, reloads).
    Strict,
    /// In the background once the server listens, or by an app's first
    /// request (the first start of `bext serve`): a module that does not
    /// load makes its app answer 503, the others serve.
    Deferred,
}

/// Compiles a platform and its manifests. Instances and runtimes whose
/// configuration did not change are taken from `previous`, so their state
/// survives. Returns the pipeline and the instances that still need
/// `on_init`. `fleet` is edge mode's Redis (JS apps keep KV there).
pub fn compile(
    platform: Platform,
    manifests: Vec<Manifest>,
    previous: Option<&Pipeline>,
    fleet: Option<Arc<bext_edge::Edge>>,
    js_checks: JsChecks,
) -> Result<(Pipeline, Fresh), Diagnostics> {
    let mut errors = Diagnostics::default();
    let apps_info = platform.app_infos();
    let platform_file = platform.file.clone().unwrap_or_else(|| "<bext run>".into());
    let mut builder = Builder {
        previous,
        instances: HashMap::new(),
        unchanged: HashMap::new(),
        fresh: Vec::new(),
        apps: &apps_info,
        apps_key: {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            apps_info.hash(&mut h);
            h.finish()
        },
        data_dir: &platform.data_dir,
        fleet_key: super::fleet::instance_key(platform.redis.as_ref()),
        platform_file: &platform_file,
        platform: &platform,
    };

    let global_uses: Vec<Use<'_>> = manifests.iter().map(Use::of).collect();
    let global = builder.chain(&global_uses, &mut errors);
    // The fetch stage and the admin routes: plugins that serve requests
    // before any app is known.
    let mut fetch_and_admin: Vec<Slot> = global.iter().filter(|s| serves_before_apps(s)).cloned().collect();
    let global_chain = Arc::new(Chain::new(global.iter().filter(|s| !only_fetch(s)).cloned().collect()));

    let files = previous.map_or_else(Default::default, |p| p.files.clone());
    let shared = previous.map_or_else(Default::default, |p| p.shared.clone());
    let metrics: Arc<crate::metrics::Metrics> = previous.map_or_else(Default::default, |p| p.metrics.clone());
    let metering = &platform.settings.metrics;
    let mut apps = rustc_hash::FxHashMap::default();
    // The chain of every app without plugin settings of its own: built
    // once and shared (an app then costs no chain of its own).
    let mut plain_chain: Option<(Arc<Chain>, Option<bext_plugin_isr::store::Limits>)> = None;
    for (id, cfg) in &platform.apps {
        let overrides = app_plugins(cfg);
        let (chain, isr) = match &plain_chain {
            Some(built) if overrides.is_empty() => built.clone(),
            _ => {
                let built = app_chain(
                    &mut builder,
                    &manifests,
                    &overrides,
                    id,
                    &mut fetch_and_admin,
                    &mut errors,
                );
                if overrides.is_empty() {
                    plain_chain = Some(built.clone());
                }
                built
            }
        };
        let sources = crate::apps::bindings::Sources {
            data_dir: &platform.data_dir,
            fleet: fleet.as_ref(),
            shared: &shared,
            isr,
            defer_checks: js_checks == JsChecks::Deferred,
        };
        let reused = (previous.and_then(|p| reuse_runtime(p, &platform, id)))
            .or_else(|| pinned_to_its_app(&apps, &platform, id));
        let runtime = match reused {
            Some(r) => r,
            None => match Runtime::build(id, cfg, &files, sources) {
                Ok(r) => Arc::new(r),
                Err(reason) => {
                    errors.push(Diagnostic::new(&platform_file, format!("apps.{id}"), reason));
                    continue;
                }
            },
        };
        let counters = super::LazyCounters::new(metering.enabled);
        let id: Arc<str> = id.as_str().into();
        apps.insert(
            id.clone(),
            AppEntry {
                app: App {
                    id,
                    runtime,
                    headers: header_map(&cfg.headers),
                    domains: cfg.domains.clone(),
                },
                chain,
                counters,
            },
        );
    }
    let admin = admin_mounts(&fetch_and_admin, &platform.settings.admin_token_env);
    let fetch: Vec<Slot> = fetch_and_admin
        .into_iter()
        .filter(|s| s.hooks.has(Hooks::FETCH))
        .collect();
    let fresh = std::mem::take(&mut builder.fresh);
    let instances = std::mem::take(&mut builder.instances);
    let mut owned_headers: Vec<http::HeaderName> = instances
        .values()
        .flat_map(|p| p.owned_request_headers().iter().cloned())
        .filter(|h| !crate::apps::BEXT_HEADERS.contains(&h.as_str()))
        .collect();
    owned_headers.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    owned_headers.dedup();
    let metered_tenants = metering
        .tenants
        .iter()
        .map(|t| (t.as_str().into(), metrics.tenant(t)))
        .collect();
    errors.into_result((
        Pipeline {
            generation: previous.map_or(1, |p| p.generation + 1),
            platform,
            fetch: fetch.into_boxed_slice(),
            admin,
            global: global_chain,
            apps,
            instances,
            owned_headers: owned_headers.into_boxed_slice(),
            fingerprint: 0,
            tls: Default::default(),
            files,
            shared,
            fleet: fleet.clone(),
            metered_tenants,
            metrics,
            // Opened by `reload::build` (not by `bext check`).
            access_log: crate::access_log::Sink::Off,
            otel: None,
        },
        fresh,
    ))
}

impl<'m> Use<'m> {
    fn of(m: &'m Manifest) -> Self {
        let default_priority = crate::loader::find(&m.name).map_or(600, |r| r.default_priority);
        Use {
            manifest: m,
            enabled: m.enabled,
            priority: m.priority.unwrap_or(default_priority),
            config: Cow::Borrowed(&m.config),
            override_of: None,
        }
    }
}

/// The admin routes of `slots`, longest base first, each with the token
/// that guards it (the plugin's own environment variable, else the
/// platform's `admin_token_env`), read once per build. A path two
/// plugins declare goes to the longer base, then to the first by name.
fn admin_mounts(slots: &[Slot], platform_token_env: &str) -> Box<[AdminMount]> {
    let mut mounts: Vec<AdminMount> = slots
        .iter()
        .filter(|s| s.hooks.has(Hooks::ADMIN))
        .filter_map(|s| {
            let routes = s.plugin.admin_routes()?;
            let env = routes.token_env_name().unwrap_or(platform_token_env);
            Some(AdminMount {
                routes: routes.clone(),
                token: std::env::var(env).ok().filter(|t| !t.is_empty()),
                slot: s.clone(),
            })
        })
        .collect();
    mounts.sort_by(|a, b| {
        let len = |m: &AdminMount| m.routes.base().len();
        len(b).cmp(&len(a)).then_with(|| a.slot.name.cmp(&b.slot.name))
    });
    mounts.into_boxed_slice()
}

/// An app's plugin chain: the manifests' plugins with the app's own
/// settings over them, and the limits of its isr cache. A plugin on only
/// for some apps still serves its own endpoints (the fetch stage and the
/// admin routes come before any app is known): the first such instance
/// of each plugin joins `fetch_and_admin`.
fn app_chain<'m>(
    builder: &mut Builder<'_>,
    manifests: &'m [Manifest],
    overrides: &BTreeMap<String, AppPlugin>,
    id: &'m str,
    fetch_and_admin: &mut Vec<Slot>,
    errors: &mut Diagnostics,
) -> (Arc<Chain>, Option<bext_plugin_isr::store::Limits>) {
    let mut uses: Vec<Use<'m>> = manifests.iter().map(Use::of).collect();
    for (name, over) in overrides {
        // Every built-in plugin has a manifest (its default one when the
        // manifests folder does not name it).
        let Some(idx) = uses.iter().position(|u| &u.manifest.name == name) else {
            errors.push(Diagnostic::new(
                builder.platform_file,
                format!("apps.{id}.plugins.{name}"),
                format!("unknown plugin `{name}`"),
            ));
            continue;
        };
        let u = &mut uses[idx];
        if let Some(e) = over.enabled {
            u.enabled = e;
        }
        if let Some(p) = over.priority {
            u.priority = p;
        }
        if let Some(c) = &over.config {
            merge(u.config.to_mut(), c);
            u.override_of = Some(id);
        }
    }
    let slots = builder.chain(&uses, errors);
    for s in slots.iter().filter(|s| serves_before_apps(s)) {
        if !fetch_and_admin.iter().any(|f| f.name == s.name) {
            fetch_and_admin.push(s.clone());
        }
    }
    let chain = Arc::new(Chain::new(slots.into_iter().filter(|s| !only_fetch(s)).collect()));
    (chain, isr_limits(&uses))
}

/// Whether a plugin serves requests before any app is known: in the
/// fetch stage or on admin routes.
fn serves_before_apps(s: &Slot) -> bool {
    s.hooks.has(Hooks::FETCH) || s.hooks.has(Hooks::ADMIN)
}

fn only_fetch(s: &Slot) -> bool {
    !s.hooks.has(Hooks::REQUEST)
        && !s.hooks.has(Hooks::RESPONSE)
        && !s.hooks.has(Hooks::RESPONSE_WHEN_ASKED)
        && !s.hooks.has(Hooks::COMPLETE)
}

fn reuse_runtime(previous: &Pipeline, platform: &Platform, id: &str) -> Option<Arc<Runtime>> {
    let before = previous.platform.apps.get(id)?;
    let now = platform.apps.get(id)?;
    let runtime = &previous.apps.get(id)?.app.runtime;
    // KV moves between SQLite and Redis with `[redis]`, and secrets are
    // read again from the environment at each load.
    let same_bindings = (now.kv.is_empty() || previous.platform.redis == platform.redis) && now.secrets.is_empty();
    (before == now && same_bindings && runtime.is_current()).then(|| runtime.clone())
}

/// A version pin (`skedly@1.2`, from a Buntime hosts entry) that resolves
/// to the version its app serves now: the app's runtime (its isolates,
/// its process), not a second one running the same files. The app sorts
/// before its pins, so it is built by then.
fn pinned_to_its_app(
    apps: &rustc_hash::FxHashMap<Arc<str>, AppEntry>,
    platform: &Platform,
    id: &str,
) -> Option<Arc<Runtime>> {
    let (app, _) = id.split_once('@')?;
    let (pin, current) = (platform.apps.get(id)?, platform.apps.get(app)?);
    let mut unrouted = current.clone();
    unrouted.domains.clear();
    unrouted.tenant_domains.clear();
    (*pin == unrouted).then(|| apps.get(app).map(|e| e.app.runtime.clone()))?
}

/// The limits of the isr plugin's cache when it is on in `uses` (an app's
/// plugins): a JS app keeps `caches.default` in that cache then. A config
/// that does not decode is reported by the plugin itself.
fn isr_limits(uses: &[Use<'_>]) -> Option<bext_plugin_isr::store::Limits> {
    let u = uses.iter().find(|u| u.enabled && u.manifest.name == "isr")?;
    let c: bext_plugin_isr::config::Config = serde_json::from_value(u.config.clone().into_owned()).ok()?;
    Some(bext_plugin_isr::store::Limits {
        entries: c.max_entries,
        bytes: c.max_bytes.0,
    })
}

/// Merges `over` into `base`: objects key by key, anything else replaced.
/// An app's plugin settings: `[apps.<id>.plugins]`, plus what platform
/// keys that belong to a plugin imply: `rate_limit` turns the gateway on
/// with an app limit, `auth` turns authn on with those settings. Explicit
/// `plugins.<name>` settings still apply over them.
fn app_plugins(cfg: &AppConfig) -> BTreeMap<String, AppPlugin> {
    let mut plugins = cfg.plugins.clone();
    let mut imply = |plugin: &str, implied: serde_json::Value| {
        let over = plugins.entry(plugin.to_owned()).or_default();
        over.enabled.get_or_insert(true);
        match &mut over.config {
            Some(c) => {
                let mut merged = implied;
                merge(&mut merged, c);
                *c = merged;
            }
            None => over.config = Some(implied),
        }
    };
    if let Some(limit) = &cfg.rate_limit {
        imply("gateway", serde_json::json!({ "app_limit": limit }));
    }
    if let Some(auth) = &cfg.auth {
        imply("authn", (**auth).clone());
    }
    if let Some(cache) = &cfg.cache {
        imply("isr", (**cache).clone());
    }
    plugins
}

/// The app key a plugin config error at `path` comes from when
/// [`app_plugins`] made that config from it: `apps.<id>.auth.<path>` for
/// authn, `cache` for isr, `rate_limit` for the gateway's `app_limit`;
/// `None` when `[apps.<id>.plugins.<plugin>] config` sets that field
/// itself (it wins), or the plugin has no such key.
fn written_as(platform: &Platform, app: &str, plugin: &str, path: &str) -> Option<String> {
    let cfg = platform.apps.get(app)?;
    let first = path.split(['.', '[']).next().unwrap_or(path);
    let explicit = (cfg.plugins.get(plugin))
        .and_then(|p| p.config.as_ref())
        .is_some_and(|c| c.get(first).is_some());
    if explicit {
        return None;
    }
    let under = |key: &str, rest: &str| match rest {
        "" => format!("apps.{app}.{key}"),
        r if r.starts_with('[') => format!("apps.{app}.{key}{r}"),
        r => format!("apps.{app}.{key}.{r}"),
    };
    match plugin {
        "authn" if cfg.auth.is_some() => Some(under("auth", path)),
        "isr" if cfg.cache.is_some() => Some(under("cache", path)),
        "gateway" if cfg.rate_limit.is_some() => {
            let rest = path.strip_prefix("app_limit")?;
            Some(under("rate_limit", rest.strip_prefix('.').unwrap_or(rest)))
        }
        _ => None,
    }
}

fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// An instance's slots in a chain: its own, and its late place if it has
/// one.
fn slots_of(u: &Use<'_>, plugin: Arc<dyn Plugin>) -> impl Iterator<Item = Slot> {
    let late = plugin.late_priority().map(|late| {
        if late < u.priority {
            tracing::warn!(
                plugin = %u.manifest.name,
                priority = u.priority,
                late_priority = late,
                "the plugin's late place is before its own priority; it runs right after the plugin instead"
            );
        }
        LatePass::slot(&u.manifest.name, &plugin, late.max(u.priority), u)
    });
    let own = Slot {
        name: u.manifest.name.as_str().into(),
        hooks: plugin.hooks(),
        plugin,
        priority: u.priority,
        on_error: u.manifest.on_error,
    };
    std::iter::once(own).chain(late)
}

/// A plugin's late place in a chain ([`Plugin::late_priority`]): the same
/// instance, seen by the chain as one more plugin with only a request
/// hook, which calls [`Plugin::on_late_request`]. The onion order needs
/// nothing more: a late answer goes back through every plugin before it,
/// the instance's own `on_response` included.
struct LatePass(Arc<dyn Plugin>);

impl LatePass {
    /// The slot at `priority` (never before the plugin's own: a late place
    /// a manifest moved the plugin past runs right after it, the name
    /// breaking the tie), failing as the plugin's manifest says.
    fn slot(name: &str, plugin: &Arc<dyn Plugin>, priority: i32, u: &Use<'_>) -> Slot {
        Slot {
            name: format!("{name}:late").into(),
            plugin: Arc::new(LatePass(plugin.clone())),
            hooks: Hooks::REQUEST,
            priority,
            on_error: u.manifest.on_error,
        }
    }
}

impl Plugin for LatePass {
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn adds_request_headers(&self) -> bool {
        self.0.adds_request_headers()
    }

    fn reads_kernel_headers(&self) -> bool {
        self.0.reads_kernel_headers()
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut bext_plugin_abi::Request,
        cx: &'a mut bext_plugin_abi::Ctx,
    ) -> bext_plugin_abi::Hook<'a, Result<bext_plugin_abi::Flow, PluginError>> {
        self.0.on_late_request(req, cx)
    }
}

struct Builder<'a> {
    previous: Option<&'a Pipeline>,
    instances: HashMap<InstanceKey, Arc<dyn Plugin>>,
    /// Instances with their manifest's own config, by the manifest's
    /// address (the manifests outlive the build).
    unchanged: HashMap<usize, Arc<dyn Plugin>>,
    fresh: Fresh,
    apps: &'a [AppInfo],
    /// Hash of the app table, part of the key of every instance that
    /// reads it.
    apps_key: u64,
    data_dir: &'a Path,
    /// Which fleet store instances get ([`super::fleet::instance_key`]).
    fleet_key: String,
    platform_file: &'a Path,
    platform: &'a Platform,
}

impl Builder<'_> {
    /// The enabled plugins of `uses` as sorted slots.
    fn chain(&mut self, uses: &[Use<'_>], errors: &mut Diagnostics) -> Vec<Slot> {
        let mut slots = Vec::new();
        for u in uses.iter().filter(|u| u.enabled) {
            match self.instance(u) {
                Ok(plugin) => slots.extend(slots_of(u, plugin)),
                Err(d) if !errors.0.contains(&d) => errors.push(d),
                Err(_) => {}
            }
        }
        slots.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.name.cmp(&b.name)));
        slots
    }

    fn instance(&mut self, u: &Use<'_>) -> Result<Arc<dyn Plugin>, Diagnostic> {
        let m = u.manifest;
        // A manifest's own config: the same instance for every app, found
        // without formatting the key (its config can be as long as the
        // app table).
        let unchanged = matches!(u.config, Cow::Borrowed(_)).then_some(std::ptr::from_ref(m) as usize);
        if let Some(p) = unchanged.and_then(|m| self.unchanged.get(&m)) {
            return Ok(p.clone());
        }
        let plugin = self.instance_by_key(u)?;
        if let Some(m) = unchanged {
            self.unchanged.insert(m, plugin.clone());
        }
        Ok(plugin)
    }

    /// The instance for `u`'s settings: this build's, the previous
    /// pipeline's, or a new one.
    fn instance_by_key(&mut self, u: &Use<'_>) -> Result<Arc<dyn Plugin>, Diagnostic> {
        let m = u.manifest;
        // Everything a factory sees: name, base, config and, for plugins
        // that read it, the app table (vhosts builds its matcher from the
        // apps' domains; the others keep their instance, and its state,
        // when an app comes or goes); for plugins loaded from files, the
        // file's size and time and the JS limits.
        let reads_apps = reads_app_table(m);
        let key = format!(
            "{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}",
            m.name,
            m.base.as_deref().unwrap_or(""),
            u.config,
            if reads_apps { self.apps_key } else { 0 },
            m.entry.file().map(|f| (f, crate::apps::js::stamp(f))),
            m.limits,
            self.fleet_key,
        );
        if let Some(p) = self.instances.get(&key) {
            return Ok(p.clone());
        }
        if let Some(p) = self.previous.and_then(|p| p.instances.get(&key)) {
            self.instances.insert(key, p.clone());
            return Ok(p.clone());
        }
        let setup = Setup {
            plugin: &m.name,
            base: m.base.as_deref(),
            // A plugin that says it does not read the table sees none, so
            // it cannot go stale.
            apps: if reads_apps { self.apps } else { &[] },
            data_dir: self.data_dir,
        };
        let plugin = match &m.entry {
            Entry::Builtin => {
                let reg = crate::loader::find(&m.name)
                    .ok_or_else(|| Diagnostic::new(&m.file, "name", format!("unknown plugin `{}`", m.name)))?;
                (reg.factory)(u.config.clone().into_owned(), &setup).map_err(|e| self.locate(u, e))?
            }
            Entry::Js(path) => crate::loader::js::load(m, path, &u.config)
                .map_err(|reason| Diagnostic::new(&m.file, "entry", reason))?,
            Entry::Dylib(path) => crate::loader::dylib::load(path, &u.config, &setup).map_err(|e| match e {
                crate::loader::dylib::LoadError::Plugin(e) => self.locate(u, e),
                other => Diagnostic::new(&m.file, "entry", other.to_string()),
            })?,
        };
        self.instances.insert(key, plugin.clone());
        self.fresh.push((m.name.as_str().into(), plugin.clone(), reads_apps));
        Ok(plugin)
    }

    /// Points a plugin's config error at its file, line and field.
    fn locate(&self, u: &Use<'_>, e: PluginError) -> Diagnostic {
        let (path, reason) = match e {
            PluginError::Config { path, reason } => (path, reason),
            other => (String::new(), other.to_string()),
        };
        let join = |prefix: &str| {
            if path.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{path}")
            }
        };
        let in_platform_file = |field: String| {
            let at = Platform::position_in(self.platform_file, &field);
            Diagnostic::new(self.platform_file, field, reason.clone()).at(at)
        };
        if let Some(field) = super::shortcuts::origin(self.platform, &u.manifest.name, &path) {
            return in_platform_file(field);
        }
        match u.override_of {
            Some(app) => in_platform_file(
                written_as(self.platform, app, &u.manifest.name, &path)
                    .unwrap_or_else(|| join(&format!("apps.{app}.plugins.{}.config", u.manifest.name))),
            ),
            None => Diagnostic::new(&u.manifest.file, u.manifest.config_field(&path), reason)
                .at(u.manifest.config_position(&path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin with a late place that records which pass saw a request.
    struct TwoPass(Option<i32>);

    impl Plugin for TwoPass {
        fn hooks(&self) -> Hooks {
            Hooks::REQUEST | Hooks::RESPONSE
        }
        fn late_priority(&self) -> Option<i32> {
            self.0
        }
    }

    /// The slots of one instance at `priority` with late place `late`,
    /// sorted as a chain sorts them.
    fn uses_slot(priority: i32, late: Option<i32>) -> Vec<(String, i32, bool)> {
        let m: Manifest = manifest::defaults().into_iter().next().unwrap();
        let u = Use {
            manifest: &m,
            enabled: true,
            priority,
            config: Cow::Owned(serde_json::Value::Null),
            override_of: None,
        };
        let mut slots: Vec<Slot> = slots_of(&u, Arc::new(TwoPass(late))).collect();
        slots.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.name.cmp(&b.name)));
        slots
            .iter()
            .map(|s| (s.name.to_string(), s.priority, s.hooks.has(Hooks::RESPONSE)))
            .collect()
    }

    #[test]
    fn a_late_place_is_a_request_only_slot_never_before_its_plugin() {
        assert_eq!(uses_slot(100, None).len(), 1, "no late place, no slot");
        let name = manifest::defaults().into_iter().next().unwrap().name;
        let late = format!("{name}:late");
        assert_eq!(
            uses_slot(100, Some(350)),
            [(name.clone(), 100, true), (late.clone(), 350, false)]
        );
        assert_eq!(
            uses_slot(400, Some(350)),
            [(name, 400, true), (late, 400, false)],
            "moved past its late place: right after itself"
        );
    }

    #[test]
    fn merge_is_deep_for_objects_only() {
        let mut a = serde_json::json!({"a": {"x": 1, "y": 2}, "l": [1]});
        merge(&mut a, &serde_json::json!({"a": {"y": 3}, "l": [2]}));
        assert_eq!(a, serde_json::json!({"a": {"x": 1, "y": 3}, "l": [2]}));
    }

    /// Builds the pipeline of `apps` (a platform file's `[apps...]`),
    /// after `previous`.
    fn build(dir: &Path, apps: &str, previous: Option<&Pipeline>) -> Pipeline {
        let file = dir.join("platform.toml");
        std::fs::write(&file, format!("[platform]\nlisten = \"127.0.0.1:0\"\n{apps}")).unwrap();
        let platform = Platform::load(&file).unwrap();
        let manifests = load_manifests(&platform).unwrap();
        compile(platform, manifests, previous, None, JsChecks::Strict)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .0
    }

    fn instance<'p>(p: &'p Pipeline, name: &str) -> &'p Arc<dyn Plugin> {
        p.instances().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn only_plugins_that_read_the_app_table_are_rebuilt_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        for app in ["a", "b"] {
            std::fs::create_dir_all(dir.path().join(app)).unwrap();
        }
        let a = "[apps.a]\nsource = \"a\"\ndomains = [\"a.test\"]\nrate_limit = { rpm = 5 }\n";
        let first = build(dir.path(), a, None);
        let second = build(
            dir.path(),
            &format!("{a}[apps.b]\nsource = \"b\"\ndomains = [\"b.test\"]\n"),
            Some(&first),
        );
        assert!(
            Arc::ptr_eq(instance(&first, "gateway"), instance(&second, "gateway")),
            "the gateway (and its buckets) kept"
        );
        assert!(
            !Arc::ptr_eq(instance(&first, VHOSTS), instance(&second, VHOSTS)),
            "vhosts routes the new app"
        );
        assert!(
            Arc::ptr_eq(&first.shared, &second.shared),
            "one pool for every pipeline"
        );
    }

    #[test]
    fn apps_without_plugin_settings_share_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut apps = String::new();
        for app in ["a", "b", "c", "limited"] {
            std::fs::create_dir_all(dir.path().join(app)).unwrap();
            apps.push_str(&format!(
                "[apps.{app}]\nsource = \"{app}\"\ndomains = [\"{app}.test\"]\n"
            ));
        }
        apps.push_str("rate_limit = { rpm = 5 }\n");
        let p = build(dir.path(), &apps, None);
        let chain = |id: &str| p.apps.get(id).unwrap().chain.clone();
        assert!(Arc::ptr_eq(&chain("a"), &chain("b")) && Arc::ptr_eq(&chain("a"), &chain("c")));
        // An app with settings of its own gets its own chain, with them.
        assert!(!Arc::ptr_eq(&chain("a"), &chain("limited")));
        let names = |id: &str| chain(id).slots.iter().map(|s| s.name.to_string()).collect::<Vec<_>>();
        assert!(
            names("limited").contains(&"gateway".to_string()),
            "{:?}",
            names("limited")
        );
        assert!(!names("a").contains(&"gateway".to_string()), "{:?}", names("a"));
    }
}
