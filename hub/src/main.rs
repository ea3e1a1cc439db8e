//! The `flotilla-hub` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use flotilla_hub::check;
use flotilla_shared::manifest::FieldValidation;

/// Flotilla's control plane.
#[derive(Debug, Parser)]
#[command(name = "flotilla-hub", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode and validate manifests as the API server's admission will,
    /// printing every problem of every object (exit status 1 if any).
    Check {
        /// Manifest files, or directories of *.yaml / *.yml / *.json files.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// What to do with fields the object model does not know, as kubectl's `--validate`.
        #[arg(long, value_enum, default_value_t = Validate::Strict)]
        validate: Validate,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Validate {
    Strict,
    Warn,
    Ignore,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Check { files, validate } => {
            let mode = match validate {
                Validate::Strict => FieldValidation::Strict,
                Validate::Warn => FieldValidation::Warn,
                Validate::Ignore => FieldValidation::Ignore,
            };
            let reports = check::check_paths(&files, mode)?;
            let mut ok = true;
            for file in &reports {
                ok &= file.is_ok();
                match &file.outcome {
                    Err(e) => eprintln!("error: {}: {e}", file.path.display()),
                    Ok(objects) => {
                        for object in objects {
                            for warning in &object.warnings {
                                eprintln!("Warning: {}: {warning}", object.reference);
                            }
                            match &object.error {
                                None => {
                                    println!("{} valid ({})", object.reference, file.path.display())
                                }
                                Some(error) => eprintln!("error: {}: {error}", file.path.display()),
                            }
                        }
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
