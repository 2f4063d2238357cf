use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{AppChange, Plugin, PluginError, Setup};

/// A built-in plugin, registered at compile time with [`crate::register!`]
/// and built by name from its manifest.
///
/// Construction is pure (no I/O) so `bext check` can validate a
/// configuration without side effects; I/O belongs in `on_init`.
pub trait BuiltinPlugin: Plugin + Sized {
    /// The name manifests use (`name: vhosts`); `[a-z][a-z0-9-]*`.
    const NAME: &'static str;
    /// Default priority: lower runs earlier on the request.
    const PRIORITY: i32;
    /// One line for `bext plugins` and error messages.
    const SUMMARY: &'static str;
    /// The plugin's default manifest (YAML, fields documented), used when
    /// the platform names no manifests directory.
    const DEFAULT_MANIFEST: &'static str;
    /// Whether the plugin reads the app table (`Setup::apps` in
    /// [`BuiltinPlugin::new`], [`crate::Host::apps`] in `on_init`). The
    /// table is then part of the instance's key: every reload that changes
    /// it (a new app, a canary or preview deploy) builds a new instance.
    /// A plugin that says `false` keeps its instance, and its in-memory
    /// state (rate-limit buckets), across such reloads, and sees an empty
    /// table. `true` by default, the safe side.
    const READS_APP_TABLE: bool = true;
    /// The typed `config` block; use `#[serde(deny_unknown_fields)]`.
    type Config: DeserializeOwned;

    /// Validates the decoded configuration and builds the instance.
    fn new(config: Self::Config, setup: &Setup<'_>) -> Result<Self, PluginError>;

    /// Apps this plugin adds to the app table, or changes, before pipelines
    /// are built (the deploy registry's current versions, canaries and
    /// previews), for an enabled manifest. `setup.apps` is the platform
    /// file's table. Unlike [`BuiltinPlugin::new`] it may read files: it
    /// runs when a server builds a pipeline, not in `bext check`. None by
    /// default.
    fn app_changes(_config: &Self::Config, _setup: &Setup<'_>) -> Result<Vec<AppChange>, PluginError> {
        Ok(Vec::new())
    }
}

/// Decodes a `config` value strictly and builds a plugin instance.
pub type Factory = fn(serde_json::Value, &Setup<'_>) -> Result<Arc<dyn Plugin>, PluginError>;

/// Decodes a `config` value strictly and lists the plugin's
/// [`BuiltinPlugin::app_changes`].
pub type AppChanges = fn(serde_json::Value, &Setup<'_>) -> Result<Vec<AppChange>, PluginError>;

/// How the kernel finds and builds one built-in plugin.
pub struct Registration {
    /// The plugin's name.
    pub name: &'static str,
    /// Its default priority.
    pub default_priority: i32,
    /// One line describing it.
    pub summary: &'static str,
    /// [`BuiltinPlugin::READS_APP_TABLE`].
    pub reads_app_table: bool,
    /// Its default manifest (YAML).
    pub default_manifest: &'static str,
    /// Decodes `config` strictly and builds the instance.
    pub factory: Factory,
    /// Decodes `config` strictly and lists the apps the plugin adds.
    pub app_changes: AppChanges,
}

impl Registration {
    /// The registration of a [`BuiltinPlugin`]; used by [`crate::register!`].
    pub const fn of<P: BuiltinPlugin>() -> Self {
        Registration {
            name: P::NAME,
            default_priority: P::PRIORITY,
            summary: P::SUMMARY,
            reads_app_table: P::READS_APP_TABLE,
            default_manifest: P::DEFAULT_MANIFEST,
            factory: build::<P>,
            app_changes: changes::<P>,
        }
    }
}

fn build<P: BuiltinPlugin>(config: serde_json::Value, setup: &Setup<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    let config = decode_config::<P::Config>(config)?;
    Ok(Arc::new(P::new(config, setup)?))
}

fn changes<P: BuiltinPlugin>(config: serde_json::Value, setup: &Setup<'_>) -> Result<Vec<AppChange>, PluginError> {
    P::app_changes(&decode_config::<P::Config>(config)?, setup)
}

/// Decodes a `config` value strictly, reporting the dotted path of the first
/// bad field so the kernel can point at its line.
pub fn decode_config<C: DeserializeOwned>(config: serde_json::Value) -> Result<C, PluginError> {
    // A manifest without `config:` means "all defaults".
    let config = if config.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        config
    };
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        PluginError::config(path, e.into_inner().to_string())
    })
}

inventory::collect!(Registration);

/// Every built-in plugin linked into this binary.
pub fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// Registers a [`BuiltinPlugin`] so manifests can name it.
#[macro_export]
macro_rules! register {
    ($plugin:ty) => {
        $crate::inventory::submit! {
            $crate::Registration::of::<$plugin>()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        #[allow(dead_code)]
        inner: Inner,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        n: Option<u32>,
    }

    #[test]
    fn unknown_fields_are_errors_with_a_path() {
        let err = decode_config::<Cfg>(serde_json::json!({"inner": {"m": 1}})).unwrap_err();
        match err {
            PluginError::Config { path, reason } => {
                assert_eq!(path, "inner.m");
                assert!(reason.contains("unknown field `m`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let err = decode_config::<Cfg>(serde_json::json!({"inner": {"n": "x"}})).unwrap_err();
        assert!(matches!(err, PluginError::Config { ref path, .. } if path == "inner.n"));
        decode_config::<Cfg>(serde_json::Value::Null).unwrap();
    }
}
