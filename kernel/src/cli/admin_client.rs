//! How the CLI reaches a plugin's admin routes: over HTTP on a running
//! server (with the admin token), or, with none running, in-process: the
//! plugin is built from its manifest as a server builds it, `on_init` runs,
//! and it gets the very request the server would have passed it, minus the
//! token check (whoever runs the command holds the data directory). The
//! CLI names no plugin type either way: it speaks the admin API's JSON.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bext_plugin_abi::admin::LocalUpload;
use bext_plugin_abi::{Body, Ctx, Hooks, Host, Plugin, RequestId, Setup};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::config::platform::Platform;

/// A plugin's admin API, on a server or in this process.
pub(super) struct AdminClient {
    target: Target,
    /// The platform file the command was pointed at.
    pub(super) platform: Platform,
    runtime: tokio::runtime::Runtime,
}

enum Target {
    /// `host`: the `Host` to send, when the URL's is not one of the
    /// platform's `admin_hosts`.
    Server {
        base: String,
        token: String,
        host: Option<String>,
    },
    Local {
        plugin: Arc<dyn Plugin>,
        base: String,
    },
}

impl AdminClient {
    /// The admin API of `plugin` on `--server URL` when given; else on the
    /// platform's server if one answers on its `admin_listen` address,
    /// then on its `listen` address; else in this process, on the
    /// platform's data directory. A server is asked under the first of
    /// the platform's `admin_hosts` unless the URL names one of them.
    /// `doing` says what the command does there (`to list its apps`), for
    /// the error when no token is set.
    pub(super) fn find(config: &Path, server: Option<&str>, plugin: &str, doing: &str) -> anyhow::Result<AdminClient> {
        let platform = Platform::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut manifests = crate::pipeline::load_manifests(&platform).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !manifests.iter().any(|m| m.name == plugin && m.enabled) {
            anyhow::bail!("the {plugin} plugin is off in the manifests of {}", config.display());
        }
        let reg = crate::loader::find(plugin).with_context(|| format!("this bext has no {plugin} plugin built in"))?;
        // The table as the server builds it (the registry's previews and
        // tenant domains applied), so that an in-process plugin judges
        // the same hosts taken as a server would.
        let mut table = platform.clone();
        // Past `max_apps` or `max_isolates` already, it is still the table
        // the plugin must count: what would add more is refused.
        if let Err(e) = crate::pipeline::app_changes::apply_unlimited(&mut table, &manifests) {
            eprintln!("warning: the apps the registry adds are left out: {e}");
            table = platform.clone();
        }
        crate::pipeline::app_changes::pass_isolates(&table, &mut manifests);
        let manifest = (manifests.iter())
            .find(|m| m.name == plugin && m.enabled)
            .context("the plugin's manifest")?;
        let apps: Arc<[_]> = table.app_infos().into();
        let setup = Setup {
            plugin,
            base: manifest.base.as_deref(),
            apps: &apps,
            data_dir: &platform.data_dir,
        };
        // As the server builds it: a manifest without `config` is all defaults.
        let instance = (reg.factory)(manifest.config.clone(), &setup)
            .map_err(|e| anyhow::anyhow!("{}: config: {e}", manifest.file.display()))?;
        let routes = instance
            .admin_routes()
            .filter(|_| instance.hooks().has(Hooks::ADMIN))
            .with_context(|| format!("the {plugin} plugin has no admin routes"))?;
        let base = routes.base().to_owned();
        let token_env = routes
            .token_env_name()
            .unwrap_or(&platform.settings.admin_token_env)
            .to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let url = match server {
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None => platform
                .settings
                .admin_listen
                .as_deref()
                .and_then(answering)
                .or_else(|| answering(&platform.settings.listen))
                .map(|addr| format!("http://{addr}")),
        };
        let target = match url {
            Some(url) => {
                let token = std::env::var(&token_env)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .with_context(|| {
                        format!("a bext server answers at {url}: set {token_env} {doing} through its admin API")
                    })?;
                Target::Server {
                    host: admin_host(&platform, &url),
                    base: format!("{url}{base}"),
                    token,
                }
            }
            None => {
                // No background tasks here: the command ends with its request.
                let host = Host::new(platform.data_dir.clone(), apps, Arc::new(|_task| {}));
                if instance.hooks().has(Hooks::INIT) {
                    runtime
                        .block_on(instance.on_init(&host).resolve())
                        .with_context(|| format!("the {plugin} plugin"))?;
                }
                Target::Local { plugin: instance, base }
            }
        };
        Ok(AdminClient {
            target,
            platform,
            runtime,
        })
    }

