//! JavaScript isolate settings, shared by the platform file (an app's
//! `isolate`) and manifests (a JS plugin's `limits`).

use std::time::Duration;

use serde::Deserialize;

use bext_plugin_abi::units::{ByteSize, MemorySize, Span};

/// `[apps.<id>.isolate]` of a JS app, and `limits` in a JS plugin's
/// manifest. Unset fields take the defaults of the kind of module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateConfig {
    /// Where the isolates run: `threads` (default), isolates on threads of
    /// their own; `inline`, one isolate on each HTTP worker thread; or
    /// `shared`, on the one pool of JS threads all shared apps take turns on.
    #[serde(default)]
    pub mode: Option<bext_js::Mode>,
    /// Isolates, in `threads` mode (each on its own thread); `shared`: calls
    /// of the app running at once on the shared pool (never all its threads).
    #[serde(default, deserialize_with = "at_least_one")]
    pub workers: Option<usize>,
    /// Heap limit of each isolate (`64MiB`), written with a unit and at
    /// least [`MIN_HEAP`].
    #[serde(default, deserialize_with = "heap_size")]
    pub memory_limit: Option<ByteSize>,
    /// Time one call may take in JavaScript, timers included (`30s`).
    #[serde(default)]
    pub timeout: Option<Span>,
    /// Calls an isolate serves before a fresh one replaces it (0: never).
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Calls that may wait for a free isolate (`inline`: calls one isolate
    /// may have pending); beyond it bext answers 503.
    #[serde(default)]
    pub queue: Option<usize>,
    /// `inline`: how long JavaScript may run before it yields (`100ms`);
    /// past it the request fails and the isolate is replaced.
    #[serde(default)]
    pub cpu_limit: Option<Span>,
    /// `threads` and `shared`: how long an app's isolates may serve nothing
    /// before they are dropped (with their threads in `threads` mode; `5m`;
    /// `0s`: never). The next request starts them again.
    #[serde(default)]
    pub idle_evict: Option<Span>,
    /// Outbound `fetch()`: where to and how much. Unset, nothing may be
    /// fetched.
    #[serde(default)]
    pub fetch: Option<Box<FetchConfig>>,
    /// JS plugins only: the request body a plugin's `fetch`/`onRequest`
    /// may read (`64KiB`). Unset, plugins see no body and bodies stream
    /// past them; set, a body over it is refused with 413 before the
    /// plugin runs. Apps are bounded by `[platform] max_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
    /// Apps only: hand the request to an isolate as soon as its head is in
    /// and stream the body to `request.body` as it arrives (`true`).
    /// Unset or `false`, the body is read whole first, as nginx buffers a
    /// body before its upstream sees it (`proxy_request_buffering`): a
    /// slow upload then holds a task, not one of the app's isolates.
    #[serde(default)]
    pub stream_request_body: Option<bool>,
}

/// The smallest `memory_limit`: below it an isolate cannot even load
/// bext's Web APIs, and every request would fail with "Allocation failed".
pub const MIN_HEAP: u64 = 8 << 20;

/// A count of isolates, refused at 0: no isolate would ever answer.
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(serde::de::Error::custom(
            "0 isolates would answer nothing: write at least 1 (the default is 2)",
        )),
        n => Ok(Some(n)),
    }
}

/// A heap size as [`MemorySize`] reads it (a unit is required), refused
/// under [`MIN_HEAP`] with the key's smallest working value.
fn heap_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ByteSize>, D::Error> {
    let MemorySize(bytes) = MemorySize::deserialize(d)?;
    if bytes < MIN_HEAP {
        return Err(serde::de::Error::custom(format!(
            "{bytes} bytes is too small for a JS heap: write at least \"8MiB\" (the default is \"64MiB\")"
        )));
    }
    Ok(Some(ByteSize(bytes)))
}

/// `isolate = { fetch = { allow = [...], ... } }`: an app's outbound
/// `fetch()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// Hosts that may be fetched: `api.example.com`, `*.internal`, `*`
    /// (any public host) or an address (`127.0.0.1`), each with an optional
    /// `:port`; without one only 80 (http) and 443 (https). Empty: none.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Fetches in flight at once for the whole app (16); more fail at once.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Largest response body one fetch may read (`10MiB`).
    #[serde(default)]
    pub max_response_bytes: Option<ByteSize>,
    /// Time one fetch may take, redirects and body included (`30s`).
    #[serde(default)]
    pub timeout: Option<Span>,
}

impl FetchConfig {
    fn limits(&self) -> bext_js::FetchLimits {
        let d = bext_js::FetchLimits::DEFAULT;
        bext_js::FetchLimits {
            allow: self.allow.clone(),
            max_concurrent: self.max_concurrent.unwrap_or(d.max_concurrent).max(1),
            max_response_bytes: self.max_response_bytes.map_or(d.max_response_bytes, |b| b.0),
            timeout: self.timeout.map_or(d.timeout, |t| t.0),
        }
    }
}

impl IsolateConfig {
    /// Defaults of a JS app: 2 isolates of 64 MiB, 30 s per request,
    /// dropped after 5 minutes without a request (a cold start costs a few
    /// milliseconds; an idle isolate holds its heap and thread).
    pub const APP: bext_js::Limits = bext_js::Limits {
        mode: bext_js::Mode::Threads,
        workers: 2,
        memory_limit: 64 << 20,
        timeout: Duration::from_secs(30),
        max_requests: 0,
        queue: 256,
        cpu_limit: Duration::from_millis(100),
        idle_evict: Duration::from_secs(300),
        fetch: bext_js::FetchLimits::DEFAULT,
    };
    /// Defaults of a JS plugin: 2 isolates of 32 MiB, 1 s per hook call,
    /// never evicted (a plugin sits on the path of every request).
    pub const PLUGIN: bext_js::Limits = bext_js::Limits {
        mode: bext_js::Mode::Threads,
        workers: 2,
        memory_limit: 32 << 20,
        timeout: Duration::from_secs(1),
        max_requests: 0,
        queue: 1024,
        cpu_limit: Duration::from_millis(100),
        idle_evict: Duration::ZERO,
        fetch: bext_js::FetchLimits::DEFAULT,
    };

    /// These settings over `defaults`.
    pub fn limits(&self, defaults: bext_js::Limits) -> bext_js::Limits {
        bext_js::Limits {
            mode: self.mode.unwrap_or(defaults.mode),
            workers: self.workers.unwrap_or(defaults.workers).max(1),
            memory_limit: self
                .memory_limit
                .map_or(defaults.memory_limit, |m| usize::try_from(m.0).unwrap_or(usize::MAX)),
            timeout: self.timeout.map_or(defaults.timeout, |t| t.0),
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            queue: self.queue.unwrap_or(defaults.queue).max(1),
            cpu_limit: self.cpu_limit.map_or(defaults.cpu_limit, |t| t.0),
            idle_evict: self.idle_evict.map_or(defaults.idle_evict, |t| t.0),
            fetch: self.fetch.as_deref().map_or(defaults.fetch, FetchConfig::limits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_workers_is_refused_with_the_smallest_value() {
        let err = toml::from_str::<IsolateConfig>("workers = 0").unwrap_err().to_string();
        assert!(err.contains("write at least 1"), "{err}");
        assert_eq!(toml::from_str::<IsolateConfig>("workers = 3").unwrap().workers, Some(3));
    }
}
