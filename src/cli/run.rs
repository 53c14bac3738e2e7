//! `parc run show ID`: one run with its step attempts, outcomes, errors and log files.

use crate::exit::{CliError, Status};
use crate::journal::{Journal, JournalError};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show one run: each step attempt, per host, with its error chain and log file.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The run id (see `parc runs`).
    pub id: i64,
    /// The run and its attempts as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(cmd: Command) -> Result<Status, CliError> {
    let Command::Show(args) = cmd;
    let dir = crate::workspace::WorkspaceDir::open(&args.ws.workspace).map_err(CliError::user)?;
    let journal = Journal::open_workspace(&dir.root).map_err(super::journal_error)?;
    let run = journal.run(args.id).map_err(|e| match e {
        JournalError::NoSuchRun(_) => CliError::user(e).with_hint("`parc runs` lists the runs"),
        e => super::journal_error(e),
    })?;
    let attempts = journal.attempts(args.id).map_err(super::journal_error)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "run": run, "attempts": attempts })
        );
        return Ok(Status::Success);
    }
    println!(
        "run {} — room {}, {} by {}@{} (pid {})",
        run.id,
        run.room,
        run.outcome.as_deref().unwrap_or("running"),
        run.who,
        run.host,
        run.pid
    );
    println!("  recipe {}", run.recipe_digest);
    println!(
        "  started {}, finished {}",
        run.started,
        run.finished.as_deref().unwrap_or("-")
    );
    if !run.detail.is_empty() {
        println!("  {}", run.detail);
    }
    for a in attempts {
        let host = a.host.as_deref().unwrap_or("");
        println!(
            "  {:<8} {:<10} {:<12} {} → {}",
            a.step,
            host,
            a.status,
            a.started,
            a.finished.as_deref().unwrap_or("-")
        );
        if !a.message.is_empty() {
            println!("      {}", a.message);
        }
        for (i, cause) in a.error_chain.lines().enumerate().skip(1) {
            println!("      {}Caused by: {cause}", "  ".repeat(i - 1));
        }
        if let Some(l) = a.log_path {
            println!("      log: {l}");
        }
    }
    Ok(Status::Success)
}
