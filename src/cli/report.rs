//! `parc report homogeneity | rotation | renewal | prelp`: fleet reports for the head of the
//! lycée and the Région, in HTML, CSV, Markdown or JSON.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::domain::fleet::Fleet;
use crate::exit::{CliError, Status};
use crate::report::{self, Format, Kind};
use crate::state::pg::store::Store;
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
    /// Over every lycée published to the region's database (the workspace's `[state]`), by
    /// sector: homogeneity, renewal or the PRELP request.
    #[arg(long)]
    pub region: bool,
    /// With --region: only this sector.
    #[arg(long, requires = "region")]
    pub sector: Option<String>,
    /// With --region and prelp: also write each lycée's own request to this folder
    /// (`UAI.FORMAT`).
    #[arg(long, requires = "region", value_name = "DIR")]
    pub each: Option<PathBuf>,
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
    if args.region {
        return region(&args, year, today);
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
    output(&args, &report::render(&r, args.format))?;
    Ok(Status::Success)
}

/// Writes a report's text to `-o` or the standard output.
fn output(args: &Args, text: &str) -> Result<(), CliError> {
    match &args.output {
        Some(path) => write_report(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
            .map_err(CliError::internal),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the report")
            .map_err(CliError::internal),
    }
}

/// `--region`: the report over every lycée the workspace's state database holds (or one
/// sector's).
fn region(args: &Args, year: i32, today: NaiveDate) -> Result<Status, CliError> {
    let [root] = args.workspaces.as_slice() else {
        return Err(CliError::user(anyhow::anyhow!(
            "--region reads the database of one workspace's [state]; {} workspaces were given",
            args.workspaces.len()
        )));
    };
    if args.each.is_some() && args.kind != Kind::Prelp {
        return Err(CliError::user(anyhow::anyhow!(
            "--each writes each lycée's PRELP request: it goes with `parc report prelp`"
        )));
    }
    let store = Store::open_workspace("parc-fleet-pg", root).map_err(super::store_error)?;
    let fleets =
        crate::inventory::pg::load_region(&store, args.sector.as_deref()).map_err(|e| match e {
            crate::inventory::pg::LoadError::Store(e) => super::store_error(e),
            e => CliError::internal(e),
        })?;
    if fleets.is_empty() {
        let err = |what: String| {
            CliError::user(anyhow::anyhow!(
                "no lycée {what}is published in the database"
            ))
        };
        let Some(sector) = &args.sector else {
            return Err(err(String::new())
                .with_hint("each lycée publishes its fleet with `parc inventory publish`"));
        };
        // A sector misspelt: say which ones the database has.
        let mut sectors: Vec<String> = crate::inventory::pg::list(&store, None)
            .map_err(super::store_error)?
            .into_iter()
            .map(|l| l.sector)
            .collect();
        sectors.dedup();
        let hint = if sectors.is_empty() {
            "each lycée publishes its fleet with `parc inventory publish`".to_owned()
        } else {
            format!(
                "the sectors published: {}",
                sectors
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(err(format!("of sector \"{sector}\" ")).with_hint(hint));
    }
    drop(store);
    if let Some(dir) = &args.each {
        let (r, each) = report::build_region_prelp(&fleets, year, today);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(CliError::internal)?;
        let ext = format!("{:?}", args.format).to_lowercase();
        for (uai, one) in &each {
            let path = dir.join(format!("{uai}.{ext}"));
            write_report(&path, report::render(one, args.format).as_bytes())
                .with_context(|| format!("writing {}", path.display()))
                .map_err(CliError::internal)?;
        }
        eprintln!(
            "Wrote {} lycée request(s) to {}.",
            each.len(),
            dir.display()
        );
        output(args, &report::render(&r, args.format))?;
        return Ok(Status::Success);
    }
    let Some(r) = report::build_region(args.kind, &fleets, year, today) else {
        return Err(CliError::user(anyhow::anyhow!(
            "the rotation report plans one lycée's rooms: it has no --region view"
        ))
        .with_hint("--region goes with homogeneity, renewal or prelp"));
    };
    output(args, &report::render(&r, args.format))?;
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
