//! The `encore` command line.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    encore::cli::Cli::parse().run()
}
