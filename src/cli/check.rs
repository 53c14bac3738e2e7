//! `parc check [WORKSPACE]`: every finding of a workspace, as `file:line:col: severity: message`.
//!
//! Exit 0 when there is no error (warnings are shown), 1 when there are findings that are
//! errors (or warnings with `--deny-warnings`), 2 when the workspace cannot be read at all.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::domain::finding::{Finding, Severity, Source};
use crate::domain::validate::{CheckContext, validate};
use crate::exit::{CliError, Status};
use crate::secrets::SecretStore;
use crate::workspace::WorkspaceDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The site workspace (folder with site.toml).
    #[arg(env = "PARC_WORKSPACE", default_value = ".")]
    pub workspace: PathBuf,
    /// Print the findings as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Check licence expiry as of this day (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE")]
    pub today: Option<NaiveDate>,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let dir = WorkspaceDir::open(&args.workspace).map_err(CliError::user)?;
    let loaded = dir
        .load()
        .context("reading the workspace")
        .map_err(CliError::internal)?;
    let known_secrets = SecretStore::new(&dir.state_dir()).list().ok();
    let cx = CheckContext {
        today: args.today.unwrap_or_else(super::today),
        known_secrets,
    };
    let mut findings = loaded.parse_findings.clone();
    findings.extend(validate(&loaded.ws, &cx));
    findings.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
    findings.dedup();

    let prefix = display_prefix(&args.workspace);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if args.json {
        let mut list = findings.clone();
        for f in &mut list {
            f.location.file = format!("{prefix}{}", f.location.file);
        }
        let doc = serde_json::json!({
            "workspace": args.workspace,
            "errors": errors,
            "warnings": warnings,
            "findings": list,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        let sources = all_sources(&loaded.sources);
        for f in &findings {
            print!(
                "{}",
                render(
                    f,
                    &prefix,
                    sources.iter().find(|s| s.name == f.location.file).copied()
                )
            );
        }
        println!(
            "parc check: {errors} error(s), {warnings} warning(s) in {} room(s), {} device(s)",
            loaded.ws.rooms.len(),
            loaded.ws.devices.len()
        );
    }
    Ok(if errors > 0 || (args.deny_warnings && warnings > 0) {
        Status::Failure
    } else {
        Status::Success
    })
}

/// How file names are shown: relative to where the user stands, so they can be clicked.
fn display_prefix(ws: &std::path::Path) -> String {
    let s = ws.to_string_lossy();
    if s == "." || s.is_empty() {
        String::new()
    } else {
        format!("{}/", s.trim_end_matches('/'))
    }
}

fn all_sources(s: &crate::domain::workspace::Sources) -> Vec<&Source> {
    s.site
        .iter()
        .chain(s.models.iter())
        .chain(s.devices.iter())
        .chain(s.rooms.iter())
        .collect()
}

/// One finding, with the source line and a caret under the column, like a compiler.
pub fn render(f: &Finding, prefix: &str, src: Option<&Source>) -> String {
    let mut out = format!("{prefix}{}: {}: {}\n", f.location, f.severity, f.message);
    if let Some(line) = src
        .filter(|_| f.location.line > 0)
        .and_then(|s| s.text.lines().nth(f.location.line - 1))
    {
        let num = f.location.line.to_string();
        let pad = " ".repeat(num.len());
        let caret_pad: String = line
            .chars()
            .take(f.location.col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{pad} |\n{num} | {line}\n{pad} | {caret_pad}^\n"));
    }
    if let Some(h) = &f.hint {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}
