//! The `bext` binary; everything lives in the library.

/// mimalloc: hyper servers allocate many small short-lived buffers per
/// request, which it serves faster than glibc's malloc (measured in
/// `bench/RESULTS.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bext::cli::run()
}
