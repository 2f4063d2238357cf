//! Apps plugins add to the table before a pipeline is built (the contract's
//! `BuiltinPlugin::app_changes`: the deploy registry's current versions,
//! canaries and previews), applied in order to the platform file's apps.
//! Tenants' own domains join last, each only if no one else reaches it
//! ([`claims`]): one that collides is skipped with a warning, whatever the
//! apps' ids, never routed by whichever app comes first.

use std::path::{Component, Path};

use bext_plugin_abi::claims::{Claim, claimed_by};
use bext_plugin_abi::{AppChange, Domains, Env, Setup};

use crate::config::diag::{Diagnostic, Diagnostics};
use crate::config::manifest::{Entry, Manifest};
use crate::config::platform::{AppConfig, Platform, RuntimeKind};

/// Asks every enabled built-in plugin for its app changes and applies
/// them, then refuses a table past `max_apps` or `max_isolates`. Nothing
/// changes when no plugin has any.
pub(crate) fn apply(platform: &mut Platform, manifests: &[Manifest]) -> Result<(), Diagnostics> {
    apply_unlimited(platform, manifests)?;
    within_max_apps(platform)?;
    within_max_isolates(platform)
}

/// [`apply`] without the limits: the table as the registry makes it, for
/// the CLI's in-process registry, which must count every app, preview and
/// pin already stored (a table already past `max_isolates` refuses what
/// would add more, and still lets `bext apps rm` bring it back).
pub(crate) fn apply_unlimited(platform: &mut Platform, manifests: &[Manifest]) -> Result<(), Diagnostics> {
    let reserved = reserved_hosts(platform, manifests);
    keep_unclaimed_platform_tenants(platform, &reserved);
    // The table each plugin sees: rebuilt only after a plugin changed it.
    let mut apps = platform.app_infos();
    for m in manifests
        .iter()
        .filter(|m| m.enabled && matches!(m.entry, Entry::Builtin))
    {
        let Some(reg) = crate::loader::find(&m.name) else {
            continue;
        };
        let setup = Setup {
            plugin: &m.name,
            base: m.base.as_deref(),
            apps: &apps,
            data_dir: &platform.data_dir,
        };
        let mut config = m.config.clone();
        if m.name == "deploy"
            && let Some(c) = config.as_object_mut()
        {
            c.insert("pinned_versions".into(), serde_json::json!(pinned_versions(manifests)));
        }
        let changes = match (reg.app_changes)(config, &setup) {
            Ok(changes) => changes,
            // A bad config is left to the compile, which points at its
            // line and field; a plugin with a bad config adds no apps.
            Err(bext_plugin_abi::PluginError::Config { .. }) => continue,
            Err(e) => {
                return Err(Diagnostic::new(&m.file, "", format!("the apps plugin `{}` adds: {e}", m.name)).into());
            }
        };
        if changes.is_empty() {
            continue;
        }
        for change in changes {
            apply_one(platform, change, &reserved)?;
        }
        apps = platform.app_infos();
    }
    Ok(())
}

/// `[platform] max_isolates` over the whole table: previews and canaries
/// run isolates as their app does, so a reload whose deploys go past it
/// is refused, naming every app, preview and canary with its count.
fn within_max_isolates(platform: &Platform) -> Result<(), Diagnostics> {
    crate::config::platform::check_isolates(&platform.settings, &platform.apps).map_err(|reason| {
        Diagnostic::new(
            platform.file.as_deref().unwrap_or(Path::new("")),
            "platform.max_isolates",
            reason,
        )
        .into()
    })
}

/// Tells the deploy plugin `max_isolates` and what every app of the
/// table (as [`apply`] left it) runs, so that its API refuses a deploy,
/// preview or canary past it before storing it (the check above would
/// only refuse the reload after).
pub(crate) fn pass_isolates(platform: &Platform, manifests: &mut [Manifest]) {
    let Some(max) = platform.settings.max_isolates else {
        return;
    };
    let apps: serde_json::Map<String, serde_json::Value> = (platform.apps.iter())
        .map(|(id, app)| {
            let n = crate::config::platform::isolates_of(app, &platform.settings);
            (id.clone(), serde_json::json!(n))
        })
        .collect();
    let new_app = crate::config::isolate::IsolateConfig::APP.workers;
    for m in manifests.iter_mut().filter(|m| m.name == "deploy") {
        if let Some(config) = m.config.as_object_mut() {
            config.insert(
                "isolates".into(),
                serde_json::json!({ "max": max, "apps": apps, "new_app": new_app }),
            );
        }
    }
}

