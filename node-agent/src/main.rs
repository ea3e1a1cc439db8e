//! The `flotilla-agent` command line.

use clap::{Parser, Subcommand};
use flotilla_agent::BuildInfo;

/// Flotilla's device agent.
#[derive(Debug, Parser)]
#[command(name = "flotilla-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the agent's version, wire protocol and platform as one JSON line.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            let info = BuildInfo::current();
            println!(
                "{{\"version\":\"{}\",\"protocol\":{},\"os\":\"{}\",\"arch\":\"{}\"}}",
                info.version, info.protocol, info.os, info.arch
            );
        }
    }
    Ok(())
}
