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