/// `[platform] max_apps` over the whole table: the file's apps and those
/// deploys created (canaries `app@v`, previews `app~name` and pinned
/// versions are an app's versions, not apps), so a reload that adds apps
/// to a registry already holding some is refused too.
fn within_max_apps(platform: &Platform) -> Result<(), Diagnostics> {
    let Some(max) = platform.settings.max_apps else {
        return Ok(());
    };
    let ids: Vec<&str> = (platform.apps.keys())
        .map(String::as_str)
        .filter(|id| !id.contains(['@', '~']))
        .collect();
    if ids.len() <= max {
        return Ok(());
    }
    let file = platform.file.clone().unwrap_or_default();
    // Said by where the apps come from: the file's tables, or deploys.
    let (declared, deployed): (Vec<&str>, Vec<&str>) = ids.iter().partition(|id| platform.declared.contains_key(**id));
    let reason = match deployed.is_empty() {
        true => format!(
            "{} apps are declared ({}), more than max_apps = {max}: raise it or remove apps",
            ids.len(),
            declared.join(", ")
        ),
        false => format!(
            "{} apps, more than max_apps = {max}: {} declared by the file ({}) and {} created by deploys ({}): raise it, or `bext apps rm` some",
            ids.len(),
            declared.len(),
            declared.join(", "),
            deployed.len(),
            deployed.join(", ")
        ),
    };
    Err(Diagnostic::new(&file, "platform.max_apps", reason).into())
}

/// The apps the vhosts `hosts` map names with a version (`skedly@1.2`, as
/// Buntime's manifest writes them; `@latest` is the app itself): the
/// deploy registry adds each, served from the version it names.
pub(crate) fn pinned_versions(manifests: &[Manifest]) -> Vec<String> {
    let mut pins: Vec<String> = (manifests.iter())
        .filter(|m| m.name == "vhosts" && m.enabled)
        .filter_map(|m| m.config.get("hosts")?.as_object())
        .flat_map(|hosts| hosts.values())
        .filter_map(|entry| entry.get("app")?.as_str())
        .filter(|app| app.contains('@') && !app.ends_with("@latest"))
        .map(str::to_owned)
        .collect();
    pins.sort();
    pins.dedup();
    pins
}

/// The vhosts `hosts` entries whose app is neither in the table (the
/// platform file's apps and those deploys added) nor a pin the registry
/// could serve: `bext check` refuses them, a load warns (the app may be
/// deployed next), so `app: "admin-panl"` or `skedly@Latest` is never a
/// host that silently answers 502.
pub(crate) fn unknown_host_apps(platform: &Platform, manifests: &[Manifest]) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for m in manifests.iter().filter(|m| m.name == "vhosts" && m.enabled) {
        let hosts = m.config.get("hosts").and_then(|h| h.as_object());
        for (pattern, entry) in hosts.into_iter().flatten() {
            let Some(app) = entry.get("app").and_then(|a| a.as_str()) else {
                continue;
            };
            let served = app.strip_suffix("@latest").unwrap_or(app);
            // A pin that cannot name a version (`app@`, `app@^1.2`) is the
            // vhosts plugin's own error, at the same field: said once.
            if platform.apps.contains_key(served) || bext_plugin_vhosts::config::check_app(app).is_err() {
                continue;
            }
            let reason = match served.split_once('@') {
                Some((name, version)) if version.eq_ignore_ascii_case("latest") => {
                    format!("`{app}`: write `{name}@latest` (lower case) for its current version")
                }
                Some((name, version)) if platform.apps.contains_key(name) => format!(
                    "`{app}`: app `{name}` has no deployed version `{version}` (`bext apps versions {name}` lists them)"
                ),
                _ => {
                    let mut known: Vec<&str> = (platform.apps.keys())
                        .map(String::as_str)
                        .filter(|id| !id.contains(['@', '~']))
                        .collect();
                    known.sort_unstable();
                    format!(
                        "`{app}` is neither an app of the platform file nor a deployed one (apps: {}): its hosts would answer 502",
                        known.join(", ")
                    )
                }
            };
            // Named as the file writes it (`config.hosts...`, or Buntime's
            // top-level `hosts`), at its line and column.
            let path = format!("hosts.{pattern}.app");
            found.push(Diagnostic::new(&m.file, m.config_field(&path), reason).at(m.config_position(&path)));
        }
    }
    found
}

