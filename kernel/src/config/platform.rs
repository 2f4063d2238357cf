//! The platform file (`platform.toml` or `.yaml`): listeners, limits and
//! apps. `bext run DIR` builds the same structure for a one-app platform.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use bext_plugin_abi::units::{ByteSize, Span, parse_duration, parse_size};

use super::diag::{Diagnostic, Diagnostics};
pub use super::isolate::IsolateConfig;
pub use super::observe::{AccessLogConfig, AccessLogFormat, AccessLogSetting, OtelSettings};
pub use super::process::{CommandLine, ReadyCheck};
use super::toml_doc::TomlDoc;
use super::yaml::Located;
pub use bext_plugin_abi::EncodedSlashes;

/// Where `bext run` listens unless `bext.config.toml` says otherwise.
pub const DEFAULT_RUN_LISTEN: &str = "127.0.0.1:3061";

/// A whole platform file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFile {
    /// Process-wide settings.
    #[serde(default)]
    pub platform: PlatformSection,
    /// Apps by id.
    #[serde(default)]
    pub apps: BTreeMap<String, Box<AppConfig>>,
    /// Edge mode: the Redis several instances share (`REDIS_URL` also
    /// turns it on).
    #[serde(default)]
    pub redis: Option<RedisSection>,
}

/// `[redis]`: the shared Redis of an edge fleet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://host:port/db` (`redis://:password@host` with a password).
    /// Empty when the file leaves it to `REDIS_URL` (a `[redis]` of only
    /// `prefix`); the load refuses it empty without `REDIS_URL`.
    #[serde(default, deserialize_with = "redis_url")]
    pub url: String,
    /// Start of every key and channel, so fleets can share a server.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// The URL is `REDIS_URL`'s, which wins over the file's, for the log.
    #[serde(skip)]
    pub from_env: bool,
}

/// A `[redis] url` edge mode can use: one without a scheme is refused at
/// load (naming the key and the URL to write), not left to log
/// "edge mode off" while the server runs without its fleet.
fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    bext_edge::check_url(&url).map_err(serde::de::Error::custom)?;
    Ok(url)
}

fn default_redis_prefix() -> String {
    "bext:".into()
}

/// `[platform]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSection {
    /// Address to serve HTTP/1.1 and h2c on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address to serve HTTPS on (HTTP/1.1 and HTTP/2 by ALPN), with the
    /// certificates of apps' `tls`; unset: no TLS listener.
    #[serde(default)]
    pub listen_tls: Option<String>,
    /// Optional second address serving bext's own endpoints without the
    /// `/__bext` prefix (keep it on a private interface).
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Hosts of the public listener that serve the detailed
    /// `/__bext/health` and plugins' admin routes: exact names, compared
    /// with the request's normalised host (lower case, no port, no
    /// trailing dot). Unset: every host when `admin_listen` is unset, none
    /// when it is set. Other hosts get a bare liveness answer on
    /// `/__bext/health` and 404 on admin routes. See the kernel's `admin` module.
    #[serde(default)]
    pub admin_hosts: Option<Vec<String>>,
    /// Where plugins keep their state.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Directory of plugin manifests; without it every built-in plugin
    /// runs with its default manifest.
    #[serde(default)]
    pub manifests: Option<PathBuf>,
    /// App serving requests no host or path routed.
    #[serde(default)]
    pub default_app: Option<String>,
    /// The access log: `true` (a `bext::access` line per request in the
    /// error log), `false`, or `{ format, path, buffer }` for a dedicated
    /// JSON or combined log (see docs/observability.md).
    #[serde(default = "error_log")]
    pub access_log: AccessLogSetting,
    /// The error log's levels by module, as `RUST_LOG` spells them
    /// (`"info,bext::apps::proxy=debug"`); `RUST_LOG`, when set, wins.
    #[serde(default)]
    pub log: Option<String>,
    /// `[platform.otel]`: spans exported over OTLP; unset: none.
    #[serde(default)]
    pub otel: Option<OtelSettings>,
    /// Watch the platform file and manifests and reload on change.
    #[serde(default = "yes")]
    pub watch: bool,
    /// Worker threads, each with its own listener socket; 0 means one per
    /// CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Connection and request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Hosts of a deploy preview: `{name}` is the preview's name, `{domain}`
    /// each of the app's domains (a wildcard's `*.` left out).
    #[serde(default = "default_preview_domain")]
    pub preview_domain: String,
    /// What `%2F` in a request path means: `reject` (400) or `decode` (a
    /// separator). See `bext_plugin_abi::normalise_path`.
    #[serde(default)]
    pub encoded_slashes: EncodedSlashes,
    /// Keep request headers whose names have `_` (nginx's setting of the
    /// same name). Off: they are dropped, since CGI-style apps read
    /// `X_Base` as `x-base`.
    #[serde(default)]
    pub underscores_in_headers: bool,
    /// Environment variable holding the admin token that unlocks the
    /// detailed `/__bext/health` on the public listener.
    #[serde(default = "default_admin_token_env")]
    pub admin_token_env: String,
    /// `[platform.acme]`: the ACME server apps with `tls = "acme"` get
    /// their certificates from, and on-demand issuance; unset: no ACME.
    #[serde(default)]
    pub acme: Option<bext_acme::AcmeConfig>,
    /// `[platform.metrics]`: what `/__bext/metrics` counts.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The certificate (PEM chain) served on `listen_tls` for every app
    /// without a `tls` of its own, as the original bext's `tls_cert`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// How long a deploy preview lives unless its deploy says: the deploy
    /// plugin's `preview_ttl` (`"7d"`), so the original's key keeps working.
    #[serde(default, deserialize_with = "preview_ttl")]
    pub preview_ttl: Option<Span>,
    /// Most apps the platform serves: the platform file's plus those
    /// deploys create. A reload or a deploy past it is refused.
    #[serde(default)]
    pub max_apps: Option<usize>,
    /// Most JavaScript isolates all apps may run together, checked when the
    /// platform is loaded (each JS app's `isolate.workers`, 2 by default).
    #[serde(default)]
    pub max_isolates: Option<usize>,
    /// Threads of the one JS pool that apps in `isolate.mode = "shared"`
    /// run on; 0 means one per CPU core. Read at start.
    #[serde(default)]
    pub js_threads: usize,
    /// Isolates one shared JS thread keeps (of any apps); building one more
    /// drops its least recently used. Read at start.
    #[serde(default = "default_js_isolates_per_thread")]
    pub js_isolates_per_thread: usize,
    /// Serve plain HTTP/1.1 requests without a body on bext's own
    /// connection code, handing anything else to hyper (see
    /// kernel/src/server/h1): fewer instructions a request. Off: hyper
    /// serves every connection. Read per connection.
    #[serde(default = "yes")]
    pub http1_fast_path: bool,
}

/// `[platform.metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Count requests per app (on by default; off only to measure what
    /// counting costs). `/__bext/metrics` answers either way.
    pub enabled: bool,
    /// Tenants (as a wildcard host or a tenant's own domain names them)
    /// whose requests are also counted by tenant: an allow-list, so the
    /// number of series stays what the operator chose.
    pub tenants: Vec<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            tenants: Vec::new(),
        }
    }
}

/// One `admin_hosts` entry as requests' hosts are compared with it (see
/// `bext_plugin_abi::normalise_host`): a host name or address without port or
/// wildcard.
fn admin_host(raw: &str) -> Result<String, String> {
    let normal = bext_plugin_abi::normalise_host(raw.as_bytes())
        .map_err(|_| format!("`{raw}` is not a host name (exact names only, no wildcard)"))?;
    let port = if raw.starts_with('[') {
        !raw.ends_with(']')
    } else {
        raw.contains(':')
    };
    if port {
        return Err(format!(
            "`{raw}`: a host without port (requests are compared without theirs)"
        ));
    }
    Ok(normal.into())
}

fn default_admin_token_env() -> String {
    "BEXT_ADMIN_TOKEN".into()
}

fn default_js_isolates_per_thread() -> usize {
    bext_js::SharedSettings::DEFAULT.isolates_per_thread
}

fn default_preview_domain() -> String {
    "{name}.preview.{domain}".into()
}

impl Default for PlatformSection {
    fn default() -> Self {
        PlatformSection {
            listen: default_listen(),
            listen_tls: None,
            admin_listen: None,
            admin_hosts: None,
            data_dir: None,
            manifests: None,
            default_app: None,
            access_log: AccessLogSetting::ErrorLog,
            log: None,
            otel: None,
            watch: true,
            workers: 0,
            limits: Limits::default(),
            preview_domain: default_preview_domain(),
            encoded_slashes: EncodedSlashes::default(),
            underscores_in_headers: false,
            admin_token_env: default_admin_token_env(),
            acme: None,
            metrics: MetricsSettings::default(),
            tls_cert: None,
            tls_key: None,
            preview_ttl: None,
            max_apps: None,
            max_isolates: None,
            js_threads: 0,
            js_isolates_per_thread: default_js_isolates_per_thread(),
            http1_fast_path: true,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:3060".into()
}

fn yes() -> bool {
    true
}

fn error_log() -> AccessLogSetting {
    AccessLogSetting::ErrorLog
}

/// `[platform.limits]`: every limit has a number and a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Time a client has to send a whole request head, counted from its
    /// first byte (and from accept for a new connection): the slowloris
    /// guard. Such a connection is dropped. `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest pause between two chunks of a request body (408 after).
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers), HTTP/1 and HTTP/2
    /// (431 beyond).
    #[serde(deserialize_with = "size")]
    pub max_header_bytes: u64,
    /// Largest request body (413 beyond).
    #[serde(deserialize_with = "size")]
    pub max_body_bytes: u64,
    /// A kept-alive connection with no request in flight and no new request
    /// arriving is closed after this long.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// On SIGINT/SIGTERM, how long requests in flight may take to finish.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Longest a whole request body may take, however steadily it
    /// trickles in (408 after).
    #[serde(deserialize_with = "duration")]
    pub body_total_timeout: Duration,
    /// Longest request target, path and query (414 beyond).
    #[serde(deserialize_with = "size")]
    pub max_uri_bytes: u64,
    /// Open client connections in all; a new one beyond is closed at once.
    /// Capped at start by the process's file-descriptor limit.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client by its
    /// /64); 0 turns the cap off.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            idle_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(30),
            max_concurrent_streams: 256,
            body_total_timeout: Duration::from_secs(300),
            max_uri_bytes: 8 * 1024,
            max_connections: 16_384,
            max_connections_per_ip: 256,
        }
    }
}

/// The kind of runtime serving an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Files from `source`.
    Static,
    /// One upstream URL.
    Proxy,
    /// JavaScript in a pool of QuickJS isolates.
    Js,
    /// Supervised child processes, each a server on its own port
    /// (docs/process.md).
    Process,
    /// The original bext's name for a fetch-handler app: `js`, its entry
    /// found from package.json (`config::framework`).
    Hono,
    /// The original bext's name for a Node server: `process`, running the
    /// package's `start` script (`config::framework`).
    Express,
    /// The original bext's SSR runtime: refused with what to write instead.
    Ssr,
    /// The original bext's SSR plus API proxy: refused with what to write instead.
    Hybrid,
    /// The original bext's Next.js runtime: refused with what to write instead.
    Nextjs,
}

/// Every runtime name, as files write them.
const RUNTIMES: [(&str, RuntimeKind); 9] = [
    ("static", RuntimeKind::Static),
    ("proxy", RuntimeKind::Proxy),
    ("js", RuntimeKind::Js),
    ("process", RuntimeKind::Process),
    ("hono", RuntimeKind::Hono),
    ("express", RuntimeKind::Express),
    ("ssr", RuntimeKind::Ssr),
    ("hybrid", RuntimeKind::Hybrid),
    ("nextjs", RuntimeKind::Nextjs),
];

