//! Giving memory back: mimalloc keeps the pages a thread freed for its
//! next allocations, so after a burst (ten thousand connections that each
//! sent a request, then idled and gave their buffers back, see
//! vendor/hyper/BEXT-PATCH.md) the process would keep the burst's size.
//! Each worker asks its heap to return what is free now and then.
//!
//! And the process opts out of transparent huge pages: mimalloc asks for
//! them on its arenas (`MADV_HUGEPAGE`), and the kernel's khugepaged then
//! fills every 2 MiB range that still holds a live page back to 2 MiB,
//! re-populating what was returned (bench/RESULTS.md, "Memory": 2,000
//! idle connections grew from 3 to 20 KiB each in 30 s of idling).

use std::time::Duration;

/// How often a worker returns its freed pages: rare enough to cost nothing
/// under load, often enough that an idle server's size follows what it
/// holds.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Keeps the pages given back given back: no transparent huge pages for
/// this process (`PR_SET_THP_DISABLE`: khugepaged leaves it alone, and
/// its page faults map 4 KiB pages). Called once, before the workers
/// start; a kernel without the call is only logged.
pub fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "could not opt out of transparent huge pages");
    }
}

/// mimalloc's `mi_option_purge_delay` (mimalloc.h of the v2 that
/// libmimalloc-sys builds; the crate names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed pages at once (mimalloc's purge delay 0) until
/// [`purge_as_usual`]; gives the delay in force. The start parses and
/// compiles the platform and checks every JS module, each freeing most of
/// what it allocated between what stays: with the usual delay those pages
/// stayed resident (10,000 JS apps: ~10 MB of ~100 MB before traffic).
/// Serving keeps the delay, so a burst of requests does not pay a system
/// call for each page it frees.
#[allow(unsafe_code)]
pub fn purge_at_once() -> std::ffi::c_long {
    // SAFETY: reading and setting an option has no preconditions; a
    // thread reading it meanwhile sees the old or the new value.
    unsafe {
        let usual = libmimalloc_sys::mi_option_get(PURGE_DELAY);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        usual
    }
}

/// Puts back the purge delay [`purge_at_once`] gave.
#[allow(unsafe_code)]
pub fn purge_as_usual(delay: std::ffi::c_long) {
    // SAFETY: as in `purge_at_once`.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, delay) }
}

/// Runs on each worker thread for its life.
pub async fn trim_periodically() {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        trim();
    }
}

/// Returns the calling thread's free pages to the system; on the main
/// thread also those of threads that ended (mimalloc reclaims abandoned
/// pages only there). The start's parse and compile of the platform run
/// on the main thread and free most of what they allocated (10,000 apps:
/// ~12 MB kept resident until this).
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: `mi_collect` has no preconditions: it frees only pages that
    // hold no live allocation, on the calling thread's heap (and, forced,
    // pages abandoned by threads that ended). Without mimalloc as the
    // global allocator it finds nothing to do.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
