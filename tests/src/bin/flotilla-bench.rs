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
    /// The device agent: pod start latency against bare `runc run -d` of the
    /// same bundle, its memory with 0, 10 and 20 pods, the aarch64 binary size.
    Agent {
        /// 5 start samples instead of 20, for CI's smoke test.
        #[arg(long)]
        quick: bool,
    },
    /// The device link: API create → Running at the hub for 50 pods, and
    /// idle bytes per device at the default settings.
    Link {
        /// 20-s byte-counting windows instead of 120 s.
        #[arg(long)]
        quick: bool,
    },
    /// Desired state on the wire (postcard) against Kubernetes JSON: bytes and decode time.
    Codec {
        /// Finish in seconds rather than minutes, with wider error bars.
        #[arg(long)]
        quick: bool,
    },
    /// The Kubernetes API of a 3-replica hub: a paced create/update/get/list/watch
    /// mix (writes against etcd at the same rate), then saturation.
    Api {
        /// Short runs (4 s each) for CI's smoke test.
        #[arg(long)]
        quick: bool,
    },
    /// The scheduler: 10,000 pending pods onto 5,000 nodes through the real
    /// store of a 3-replica hub.
    Sched {
        /// 2,000 pods onto 1,000 nodes, for CI's smoke test.
        #[arg(long)]
        quick: bool,
    },
    /// Replicated durable writes on a 3-replica hub against a 3-member etcd,
    /// and the write gap when the hub's leader is killed.
    Store {
        /// Short runs (2 s each, 3 leader kills) for CI's smoke test.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let line = match Cli::parse().bench {
        Bench::Agent { quick } => bench::agent::run(quick)?,
        Bench::Codec { quick } => bench::codec::run(quick).to_json(),
        Bench::Link { quick } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(bench::link::run(quick))?,
        Bench::Api { quick } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(bench::api::run(quick))?,
        Bench::Sched { quick } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(bench::sched::run(quick))?,
        Bench::Store { quick } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(bench::store::run(quick))?,
    };
    println!("{line}");
    Ok(())
}
