//! The PRELP request of a school year (HdF "dotation annuelle"): what the lycée asks the Région
//! in the February–March survey, room by room, with its justification; the machines to scrap;
//! the rotation the purchase enables; the delivery-conformity reminder. French.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, NaiveDate, Weekday};

use super::input::{Fleet, fr_date};
use super::renewal::{self, Priority, RenewalReport};
use super::rotation::{self, RotationPlan, requirements_fr};
use super::workdays::{CONFORMITY_WORKING_DAYS, conformity_deadline};
use crate::domain::device::DeviceState;
use crate::domain::model::FormFactor;

/// A room is renewed whole when at least this share of its workstations must be renewed;
/// otherwise they are replaced from the spares, so the room stays homogeneous.
pub const WHOLE_ROOM_SHARE: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrelpLine {
    pub room: String,
    pub room_name: String,
    pub form_factor: FormFactor,
    pub quantity: usize,
    /// "renouvellement avec rotation", "modèle insuffisant", "parc vieillissant".
    pub kind: String,
    pub priority: Priority,
    pub requirements: String,
    pub justification: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScrapItem {
    pub hostname: String,
    pub serial: String,
    pub model: String,
    pub room: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deferred {
    pub room: String,
    pub count: usize,
    pub seats: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FormFactorTotal {
    pub form_factor: FormFactor,
    pub label: String,
    pub quantity: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prelp {
    pub lycee: String,
    pub uai: String,
    pub year: i32,
    pub prepared_on: NaiveDate,
    /// The date needs are assessed at: the end of the delivery window (1 November).
    pub assessed_at: NaiveDate,
    pub survey: String,
    pub delivery: String,
    pub lines: Vec<PrelpLine>,
    pub totals: Vec<FormFactorTotal>,
    pub total: usize,
    pub scrap: Vec<ScrapItem>,
    pub deferred: Vec<Deferred>,
    pub rotation: RotationPlan,
    pub conformity: Vec<String>,
}

/// The request for `year` (survey in February–March `year`, delivery October–November `year`).
pub fn request(fleet: &Fleet, year: i32, today: NaiveDate) -> Prelp {
    let assessed_at = NaiveDate::from_ymd_opt(year, 11, 1).unwrap_or(today);
    let plan = rotation::plan(fleet);
    let renewal = renewal::candidates_unjustified(fleet, &plan, assessed_at);
    build(fleet, year, today, assessed_at, plan, &renewal)
}

fn build(
    fleet: &Fleet,
    year: i32,
    today: NaiveDate,
    assessed_at: NaiveDate,
    plan: RotationPlan,
    renewal: &RenewalReport,
) -> Prelp {
    let mut lines = Vec::new();
    let mut scrap: Vec<ScrapItem> = Vec::new();
    let mut deferred = Vec::new();
    // The last machine of a hostname wins, as in a map collected in order.
    let by_host: HashMap<&str, &super::Machine> = fleet
        .machines
        .iter()
        .map(|m| (m.hostname.as_str(), m))
        .collect();
    let scrap_item = |h: &str, reason: String| {
        let m = by_host[h];
        ScrapItem {
            hostname: m.hostname.clone(),
            serial: m.serial.clone(),
            model: m.model.clone(),
            room: m.room.clone(),
            reason,
        }
    };

    // 1. Rooms the rotation leaves to equip.
    for e in &plan.to_equip {
        let onward = plan
            .moves
            .iter()
            .find(|m| m.from_room.as_deref() == Some(e.room.as_str()));
        let mut j = format!(
            "Le modèle {} ne répond plus aux besoins de la salle ({}).",
            e.current_model,
            e.shortfalls.join(", ")
        );
        if let Some(m) = onward {
            j.push_str(&format!(
                " Ses postes seront réemployés en salle {} ({} postes, rotation étape {}).",
                m.to_room, m.count, m.step
            ));
        }
        lines.push(PrelpLine {
            room: e.room.clone(),
            room_name: e.name.clone(),
            form_factor: e.form_factor,
            quantity: e.seats,
            kind: if onward.is_some() {
                "renouvellement avec rotation"
            } else {
                "modèle insuffisant"
            }
            .to_string(),
            priority: Priority::Haute,
            requirements: e.requirements.clone(),
            justification: j,
        });
    }
    for l in &plan.scrapped {
        scrap.push(scrap_item(&l.hostname, l.reason.clone()));
    }

    // 2. Other rooms whose machines are due for renewal.
    let touched: HashSet<&str> = plan
        .to_equip
        .iter()
        .map(|e| e.room.as_str())
        .chain(plan.moves.iter().map(|m| m.to_room.as_str()))
        .chain(plan.unfit.iter().map(|u| u.room.as_str()))
        .collect();
    // The candidates due, by room (in the report's order).
    let mut due: HashMap<&str, Vec<&renewal::Candidate>> = HashMap::new();
    for c in &renewal.candidates {
        if c.priority <= Priority::Moyenne && c.state == DeviceState::InService {
            if let Some(room) = c.room.as_deref() {
                due.entry(room).or_default().push(c);
            }
        }
    }
    for v in fleet.room_views() {
        let id = v.plan.id.as_str();
        if v.in_service.is_empty() || touched.contains(id) {
            continue;
        }
        let Some(here) = due.get(id).filter(|h| !h.is_empty()) else {
            continue;
        };
        let seats = v.in_service.len();
        if (here.len() as f64) < WHOLE_ROOM_SHARE * seats as f64 {
            deferred.push(Deferred {
                room: id.to_string(),
                count: here.len(),
                seats,
                reason: format!(
                    "{} poste(s) sur {seats} à renouveler : moins de la moitié de la salle, remplacement par des postes de réserve du même modèle pour garder la salle homogène.",
                    here.len()
                ),
            });
            continue;
        }
        let mut why: BTreeMap<&str, usize> = BTreeMap::new();
        for c in here {
            for key in c.reasons.iter().filter_map(renewal::Reason::french_short) {
                *why.entry(key).or_default() += 1;
            }
        }
        let oldest = here
            .iter()
            .map(|c| c.purchase_date)
            .min()
            .unwrap_or(assessed_at);
        let first = &fleet.machines[v.in_service[0]];
        lines.push(PrelpLine {
            room: id.to_string(),
            room_name: v.plan.name.clone(),
            form_factor: fleet.form_factor(first),
            quantity: seats,
            kind: "parc vieillissant".to_string(),
            priority: here.iter().map(|c| c.priority).min().unwrap_or(Priority::Moyenne),
            requirements: v.plan.requirements.as_ref().map_or("non précisées (pas de fiche de salle)".into(), requirements_fr),
            justification: format!(
                "{} poste(s) sur {seats} à renouveler au {} ({}) ; achats depuis le {}. Renouvellement de la salle entière pour la garder homogène.",
                here.len(),
                fr_date(assessed_at),
                why.iter().map(|(k, n)| format!("{k} : {n}")).collect::<Vec<_>>().join(", "),
                fr_date(oldest)
            ),
        });
        let reason = format!("Remplacé par la dotation {year} (salle {id} renouvelée).");
        for &i in &v.in_service {
            scrap.push(scrap_item(&fleet.machines[i].hostname, reason.clone()));
        }
    }

    // 3. Broken machines out of warranty.
    let listed: HashSet<&str> = scrap.iter().map(|s| s.hostname.as_str()).collect();
    let broken: Vec<&str> = renewal
        .candidates
        .iter()
        .filter(|c| {
            c.state == DeviceState::Broken
                && c.warranty_end < assessed_at
                && !listed.contains(c.hostname.as_str())
        })
        .map(|c| c.hostname.as_str())
        .collect();
    for c in broken {
        scrap.push(scrap_item(c, "En panne et hors garantie.".to_string()));
    }
    scrap.sort_by(|a, b| (&a.room, &a.hostname).cmp(&(&b.room, &b.hostname)));
    lines.sort_by(|a, b| (a.priority, &a.room).cmp(&(b.priority, &b.room)));

    let mut per_ff: BTreeMap<FormFactor, usize> = BTreeMap::new();
    for l in &lines {
        *per_ff.entry(l.form_factor).or_default() += l.quantity;
    }
    let totals: Vec<FormFactorTotal> = per_ff
        .into_iter()
        .map(|(f, q)| FormFactorTotal {
            form_factor: f,
            label: f.french().to_string(),
            quantity: q,
        })
        .collect();
    Prelp {
        lycee: fleet.lycee.clone(),
        uai: fleet.uai.clone(),
        year,
        prepared_on: today,
        assessed_at,
        survey: format!("février–mars {year}"),
        delivery: format!("octobre–novembre {year}"),
        total: totals.iter().map(|t| t.quantity).sum(),
        totals,
        lines,
        scrap,
        deferred,
        rotation: plan,
        conformity: conformity_reminder(year),
    }
}

/// The delivery-conformity reminder, with a worked deadline for the first working Monday of
/// November.
pub fn conformity_reminder(year: i32) -> Vec<String> {
    let mut d = NaiveDate::from_ymd_opt(year, 11, 1).unwrap_or_default();
    while d.weekday() != Weekday::Mon || !super::workdays::is_working_day(d) {
        d = d.succ_opt().unwrap_or(d);
    }
    vec![
        "À la livraison, vérifier l'état des colis et leur conformité au bordereau avant de le signer ; \
         toute anomalie fait l'objet de réserves sur le bon de livraison, voire d'un refus."
            .to_string(),
        format!(
            "Dans les {CONFORMITY_WORKING_DAYS} jours ouvrés qui suivent, contrôler les quantités, les modèles, \
             les numéros de série, l'état et le bon fonctionnement du matériel, et signaler tout problème à la Région ; \
             passé ce délai, la livraison est réputée conforme."
        ),
        format!(
            "Exemple : livraison le lundi {} → contrôle au plus tard le {} (week-ends et jours fériés exclus).",
            fr_date(d),
            fr_date(conformity_deadline(d))
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::input::testkit::*;
    use super::*;
    use crate::domain::model::FormFactor::{Desktop, Laptop};

    #[test]
    fn a_request_with_rotation_ageing_rooms_and_scrap() {
        let models = vec![
            model("new", 2021, 9000, 16, Desktop),
            model("old", 2013, 2000, 4, Desktop),
            model("lap", 2022, 8000, 8, Laptop),
        ];
        let rooms = vec![
            room("cao", "new", 32, 1000), // unfit: 16 < 32 GB
            room("bur", "old", 8, 1000),  // unfit: 4 < 8 GB; takes cao's machines
            room("mob", "lap", 4, 1000),  // laptops bought 2022: out of warranty on 1/11/2025
            room("lang", "new", 4, 1000), // 2 of 10 out of warranty: deferred
        ];
        let mut m = machines("cao", "new", 12, "2021-09-01");
        m.extend(machines("bur", "old", 12, "2013-09-01"));
        m.extend(machines("mob", "lap", 8, "2022-09-01"));
        let mut lang = machines("lang", "new", 10, "2023-09-01");
        lang[0].purchase_date = date("2019-09-01");
        lang[1].purchase_date = date("2019-09-01");
        m.extend(lang);
        let p = request(&fleet(models, rooms, m), 2025, date("2025-02-10"));
        assert_eq!(p.assessed_at, date("2025-11-01"));
        let got: Vec<(&str, usize, &str)> = p
            .lines
            .iter()
            .map(|l| (l.room.as_str(), l.quantity, l.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cao", 12, "renouvellement avec rotation"),
                ("mob", 8, "parc vieillissant")
            ]
        );
        assert!(
            p.lines[0]
                .justification
                .contains("réemployés en salle bur (12 postes, rotation étape 1)")
        );
        assert!(
            p.lines[1]
                .justification
                .starts_with("8 poste(s) sur 8 à renouveler au 01/11/2025 (hors garantie : 8)")
        );
        assert_eq!(p.total, 20);
        assert_eq!(p.totals.len(), 2);
        assert_eq!(
            (p.totals[0].label.as_str(), p.totals[0].quantity),
            ("poste fixe", 12)
        );
        assert_eq!(
            (p.totals[1].label.as_str(), p.totals[1].quantity),
            ("portable", 8)
        );
        // Scrap: bur's 12 old machines and mob's 8 laptops.
        assert_eq!(p.scrap.len(), 20);
        assert_eq!(p.deferred.len(), 1);
        assert_eq!(
            (p.deferred[0].room.as_str(), p.deferred[0].count),
            ("lang", 2)
        );
        assert_eq!(p.rotation.moves.len(), 1);
        assert!(p.conformity[2].contains("03/11/2025") && p.conformity[2].contains("10/11/2025"));
    }
}
