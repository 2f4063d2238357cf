//! Traces: W3C `traceparent` continued or started for a request that needs one
//! ([`TraceContext`]), and, with `[platform.otel]`, a span per request and
//! per plugin hook of sampled requests exported over OTLP ([`Otel`]).

mod otlp;

use std::time::SystemTime;

pub use bext_plugin_abi::trace::{Parent, TRACEPARENT, TRACESTATE, TraceContext, hex, random_span};
pub use otlp::{Attr, Otel, Span, request_body};

/// The plugin hooks a sampled request ran, kept in its `Ctx::ext` until
/// its request span is exported (children of it).
#[derive(Debug, Default)]
pub struct HookSpans(pub Vec<HookSpan>);

/// One plugin hook's run.
#[derive(Debug)]
pub struct HookSpan {
    /// The plugin.
    pub plugin: std::sync::Arc<str>,
    /// `on_request`, `on_response`, `fetch`.
    pub hook: &'static str,
    /// When it began and ended.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Whether it failed.
    pub failed: bool,
}
