//! Outbound `fetch()`: requests run on a small runtime of their own, off
//! the isolate's thread, so waiting for an answer runs no JavaScript (it
//! does not count against `cpu_limit`; it does count against the call's
//! `timeout`). Answers come back through a channel the isolate drains
//! between runs of JavaScript, and resolve the fetch's promise there.

mod client;
mod policy;
mod upload;

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
use tokio::sync::{Notify, Semaphore};

pub(crate) use client::Fetcher;
use client::{Fetched, Outbound, Redirect};
use upload::{Piece, PieceSender, Sending, Upload};

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

/// Whether a connection from `local` to `peer` reaches one of bext's own
/// listeners: for the kernel's proxy, whose upstreams a deployed bundle
/// names are held to the same rule as `fetch()`.
pub fn reaches_own_listener(peer: SocketAddr, local: std::net::IpAddr) -> bool {
    policy::is_own_listener(peer, Some(local), &own_listeners())
}

/// Something a fetch has for the isolate.
pub(crate) struct Done {
    id: u64,
    event: Event,
}

/// What a fetch has to say: its head, then, for a streamed body, its
/// chunks and how it ended.
enum Event {
    /// The response (body whole unless `rest` was set), or why it failed.
    Head(Result<Box<Fetched>, String>),
    /// A chunk of a streamed body.
    Chunk(Bytes),
    /// The streamed body ended.
    End,
    /// The streamed body failed (reset, too large, timed out).
    Failed(String),
    /// The connection wants the next chunk of the streamed request body.
    Pull,
    /// A binding operation's value (`env.KV.get`, `caches.default.match`,
    /// ...; see `crate::bindings`), which shares the fetch's channel so
    /// every wait loop sees it.
    Op(Result<crate::bindings::OpValue, String>),
}

impl Event {
    /// The fetch's last word: it is no longer in flight after this.
    fn is_last(&self) -> bool {
        match self {
            Event::Head(Ok(f)) => !f.streamed,
            Event::Chunk(_) | Event::Pull => false,
            Event::Head(Err(_)) | Event::End | Event::Failed(_) | Event::Op(_) => true,
        }
    }
}

/// Bytes of a streamed body that may wait for JavaScript to read them;
/// past this the fetch stops reading from the network (backpressure).
const BODY_WINDOW: usize = crate::request_body::WINDOW;

/// What an app's request body still arriving has for the isolate
/// (`crate::request_body`): the same events as a streamed fetch body.
pub(crate) enum BodyEvent {
    /// A chunk.
    Chunk(Bytes),
    /// The body ended.
    End,
    /// The body failed (the client left, a kernel limit cut it).
    Failed(String),
}

/// Where an app's request body goes once an isolate took it: the
/// isolate's answers channel, under the id [`FetchHost::take_body`] gave.
pub(crate) struct BodySink {
    id: u64,
    tx: Sender<Done>,
    wake: Arc<Mutex<Option<Arc<Notify>>>>,
}

impl BodySink {
    /// Hands `event` to the isolate and wakes it (inline).
    pub(crate) fn send(&self, event: BodyEvent) {
        let event = match event {
            BodyEvent::Chunk(data) => Event::Chunk(data),
            BodyEvent::End => Event::End,
            BodyEvent::Failed(why) => Event::Failed(why),
        };
        let _ = self.tx.send(Done { id: self.id, event });
        if let Some(n) = self.wake.lock().ok().and_then(|w| w.clone()) {
            n.notify_waiters();
        }
    }
}

/// What runs for an id in flight (a fetch's or an operation's task; none
/// for a request body), and the `max_concurrent` place it holds.
type InFlight = (Option<tokio::task::AbortHandle>, Option<client::Slot>);

/// One isolate's fetches: started by JavaScript, answered through `done`.
pub(crate) struct FetchHost {
    fetcher: Option<Arc<Fetcher>>,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    /// An answer [`FetchHost::wait`] took off the channel, delivered
    /// before the ones behind it (a streamed body's events keep their order).
    held: RefCell<Option<Done>>,
    /// Inline isolates: woken when an answer arrives (threads wait on the
    /// channel itself).
    wake: Arc<Mutex<Option<Arc<Notify>>>>,
    /// Fetches hold a place in the app's `max_concurrent`; binding
    /// operations hold none; request bodies have no task either.
    in_flight: RefCell<HashMap<u64, InFlight>>,
    /// App request bodies still arriving, until they end or their call does.
    bodies: RefCell<HashMap<u64, crate::request_body::BodyTap>>,
    /// Streamed bodies: bytes JavaScript has read and gives back to the
    /// fetch's window (`fetchCredit`).
    credits: RefCell<HashMap<u64, Arc<Semaphore>>>,
    /// Streamed request bodies: where JavaScript's chunks go
    /// (`fetchWrite`), until the stream ends or the fetch does.
    uploads: RefCell<HashMap<u64, PieceSender>>,
    next_id: Cell<u64>,
}

