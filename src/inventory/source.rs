//! Reads one inventory source into [`Imported`] records: a file (parc, LINBO, GLPI export) or
//! the GLPI REST API (on a runtime of its own, so callers stay synchronous).

use std::path::PathBuf;

use super::glpi_api::GlpiConfig;
use super::{Imported, InventoryError};
use crate::domain::model::Model;

#[derive(Debug)]
pub enum Source {
    Parc(PathBuf),
    Linbo(PathBuf),
    GlpiCsv(PathBuf),
    Glpi(GlpiConfig),
}

fn read_text(path: &PathBuf) -> Result<(String, String), InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((path.display().to_string(), text))
}

/// The workstations a source describes. `models`: the workspace's, for LINBO's groups.
pub fn read(source: &Source, models: &[Model]) -> Result<Vec<Imported>, InventoryError> {
    match source {
        Source::Parc(p) => {
            let (name, text) = read_text(p)?;
            super::parc_csv::parse(&name, &text)
        }
        Source::Linbo(p) => {
            let (name, text) = read_text(p)?;
            let ids: Vec<String> = models.iter().map(|m| m.id.value.clone()).collect();
            super::linbo::parse(&name, &text, &ids)
        }
        Source::GlpiCsv(p) => {
            let (name, text) = read_text(p)?;
            super::glpi_csv::parse(&name, &text)
        }
        Source::Glpi(cfg) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| InventoryError::Runtime { source })?;
            rt.block_on(super::glpi_api::fetch(cfg))
        }
    }
}

impl InventoryError {
    /// Whether the user's input is at fault (exit 2) rather than GLPI or parc (exit 1).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            InventoryError::Read { .. }
                | InventoryError::Input { .. }
                | InventoryError::BadUrl { .. }
                | InventoryError::Unauthorized { .. }
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            InventoryError::Unauthorized { .. } => {
                "check the App-Token and the user token (GLPI: Preferences > Remote access keys)"
            }
            InventoryError::Timeout { .. } => {
                "GLPI is slow or unreachable; retry, or raise --timeout-secs"
            }
            InventoryError::BadUrl { .. } => {
                "give the API's base, e.g. https://glpi.example/apirest.php"
            }
            _ => "nothing was written",
        }
    }
}
