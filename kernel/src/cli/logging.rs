//! The error log: stderr through a bounded buffer drained by its own
//! thread, with levels by module from `RUST_LOG`, else `[platform] log`
//! (applied again on each reload), else `info`.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The handle that swaps the filter when `[platform] log` changes; unset
/// when `RUST_LOG` decides (or no subscriber was installed: tests).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// What the filter is now, to skip a reload that changes nothing.
static CURRENT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The filter when neither `RUST_LOG` nor `[platform] log` says.
const DEFAULT: &str = "info";

/// Installs the subscriber. A slow reader of stderr never stalls a
/// worker: when the buffer is full, lines are dropped rather than
/// requests delayed. Keep the guard alive until exit: dropping it flushes
/// what is left.
pub fn init() -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    // An empty RUST_LOG is no RUST_LOG.
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|_| EnvFilter::try_from_default_env().ok());
    let env_decides = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(DEFAULT)));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .lossy(true)
        .finish(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() && !env_decides {
        let _ = FILTER.set(handle);
    }
    guard
}

/// Applies `[platform] log` (already checked by the platform file's
/// validation); `None` goes back to the default. No effect when `RUST_LOG`
/// is set.
pub fn set_filter(spec: Option<&str>) {
    let Some(handle) = FILTER.get() else { return };
    let spec = spec.unwrap_or(DEFAULT);
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if current.as_deref() == Some(spec) {
        return;
    }
    match EnvFilter::builder().parse(spec) {
        Ok(filter) => {
            if handle.reload(filter).is_ok() {
                *current = Some(spec.to_owned());
                tracing::info!(filter = spec, "log levels");
            }
        }
        Err(e) => tracing::warn!(filter = spec, error = %e, "log levels unchanged"),
    }
}
