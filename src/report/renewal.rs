//! The renewal-candidates report, in French.

use chrono::NaiveDate;

use super::doc::{Block, Doc, Table};
use super::fr;
use crate::domain::fleet::renewal::RenewalReport;
use crate::domain::fleet::stats::Overview;

pub fn doc(r: &RenewalReport, o: &Overview, on: NaiveDate) -> Doc {
    let mut d = Doc::new(format!("Postes à renouveler — {}", r.lycee));
    d.fact("Établi le", fr(on));
    d.fact("Situation au", fr(r.as_of));
    d.fact("Priorité haute", r.haute.to_string());
    d.fact("Priorité moyenne", r.moyenne.to_string());
    d.fact("Priorité basse", r.basse.to_string());
    d.para(
        "Critères : en panne ; insuffisant pour sa salle et non réemployable par rotation ; hors garantie \
         (5 ans pour les postes fixes, 3 ans pour les portables, depuis l'achat, sauf date indiquée) ; \
         poste recyclé ou assemblé. Priorité haute : en panne, insuffisant, ou hors garantie depuis 2 ans \
         ou plus ; moyenne : hors garantie, recyclé ou assemblé ; basse : garantie échéant dans l'année.",
    );
    d.csv_next();
    let mut t = Table::new(&[
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
    ]);
    for c in &r.candidates {
        t.row(vec![
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
    d.heading("Candidats au renouvellement");
    d.table(t);
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
    d
}