/// The original bext's framework types bext has no runtime of, with what
/// to write instead.
const INSTEAD: [(&str, &str); 6] = [
    (
        "prism",
        "build the pages to a module exporting render(request) or a fetch handler and write \"ssr\"",
    ),
    (
        "astro",
        "write \"static\" with `static_dir = \"dist\"` for a static build, or \"express\" for its Node adapter's server (package.json `start`)",
    ),
    (
        "sveltekit",
        "write \"express\" for adapter-node's server (package.json `start`: node build), or \"static\" for adapter-static's folder",
    ),
    (
        "solidstart",
        "write \"express\" for its Node server (package.json `start`), or \"static\" for a static build",
    ),
    (
        "qwik",
        "write \"express\" for its Node server (package.json `start`), or \"static\" for a static build",
    ),
    ("bun", "write \"process\" with command = \"bun run start\""),
];

impl<'de> Deserialize<'de> for RuntimeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if let Some((_, kind)) = RUNTIMES.iter().find(|(n, _)| *n == name) {
            return Ok(*kind);
        }
        let names: Vec<&str> = RUNTIMES.iter().map(|(n, _)| *n).collect();
        Err(serde::de::Error::custom(
            match INSTEAD.iter().find(|(n, _)| *n == name) {
                Some((_, instead)) => format!("`{name}` is not a runtime of bext: {instead} (docs/migrating.md)"),
                None => format!("unknown runtime `{name}`, expected one of {}", names.join(", ")),
            },
        ))
    }
}

/// `[apps.<id>]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Directory of the app (the document root for static apps).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// Hosts routed to this app (exact or `*.` wildcards).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Tenants' own domains (`{ "shop.customer.com" = "customer" }`): each
    /// reaches the app with that tenant in `x-vhost-tenant`, as
    /// `customer.<wildcard domain>` does. The deploy registry adds the ones
    /// `bext domains add` records; an ACME certificate for one is ordered
    /// at its first handshake, never up front.
    #[serde(default)]
    pub tenant_domains: BTreeMap<String, String>,
    /// How the app is served.
    #[serde(default = "static_runtime")]
    pub runtime: RuntimeKind,
    /// Upstream URL of a proxy app (`http://127.0.0.1:8080`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Plugins for this app: turn one on or off, or override its config.
    #[serde(default)]
    pub plugins: BTreeMap<String, AppPlugin>,
    /// Response headers added to every answer of this app.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Static apps: serve `index.html` for paths that match no file.
    #[serde(default)]
    pub spa_fallback: bool,
    /// Proxy apps: send the client's Host upstream instead of the
    /// upstream's own.
    #[serde(default)]
    pub preserve_host: bool,
    /// Proxy and process apps: time to open a connection to the upstream
    /// (502 after; 5s when unset, see [`AppConfig::connect_wait`]). Unset
    /// stays `None` so an app that cannot use it is told so.
    #[serde(default)]
    pub connect_timeout: Option<Span>,
    /// Proxy and process apps: time for the upstream's response head (504
    /// after; 60s when unset, see [`AppConfig::response_wait`]).
    #[serde(default)]
    pub response_timeout: Option<Span>,
    /// Proxy apps: several backends instead of one `upstream`, each a URL
    /// or `{ url, weight }`.
    #[serde(default)]
    pub upstreams: Vec<super::upstream::UpstreamEntry>,
    /// Proxy and process apps: how a request's backend (upstream or
    /// instance) is picked.
    #[serde(default)]
    pub balance: super::upstream::Balance,
    /// Proxy and process apps with `balance = "consistent_hash"`: what a request is
    /// hashed by (`client` when unset).
    #[serde(default)]
    pub hash: Option<Box<super::upstream::HashKey>>,
    /// Proxy apps: the active health check of each backend.
    #[serde(default)]
    pub health: Option<Box<super::upstream::HealthCheck>>,
    /// Proxy and process apps: how many other backends a failed request may try (1
    /// when unset), when that is safe.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Proxy and process apps: requests in flight to one backend, at most.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Proxy and process apps with `max_connections`: requests that may wait for room
    /// (128 when unset; 0 answers 503 at once).
    #[serde(default)]
    pub queue: Option<u32>,
    /// Proxy and process apps: longest pause inside the upstream's response body (the
    /// response is cut after it); none when unset.
    #[serde(default)]
    pub body_timeout: Option<Span>,
    /// Proxy apps with https:// upstreams: a PEM file of the CAs their
    /// certificates are verified against, instead of the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Proxy apps with https:// upstreams: accept any certificate
    /// (development only; spelled out, never a default).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The upstream came from a deployed bundle's `bext.config.toml`, not
    /// the platform file: its connections may not reach bext's own
    /// listeners or link-local addresses. Never read from a file.
    #[serde(skip)]
    pub upstream_from_bundle: bool,
    /// Proxy apps: speak HTTP/2 to the upstreams (h2c on http://, h2 by
    /// ALPN on https://), as gRPC needs.
    #[serde(default)]
    pub http2: bool,
    /// JS apps: the module exporting `default { fetch }`, relative to
    /// `source` (`index.js` when unset).
    #[serde(default)]
    pub entry: Option<PathBuf>,
    /// JS apps: the `env` argument of `fetch(request, env, ctx)`; process
    /// apps: environment variables of every instance.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Process apps: the program and its arguments, started in `source`.
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Process apps: how many copies run, each on its own port.
    #[serde(default = "super::process::one_instance")]
    pub instances: usize,
    /// Process apps: what each instance listens on, a port (`PORT`) or
    /// a Unix socket (`BEXT_SOCKET`).
    #[serde(default)]
    pub listen: super::process::Listen,
    /// Process apps: when an instance counts as ready (the port opening
    /// when unset).
    #[serde(default)]
    pub ready: Option<Box<ReadyCheck>>,
    /// Process apps: time between SIGTERM and SIGKILL when stopping.
    #[serde(default = "super::process::default_stop_timeout", deserialize_with = "duration")]
    pub stop_timeout: Duration,
    /// Process apps: how long a crash-looping instance rests before it is
    /// tried again (the app's `Retry-After` meanwhile).
    #[serde(default = "super::process::default_crash_pause", deserialize_with = "duration")]
    pub crash_pause: Duration,
    /// Process apps: the pause before a restart and what makes a crash
    /// loop.
    #[serde(default)]
    pub restart: super::process::Restart,
    /// Process apps: memory and CPU of each instance, at most.
    #[serde(default)]
    pub limits: Option<super::process::Limits>,
    /// Process apps: stop the instances after this long without a
    /// request; the next request starts them again.
    #[serde(default)]
    pub idle_stop: Option<Span>,
    /// JS apps: `env` of the app's deploy previews, which never get `env`
    /// (a preview must not reach production data unless told to).
    #[serde(default)]
    pub preview_env: BTreeMap<String, String>,
    /// JS apps: KV namespaces, each a binding in `env` (`kv = ["SESSIONS"]`
    /// gives `env.SESSIONS`), kept in SQLite or, in edge mode, in Redis.
    #[serde(default)]
    pub kv: Vec<String>,
    /// JS apps: variables of bext's environment put in `env` at load
    /// (`secrets = ["STRIPE_KEY"]`), so the value never sits in a file.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// JS apps: the isolate pool.
    #[serde(default)]
    pub isolate: IsolateConfig,
    /// Shell commands the deploy plugin runs around this app's deploys
    /// (`{ pre_build = "npm run build", post_deploy = "..." }`): passed on,
    /// unread, as the deploy plugin's `app_hooks.<id>`.
    #[serde(default)]
    pub hooks: Option<Box<serde_json::Value>>,
    /// A rate limit for the app, enforced by the gateway plugin (which this
    /// turns on for the app).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Authentication for the app: the authn plugin's settings (turns it on
    /// for the app), e.g. `{ jwt_secret_env = "SHOP_JWT_SECRET" }`.
    #[serde(default)]
    pub auth: Option<Box<serde_json::Value>>,
    /// The app's response cache: the isr plugin's settings (turns it on
    /// for the app), e.g. `{ max_entries = 5000, max_bytes = "64MiB" }`.
    #[serde(default)]
    pub cache: Option<Box<serde_json::Value>>,
    /// The app's certificate on `listen_tls`: `{ cert, key }` files,
    /// `"self-signed"`, or `"acme"` (from `[platform.acme]`).
    #[serde(default)]
    pub tls: Option<AppTls>,
    /// Answer plain-HTTP requests with a 308 to the same URL on https.
    #[serde(default)]
    pub https_redirect: bool,
    /// `Strict-Transport-Security` for the app's HTTPS responses
    /// (`"max-age=31536000; includeSubDomains"`).
    #[serde(default)]
    pub hsts: Option<String>,
    /// `deploy = { keep_versions = 5 }`: this app's deploy settings, over
    /// the deploy plugin's own.
    #[serde(default)]
    pub deploy: Option<AppDeploy>,
    /// `ssr` and `hybrid` apps: the folder of their static assets,
    /// relative to `source` (`public` when unset and there), served before
    /// the render.
    #[serde(default)]
    pub static_dir: Option<PathBuf>,
    /// `hybrid` apps: requests under this path go to `upstream` (`/api`).
    #[serde(default)]
    pub api_prefix: Option<String>,
    /// What bext serves in front of a framework runtime (set by
    /// `config::framework::resolve`).
    #[serde(skip)]
    pub layers: Option<Box<super::framework::Layers>>,
    /// The app's certificate is `[platform] tls_cert`, not its own: a
    /// name it does not cover is a warning, not an error.
    #[serde(skip)]
    pub tls_from_platform: bool,
}

/// `[apps.<id>] deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDeploy {
    /// Old versions of this app kept besides the current one, instead of
    /// the deploy plugin's `keep_versions`.
    #[serde(default)]
    pub keep_versions: Option<usize>,
}

/// `[apps.<id>] tls`: where the app's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppTls {
    /// A PEM chain and its key (paths relative to the platform file).
    Files {
        /// The chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, RSA or EC).
        key: PathBuf,
    },
    /// Generated at start for the app's domains (development).
    SelfSigned,
    /// Ordered from the ACME server of `[platform.acme]` for the app's
    /// domains, kept fresh by the kernel.
    Acme,
}

