//! `parc inventory import <source>`: reads an inventory (parc or LINBO devices.csv, a GLPI
//! CSV export, or the GLPI REST API), shows the diff against the workspace's devices.csv, and
//! writes it only with `--yes`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::exit::{CliError, Status};
use crate::inventory::{self, glpi_api::GlpiConfig, merge, source::Source};
use crate::secrets::SecretStore;
use crate::state::pg::store::Store;
use crate::workspace::WorkspaceDir;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Import workstations into devices.csv (a dry run unless --yes).
    Import(ImportArgs),
    /// Publish this lycée's fleet (devices.csv, models, rooms) to the region's PostgreSQL
    /// database, for `parc report … --region`.
    Publish(super::WorkspaceArg),
    /// List the lycées published to the region's database: sector, devices, who published
    /// when.
    Region(RegionArgs),
}

#[derive(Debug, clap::Args)]
pub struct RegionArgs {
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
    /// Only this sector.
    #[arg(long)]
    pub sector: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Another parc devices.csv.
    Parc,
    /// LINBO's devices.csv (room;hostname;group;mac;ip;…).
    Linbo,
    /// A GLPI computer search exported as CSV.
    GlpiCsv,
    /// The GLPI REST API (apirest.php).
    Glpi,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(value_enum)]
    pub source: SourceKind,
    /// The file to import (parc, linbo, glpi-csv).
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
    /// GLPI API base URL, ending in apirest.php.
    #[arg(long)]
    pub url: Option<String>,
    /// Name of the secret holding GLPI's App-Token.
    #[arg(long)]
    pub app_token_secret: Option<String>,
    /// Name of the secret holding the user's API token.
    #[arg(long)]
    pub user_token_secret: Option<String>,
    /// Only computers whose GLPI location contains this text.
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    #[arg(long, default_value_t = inventory::glpi_api::PAGE)]
    pub page_size: usize,
    /// Write devices.csv (otherwise only show what would change).
    #[arg(long)]
    pub yes: bool,
}

pub fn run(cmd: Command) -> Result<Status, CliError> {
    match cmd {
        Command::Import(a) => import(a),
        Command::Publish(a) => publish(&a.workspace),
        Command::Region(a) => region(&a),
    }
}

fn secret(store: &SecretStore, name: &Option<String>, flag: &str) -> Result<String, CliError> {
    let name = name
        .as_ref()
        .ok_or_else(|| CliError::user(anyhow::anyhow!("--{flag} is required for GLPI")))?;
    let v = store.get(name).map_err(|e| {
        CliError::user(anyhow::Error::new(e))
            .with_hint(format!("store it with `parc secret set {name}`"))
    })?;
    String::from_utf8(v.0.clone())
        .map(|s| s.trim().to_string())
        .map_err(|_| CliError::user(anyhow::anyhow!("secret \"{name}\" is not text")))
}

fn import(a: ImportArgs) -> Result<Status, CliError> {
    let dir = WorkspaceDir::open(&a.ws.workspace).map_err(CliError::user)?;
    let loaded = dir
        .load()
        .and_then(|l| l.require_parsed())
        .map_err(|e| CliError::user(e).with_hint("run `parc check` and fix devices.csv first"))?;
    let models = &loaded.ws.models;
    let file = || {
        a.file.clone().ok_or_else(|| {
            CliError::user(anyhow::anyhow!("the {:?} source needs a file", a.source))
                .with_hint("e.g. parc inventory import linbo /path/to/devices.csv")
        })
    };
    let source = match a.source {
        SourceKind::Parc => Source::Parc(file()?),
        SourceKind::Linbo => Source::Linbo(file()?),
        SourceKind::GlpiCsv => Source::GlpiCsv(file()?),
        SourceKind::Glpi => {
            let url = a
                .url
                .clone()
                .ok_or_else(|| CliError::user(anyhow::anyhow!("--url is required for GLPI")))?;
            let store = SecretStore::new(&dir.state_dir());
            Source::Glpi(GlpiConfig {
                url,
                app_token: secret(&store, &a.app_token_secret, "app-token-secret")?,
                user_token: secret(&store, &a.user_token_secret, "user-token-secret")?,
                location: a.location.clone(),
                timeout: Duration::from_secs(a.timeout_secs),
                page: a.page_size,
            })
        }
    };
    let imported = inventory::source::read(&source, models).map_err(|e| {
        let hint = e.hint();
        if e.is_user_error() {
            CliError::user(e).with_hint(hint)
        } else {
            CliError::internal(e).with_hint(hint)
        }
    })?;
    let merged = merge::merge(&loaded.ws.devices, &imported, models);
    print!("{}", merge::render_diff(&merged));
    let mut unknown: Vec<&str> = merged
        .devices
        .iter()
        .map(|d| d.model.value.as_str())
        .filter(|m| !models.iter().any(|x| x.id.value == *m))
        .collect();
    unknown.sort();
    unknown.dedup();
    for m in unknown {
        eprintln!(
            "warning: model \"{m}\" is not in models.toml; describe it there before planning renewals"
        );
    }
    if merged
        .changes
        .iter()
        .all(|c| matches!(c, merge::Change::Skipped { .. }))
    {
        println!("devices.csv is up to date.");
        return Ok(Status::Success);
    }
    if !a.yes {
        println!("Dry run: nothing written. Re-run with --yes to write devices.csv.");
        return Ok(Status::Success);
    }
    let path = dir.root.join("devices.csv");
    let text = crate::domain::device::render(&merged.devices);
    crate::fsutil::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
        .map_err(CliError::internal)?;
    println!("Wrote {}.", path.display());
    publish_if_shared(&dir.root)
}

