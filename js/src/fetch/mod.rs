//! Outbound `fetch()`: requests run on a small runtime of their own, off
//! the isolate's thread, so waiting for an answer runs no JavaScript (it
//! does not count against `cpu_limit`; it does count against the call's
//! `timeout`). Answers come back through a channel the isolate drains
//! between runs of JavaScript, and resolve the fetch's promise there.

mod client;
mod policy;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use rquickjs::{Ctx, Function, Object, TypedArray, Value};
use tokio::sync::Notify;

pub(crate) use client::Fetcher;
use client::{Fetched, Outbound, Redirect};

/// The runtime outbound requests run on, shared by all apps: one thread,
/// since requests mostly wait.
static RUNTIME: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bext-js-fetch")
        .enable_all()
        .build()
        .inspect_err(|e| tracing::error!(target: "bext::js", "cannot start the fetch runtime: {e}"))
        .ok()
});

/// bext's own listeners (main, TLS, admin), which no fetch may reach
/// whatever an app's `allow` says; set by the kernel once it has bound them.
static OWN_LISTENERS: RwLock<Vec<SocketAddr>> = RwLock::new(Vec::new());

/// Tells every app's `fetch()` the addresses bext itself listens on (as
/// bound: a port 0 resolved), so that no app reaches the admin listener or
/// goes around another app's plugins through bext's front door.
pub fn set_own_listeners(addrs: &[SocketAddr]) {
    if let Ok(mut own) = OWN_LISTENERS.write() {
        *own = addrs.to_vec();
    }
}

/// The addresses [`set_own_listeners`] last set.
pub(crate) fn own_listeners() -> Vec<SocketAddr> {
    OWN_LISTENERS.read().map(|o| o.clone()).unwrap_or_default()
}

/// A fetch's outcome, on its way back to the isolate.
pub(crate) struct Done {
    id: u64,
    result: Outcome,
}

/// What came back: a fetch's answer, or a binding operation's value
/// (`env.KV.get`, `caches.default.match`, ...; see `crate::bindings`),
/// which shares the fetch's channel so every wait loop sees it.
enum Outcome {
    Fetch(Result<Fetched, String>),
    Op(Result<crate::bindings::OpValue, String>),
}

/// One isolate's fetches: started by JavaScript, answered through `done`.
pub(crate) struct FetchHost {
    fetcher: Option<Arc<Fetcher>>,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    /// Inline isolates: woken when an answer arrives (threads wait on the
    /// channel itself).
    wake: Arc<Mutex<Option<Arc<Notify>>>>,
    in_flight: RefCell<HashMap<u64, (tokio::task::AbortHandle, Option<client::Slot>)>>,
    next_id: Cell<u64>,
}

impl Drop for FetchHost {
    fn drop(&mut self) {
        for (_, (task, slot)) in self.in_flight.borrow_mut().drain() {
            task.abort();
            if let Some(slot) = slot {
                slot.free();
            }
        }
    }
}

impl FetchHost {
    /// A host for one isolate; `fetcher` is the app's (None: nothing may
    /// be fetched).
    pub(crate) fn new(fetcher: Option<Arc<Fetcher>>) -> Rc<FetchHost> {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Rc::new(FetchHost {
            fetcher,
            done_tx,
            done_rx,
            wake: Arc::new(Mutex::new(None)),
            in_flight: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        })
    }

    /// Inline isolates: who to wake when an answer arrives.
    pub(crate) fn wake_with(&self, notify: Arc<Notify>) {
        if let Ok(mut w) = self.wake.lock() {
            *w = Some(notify);
        }
    }

    /// Whether answers wait to be delivered.
    pub(crate) fn has_answers(&self) -> bool {
        !self.done_rx.is_empty()
    }

    /// Where answers arrive (to wait on with other channels).
    pub(crate) fn answers(&self) -> &Receiver<Done> {
        &self.done_rx
    }