impl<'de> Deserialize<'de> for AppTls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Files {
            cert: PathBuf,
            key: PathBuf,
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AppTls;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""self-signed", "acme" or { cert = "file.pem", key = "file.key" }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AppTls, E> {
                match v {
                    "self-signed" => Ok(AppTls::SelfSigned),
                    "acme" => Ok(AppTls::Acme),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<AppTls, A::Error> {
                let f = Files::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(AppTls::Files {
                    cert: f.cert,
                    key: f.key,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl AppConfig {
    /// The app a directory describes with its `bext.config.toml` (a static
    /// site when it has none), and the `listen` that file asks for: what a
    /// deploy that creates an app runs (a bundle is a static or a js app:
    /// its start command is never run).
    pub fn for_dir(dir: &Path) -> Result<(AppConfig, Option<String>), Diagnostics> {
        AppConfig::described_by(dir, false).map(|d| (d.app, d.listen))
    }

    /// [`AppConfig::for_dir`], and with `detect_start` (`bext run DIR`)
    /// the folder's framework is detected when its `bext.config.toml`
    /// does not say (package.json dependencies, its `start` script, a
    /// Procfile), and its `[redis]` and `[hooks] pre_build` are read; a
    /// deployed bundle may not have those (the platform file's).
    fn described_by(dir: &Path, detect_start: bool) -> Result<Described, Diagnostics> {
        let (cfg_file, cfg) = RunConfig::read(dir)?;
        let at = |field: &str, reason: String| -> Diagnostics {
            let position = std::fs::read_to_string(&cfg_file)
                .ok()
                .and_then(|t| TomlDoc::parse(&cfg_file, &t).ok()?.position(field));
            Diagnostic::new(&cfg_file, field, reason).at(position).into()
        };
        if cfg.render.is_some() {
            return Err(at(
                "render",
                "bext does not render React itself: a Next.js app runs its own server (`[framework] type = \"nextjs\"`), which renders server components; remove [render]".into(),
            ));
        }
        if !detect_start {
            if cfg.redis.is_some() {
                return Err(at("redis", "a deployed app shares the platform's Redis: `[redis]` belongs in the platform file, not in a bundle".into()));
            }
            if cfg.hooks.is_some() {
                return Err(at(
                    "hooks",
                    "a deployed app's hooks are the platform file's `[apps.<id>] hooks`, not the bundle's".into(),
                ));
            }
        }
        let server = cfg.server;
        let framework = cfg.framework.map(|f| f.kind);
        if let (Some(named), Some(runtime)) = (framework, server.runtime)
            && named != runtime
        {
            return Err(at(
                "framework.type",
                format!(
                    "says {} but `[server] runtime` says {}: keep one",
                    runtime_name(named),
                    runtime_name(runtime)
                ),
            ));
        }
        // A framework app is its folder: `static_dir` is where its assets
        // are (served by bext beside the app), its `entry` and package.json
        // are at its root. For any other app `static_dir` is the folder
        // served. `./dist` is said as `dist`.
        let mut server = server;
        server.static_dir = server.static_dir.map(|d| without_dot_segments(&d));
        // A folder whose file names no runtime: its package.json's
        // framework (a `static_dir` beside it is that app's assets, as
        // docs/migrating.md says).
        let says_runtime = server.runtime.is_some() || framework.is_some() || server.command.is_some();
        let detected_framework = match detect_start && !says_runtime {
            true => super::framework::detect(dir).map_err(|reason| Diagnostic::new(dir, "", reason))?,
            false => None,
        };
        let named = server
            .runtime
            .or(framework)
            .or(detected_framework.as_ref().map(|d| d.0));
        let rendered = matches!(
            named,
            Some(
                RuntimeKind::Ssr | RuntimeKind::Hybrid | RuntimeKind::Hono | RuntimeKind::Express | RuntimeKind::Nextjs
            )
        );
        let source = match rendered {
            true => dir.to_owned(),
            false => server
                .static_dir
                .clone()
                .map_or_else(|| dir.to_owned(), |s| dir.join(s)),
        };
        let said_by = |value: &str| match server.runtime {
            Some(_) => format!("`[server] runtime{value}`"),
            None => format!("`[framework] type{value}`"),
        };
        for (key, set) in [
            ("upstream", server.upstream.is_some()),
            ("api_prefix", server.api_prefix.is_some()),
        ] {
            if set && named != Some(RuntimeKind::Hybrid) {
                return Err(at(
                    &format!("server.{key}"),
                    format!(
                        "only a `hybrid` app sends requests to an upstream: set {} or remove `{key}`",
                        said_by(" = \"hybrid\"")
                    ),
                ));
            }
        }
        if let Some(url) = &server.upstream
            && let Err(why) = super::upstream::parse_upstream(url)
        {
            return Err(at("server.upstream", why));
        }
        // A directory that says nothing of how it is served: its framework
        // or start command, if it has one, else its files.
        let says = says_runtime || server.static_dir.is_some();
        let detected = match detect_start && !says && detected_framework.is_none() {
            true => super::process::detect(dir).map_err(|reason| Diagnostic::new(dir, "", reason))?,
            false => None,
        };
        if let Some(d) = &detected {
            tracing::info!("{}: a process app, from its {}", dir.display(), d.from);
        }
        // A folder of just a module exporting `fetch`: run, never served
        // as its own source (a deployed bundle as `bext run` serves it).
        let fetch_module = match !says && detected.is_none() && detected_framework.is_none() {
            true => super::framework::fetch_handler_module(dir),
            false => None,
        };
        let runtime = match (
            &detected,
            server
                .runtime
                .or(framework)
                .or(detected_framework.as_ref().map(|d| d.0)),
        ) {
            (_, Some(runtime)) => runtime,
            (Some(_), None) => RuntimeKind::Process,
            (None, None) if server.command.is_some() => RuntimeKind::Process,
            (None, None) if fetch_module.is_some() => RuntimeKind::Js,
            (None, None) => RuntimeKind::Static,
        };
        let (command, env) = match detected {
            Some(d) => (Some(d.command), d.env),
            None => (server.command, BTreeMap::new()),
        };
        let cache = cfg.cache.and_then(|c| c.isr).map(|isr| isr.plugin_config());
        let app = AppConfig {
            source: Some(source),
            domains: vec![],
            tenant_domains: BTreeMap::new(),
            runtime,
            upstream: server.upstream,
            plugins: BTreeMap::new(),
            headers: BTreeMap::new(),
            spa_fallback: server.spa_fallback,
            preserve_host: false,
            connect_timeout: None,
            response_timeout: None,
            upstreams: Vec::new(),
            balance: Default::default(),
            hash: None,
            health: None,
            retries: None,
            max_connections: None,
            queue: None,
            body_timeout: None,
            ca: None,
            insecure_skip_verify: false,
            upstream_from_bundle: false,
            http2: false,
            entry: server.entry.or(fetch_module.map(PathBuf::from)),
            env,
            command,
            instances: super::process::one_instance(),
            listen: Default::default(),
            ready: None,
            stop_timeout: super::process::default_stop_timeout(),
            crash_pause: super::process::default_crash_pause(),
            restart: Default::default(),
            limits: None,
            idle_stop: None,
            preview_env: BTreeMap::new(),
            kv: Vec::new(),
            secrets: Vec::new(),
            isolate: IsolateConfig::default(),
            hooks: None,
            rate_limit: None,
            auth: None,
            cache: None,
            tls: None,
            https_redirect: false,
            hsts: None,
            deploy: None,
            static_dir: server.static_dir.clone().filter(|_| rendered),
            api_prefix: server.api_prefix,
            layers: None,
            tls_from_platform: false,
        };
        let mut app = AppConfig {
            cache: cache.map(Box::new),
            ..app
        };
        // `[server] spa_fallback` under `[framework] type = "hono"`, say.
        if let Some((key, reason)) = super::runtime_keys::problems(&app, runtime_name).into_iter().next() {
            return Err(at(&format!("server.{key}"), reason));
        }
        let resolved = super::framework::resolve(&mut app).map_err(|e| {
            let field = match e.field() {
                "runtime" if server.runtime.is_none() && framework.is_some() => "framework.type",
                "runtime" => "server.runtime",
                "source" if rendered => "framework.type",
                "source" | "static_dir" => "server.static_dir",
                "entry" => "server.entry",
                "upstream" => "server.upstream",
                "api_prefix" => "server.api_prefix",
                "command" => "server.command",
                other => other,
            };
            let plain = Diagnostic::of_framework(dir, "", e);
            match cfg_file.exists() {
                true => {
                    let mut d = at(field, in_run_config(&plain.reason));
                    d.0.iter_mut().for_each(|d| d.problem = plain.problem);
                    d
                }
                false => plain.into(),
            }
        })?;
        let said = match (detected_framework, resolved) {
            (Some((_, why)), Some(r)) => Some(format!(
                "{} ({why}): {} app, {}",
                r.named,
                runtime_name(app.runtime),
                r.how
            )),
            (None, Some(r)) => Some(format!(
                "{} (bext.config.toml): {} app, {}",
                r.named,
                runtime_name(app.runtime),
                r.how
            )),
            _ => None,
        };
        Ok(Described {
            app,
            listen: server.listen,
            redis: cfg.redis,
            detected: said,
        })
    }
}

/// What a deployed bundle's `bext.config.toml` says of how it is served,
/// for a version deployed onto an app of the platform file
/// (`config::deployed`): read as for an app a deploy creates (no
/// `[redis]`, `[hooks]` or `[render]`), and a bundle that says nothing
/// and holds a server module says `js`, as `bext run` detects it.
pub(crate) fn bundle_says(dir: &Path) -> Result<super::deployed::BundleSays, Diagnostics> {
    let (cfg_file, cfg) = RunConfig::read(dir)?;
    for (key, set) in [
        ("redis", cfg.redis.is_some()),
        ("hooks", cfg.hooks.is_some()),
        ("render", cfg.render.is_some()),
        ("server.command", cfg.server.command.is_some()),
    ] {
        if set {
            return Err(Diagnostic::new(
                &cfg_file,
                key,
                "not a deployed bundle's: an app of the platform file takes it from its `[apps.<id>]` table",
            )
            .at(super::deployed::position_in(&cfg_file, key, false))
            .into());
        }
    }
    let server = cfg.server;
    let framework = cfg.framework.map(|f| f.kind);
    let runtime = match (server.runtime, framework) {
        (Some(a), Some(b)) if a != b => {
            return Err(Diagnostic::new(
                &cfg_file,
                "framework.type",
                format!(
                    "says {} but `[server] runtime` says {}: keep one",
                    runtime_name(b),
                    runtime_name(a)
                ),
            )
            .at(super::deployed::position_in(&cfg_file, "framework.type", false))
            .into());
        }
        (Some(a), _) => Some((a, "server.runtime")),
        (None, Some(b)) => Some((b, "framework.type")),
        (None, None) => None,
    };
    let says = runtime.is_some() || server.static_dir.is_some();
    Ok(super::deployed::BundleSays {
        file: cfg_file,
        runtime,
        module: (!says).then(|| super::framework::fetch_handler_module(dir)).flatten(),
        static_dir: server.static_dir,
        entry: server.entry,
        upstream: server.upstream,
        api_prefix: server.api_prefix,
        spa_fallback: server.spa_fallback,
        cache: cfg.cache.and_then(|c| c.isr).map(|isr| isr.plugin_config()),
    })
}

/// `path` without its `.` segments (`./dist/static` is `dist/static`), so
/// a folder joined to another prints as `/srv/site/dist/static`, never
/// `/srv/site/././dist/static`.
fn without_dot_segments(path: &Path) -> PathBuf {
    let clean: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    match clean.as_os_str().is_empty() {
        true => PathBuf::from("."),
        false => clean,
    }
}

/// A reason written for the platform file's app table, in the words of
/// bext.config.toml: `entry` is `[server] entry`, and so on.
fn in_run_config(reason: &str) -> String {
    let mut said = reason.to_owned();
    for key in ["entry", "static_dir", "upstream", "api_prefix", "command"] {
        said = said
            .replace(&format!("`{key} = "), &format!("`[server] {key} = "))
            .replace(&format!("`{key}`"), &format!("`[server] {key}`"));
    }
    said.replace("in the app's table", "in bext.config.toml")
}

/// What a directory's `bext.config.toml` (or the directory itself) says.
struct Described {
    /// The one app.
    app: AppConfig,
    /// `[server] listen`.
    listen: Option<String>,
    /// `[redis]`: edge mode.
    redis: Option<RedisSection>,
    /// The framework found, for `bext run` to say.
    detected: Option<String>,
}

/// Refuses a `tenant_domains` entry that another name of the file
/// already reaches: an app's `domains` (exact, or a wildcard above it,
/// the entry's own app's included: that name is the wildcard's tenant's),
/// `admin_hosts`, or another entry of the same name (the first app by id
/// keeps it). Entries are kept in the spelling requests are compared in.
/// The vhosts `hosts` map and default apps' certificates are judged when
/// the pipeline is built (`pipeline::app_changes`).
fn check_tenant_domains_unclaimed(
    apps: &mut BTreeMap<String, Box<AppConfig>>,
    admin_hosts: Option<&[String]>,
    fail: &mut dyn FnMut(&str, &str, String),
) {
    use bext_plugin_abi::claims::{Claim, claimed_by};
    let mut claims: Vec<Claim> = (apps.iter())
        .flat_map(|(id, a)| (a.domains.iter()).map(move |d| Claim::new(d.clone(), format!("app `{id}`'s domain"))))
        .collect();
    claims.extend((admin_hosts.into_iter().flatten()).map(|h| Claim::new(h.clone(), "`platform.admin_hosts`")));
    for (id, app) in apps.iter_mut() {
        let mut kept = BTreeMap::new();
        for (domain, tenant) in std::mem::take(&mut app.tenant_domains) {
            let Ok(host) = bext_plugin_abi::normalise_host_pattern(&domain) else {
                kept.insert(domain, tenant); // refused by `check_tenant_domain`
                continue;
            };
            if let Some(claim) = claimed_by(&host, &claims) {
                fail(
                    id,
                    &domain,
                    format!("`{domain}` is already reached by {} `{}`", claim.by, claim.pattern),
                );
                continue;
            }
            claims.push(Claim::new(host.clone(), format!("tenant `{tenant}` of app `{id}`")));
            kept.insert(host, tenant);
        }
        app.tenant_domains = kept;
    }
}

/// Whether `domain = "tenant"` in an app's `tenant_domains` can be
/// routed: one exact host name (no wildcard, pattern or IP literal), and a
/// tenant spelled as a wildcard host would capture it.
fn check_tenant_domain(domain: &str, tenant: &str) -> Result<(), String> {
    let exact = |host: &str| !(domain.starts_with('~') || host.starts_with("*.") || host.starts_with('['));
    if !exact(domain) {
        return Err(format!(
            "`{domain}`: a tenant's own domain is one exact host name (no wildcard, pattern or IP literal)"
        ));
    }
    let host = bext_plugin_abi::normalise_host_pattern(domain).map_err(|reason| format!("`{domain}`: {reason}"))?;
    if !exact(&host) {
        return Err(format!(
            "`{domain}`: a tenant's own domain is one exact host name (no wildcard, pattern or IP literal)"
        ));
    }
    let tenant_ok = !tenant.is_empty()
        && tenant.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if !tenant_ok {
        return Err(format!(
            "tenant `{tenant}`: labels of a-z 0-9 - _ joined by dots, as a wildcard host captures it"
        ));
    }
    Ok(())
}

/// `[apps.<id>] rate_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests a minute.
    pub rpm: u32,
    /// Requests allowed at once (rpm/60 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `app` (default): one budget for the whole app; `ip`: one per client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<RateLimitBy>,
}

/// Who shares a `rate_limit` budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBy {
    /// Every client of the app.
    App,
    /// Each client address.
    Ip,
}

impl AppConfig {
    /// The module of a JS app: `source`/`entry`, `index.js` by default.
    pub fn js_entry(&self) -> Option<PathBuf> {
        let source = self.source.as_ref()?;
        Some(source.join(self.entry.as_deref().unwrap_or(Path::new("index.js"))))
    }
}

fn static_runtime() -> RuntimeKind {
    RuntimeKind::Static
}
impl AppConfig {
    /// `connect_timeout`, or its default when unset.
    pub fn connect_wait(&self) -> Duration {
        self.connect_timeout.map_or(Duration::from_secs(5), |t| t.0)
    }

    /// `response_timeout`, or its default when unset.
    pub fn response_wait(&self) -> Duration {
        self.response_timeout.map_or(Duration::from_secs(60), |t| t.0)
    }
}

/// `[apps.<id>.plugins.<name>]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppPlugin {
    /// Run (or not) this plugin for this app.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Priority override for this app.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Merged over the manifest's `config` (objects key by key).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// A loaded platform: the file's settings with paths made absolute.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The file it came from (`None` for `bext run`).
    pub file: Option<PathBuf>,
    /// Its settings.
    pub settings: PlatformSection,
    /// Its apps.
    pub apps: BTreeMap<String, Box<AppConfig>>,
    /// Data directory (absolute).
    pub data_dir: PathBuf,
    /// Edge mode's Redis, from `[redis]` or `REDIS_URL`.
    pub redis: Option<RedisSection>,
    /// Each deployed bundle's `bext.config.toml` whose `[server] listen`
    /// the platform's `listen` overrides, with the app and that value:
    /// said at every load, never used.
    pub unused_bundle_listens: BTreeMap<PathBuf, (String, String)>,
    /// What deployed bundles say that the platform file's app overrides
    /// (`config::deployed`): warned at every load and by `bext check`.
    pub overridden_bundle_keys: Vec<Diagnostic>,
    /// What the file's app tables write of how each app is served, before
    /// a framework runtime is resolved: a version deployed onto the app is
    /// resolved again from it with its bundle's `bext.config.toml`
    /// (`config::deployed`). Apps a deploy created have none.
    pub declared: BTreeMap<String, super::deployed::Declared>,
    /// `[platform] tls_cert`/`tls_key` as read (and checked) at load, so
    /// the pipeline serves the very pair checked without reading the
    /// files again. `None` when unset or unusable (already reported).
    pub default_cert: Option<DefaultCert>,
}

/// A certificate and key read from files, with the names it serves.
pub type DefaultCert = Arc<(Arc<bext_tls::CertifiedKey>, bext_tls::CertInfo)>;

impl Platform {
    /// Reads and validates a platform file (`.toml`, or `.yaml`/`.yml`).
    pub fn load(file: &Path) -> Result<Platform, Diagnostics> {
        let (platform, errors) = Platform::load_lenient(file)?;
        errors.into_result(platform)
    }

    /// Like [`Platform::load`], but returns the platform even when some
    /// apps are invalid (they are left out), so `bext check` can go on to
    /// check manifests and report every error.
    pub fn load_lenient(file: &Path) -> Result<(Platform, Diagnostics), Diagnostics> {
        let file = &std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        let text = std::fs::read_to_string(file)
            .map_err(|e| Diagnostic::new(file, "", format!("cannot read platform file: {e}")))?;
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Problems found after decoding get the position of their field,
        // and the file's problems are listed in its order.
        let own = |errors: &mut Diagnostics, position: &dyn Fn(&str) -> Option<(u64, u64)>| {
            for d in errors.0.iter_mut().filter(|d| d.position.is_none() && d.file == *file) {
                d.position = position(&d.field);
            }
            errors.0.sort_by_key(|d| d.position);
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                let doc = Located::parse(file, &text)?;
                let (parsed, problems) = doc.decode_every(file);
                let parsed = parsed.ok_or_else(|| Diagnostics(problems.clone()))?;
                let (mut platform, mut errors) =
                    Platform::from_file(parsed, Some(file.to_owned()), dir, &BTreeSet::new());
                platform.note_written_runtimes(&|f| doc.has(f));
                errors.0.extend(problems);
                own(&mut errors, &|f| doc.position(f));
                Ok((platform, errors))
            }
            _ => {
                let doc = TomlDoc::parse(file, &text)?;
                let (parsed, undecoded, mut errors) = decode_toml(&doc, file);
                let (mut platform, more) = Platform::from_file(parsed, Some(file.to_owned()), dir, &undecoded);
                platform.note_written_runtimes(&|f| doc.has(f));
                errors.0.extend(more.0);
                own(&mut errors, &|f| doc.position(f));
                Ok((platform, errors))
            }
        }
    }

    /// Records which apps' tables write `runtime` (unset, a version
    /// deployed onto the app may say its own).
    fn note_written_runtimes(&mut self, written: &dyn Fn(&str) -> bool) {
        for (id, d) in self.declared.iter_mut() {
            d.runtime_written = written(&format!("apps.{id}.runtime"));
        }
    }

    /// Where `field` (a dotted path, `apps.a.auth.jwt`) stands in the
    /// platform file `file`, or its nearest written ancestor: for errors
    /// found after loading (a plugin decoding its config), read again as
    /// the file is now.
    pub fn position_in(file: &Path, field: &str) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(file).ok()?;
        match file.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Located::parse(file, &text).ok()?.position(field),
            _ => TomlDoc::parse(file, &text).ok()?.position(field),
        }
    }

    /// The apps as plugins see them.
    pub fn app_infos(&self) -> Vec<bext_plugin_abi::AppInfo> {
        self.apps
            .iter()
            .map(|(id, a)| bext_plugin_abi::AppInfo {
                id: id.clone(),
                domains: a.domains.clone(),
                tenant_domains: a.tenant_domains.clone(),
            })
            .collect()
    }

    /// A one-app platform serving `dir` as a static site (`bext run`).
    /// With `listen_tls`, the site is also served over HTTPS there with a
    /// self-signed certificate (`bext run --tls`).
    pub fn for_dir(dir: &Path, listen: Option<&str>, listen_tls: Option<&str>) -> Result<Platform, Diagnostics> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let cfg_file = dir.join("bext.config.toml");
        let Described {
            mut app,
            listen: server_listen,
            redis,
            detected,
            ..
        } = AppConfig::described_by(&dir, true)?;
        if let Some(d) = detected {
            tracing::info!("{}: detected {d}", dir.display());
        }
        if listen_tls.is_some() {
            app.tls = Some(AppTls::SelfSigned);
        }
        let mut settings = PlatformSection {
            listen: server_listen.unwrap_or_else(|| DEFAULT_RUN_LISTEN.into()),
            default_app: Some("app".into()),
            ..PlatformSection::default()
        };
        if let Some(l) = listen {
            settings.listen = l.into();
        }
        settings.listen_tls = listen_tls.map(Into::into);
        settings.watch = cfg_file.exists();
        let file = PlatformFile {
            platform: settings,
            apps: BTreeMap::from([("app".to_owned(), Box::new(app))]),
            redis,
        };
        let (mut p, mut errors) = Platform::from_file(file, None, &dir, &BTreeSet::new());
        if cfg_file.exists() {
            blame_run_config(&mut errors, &cfg_file, listen.is_some());
        }
        errors.into_result(())?;
        if cfg_file.exists() {
            p.file = Some(cfg_file);
        }
        Ok(p)
    }

    /// What `bext run DIR` found it is serving, said on stderr at start:
    /// the framework and why, or a process app's start command, or a
    /// static site; `None` when the folder's configuration is refused
    /// (serving reports why).
    pub fn run_summary(dir: &Path) -> Option<String> {
        let d = AppConfig::described_by(dir, true).ok()?;
        Some(match d.detected {
            Some(text) => text,
            None => match d.app.runtime {
                RuntimeKind::Process => format!(
                    "a process app running `{}`",
                    d.app.command.map(|c| c.to_string()).unwrap_or_default()
                ),
                RuntimeKind::Js => format!("a js app, {}", d.app.js_entry().unwrap_or_default().display()),
                RuntimeKind::Static => format!("a static site, {}", d.app.source.unwrap_or_default().display()),
                other => format!("a {} app", runtime_name(other)),
            },
        })
    }

    /// What `bext run DIR` does before serving, said on stderr: the build
    /// (`[hooks] pre_build` of its bext.config.toml, else `npm run build`
    /// when a fetch-handler app has a `build` script and no module to run
    /// yet, or a Next.js app no `.next/`) with why, run once (not on
    /// reloads).
    pub fn run_build_step(dir: &Path) -> Result<Option<(String, String)>, Diagnostics> {
        let (_, cfg) = RunConfig::read(dir)?;
        if let Some(cmd) = cfg.hooks.and_then(|h| h.pre_build) {
            return Ok(Some((cmd, "bext.config.toml [hooks] pre_build".into())));
        }
        let named = cfg.server.runtime.or(cfg.framework.map(|f| f.kind));
        let kind = match named {
            Some(k) => Some(k),
            None => super::framework::detect(dir)
                .map_err(|reason| Diagnostic::new(dir, "", reason))?
                .map(|d| d.0),
        };
        let fetch_handler = matches!(kind, Some(RuntimeKind::Hono));
        if fetch_handler
            && cfg.server.entry.is_none()
            && super::framework::fetch_handler_entry(dir).is_err()
            && super::framework::has_script(dir, "build")
        {
            return Ok(Some((
                "npm run build".into(),
                "package.json `build` script, and no built module yet".into(),
            )));
        }
        // `next start` of an unbuilt folder exits at once.
        if kind == Some(RuntimeKind::Nextjs)
            && cfg.server.command.is_none()
            && !dir.join(".next").is_dir()
            && super::framework::has_script(dir, "build")
        {
            return Ok(Some((
                "npm run build".into(),
                "package.json `build` script, and no .next/ build yet".into(),
            )));
        }
        Ok(None)
    }

    /// Validates a parsed file; invalid apps are reported and left out.
    /// `undecoded` names apps already reported as undecodable, which
    /// `default_app` may still name.
    fn from_file(
        mut f: PlatformFile,
        file: Option<PathBuf>,
        dir: &Path,
        undecoded: &BTreeSet<String>,
    ) -> (Platform, Diagnostics) {
        let name = file.clone().unwrap_or_else(|| dir.to_owned());
        let mut errors = Diagnostics::default();
        if let Err(reason) = canonical_address(&mut f.platform.listen) {
            errors.push(Diagnostic::new(&name, "platform.listen", reason));
        }
        if let Some(a) = &mut f.platform.admin_listen
            && let Err(reason) = canonical_address(a)
        {
            errors.push(Diagnostic::new(&name, "platform.admin_listen", reason));
        }
        if let Some(a) = &mut f.platform.listen_tls
            && let Err(reason) = canonical_address(a)
        {
            errors.push(Diagnostic::new(&name, "platform.listen_tls", reason));
        }
        if f.platform.acme.is_some() && f.platform.listen_tls.is_none() {
            errors.push(Diagnostic::new(
                &name,
                "platform.acme",
                "needs `[platform] listen_tls`: ACME certificates are served (and TLS-ALPN-01 answered) there",
            ));
        }
        if let Some(acme) = &mut f.platform.acme {
            check_acme(acme, dir, &mut |k, reason| {
                errors.push(Diagnostic::new(&name, format!("platform.acme.{k}"), reason));
            });
        }
        for (i, tenant) in f.platform.metrics.tenants.iter().enumerate() {
            let problem = if tenant.is_empty() {
                Some("an empty tenant name")
            } else if tenant
                .chars()
                .any(|c| c.is_uppercase() || c.is_whitespace() || c == '.')
            {
                Some("a tenant as vhosts names it: lower case, no spaces or dots (`acme` of `acme.shop.test`)")
            } else if f.platform.metrics.tenants[..i].contains(tenant) {
                Some("listed twice")
            } else {
                None
            };
            if let Some(reason) = problem {
                errors.push(Diagnostic::new(
                    &name,
                    format!("platform.metrics.tenants[{i}]"),
                    format!("`{tenant}`: {reason}"),
                ));
            }
        }
        if let Some(filter) = &f.platform.log
            && let Err(e) = tracing_subscriber::EnvFilter::builder().parse(filter)
        {
            errors.push(Diagnostic::new(
                &name,
                "platform.log",
                format!("`{filter}` is not a log filter (`info,bext::apps::proxy=debug`): {e}"),
            ));
        }
        if let Some(otel) = &f.platform.otel
            && let Err(reason) = otel.validate()
        {
            errors.push(Diagnostic::new(&name, "platform.otel", reason));
        }
        if let Some(hosts) = &mut f.platform.admin_hosts {
            for (i, host) in hosts.iter_mut().enumerate() {
                match admin_host(host) {
                    Ok(h) => *host = h,
                    Err(reason) => errors.push(Diagnostic::new(&name, format!("platform.admin_hosts[{i}]"), reason)),
                }
            }
        }
        if let Some(d) = &f.platform.default_app
            && !f.apps.contains_key(d)
            && !undecoded.contains(d)
        {
            errors.push(Diagnostic::new(
                &name,
                "platform.default_app",
                format!("no app `{d}` is declared"),
            ));
        }
        let limits = &f.platform.limits;
        for (key, value) in [
            ("header_read_timeout", limits.header_read_timeout),
            ("body_read_timeout", limits.body_read_timeout),
            ("idle_timeout", limits.idle_timeout),
            ("body_total_timeout", limits.body_total_timeout),
        ] {
            if value.is_zero() {
                errors.push(Diagnostic::new(
                    &name,
                    format!("platform.limits.{key}"),
                    "must be longer than 0",
                ));
            }
        }
        if limits.max_header_bytes < 8192 {
            // hyper's HTTP/1 buffer cannot be smaller; say so rather than round up.
            errors.push(Diagnostic::new(
                &name,
                "platform.limits.max_header_bytes",
                "must be at least 8KiB",
            ));
        }
        if limits.max_uri_bytes < 256 {
            errors.push(Diagnostic::new(
                &name,
                "platform.limits.max_uri_bytes",
                "must be at least 256 bytes",
            ));
        }
        if limits.max_connections == 0 {
            errors.push(Diagnostic::new(
                &name,
                "platform.limits.max_connections",
                "must be at least 1",
            ));
        }
        if limits.max_concurrent_streams == 0 {
            errors.push(Diagnostic::new(
                &name,
                "platform.limits.max_concurrent_streams",
                "must be at least 1",
            ));
        }
        if let Some(m) = &mut f.platform.manifests {
            *m = dir.join(&*m);
        }
        let default_cert = check_original_keys(&mut f, dir, &mut |k, reason| {
            errors.push(Diagnostic::new(&name, format!("platform.{k}"), reason));
        });
        let data_dir = dir.join(f.platform.data_dir.clone().unwrap_or_else(|| PathBuf::from(".bext")));
        let mut invalid = Vec::new();
        let mut declared = BTreeMap::new();
        // Each app's domains in the form vhosts matches them, so a domain it
        // would refuse, or one two apps claim, is blamed here, on the app's
        // own field (`~regex` patterns are compiled, and checked, by vhosts).
        let mut claimed: BTreeMap<String, String> = BTreeMap::new();
        for (id, app) in &mut f.apps {
            let before = errors.0.len();
            let field = |k: &str| format!("apps.{id}.{k}");
            if !valid_app_id(id) {
                errors.push(Diagnostic::new(
                    &name,
                    format!("apps.{id}"),
                    "app ids match [a-z0-9][a-z0-9_-]*",
                ));
            }
            if let Some(s) = &mut app.source {
                *s = dir.join(&*s);
            }
            if let Some(ca) = &mut app.ca {
                *ca = dir.join(&*ca);
            }
            for (key, reason) in super::runtime_keys::problems(app, runtime_name) {
                errors.push(Diagnostic::new(&name, field(&key), reason));
            }
            declared.insert(id.clone(), super::deployed::Declared::of(app));
            match super::framework::resolve(app) {
                Ok(Some(r)) => {
                    tracing::info!(app = %id, "runtime `{}`: {} ({})", r.named, runtime_name(app.runtime), r.how)
                }
                Ok(None) => {}
                Err(e) => {
                    errors.push(Diagnostic::of_framework(&name, field(e.field()), e));
                    invalid.push(id.clone());
                    continue;
                }
            }
            if app.tls.is_none()
                && f.platform.listen_tls.is_some()
                && let (Some(cert), Some(key)) = (&f.platform.tls_cert, &f.platform.tls_key)
            {
                app.tls = Some(AppTls::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                });
                app.tls_from_platform = true;
            }
            match app.runtime {
                RuntimeKind::Static => match &app.source {
                    None => errors.push(Diagnostic::new(
                        &name,
                        field("source"),
                        "a static app needs `source`, its document root",
                    )),
                    // Not there at all: a build output not made yet
                    // (`bext run` runs the folder's pre_build first).
                    Some(s) if !s.exists() => errors.push(Diagnostic {
                        problem: super::diag::Problem::NotBuilt,
                        ..Diagnostic::new(&name, field("source"), format!("{} is not a directory", s.display()))
                    }),
                    Some(s) if !s.is_dir() => errors.push(Diagnostic::new(
                        &name,
                        field("source"),
                        format!("{} is not a directory", s.display()),
                    )),
                    Some(_) => {}
                },
                RuntimeKind::Proxy => {
                    for (key, reason) in super::upstream::proxy_problems(app) {
                        errors.push(Diagnostic::new(&name, field(key), reason));
                    }
                }
                RuntimeKind::Js => match &app.source {
                    None => errors.push(Diagnostic::new(
                        &name,
                        field("source"),
                        "a js app needs `source`, the directory of its module",
                    )),
                    Some(_) if !app.js_entry().is_some_and(|e| e.is_file()) => errors.push(Diagnostic::new(
                        &name,
                        field("entry"),
                        format!(
                            "{} is not a file (a js app's `entry` is relative to `source`, index.js when unset)",
                            app.js_entry().unwrap_or_default().display()
                        ),
                    )),
                    Some(_) => {}
                },
                RuntimeKind::Process => {
                    for (k, reason) in super::process::check(app) {
                        errors.push(Diagnostic::new(&name, field(&k), reason));
                    }
                }
                // Turned into one of the above by `framework::resolve`.
                RuntimeKind::Hono
                | RuntimeKind::Express
                | RuntimeKind::Ssr
                | RuntimeKind::Hybrid
                | RuntimeKind::Nextjs => {}
            }
            // A `hybrid` app's `/api/*` goes through the same proxy as a
            // `proxy` app's requests: the same checks, the same errors.
            if super::upstream::forwards_api(app) {
                for (key, reason) in super::upstream::proxy_problems(app) {
                    errors.push(Diagnostic::new(&name, field(key), reason));
                }
            }
            if app.isolate.max_body_bytes.is_some() {
                errors.push(Diagnostic::new(
                    &name,
                    field("isolate.max_body_bytes"),
                    "only a JS plugin's manifest has it (`limits: { max_body_bytes }`): an app's body is bounded by [platform] max_body_bytes",
                ));
            }
            for (i, domain) in app.domains.iter().enumerate() {
                if domain.starts_with('~') {
                    continue;
                }
                let reason = match bext_plugin_abi::normalise_host_pattern(domain) {
                    Err(reason) => reason,
                    Ok(host) => match claimed.get(&host) {
                        Some(other) if other != id => format!("claimed by two apps: `{other}` and `{id}`"),
                        _ => {
                            claimed.insert(host, id.clone());
                            continue;
                        }
                    },
                };
                errors.push(Diagnostic::new(
                    &name,
                    field(&format!("domains[{i}]")),
                    format!("`{domain}`: {reason}"),
                ));
            }
            for (domain, tenant) in &app.tenant_domains {
                if let Err(reason) = check_tenant_domain(domain, tenant) {
                    errors.push(Diagnostic::new(
                        &name,
                        field(&format!("tenant_domains.\"{domain}\"")),
                        reason,
                    ));
                }
            }
            let has = Listeners {
                tls: f.platform.listen_tls.is_some(),
                acme: f.platform.acme.is_some(),
            };
            check_https(app, has, dir, &mut |k, reason| {
                errors.push(Diagnostic::new(&name, field(k), reason));
            });
            for (k, reason) in super::bindings::problems(app) {
                errors.push(Diagnostic::new(&name, field(&k), reason));
            }
            for (k, v) in &app.headers {
                if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v).is_err() {
                    errors.push(Diagnostic::new(
                        &name,
                        field(&format!("headers.{k}")),
                        "not a valid header name and value",
                    ));
                }
            }
            if errors.0.len() > before {
                invalid.push(id.clone());
            }
        }
        check_tenant_domains_unclaimed(
            &mut f.apps,
            f.platform.admin_hosts.as_deref(),
            &mut |id, domain, reason| {
                errors.push(Diagnostic::new(
                    &name,
                    format!("apps.{id}.tenant_domains.\"{domain}\""),
                    reason,
                ));
                invalid.push(id.to_owned());
            },
        );
        for id in invalid {
            f.apps.remove(&id);
        }
        if let Err(reason) = check_isolates(&f.platform, &f.apps) {
            errors.push(Diagnostic::new(&name, "platform.max_isolates", reason));
        }
        // The environment wins over the file, as a fleet's instances each
        // set their own `REDIS_URL` beside one shared file; the file's
        // `prefix` stays.
        let redis = match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
            None if f.redis.as_ref().is_some_and(|r| r.url.is_empty()) => {
                errors.push(Diagnostic::new(
                    &name,
                    "redis.url",
                    "`[redis]` has no `url`: write `url = \"redis://host:6379\"`, or set the REDIS_URL environment variable",
                ));
                None
            }
            None => f.redis,
            // Refused as `[redis] url` is, not left to log "edge mode
            // off" while the server runs without its fleet.
            Some(url) => match bext_edge::check_url(&url) {
                Err(reason) => {
                    errors.push(Diagnostic::new(&name, "REDIS_URL (environment)", reason));
                    None
                }
                Ok(()) => {
                    if f.redis.as_ref().is_some_and(|r| !r.url.is_empty() && r.url != url) {
                        tracing::info!(target: "bext::edge", "REDIS_URL (environment) is used, not the file's [redis] url");
                    }
                    Some(RedisSection {
                        url,
                        prefix: f.redis.map_or_else(default_redis_prefix, |r| r.prefix),
                        from_env: true,
                    })
                }
            },
        };
        let platform = Platform {
            file,
            settings: f.platform,
            apps: f.apps,
            data_dir,
            redis,
            unused_bundle_listens: BTreeMap::new(),
            overridden_bundle_keys: Vec::new(),
            declared,
            default_cert,
        };
        (platform, errors)
    }
}

