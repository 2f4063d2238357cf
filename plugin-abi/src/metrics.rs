//! Metrics plugins publish on `/__bext/metrics`: a registry the kernel
//! owns and lends through [`crate::Host::metrics`], so a plugin (built in or
//! loaded from a file) never needs a global recorder or the kernel.
//!
//! Every name a plugin registers starts with `bext_plugin_<plugin>_`, so
//! plugins cannot collide with the kernel's metrics or with each other.
//! Registering a name again (a plugin instance rebuilt by a reload) returns
//! the metric already there, so counters never restart with a reload.
//! Label values are the plugin's to bound: never raw hosts, paths or
//! client input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use prometheus_client;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Label pairs of a plugin's metric family, e.g. `[("family", "sqli")]`.
pub type Labels = Vec<(&'static str, String)>;

/// A counter family: one counter per label set.
pub type CounterFamily = Family<Labels, Counter>;

/// Why a metric could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    /// The name has characters Prometheus does not allow.
    #[error("metric name `{0}`: use lowercase letters, digits and `_`")]
    BadName(String),
    /// The name is registered already, as another kind of metric.
    #[error("metric `{0}` is registered already as another kind of metric")]
    OtherKind(String),
}

/// One registered metric.
#[derive(Debug, Clone)]
enum Metric {
    Counter(Counter),
    Counters(CounterFamily),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Metric {
    fn as_encode(&self) -> &dyn EncodeMetric {
        match self {
            Metric::Counter(m) => m,
            Metric::Counters(m) => m,
            Metric::Gauge(m) => m,
            Metric::Histogram(m) => m,
        }
    }
}

/// The metrics every plugin registered, by full name; the kernel's
/// endpoint encodes them after its own.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    metrics: Mutex<BTreeMap<String, (String, Metric)>>,
}

impl MetricsRegistry {
    /// The handle a plugin named `plugin` registers its metrics through.
    pub fn for_plugin(self: &Arc<Self>, plugin: &str) -> PluginMetrics {
        let plugin: String = plugin
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        PluginMetrics {
            prefix: format!("bext_plugin_{plugin}_"),
            registry: self.clone(),
        }
    }

    /// Writes every metric in the text format (without `# EOF`).
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        for (name, (help, metric)) in metrics.iter() {
            let metric = metric.as_encode();
            let out = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(out)?;
        }
        Ok(())
    }

    fn get_or_insert<T>(
        &self,
        name: String,
        help: &str,
        make: impl FnOnce() -> Metric,
        take: impl Fn(&Metric) -> Option<T>,
    ) -> Result<T, MetricsError> {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(MetricsError::BadName(name));
        }
        let mut metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let (_, metric) = metrics.entry(name.clone()).or_insert_with(|| (help.to_owned(), make()));
        take(metric).ok_or(MetricsError::OtherKind(name))
    }
}

/// A plugin's way to publish metrics, from [`crate::Host::metrics`]; the
/// metrics it returns are cheap to clone and to update (atomics).
#[derive(Debug, Clone)]
pub struct PluginMetrics {
    prefix: String,
    registry: Arc<MetricsRegistry>,
}

impl PluginMetrics {
    /// The prefix every name gets: `bext_plugin_<plugin>_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A counter `bext_plugin_<plugin>_<name>_total`.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        self.registry.get_or_insert(
            self.full(name),
            help,
            || Metric::Counter(Counter::default()),
            |m| match m {
                Metric::Counter(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// Counters `bext_plugin_<plugin>_<name>_total{labels}`, one per label
    /// set the plugin uses (keep the values few and fixed).
    pub fn counter_family(&self, name: &str, help: &str) -> Result<CounterFamily, MetricsError> {
        self.registry.get_or_insert(
            self.full(name),
            help,
            || Metric::Counters(CounterFamily::default()),
            |m| match m {
                Metric::Counters(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// A gauge `bext_plugin_<plugin>_<name>`.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        self.registry.get_or_insert(
            self.full(name),
            help,
            || Metric::Gauge(Gauge::default()),
            |m| match m {
                Metric::Gauge(g) => Some(g.clone()),
                _ => None,
            },
        )
    }

    /// A histogram `bext_plugin_<plugin>_<name>` with these bucket bounds
    /// (the first registration's bounds stay).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, MetricsError> {
        self.registry.get_or_insert(
            self.full(name),
            help,
            || Metric::Histogram(Histogram::new(buckets.iter().copied())),
            |m| match m {
                Metric::Histogram(h) => Some(h.clone()),
                _ => None,
            },
        )
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode_registry;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug)]
    struct Collect(Arc<MetricsRegistry>);

    impl prometheus_client::collector::Collector for Collect {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            self.0.encode(&mut encoder)
        }
    }

    fn text(registry: &Arc<MetricsRegistry>) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(Collect(registry.clone())));
        let mut out = String::new();
        encode_registry(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn names_are_prefixed_and_registering_again_keeps_the_count() {
        let registry = Arc::new(MetricsRegistry::default());
        let waf = registry.for_plugin("waf");
        waf.counter_family("blocks", "Requests blocked")
            .unwrap()
            .get_or_create(&vec![("family", "sqli".into())])
            .inc();
        // A reload's new instance registers the same name again.
        let again = registry
            .for_plugin("waf")
            .counter_family("blocks", "Requests blocked")
            .unwrap();
        again.get_or_create(&vec![("family", "sqli".into())]).inc();
        let out = text(&registry);
        assert!(out.contains("# TYPE bext_plugin_waf_blocks counter\n"), "{out}");
        assert!(
            out.contains("bext_plugin_waf_blocks_total{family=\"sqli\"} 2\n"),
            "{out}"
        );
    }

    #[test]
    fn bad_names_and_other_kinds_are_refused() {
        let registry = Arc::new(MetricsRegistry::default());
        let p = registry.for_plugin("my-plugin");
        assert_eq!(p.prefix(), "bext_plugin_my_plugin_");
        assert!(matches!(p.counter("Bad Name", "x"), Err(MetricsError::BadName(_))));
        p.gauge("queue", "x").unwrap().set(3);
        assert_eq!(
            p.counter("queue", "x").unwrap_err(),
            MetricsError::OtherKind("bext_plugin_my_plugin_queue".into())
        );
        assert!(text(&registry).contains("bext_plugin_my_plugin_queue 3\n"));
    }
}
