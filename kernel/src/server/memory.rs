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

use std::alloc::{GlobalAlloc, Layout};
use std::time::Duration;

/// The global allocator (kernel/src/main.rs): mimalloc, asked for a plain
/// `mi_malloc` when the alignment is one that every block has. The
/// mimalloc crate asks `mi_malloc_aligned` for everything, and mimalloc
/// serves an aligned request that finds no free block at hand in its size
/// class by over-allocating `size + align - 1` in the next class: 768-byte
/// connections landed in 896-byte blocks, in pages that the burst's
/// short-lived blocks shared (bench/RESULTS.md, issue 22).
pub struct Allocator;

/// Every mimalloc block is aligned to a word at least.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: mimalloc's functions meet `GlobalAlloc`'s contract; blocks from
// `mi_malloc` are word-aligned, so they serve layouts aligned to a word or
// less, and the others go to the mimalloc crate's aligned calls; `mi_free`
// frees either kind.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: `ptr` came from this allocator with this alignment.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment is honoured, contents survive `realloc`, and zeroed
    /// memory is zero, on both paths (plain and aligned).
    #[test]
    #[allow(unsafe_code)]
    fn the_allocator_honours_alignments_and_keeps_contents() {
        for align in [1, 8, 16, 128, 4096] {
            for size in [1, 24, 768, 775, 5000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let grown = Layout::from_size_align(size * 3, align).unwrap();
                // SAFETY: non-zero sizes; each block freed once with its layout.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null() && (p as usize).is_multiple_of(align), "{size}/{align}");
                    p.write_bytes(0xab, size);
                    let q = Allocator.realloc(p, layout, size * 3);
                    assert!(!q.is_null() && (q as usize).is_multiple_of(align), "{size}/{align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xab), "{size}/{align}");
                    Allocator.dealloc(q, grown);
                    let z = Allocator.alloc_zeroed(layout);
                    assert!((0..size).all(|i| *z.add(i) == 0), "{size}/{align}");
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }

    /// A word-aligned 768-byte allocation is a 768-byte block, also when
    /// its size class has to start a new page: through the mimalloc
    /// crate's aligned call, those found no block at hand and were
    /// over-allocated into the 896-byte class.
    #[test]
    #[allow(unsafe_code)]
    fn word_aligned_allocations_stay_in_their_size_class() {
        let layout = Layout::from_size_align(768, 8).unwrap();
        // SAFETY: each block freed once with its layout; `mi_usable_size`
        // reads a live mimalloc block.
        unsafe {
            let blocks: Vec<*mut u8> = (0..1000).map(|_| Allocator.alloc(layout)).collect();
            let sizes: Vec<usize> = blocks
                .iter()
                .map(|&p| libmimalloc_sys::mi_usable_size(p.cast()))
                .collect();
            for p in blocks {
                Allocator.dealloc(p, layout);
            }
            assert!(sizes.iter().all(|&s| s == 768), "block sizes: {:?}", {
                let mut s = sizes.clone();
                s.dedup();
                s
            });
        }
    }
}