    /// `method` on `path` (with its query) under the plugin's base; the
    /// answer's JSON, or the error it carried. `upload` is a tar archive
    /// for a server, and the directory itself in-process.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        upload: Option<Upload<'_>>,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(method, path, upload.map_or(Payload::None, Payload::Upload))
    }

    /// `method` on `path` with `body` as JSON; as [`AdminClient::call`].
    pub(super) fn call_json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(method, path, Payload::Json(serde_json::to_vec(body)?))
    }

    fn send(&self, method: &str, path: &str, payload: Payload<'_>) -> anyhow::Result<serde_json::Value> {
        let (status, bytes, url) = match &self.target {
            Target::Server { base, token, host } => {
                let url = format!("{base}{path}");
                let mut req = http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .header("x-bext-user", user());
                if let Some(host) = host {
                    req = req.header(http::header::HOST, host);
                }
                let body = match payload {
                    Payload::Upload(upload) => {
                        req = req.header(http::header::CONTENT_TYPE, "application/x-tar");
                        upload.pack()?
                    }
                    Payload::Json(json) => {
                        req = req.header(http::header::CONTENT_TYPE, "application/json");
                        json
                    }
                    Payload::None => Vec::new(),
                };
                let req = req.body(Full::new(Bytes::from(body)))?;
                let (status, bytes) = self.runtime.block_on(async {
                    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .build_http::<Full<Bytes>>();
                    let res = client.request(req).await.with_context(|| url.clone())?;
                    let status = res.status();
                    anyhow::Ok((status, res.into_body().collect().await?.to_bytes()))
                })?;
                (status, bytes, url)
            }
            Target::Local { plugin, base } => {
                let url = format!("{base}{path}");
                let builder = http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("x-bext-user", user());
                let (body, upload) = match payload {
                    Payload::Json(json) => (Body::from(json), None),
                    Payload::Upload(upload) => (Body::empty(), Some(upload)),
                    Payload::None => (Body::empty(), None),
                };
                let mut req = builder.body(body)?;
                if let Some(Upload { dir, progress, .. }) = upload {
                    req.extensions_mut().insert(LocalUpload {
                        dir: dir.to_owned(),
                        progress,
                    });
                }
                let cx = Ctx::new(RequestId(0), SocketAddr::from(([127, 0, 0, 1], 0)));
                let (status, bytes) = self.runtime.block_on(async {
                    let res = plugin.admin(&mut req, &cx).resolve().await?;
                    let status = res.status();
                    anyhow::Ok((
                        status,
                        res.into_body()
                            .collect()
                            .await
                            .map_err(|e| anyhow::anyhow!(e))?
                            .to_bytes(),
                    ))
                })?;
                (status, bytes, url)
            }
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{url} answered {status}: {}", String::from_utf8_lossy(&bytes).trim()))?;
        if !status.is_success() {
            bail!("{}", value["error"].as_str().unwrap_or(status.as_str()));
        }
        Ok(value)
    }
}

/// What a request carries.
enum Payload<'a> {
    None,
    /// A deploy's directory.
    Upload(Upload<'a>),
    /// A JSON body.
    Json(Vec<u8>),
}

/// A directory to upload, and who hears of its files when they are stored
/// in-process.
pub(super) struct Upload<'a> {
    /// The directory.
    pub(super) dir: &'a Path,
    /// Told of each file stored (in-process only).
    pub(super) progress: Arc<bext_plugin_abi::admin::Progress>,
    /// Whether to say what is uploaded.
    pub(super) quiet: bool,
}

impl Upload<'_> {
    /// The directory as a tar archive: links go as links, and a file with
    /// holes as its bytes (the server refuses links and sparse entries, and
    /// counts holes).
    fn pack(self) -> anyhow::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.sparse(false);
        tar.append_dir_all(".", self.dir)
            .with_context(|| format!("{}: cannot pack", self.dir.display()))?;
        let archive = tar.into_inner()?;
        if !self.quiet {
            eprintln!(
                "uploading {} ({})",
                self.dir.display(),
                super::human::size(archive.len() as u64)
            );
        }
        Ok(archive)
    }
}

/// The `Host` to send to `url`: the first of the platform's `admin_hosts`
/// when there are some and the URL's host is none of them (bext serves
/// admin routes on the public listener only for those hosts).
fn admin_host(platform: &Platform, url: &str) -> Option<String> {
    let hosts = platform.settings.admin_hosts.as_ref()?;
    let named = url.parse::<http::Uri>().ok().and_then(|u| {
        u.authority()
            .and_then(|a| bext_plugin_abi::normalise_host(a.as_str().as_bytes()).ok())
    });
    match named {
        Some(h) if hosts.iter().any(|a| **a == *h) => None,
        _ => hosts.first().cloned(),
    }
}

/// The address of a server listening on `listen`, if one answers.
fn answering(listen: &str) -> Option<SocketAddr> {
    let addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.port() == 0 {
        return None;
    }
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    Some(addr)
}

/// Who runs the command, for the registry's records (`deployed_by`,
/// events): `<user> (cli)`, or `cli` when the environment names no user
/// the registry would take (1 to 50 printable ASCII characters). Sent as
/// `X-Bext-User`, which any API caller may set (`api` when none does).
fn user() -> String {
    let named = ["USER", "LOGNAME"].into_iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .map(|u| u.trim().to_owned())
            .filter(|u| (1..=50).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    });
    match named {
        Some(user) => format!("{user} (cli)"),
        None => "cli".into(),
    }
}
