//! One app's outbound HTTP client: hyper's pooled client over rustls, a
//! resolver that refuses private addresses the app did not allow by name,
//! redirects followed hop by hop (each hop checked again), connections to
//! bext's own listeners refused, and the app's limits (concurrency,
//! response size, time).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::own_listeners;
use super::policy::{Policy, is_own_listener, is_public};
use super::upload::{OutBody, Sending};
use crate::FetchLimits;

/// Redirects followed before a fetch fails, as browsers do.
const MAX_REDIRECTS: usize = 20;

type Https = hyper_rustls::HttpsConnector<NotOurselves>;

/// What `redirect` in a fetch's init says to do with a 3xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// Follow it (each hop checked like the first).
    Follow,
    /// Answer with the 3xx itself.
    Manual,
    /// Fail the fetch.
    Error,
}

/// A request JavaScript asked for.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) method: Method,
    pub(crate) url: url::Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Sending,
    pub(crate) redirect: Redirect,
}

/// A response: its head, and its body whole or as it arrives.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    /// The whole body; or, when `rest` is set, what arrived with the head.
    pub(crate) body: Bytes,
    /// The rest of a body still arriving (no declared length, or larger
    /// than [`WHOLE_BODY`]): JavaScript reads it as a stream.
    pub(crate) rest: Option<BodyRest>,
    /// Set once `rest` was taken to be streamed.
    pub(crate) streamed: bool,
    /// The URL of the last hop.
    pub(crate) url: String,
    pub(crate) redirected: bool,
}

/// A body with a declared length up to this is read whole before the
/// fetch resolves (one message to the isolate); others are streamed.
pub(crate) const WHOLE_BODY: u64 = 256 << 10;

/// The part of a response body still to come, within the fetch's limits.
#[derive(Debug)]
pub(crate) struct BodyRest {
    body: hyper::body::Incoming,
    read: u64,
    max: u64,
    url: String,
    /// The fetch's own deadline (`isolate.fetch.timeout`) bounds the body too.
    pub(crate) deadline: tokio::time::Instant,
}

impl BodyRest {
    /// The next chunk; `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => return Err(format!("{}: the body timed out (isolate.fetch.timeout)", self.url)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(why_str(&self.url, &e)),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            self.read += data.len() as u64;
            if self.read > self.max {
                return Err(too_big(&self.url, self.max));
            }
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }
}

fn too_big(url: &str, max: u64) -> String {
    format!("{url}: the response is larger than {max} bytes (isolate.fetch.max_response_bytes)")
}