/// Checks `[platform.acme]` the way the ACME client will use it: its own
/// checks (URLs, e-mail, limits) and a `ca_root` (made absolute) that
/// holds at least one PEM certificate; `fail(key, reason)` reports a
/// problem with the key inside `[platform.acme]`.
fn check_acme(acme: &mut bext_acme::AcmeConfig, dir: &Path, fail: &mut dyn FnMut(&str, String)) {
    // `validate` stops at the first mistake: each one found is reported,
    // set aside on a copy, and the copy checked again, so every key is.
    let mut rest = acme.clone();
    for _ in 0..8 {
        let Err(e) = rest.validate() else { break };
        let bext_acme::AcmeError::Config { field, reason } = e else {
            fail("directory", e.to_string());
            break;
        };
        fail(field, reason);
        match field {
            "directory" => rest.directory = bext_acme::LETS_ENCRYPT.into(),
            "on_demand_ask" => rest.on_demand_ask = None,
            "email" => rest.email = None,
            "on_demand_orders_per_minute" => rest.on_demand_orders_per_minute = 1,
            "order_timeout" => rest.order_timeout.0 = std::time::Duration::from_secs(1),
            "on_demand_wait" => rest.on_demand_wait.0 = std::time::Duration::from_secs(1),
            _ => break,
        }
    }
    if let Some(root) = &mut acme.ca_root {
        *root = dir.join(&*root);
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        match std::fs::read(&*root) {
            Err(e) => fail("ca_root", format!("{}: {e}", root.display())),
            Ok(pem) => {
                let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
                match certs {
                    Ok(c) if !c.is_empty() => {}
                    Ok(_) => fail("ca_root", format!("{}: no PEM certificate in it", root.display())),
                    Err(e) => fail("ca_root", format!("{}: not PEM certificates: {e}", root.display())),
                }
            }
        }
    }
}

