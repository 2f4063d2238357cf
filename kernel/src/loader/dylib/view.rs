//! What a library's hooks see of bext's request, response and finished
//! request: the SDK's view traits, implemented over the contract's types.

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use bext_plugin_abi::{Completion, Ctx, Request, Response, SUBJECT_VAR};
use bext_plugin_sdk::ffi::{BorrowingFfiFuture, DoneView, HttpView};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

/// A request or a response, as a hook sees it.
pub(super) enum Message<'a> {
    /// On its way to the app.
    Request(&'a mut Request),
    /// On its way back.
    Response(&'a mut Response),
}

/// What a hook sees of one request or response, for the length of a call
/// and of the future it returns.
pub(super) struct View<'a> {
    pub(super) msg: Message<'a>,
    pub(super) cx: &'a mut Ctx,
}

impl View<'_> {
    fn headers(&self) -> &HeaderMap {
        match &self.msg {
            Message::Request(r) => r.headers(),
            Message::Response(r) => r.headers(),
        }
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        match &mut self.msg {
            Message::Request(r) => r.headers_mut(),
            Message::Response(r) => r.headers_mut(),
        }
    }

    fn request(&self) -> Option<&Request> {
        match &self.msg {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }
}

fn header_pair(name: RStr<'_>, value: RStr<'_>) -> Result<(HeaderName, HeaderValue), RString> {
    let n = HeaderName::from_bytes(name.as_str().as_bytes())
        .map_err(|_| RString::from(format!("invalid header name {name:?}")))?;
    let v =
        HeaderValue::from_str(value.as_str()).map_err(|_| RString::from(format!("invalid value for header {n}")))?;
    Ok((n, v))
}

impl HttpView for View<'_> {
    fn method(&self) -> RStr<'_> {
        self.request().map_or("", |r| r.method().as_str()).into()
    }

    fn path(&self) -> RStr<'_> {
        self.request().map_or("", |r| r.uri().path()).into()
    }

    fn query(&self) -> RStr<'_> {
        self.request().and_then(|r| r.uri().query()).unwrap_or("").into()
    }

    fn host(&self) -> RStr<'_> {
        self.cx.host.as_deref().unwrap_or("").into()
    }

    fn status(&self) -> u16 {
        match &self.msg {
            Message::Response(r) => r.status().as_u16(),
            Message::Request(_) => 0,
        }
    }

    fn set_status(&mut self, status: u16) -> RResult<(), RString> {
        match (&mut self.msg, StatusCode::from_u16(status)) {
            (Message::Response(r), Ok(s)) => {
                *r.status_mut() = s;
                RResult::ROk(())
            }
            (Message::Response(_), Err(_)) => RResult::RErr(format!("invalid status {status}").into()),
            (Message::Request(_), _) => RResult::RErr("a request has no status".into()),
        }
    }

    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        self.headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(RStr::from)
            .into()
    }

    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        header_pair(name, value)
            .map(|(n, v)| {
                self.headers_mut().insert(n, v);
            })
            .into()
    }

    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        header_pair(name, value)
            .map(|(n, v)| {
                self.headers_mut().append(n, v);
            })
            .into()
    }

    fn remove_header(&mut self, name: RStr<'_>) {
        self.headers_mut().remove(name.as_str());
    }

    fn app(&self) -> ROption<RStr<'_>> {
        self.cx.app().map(RStr::from).into()
    }

    fn tenant(&self) -> ROption<RStr<'_>> {
        self.cx.tenant().map(RStr::from).into()
    }

    fn set_app(&mut self, app: RStr<'_>) -> RResult<(), RString> {
        if self.cx.app() == Some(app.as_str()) {
            return RResult::ROk(());
        }
        self.cx
            .set_app(app.as_str())
            .map_err(|e| RString::from(e.to_string()))
            .into()
    }

    fn set_tenant(&mut self, tenant: RStr<'_>) -> RResult<(), RString> {
        if self.cx.tenant() == Some(tenant.as_str()) {
            return RResult::ROk(());
        }
        self.cx
            .set_tenant(tenant.as_str())
            .map_err(|e| RString::from(e.to_string()))
            .into()
    }

    fn var(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        var(self.cx, name)
    }

    fn set_var(&mut self, name: RStr<'_>, value: RStr<'_>) {
        self.cx.vars.insert(name.as_str().to_owned(), value.as_str().to_owned());
    }

    fn request_id(&self) -> u64 {
        self.cx.request_id.0
    }

    fn peek_body(&mut self, limit: u64) -> BorrowingFfiFuture<'_, RVec<u8>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        BorrowingFfiFuture::new(async move {
            match &mut self.msg {
                Message::Request(r) => r.body_mut().peek(limit).await.to_vec().into(),
                Message::Response(_) => RVec::new(),
            }
        })
    }
}

/// What `on_complete` sees of a finished request.
pub(super) struct Done<'a> {
    pub(super) cx: &'a Ctx,
    pub(super) done: &'a Completion,
}

impl DoneView for Done<'_> {
    fn status(&self) -> u16 {
        self.done.status.as_u16()
    }

    fn body_bytes(&self) -> u64 {
        self.done.body_bytes
    }

    fn duration_micros(&self) -> u64 {
        u64::try_from(self.done.duration.as_micros()).unwrap_or(u64::MAX)
    }

    fn aborted(&self) -> bool {
        self.done.aborted
    }

    fn host(&self) -> RStr<'_> {
        self.cx.host.as_deref().unwrap_or("").into()
    }

    fn app(&self) -> ROption<RStr<'_>> {
        self.cx.app().map(RStr::from).into()
    }

    fn tenant(&self) -> ROption<RStr<'_>> {
        self.cx.tenant().map(RStr::from).into()
    }

    fn var(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        var(self.cx, name)
    }

    fn request_id(&self) -> u64 {
        self.cx.request_id.0
    }
}

/// A shared string value; the verified subject is one too.
fn var<'c>(cx: &'c Ctx, name: RStr<'_>) -> ROption<RStr<'c>> {
    if name.as_str() == SUBJECT_VAR
        && let Some(sub) = cx.subject()
    {
        return ROption::RSome(RStr::from(sub));
    }
    cx.vars.get(name.as_str()).map(|v| RStr::from(v.as_str())).into()
}
