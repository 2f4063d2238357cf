//! Giving memory back: mimalloc keeps the pages a thread freed for its
//! next allocations, so after a burst (ten thousand connections that each
//! sent a request, then idled and gave their buffers back, see
//! vendor/hyper/BEXT-PATCH.md) the process would keep the burst's size.
//! Each worker asks its heap to return what is free now and then.

use std::time::Duration;

/// How often a worker returns its freed pages: rare enough to cost nothing
/// under load, often enough that an idle server's size follows what it
/// holds.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Runs on each worker thread for its life.
pub async fn trim_periodically() {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        trim();
    }
}

/// Returns the calling thread's free pages to the system.
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: `mi_collect` has no preconditions: it frees only pages that
    // hold no live allocation, on the calling thread's heap (and, forced,
    // pages abandoned by threads that ended). Without mimalloc as the
    // global allocator it finds nothing to do.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
