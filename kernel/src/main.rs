//! The `bext` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    bext::cli::run()
}
