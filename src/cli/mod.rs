//! Command-line interface: one file per command, each turning its arguments into an options
//! struct and calling the library. This module only declares the commands and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{CliError, Status, render_chain};

pub mod audit;
pub mod check;
pub mod console;
pub mod doctor;
pub mod drive;
pub mod hosts;
pub mod image;
pub mod inventory;
pub mod master;
pub mod reimage;
pub mod report;
pub mod run;
pub mod runs;
pub mod secret;
pub mod serve;
pub mod signoff;
pub mod software;
pub mod status;

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
    /// parc's SSH key and the pinned host keys of the machines.
    #[command(subcommand)]
    Hosts(hosts::Command),
    /// Fleet reports: homogeneity, rotation, renewal, PRELP request (French).
    Report(report::Args),
    /// Import the inventory (devices.csv, LINBO, GLPI export or GLPI REST API).
    #[command(subcommand)]
    Inventory(inventory::Command),
    /// Captured master images: list, show, verify, prune.
    #[command(subcommand)]
    Image(image::Command),
    /// Manage secrets (licence keys, domain passwords) by name.
    #[command(subcommand)]
    Secret(secret::Command),
    /// Start or continue a room's master procedure (resumable; --dry-run shows the plan).
    Master(master::Args),
    /// Re-apply the room's current image to workstations, then join and verify them.
    Reimage(reimage::Args),
    /// Each room's procedure: step states, per-workstation table, what blocks.
    Status(status::Args),
    /// The runs recorded in the journal.
    Runs(runs::Args),
    /// One run of the journal.
    #[command(subcommand)]
    Run(run::Command),
    /// The hash-chained audit log: list, verify, prune.
    Audit(audit::Args),
    /// The network-boot endpoint: iPXE over HTTP, TFTP, optional DHCP (foreground).
    Serve(serve::Args),
    /// The web console: rooms, workstations live, runs, audit log, reports (foreground).
    Console(console::Args),
    /// Pre-flight, read only: the site's network, DHCP, domain controller, disk, workstations.
    Doctor(doctor::Args),
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

/// A state database that cannot be opened or read: exit 2 when it is the user's to fix (a
/// setting, a secret, a SQLite workspace), else 1.
pub fn store_error(e: crate::state::pg::store::StoreError) -> CliError {
    use crate::state::pg::store::StoreError;
    let hint = match &e {
        StoreError::NotPostgres => Some("see docs/state.md for the [state] settings".to_owned()),
        StoreError::Secret { name, .. } => Some(format!(
            "store the database password with `parc secret set {name}` (read from stdin)"
        )),
        e => crate::state::pg::certificate_hint(e).map(str::to_owned),
    };
    CliError::classified(e.is_user_error(), e, hint)
}

/// Who runs parc, for the journal and the audit log: `user@host`.
pub fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// A room that is not in the workspace: exit 2, with the closest id as a hint.
pub fn room_error(e: crate::workspace::WorkspaceError) -> CliError {
    let hint = match &e {
        crate::workspace::WorkspaceError::UnknownRoom {
            suggestion: Some(s),
            ..
        } => Some(format!("did you mean \"{s}\"?")),
        _ => None,
    };
    let err = CliError::user(e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// A journal that cannot be opened or read: exit 2 when the user can fix it (`[state]` of
/// site.toml, the database password's secret), 1 otherwise.
pub fn journal_error(e: crate::journal::JournalError) -> CliError {
    if let crate::journal::JournalError::Secret { name, .. } = &e {
        let hint =
            format!("store the database password with `parc secret set {name}` (read from stdin)");
        return CliError::user(e).with_hint(hint);
    }
    let hint = crate::state::pg::certificate_hint(&e).map(str::to_owned);
    CliError::classified(e.is_user_error(), e, hint)
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<Status, CliError> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Signoff(args) => signoff::run(args),
        Command::Software(args) => software::run(args),
        Command::Hosts(cmd) => hosts::run(cmd),
        Command::Secret(cmd) => secret::run(cmd),
        Command::Master(args) => master::run(args),
        Command::Reimage(args) => reimage::run(args),
        Command::Status(args) => status::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Run(cmd) => run::run(cmd),
        Command::Audit(args) => audit::run(args),
        Command::Report(args) => report::run(args),
        Command::Inventory(cmd) => inventory::run(cmd),
        Command::Image(cmd) => image::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Console(args) => console::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}
