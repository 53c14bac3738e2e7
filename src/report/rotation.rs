//! The rotation plan report, in French.

use chrono::NaiveDate;

use super::doc::{Block, Doc, Table};
use super::fr;
use crate::domain::fleet::rotation::RotationPlan;
use crate::domain::fleet::stats::Overview;

/// The moves as a table (also used by the PRELP).
pub fn moves_table(p: &RotationPlan) -> Table {
    let mut t = Table::new(&["Étape", "Modèle", "De", "Vers", "Nombre", "Postes", "Motif"]);
    for m in &p.moves {
        let mut reason = m.reason.clone();
        if m.via_storage {
            reason.push_str(" Déplacement circulaire : ces postes sont mis en réserve au début de la rotation et installés à cette étape.");
        }
        t.row(vec![
            m.step.to_string(),
            m.model.clone(),
            m.from_room.clone().unwrap_or_else(|| "réserve".into()),
            m.to_room.clone(),
            m.count.to_string(),
            m.hostnames.join(", "),
            reason,
        ]);
    }
    t
}

pub fn doc(p: &RotationPlan, o: &Overview, on: NaiveDate) -> Doc {
    let mut d = Doc::new(format!("Plan de rotation du parc — {}", p.lycee));
    d.fact("Établi le", fr(on));
    d.fact(
        "Salles dont le modèle ne convient plus",
        p.unfit.len().to_string(),
    );
    d.fact("Postes réemployés", p.reused.to_string());
    d.fact("Postes neufs à acquérir", p.purchases.to_string());
    d.fact(
        "Sans rotation (renouveler chaque salle inadaptée)",
        p.baseline_purchases.to_string(),
    );
    d.para(
        "Rotation (cadre d'intervention §7.5.4) : un modèle devenu insuffisant pour sa salle est déplacé, \
         salle entière, vers une salle dont il satisfait encore les besoins ; la salle d'origine est équipée \
         d'un modèle neuf. Chaque salle ne reçoit qu'un seul modèle, jamais un modèle qui ne lui convient pas.",
    );
    d.heading("Déplacements, dans l'ordre");
    if p.moves.is_empty() {
        d.para("Aucun déplacement possible.");
    }
    d.csv_next();
    d.table(moves_table(p));
    d.heading("Salles à équiper d'un modèle neuf");
    let mut t = Table::new(&[
        "Salle",
        "Postes",
        "Type",
        "Modèle actuel",
        "Manques",
        "Besoins de la salle",
    ]);
    for e in &p.to_equip {
        t.row(vec![
            format!("{} ({})", e.room, e.name),
            e.seats.to_string(),
            e.form_factor.french().to_string(),
            e.current_model.clone(),
            e.shortfalls.join(", "),
            e.requirements.clone(),
        ]);
    }
    d.table(t);
    d.heading("Postes libérés");
    let mut t = Table::new(&["Poste", "Modèle", "Salle d'origine", "Devenir"]);
    for (l, what) in p
        .spare
        .iter()
        .map(|l| (l, "réserve"))
        .chain(p.scrapped.iter().map(|l| (l, "réforme")))
    {
        t.row(vec![
            l.hostname.clone(),
            l.model.clone(),
            l.from_room.clone().unwrap_or_default(),
            format!("{what} — {}", l.reason),
        ]);
    }
    d.table(t);
    if !p.ignored.is_empty() {
        d.heading("Salles non prises en compte");
        d.list(p.ignored.clone());
    }
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
    d
}
