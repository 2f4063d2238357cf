//! Dropping entries: from this process's memory (by tag, by path, or an
//! app's all), and in edge mode from the fleet's L2 tier and, through
//! the fleet's bus, from every other instance's memory.

use std::sync::Arc;

use bext_plugin_abi::{Fleet, Host};
use tokio::sync::watch;

use crate::IsrPlugin;
use crate::l2;
use crate::store::{Caches, Entry};

/// What an admin endpoint is asked to do (and what the fleet's bus
/// carries to every instance).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminOrder {
    /// Entries with any of these tags (`invalidate`).
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// Entries for any of these paths (`invalidate`).
    #[serde(default)]
    pub(crate) paths: Vec<String>,
    /// Only this app's entries; every app's without it.
    #[serde(default)]
    pub(crate) app: Option<String>,
    /// The path (and query) to render again (`revalidate`).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// The host to render it for (`revalidate`).
    #[serde(default)]
    pub(crate) host: Option<String>,
    /// The tenant to render it for (`revalidate`).
    #[serde(default)]
    pub(crate) tenant: Option<String>,
    /// The scheme to render it for (`revalidate`): `http` (the default)
    /// or `https`, whose clients have entries of their own. Left out of
    /// the fleet's messages when not given, so that instances of an
    /// older build still read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scheme: Option<String>,
}

impl AdminOrder {
    /// Names neither tags nor paths: every entry (of `app`, or of all).
    fn everything(&self) -> bool {
        self.tags.is_empty() && self.paths.is_empty()
    }

    /// Whether the order drops `e` (from a cache it reaches).
    fn covers(&self, e: &Entry) -> bool {
        self.everything() || e.tags.iter().any(|t| self.tags.contains(t)) || self.paths.iter().any(|p| p == &e.path)
    }
}

/// Drops the entries an order names from `caches`; how many went.
pub(crate) fn invalidate(caches: &Caches, order: &AdminOrder) -> usize {
    caches
        .caches(order.app.as_deref())
        .iter()
        .map(|(_, cache)| cache.remove_where(|e| order.covers(e)))
        .sum()
}

impl IsrPlugin {
    /// Drops what `order` names here, and in edge mode from the L2 tier
    /// and (through the bus) from every other instance's memory; how many
    /// entries went here.
    pub(crate) async fn invalidate_everywhere(&self, order: &AdminOrder) -> usize {
        let removed = invalidate(self.caches(), order);
        let Some(edge) = self.store.edge.get() else {
            return removed;
        };
        if let Ok(message) = serde_json::to_vec(order) {
            edge.publish(&message).await;
        }
        let apps: Vec<&str> = match &order.app {
            Some(a) => vec![a.as_str()],
            None => self.apps.iter().map(String::as_str).collect(),
        };
        let mut sets: Vec<String> = order.tags.iter().map(|t| l2::tag_set(&**edge, t)).collect();
        for app in &apps {
            sets.extend(order.paths.iter().map(|p| l2::path_set(&**edge, app, p)));
            if order.everything() {
                sets.push(l2::app_set(&**edge, app));
            }
        }
        edge.delete_listed(&sets).await;
        removed
    }
}

/// The task applying the fleet's invalidations to a table of caches: a
/// host's shared value (`Host::shared`), held by the instances that hold
/// the table, so there is one per table and edge, a reload keeps it, and
/// the last instance to go stops it.
pub(crate) struct Listener {
    /// Dropped with the listener: the task sees it closed and ends.
    _stop: watch::Sender<()>,
}

/// Starts applying the fleet's invalidations to `caches`, unless an
/// instance holds a listener for this edge already; the instance keeps
/// what this returns.
pub(crate) fn listen(host: &Host, edge: &Arc<dyn Fleet>, caches: &Arc<Caches>) -> Arc<Listener> {
    // Keyed by the edge's address: the task holds the edge, so the
    // address names that one edge while the listener lives.
    let key = format!("isr:listener:{:p}", Arc::as_ptr(edge));
    host.shared(&key, || {
        let (stop, stopped) = watch::channel(());
        host.spawn(apply(edge.clone(), caches.clone(), stopped));
        Listener { _stop: stop }
    })
}

/// Applies the fleet's invalidations to `caches` until `stopped` closes.
async fn apply(edge: Arc<dyn Fleet>, caches: Arc<Caches>, mut stopped: watch::Receiver<()>) {
    let mut bus = edge.messages();
    loop {
        let message = tokio::select! {
            _ = stopped.changed() => return,
            m = bus.next() => m,
        };
        let Some(message) = message else { return };
        if let Ok(order) = serde_json::from_slice::<AdminOrder>(&message) {
            invalidate(&caches, &order);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;
    use crate::policy::Freshness;

    fn entry(path: &str, tags: &[&str]) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            etag: HeaderValue::from_static("\"e\""),
            stored: Instant::now(),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                swr: Duration::ZERO,
                sie: Duration::ZERO,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
            path: path.into(),
        }
    }

    fn order(json: serde_json::Value) -> AdminOrder {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn orders_name_entries_by_tag_or_path_or_all() {
        let post = entry("/posts/1", &["post-1", "posts"]);
        let home = entry("/", &[]);
        let by_tag = order(serde_json::json!({"tags": ["posts"]}));
        assert!(by_tag.covers(&post) && !by_tag.covers(&home));
        let by_path = order(serde_json::json!({"paths": ["/"]}));
        assert!(!by_path.covers(&post) && by_path.covers(&home));
        let either = order(serde_json::json!({"tags": ["nope"], "paths": ["/posts/1"]}));
        assert!(either.covers(&post) && !either.covers(&home));
        let prefix = order(serde_json::json!({"paths": ["/posts"]}));
        assert!(!prefix.covers(&post), "paths are exact");
        let all = order(serde_json::json!({"app": "blog"}));
        assert!(all.covers(&post) && all.covers(&home));
    }

    #[test]
    fn orders_are_strict_and_survive_the_bus() {
        assert!(serde_json::from_value::<AdminOrder>(serde_json::json!({"tag": ["x"]})).is_err());
        let o = order(serde_json::json!({"tags": ["a"], "app": "blog"}));
        let back: AdminOrder = serde_json::from_slice(&serde_json::to_vec(&o).unwrap()).unwrap();
        assert_eq!((back.tags, back.app, back.paths), (o.tags, o.app, o.paths));
    }
}