    /// Fetches started and not yet delivered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    /// Starts a fetch; the refusals known at once (host not allowed, too
    /// many in flight) are errors here.
    fn start(&self, method: &str, url: &str, flat: Vec<String>, body: Bytes, redirect: i32) -> Result<u64, String> {
        let fetcher = self
            .fetcher
            .clone()
            .ok_or("fetch is not allowed: isolate.fetch.allow is empty")?;
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid method {method:?}"))?;
        let url = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let mut headers = HeaderMap::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let name =
                HeaderName::from_bytes(pair[0].as_bytes()).map_err(|_| format!("invalid header name {:?}", pair[0]))?;
            let value = HeaderValue::from_str(&pair[1]).map_err(|_| format!("invalid value for header {name}"))?;
            headers.append(name, value);
        }
        let redirect = match redirect {
            1 => Redirect::Manual,
            2 => Redirect::Error,
            _ => Redirect::Follow,
        };
        let slot = fetcher.admit(&url)?;
        let runtime = RUNTIME.as_ref().ok_or("the fetch runtime could not start")?;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, wake) = (self.done_tx.clone(), self.wake.clone());
        let req = Outbound {
            method,
            url,
            headers,
            body,
            redirect,
        };
        let kept = slot.clone();
        let task = runtime.spawn(async move {
            let result = fetcher.run(req).await;
            slot.free(); // before JavaScript hears of it
            let _ = tx.send(Done {
                id,
                result: Outcome::Fetch(result),
            });
            if let Some(n) = wake.lock().ok().and_then(|w| w.clone()) {
                n.notify_waiters();
            }
        });
        self.in_flight
            .borrow_mut()
            .insert(id, (task.abort_handle(), Some(kept)));
        Ok(id)
    }

    /// Starts a binding's operation on the fetch runtime (its blocking
    /// pool for SQLite): like a fetch, waiting for it runs no JavaScript,
    /// and its value reaches JavaScript through `fetchDone`.
    pub(crate) fn start_op(
        &self,
        op: impl std::future::Future<Output = Result<crate::bindings::OpValue, String>> + Send + 'static,
    ) -> Result<u64, String> {
        let runtime = RUNTIME.as_ref().ok_or("the fetch runtime could not start")?;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, wake) = (self.done_tx.clone(), self.wake.clone());
        let task = runtime.spawn(async move {
            let result = Outcome::Op(op.await);
            let _ = tx.send(Done { id, result });
            if let Some(n) = wake.lock().ok().and_then(|w| w.clone()) {
                n.notify_waiters();
            }
        });
        self.in_flight.borrow_mut().insert(id, (task.abort_handle(), None));
        Ok(id)
    }

    /// Abandons a fetch (its signal aborted).
    fn abort(&self, id: u64) {
        if let Some((task, slot)) = self.in_flight.borrow_mut().remove(&id) {
            task.abort();
            if let Some(slot) = slot {
                slot.free();
            }
        }
    }

    /// Waits for an answer until `until`; true if one arrived (it is left
    /// for [`FetchHost::deliver`]).
    pub(crate) fn wait(&self, until: Instant) -> Option<bool> {
        if self.in_flight() == 0 {
            return None;
        }
        match self.done_rx.recv_deadline(until) {
            Ok(done) => {
                // Put it back for `deliver`: the channel is ours alone.
                let _ = self.done_tx.send(done);
                Some(true)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Some(false),
        }
    }

    /// Hands the answers that arrived to JavaScript (`fetchDone`);
    /// returns how many.
    pub(crate) fn deliver<'js>(&self, ctx: &Ctx<'js>, done: &Function<'js>) -> rquickjs::Result<usize> {
        let mut n = 0;
        while let Ok(Done { id, result }) = self.done_rx.try_recv() {
            if self.in_flight.borrow_mut().remove(&id).is_none() {
                continue; // aborted meanwhile
            }
            n += 1;
            let result = match result {
                Outcome::Fetch(result) => result,
                Outcome::Op(Ok(value)) => {
                    let value = value(ctx)?;
                    done.call::<_, ()>((id as f64, Value::new_null(ctx.clone()), value))?;
                    continue;
                }
                Outcome::Op(Err(e)) => {
                    done.call::<_, ()>((id as f64, e))?;
                    continue;
                }
            };
            match result {
                Ok(f) => {
                    let flat = rquickjs::Array::new(ctx.clone())?;
                    let mut i = 0;
                    for (name, value) in &f.headers {
                        flat.set(i, name.as_str())?;
                        flat.set(i + 1, String::from_utf8_lossy(value.as_bytes()).as_ref())?;
                        i += 2;
                    }
                    let body = TypedArray::<u8>::new_copy(ctx.clone(), &f.body)?;
                    done.call::<_, ()>((
                        id as f64,
                        Value::new_null(ctx.clone()),
                        f.status,
                        flat,
                        body,
                        f.url,
                        f.redirected,
                    ))?;
                }
                Err(e) => done.call::<_, ()>((id as f64, e))?,
            }
        }
        Ok(n)
    }
}

/// Adds `fetchStart` and `fetchAbort` to the prelude's `native` object.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>, host: Rc<FetchHost>) -> rquickjs::Result<()> {
    let starter = host.clone();
    native.set(
        "fetchStart",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  method: String,
                  url: String,
                  flat: Vec<String>,
                  body: Option<TypedArray<'js, u8>>,
                  redirect: i32|
                  -> rquickjs::Result<f64> {
                let body = body
                    .map(|b| Bytes::from(crate::natives::copy_bytes(&b)))
                    .unwrap_or_default();
                match starter.start(&method, &url, flat, body, redirect) {
                    Ok(id) => Ok(id as f64),
                    Err(e) => Err(rquickjs::Exception::throw_type(&ctx, &format!("fetch {url}: {e}"))),
                }
            },
        )?,
    )?;
    native.set(
        "fetchAbort",
        Function::new(ctx.clone(), move |id: f64| host.abort(id as u64))?,
    )?;
    Ok(())
}

/// The app's client, shared by its isolates; none when `allow` is empty.
pub(crate) fn fetcher_for(limits: &crate::FetchLimits) -> Result<Option<Arc<Fetcher>>, crate::JsError> {
    if limits.allow.is_empty() {
        return Ok(None);
    }
    Fetcher::new(limits)
        .map(|f| Some(Arc::new(f)))
        .map_err(crate::JsError::Load)
}