/// Hosts routed outside the app table, which no tenant's own domain may
/// take: the vhosts manifest's `hosts` map, `admin_hosts` (the admin API
/// answers there: a tenant's app must not get its token) and the names a
/// default app serves by its certificate. The deploy plugin gets them as
/// its `reserved_hosts` ([`super::shortcuts`]).
pub(crate) fn reserved_hosts(platform: &Platform, manifests: &[Manifest]) -> Vec<Claim> {
    let mut reserved = Vec::new();
    for m in manifests.iter().filter(|m| m.name == "vhosts" && m.enabled) {
        let hosts = m.config.get("hosts").and_then(|h| h.as_object());
        for (pattern, entry) in hosts.into_iter().flatten() {
            let app = entry.get("app").and_then(|a| a.as_str()).unwrap_or("?");
            reserved.push(Claim::new(pattern.clone(), format!("the vhosts hosts map (app {app})")));
        }
    }
    for host in platform.settings.admin_hosts.iter().flatten() {
        reserved.push(Claim::new(host.clone(), "admin_hosts (the admin API's host)"));
    }
    for (app, names) in super::tls::names_by_their_certificates(platform) {
        for name in names {
            reserved.push(Claim::new(name, format!("app {app}'s certificate (it has no domains)")));
        }
    }
    reserved
}

/// Who reaches which host in `platform` as it stands: every app's
/// `domains` (a live preview's hosts once applied), its `tenant_domains`,
/// and `reserved`.
pub(crate) fn claims(platform: &Platform, reserved: &[Claim]) -> Vec<Claim> {
    let mut claims = Vec::new();
    for (id, app) in &platform.apps {
        claims.extend(
            app.domains
                .iter()
                .map(|d| Claim::new(d.clone(), format!("app {id}'s domain"))),
        );
        claims
            .extend((app.tenant_domains.iter()).map(|(d, t)| Claim::new(d.clone(), format!("tenant {t} of app {id}"))));
    }
    claims.extend(reserved.iter().cloned());
    claims
}

/// The platform file's own `tenant_domains` that a reserved host reaches
/// (the file's check cannot see the manifests and certificates) are left
/// out with a warning.
fn keep_unclaimed_platform_tenants(platform: &mut Platform, reserved: &[Claim]) {
    for (id, app) in platform.apps.iter_mut() {
        app.tenant_domains.retain(|domain, _| {
            let Ok(host) = bext_plugin_abi::normalise_host_pattern(domain) else {
                return true; // refused by the file's check
            };
            let Some(claim) = claimed_by(&host, reserved) else {
                return true;
            };
            tracing::warn!(app = %id, domain, held_by = %claim.by, "tenant domain not served: the name is already reached");
            false
        });
    }
}

