//! `bext deploy`, `promote`, `rollback` and `apps`: the deploy plugin's
//! admin API ([`AdminClient`]), on a running server or in this process,
//! printed as tables or JSON.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use super::admin_client::{AdminClient, Upload};
use super::human::size;
use crate::pipeline::preview_domains;

/// The plugin whose admin API these commands use.
const PLUGIN: &str = "deploy";

/// Bytes of a name escaped in a URL path: all but letters, digits and
/// `-_.~`.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `name` as one URL path segment: an app id is sent as given, for the
/// registry to judge, never read as more of the path.
pub(super) fn segment(name: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(name, ESCAPED)
}

/// `println!` that gives up quietly when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(super) use out;

/// Where a command works, and how it prints.
pub(crate) struct At<'a> {
    /// The platform file.
    pub config: &'a Path,
    /// `--server`.
    pub server: Option<&'a str>,
    /// `--json`.
    pub json: bool,
}

impl At<'_> {
    /// The deploy plugin's admin API; `doing` is what the command does
    /// there (`to list its apps`), said when the server wants a token.
    pub(super) fn client(&self, doing: &str) -> anyhow::Result<AdminClient> {
        AdminClient::find(self.config, self.server, PLUGIN, doing)
    }
}

/// A canary's share and automatic decisions (`--canary` and the flags
/// that go with it).
#[derive(Clone, Copy)]
pub(crate) struct Canary {
    /// Percent of new visitors.
    pub share: u8,
    /// Make it current after this many seconds.
    pub auto_promote_after: Option<u64>,
    /// Roll it back over this 5xx rate (a fraction).
    pub max_error_rate: Option<f64>,
}

/// What `bext deploy` was asked for, besides where.
pub(crate) struct DeployArgs<'a> {
    /// The bundle.
    pub dir: &'a Path,
    /// The app.
    pub app: &'a str,
    /// `--version`.
    pub version: Option<&'a str>,
    /// `--canary` and its automatic decisions.
    pub canary: Option<Canary>,
    /// `--preview`.
    pub preview: Option<&'a str>,
    /// `--ttl`: the preview's lifetime in seconds.
    pub ttl: Option<u64>,
}

