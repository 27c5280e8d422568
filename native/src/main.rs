//! The `encore` command line.

use clap::Parser;

/// mimalloc keeps freed pages for reuse: training and reranking allocate and free the same
/// large tensors every step, which the system allocator returned to the kernel and page-faulted
/// back in (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = encore::cli::Cli::parse().run() {
        // One line per cause, no backtrace: these are user-facing errors (bad files, bad ids).
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
