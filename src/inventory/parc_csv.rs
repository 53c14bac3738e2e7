//! Import from another parc `devices.csv` (e.g. a colleague's workspace).

use super::{Imported, InventoryError};
use crate::domain::device;
use crate::domain::finding::Source;

pub fn parse(name: &str, text: &str) -> Result<Vec<Imported>, InventoryError> {
    let (devices, findings) = device::parse(&Source::new(name, text));
    if let Some(f) = findings
        .iter()
        .find(|f| f.severity == crate::domain::finding::Severity::Error)
    {
        return Err(InventoryError::Input {
            file: f.location.file.clone(),
            line: f.location.line,
            col: f.location.col,
            message: f.message.clone(),
        });
    }
    Ok(devices
        .into_iter()
        .map(|d| Imported {
            hostname: d.hostname.value,
            room: d.room.map(|r| r.value),
            mac: Some(d.mac.value),
            ip: d.ip,
            serial: Some(d.serial.value),
            model: Some(d.model.value),
            purchase_date: Some(d.purchase_date.value),
            warranty_end: d.warranty_end.map(|w| w.value),
            funding: Some(d.funding),
            state: Some(d.state),
        })
        .collect())
}