/// `bext deploy DIR --app ID [--version V] [--canary N% | --preview NAME [--ttl T]]`.
pub(crate) fn deploy(at: &At<'_>, args: &DeployArgs<'_>) -> anyhow::Result<()> {
    let DeployArgs {
        dir,
        app,
        version,
        canary,
        preview,
        ttl,
    } = *args;
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let client = at.client("to deploy to it")?;
    let mut query = Vec::new();
    if let Some(v) = version {
        query.push(format!("version={}", segment(v)));
    }
    if let Some(p) = preview {
        query.push(format!("preview={}", segment(p)));
    }
    if let Some(t) = ttl {
        query.push(format!("ttl={t}"));
    }
    if let Some(c) = canary {
        query.push(format!("canary={}", c.share));
        if let Some(after) = c.auto_promote_after {
            query.push(format!("auto_promote_after={after}"));
        }
        if let Some(max) = c.max_error_rate {
            query.push(format!("max_error_rate={max}"));
        }
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let progress = Arc::new(Mutex::new(Progress::new(at.json)));
    let upload = Upload {
        dir,
        progress: {
            let progress = progress.clone();
            Arc::new(move |_: &Path, size: u64| progress.lock().unwrap_or_else(|e| e.into_inner()).file(size))
        },
        quiet: at.json,
    };
    let deployed = client.call("POST", &format!("/apps/{}/deploy{query}", segment(app)), Some(upload));
    drop(progress);
    let deployed = deployed?;
    // What the server logs at every load of this version, told now to the
    // user who can act on it (computed by the same code from the same
    // files and platform file).
    for w in crate::pipeline::app_changes::deploy_warnings(&client.platform, app, dir) {
        eprintln!("warning: {w}");
    }
    if at.json {
        out!("{}", serde_json::to_string_pretty(&deployed)?);
        return Ok(());
    }
    for run in [&deployed["pre_build"], &deployed["post_deploy"]] {
        if run.is_object() {
            eprint!("{}", text(&run["output"]));
            // No exit code: killed by a signal, or it could not start.
            let exit = run["exit_code"].as_i64().map_or_else(
                || "no exit code (killed, or it did not start)".to_owned(),
                |c| format!("exit code {c}"),
            );
            eprintln!(
                "{} `{}`: {exit}, {} ms",
                text(&run["hook"]),
                text(&run["command"]),
                number(&run["millis"])
            );
        }
    }
    let v = &deployed["version"];
    let role = match (canary, preview) {
        (Some(c), _) => format!(" as a canary for {}% of new visitors", c.share),
        (None, Some(name)) => {
            let platform = &client.platform;
            let domains = platform.apps.get(app).map_or(&[][..], |a| &a.domains[..]);
            let hosts = preview_domains(&platform.settings.preview_domain, domains, name);
            let at = if hosts.is_empty() {
                format!("/{app}~{name}/")
            } else {
                hosts.join(", ")
            };
            let until = match deployed["preview"]["expires_at"].as_u64() {
                Some(t) => format!(" until {}", when(t)),
                None => String::new(),
            };
            format!(" as preview {name} (at {at}){until}")
        }
        (None, None) => String::new(),
    };
    let files = number(&v["files"]);
    let pruned: Vec<&str> = deployed["pruned"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out!(
        "deployed {} {}{role}: {files} file{}, {} ({} new){}",
        text(&v["app"]),
        text(&v["version"]),
        if files == 1 { "" } else { "s" },
        size(number(&v["bytes"])),
        size(number(&deployed["new_bytes"])),
        if pruned.is_empty() {
            String::new()
        } else {
            format!("; removed old {}", pruned.join(", "))
        }
    );
    Ok(())
}

/// `bext rollback ID`.
pub(crate) fn rollback(at: &At<'_>, app: &str) -> anyhow::Result<()> {
    let version = at
        .client("to roll an app back")?
        .call("POST", &format!("/apps/{}/rollback", segment(app)), None)?;
    if at.json {
        out!("{}", serde_json::to_string_pretty(&version)?);
    } else {
        out!("{} is back on {}", text(&version["app"]), text(&version["version"]));
    }
    Ok(())
}

/// `bext promote ID [--to N%]`.
pub(crate) fn promote(at: &At<'_>, app: &str, to: Option<u8>) -> anyhow::Result<()> {
    let query = to.map(|t| format!("?to={t}")).unwrap_or_default();
    let record =
        at.client("to promote a version")?
            .call("POST", &format!("/apps/{}/promote{query}", segment(app)), None)?;
    if at.json {
        out!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(());
    }
    match (&record["canary"], &record["current"]) {
        (c, _) if c.is_object() => out!(
            "{app} canary {} now gets {}% of new visitors",
            text(&c["version"]),
            number(&c["share"])
        ),
        (_, v) if v.is_object() => out!("{app} is now on {}", text(&v["version"])),
        _ => out!("{app} has no current version"),
    }
    Ok(())
}

/// What `bext apps` does.
pub(crate) enum AppsCommand {
    List,
    Show(String),
    Versions(String),
    Remove(String),
    Previews,
    PrunePreviews,
}

/// `bext apps list|show|versions|rm|previews`.
pub(crate) fn apps(at: &At<'_>, command: AppsCommand) -> anyhow::Result<()> {
    let client = at.client(match &command {
        AppsCommand::List => "to list its apps",
        AppsCommand::Show(_) => "to show an app",
        AppsCommand::Versions(_) => "to list an app's versions",
        AppsCommand::Remove(_) => "to remove an app",
        AppsCommand::Previews => "to list its previews",
        AppsCommand::PrunePreviews => "to remove expired previews",
    })?;
    match command {
        AppsCommand::List => {
            let apps = client.call("GET", "/apps", None)?;
            if at.json {
                out!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(());
            }
            out!(
                "{:<20} {:<9} {:<16} {:>8}  DEPLOYED",
                "APP",
                "ORIGIN",
                "CURRENT",
                "VERSIONS"
            );
            for a in list(&apps) {
                let current = &a["current"];
                let (version, deployed) = if current.is_object() {
                    (text(&current["version"]), when(number(&current["deployed_at"])))
                } else {
                    ("-", "-".to_owned())
                };
                out!(
                    "{:<20} {:<9} {:<16} {:>8}  {deployed}",
                    text(&a["id"]),
                    text(&a["origin"]),
                    version,
                    number(&a["versions"])
                );
            }
        }
        AppsCommand::Show(ref id) | AppsCommand::Versions(ref id) => {
            let value = client.call("GET", &format!("/apps/{}", segment(id)), None)?;
            if at.json {
                out!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            let show = matches!(command, AppsCommand::Show(_));
            print_app(&value["app"], &value["versions"], show);
            if show {
                print_history(&value["app"], &value["canary_stats"]);
            }
        }
        AppsCommand::Previews | AppsCommand::PrunePreviews => {
            let prune = matches!(command, AppsCommand::PrunePreviews);
            let previews = if prune {
                client.call("POST", "/previews/prune", None)?
            } else {
                client.call("GET", "/previews", None)?
            };
            if at.json {
                out!("{}", serde_json::to_string_pretty(&previews)?);
                return Ok(());
            }
            if prune {
                out!("removed {} expired preview(s)", list(&previews).len());
            }
            out!(
                "{:<20} {:<16} {:<10} {:<29}  HOSTS",
                "APP",
                "PREVIEW",
                "VERSION",
                "EXPIRES"
            );
            let platform = &client.platform;
            for p in list(&previews) {
                let domains = platform.apps.get(text(&p["app"])).map_or(&[][..], |a| &a.domains[..]);
                let hosts = preview_domains(&platform.settings.preview_domain, domains, text(&p["name"])).join(", ");
                out!(
                    "{:<20} {:<16} {:<10} {:<29}  {hosts}",
                    text(&p["app"]),
                    text(&p["name"]),
                    text(&p["version"]),
                    when(number(&p["expires_at"]))
                );
            }
        }
        AppsCommand::Remove(id) => {
            client.call("DELETE", &format!("/apps/{}", segment(&id)), None)?;
            if at.json {
                out!("{}", serde_json::json!({ "removed": id }));
            } else {
                out!("removed {id} and its versions");
            }
        }
    }
    Ok(())
}

/// An app (with `header`) and its versions as a table.
fn print_app(app: &Value, versions: &Value, header: bool) {
    if header {
        out!("app      {}", text(&app["id"]));
        out!("origin   {}", text(&app["origin"]));
        let current = &app["current"];
        if current.is_object() {
            out!("current  {} ({})", text(&current["version"]), text(&current["path"]));
        } else {
            out!("current  - (served from the platform file's source)");
        }
        let id = text(&app["id"]);
        match (&app["canary"], app["rollback_to"].as_str()) {
            (c, _) if c.is_object() => out!("rollback stops canary {} (`bext rollback {id}`)", text(&c["version"])),
            (_, Some(v)) => out!("rollback {v}, current before (`bext rollback {id}`)"),
            _ => out!("rollback - (nothing kept was current before)"),
        }
        out!();
    }
    let rollback_to = app["rollback_to"].as_str();
    out!(
        "  {:<16} {:>7} {:>8} {:>7} {:>10}  {:<29}  BY",
        "VERSION",
        "CURRENT",
        "ROLLBACK",
        "FILES",
        "SIZE",
        "DEPLOYED"
    );
    for v in list(versions) {
        out!(
            "  {:<16} {:>7} {:>8} {:>7} {:>10}  {:<29}  {}",
            text(&v["version"]),
            if v["current"].as_bool() == Some(true) { "*" } else { "" },
            if v["version"].as_str().is_some_and(|v| Some(v) == rollback_to) {
                "*"
            } else {
                ""
            },
            number(&v["files"]),
            size(number(&v["bytes"])),
            when(number(&v["deployed_at"])),
            text(&v["deployed_by"])
        );
    }
}

/// A canary's traffic (from a server) and the app's recent events.
fn print_history(app: &Value, stats: &Value) {
    let c = &app["canary"];
    if c.is_object() {
        out!();
        let mut auto = Vec::new();
        if let Some(after) = c["auto_promote_after"].as_u64() {
            auto.push(format!("promote after {after} s"));
        }
        if let Some(max) = c["max_error_rate"].as_f64() {
            auto.push(format!("roll back over {:.1}% 5xx", max * 100.0));
        }
        let auto = if auto.is_empty() {
            "manual".to_owned()
        } else {
            auto.join(", ")
        };
        out!(
            "canary   {} for {}% of new visitors since {} ({auto})",
            text(&c["version"]),
            number(&c["share"]),
            when(number(&c["started_at"]))
        );
        for key in ["stable", "canary"] {
            let s = &stats[key];
            if s.is_object() {
                out!(
                    "  {key:<8} {:>8} requests  {:>6.2}% 5xx  {:>8.2} ms mean",
                    number(&s["requests"]),
                    s["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
                    s["mean_ms"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    let events = list(&app["events"]);
    if !events.is_empty() {
        out!();
        for e in events {
            out!("  {}  {}", when(number(&e["at"])), text(&e["what"]));
        }
    }
}

/// A JSON array's items (none for anything else).
pub(super) fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// A JSON string, or `-`.
pub(super) fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// A JSON number, or 0.
pub(super) fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Reports a local deploy's files as it stores them.
struct Progress {
    quiet: bool,
    tty: bool,
    files: u64,
    bytes: u64,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            files: 0,
            bytes: 0,
        }
    }

    fn file(&mut self, size_of: u64) {
        self.files += 1;
        self.bytes += size_of;
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\rstored {} files, {}   ", self.files, size(self.bytes));
        } else if self.files.is_multiple_of(1000) {
            eprintln!("stored {} files, {}", self.files, size(self.bytes));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.tty && !self.quiet && self.files > 0 {
            eprintln!();
        }
    }
}

/// A Unix time as an HTTP date (UTC).
pub(super) fn when(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix))
}
