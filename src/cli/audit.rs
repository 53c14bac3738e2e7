//! `parc audit [--room R] [--since D]`, `parc audit verify`, `parc audit prune --older-than AGE`.

use crate::audit::{AuditLog, age};
use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Only the entries of this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Only entries from this date (YYYY-MM-DD) or this age (`7days`, `6months`) on.
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per entry per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain: any edited, removed or reordered entry fails (exit 1).
    Verify {
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Remove entries older than AGE (e.g. `6months`), keeping the chain verifiable.
    Prune {
        #[arg(long, value_name = "AGE")]
        older_than: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
}

fn open(ws: &super::WorkspaceArg) -> Result<(AuditLog, std::path::PathBuf), CliError> {
    let dir = crate::workspace::WorkspaceDir::open(&ws.workspace).map_err(CliError::user)?;
    let state = dir.state_dir();
    let log = AuditLog::open_workspace(&dir.root).map_err(|e| {
        let hint = crate::state::pg::certificate_hint(&e);
        let e = match e.is_user_error() {
            true => CliError::user(e),
            false => CliError::internal(e),
        };
        match hint {
            Some(h) => e.with_hint(h),
            None => e,
        }
    })?;
    Ok((log, state))
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let now = chrono::Utc::now();
    match args.command {
        None => {
            let since = match &args.since {
                Some(s) => Some(age::stamp(age::since(now, s).ok_or_else(|| {
                    CliError::user(anyhow::anyhow!(
                        "--since \"{s}\" is neither a date nor an age"
                    ))
                    .with_hint("e.g. --since 2026-09-01 or --since 30days")
                })?)),
                None => None,
            };
            let (log, _) = open(&args.ws)?;
            for e in log
                .list(args.room.as_deref(), since.as_deref())
                .map_err(CliError::internal)?
            {
                if args.json {
                    println!("{}", serde_json::to_string(&e).unwrap_or_default());
                } else {
                    println!(
                        "{:>5} {} {:<8} {:<16} {:<14} {:<10} {}",
                        e.seq, e.ts, e.room, e.action, e.subject, e.actor, e.detail
                    );
                }
            }
            Ok(Status::Success)
        }
        Some(Command::Verify { ws }) => {
            let (log, _) = open(&ws)?;
            match log.verify().map_err(CliError::internal)? {
                Ok(v) => {
                    let from = if v.anchored {
                        " (from a prune anchor)"
                    } else {
                        ""
                    };
                    println!("audit log intact: {} entries{from}", v.entries);
                    Ok(Status::Success)
                }
                Err(broken) => Err(CliError::internal(anyhow::anyhow!(
                    "the audit log is not intact: {broken}"
                ))
                .with_hint(format!(
                    "someone changed {} by hand; keep a copy and report it",
                    log.location()
                ))),
            }
        }
        Some(Command::Prune { older_than, ws }) => {
            let cutoff = age::before(now, &older_than).ok_or_else(|| {
                CliError::user(anyhow::anyhow!(
                    "--older-than \"{older_than}\" is not an age"
                ))
                .with_hint("e.g. 6months, 180days, 26weeks, 1year")
            })?;
            let who = super::actor();
            let (mut log, _) = open(&ws)?;
            match log
                .prune(&age::stamp(cutoff), &who)
                .map_err(CliError::internal)?
            {
                Ok(s) => {
                    println!(
                        "pruned {} entries older than {}",
                        s.removed,
                        age::stamp(cutoff)
                    );
                    Ok(Status::Success)
                }
                Err(broken) => Err(CliError::internal(anyhow::anyhow!(
                    "refusing to prune: {broken}"
                ))),
            }
        }
    }
}
