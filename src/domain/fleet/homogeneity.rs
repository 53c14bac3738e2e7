//! Homogeneity: one model per room (PACA §7.5.4). Per room, per lycée and per sector.
//!
//! Scores (see docs/fleet.md):
//! - room: the share, in %, of its in-service workstations that are of its reference model
//!   (the recipe's model, else the most common one);
//! - lycée and sector: the same share over all their rooms' workstations (a weighted mean).

use std::collections::BTreeMap;

use super::input::{Fleet, RoomView};
use crate::domain::device::DeviceState;

/// Models released this many years apart or more make a room "mix generations".
pub const GENERATION_GAP_YEARS: u32 = 2;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelCount {
    pub model: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OffModel {
    pub hostname: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoomHomogeneity {
    pub room: String,
    pub name: String,
    /// The recipe's model, else the dominant one.
    pub reference_model: String,
    pub workstations: usize,
    /// By count (descending), then model id.
    pub models: Vec<ModelCount>,
    pub dominant_model: String,
    /// Share of the dominant model, 0–1.
    pub dominant_share: f64,
    pub off_model: Vec<OffModel>,
    /// % of workstations on the reference model, one decimal.
    pub score: f64,
    /// Years between the oldest and newest model present (release years).
    pub generation_span: u32,
    pub mixes_generations: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IsolatedModel {
    pub model: String,
    pub room: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LyceeHomogeneity {
    pub lycee: String,
    pub uai: String,
    pub workstations: usize,
    /// Rooms with at least one workstation in service.
    pub rooms: Vec<RoomHomogeneity>,
    pub heterogeneous_rooms: Vec<String>,
    /// Models in service in one room only, with no spare and no other room of that model.
    pub isolated_models: Vec<IsolatedModel>,
    pub mixed_generation_rooms: Vec<String>,
    pub distinct_models: usize,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SectorModel {
    pub model: String,
    pub lycees: usize,
    pub rooms: usize,
    pub workstations: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SectorHomogeneity {
    pub lycees: Vec<LyceeHomogeneity>,
    pub workstations: usize,
    /// Model sprawl: every model in service across the sector, most used first.
    pub models: Vec<SectorModel>,
    pub distinct_models: usize,
    /// Models found in a single lycée of the sector.
    pub single_lycee_models: usize,
    pub score: f64,
}

/// Rounds a share (0–1) to a percentage with one decimal.
pub fn percent(on: usize, total: usize) -> f64 {
    if total == 0 {
        return 100.0;
    }
    (on as f64 * 1000.0 / total as f64).round() / 10.0
}

/// Homogeneity of one room (`None` when it has no workstation in service).
pub fn room(fleet: &Fleet, view: &RoomView) -> Option<RoomHomogeneity> {
    if view.in_service.is_empty() {
        return None;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &view.in_service {
        *counts.entry(fleet.machines[i].model.as_str()).or_default() += 1;
    }
    let mut models: Vec<ModelCount> = counts
        .iter()
        .map(|(m, c)| ModelCount {
            model: m.to_string(),
            count: *c,
        })
        .collect();
    models.sort_by(|a, b| b.count.cmp(&a.count).then(a.model.cmp(&b.model)));
    let top = models[0].count;
    // Ties go to the recipe's model, then to the first id.
    let dominant = match &view.plan.recipe_model {
        Some(r) if counts.get(r.as_str()) == Some(&top) => r.clone(),
        _ => models[0].model.clone(),
    };
    let reference = view
        .plan
        .recipe_model
        .clone()
        .unwrap_or_else(|| dominant.clone());
    let off_model: Vec<OffModel> = view
        .in_service
        .iter()
        .map(|&i| &fleet.machines[i])
        .filter(|m| m.model != reference)
        .map(|m| OffModel {
            hostname: m.hostname.clone(),
            model: m.model.clone(),
        })
        .collect();
    let n = view.in_service.len();
    let years: Vec<u32> = counts
        .keys()
        .filter_map(|m| fleet.model(m))
        .map(|m| m.year)
        .collect();
    let span = match (years.iter().min(), years.iter().max()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    Some(RoomHomogeneity {
        room: view.plan.id.clone(),
        name: view.plan.name.clone(),
        reference_model: reference,
        workstations: n,
        dominant_share: (top as f64 * 1000.0 / n as f64).round() / 1000.0,
        dominant_model: dominant,
        score: percent(n - off_model.len(), n),
        off_model,
        models,
        generation_span: span,
        mixes_generations: span >= GENERATION_GAP_YEARS,
    })
}

/// Homogeneity of a lycée.
pub fn lycee(fleet: &Fleet) -> LyceeHomogeneity {
    let rooms: Vec<RoomHomogeneity> = fleet
        .room_views()
        .iter()
        .filter_map(|v| room(fleet, v))
        .collect();
    // Where each model is in service, and which models have a spare.
    let mut rooms_of: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for r in &rooms {
        for mc in &r.models {
            rooms_of
                .entry(mc.model.as_str())
                .or_default()
                .push((r.room.as_str(), mc.count));
        }
    }
    let spare: std::collections::HashSet<&str> = fleet
        .machines
        .iter()
        .filter(|m| m.state == DeviceState::Spare)
        .map(|m| m.model.as_str())
        .collect();
    let isolated_models = rooms_of
        .iter()
        .filter(|(m, rs)| rs.len() == 1 && !spare.contains(*m))
        .map(|(m, rs)| IsolatedModel {
            model: m.to_string(),
            room: rs[0].0.to_string(),
            count: rs[0].1,
        })
        .collect();
    let workstations: usize = rooms.iter().map(|r| r.workstations).sum();
    let on: usize = rooms
        .iter()
        .map(|r| r.workstations - r.off_model.len())
        .sum();
    LyceeHomogeneity {
        lycee: fleet.lycee.clone(),
        uai: fleet.uai.clone(),
        workstations,
        heterogeneous_rooms: rooms
            .iter()
            .filter(|r| !r.off_model.is_empty())
            .map(|r| r.room.clone())
            .collect(),
        mixed_generation_rooms: rooms
            .iter()
            .filter(|r| r.mixes_generations)
            .map(|r| r.room.clone())
            .collect(),
        isolated_models,
        distinct_models: rooms_of.len(),
        score: percent(on, workstations),
        rooms,
    }
}

/// Homogeneity across several lycées (a STIL sector).
pub fn sector(fleets: &[Fleet]) -> SectorHomogeneity {
    of_lycees(fleets.iter().map(lycee).collect())
}

/// [`sector`] from its lycées' homogeneity, already worked out (the region report computes
/// each lycée once and groups them by sector).
pub fn of_lycees(lycees: Vec<LyceeHomogeneity>) -> SectorHomogeneity {
    let mut per_model: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for l in &lycees {
        let mut seen_here: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for r in &l.rooms {
            for mc in &r.models {
                let e = per_model.entry(mc.model.as_str()).or_default();
                if seen_here.insert(mc.model.as_str()) {
                    e.0 += 1;
                }
                e.1 += 1;
                e.2 += mc.count;
            }
        }
    }
    let mut models: Vec<SectorModel> = per_model
        .iter()
        .map(|(m, (l, r, w))| SectorModel {
            model: m.to_string(),
            lycees: *l,
            rooms: *r,
            workstations: *w,
        })
        .collect();
    models.sort_by(|a, b| {
        b.workstations
            .cmp(&a.workstations)
            .then(a.model.cmp(&b.model))
    });
    let workstations: usize = lycees.iter().map(|l| l.workstations).sum();
    let on: usize = lycees
        .iter()
        .flat_map(|l| &l.rooms)
        .map(|r| r.workstations - r.off_model.len())
        .sum();
    SectorHomogeneity {
        workstations,
        distinct_models: models.len(),
        single_lycee_models: models.iter().filter(|m| m.lycees == 1).count(),
        models,
        score: percent(on, workstations),
        lycees,
    }
}

#[cfg(test)]
mod tests {
    use super::super::input::testkit::{fleet, machines, model, room as plan};
    use super::*;
    use crate::domain::model::FormFactor::Desktop;

    fn sample() -> Fleet {
        let models = vec![
            model("a", 2020, 9000, 16, Desktop),
            model("b", 2016, 5000, 8, Desktop),
        ];
        let rooms = vec![plan("r1", "a", 8, 1000), plan("r2", "b", 4, 1000)];
        let mut m = machines("r1", "a", 12, "2020-09-01");
        m.extend(
            machines("r1x", "b", 3, "2016-09-01")
                .into_iter()
                .map(|mut d| {
                    d.room = Some("r1".into());
                    d
                }),
        );
        m.extend(machines("r2", "b", 10, "2016-09-01"));
        m.extend(machines("r3", "c", 5, "2018-09-01"));
        fleet(models, rooms, m)
    }

    #[test]
    fn room_scores_are_the_share_on_the_reference_model() {
        let l = lycee(&sample());
        let r1 = &l.rooms[0];
        assert_eq!(r1.room, "r1");
        assert_eq!(r1.workstations, 15);
        assert_eq!(
            r1.models[0],
            ModelCount {
                model: "a".into(),
                count: 12
            }
        );
        assert_eq!(r1.dominant_share, 0.8);
        assert_eq!(r1.score, 80.0);
        assert_eq!(r1.off_model.len(), 3);
        assert_eq!(r1.generation_span, 4);
        assert!(r1.mixes_generations);
        assert_eq!(l.rooms[1].score, 100.0);
        // r3 has no recipe: its dominant model is its reference.
        assert_eq!(l.rooms[2].reference_model, "c");
        assert_eq!(l.rooms[2].score, 100.0);
        // 12 + 10 + 5 on-model of 30 = 90 %.
        assert_eq!(l.score, 90.0);
        assert_eq!(l.heterogeneous_rooms, vec!["r1"]);
        // a and c live in one room each; b is in r1 and r2.
        let iso: Vec<&str> = l.isolated_models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(iso, vec!["a", "c"]);
        assert_eq!(l.distinct_models, 3);
    }

    #[test]
    fn a_spare_removes_the_isolation() {
        let mut f = sample();
        let mut spare = machines("x", "a", 1, "2020-09-01").remove(0);
        spare.room = None;
        spare.state = DeviceState::Spare;
        f.machines.push(spare);
        let iso: Vec<String> = lycee(&f)
            .isolated_models
            .into_iter()
            .map(|m| m.model)
            .collect();
        assert_eq!(iso, vec!["c"]);
    }

    #[test]
    fn sector_counts_model_sprawl() {
        let a = sample();
        let mut b = sample();
        b.lycee = "Lycée Deux".into();
        b.machines.retain(|m| m.model != "c");
        let s = sector(&[a, b]);
        assert_eq!(s.distinct_models, 3);
        assert_eq!(
            s.models[0],
            SectorModel {
                model: "b".into(),
                lycees: 2,
                rooms: 4,
                workstations: 26
            }
        );
        assert_eq!(s.single_lycee_models, 1);
        assert_eq!(s.workstations, 55);
        // on-model: 27 + 22 = 49 of 55.
        assert_eq!(s.score, percent(49, 55));
        assert_eq!(s.score, 89.1);
    }
}
