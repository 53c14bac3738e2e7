//! The renewal-candidates report, in French.

use chrono::NaiveDate;

use super::doc::{Block, Doc, Table};
use super::fr;
use crate::domain::fleet::renewal::{Candidate, RenewalReport};
use crate::domain::fleet::stats::Overview;

pub fn doc(r: &RenewalReport, o: &Overview, on: NaiveDate) -> Doc {
    let mut d = Doc::new(format!("Postes à renouveler — {}", r.lycee));
    d.fact("Établi le", fr(on));
    d.fact("Situation au", fr(r.as_of));
    d.fact("Priorité haute", r.haute.to_string());
    d.fact("Priorité moyenne", r.moyenne.to_string());
    d.fact("Priorité basse", r.basse.to_string());
    d.para(CRITERIA);
    d.csv_next();
    let mut t = Table::new(&HEADERS);
    for c in &r.candidates {
        let mut row = Vec::with_capacity(HEADERS.len());
        push_cells(&mut row, c);
        t.row(row);
    }
    d.heading("Candidats au renouvellement");
    d.table(t);
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
    d
}

/// The renewal criteria, in French.
pub(super) const CRITERIA: &str = "Critères : en panne ; insuffisant pour sa salle et non réemployable par rotation ; hors garantie \
     (5 ans pour les postes fixes, 3 ans pour les portables, depuis l'achat, sauf date indiquée) ; \
     poste recyclé ou assemblé. Priorité haute : en panne, insuffisant, ou hors garantie depuis 2 ans \
     ou plus ; moyenne : hors garantie, recyclé ou assemblé ; basse : garantie échéant dans l'année.";

/// The columns of a candidate (the CSV export).
pub(super) const HEADERS: [&str; 10] = [
    "Priorité",
    "Salle",
    "Poste",
    "N° de série",
    "Modèle",
    "Type",
    "Achat",
    "Fin de garantie",
    "Âge (ans)",
    "Justification",
];

/// Appends a candidate's cells, as [`HEADERS`], to `row`.
pub(super) fn push_cells(row: &mut Vec<String>, c: &Candidate) {
    row.extend([
        c.priority.french().to_string(),
        c.room.clone().unwrap_or_else(|| "réserve".into()),
        c.hostname.clone(),
        c.serial.clone(),
        c.model.clone(),
        c.form_factor.french().to_string(),
        fr(c.purchase_date),
        fr(c.warranty_end),
        c.age_years.to_string(),
        c.justification.clone(),
    ]);
}
