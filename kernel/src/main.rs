//! The `bext` binary; everything lives in the library.

/// mimalloc: hyper servers allocate many small short-lived buffers per
/// request, which it serves faster than glibc's malloc (measured in
/// `bench/RESULTS.md`); plain `mi_malloc` for word-aligned layouts (see
/// `Allocator`).
#[global_allocator]
static ALLOC: bext::server::memory::Allocator = bext::server::memory::Allocator;

fn main() -> std::process::ExitCode {
    bext::cli::run()
}
