//! The homogeneity report (one lycée or a sector), in French.

use chrono::NaiveDate;

use super::doc::{Block, Doc, Table, num};
use super::fr;
use crate::domain::fleet::homogeneity::SectorHomogeneity;
use crate::domain::fleet::stats::Overview;

pub fn doc(h: &SectorHomogeneity, o: &Overview, on: NaiveDate) -> Doc {
    let single = h.lycees.len() == 1;
    let title = if single {
        format!("Homogénéité du parc — {}", h.lycees[0].lycee)
    } else {
        format!("Homogénéité du parc — secteur ({} lycées)", h.lycees.len())
    };
    let mut d = Doc::new(title);
    d.fact("Établi le", fr(on));
    d.fact("Postes en service", h.workstations.to_string());
    d.fact("Score d'homogénéité", format!("{} %", num(h.score)));
    d.fact("Modèles en service", h.distinct_models.to_string());
    d.para(
        "Règle (Région, cadre d'intervention §7.5.4) : on affecte à une salle un modèle unique d'ordinateur. \
         Le score d'une salle est la part de ses postes en service qui sont du modèle de sa fiche \
         (à défaut, du modèle majoritaire) ; le score d'un lycée ou d'un secteur est cette part sur \
         l'ensemble de ses salles.",
    );
    d.csv_next();
    let mut headers = vec![
        "Lycée",
        "Salle",
        "Postes",
        "Modèle de référence",
        "Modèles présents",
        "Part du modèle majoritaire",
        "Postes hors modèle",
        "Générations mêlées",
        "Score (%)",
    ];
    if single {
        headers.remove(0);
    }
    let mut t = Table::new(&headers);
    for l in &h.lycees {
        for r in &l.rooms {
            let mut row = vec![
                l.lycee.clone(),
                r.room.clone(),
                r.workstations.to_string(),
                r.reference_model.clone(),
                r.models
                    .iter()
                    .map(|m| format!("{} ×{}", m.model, m.count))
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("{} %", num(r.dominant_share * 100.0)),
                r.off_model
                    .iter()
                    .map(|o| format!("{} ({})", o.hostname, o.model))
                    .collect::<Vec<_>>()
                    .join(", "),
                if r.mixes_generations {
                    format!("oui ({} ans d'écart)", r.generation_span)
                } else {
                    "non".into()
                },
                num(r.score),
            ];
            if single {
                row.remove(0);
            }
            t.row(row);
        }
    }
    d.heading("Salles");
    d.table(t);

    d.heading(if single { "Lycée" } else { "Lycées" });
    let mut t = Table::new(&[
        "Lycée",
        "UAI",
        "Postes",
        "Modèles",
        "Salles hétérogènes",
        "Modèles isolés",
        "Score (%)",
    ]);
    for l in &h.lycees {
        t.row(vec![
            l.lycee.clone(),
            l.uai.clone(),
            l.workstations.to_string(),
            l.distinct_models.to_string(),
            l.heterogeneous_rooms.len().to_string(),
            l.isolated_models.len().to_string(),
            num(l.score),
        ]);
    }
    d.table(t);
    let mut risks = Vec::new();
    for l in &h.lycees {
        for r in l.rooms.iter().filter(|r| !r.off_model.is_empty()) {
            risks.push(format!(
                "{} : la salle {} n'est pas homogène : {} poste(s) sur {} ne sont pas du modèle {} ({}).",
                l.lycee,
                r.room,
                r.off_model.len(),
                r.workstations,
                r.reference_model,
                r.off_model.iter().map(|o| format!("{} : {}", o.hostname, o.model)).collect::<Vec<_>>().join(", ")
            ));
        }
        for m in &l.isolated_models {
            risks.push(format!(
                "{} : le modèle {} n'est présent qu'en salle {} ({} postes), sans poste de réserve ni autre salle du même modèle — pas de poste d'échange en cas de panne.",
                l.lycee, m.model, m.room, m.count
            ));
        }
        for r in &l.mixed_generation_rooms {
            risks.push(format!(
                "{} : la salle {r} mêle des générations de matériel.",
                l.lycee
            ));
        }
    }
    if !risks.is_empty() {
        d.heading("Points d'attention");
        d.list(risks);
    }
    if !single {
        d.heading("Dispersion des modèles dans le secteur");
        d.para(format!(
            "{} modèles en service, dont {} présents dans un seul lycée.",
            h.distinct_models, h.single_lycee_models
        ));
        let mut t = Table::new(&["Modèle", "Lycées", "Salles", "Postes"]);
        for m in &h.models {
            t.row(vec![
                m.model.clone(),
                m.lycees.to_string(),
                m.rooms.to_string(),
                m.workstations.to_string(),
            ]);
        }
        d.table(t);
    }
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
    d
}
