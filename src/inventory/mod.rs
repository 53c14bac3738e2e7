//! Inventory import: parc's own `devices.csv`, LINBO's `devices.csv`, a GLPI CSV export and
//! the GLPI REST API (v1, `apirest.php`). Every source yields [`Imported`] records, merged
//! into the workspace's devices by [`merge`]; the CLI shows the diff before writing.

pub mod error;
pub mod glpi_api;
pub mod glpi_csv;
pub mod linbo;
pub mod merge;
pub mod parc_csv;
pub mod pg;
pub mod source;

use chrono::NaiveDate;

pub use error::InventoryError;

use crate::domain::device::{DeviceState, Funding};

/// One workstation as a source describes it; what the source does not know is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub hostname: String,
    pub room: Option<String>,
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub warranty_end: Option<NaiveDate>,
    pub funding: Option<Funding>,
    pub state: Option<DeviceState>,
}

/// `Lycée Mistral > Bâtiment B > B204` → `b204`; `OptiPlex 7010` → `optiplex-7010`.
pub fn slug(s: &str) -> String {
    let last = s.rsplit('>').next().unwrap_or(s).trim();
    let mut out = String::new();
    for c in last.chars() {
        let c = match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// A state as GLPI statuses and French spreadsheets write it.
pub fn state_from_text(s: &str) -> Option<DeviceState> {
    let l = s.trim().to_lowercase();
    if l.is_empty() {
        return None;
    }
    if let Some(st) = crate::domain::device::parse_state(&l) {
        return Some(st);
    }
    Some(
        if l.contains("stock") || l.contains("réserve") || l.contains("reserve") {
            DeviceState::Spare
        } else if l.contains("panne") || l.contains("répar") || l.contains("repar") || l == "hs" {
            DeviceState::Broken
        } else if l.contains("rebut") || l.contains("réform") || l.contains("reform") {
            DeviceState::Scrapped
        } else {
            DeviceState::InService
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_states() {
        assert_eq!(slug("Lycée Mistral > Bâtiment B > B204"), "b204");
        assert_eq!(slug("OptiPlex 7010"), "optiplex-7010");
        assert_eq!(slug("Salle Informatique 1"), "salle-informatique-1");
        assert_eq!(state_from_text("En stock"), Some(DeviceState::Spare));
        assert_eq!(state_from_text("En panne"), Some(DeviceState::Broken));
        assert_eq!(state_from_text("Rebut"), Some(DeviceState::Scrapped));
        assert_eq!(state_from_text("En service"), Some(DeviceState::InService));
        assert_eq!(state_from_text(""), None);
    }
}