fn apply_one(platform: &mut Platform, change: AppChange, reserved: &[Claim]) -> Result<(), Diagnostics> {
    let mut change = change;
    if let Domains::Tenants(domains) = &mut change.domains {
        // Judged against the table as it stands (the platform file's
        // hosts, live previews, other apps' tenant domains), whichever
        // app's change comes first.
        let claims = claims(platform, reserved);
        domains.retain(|domain, _| match claimed_by(domain, &claims) {
            None => true,
            Some(claim) => {
                tracing::warn!(app = %change.id, domain, held_by = %claim.by, pattern = %claim.pattern, "tenant domain not served: the name is already reached");
                false
            }
        });
    }
    if let Some((file, listen)) = change.source.as_deref().and_then(bundle_listen) {
        (platform.unused_bundle_listens)
            .entry(file)
            .or_insert_with(|| (change.id.clone(), listen));
    }
    let mut app = match (platform.apps.get(&change.like), change.source) {
        (Some(like), None) => AppConfig::clone(like),
        // A version of an app the platform file declares: the file's table
        // with what the bundle's bext.config.toml adds.
        (Some(_), Some(source)) if let Some(onto) = deployed_onto(platform, &change.like, &source) => {
            let (app, warnings) = onto?;
            for w in warnings {
                if !platform.overridden_bundle_keys.contains(&w) {
                    platform.overridden_bundle_keys.push(w);
                }
            }
            app
        }
        // A version of an app a deploy created: what its own bundle says.
        (Some(like), Some(source)) => {
            let mut app = described_by(&source)?;
            app.domains = like.domains.clone();
            app.tenant_domains = like.tenant_domains.clone();
            app
        }
        (None, Some(source)) => described_by(&source)?,
        (None, None) => {
            return Err(Diagnostic::new(
                Path::new(""),
                "",
                format!(
                    "a plugin changes app `{}` like app `{}`, which the table does not have, and gives no directory",
                    change.id, change.like
                ),
            )
            .into());
        }
    };
    match change.domains {
        Domains::Same => {}
        Domains::Hidden => {
            app.domains.clear();
            app.tenant_domains.clear();
        }
        Domains::Preview(name) => {
            app.domains = preview_domains(&platform.settings.preview_domain, &app.domains, &name);
            app.tenant_domains.clear();
        }
        Domains::Tenants(domains) => app.tenant_domains.extend(domains),
    }
    if change.env == Env::Preview {
        app.env = std::mem::take(&mut app.preview_env);
        // Production secrets stay out of previews too (`preview_env` can
        // give a preview its own values).
        app.secrets.clear();
    }
    platform.apps.insert(change.id, Box::new(app));
    Ok(())
}

/// The `[server] listen` of the `bext.config.toml` in a deployed bundle
/// `dir`, and that file: the platform's `listen` serves the app instead.
pub(crate) fn bundle_listen(dir: &Path) -> Option<(std::path::PathBuf, String)> {
    let file = dir.join("bext.config.toml");
    let text = std::fs::read_to_string(&file).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let listen = doc.get("server")?.get("listen")?.as_str()?.to_owned();
    Some((file, listen))
}

/// Bundle `dir` as a version of app `id` of the platform file (`None`
/// when the file does not declare it): the app served, and a warning for
/// each bundle key the file's table overrides. The one reading for a
/// load, `bext deploy` (which tells the deploying user) and `bext check
/// --deploy DIR --app ID`.
pub(crate) fn deployed_onto(
    platform: &Platform,
    id: &str,
    dir: &Path,
) -> Option<Result<(AppConfig, Vec<Diagnostic>), Diagnostics>> {
    let (like, declared) = (platform.apps.get(id)?, platform.declared.get(id)?);
    let file = platform.file.clone().unwrap_or_default();
    Some(
        crate::config::deployed::onto(id, like, declared, dir, &file)
            .and_then(|(app, warnings)| check_inside(dir, &app).map(|()| (app, warnings))),
    )
}

/// What a server loading bundle `dir` as a version of app `id` warns
/// about (its `[server] listen`, the keys the platform file's table
/// overrides), for `bext deploy` to tell the deploying user; a bundle
/// that cannot be served is the deploy's own error.
pub(crate) fn deploy_warnings(platform: &Platform, id: &str, dir: &Path) -> Vec<Diagnostic> {
    let listen = bundle_listen(dir).map(|(file, listen)| unused_listen(platform, &file, id, &listen));
    let overridden = match deployed_onto(platform, id, dir) {
        Some(Ok((_, warnings))) => warnings,
        _ => Vec::new(),
    };
    listen.into_iter().chain(overridden).collect()
}

/// The warning for a deployed bundle's `[server] listen` (in `file`, of
/// app `id`), which the platform's `listen` replaces.
pub(crate) fn unused_listen(platform: &Platform, file: &Path, id: &str, listen: &str) -> Diagnostic {
    Diagnostic::new(
        file,
        "server.listen",
        format!(
            "`{listen}` is not used: app `{id}` is deployed onto the platform and served on its `listen` ({}); `[server] listen` is for `bext run`",
            platform.settings.listen
        ),
    )
    .at(crate::config::deployed::position_in(file, "server.listen", false))
}

/// What deployed bundles ask for that the platform overrides (their
/// `[server] listen`, and what an app's table says otherwise:
/// `config::deployed`), logged at every load and printed by `bext check`.
pub(crate) fn ignored_bundle_keys(platform: &Platform) -> Vec<Diagnostic> {
    let listens =
        (platform.unused_bundle_listens.iter()).map(|(file, (id, listen))| unused_listen(platform, file, id, listen));
    listens.chain(platform.overridden_bundle_keys.iter().cloned()).collect()
}

