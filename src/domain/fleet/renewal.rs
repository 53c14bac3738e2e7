//! Renewal candidates (PACA §7.5.4 "Acquisition/renouvellement"): machines to renew that
//! rotation cannot reuse, each with a French justification and a priority. As of a given date.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use super::input::{
    Fleet, add_years, form_factor_of, push_fr_date, serialize_date, warranty_end_of, whole_years,
};
use super::rotation::{self, RotationPlan};
use crate::domain::device::DeviceState;
use crate::domain::model::{FormFactor, Origin};

/// A warranty ending within this many days is mentioned (low priority).
pub const WARRANTY_SOON_DAYS: i64 = 365;
/// Out of warranty for this many years or more is a high priority.
pub const LONG_OUT_OF_WARRANTY_YEARS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Haute = 1,
    Moyenne = 2,
    Basse = 3,
}

impl Priority {
    pub fn french(self) -> &'static str {
        match self {
            Priority::Haute => "haute",
            Priority::Moyenne => "moyenne",
            Priority::Basse => "basse",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    Broken,
    BelowRequirements {
        shortfalls: Vec<String>,
    },
    OutOfWarranty {
        #[serde(serialize_with = "serialize_date")]
        since: NaiveDate,
        years: u32,
    },
    WarrantyEndsSoon {
        #[serde(serialize_with = "serialize_date")]
        on: NaiveDate,
    },
    Recycled,
    Assembled,
}

impl Reason {
    pub fn priority(&self) -> Priority {
        match self {
            Reason::Broken | Reason::BelowRequirements { .. } => Priority::Haute,
            Reason::OutOfWarranty { years, .. } if *years >= LONG_OUT_OF_WARRANTY_YEARS => {
                Priority::Haute
            }
            Reason::OutOfWarranty { .. } | Reason::Recycled | Reason::Assembled => {
                Priority::Moyenne
            }
            Reason::WarrantyEndsSoon { .. } => Priority::Basse,
        }
    }

    pub fn french(&self) -> String {
        let mut s = String::new();
        self.push_french(&mut s);
        s
    }

    /// Appends [`Reason::french`] to `out`.
    pub fn push_french(&self, out: &mut String) {
        match self {
            Reason::Broken => out.push_str("en panne"),
            Reason::BelowRequirements { shortfalls } => {
                out.push_str("insuffisant pour sa salle (");
                for (i, gap) in shortfalls.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(gap);
                }
                out.push_str(") et non réemployable par rotation");
            }
            Reason::OutOfWarranty { since, .. } => {
                out.push_str("hors garantie depuis le ");
                push_fr_date(out, *since);
            }
            Reason::WarrantyEndsSoon { on } => {
                out.push_str("garantie jusqu'au ");
                push_fr_date(out, *on);
            }
            Reason::Recycled => {
                out.push_str("poste issu d'un circuit de recyclage (fortement déconseillé)")
            }
            Reason::Assembled => out.push_str("poste assemblé (coût de possession élevé)"),
        }
    }

