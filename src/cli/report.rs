//! `parc report homogeneity | rotation | renewal | prelp`: fleet reports for the head of the
//! lycée and the Région, in HTML, CSV, Markdown or JSON.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::domain::fleet::Fleet;
use crate::exit::{CliError, Status};
use crate::report::{self, Format, Kind};
use crate::workspace::{WorkspaceDir, WorkspaceError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which report.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Workspace; repeat (`-w a -w b`) for a sector-wide homogeneity report.
    #[arg(short = 'w', long = "workspace", env = "PARC_WORKSPACE", default_value = ".", action = clap::ArgAction::Append)]
    pub workspaces: Vec<PathBuf>,
    /// The PRELP year (survey in February–March of that year).
    #[arg(long)]
    pub year: Option<i32>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// The date the report is made at (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = parse_day)]
    pub today: Option<NaiveDate>,
    /// Write to this file instead of the standard output.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("\"{s}\" is not a date YYYY-MM-DD: {e}"))
}

/// Reads one workspace into a fleet; parse errors are printed and refuse the report.
pub fn load_fleet(path: &std::path::Path) -> Result<Fleet, CliError> {
    let loaded = WorkspaceDir::open(path)
        .and_then(|d| d.load())
        .and_then(|l| l.require_parsed())
        .map_err(|e| {
            if let WorkspaceError::Invalid(findings) = &e {
                for f in findings {
                    eprintln!("{f}");
                }
            }
            CliError::user(
                anyhow::Error::new(e).context(format!("cannot read workspace {}", path.display())),
            )
            .with_hint("run `parc check` and fix the errors first")
        })?;
    Ok(Fleet::from_workspace(&loaded.ws))
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let today = args
        .today
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let year = args.year.unwrap_or_else(|| report::default_year(today));
    if !(2000..=2100).contains(&year) {
        return Err(CliError::user(anyhow::anyhow!(
            "--year {year} is out of range"
        )));
    }
    let fleets = args
        .workspaces
        .iter()
        .map(|p| load_fleet(p))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(r) = report::build(args.kind, &fleets, year, today) else {
        return Err(CliError::user(anyhow::anyhow!(
            "the {:?} report covers one lycée; {} workspaces were given",
            args.kind,
            fleets.len()
        ))
        .with_hint("only `parc report homogeneity` accepts several workspaces (a sector)"));
    };
    let text = report::render(&r, args.format);
    match &args.output {
        Some(path) => write_report(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
            .map_err(CliError::internal)?,
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the report")
            .map_err(CliError::internal)?,
    }
    Ok(Status::Success)
}

/// Writes a report; a new file is readable by all (it is meant to be handed out).
fn write_report(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let existed = path.exists();
    crate::fsutil::write_atomic(path, bytes)?;
    if !existed {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}
