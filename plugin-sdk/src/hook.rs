//! A hook's result, ready now or later, and the fence that keeps a
//! plugin's panics inside the library.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use abi_stable::std_types::{ROption, RResult};
use async_ffi::BorrowingFfiFuture;

use crate::Error;
use crate::ffi::{FfiError, FfiHook};

/// The result of a hook: ready now (no allocation), or a boxed future for
/// a hook that really waits (the request body, a lock, another thread).
///
/// The same shape as a built-in plugin's hook result: synchronous hooks
/// return `Hook::Ready(..)`, asynchronous ones wrap an `async` block with
/// [`Hook::later`].
#[must_use]
pub enum Hook<'a, T> {
    /// The hook finished without waiting.
    Ready(T),
    /// The hook must be awaited.
    Later(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> Hook<'a, T> {
    /// Boxes an `async` block as a hook result.
    pub fn later(fut: impl Future<Output = T> + Send + 'a) -> Self {
        Hook::Later(Box::pin(fut))
    }
}

/// Runs a synchronous call, turning a panic into an error: an unwinding
/// panic must not cross the `extern "C"` boundary.
pub(crate) fn contained<T>(f: impl FnOnce() -> Result<T, Error>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Error::into_ffi).into(),
        Err(panic) => RResult::RErr(panicked(panic)),
    }
}

/// Runs a hook and hands its result across the boundary, converted with
/// `convert`; a panic, in the call or in any poll of its future, becomes
/// an error for that request only.
pub(crate) fn across<'a, T: 'a, U: 'a>(
    call: impl FnOnce() -> Hook<'a, Result<T, Error>>,
    convert: fn(T) -> U,
) -> FfiHook<'a, RResult<U, FfiError>> {
    let finish = move |r: Result<T, Error>| r.map(convert).map_err(Error::into_ffi).into();
    match catch_unwind(AssertUnwindSafe(call)) {
        Err(panic) => FfiHook::Ready(RResult::RErr(panicked(panic))),
        Ok(Hook::Ready(r)) => FfiHook::Ready(finish(r)),
        Ok(Hook::Later(fut)) => FfiHook::Later(BorrowingFfiFuture::new(async move {
            match (CatchPanic { fut }).await {
                Ok(r) => finish(r),
                Err(e) => RResult::RErr(e),
            }
        })),
    }
}

/// Polls a hook's future, catching a panic in any poll.
struct CatchPanic<'a, T> {
    fut: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<T> Future for CatchPanic<'_, T> {
    type Output = Result<T, FfiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panicked(panic))),
        }
    }
}

/// A caught panic as the error the host logs (with its message).
fn panicked(panic: Box<dyn std::any::Any + Send>) -> FfiError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    FfiError {
        status: 500,
        message: message.into(),
        panicked: true,
        config_path: ROption::RNone,
    }
}