    /// The reason without its detail (what comes before " (" in [`Reason::french`]), as the
    /// PRELP counts them; `None` for the reasons it does not count (warranty ending soon).
    pub fn french_short(&self) -> Option<&'static str> {
        Some(match self {
            Reason::Broken => "en panne",
            Reason::BelowRequirements { .. } => "insuffisant pour sa salle",
            Reason::OutOfWarranty { .. } => "hors garantie",
            Reason::WarrantyEndsSoon { .. } => return None,
            Reason::Recycled => "poste issu d'un circuit de recyclage",
            Reason::Assembled => "poste assemblé",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub hostname: String,
    pub serial: String,
    pub room: Option<String>,
    pub model: String,
    pub form_factor: FormFactor,
    pub state: DeviceState,
    #[serde(serialize_with = "serialize_date")]
    pub purchase_date: NaiveDate,
    #[serde(serialize_with = "serialize_date")]
    pub warranty_end: NaiveDate,
    pub age_years: u32,
    pub reasons: Vec<Reason>,
    pub priority: Priority,
    /// One French line: what, why.
    pub justification: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenewalReport {
    pub lycee: String,
    pub as_of: NaiveDate,
    /// By priority, room, hostname.
    pub candidates: Vec<Candidate>,
    pub haute: usize,
    pub moyenne: usize,
    pub basse: usize,
}

/// The renewal candidates as of `as_of`, given the rotation plan (machines it reuses are not
/// "below requirements").
pub fn candidates(fleet: &Fleet, plan: &RotationPlan, as_of: NaiveDate) -> RenewalReport {
    list(fleet, plan, as_of, true)
}

/// [`candidates`] without their justification (left empty), for the PRELP, which does not
/// print it.
pub(super) fn candidates_unjustified(
    fleet: &Fleet,
    plan: &RotationPlan,
    as_of: NaiveDate,
) -> RenewalReport {
    list(fleet, plan, as_of, false)
}

fn list(fleet: &Fleet, plan: &RotationPlan, as_of: NaiveDate, justify: bool) -> RenewalReport {
    let reused: HashSet<&str> = plan
        .moves
        .iter()
        .flat_map(|m| m.hostnames.iter())
        .chain(plan.spare.iter().map(|l| &l.hostname))
        .map(String::as_str)
        .collect();
    let models = fleet.model_index();
    let rooms: HashMap<&str, &super::RoomPlan> = fleet
        .rooms
        .iter()
        .map(|r| (r.id.as_str(), r))
        .rev()
        .collect();
    // What a model lacks for a room, worked out once per (model, room).
    let mut gaps_of: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    let mut out = Vec::new();
    for m in &fleet.machines {
        if m.state == DeviceState::Scrapped {
            continue;
        }
        let model = models.get(m.model.as_str()).copied();
        let mut reasons = Vec::new();
        if m.state == DeviceState::Broken {
            reasons.push(Reason::Broken);
        }
        if m.state == DeviceState::InService && !reused.contains(m.hostname.as_str()) {
            let req = m
                .room
                .as_deref()
                .and_then(|r| rooms.get(r))
                .and_then(|p| p.requirements.as_ref().map(|req| (p.id.as_str(), req)));
            if let (Some((room, req)), Some(model)) = (req, model) {
                let gaps = gaps_of
                    .entry((model.id.value.as_str(), room))
                    .or_insert_with(|| rotation::shortfalls_fr(model, req));
                if !gaps.is_empty() {
                    reasons.push(Reason::BelowRequirements {
                        shortfalls: gaps.clone(),
                    });
                }
            }
        }
        let end = warranty_end_of(m, model);
        if end < as_of {
            reasons.push(Reason::OutOfWarranty {
                since: end,
                years: whole_years(end, as_of),
            });
        } else if (end - as_of).num_days() <= WARRANTY_SOON_DAYS {
            reasons.push(Reason::WarrantyEndsSoon { on: end });
        }
        match model.map(|x| x.origin) {
            Some(Origin::Recycled) => reasons.push(Reason::Recycled),
            Some(Origin::Assembled) => reasons.push(Reason::Assembled),
            _ => {}
        }
        if reasons.is_empty() {
            continue;
        }
        let priority = reasons
            .iter()
            .map(Reason::priority)
            .min()
            .unwrap_or(Priority::Basse);
        let age = whole_years(m.purchase_date, as_of);
        // "{hostname} ({model}, acheté le {date}, {age} an[s]) : {reasons joined by " ; "}."
        let mut justification = String::new();
        if justify {
            justification.reserve(128);
            justification.push_str(&m.hostname);
            justification.push_str(" (");
            justification.push_str(&m.model);
            justification.push_str(", acheté le ");
            push_fr_date(&mut justification, m.purchase_date);
            justification.push_str(", ");
            justification.push_str(&age.to_string());
            justification.push_str(if age > 1 { " ans) : " } else { " an) : " });
            for (i, r) in reasons.iter().enumerate() {
                if i > 0 {
                    justification.push_str(" ; ");
                }
                r.push_french(&mut justification);
            }
            justification.push('.');
        }
        out.push(Candidate {
            hostname: m.hostname.clone(),
            serial: m.serial.clone(),
            room: m.room.clone(),
            model: m.model.clone(),
            form_factor: form_factor_of(model),
            state: m.state,
            purchase_date: m.purchase_date,
            warranty_end: end,
            age_years: age,
            reasons,
            priority,
            justification,
        });
    }
    out.sort_by(|a, b| (a.priority, &a.room, &a.hostname).cmp(&(b.priority, &b.room, &b.hostname)));
    let count = |p| out.iter().filter(|c| c.priority == p).count();
    RenewalReport {
        lycee: fleet.lycee.clone(),
        as_of,
        haute: count(Priority::Haute),
        moyenne: count(Priority::Moyenne),
        basse: count(Priority::Basse),
        candidates: out,
    }
}

/// Convenience: plan the rotation, then list the candidates.
pub fn report(fleet: &Fleet, as_of: NaiveDate) -> RenewalReport {
    candidates(fleet, &rotation::plan(fleet), as_of)
}

/// The default warranty end of a purchase (for documentation and tests).
pub fn default_warranty_end(purchase: NaiveDate, ff: FormFactor) -> NaiveDate {
    add_years(purchase, ff.default_warranty_years())
}

#[cfg(test)]
mod tests {
    use super::super::input::testkit::*;
    use super::*;
    use crate::domain::model::FormFactor::{Desktop, Laptop};

    #[test]
    fn each_rule_with_its_priority() {
        let mut rec = model("recyc", 2021, 9000, 16, Desktop);
        rec.origin = Origin::Recycled;
        let models = vec![
            model("desk", 2019, 9000, 16, Desktop),
            model("lap", 2022, 9000, 16, Laptop),
            model("weak", 2023, 1000, 4, Desktop),
            rec,
        ];
        let rooms = vec![
            room("a", "desk", 8, 1000),
            room("b", "weak", 8, 5000),
            room("c", "lap", 8, 1000),
        ];
        let mut m = machines("a", "desk", 2, "2019-09-01"); // warranty to 2024-09-01
        m[1].state = DeviceState::Broken;
        m.extend(machines("b", "weak", 2, "2023-09-01")); // below requirements, no rotation
        m.extend(machines("c", "lap", 1, "2022-09-01")); // laptop: warranty to 2025-09-01
        let mut r = machines("d", "recyc", 1, "2024-01-01");
        r[0].warranty_end = Some(date("2029-01-01"));
        m.extend(r);
        let rep = report(&fleet(models, rooms, m), date("2025-03-01"));
        let got: Vec<(&str, Priority)> = rep
            .candidates
            .iter()
            .map(|c| (c.hostname.as_str(), c.priority))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a-pc02", Priority::Haute),
                ("b-pc01", Priority::Haute),
                ("b-pc02", Priority::Haute),
                ("a-pc01", Priority::Moyenne),
                ("d-pc01", Priority::Moyenne),
                ("c-pc01", Priority::Basse),
            ]
        );
        let a1 = rep
            .candidates
            .iter()
            .find(|c| c.hostname == "a-pc01")
            .unwrap();
        assert_eq!(a1.warranty_end, date("2024-09-01"));
        assert_eq!(
            a1.justification,
            "a-pc01 (desk, acheté le 01/09/2019, 5 ans) : hors garantie depuis le 01/09/2024."
        );
        let b1 = rep
            .candidates
            .iter()
            .find(|c| c.hostname == "b-pc01")
            .unwrap();
        assert!(b1.justification.contains("insuffisant pour sa salle (4 Go de mémoire pour 8 Go demandés, indice processeur 1000 pour 5000 demandé) et non réemployable par rotation"));
        let c1 = rep
            .candidates
            .iter()
            .find(|c| c.hostname == "c-pc01")
            .unwrap();
        assert_eq!(c1.warranty_end, date("2025-09-01"));
        assert_eq!((rep.haute, rep.moyenne, rep.basse), (3, 2, 1));
    }

    #[test]
    fn the_short_reason_is_the_french_one_without_its_detail() {
        let on = date("2024-09-01");
        let all = [
            Reason::Broken,
            Reason::BelowRequirements {
                shortfalls: vec!["4 Go de mémoire pour 8 Go demandés".into()],
            },
            Reason::OutOfWarranty {
                since: on,
                years: 1,
            },
            Reason::WarrantyEndsSoon { on },
            Reason::Recycled,
            Reason::Assembled,
        ];
        for r in &all {
            let full = r.french();
            let expected = match r {
                Reason::OutOfWarranty { .. } => Some("hors garantie"),
                Reason::WarrantyEndsSoon { .. } => None,
                _ => full.split(" (").next(),
            };
            assert_eq!(r.french_short(), expected, "{full}");
        }
    }

    #[test]
    fn long_out_of_warranty_is_high_and_rotation_reuse_is_not_below_requirements() {
        let models = vec![
            model("new", 2020, 9000, 16, Desktop),
            model("old", 2012, 2000, 4, Desktop),
        ];
        let rooms = vec![room("a", "new", 32, 1000), room("b", "old", 8, 1000)];
        let mut m = machines("a", "new", 10, "2020-09-01");
        m.extend(machines("b", "old", 10, "2012-09-01"));
        let rep = report(&fleet(models, rooms, m), date("2025-10-01"));
        // a's machines move to b: reused, and still under warranty (to 2025-09-01? no: expired
        // one month ago, so "moyenne").
        let a1 = rep
            .candidates
            .iter()
            .find(|c| c.hostname == "a-pc01")
            .unwrap();
        assert_eq!(a1.priority, Priority::Moyenne);
        assert!(
            !a1.reasons
                .iter()
                .any(|r| matches!(r, Reason::BelowRequirements { .. }))
        );
        // b's machines: below requirements and out of warranty since 2017.
        let b1 = rep
            .candidates
            .iter()
            .find(|c| c.hostname == "b-pc01")
            .unwrap();
        assert_eq!(b1.priority, Priority::Haute);
        assert_eq!(b1.reasons.len(), 2);
        assert_eq!(
            b1.reasons[1],
            Reason::OutOfWarranty {
                since: date("2017-09-01"),
                years: 8
            }
        );
    }
}