/// The hosts of preview `name` of an app with `domains`, by the
/// platform's `preview_domain` template (regex hosts have none).
pub(crate) fn preview_domains(template: &str, domains: &[String], name: &str) -> Vec<String> {
    domains
        .iter()
        .filter(|d| !d.starts_with('~'))
        .map(|d| {
            template
                .replace("{name}", name)
                .replace("{domain}", d.trim_start_matches("*."))
        })
        .collect()
}

/// The app a directory's own `bext.config.toml` describes, refused when a
/// path it names (`static_dir`, `entry`) resolves outside the directory:
/// a plugin's directory (a stored version) must not serve the host's
/// files, whatever an older plugin let into it. An upstream it names is
/// guarded like any a bundle names (`Pool::guarded`).
pub(crate) fn described_by(dir: &Path) -> Result<AppConfig, Diagnostics> {
    let (mut app, _) = AppConfig::for_dir(dir)?;
    check_inside(dir, &app)?;
    app.upstream_from_bundle = app.upstream.is_some() || !app.upstreams.is_empty();
    Ok(app)
}

/// Refuses an app served from the stored version `dir` whose folder,
/// assets folder or JS module (`static_dir`, `entry`) resolves outside it.
fn check_inside(dir: &Path, app: &AppConfig) -> Result<(), Diagnostics> {
    let file = dir.join("bext.config.toml");
    let root = std::fs::canonicalize(dir).map_err(|e| Diagnostic::new(dir, "", e.to_string()))?;
    let entry = (app.runtime == RuntimeKind::Js).then(|| app.js_entry()).flatten();
    // An SSR bundle's assets folder, relative to the bundle.
    let assets = (app.static_dir.as_ref()).and_then(|d| Some(app.source.as_ref()?.join(d)));
    for (field, path) in [
        ("server.static_dir", app.source.clone()),
        ("server.static_dir", assets),
        ("server.entry", entry),
    ] {
        let Some(path) = path else { continue };
        // Lexically first (a missing path cannot be resolved), then as the
        // file system resolves it, every link followed.
        let lexical = path.strip_prefix(dir).is_ok_and(|rest| {
            rest.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        });
        let resolved = match std::fs::canonicalize(&path) {
            Ok(real) => real.starts_with(&root),
            Err(_) => true,
        };
        if !(lexical && resolved) {
            return Err(Diagnostic::new(
                &file,
                field,
                format!(
                    "{} is outside the version's directory {}: the deploy plugin no longer accepts such a bundle; roll the app back or remove it",
                    path.display(),
                    dir.display()
                ),
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version stored by an older bext, whose `bext.config.toml` names a
    /// path outside it, is not served from there.
    #[test]
    fn a_stored_bundle_config_that_leaves_its_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("versions/app/v1");
        std::fs::create_dir_all(version.join("dist")).unwrap();
        std::fs::write(version.join("dist/index.js"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path(), version.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", version.join("dist/passwd.js")).unwrap();
        let config = |text: &str| std::fs::write(version.join("bext.config.toml"), text).unwrap();
        for bad in [
            "[server]\nstatic_dir = \"/\"",
            "[server]\nstatic_dir = \"/etc\"",
            "[server]\nstatic_dir = \"../../..\"",
            "[server]\nstatic_dir = \"up\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"\nentry = \"../../../../x.js\"",
            "[server]\nruntime = \"js\"\nentry = \"/etc/passwd\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"\nentry = \"passwd.js\"",
            "[framework]\ntype = \"ssr\"\n[server]\nentry = \"dist/index.js\"\nstatic_dir = \"up\"",
            "[framework]\ntype = \"ssr\"\n[server]\nentry = \"dist/passwd.js\"",
        ] {
            config(bad);
            let err = described_by(&version).unwrap_err().to_string();
            assert!(err.contains("bext.config.toml: server."), "{bad}: {err}");
            assert!(err.contains("is outside the version's directory"), "{bad}: {err}");
        }
        for good in [
            "",
            "[server]\nstatic_dir = \"dist\"",
            "[server]\nstatic_dir = \"./dist/\"",
            "[server]\nruntime = \"js\"\nstatic_dir = \"dist\"",
            "[framework]\ntype = \"ssr\"\n[server]\nentry = \"dist/index.js\"\nstatic_dir = \"dist\"",
        ] {
            config(good);
            let app = described_by(&version).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(app.source.unwrap().starts_with(&version));
        }
    }

    /// Copies keep what the app they copy has, with the change's files,
    /// hosts and env; an app the table lacks is what its directory says.
    #[test]
    fn changes_copy_hide_and_preview_apps() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("index.js"), "export default {}").unwrap();
        let file = dir.path().join("platform.toml");
        std::fs::write(
            &file,
            format!(
                "[platform]\n[apps.shop]\nsource = {site:?}\nruntime = \"js\"\ndomains = [\"shop.test\", \"*.shop.test\", \"~^(?P<tenant>x)$\"]\nenv = {{ DB = \"prod\" }}\npreview_env = {{ DB = \"staging\" }}\nsecrets = [\"PAY_KEY\"]\nkv = [\"STORE\"]\n"
            ),
        )
        .unwrap();
        let mut platform = Platform::load(&file).unwrap();
        let v2 = dir.path().join("v2");
        std::fs::create_dir_all(v2.join("dist")).unwrap();
        std::fs::write(v2.join("bext.config.toml"), "[server]\nstatic_dir = \"dist\"").unwrap();
        let change = |id: &str, like: &str, domains, env| AppChange {
            id: id.into(),
            like: like.into(),
            source: Some(v2.clone()),
            domains,
            env,
        };
        apply_one(
            &mut platform,
            change("shop~pr-1", "shop", Domains::Preview("pr-1".into()), Env::Preview),
            &[],
        )
        .unwrap();
        apply_one(
            &mut platform,
            change("shop@v2", "shop", Domains::Hidden, Env::Same),
            &[],
        )
        .unwrap();
        apply_one(&mut platform, change("new", "new", Domains::Same, Env::Same), &[]).unwrap();
        let preview = &platform.apps["shop~pr-1"];
        assert_eq!(preview.domains, ["pr-1.preview.shop.test", "pr-1.preview.shop.test"]);
        assert_eq!(preview.env["DB"], "staging");
        assert!(preview.secrets.is_empty(), "production secrets stay out of previews");
        assert_eq!(preview.kv, ["STORE"], "KV of its own (another app id)");
        // The bundle's `static_dir` is where a `js` app's module is found
        // (the app's table leaves it unset).
        assert_eq!(
            (preview.runtime, preview.source.clone()),
            (RuntimeKind::Js, Some(v2.join("dist")))
        );
        let canary = &platform.apps["shop@v2"];
        assert!(canary.domains.is_empty());
        assert_eq!(canary.env["DB"], "prod");
        assert_eq!(canary.secrets, ["PAY_KEY"]);
        assert_eq!(
            platform.apps["shop"].source.as_deref(),
            Some(site.as_path()),
            "the copied app is unchanged"
        );
        let new = &platform.apps["new"];
        assert_eq!(
            (new.runtime, new.source.clone()),
            (RuntimeKind::Static, Some(v2.join("dist")))
        );
    }

    /// Tenants' own domains are added to the app as it stands (its files
    /// kept); a copy that hides the app or previews it has none of them.
    #[test]
    fn tenant_domains_join_the_app_and_leave_its_hidden_and_preview_copies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site")).unwrap();
        let file = dir.path().join("platform.toml");
        std::fs::write(
            &file,
            "[platform]\n[apps.saas]\nsource = \"site\"\ndomains = [\"*.saas.test\"]\ntenant_domains = { \"static.customer.test\" = \"static\" }\n",
        )
        .unwrap();
        let mut platform = Platform::load(&file).unwrap();
        let source = platform.apps["saas"].source.clone();
        let tenants = |pairs: &[(&str, &str)]| {
            Domains::Tenants(pairs.iter().map(|(d, t)| ((*d).to_owned(), (*t).to_owned())).collect())
        };
        let change = |id: &str, domains, source: Option<&Path>| AppChange {
            id: id.into(),
            like: "saas".into(),
            source: source.map(Path::to_owned),
            domains,
            env: Env::Same,
        };
        apply_one(
            &mut platform,
            change("saas", tenants(&[("shop.customer.test", "customer")]), None),
            &[],
        )
        .unwrap();
        let saas = &platform.apps["saas"];
        assert_eq!(saas.source, source, "the app's files are kept");
        assert_eq!(saas.domains, ["*.saas.test"]);
        assert_eq!(
            saas.tenant_domains
                .iter()
                .map(|(d, t)| (d.as_str(), t.as_str()))
                .collect::<Vec<_>>(),
            [("shop.customer.test", "customer"), ("static.customer.test", "static")]
        );
        let v2 = dir.path().join("site");
        apply_one(&mut platform, change("saas@v2", Domains::Hidden, Some(&v2)), &[]).unwrap();
        apply_one(
            &mut platform,
            change("saas~pr-1", Domains::Preview("pr-1".into()), Some(&v2)),
            &[],
        )
        .unwrap();
        assert!(platform.apps["saas@v2"].tenant_domains.is_empty());
        assert!(platform.apps["saas~pr-1"].tenant_domains.is_empty());
        assert_eq!(platform.apps["saas~pr-1"].domains, ["pr-1.preview.saas.test"]);
        let mut gone = change("gone", tenants(&[("x.test", "x")]), None);
        gone.like = "gone".into();
        let err = apply_one(&mut platform, gone, &[]).unwrap_err().to_string();
        assert!(err.contains("which the table does not have"), "{err}");
    }

    /// A registry domain that another app, another tenant, a live preview
    /// or a reserved host reaches is skipped, whichever app's id sorts
    /// first; the platform file's own tenant domains under a reserved
    /// host too.
    #[test]
    fn a_tenant_domain_someone_else_reaches_is_skipped_whatever_the_app_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site")).unwrap();
        let file = dir.path().join("platform.toml");
        let tenants = |pairs: &[(&str, &str)]| {
            Domains::Tenants(pairs.iter().map(|(d, t)| ((*d).to_owned(), (*t).to_owned())).collect())
        };
        for (vip_app, other) in [("aaa", "zzz"), ("zzz", "aaa")] {
            std::fs::write(
                &file,
                format!(
                    "[platform]\n[apps.{vip_app}]\nsource = \"site\"\ndomains = [\"*.saas.test\"]\ntenant_domains = {{ \"vip.cust.test\" = \"vip\", \"Static.Mapped.Test.\" = \"s\" }}\n[apps.{other}]\nsource = \"site\"\ndomains = [\"blog.test\"]\n"
                ),
            )
            .unwrap();
            let mut platform = Platform::load(&file).unwrap();
            let reserved = vec![
                Claim::new("*.mapped.test", "the vhosts hosts map (app m)"),
                Claim::new("admin.lab.test", "admin_hosts"),
                Claim::new("home.test", "app home's certificate"),
            ];
            keep_unclaimed_platform_tenants(&mut platform, &reserved);
            assert_eq!(
                platform.apps[vip_app].tenant_domains.keys().collect::<Vec<_>>(),
                ["vip.cust.test"]
            );
            platform.apps.insert(
                format!("{other}~pr-1"),
                Box::new(AppConfig {
                    domains: vec!["pr-1.preview.blog.test".into()],
                    ..AppConfig::clone(&platform.apps[other])
                }),
            );
            let change = |id: &str, domains| AppChange {
                id: id.into(),
                like: id.into(),
                source: None,
                domains,
                env: Env::Same,
            };
            for (app, asked) in [
                (other, tenants(&[("vip.cust.test", "evil"), ("ok.cust.test", "ok")])),
                (vip_app, tenants(&[("vip.cust.test", "evil"), ("x.saas.test", "evil")])),
                (
                    other,
                    tenants(&[
                        ("x.mapped.test", "evil"),
                        ("admin.lab.test", "evil"),
                        ("home.test", "evil"),
                        ("pr-1.preview.blog.test", "evil"),
                        ("blog.test", "evil"),
                    ]),
                ),
            ] {
                apply_one(&mut platform, change(app, asked), &reserved).unwrap();
            }
            let routed = |id: &str| {
                platform.apps[id]
                    .tenant_domains
                    .iter()
                    .map(|(d, t)| format!("{d}={t}"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(routed(vip_app), ["vip.cust.test=vip"], "{vip_app} first");
            assert_eq!(routed(other), ["ok.cust.test=ok"], "{vip_app} first");
        }
    }
}