/// Rewrites a listen address to the `IP:port` form the listeners bind:
/// besides `127.0.0.1:3060` and `[::1]:3060`, the spellings nginx and
/// Caddy users write, `localhost:3060` (the loopback), `*:443` and `:443`
/// (every IPv4 address). No name is looked up: a config check does no I/O.
fn canonical_address(address: &mut String) -> Result<(), String> {
    let reason = || format!("`{address}` is not an address like 127.0.0.1:3060, [::1]:3060, localhost:3060 or *:443");
    if address.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(reason)?;
    let port: u16 = port.parse().map_err(|_| reason())?;
    let ip: std::net::IpAddr = match host.to_ascii_lowercase().as_str() {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        "" | "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
        _ => return Err(reason()),
    };
    *address = SocketAddr::new(ip, port).to_string();
    Ok(())
}

/// Which platform-wide settings an app's `tls` can rely on.
#[derive(Clone, Copy)]
struct Listeners {
    /// `[platform] listen_tls` is set.
    tls: bool,
    /// `[platform.acme]` is there.
    acme: bool,
}

/// Checks an app's `tls`, `https_redirect` and `hsts` without I/O (the
/// certificate files are read when the pipeline is compiled) and makes
/// certificate paths absolute; `fail(field, reason)` reports a problem.
fn check_https(app: &mut AppConfig, has: Listeners, dir: &Path, fail: &mut dyn FnMut(&str, String)) {
    let has_tls_listener = has.tls;
    match &mut app.tls {
        Some(AppTls::Acme) if !has.acme => fail(
            "tls",
            "`acme` needs a `[platform.acme]` table (at least `directory`, or an empty table for Let's Encrypt); or use tls = { cert = \"file.pem\", key = \"file.key\" } or tls = \"self-signed\"".into(),
        ),
        Some(AppTls::Acme) => {}
        Some(AppTls::Files { cert, key }) => {
            *cert = dir.join(&*cert);
            *key = dir.join(&*key);
        }
        Some(AppTls::SelfSigned) | None => {}
    }
    let wants_tls = app.tls.is_some() || app.https_redirect || app.hsts.is_some();
    if wants_tls && !has_tls_listener {
        let key = if app.tls.is_some() {
            "tls"
        } else if app.https_redirect {
            "https_redirect"
        } else {
            "hsts"
        };
        fail(
            key,
            "needs `[platform] listen_tls`, the address HTTPS is served on".into(),
        );
    }
    if let Some(hsts) = &app.hsts {
        let max_age = hsts
            .split(';')
            .next()
            .map(str::trim)
            .and_then(|d| {
                d.get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("max-age="))
                    .map(|_| &d[8..])
            })
            .is_some_and(|secs| !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()));
        if !max_age || http::HeaderValue::from_str(hsts).is_err() {
            fail(
                "hsts",
                format!("`{hsts}`: starts with max-age=<seconds>, like \"max-age=31536000; includeSubDomains\""),
            );
        }
    }
}

