//! `[apps.<id>] hooks = { ... }` in the platform file: the deploy plugin's
//! setting for one app, passed on unread as its `app_hooks.<id>`. (Keys
//! that turn a plugin on for one app, `rate_limit`, `auth` and `cache`,
//! become that app's plugin config instead: see `compile::app_plugins`.)
//! The deploy plugin keeps one registry, with one admin API, for every
//! app, so an app's hooks go to its one instance rather than making an
//! instance for that app. It also gets the platform file's app ids as its
//! `platform_apps`: the app table it is built with holds the apps it adds
//! too (created by deploys, previews, canaries), and its registry tells
//! the platform's apps from those; and the hosts routed outside the app
//! table as its `reserved_hosts`, which no tenant's own domain may take.

use crate::config::manifest::Manifest;
use crate::config::platform::Platform;

/// The plugin the `hooks` key belongs to.
const PLUGIN: &str = "deploy";
/// The field of its config that holds every app's hooks by app id.
const FIELD: &str = "app_hooks";
/// The field of its config that lists the platform file's app ids.
const APPS_FIELD: &str = "platform_apps";
/// The field of its config that lists the hosts no tenant's own domain
/// may take besides the app table's ([`super::app_changes::reserved_hosts`]).
const RESERVED_FIELD: &str = "reserved_hosts";

/// Adds each app's `hooks` to the deploy manifest's `app_hooks` (hooks
/// the manifest sets for the same app win), and the platform file's app
/// ids as its `platform_apps` (replacing what the manifest says).
pub(crate) fn pass_on(platform: &Platform, manifests: &mut [Manifest]) {
    let by_app: serde_json::Map<String, serde_json::Value> = platform
        .apps
        .iter()
        .filter_map(|(id, app)| Some((id.clone(), app.hooks.as_deref()?.clone())))
        .collect();
    let ids: Vec<serde_json::Value> = platform.apps.keys().cloned().map(serde_json::Value::String).collect();
    let reserved = serde_json::to_value(super::app_changes::reserved_hosts(platform, manifests)).unwrap_or_default();
    for m in manifests.iter_mut().filter(|m| m.name == PLUGIN) {
        if !m.config.is_object() {
            m.config = serde_json::Value::Object(Default::default());
        }
        let Some(config) = m.config.as_object_mut() else {
            continue;
        };
        config.insert(APPS_FIELD.into(), serde_json::Value::Array(ids.clone()));
        config.insert(RESERVED_FIELD.into(), reserved.clone());
        // The original bext's platform keys for deploys: the platform
        // file's value wins over the manifest's.
        if let Some(ttl) = platform.settings.preview_ttl {
            config.insert("preview_ttl".into(), serde_json::json!(format!("{}s", ttl.0.as_secs())));
        }
        if let Some(max) = platform.settings.max_apps {
            config.insert("max_apps".into(), serde_json::json!(max));
        }
        let keep: serde_json::Map<String, serde_json::Value> = (platform.apps.iter())
            .filter_map(|(id, a)| Some((id.clone(), serde_json::json!(a.deploy.as_ref()?.keep_versions?))))
            .collect();
        if !keep.is_empty() {
            config.insert("app_keep_versions".into(), serde_json::Value::Object(keep));
        }
        if by_app.is_empty() {
            continue;
        }
        let slot = config
            .entry(FIELD)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(slot) = slot.as_object_mut() {
            for (id, hooks) in &by_app {
                slot.entry(id.clone()).or_insert_with(|| hooks.clone());
            }
        }
    }
}

/// Where in the platform file a config error of `plugin` at `path` comes
/// from, when [`pass_on`] put the value there: `apps.<id>.hooks...`.
pub(crate) fn origin(platform: &Platform, plugin: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(FIELD)?.strip_prefix('.')?;
    let (id, inner) = rest.split_once('.').unwrap_or((rest, ""));
    let passed = plugin == PLUGIN && platform.apps.get(id).is_some_and(|a| a.hooks.is_some());
    passed.then(|| match inner {
        "" => format!("apps.{id}.hooks"),
        inner => format!("apps.{id}.hooks.{inner}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "deploy")]
    #[test]
    fn hooks_reach_the_deploy_manifest_and_errors_point_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("platform.toml");
        std::fs::write(
            &file,
            "[apps.blog]\nsource = \".\"\nhooks = { pre_build = \"make\" }\n[apps.plain]\nsource = \".\"\n",
        )
        .unwrap();
        let platform = Platform::load(&file).unwrap();
        let mut manifests = crate::config::manifest::defaults();
        pass_on(&platform, &mut manifests);
        let deploy = manifests.iter().find(|m| m.name == "deploy").unwrap();
        assert_eq!(
            deploy.config["app_hooks"],
            serde_json::json!({ "blog": { "pre_build": "make" } })
        );
        assert_eq!(deploy.config["platform_apps"], serde_json::json!(["blog", "plain"]));
        let vhosts = manifests.iter().find(|m| m.name == "vhosts").unwrap();
        assert!(vhosts.config.get("app_hooks").is_none());
        assert!(vhosts.config.get("platform_apps").is_none());
        assert_eq!(
            origin(&platform, "deploy", "app_hooks.blog.pre_buil").as_deref(),
            Some("apps.blog.hooks.pre_buil")
        );
        assert_eq!(origin(&platform, "deploy", "app_hooks.plain.x"), None);
        assert_eq!(origin(&platform, "deploy", "keep_versions"), None);
    }
}
