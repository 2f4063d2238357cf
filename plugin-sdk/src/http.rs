//! What hooks see and answer: the request, the response head, a finished
//! request, and the response a plugin answers with.

use std::time::Duration;

use crate::Error;
use crate::error::refused;
use crate::ffi::{DoneViewRef, HttpViewMut};

/// What a request hook decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Answer now; no later plugin or app sees the request.
    Respond(Response),
}

/// A response a plugin answers with.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// The request, lent to a hook for the length of the call and of the
/// future it returns.
pub struct Request<'a> {
    pub(crate) view: HttpViewMut<'a>,
}

/// The response head (status and headers), lent to `on_response`.
pub struct ResponseHead<'a> {
    pub(crate) view: HttpViewMut<'a>,
}

macro_rules! common_accessors {
    () => {
        /// The first value of a header, when it is valid UTF-8.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.view.header(name.into()).into_option().map(|s| s.as_str())
        }

        /// Replaces a header.
        pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
            self.view
                .set_header(name.into(), value.into())
                .into_result()
                .map_err(refused)
        }

        /// Adds a header value.
        pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
            self.view
                .append_header(name.into(), value.into())
                .into_result()
                .map_err(refused)
        }

        /// Removes a header.
        pub fn remove_header(&mut self, name: &str) {
            self.view.remove_header(name.into())
        }

        /// The app this request was routed to, once known.
        pub fn app(&self) -> Option<&str> {
            self.view.app().into_option().map(|s| s.as_str())
        }

        /// The tenant, once known.
        pub fn tenant(&self) -> Option<&str> {
            self.view.tenant().into_option().map(|s| s.as_str())
        }

        /// A string value shared between plugins for this request.
        pub fn var(&self, name: &str) -> Option<&str> {
            self.view.var(name.into()).into_option().map(|s| s.as_str())
        }

        /// Sets a string value shared between plugins for this request.
        pub fn set_var(&mut self, name: &str, value: &str) {
            self.view.set_var(name.into(), value.into())
        }

        /// The request id (also in bext's logs).
        pub fn request_id(&self) -> u64 {
            self.view.request_id()
        }
    };
}

impl Request<'_> {
    /// The method.
    pub fn method(&self) -> &str {
        self.view.method().as_str()
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.view.path().as_str()
    }

    /// The query, without `?`.
    pub fn query(&self) -> &str {
        self.view.query().as_str()
    }

    /// The host, lower-cased, without port.
    pub fn host(&self) -> &str {
        self.view.host().as_str()
    }

    /// Routes the request to an app (once per request).
    pub fn set_app(&mut self, app: &str) -> Result<(), Error> {
        self.view.set_app(app.into()).into_result().map_err(refused)
    }

    /// Sets the tenant (once per request).
    pub fn set_tenant(&mut self, tenant: &str) -> Result<(), Error> {
        self.view.set_tenant(tenant.into()).into_result().map_err(refused)
    }

    /// Waits for the first `limit` bytes of the request body (all of it
    /// when it is shorter) and returns a copy; the app still gets the whole
    /// body. At most `limit` bytes are held in memory, and never more than
    /// the server's body limit allows. Use it from an `async` hook
    /// ([`crate::Hook::later`]).
    pub async fn body(&mut self, limit: usize) -> Vec<u8> {
        self.view.peek_body(limit as u64).await.into_vec()
    }

    common_accessors!();
}

impl ResponseHead<'_> {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.view.status()
    }

    /// Changes the status code.
    pub fn set_status(&mut self, status: u16) -> Result<(), Error> {
        self.view.set_status(status).into_result().map_err(refused)
    }

    common_accessors!();
}

/// A finished request, lent to `on_complete`: what was sent, how long it
/// took, and the request's routing and shared values.
pub struct Completion<'a> {
    pub(crate) view: DoneViewRef<'a>,
}

impl Completion<'_> {
    /// Status sent to the client.
    pub fn status(&self) -> u16 {
        self.view.status()
    }

    /// Body bytes written.
    pub fn body_bytes(&self) -> u64 {
        self.view.body_bytes()
    }

    /// From receiving the request head to the last body byte.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.view.duration_micros())
    }

    /// The client went away before the body was fully sent.
    pub fn aborted(&self) -> bool {
        self.view.aborted()
    }

    /// The host, lower-cased, without port.
    pub fn host(&self) -> &str {
        self.view.host().as_str()
    }

    /// The app the request was routed to.
    pub fn app(&self) -> Option<&str> {
        self.view.app().into_option().map(|s| s.as_str())
    }

    /// The tenant.
    pub fn tenant(&self) -> Option<&str> {
        self.view.tenant().into_option().map(|s| s.as_str())
    }

    /// A string value shared between plugins for this request.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.view.var(name.into()).into_option().map(|s| s.as_str())
    }

    /// The request id (also in bext's logs).
    pub fn request_id(&self) -> u64 {
        self.view.request_id()
    }
}
