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

// `run`'s options make that variant large; the command line is parsed once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Print the agent's version, wire protocol and platform as one JSON line.
    Version,
    /// Print the heartbeat this device would send now, and its size on the wire.
    Heartbeat {
        /// The device's node name.
        #[arg(long)]
        node: String,
        /// The agent's state directory (its free space is reported).
        #[arg(long, default_value = "/var/lib/flotilla")]
        state_dir: std::path::PathBuf,
    },
    /// Run the device's pods from a desired-state file, adopting what
    /// already runs.
    Run(flotilla_agent::agent::cli::RunArgs),
    /// Watch one container (started by the agent, not by hand): run the OCI
    /// runtime's create, keep the container's logs, record its exit.
    Shim(flotilla_agent::runtime::shim::ShimArgs),
    /// A shim started ahead of need: reads the `shim` arguments of the next
    /// container from stdin (NUL-separated), then is that container's shim.
    #[command(hide = true)]
    ShimStandby,
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
        Command::Heartbeat { node, state_dir } => {
            flotilla_shared::wire::topics::validate_node_name(&node)?;
            let identity = flotilla_agent::link::device::Identity {
                node,
                disk_pressure_percent: flotilla_agent::link::device::DISK_PRESSURE_PERCENT,
                ..Default::default()
            };
            let beat = flotilla_agent::link::device::heartbeat(&identity, 0, None, 0, &state_dir);
            let bytes = flotilla_shared::wire::encode(&flotilla_shared::wire::Message::Heartbeat(
                beat.clone(),
            ));
            println!("{beat:?}");
            println!("{} bytes on the wire", bytes.len());
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            flotilla_agent::agent::cli::run(args)?;
        }
        Command::Shim(args) => std::process::exit(flotilla_agent::runtime::shim::main(&args)),
        Command::ShimStandby => std::process::exit(flotilla_agent::runtime::shim::standby_main()),
    }
    Ok(())
}
