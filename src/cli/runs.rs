//! `parc runs`: the runs of the journal, newest first.

use crate::exit::{CliError, Status};
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the runs of this room.
    #[arg(long)]
    pub room: Option<String>,
    /// One JSON object per run per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let dir = crate::workspace::WorkspaceDir::open(&args.ws.workspace).map_err(CliError::user)?;
    let journal = Journal::open_workspace(&dir.root).map_err(super::journal_error)?;
    for r in journal
        .runs(args.room.as_deref())
        .map_err(super::journal_error)?
    {
        if args.json {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
        } else {
            println!(
                "{:>5}  {:<8} {:<12} {:<24} {:<10} {}@{} {}",
                r.id,
                r.room,
                r.outcome.as_deref().unwrap_or("running"),
                r.started,
                r.selection,
                r.who,
                r.host,
                r.detail
            );
        }
    }
    Ok(Status::Success)
}