/// The original bext's `[platform]` keys that need checking beyond their
/// types: `tls_cert` and `tls_key` go together (paths made absolute) and
/// are served on `listen_tls`, and the file's apps fit in `max_apps`.
/// The default certificate, read here once, comes back for the TLS part
/// of the pipeline to serve (`Platform::default_cert`).
fn check_original_keys(f: &mut PlatformFile, dir: &Path, fail: &mut dyn FnMut(&str, String)) -> Option<DefaultCert> {
    let p = &mut f.platform;
    let mut loaded = None;
    match (&mut p.tls_cert, &mut p.tls_key) {
        (Some(cert), Some(key)) => {
            *cert = dir.join(&*cert);
            *key = dir.join(&*key);
            if p.listen_tls.is_none() {
                fail(
                    "tls_cert",
                    "is served on `listen_tls`, which is unset: add `listen_tls = \"0.0.0.0:443\"` to [platform] (`listen` stays plain HTTP)".into(),
                );
            }
            // Read here, at its own key, not only when an app takes it: a
            // missing default would otherwise pass with no app using it.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            match bext_tls::load_pair(cert, key, now) {
                Ok(pair) => loaded = Some(Arc::new(pair)),
                Err(e) => {
                    let which = match &e {
                        bext_tls::TlsError::KeyMismatch { .. } | bext_tls::TlsError::Key { .. } => "tls_key",
                        bext_tls::TlsError::Read { path, .. } | bext_tls::TlsError::Pem { path, .. } if path == key => {
                            "tls_key"
                        }
                        _ => "tls_cert",
                    };
                    fail(which, e.to_string());
                    // Said once: no app takes (and reports) it again.
                    p.tls_cert = None;
                    p.tls_key = None;
                }
            }
        }
        (Some(_), None) => fail(
            "tls_key",
            "`tls_cert` needs `tls_key`, the file of its private key".into(),
        ),
        (None, Some(_)) => fail(
            "tls_cert",
            "`tls_key` needs `tls_cert`, the file of its certificate chain".into(),
        ),
        (None, None) => {}
    }
    if p.max_apps == Some(0) {
        fail(
            "max_apps",
            "`0` allows no app at all (it does not mean \"unlimited\"): remove `max_apps` for no limit, or write the most apps to serve".into(),
        );
    } else if let Some(max) = p.max_apps
        && f.apps.len() > max
    {
        fail(
            "max_apps",
            format!(
                "{} apps are declared, more than max_apps = {max}: raise it or remove apps",
                f.apps.len()
            ),
        );
    }
    loaded
}

/// The isolates a JS app runs: `isolate.workers` in `threads` mode (2 by
/// default); one per HTTP worker thread `inline`.
pub(crate) fn isolates_of(app: &AppConfig, settings: &PlatformSection) -> usize {
    if app.runtime != RuntimeKind::Js {
        return 0;
    }
    let limits = app.isolate.limits(IsolateConfig::APP);
    match limits.mode {
        bext_js::Mode::Threads | bext_js::Mode::Shared => limits.workers,
        bext_js::Mode::Inline => match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
    }
}

/// `max_isolates`: the JS apps' isolates added up; the error names every
/// JS app with its count, so the user sees what to cut.
pub(crate) fn check_isolates(
    settings: &PlatformSection,
    apps: &BTreeMap<String, Box<AppConfig>>,
) -> Result<(), String> {
    let Some(max) = settings.max_isolates else {
        return Ok(());
    };
    let counts: Vec<(&String, usize)> = (apps.iter())
        .filter(|(_, a)| a.runtime == RuntimeKind::Js)
        .map(|(id, a)| (id, isolates_of(a, settings)))
        .collect();
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    if total <= max {
        return Ok(());
    }
    let each: Vec<String> = counts.iter().map(|(id, n)| format!("{id}: {n}")).collect();
    Err(format!(
        "the JS apps run {total} isolates, more than max_isolates = {max} ({}): lower their `isolate.workers` or raise max_isolates",
        each.join(", ")
    ))
}

/// The name a runtime is written with, for messages.
/// `[platform] preview_ttl`, in the deploy plugin's range.
fn preview_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
    bext_plugin_abi::units::preview_ttl(d).map(Some)
}

pub(crate) fn runtime_name(r: RuntimeKind) -> &'static str {
    RUNTIMES.iter().find(|(_, k)| *k == r).map_or("?", |(name, _)| name)
}

/// Whether a relative path stays inside the folder it is relative to:
/// not absolute, and no `..` climbs above its start.
pub(crate) fn stays_inside(path: &Path) -> bool {
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
}

/// Ids users may declare; the apps a deploy adds have others.
pub(crate) fn valid_app_id(id: &str) -> bool {
    let mut b = id.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

impl RunConfig {
    /// `dir`'s `bext.config.toml` and what it says (nothing when there is
    /// none): the one reading for `bext run`, deploys and build steps.
    fn read(dir: &Path) -> Result<(PathBuf, RunConfig), Diagnostics> {
        let cfg_file = dir.join("bext.config.toml");
        if !cfg_file.exists() {
            return Ok((cfg_file, RunConfig::default()));
        }
        let text = std::fs::read_to_string(&cfg_file)
            .map_err(|e| Diagnostic::new(&cfg_file, "", format!("cannot read: {e}")))?;
        let cfg = (TomlDoc::parse(&cfg_file, &text)?.decode_all(&cfg_file))
            .map_err(super::diag::with_platform_file_guidance)?;
        Ok((cfg_file, cfg))
    }
}

/// `bext.config.toml` of a directory served by `bext run` (or of a
/// deployed bundle), with the original bext's sections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunConfig {
    #[serde(default)]
    server: RunServer,
    /// `[cache.isr]`: the app's response cache.
    #[serde(default)]
    cache: Option<RunCache>,
    /// `[redis]`: edge mode for the one app (`bext run` only).
    #[serde(default)]
    redis: Option<RedisSection>,
    /// `[framework] type`: how the folder is served.
    #[serde(default)]
    framework: Option<RunFramework>,
    /// `[hooks] pre_build`: run before `bext run` serves the folder.
    #[serde(default)]
    hooks: Option<RunHooks>,
    /// The original's `[render] rsc`: refused, naming what bext does.
    #[serde(default)]
    render: Option<toml::Value>,
}

/// `[cache]` of bext.config.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCache {
    #[serde(default)]
    isr: Option<RunIsr>,
}

/// `[cache.isr]`: the isr plugin's settings in the original's spelling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunIsr {
    /// Freshness of answers without Cache-Control, in milliseconds.
    #[serde(default)]
    default_ttl_ms: Option<u64>,
    /// Then served stale while refreshed, in milliseconds.
    #[serde(default)]
    default_swr_ms: Option<u64>,
    /// Most responses kept.
    #[serde(default)]
    max_entries: Option<u64>,
}

impl RunIsr {
    /// The isr plugin's `config` these settings are.
    fn plugin_config(&self) -> serde_json::Value {
        let mut c = serde_json::Map::new();
        if let Some(ms) = self.default_ttl_ms {
            c.insert("default_ttl".into(), format!("{ms}ms").into());
        }
        if let Some(ms) = self.default_swr_ms {
            c.insert("default_swr".into(), format!("{ms}ms").into());
        }
        if let Some(n) = self.max_entries {
            c.insert("max_entries".into(), n.into());
        }
        serde_json::Value::Object(c)
    }
}

/// `[framework]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFramework {
    /// A runtime, by bext's or the original's name (`hono`, `express`, ...).
    #[serde(rename = "type")]
    kind: RuntimeKind,
}

