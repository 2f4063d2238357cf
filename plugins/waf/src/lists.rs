//! The IP lists screening looks up: the manifest's `ip.allow` and
//! `ip.deny`, plus the list files (`ip.allow_files`, `ip.deny_files`: one
//! address or CIDR a line, `#` comments), read in `on_init` and re-read
//! when one changes. A file that no longer reads leaves the previous
//! table in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bext_plugin_abi::{Host, PluginError};

use crate::config::IpConfig;
use crate::ip::{IpTable, Verdict, parse_net};

/// The lists of one plugin instance.
pub(crate) struct IpLists {
    /// The manifest's lists.
    listed: IpTable,
    /// The list files, absolute, each with its verdict.
    files: Vec<(PathBuf, Verdict)>,
    /// How often the files are checked for changes.
    refresh: Duration,
    /// The manifest's lists plus the files', swapped when a file changes.
    current: Arc<ArcSwap<IpTable>>,
}

impl IpLists {
    /// The manifest's lists (an entry that does not parse is an error
    /// naming it); relative file names are under `data_dir`.
    pub(crate) fn new(config: &IpConfig, data_dir: &Path) -> Result<Self, PluginError> {
        let mut listed = IpTable::default();
        for (field, list, verdict) in [
            ("ip.allow", &config.allow, Verdict::Allow),
            ("ip.deny", &config.deny, Verdict::Deny),
        ] {
            listed
                .insert_all(list, verdict)
                .map_err(|(i, e)| PluginError::config(format!("{field}[{i}]"), e))?;
        }
        let resolve = |p: &PathBuf| if p.is_absolute() { p.clone() } else { data_dir.join(p) };
        let files = config
            .allow_files
            .iter()
            .map(|p| (resolve(p), Verdict::Allow))
            .chain(config.deny_files.iter().map(|p| (resolve(p), Verdict::Deny)))
            .collect();
        Ok(IpLists {
            current: Arc::new(ArcSwap::from_pointee(listed.clone())),
            listed,
            files,
            refresh: config.refresh.0.max(Duration::from_secs(1)),
        })
    }

    /// The table to look addresses up in, kept current.
    pub(crate) fn current(&self) -> Arc<ArcSwap<IpTable>> {
        Arc::clone(&self.current)
    }

    /// Reads the files, if any, and has `host` re-read them when they
    /// change, for as long as this instance lives; `plugin` names it in
    /// the log. A file that cannot be read is an error.
    pub(crate) fn start(&self, host: &Host, plugin: &str) -> Result<(), String> {
        if self.files.is_empty() {
            return Ok(());
        }
        self.current.store(Arc::new(build(&self.listed, &self.files)?));
        host.spawn(refresh(
            Arc::downgrade(&self.current),
            self.listed.clone(),
            self.files.clone(),
            self.refresh,
            plugin.to_owned(),
        ));
        Ok(())
    }
}

/// A list file's entries; an error names the file (and line).
fn read_list_file(path: &Path) -> Result<Vec<ipnet::IpNet>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| (n, line.split('#').next().unwrap_or("").trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| parse_net(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// The manifest's lists with every file's entries added.
fn build(listed: &IpTable, files: &[(PathBuf, Verdict)]) -> Result<IpTable, String> {
    let mut table = listed.clone();
    for (path, verdict) in files {
        for net in read_list_file(path)? {
            table.insert(net, *verdict);
        }
    }
    Ok(table)
}

fn modified(files: &[(PathBuf, Verdict)]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|(p, _)| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Keeps the file lists fresh; ends when the plugin instance is gone.
async fn refresh(
    lists: Weak<ArcSwap<IpTable>>,
    listed: IpTable,
    files: Vec<(PathBuf, Verdict)>,
    every: Duration,
    plugin: String,
) {
    let mut seen = modified(&files);
    loop {
        tokio::time::sleep(every).await;
        let Some(lists) = lists.upgrade() else { return };
        let now = modified(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match build(&listed, &files) {
            Ok(table) => {
                lists.store(Arc::new(table));
                tracing::info!(plugin = %plugin, "waf ip lists reloaded");
            }
            Err(e) => tracing::error!(plugin = %plugin, error = %e, "waf ip list not reloaded; the previous one stays"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> IpConfig {
        serde_json::from_value(value).unwrap()
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn files_add_to_the_manifests_lists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("allow.txt"),
            "# office\n10.1.0.0/16\n\n  192.0.2.7  # the monitor\n",
        )
        .unwrap();
        let deny = dir.path().join("deny.txt");
        std::fs::write(&deny, "10.0.0.0/8\n").unwrap();
        let lists = IpLists::new(
            &config(serde_json::json!({
                "deny": ["198.51.100.0/24"],
                "allow_files": ["allow.txt"],
                "deny_files": [deny],
            })),
            dir.path(),
        )
        .unwrap();
        assert_eq!(lists.files[0].0, dir.path().join("allow.txt"));
        let table = build(&lists.listed, &lists.files).unwrap();
        assert_eq!(table.lookup(ip("10.1.2.3")), Some(Verdict::Allow));
        assert_eq!(table.lookup(ip("10.2.0.1")), Some(Verdict::Deny));
        assert_eq!(table.lookup(ip("192.0.2.7")), Some(Verdict::Allow));
        assert_eq!(table.lookup(ip("198.51.100.9")), Some(Verdict::Deny));
        // Before `start`, only the manifest's lists are in force.
        assert_eq!(lists.current().load().lookup(ip("10.2.0.1")), None);
        assert_eq!(lists.current().load().lookup(ip("198.51.100.9")), Some(Verdict::Deny));
    }

    #[test]
    fn errors_name_the_entry_file_and_line() {
        let err = IpLists::new(
            &config(serde_json::json!({"allow": ["10.0.0.1", "nope"]})),
            Path::new("/"),
        );
        match err.err().unwrap() {
            PluginError::Config { path, .. } => assert_eq!(path, "ip.allow[1]"),
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deny.txt");
        std::fs::write(&file, "10.0.0.1\n# fine\n10.0.0.0/40\n").unwrap();
        let err = read_list_file(&file).unwrap_err();
        assert!(
            err.ends_with("deny.txt:3: `10.0.0.0/40` is not an IP address or CIDR"),
            "{err}"
        );
        let missing = read_list_file(&dir.path().join("missing.txt")).unwrap_err();
        assert!(missing.contains("missing.txt: "), "{missing}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_file_is_read_again_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deny.txt");
        std::fs::write(&file, "10.0.0.1\n").unwrap();
        let files = vec![(file.clone(), Verdict::Deny)];
        let current = Arc::new(ArcSwap::from_pointee(build(&IpTable::default(), &files).unwrap()));
        let task = tokio::spawn(refresh(
            Arc::downgrade(&current),
            IpTable::default(),
            files,
            Duration::from_secs(1),
            "waf".into(),
        ));
        // Let it note the files' times before they change.
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The modification time must move on for a change to be seen.
        let rewrite = |text: &str, at: SystemTime| {
            std::fs::write(&file, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        let later = SystemTime::now() + Duration::from_secs(10);
        rewrite("10.0.0.2\n", later);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(current.load().lookup(ip("10.0.0.2")), Some(Verdict::Deny));
        assert_eq!(current.load().lookup(ip("10.0.0.1")), None);

        rewrite("garbage\n", later + Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(current.load().lookup(ip("10.0.0.2")), Some(Verdict::Deny), "kept");

        // The task ends with the instance.
        drop(current);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(task.is_finished());
    }
}