impl Drop for FetchHost {
    fn drop(&mut self) {
        for (_, (task, slot)) in self.in_flight.borrow_mut().drain() {
            if let Some(task) = task {
                task.abort();
            }
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
            held: RefCell::new(None),
            wake: Arc::new(Mutex::new(None)),
            in_flight: RefCell::new(HashMap::new()),
            credits: RefCell::new(HashMap::new()),
            uploads: RefCell::new(HashMap::new()),
            bodies: RefCell::new(HashMap::new()),
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
        self.held.borrow().is_some() || !self.done_rx.is_empty()
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
    /// many in flight) are errors here. `body`: the bytes, or `None` for a
    /// body JavaScript streams (`fetchWrite`, as the connection asks).
    fn start(
        &self,
        method: &str,
        url: &str,
        flat: Vec<String>,
        body: Option<Bytes>,
        redirect: i32,
    ) -> Result<u64, String> {
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
        let body = match body {
            Some(bytes) => Sending::Whole(bytes),
            None => {
                let (ask_tx, ask_wake) = (tx.clone(), wake.clone());
                let ask = move || {
                    let _ = ask_tx.send(Done { id, event: Event::Pull });
                    if let Some(n) = ask_wake.lock().ok().and_then(|w| w.clone()) {
                        n.notify_waiters();
                    }
                };
                let (upload, pieces) = Upload::new(Box::new(ask), fetcher.timeout());
                self.uploads.borrow_mut().insert(id, pieces);
                Sending::Stream(Some(upload))
            }
        };
        let req = Outbound {
            method,
            url,
            headers,
            body,
            redirect,
        };
        let kept = slot.clone();
        let credit = Arc::new(Semaphore::new(BODY_WINDOW));
        let window = credit.clone();
        let task = runtime.spawn(async move {
            let send = |event: Event| {
                let _ = tx.send(Done { id, event });
                if let Some(n) = wake.lock().ok().and_then(|w| w.clone()) {
                    n.notify_waiters();
                }
            };
            let mut result = fetcher.run(req).await;
            let rest = result.as_mut().ok().and_then(|f| f.rest.take());
            let Some(mut rest) = rest else {
                slot.free(); // before JavaScript hears of it
                send(Event::Head(result.map(Box::new)));
                return;
            };
            if let Ok(f) = result.as_mut() {
                f.streamed = true;
            }
            send(Event::Head(result.map(Box::new)));
            let last = loop {
                match rest.next().await {
                    Ok(Some(chunk)) => {
                        // Wait until JavaScript has read enough of what was sent.
                        let want = u32::try_from(chunk.len().min(BODY_WINDOW)).unwrap_or(u32::MAX);
                        match tokio::time::timeout_at(rest.deadline, window.acquire_many(want)).await {
                            Ok(Ok(permit)) => permit.forget(),
                            _ => break Event::Failed("the body was not read in time (isolate.fetch.timeout)".into()),
                        }
                        send(Event::Chunk(chunk));
                    }
                    Ok(None) => break Event::End,
                    Err(e) => break Event::Failed(e),
                }
            };
            slot.free();
            send(last);
        });
        self.in_flight
            .borrow_mut()
            .insert(id, (Some(task.abort_handle()), Some(kept)));
        self.credits.borrow_mut().insert(id, credit);
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
            let event = Event::Op(op.await);
            let _ = tx.send(Done { id, event });
            if let Some(n) = wake.lock().ok().and_then(|w| w.clone()) {
                n.notify_waiters();
            }
        });
        self.in_flight
            .borrow_mut()
            .insert(id, (Some(task.abort_handle()), None));
        Ok(id)
    }

