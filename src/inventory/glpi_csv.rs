//! Import from a GLPI search export (Parc > Ordinateurs > Exporter > CSV): `;`-separated, one
//! header row of column titles in the interface's language (French or English). Columns are
//! recognised by title; the name is required, the rest is optional.

use chrono::{Months, NaiveDate};

use super::{Imported, InventoryError, slug, state_from_text};
use crate::domain::device::normalise_mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    Serial,
    Model,
    Location,
    Status,
    Purchase,
    WarrantyStart,
    WarrantyMonths,
    WarrantyEnd,
    Mac,
    Ip,
}

fn column(title: &str) -> Option<Col> {
    let t = title.trim().trim_start_matches('\u{feff}').to_lowercase();
    let last = t.rsplit(" - ").next().unwrap_or(&t).trim().to_string();
    Some(match last.as_str() {
        "nom" | "name" => Col::Name,
        "numéro de série" | "numero de serie" | "serial number" | "serial" => Col::Serial,
        "modèle" | "modele" | "model" => Col::Model,
        "lieu" | "location" => Col::Location,
        "statut" | "status" => Col::Status,
        "date d'achat" | "purchase date" => Col::Purchase,
        "date de début de garantie" | "start date of warranty" | "warranty start date" => {
            Col::WarrantyStart
        }
        "durée de garantie" | "warranty duration" => Col::WarrantyMonths,
        "date de fin de garantie" | "fin de garantie" | "warranty expiration date" => {
            Col::WarrantyEnd
        }
        "adresse mac" | "mac" | "mac address" => Col::Mac,
        "adresse ip" | "ip" | "ip address" => Col::Ip,
        _ => return None,
    })
}

/// A date as GLPI writes it: `2019-09-01`, `01-09-2019` or `01/09/2019` (time ignored).
pub fn glpi_date(s: &str) -> Option<NaiveDate> {
    let d = s.trim().split(' ').next().unwrap_or("");
    if d.is_empty() {
        return None;
    }
    ["%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(d, f).ok())
}

/// The end of a warranty that starts on `start` and lasts `months` (`60`, `60 mois`).
pub fn warranty_end(start: Option<NaiveDate>, months: &str) -> Option<NaiveDate> {
    let n: u32 = months.split_whitespace().next()?.parse().ok()?;
    if n == 0 {
        return None;
    }
    start?.checked_add_months(Months::new(n))
}

/// The line of the first byte at or after `byte` that ends no line: csv places a record
/// before the blank lines it skips.
fn line_at(text: &str, byte: usize) -> usize {
    let rest = text.get(byte..).unwrap_or("");
    let at = byte + rest.len() - rest.trim_start_matches(['\r', '\n']).len();
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub fn parse(name: &str, text: &str) -> Result<Vec<Imported>, InventoryError> {
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or("");
    let delim = if first.matches(';').count() >= first.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .from_reader(text.as_bytes());
    let err = |line: usize, col: usize, message: String| InventoryError::Input {
        file: name.to_string(),
        line,
        col,
        message,
    };
    let headers = rdr
        .headers()
        .map_err(|e| err(1, 1, format!("cannot read the header row: {e}")))?
        .clone();
    let cols: Vec<Option<Col>> = headers.iter().map(column).collect();
    if !cols.contains(&Some(Col::Name)) {
        return Err(err(
            1,
            1,
            "no \"Nom\"/\"Name\" column: is this a GLPI computer export?".into(),
        ));
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(text, p.byte() as usize));
            err(line, 1, format!("unreadable row: {e}"))
        })?;
        let line = rec
            .position()
            .map_or(0, |p| line_at(text, p.byte() as usize));
        let get = |c: Col| -> &str {
            cols.iter()
                .position(|x| *x == Some(c))
                .and_then(|i| rec.get(i))
                .map(str::trim)
                .unwrap_or("")
        };
        let col_no = |c: Col| cols.iter().position(|x| *x == Some(c)).map_or(1, |i| i + 1);
        let host = get(Col::Name);
        if host.is_empty() {
            continue;
        }
        let date = |c: Col| -> Result<Option<NaiveDate>, InventoryError> {
            let v = get(c);
            if v.is_empty() {
                return Ok(None);
            }
            glpi_date(v)
                .map(Some)
                .ok_or_else(|| err(line, col_no(c), format!("\"{v}\" is not a date")))
        };
        let purchase = date(Col::Purchase)?;
        let start = date(Col::WarrantyStart)?;
        let end = date(Col::WarrantyEnd)?
            .or_else(|| warranty_end(start.or(purchase), get(Col::WarrantyMonths)));
        let mac = match get(Col::Mac).split(['\n', ',']).next().unwrap_or("").trim() {
            "" => None,
            m => Some(normalise_mac(m).ok_or_else(|| {
                err(
                    line,
                    col_no(Col::Mac),
                    format!("MAC address \"{m}\" is malformed"),
                )
            })?),
        };
        out.push(Imported {
            hostname: host.to_ascii_lowercase(),
            room: Some(slug(get(Col::Location))).filter(|r| !r.is_empty()),
            mac,
            ip: Some(get(Col::Ip).to_string()).filter(|s| !s.is_empty()),
            serial: Some(get(Col::Serial).to_string()).filter(|s| !s.is_empty()),
            model: Some(get(Col::Model).to_string()).filter(|s| !s.is_empty()),
            purchase_date: purchase,
            warranty_end: end,
            funding: None,
            state: state_from_text(get(Col::Status)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::DeviceState;

    #[test]
    fn a_french_export() {
        let text = "Nom;Statut;Fabricant;Numéro de série;Modèle;Lieu;Informations financières et administratives - Date d'achat;Informations financières et administratives - Durée de garantie;Adresse MAC\n\
                    B204-PC01;En service;Dell Inc.;7XK2Q31;OptiPlex 7010;Lycée Mistral > Bâtiment B > B204;01-09-2019;60 mois;52:54:00:aa:bb:01\n\
                    B204-PC02;En stock;Dell Inc.;7XK2Q32;OptiPlex 7010;;2019-09-01;;\n";
        let got = parse("export.csv", text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].hostname, "b204-pc01");
        assert_eq!(got[0].room.as_deref(), Some("b204"));
        assert_eq!(got[0].model.as_deref(), Some("OptiPlex 7010"));
        assert_eq!(got[0].purchase_date, glpi_date("2019-09-01"));
        assert_eq!(got[0].warranty_end, glpi_date("2024-09-01"));
        assert_eq!(got[0].mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert_eq!(got[1].state, Some(DeviceState::Spare));
        assert_eq!(got[1].room, None);
        assert_eq!(got[1].warranty_end, None);
    }

    #[test]
    fn bad_dates_are_located() {
        let e = parse("export.csv", "Name;Purchase date\npc1;2019-13-45\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "export.csv:2:2: \"2019-13-45\" is not a date");
        assert!(parse("x.csv", "Foo;Bar\n1;2\n").is_err());
    }
}
