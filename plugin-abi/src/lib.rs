//! The contract between the bext kernel and every plugin.
//!
//! A plugin is an [`Plugin`] object with optional hooks, run by the kernel in
//! this order for each request (see `docs/hooks.md`):
//!
//! `fetch` (before any app is known) → `on_request` (ascending priority) →
//! the app's runtime → `on_response` (reverse order) → the response is
//! written → `on_complete`.
//!
//! Built-in plugins implement [`BuiltinPlugin`] and call [`register!`] once;
//! the kernel finds them by name from their YAML manifest. Plugin crates
//! depend on this crate only, never on the kernel or on each other; shared
//! services reach them through [`Host`].

pub mod admin;
mod app_table;
mod authority;
mod body;
mod canonical;
pub mod claims;
mod context;
mod encoded;
mod error;
mod extensions;
mod fleet;
mod host;
pub mod metrics;
mod path;
mod platform_keys;
mod plugin;
mod registry;
mod shared;
pub mod testing;
pub mod trace;
pub mod units;

pub use app_table::{AppChange, BUILD_OUTPUTS, Domains, Env, fetch_handler_module};
pub use authority::{HostError, normalise_host, normalise_host_pattern, pattern_reaches, requested_port};
pub use body::{Body, BodyLimitError, BoxError};
pub use canonical::{EncodedSlashes, PathError, normalise_path};
pub use context::{AlreadySet, ArrivedOverTls, CacheStatus, Ctx, HeaderSet, RateLimitState, RequestId, SUBJECT_VAR};
pub use encoded::{BlockError, EncodedHeaders, Full, HeaderBlock};
pub use error::PluginError;
pub use extensions::Extensions;
pub use fleet::{Fleet, FleetMessages};
pub use host::{AppInfo, AppResponse, AppService, AppTarget, Host, Reload, Reloading, Setup, Spawner, Task};
pub use metrics::{MetricsRegistry, PluginMetrics};
pub use path::PathPattern;
pub use platform_keys::platform_file_key;
pub use plugin::{Completion, Flow, Hook, Hooks, Plugin, text_response};
pub use registry::{AppChanges, BuiltinPlugin, Factory, Registration, decode_config, registrations};
pub use shared::SharedPool;

#[doc(hidden)]
pub use inventory;

/// The request type every hook sees: `http` types over bext's [`Body`].
pub type Request = http::Request<Body>;
/// The response type every hook sees.
pub type Response = http::Response<Body>;