/// `[hooks]` of bext.config.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunHooks {
    /// Shell command that builds the folder.
    #[serde(default)]
    pre_build: Option<String>,
    /// Run after a deploy: accepted as the original writes it, and
    /// meaningless to `bext run`, which deploys nothing.
    #[serde(default)]
    #[allow(dead_code)]
    post_deploy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunServer {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    static_dir: Option<PathBuf>,
    #[serde(default)]
    spa_fallback: bool,
    #[serde(default)]
    runtime: Option<RuntimeKind>,
    #[serde(default)]
    entry: Option<PathBuf>,
    #[serde(default)]
    command: Option<CommandLine>,
    /// `hybrid`: where its `api_prefix` requests go.
    #[serde(default)]
    upstream: Option<String>,
    /// `hybrid`: the path sent to `upstream` (`/api`).
    #[serde(default)]
    api_prefix: Option<String>,
}

/// Points problems found in the platform `bext run DIR` made at the
/// `bext.config.toml` lines they come from (`[server] static_dir` for the
/// app's source, say), with their line and column; `--listen` given on the
/// command line is blamed on the flag.
fn blame_run_config(errors: &mut Diagnostics, cfg_file: &Path, listen_flag: bool) {
    let Ok(text) = std::fs::read_to_string(cfg_file) else {
        return;
    };
    let Ok(doc) = TomlDoc::parse(cfg_file, &text) else {
        return;
    };
    for d in &mut errors.0 {
        let field = match d.field.as_str() {
            "platform.listen" if listen_flag => {
                d.field = "--listen".into();
                continue;
            }
            "platform.listen" => "server.listen",
            "apps.app.source" => "server.static_dir",
            "apps.app.entry" => "server.entry",
            "apps.app.runtime" if doc.position("server.runtime").is_none() && doc.position("framework").is_some() => {
                "framework.type"
            }
            "apps.app.runtime" => "server.runtime",
            "apps.app.upstream" => "server.upstream",
            "apps.app.api_prefix" => "server.api_prefix",
            "apps.app.static_dir" => "server.static_dir",
            _ => continue,
        };
        d.file = cfg_file.to_owned();
        d.field = field.into();
        d.position = doc.position(field);
    }
}

/// Decodes a TOML platform file part by part (each top-level section, and
/// each app on its own), so one bad value does not hide the others: every
/// decoding error is returned, with the names of the apps that could not be
/// decoded (left out, the rest still validated).
fn decode_toml(doc: &TomlDoc<'_>, file: &Path) -> (PlatformFile, BTreeSet<String>, Diagnostics) {
    let mut f = PlatformFile {
        platform: PlatformSection::default(),
        apps: BTreeMap::new(),
        redis: None,
    };
    let mut undecoded = BTreeSet::new();
    let mut errors = Diagnostics::default();
    let root = doc.root();
    for (key, value) in root.get_ref() {
        if key.get_ref() == "apps"
            && let toml::de::DeValue::Table(apps) = value.get_ref()
        {
            for (id, app) in apps {
                let id = id.get_ref().to_string();
                let (decoded, problems) = doc.decode_every::<AppConfig>(file, &format!("apps.{id}"), app.clone());
                errors.0.extend(problems);
                match decoded {
                    Some(app) => {
                        f.apps.insert(id, Box::new(app));
                    }
                    None => {
                        undecoded.insert(id);
                    }
                }
            }
            continue;
        }
        // One section at a time through the whole file's type, so unknown
        // sections get serde's own message.
        let section = toml::de::DeTable::from_iter([(key.clone(), value.clone())]);
        let section = toml::Spanned::new(root.span(), toml::de::DeValue::Table(section));
        let (decoded, problems) = doc.decode_every::<PlatformFile>(file, "", section);
        errors.0.extend(problems);
        if let Some(part) = decoded {
            if key.get_ref() == "platform" {
                f.platform = part.platform;
            }
            f.redis = f.redis.or(part.redis);
        }
    }
    (f, undecoded, errors)
}

/// Reads `"10s"`, `"500ms"`, `"2m"`, `"1h"`; a bare number is an error.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Span::deserialize(d).map(|s| s.0)
}

