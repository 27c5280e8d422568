//! The `encore` command line.

use clap::Parser;

/// mimalloc keeps freed pages for reuse: training and reranking allocate and free the same
/// large tensors every step, which the system allocator returned to the kernel and page-faulted
/// back in (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in mimalloc.h, v2 and v3;
/// libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Never hand freed pages back to the kernel (mimalloc's default: after 1 s): a training
    // step frees and re-allocates the same large tensors, and each page came back zeroed by the
    // kernel (10% of a training profile). +8–13% tokens/s for ≤ 9% more peak memory
    // (BENCHMARKS.md, 2026-11-23). A MIMALLOC_PURGE_DELAY set by the user still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option; any value is valid for this option.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    if let Err(e) = encore::cli::Cli::parse().run() {
        // One line per cause, no backtrace: these are user-facing errors (bad files, bad ids).
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