    /// Takes an app's request body that is still arriving: its chunks
    /// reach JavaScript as a streamed fetch body's do (`fetchDone` events
    /// of the returned id), and bytes read are credited back to its window.
    pub(crate) fn take_body(&self, tap: crate::request_body::BodyTap) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.in_flight.borrow_mut().insert(id, (None, None));
        self.credits.borrow_mut().insert(id, tap.window());
        tap.attach(BodySink {
            id,
            tx: self.done_tx.clone(),
            wake: self.wake.clone(),
        });
        self.bodies.borrow_mut().insert(id, tap);
        id
    }

    /// Whether request body `id` is still taken (neither ended nor let go).
    pub(crate) fn has_body(&self, id: u64) -> bool {
        self.bodies.borrow().contains_key(&id)
    }

    /// JavaScript read `n` bytes of fetch `id`'s streamed body.
    fn credit(&self, id: u64, n: usize) {
        if let Some(window) = self.credits.borrow().get(&id) {
            window.add_permits(n.min(BODY_WINDOW));
        }
    }

    /// The next piece of fetch `id`'s streamed request body; the end and
    /// a failure are its last.
    fn write(&self, id: u64, piece: Piece) {
        let last = !matches!(piece, Piece::Data(_));
        let mut uploads = self.uploads.borrow_mut();
        if let Some(pieces) = uploads.get(&id) {
            let _ = pieces.send(piece);
        }
        if last {
            uploads.remove(&id);
        }
    }

    /// Abandons a fetch (its signal aborted), or lets go of a request
    /// body (cancelled, or its call is over).
    pub(crate) fn abort(&self, id: u64) {
        self.credits.borrow_mut().remove(&id);
        self.uploads.borrow_mut().remove(&id);
        self.bodies.borrow_mut().remove(&id);
        if let Some((task, slot)) = self.in_flight.borrow_mut().remove(&id) {
            if let Some(task) = task {
                task.abort();
            }
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
        if self.held.borrow().is_some() {
            return Some(true);
        }
        match self.done_rx.recv_deadline(until) {
            Ok(done) => {
                // Kept for `deliver`, ahead of what arrives after it.
                *self.held.borrow_mut() = Some(done);
                Some(true)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Some(false),
        }
    }

    /// Hands the answers that arrived to JavaScript (`fetchDone`), `max`
    /// of them at most (the caller may run each one's microtasks under a
    /// budget of its own); returns how many.
    pub(crate) fn deliver<'js>(&self, ctx: &Ctx<'js>, done: &Function<'js>, max: usize) -> rquickjs::Result<usize> {
        let mut n = 0;
        while n < max {
            let held = self.held.borrow_mut().take();
            let Some(Done { id, event }) = held.or_else(|| self.done_rx.try_recv().ok()) else {
                break;
            };
            if !self.in_flight.borrow().contains_key(&id) {
                continue; // aborted meanwhile
            }
            if event.is_last() {
                self.in_flight.borrow_mut().remove(&id);
                self.credits.borrow_mut().remove(&id);
                // An upload still going when its fetch is over is cut (an
                // error on the connection, never a body that looks whole).
                self.uploads.borrow_mut().remove(&id);
                self.bodies.borrow_mut().remove(&id);
            }
            n += 1;
            // `fetchDone(id, error, status, ...)`: status -1 is a streamed
            // body's event (a chunk, its end with neither, or an error).
            let null = || Value::new_null(ctx.clone());
            match event {
                Event::Head(Ok(f)) => {
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
                        null(),
                        f.status,
                        flat,
                        body,
                        f.url,
                        i32::from(f.redirected) | i32::from(f.streamed) << 1,
                    ))?;
                }
                Event::Head(Err(e)) => done.call::<_, ()>((id as f64, e))?,
                Event::Chunk(chunk) => {
                    let chunk = TypedArray::<u8>::new_copy(ctx.clone(), &chunk)?;
                    done.call::<_, ()>((id as f64, null(), -1, null(), chunk))?;
                }
                Event::End => done.call::<_, ()>((id as f64, null(), -1, null(), null()))?,
                Event::Failed(e) => done.call::<_, ()>((id as f64, e, -1))?,
                Event::Pull => done.call::<_, ()>((id as f64, null(), -2))?,
                Event::Op(Ok(value)) => {
                    let value = value(ctx)?;
                    done.call::<_, ()>((id as f64, null(), value))?;
                }
                Event::Op(Err(e)) => done.call::<_, ()>((id as f64, e))?,
            }
        }
        Ok(n)
    }
}

/// Adds `fetchStart`, `fetchCredit`, `fetchWrite` and `fetchAbort` to the
/// prelude's `native` object.
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
                  redirect: i32,
                  streamed: rquickjs::function::Opt<bool>|
                  -> rquickjs::Result<f64> {
                let body = match streamed.0 {
                    Some(true) => None,
                    _ => Some(
                        body.map(|b| Bytes::from(crate::natives::copy_bytes(&b)))
                            .unwrap_or_default(),
                    ),
                };
                match starter.start(&method, &url, flat, body, redirect) {
                    Ok(id) => Ok(id as f64),
                    Err(e) => Err(rquickjs::Exception::throw_type(&ctx, &format!("fetch {url}: {e}"))),
                }
            },
        )?,
    )?;
    let creditor = host.clone();
    native.set(
        "fetchCredit",
        Function::new(ctx.clone(), move |id: f64, n: f64| {
            creditor.credit(id as u64, n as usize)
        })?,
    )?;
    let writer = host.clone();
    native.set(
        "fetchWrite",
        Function::new(
            ctx.clone(),
            move |id: f64, chunk: Option<TypedArray<'js, u8>>, error: Option<String>| {
                let piece = match (chunk, error) {
                    (_, Some(why)) => Piece::Failed(why),
                    (Some(chunk), None) => Piece::Data(Bytes::from(crate::natives::copy_bytes(&chunk))),
                    (None, None) => Piece::End,
                };
                writer.write(id as u64, piece);
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
