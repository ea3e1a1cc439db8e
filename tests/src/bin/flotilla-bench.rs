//! `flotilla-bench`: one subcommand per benchmark; each ends by printing one
//! JSON line with its figures (the last line of its output).

use clap::{Parser, Subcommand};
use flotilla_tests::bench;

#[derive(Debug, Parser)]
#[command(name = "flotilla-bench", version)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Desired state on the wire (postcard) against Kubernetes JSON: bytes and decode time.
    Codec {
        /// Finish in seconds rather than minutes, with wider error bars.
        #[arg(long)]
        quick: bool,
    },
}

fn main() {
    let line = match Cli::parse().bench {
        Bench::Codec { quick } => bench::codec::run(quick).to_json(),
    };
    println!("{line}");
}
