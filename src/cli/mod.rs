//! Command-line interface: one file per command, each turning its arguments into an options
//! struct and calling the library. This module only declares the commands and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{CliError, Status, render_chain};

pub mod check;
pub mod image;
pub mod secret;
pub mod signoff;
pub mod software;

/// parc — master images for lycée computer rooms, from a reviewed recipe.
#[derive(Debug, Parser)]
#[command(name = "parc", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the workspace is: `-w DIR`, else `$PARC_WORKSPACE`, else the current folder.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkspaceArg {
    /// The site workspace (folder with site.toml).
    #[arg(
        short = 'w',
        long = "workspace",
        env = "PARC_WORKSPACE",
        default_value = "."
    )]
    pub workspace: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a workspace: every finding as file:line:col.
    Check(check::Args),
    /// Record a teachers' sign-off of a room's current software list.
    Signoff(signoff::Args),
    /// Print a room's software list as the teachers sign it (French), with its digest.
    Software(software::Args),
    /// Captured master images: list, show, verify, prune.
    #[command(subcommand)]
    Image(image::Command),
    /// Manage secrets (licence keys, domain passwords) by name.
    #[command(subcommand)]
    Secret(secret::Command),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            eprint!("{}", render_chain(&err));
            err.status.into()
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<Status, CliError> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Signoff(args) => signoff::run(args),
        Command::Software(args) => software::run(args),
        Command::Secret(cmd) => secret::run(cmd),
        Command::Image(cmd) => image::run(cmd),
    }
}
