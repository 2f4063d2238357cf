use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A process-unique request id, printed as 16 hex digits in logs and
/// error pages so an operator can find the request a user reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The client's address as a security plugin resolved it (the peer, or
/// the address a trusted proxy reports), shared in [`Ctx::ext`] so later
/// plugins (rate limits, logs) key on the same address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientIp(pub std::net::IpAddr);

/// Returned when a write-once security fact (app, tenant, version) is set a
/// second time: one writer per fact, so a later plugin cannot re-route a
/// request another plugin already placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is already set for this request")]
pub struct AlreadySet(pub &'static str);

/// Per-request state shared by the kernel and every hook.
///
/// Security facts (`app`, `tenant`, `version`) are write-once. Rust plugins
/// share typed values through [`Ctx::ext`]; JavaScript and dynamic plugins
/// use the string map [`Ctx::vars`].
pub struct Ctx {
    /// Unique id of this request.
    pub request_id: RequestId,
    /// Address of the TCP peer (the client, or the proxy in front of bext).
    pub peer: SocketAddr,
    /// When the kernel received the request head.
    pub received_at: Instant,
    /// Host of the request, lower-cased, without port or trailing dot;
    /// `None` only for HTTP/1.0 requests that sent no Host.
    pub host: Option<Box<str>>,
    /// Mount path the app is served under, sent to it as `x-base`.
    pub base: Option<Cow<'static, str>>,
    /// Skip the app's `on_request`/`on_response` plugins (a vhost entry's
    /// `bypass: true`).
    pub bypass: bool,
    /// Typed values plugins share, keyed by type.
    pub ext: http::Extensions,
    /// String values for plugins that cannot share Rust types.
    pub vars: HashMap<String, String>,
    app: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    version: Option<Arc<str>>,
}

impl Ctx {
    /// A fresh context; the kernel makes one per request.
    pub fn new(request_id: RequestId, peer: SocketAddr) -> Self {
        Ctx {
            request_id,
            peer,
            received_at: Instant::now(),
            host: None,
            base: None,
            bypass: false,
            ext: http::Extensions::new(),
            vars: HashMap::new(),
            app: None,
            tenant: None,
            version: None,
        }
    }

    /// The app this request was routed to, once known.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The tenant captured from a wildcard or pattern host, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The app version serving this request, once known.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Routes the request to `app`; only the first call succeeds.
    pub fn set_app(&mut self, app: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.app, app.into(), "app")
    }

    /// Records the tenant; only the first call succeeds.
    pub fn set_tenant(&mut self, tenant: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.tenant, tenant.into(), "tenant")
    }

    /// Records the app version; only the first call succeeds.
    pub fn set_version(&mut self, version: impl Into<Arc<str>>) -> Result<(), AlreadySet> {
        set_once(&mut self.version, version.into(), "version")
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), AlreadySet> {
    if slot.is_some() {
        return Err(AlreadySet(what));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_facts_are_write_once() {
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        cx.set_app("a").unwrap();
        assert_eq!(cx.set_app("b"), Err(AlreadySet("app")));
        assert_eq!(cx.app(), Some("a"));
        cx.set_tenant("t").unwrap();
        assert!(cx.set_tenant("u").is_err());
        assert_eq!(RequestId(255).to_string(), "00000000000000ff");
    }
}