/// An app's (or plugin's) client and limits, shared by its isolates: its
/// connections are pooled for it alone, so one app's allowed connection is
/// never reused by another app.
pub(crate) struct Fetcher {
    client: Client<Https, OutBody>,
    policy: Arc<Policy>,
    limits: FetchLimits,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a fetch in flight until it is freed: by the last of its clones
/// dropped (the fetch finished or failed), or at once by [`Slot::free`]
/// when JavaScript aborts it (the aborted task is dropped later, on the
/// fetch runtime's thread, and must not hold `max_concurrent` meanwhile).
#[derive(Clone)]
pub(crate) struct Slot(Arc<SlotCount>);

pub(crate) struct SlotCount {
    in_flight: Arc<AtomicUsize>,
    freed: std::sync::atomic::AtomicBool,
}

impl Slot {
    /// Stops counting the fetch now; later frees do nothing.
    pub(crate) fn free(&self) {
        if !self.0.freed.swap(true, Ordering::AcqRel) {
            self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SlotCount {
    fn drop(&mut self) {
        if !*self.freed.get_mut() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Fetcher {
    /// Builds the client; an `allow` entry that is not a host is an error.
    pub(crate) fn new(limits: &FetchLimits) -> Result<Fetcher, String> {
        let policy = Arc::new(Policy::new(&limits.allow)?);
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { policy: policy.clone() });
        http.enforce_http(false);
        http.set_connect_timeout(Some(limits.timeout));
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // The provider is named here, not installed process-wide.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(NotOurselves { inner: http });
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        Ok(Fetcher {
            client,
            policy,
            limits: limits.clone(),
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Time one fetch may take (`isolate.fetch.timeout`); a streamed
    /// request body too.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.limits.timeout
    }

    /// Checks a fetch before it starts: the URL's scheme and host, and
    /// `max_concurrent`. The slot it returns counts the fetch until dropped.
    pub(crate) fn admit(&self, url: &url::Url) -> Result<Slot, String> {
        self.check(url)?;
        let max = self.limits.max_concurrent.max(1);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(format!(
                "{max} fetches are already in flight (isolate.fetch.max_concurrent)"
            ));
        }
        Ok(Slot(Arc::new(SlotCount {
            in_flight: self.in_flight.clone(),
            freed: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    fn check(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{}: only http and https can be fetched", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL with credentials (user@host) cannot be fetched".into());
        }
        if self.policy.is_empty() {
            return Err("fetch is not allowed: isolate.fetch.allow is empty".into());
        }
        self.policy.check(url)?;
        // An address in the URL that is one of bext's own listeners is
        // refused before connecting (a name is caught on its connection).
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let (Some(ip), Some(port)) = (ip, url.port_or_known_default())
            && is_own_listener(SocketAddr::new(ip, port), None, &own_listeners())
        {
            return Err(own_listener_refused(SocketAddr::new(ip, port)));
        }
        Ok(())
    }

    /// Runs a fetch to its head (and a small body) or to `timeout`.
    pub(crate) async fn run(&self, req: Outbound) -> Result<Fetched, String> {
        let timeout = self.limits.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.follow(req, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {timeout:?} (isolate.fetch.timeout)")),
        }
    }

    async fn follow(&self, req: Outbound, deadline: tokio::time::Instant) -> Result<Fetched, String> {
        let Outbound {
            mut method,
            mut url,
            mut headers,
            mut body,
            redirect,
        } = req;
        for name in [HOST, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING] {
            headers.remove(name);
        }
        let mut redirected = false;
        for hop in 0.. {
            self.check(&url)?;
            let uri: http::Uri = url.as_str().parse().map_err(|e| format!("{url}: {e}"))?;
            let out = match &mut body {
                Sending::Whole(bytes) => Either::Left(Full::new(bytes.clone())),
                Sending::Stream(upload) => Either::Right(upload.take().ok_or_else(|| {
                    format!("{url}: a redirect that keeps the request body cannot be followed with a streamed body (it was sent once)")
                })?),
            };
            let mut request = http::Request::new(out);
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = headers.clone();
            let res = self.client.request(request).await.map_err(|e| why(&url, &e))?;
            let status = res.status();
            let location = res.headers().get(LOCATION).and_then(|l| l.to_str().ok());
            let is_redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if !is_redirect || redirect == Redirect::Manual || location.is_none() {
                return self.head(res, url, redirected, deadline).await;
            }
            if redirect == Redirect::Error {
                return Err(format!("{url} redirected, and redirect is 'error'"));
            }
            if hop >= MAX_REDIRECTS {
                return Err(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let next = url
                .join(location.unwrap_or_default())
                .map_err(|e| format!("{url}: bad location: {e}"))?;
            // Fetch's rules: 303 (but HEAD), and 301/302 after a POST, go on
            // as a GET without a body.
            if (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
            {
                method = Method::GET;
                body = Sending::Whole(Bytes::new());
                headers.remove(CONTENT_TYPE);
            }
            // Credentials stay with their origin.
            if next.origin() != url.origin() {
                headers.remove(AUTHORIZATION);
                headers.remove(COOKIE);
                headers.remove(PROXY_AUTHORIZATION);
            }
            url = next;
            redirected = true;
        }
        unreachable!("the loop returns")
    }

    /// The response with its body whole if it is small and declared so, or
    /// if it had all arrived with the head; else with what had arrived and
    /// the rest to stream.
    async fn head(
        &self,
        res: http::Response<hyper::body::Incoming>,
        url: url::Url,
        redirected: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, String> {
        let max = self.limits.max_response_bytes;
        let declared = res
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_big(url.as_str(), max));
        }
        let (parts, body) = res.into_parts();
        let mut rest = BodyRest {
            body,
            read: 0,
            max,
            url: url.to_string(),
            deadline,
        };
        let mut whole = bytes::BytesMut::new();
        let small = declared.is_some_and(|n| n <= WHOLE_BODY);
        let ended = loop {
            let next = if small {
                rest.next().await?
            } else {
                // Only what is already here: a stream must not wait.
                match tokio::time::timeout(std::time::Duration::ZERO, rest.next()).await {
                    Ok(next) => next?,
                    Err(_) => break false,
                }
            };
            match next {
                None => break true,
                Some(chunk) => whole.extend_from_slice(&chunk),
            }
            if !small && whole.len() as u64 >= WHOLE_BODY {
                break false;
            }
        };
        Ok(Fetched {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: whole.freeze(),
            rest: (!ended).then_some(rest),
            streamed: false,
            url: url.to_string(),
            redirected,
        })
    }
}

fn why_str(url: &str, e: &dyn std::error::Error) -> String {
    let mut text = format!("{url}: reading the response: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// An error with its sources: the top level alone says only "client error".
fn why(url: &url::Url, e: &dyn std::error::Error) -> String {
    let mut text = format!("{url}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Resolves names like the system does, then keeps only the addresses the
/// app may reach: all of them for a name it allowed by name, public ones
/// otherwise. The connector connects to these addresses only, so a name
/// that resolves (or rebinds) to 127.0.0.1 never reaches it.
#[derive(Clone)]
struct GuardedResolver {
    policy: Arc<Policy>,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.named(&host) {
                return Ok(found.into_iter());
            }
            let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "refused: {host} resolves to a private address ({}) and is not allowed by name in isolate.fetch.allow",
                        shown.join(", ")
                    ),
                ));
            }
            Ok(public.into_iter())
        })
    }
}

fn own_listener_refused(to: SocketAddr) -> String {
    format!("refused: {to} is one of bext's own listeners, which fetch never reaches")
}

/// The TCP connector, refusing a connection that reached one of bext's
/// own listeners (by any name or address): it is closed before a byte is
/// sent, so an app never talks to the admin listener or to bext's front
/// door, whatever its `allow` says.
#[derive(Clone)]
struct NotOurselves {
    inner: HttpConnector<GuardedResolver>,
}

impl tower_service::Service<http::Uri> for NotOurselves {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            let peer = io.inner().peer_addr()?;
            let local = io.inner().local_addr().ok().map(|a| a.ip());
            if is_own_listener(peer, local, &own_listeners()) {
                return Err(
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, own_listener_refused(peer)).into(),
                );
            }
            Ok(io)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aborted_fetch_frees_its_place_at_once_and_only_once() {
        let limits = FetchLimits {
            allow: vec!["localhost:8080".into()],
            max_concurrent: 1,
            ..FetchLimits::DEFAULT
        };
        let fetcher = Fetcher::new(&limits).unwrap();
        let url = url::Url::parse("http://localhost:8080/").unwrap();
        let running = fetcher.admit(&url).unwrap();
        let kept = running.clone();
        assert!(fetcher.admit(&url).is_err(), "max_concurrent = 1");
        // JavaScript aborts: the place is free before the task is dropped.
        kept.free();
        let next = fetcher.admit(&url).unwrap();
        drop(running);
        drop(kept);
        assert!(
            fetcher.admit(&url).is_err(),
            "the aborted fetch did not free a second place"
        );
        drop(next);
        assert!(fetcher.admit(&url).is_ok());
    }
}