/// After an import: a workspace whose state is in PostgreSQL publishes its new inventory
/// (the region's views read it there); a SQLite one has nothing more to do.
fn publish_if_shared(root: &std::path::Path) -> Result<Status, CliError> {
    let site = crate::state::read_site(root).ok().flatten();
    let state_dir = WorkspaceDir {
        root: root.to_path_buf(),
    }
    .state_dir();
    // A `[state]` that cannot be read is not taken for SQLite: publishing says what is wrong.
    match crate::state::choose(&state_dir, site.as_ref()) {
        Ok(crate::state::Chosen::Sqlite) => Ok(Status::Success),
        _ => publish(root).map_err(|e| {
            e.with_hint("devices.csv is written; fix this, then `parc inventory publish`")
        }),
    }
}

/// `parc inventory region`: the lycées the database holds, by sector.
fn region(a: &RegionArgs) -> Result<Status, CliError> {
    let store =
        Store::open_workspace("parc-fleet-pg", &a.ws.workspace).map_err(super::store_error)?;
    let listed = inventory::pg::list(&store, a.sector.as_deref()).map_err(super::store_error)?;
    let width = |f: fn(&inventory::pg::Listed) -> usize, min: usize| {
        listed.iter().map(f).max().unwrap_or(0).max(min)
    };
    let (ws, wn) = (
        width(|l| l.sector.chars().count(), 6),
        width(|l| l.name.chars().count(), 5),
    );
    println!(
        "{:<ws$}  {:<8}  {:<wn$}  {:>7}  PUBLISHED BY",
        "SECTOR", "UAI", "LYCÉE", "DEVICES"
    );
    for l in &listed {
        println!(
            "{:<ws$}  {:<8}  {:<wn$}  {:>7}  {} {}",
            l.sector, l.uai, l.name, l.devices, l.published_at, l.published_by
        );
    }
    let devices: usize = listed.iter().map(|l| l.devices).sum();
    println!(
        "{} lycée(s), {devices} device(s) in {}.",
        listed.len(),
        store.url()
    );
    Ok(Status::Success)
}

/// `parc inventory publish`: replaces the lycée's fleet in the database with the workspace's.
fn publish(root: &std::path::Path) -> Result<Status, CliError> {
    let dir = WorkspaceDir::open(root).map_err(CliError::user)?;
    let loaded = dir.load().and_then(|l| l.require_parsed()).map_err(|e| {
        if let crate::workspace::WorkspaceError::Invalid(findings) = &e {
            for f in findings {
                eprintln!("{f}");
            }
        }
        CliError::user(e).with_hint("run `parc check` and fix the errors first")
    })?;
    let store = Store::open_workspace("parc-fleet-pg", &dir.root).map_err(super::store_error)?;
    let snap = inventory::pg::Snapshot::of(&loaded.ws);
    let who = inventory::pg::Publisher {
        at: crate::journal::now(),
        by: super::actor(),
    };
    let done = inventory::pg::publish(&store, &snap, &who).map_err(super::store_error)?;
    println!(
        "Published {} ({}) to {}: {} device(s), {} room(s), {} model(s){}.",
        snap.name,
        store.lycee(),
        store.url(),
        done.devices,
        done.rooms,
        done.models,
        if done.replaced > 0 {
            format!(", replacing the {} published before", done.replaced)
        } else {
            String::new()
        }
    );
    Ok(Status::Success)
}
