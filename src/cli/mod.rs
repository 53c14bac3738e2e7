//! Command-line interface: one file per command, each turning its arguments into an options
//! struct and calling the library. This module only declares the commands and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{CliError, Status, render_chain};

pub mod check;
pub mod inventory;
pub mod report;
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
    #[arg(short = 'w', long = "workspace", env = "PARC_WORKSPACE", default_value = ".")]
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
    /// Fleet reports: homogeneity, rotation, renewal, PRELP request (French).
    Report(report::Args),
    /// Import the inventory (devices.csv, LINBO, GLPI export or GLPI REST API).
    #[command(subcommand)]
    Inventory(inventory::Command),
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

/// Today, from the clock: the only place the CLI reads it for rules that depend on the date.
pub fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// A room that is not in the workspace: exit 2, with the closest id as a hint.
pub fn room_error(e: crate::workspace::WorkspaceError) -> CliError {
    let hint = match &e {
        crate::workspace::WorkspaceError::UnknownRoom { suggestion: Some(s), .. } => {
            Some(format!("did you mean \"{s}\"?"))
        }
        _ => None,
    };
    let err = CliError::user(e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<Status, CliError> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Signoff(args) => signoff::run(args),
        Command::Software(args) => software::run(args),
        Command::Secret(cmd) => secret::run(cmd),
        Command::Report(args) => report::run(args),
        Command::Inventory(cmd) => inventory::run(cmd),
    }
}
