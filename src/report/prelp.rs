//! The PRELP request, in French: what to ask the Région in the February–March survey.

use super::doc::{Block, Doc, Table};
use super::fr;
use crate::domain::fleet::prelp::{Prelp, PrelpLine};
use crate::domain::fleet::stats::Overview;

pub fn doc(p: &Prelp, o: &Overview) -> Doc {
    let mut d = Doc::new(format!("Demande PRELP {} — {}", p.year, p.lycee));
    d.fact("Établissement", format!("{} (UAI {})", p.lycee, p.uai));
    d.fact("Établi le", fr(p.prepared_on));
    d.fact("Enquête de dotation", p.survey.clone());
    d.fact("Livraison attendue", p.delivery.clone());
    d.fact("Besoins évalués au", fr(p.assessed_at));
    d.fact("Total demandé", format!("{} poste(s)", p.total));
    d.para(
        "Demande établie par l'agent STIL pour le chef d'établissement : seules les machines qui ne peuvent \
         être réemployées sont renouvelées ; chaque salle reste équipée d'un modèle unique.",
    );
    d.heading("Demande par salle");
    d.csv_next();
    let mut t = Table::new(&LINE_HEADERS);
    for l in &p.lines {
        let mut row = Vec::with_capacity(LINE_HEADERS.len());
        push_line_cells(&mut row, l);
        t.row(row);
    }
    d.table(t);
    d.heading("Total par type de poste");
    d.table(totals_table(&p.totals, p.total));
    d.heading("Rotation permise par la dotation");
    if p.rotation.moves.is_empty() {
        d.para("Aucun déplacement de salle à salle.");
    } else {
        let saved = p.rotation.baseline_purchases - p.rotation.purchases;
        d.para(if saved > 0 {
            format!(
                "{} poste(s) réemployé(s) ; la rotation évite l'achat de {saved} poste(s) : sans elle, il en faudrait {} pour les salles inadaptées au lieu de {}.",
                p.rotation.reused, p.rotation.baseline_purchases, p.rotation.purchases
            )
        } else {
            format!(
                "{} poste(s) réemployé(s) : les postes remplacés par la dotation remplacent à leur tour des postes plus anciens, qui sont réformés.",
                p.rotation.reused
            )
        });
        d.table(super::rotation::moves_table(&p.rotation));
    }
    if !p.deferred.is_empty() {
        d.heading("Remplacements sans achat");
        d.list(
            p.deferred
                .iter()
                .map(|x| format!("Salle {} : {}", x.room, x.reason))
                .collect(),
        );
    }
    d.heading("Machines à réformer");
    let mut t = Table::new(&["Poste", "N° de série", "Modèle", "Salle", "Motif"]);
    for s in &p.scrap {
        t.row(vec![
            s.hostname.clone(),
            s.serial.clone(),
            s.model.clone(),
            s.room.clone().unwrap_or_default(),
            s.reason.clone(),
        ]);
    }
    d.table(t);
    d.heading("À la livraison : contrôle de conformité (5 jours ouvrés)");
    d.list(p.conformity.clone());
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
    d
}

/// The columns of a request line (the CSV export).
pub(super) const LINE_HEADERS: [&str; 7] = [
    "Salle",
    "Type de poste",
    "Quantité",
    "Nature",
    "Priorité",
    "Besoins",
    "Justification",
];

/// Appends a request line's cells, as [`LINE_HEADERS`], to `row`.
pub(super) fn push_line_cells(row: &mut Vec<String>, l: &PrelpLine) {
    row.extend([
        format!("{} ({})", l.room, l.room_name),
        l.form_factor.french().to_string(),
        l.quantity.to_string(),
        l.kind.clone(),
        l.priority.french().to_string(),
        l.requirements.clone(),
        l.justification.clone(),
    ]);
}

/// Quantity per form factor, then the total (a lycée's request or the region's).
pub fn totals_table(
    totals: &[crate::domain::fleet::prelp::FormFactorTotal],
    total: usize,
) -> Table {
    let mut t = Table::new(&["Type de poste", "Quantité"]);
    for x in totals {
        t.row(vec![x.label.clone(), x.quantity.to_string()]);
    }
    t.row(vec!["Total".into(), total.to_string()]);
    t
}
