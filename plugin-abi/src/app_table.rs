//! Apps a plugin adds to the platform's app table before any pipeline is
//! built ([`crate::BuiltinPlugin::app_changes`]): the deploy registry
//! serves each app from its current version, and adds its canaries and
//! previews as apps of their own, and gives apps the tenants' own domains
//! recorded for them. The kernel applies the changes in order, each to the
//! table as the ones before left it.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Files a fetch-handler build (Hono, an SSR bundle) usually leaves, tried
/// in order when its package.json names none: where the kernel looks for
/// the module of a bundle that names none, and what the deploy plugin
/// makes sure a stored bundle has before it is served.
pub const BUILD_OUTPUTS: [&str; 6] = [
    "dist/index.js",
    "dist/index.mjs",
    "build/index.js",
    "dist/server.js",
    "index.js",
    "index.mjs",
];

/// A folder's `index.js`/`index.mjs` when it is a server module (an
/// `export default` with a `fetch` handler, as Workers and Hono write
/// it), so that a folder that says nothing else runs it as a `js` app
/// rather than serving its source: the one detection `bext run`, a
/// deployed bundle and the deploy plugin's isolate count all use.
pub fn fetch_handler_module(dir: &std::path::Path) -> Option<&'static str> {
    ["index.js", "index.mjs"].into_iter().find(|name| {
        std::fs::read_to_string(dir.join(name)).is_ok_and(|text| {
            let default = text.find("export default");
            default.is_some_and(|at| text[at..].contains("fetch"))
        })
    })
}

/// One app to add to the table, or to replace in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChange {
    /// The app's id in the table (an existing one is replaced).
    pub id: String,
    /// The app to copy (runtime, headers, plugins, env...) when the table
    /// has it; otherwise the app `source`'s own `bext.config.toml`
    /// describes (a static site without one), as `bext run` reads it.
    pub like: String,
    /// The directory the app serves from; `None` keeps that of the app it
    /// copies, which the table must have (a change that only adds
    /// [`Domains::Tenants`]).
    pub source: Option<PathBuf>,
    /// The hosts it answers on.
    pub domains: Domains,
    /// The `env` its JavaScript gets.
    pub env: Env,
}

/// The hosts of a changed app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domains {
    /// Those of the app it copies.
    Same,
    /// None, tenants' own domains included: the app is reached only when
    /// a plugin sends requests to it ([`crate::Host::serve_app`]).
    Hidden,
    /// Those of the app it copies, as the platform's `preview_domain`
    /// template makes them for preview `name` (`{name}.preview.{domain}`);
    /// none of its tenants' own domains.
    Preview(String),
    /// Those of the app it copies, and these tenants' own domains
    /// (`shop.customer.com` → `customer`) besides the ones it has: each an
    /// exact host that reaches the app with that tenant, as
    /// `customer.<wildcard>` would. Not ordered certificates up front (the
    /// name may not point at bext yet) and never templated for previews;
    /// apply them after the changes that copy the app.
    Tenants(BTreeMap<String, String>),
}

/// The `env` of a changed app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// That of the app it copies.
    Same,
    /// The copied app's `preview_env`, never its `env`: a preview must not
    /// reach production data unless told to.
    Preview,
}
