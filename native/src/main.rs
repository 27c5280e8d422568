//! The `encore` command line.

use clap::Parser;

fn main() {
    if let Err(e) = encore::cli::Cli::parse().run() {
        // One line per cause, no backtrace: these are user-facing errors (bad files, bad ids).
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