/// Reads `"10MiB"`, `"64kb"`, `"1g"` or a number of bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    ByteSize::deserialize(d).map(|s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_have_positions_and_unknown_keys_fail() {
        let text = "[platform]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n";
        let file = Path::new("p.toml");
        let (_, _, e) = decode_toml(&TomlDoc::parse(file, text).unwrap(), file);
        let e = e.to_string();
        assert!(e.starts_with("p.toml:3:1: platform.listen_port:"), "{e}");
        assert!(e.contains("unknown field `listen_port`"), "{e}");
    }

    #[test]
    fn every_toml_decoding_error_is_reported_with_its_field() {
        let text = "[platform]\nworkers = 'x'\n[apps.a]\nsource = '.'\n[apps.b]\nrate_limit = { rpm = 'x' }\n[apps.c]\nspa_fallback = 3\n[nope]\n";
        let file = Path::new("p.toml");
        let (f, undecoded, e) = decode_toml(&TomlDoc::parse(file, text).unwrap(), file);
        assert_eq!(f.apps.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(undecoded, BTreeSet::from(["b".to_owned(), "c".to_owned()]));
        let text = e.to_string();
        for want in [
            "p.toml:2:11: platform.workers:",
            "p.toml:6:22: apps.b.rate_limit.rpm:",
            "p.toml:8:16: apps.c.spa_fallback:",
            "p.toml:9:2: nope: unknown field `nope`",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn a_preview_ttl_out_of_the_deploy_range_and_zero_workers_are_refused_at_their_key() {
        for (ttl, ok) in [
            ("0s", false),
            ("5000d", false),
            ("500ms", false),
            ("1s", true),
            ("3650d", true),
        ] {
            let text = format!("[platform]\npreview_ttl = '{ttl}'\n");
            let file = Path::new("p.toml");
            let (f, _, e) = decode_toml(&TomlDoc::parse(file, &text).unwrap(), file);
            let text = e.to_string();
            match ok {
                true => assert!(text.is_empty() && f.platform.preview_ttl.is_some(), "{ttl}: {text}"),
                false => assert!(
                    text.contains("p.toml:2:15: platform.preview_ttl: a preview lives") && text.contains("\"3650d\""),
                    "{ttl}: {text}"
                ),
            }
        }
        let text = "[apps.j]\nruntime = 'js'\nisolate = { workers = 0 }\n";
        let file = Path::new("p.toml");
        let (_, _, e) = decode_toml(&TomlDoc::parse(file, text).unwrap(), file);
        assert!(e.to_string().contains("apps.j.isolate.workers: 0 isolates"), "{e}");
    }

    #[test]
    fn an_isolate_heap_without_a_unit_or_too_small_is_refused_with_what_to_write() {
        let text = "[apps.a]\nruntime = 'js'\nisolate = { memory_limit = 128 }\n[apps.b]\nruntime = 'js'\nisolate = { memory_limit = '1KiB' }\n[apps.c]\nruntime = 'js'\nisolate = { memory_limit = '128' }\n[apps.d]\nruntime = 'js'\nisolate = { memory_limit = '8MiB' }\n";
        let file = Path::new("p.toml");
        let (f, _, e) = decode_toml(&TomlDoc::parse(file, text).unwrap(), file);
        let text = e.to_string();
        for want in [
            "p.toml:3:28: apps.a.isolate.memory_limit: `128` has no unit: a memory limit is written with one, e.g. \"128MiB\"",
            "p.toml:6:28: apps.b.isolate.memory_limit: 1024 bytes is too small for a JS heap: write at least \"8MiB\"",
            "p.toml:9:28: apps.c.isolate.memory_limit: `128` has no unit",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert_eq!(f.apps["d"].isolate.memory_limit, Some(ByteSize(8 << 20)));
    }

    #[test]
    fn listen_addresses_in_the_spellings_users_write() {
        for (given, bound) in [
            ("127.0.0.1:3060", "127.0.0.1:3060"),
            ("[::1]:3443", "[::1]:3443"),
            ("localhost:3443", "127.0.0.1:3443"),
            ("LocalHost:80", "127.0.0.1:80"),
            ("*:443", "0.0.0.0:443"),
            (":443", "0.0.0.0:443"),
        ] {
            let mut a = given.to_owned();
            canonical_address(&mut a).unwrap();
            assert_eq!(a, bound, "{given}");
        }
        for bad in [
            "nope",
            "localhost",
            "localhost:99999",
            "example.com:80",
            "127.0.0.1",
            ":",
            "*:x",
            "[::1]",
        ] {
            let mut a = bad.to_owned();
            let e = canonical_address(&mut a).unwrap_err();
            assert!(e.contains("is not an address"), "{bad}: {e}");
            assert_eq!(a, bad, "left as written");
        }
    }

    #[test]
    fn toml_syntax_errors_name_the_field_of_their_line() {
        let text = "[platform]\nlisten = '127.0.0.1:1'\nworkers = 3x\n";
        let e = TomlDoc::parse(Path::new("p.toml"), text).err().unwrap().to_string();
        assert!(e.starts_with("p.toml:3:11: platform.workers: "), "{e}");
    }

    #[test]
    fn yaml_platform_files_work_too() {
        let file = Path::new("p.yaml");
        let parse_yaml = |text| Located::parse(file, text).unwrap().decode_every::<PlatformFile>(file);
        let (f, errors) = parse_yaml("platform:\n  listen: 127.0.0.1:9\n  limits:\n    max_body_bytes: 1KiB\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(f.unwrap().platform.limits.max_body_bytes, 1024);
        let (_, errors) = parse_yaml("platform:\n  limits:\n    max_body: 1\n    idle_timeout: soon\n");
        let e = Diagnostics(errors).to_string();
        assert!(e.starts_with("p.yaml:3:5: platform.limits.max_body"), "{e}");
        assert!(
            e.contains("p.yaml:4:5: platform.limits.idle_timeout"),
            "every error: {e}"
        );
    }

    #[test]
    fn every_error_of_a_section_is_reported_not_only_the_first() {
        let file = Path::new("p.toml");
        let text = "[platform]\nlisten = 5\nlistne = 1\n[platform.limits]\nbogus = 1\nidle_timeout = \"x\"\n\n[apps.a]\nsource = \".\"\ncolour = 1\nshade = 2\n\n[apps.b]\nsource = \".\"\nruntime = 7\ndomains = [\"a.test\", 3]\n";
        let (f, undecoded, e) = decode_toml(&TomlDoc::parse(file, text).unwrap(), file);
        let e = e.to_string();
        for want in [
            "p.toml:2:10: platform.listen: invalid type",
            "p.toml:3:1: platform.listne: unknown field",
            "p.toml:5:1: platform.limits.bogus: unknown field",
            "p.toml:6:16: platform.limits.idle_timeout: ",
            "p.toml:10:1: apps.a.colour: unknown field",
            "p.toml:11:1: apps.a.shade: unknown field",
            "p.toml:15:11: apps.b.runtime: ",
            "p.toml:16:22: apps.b.domains[1]: invalid type",
        ] {
            assert!(e.contains(want), "missing `{want}` in\n{e}");
        }
        // Taking a bad key out never invents a "missing field" error.
        assert!(!e.contains("missing field"), "{e}");
        // An app whose only problems are unknown keys is still checked (its
        // other fields mean what they say); one with a wrong type is not.
        assert!(f.apps.contains_key("a"));
        assert_eq!(undecoded, BTreeSet::from(["b".to_owned()]));
    }

    #[test]
    fn limits_that_cannot_work_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f: PlatformFile = toml::from_str(
            "[platform.limits]\nidle_timeout = \"0s\"\nmax_header_bytes = 1024\nmax_concurrent_streams = 0\n",
        )
        .unwrap();
        let (_, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        let text = e.to_string();
        for want in [
            "limits.idle_timeout",
            "limits.max_header_bytes: must be at least 8KiB",
            "max_concurrent_streams",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn admin_hosts_are_kept_as_requests_are_compared() {
        let dir = tempfile::tempdir().unwrap();
        let f: PlatformFile =
            toml::from_str("[platform]\nadmin_hosts = ['Admin.Example.COM.', '[0:0::1]', '10.0.0.5']\n").unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        assert!(e.0.is_empty(), "{e}");
        let hosts = p.settings.admin_hosts.unwrap();
        assert_eq!(hosts, ["admin.example.com", "[::1]", "10.0.0.5"]);

        let f: PlatformFile = toml::from_str(
            "[platform]\nadmin_hosts = ['ok.test', '*.example.com', 'admin.test:8443', '[::1]:80', '']\n",
        )
        .unwrap();
        let (_, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        let text = e.to_string();
        for want in [
            "admin_hosts[1]: `*.example.com` is not a host name",
            "admin_hosts[2]: `admin.test:8443`: a host without port",
            "admin_hosts[3]",
            "admin_hosts[4]",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("admin_hosts[0]"), "{text}");
    }

    #[test]
    fn metrics_tenants_are_checked_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f: PlatformFile = toml::from_str(
            "[platform.metrics]
tenants = ['acme', 'Globex', '', 'acme', 'a.b']
",
        )
        .unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        let text = e.to_string();
        for want in [
            "platform.metrics.tenants[1]: `Globex`: a tenant as vhosts names it",
            "platform.metrics.tenants[2]: ``: an empty tenant name",
            "platform.metrics.tenants[3]: `acme`: listed twice",
            "platform.metrics.tenants[4]: `a.b`",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("tenants[0]"), "{text}");
        assert!(p.settings.metrics.enabled, "on unless switched off");
        assert!(
            toml::from_str::<PlatformFile>(
                "[platform.metrics]
tennants = []
"
            )
            .is_err()
        );
    }

    #[test]
    fn app_tls_is_files_self_signed_or_acme_in_toml_and_yaml() {
        let f: PlatformFile = toml::from_str(
            "[apps.a]\ntls = 'self-signed'\n[apps.b]\ntls = { cert = 'c.pem', key = 'k.pem' }\n[apps.c]\ntls = 'acme'\n",
        )
        .unwrap();
        assert_eq!(f.apps["a"].tls, Some(AppTls::SelfSigned));
        assert_eq!(
            f.apps["b"].tls,
            Some(AppTls::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(f.apps["c"].tls, Some(AppTls::Acme));
        for bad in [
            "tls = 'selfsigned'",
            "tls = { cert = 'c.pem' }",
            "tls = { cert = 'c', key = 'k', chain = 'x' }",
            "tls = true",
        ] {
            let e = toml::from_str::<PlatformFile>(&format!("[apps.a]\n{bad}\n")).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        let file = Path::new("p.yaml");
        let yaml = "apps:\n  a:\n    tls:\n      cert: c.pem\n      key: k.pem\n  b:\n    tls: self-signed\n";
        let (f, errors) = Located::parse(file, yaml).unwrap().decode_every::<PlatformFile>(file);
        assert!(errors.is_empty(), "{errors:?}");
        let f = f.unwrap();
        assert!(matches!(f.apps["a"].tls, Some(AppTls::Files { .. })));
        assert_eq!(f.apps["b"].tls, Some(AppTls::SelfSigned));
    }

    #[test]
    fn https_settings_are_checked_and_certificate_paths_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        let f: PlatformFile = toml::from_str(
            "[platform]\nlisten_tls = '127.0.0.1:0'\n[apps.a]\nsource = 's'\ntls = { cert = 'c/a.pem', key = 'c/a.key' }\nhsts = 'max-age=60; preload'\nhttps_redirect = true\n",
        )
        .unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        assert!(e.0.is_empty(), "{e}");
        assert_eq!(
            p.apps["a"].tls,
            Some(AppTls::Files {
                cert: dir.path().join("c/a.pem"),
                key: dir.path().join("c/a.key")
            })
        );

        let f: PlatformFile = toml::from_str(
            "[platform]\nlisten_tls = 'nope'\n[apps.a]\nsource = 's'\ntls = 'acme'\n[apps.b]\nsource = 's'\nhsts = 'max-age=soon'\n[apps.c]\nsource = 's'\nhsts = 'MAX-AGE=5'\n",
        )
        .unwrap();
        let (_, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        let text = e.to_string();
        for want in [
            "platform.listen_tls: `nope` is not an address",
            "apps.a.tls: `acme` needs a `[platform.acme]` table",
            "apps.b.hsts: `max-age=soon`: starts with max-age=<seconds>",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("apps.c"), "{text}");

        let f: PlatformFile = toml::from_str("[apps.a]\nsource = 's'\ntls = 'self-signed'\n").unwrap();
        let (_, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        assert!(
            e.to_string().contains("apps.a.tls: needs `[platform] listen_tls`"),
            "{e}"
        );
    }

    #[test]
    fn acme_apps_need_platform_acme_and_its_mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        let f: PlatformFile = toml::from_str(
            "[platform]\nlisten_tls = '127.0.0.1:0'\n[platform.acme]\ndirectory = 'https://127.0.0.1:14000/dir'\n[apps.a]\nsource = 's'\ndomains = ['a.test']\ntls = 'acme'\n",
        )
        .unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        assert!(e.0.is_empty(), "{e}");
        assert_eq!(p.apps["a"].tls, Some(AppTls::Acme));
        assert_eq!(
            p.settings.acme.as_ref().map(|a| a.directory.as_str()),
            Some("https://127.0.0.1:14000/dir")
        );

        let f: PlatformFile = toml::from_str(
            "[platform]\nlisten_tls = '127.0.0.1:0'\n[platform.acme]\nemail = 'nobody'\non_demand_ask = 'file:///etc/passwd'\nca_root = 'empty.pem'\n[apps.a]\nsource = 's'\ntls = 'acme'\n",
        )
        .unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        let text = e.to_string();
        for want in [
            "platform.acme.on_demand_ask: `file:///etc/passwd` is not an http(s) URL with a host",
            "platform.acme.ca_root: ",
            "empty.pem: no PEM certificate in it",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(p.apps.contains_key("a"), "the app itself is fine: {text}");
        let f: PlatformFile = toml::from_str("[platform.acme]\nemail = 'nobody'\n[apps.a]\nsource = 's'\n").unwrap();
        let (_, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        for want in [
            "platform.acme.email: `nobody` is not an e-mail address",
            "platform.acme: needs `[platform] listen_tls`",
        ] {
            assert!(e.to_string().contains(want), "missing {want} in\n{e}");
        }
        assert!(toml::from_str::<PlatformFile>("[platform.acme]\nchallenge = 'dns-01'\n").is_err());
    }

    #[test]
    fn every_app_problem_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f: PlatformFile = toml::from_str(
            "[platform]\nlisten='nope'\ndefault_app='ghost'\n[apps.a]\nruntime='proxy'\n[apps.b]\nsource='missing'\n[apps.c]\nruntime='process'\n[apps.d]\nruntime='js'\nsource='.'\nentry='nope.js'\n",
        )
        .unwrap();
        let (p, e) = Platform::from_file(f, Some("p.toml".into()), dir.path(), &BTreeSet::new());
        assert!(p.apps.is_empty(), "invalid apps are left out");
        let text = e.to_string();
        for want in [
            "platform.listen",
            "platform.default_app",
            "apps.a.upstream",
            "apps.b.source",
            "apps.c.source",
            "apps.c.command",
            "apps.d.entry",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    /// A tenant's own domain in the platform file is one exact host with a
    /// tenant a wildcard could capture; anything else names the field.
    #[test]
    fn tenant_domains_that_another_name_of_the_file_reaches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        let file = dir.path().join("platform.toml");
        let load = |text: &str| {
            std::fs::write(&file, format!("[platform]\nadmin_hosts = [\"Admin.Lab.Test\"]\n{text}")).unwrap();
            Platform::load(&file)
        };
        for (apps, field, why) in [
            (
                "[apps.shop]\nsource = \"s\"\ndomains = [\"*.shop.test\"]\n[apps.saas]\nsource = \"s\"\ntenant_domains = { \"Y.Shop.Test.\" = \"t\" }\n",
                "apps.saas.tenant_domains.\"Y.Shop.Test.\"",
                "app `shop`'s domain `*.shop.test`",
            ),
            (
                "[apps.saas]\nsource = \"s\"\ndomains = [\"*.saas.test\"]\ntenant_domains = { \"acme.saas.test\" = \"evil\" }\n",
                "apps.saas.tenant_domains.\"acme.saas.test\"",
                "app `saas`'s domain",
            ),
            (
                "[apps.site]\nsource = \"s\"\ndomains = [\"www.cust.test\"]\n[apps.saas]\nsource = \"s\"\ntenant_domains = { \"WWW.cust.test\" = \"t\" }\n",
                "apps.saas.tenant_domains.\"WWW.cust.test\"",
                "app `site`'s domain",
            ),
            (
                "[apps.saas]\nsource = \"s\"\ntenant_domains = { \"admin.lab.test\" = \"t\" }\n",
                "apps.saas.tenant_domains.\"admin.lab.test\"",
                "`platform.admin_hosts`",
            ),
            (
                "[apps.a]\nsource = \"s\"\ntenant_domains = { \"vip.cust.test\" = \"vip\" }\n[apps.b]\nsource = \"s\"\ntenant_domains = { \"VIP.cust.test.\" = \"evil\" }\n",
                "apps.b.tenant_domains.\"VIP.cust.test.\"",
                "tenant `vip` of app `a`",
            ),
        ] {
            let err = load(apps).unwrap_err().to_string();
            assert!(err.contains(field), "{apps}: {err}");
            assert!(err.contains(why), "{apps}: {err}");
        }
        let ok = load("[apps.saas]\nsource = \"s\"\ndomains = [\"*.saas.test\"]\ntenant_domains = { \"Shop.Cust.Test.\" = \"c\" }\n")
            .unwrap();
        assert_eq!(
            ok.apps["saas"].tenant_domains.keys().collect::<Vec<_>>(),
            ["shop.cust.test"]
        );
    }

    #[test]
    fn tenant_domains_are_exact_hosts_with_plain_tenants() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        let load = |table: &str| {
            let file = dir.path().join("p.toml");
            std::fs::write(
                &file,
                format!("[platform]\n[apps.a]\nsource = \"s\"\ntenant_domains = {table}\n"),
            )
            .unwrap();
            Platform::load(&file).map(|p| p.apps["a"].tenant_domains.clone())
        };
        let ok = load(r#"{ "Shop.Customer.COM." = "customer", "b.test" = "eu.acme_1" }"#).unwrap();
        assert_eq!(ok.len(), 2);
        for (table, want) in [
            (r#"{ "*.customer.com" = "c" }"#, "one exact host name"),
            (r#"{ "[::1]" = "c" }"#, "one exact host name"),
            (r#"{ "~^x$" = "c" }"#, "one exact host name"),
            (
                r#"{ "a.test:443" = "c" }"#,
                "without scheme, path or port: write \"a.test\"",
            ),
            (r#"{ "a.test" = "" }"#, "tenant ``"),
            (r#"{ "a.test" = "Bad Tenant" }"#, "tenant `Bad Tenant`"),
        ] {
            let err = load(table).unwrap_err().to_string();
            assert!(err.contains("apps.a.tenant_domains."), "{table}: {err}");
            assert!(err.contains(want), "{table}: {err}");
        }
    }
}

#[cfg(test)]
mod footprint {
    use super::AppConfig;

    /// Every configured app keeps its `AppConfig` in the platform's map
    /// for as long as it runs (10,000 apps: 10,000 of them). Settings most
    /// apps leave unset (a proxy's health check and hash key, a process's
    /// ready check, plugin shortcuts, a framework's layers, an isolate's
    /// fetch limits) are boxed: 1,232 bytes before, 920 after.
    #[test]
    fn an_app_config_keeps_rarely_set_settings_boxed() {
        let size = std::mem::size_of::<AppConfig>();
        assert!(
            size <= 920,
            "AppConfig grew to {size} bytes: box what most apps leave unset"
        );
        let isolate = std::mem::size_of::<crate::config::isolate::IsolateConfig>();
        assert!(isolate <= 144, "IsolateConfig grew to {isolate} bytes");
    }
}
