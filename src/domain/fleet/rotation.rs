//! The rotation plan (PACA §7.5.4 "rotation du parc"): when a room's model no longer meets its
//! needs, move that model, whole room at a time, to rooms whose needs it still meets, and equip
//! the first room with a new model. Deterministic; the algorithm is explained in docs/fleet.md.
//!
//! Guarantees (property-tested): a room that receives machines receives one model only, and
//! exactly as many as it has seats; a model only goes to a room it fits; the purchases never
//! exceed those of "renew every unfit room".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::input::Fleet;
use crate::domain::device::DeviceState;
use crate::domain::model::{FormFactor, Model};
use crate::domain::recipe::Requirements;

/// Machines left over by a rotation are kept as spares, up to this many per model still in
/// service (existing spares count); the others are scrapped.
pub const SPARES_KEPT_PER_MODEL: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnfitRoom {
    pub room: String,
    pub name: String,
    pub model: String,
    pub seats: usize,
    /// What the model lacks, in French.
    pub shortfalls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    /// 1-based order in which the moves are made.
    pub step: usize,
    pub model: String,
    /// `None`: from the spares (réserve).
    pub from_room: Option<String>,
    pub to_room: String,
    pub count: usize,
    pub hostnames: Vec<String>,
    /// Part of a cycle: the machines wait in storage until their destination is free.
    pub via_storage: bool,
    /// Replaces machines that still fit but are older or weaker (no purchase saved).
    pub upgrade: bool,
    /// Why, in French.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EquipNeed {
    pub room: String,
    pub name: String,
    pub seats: usize,
    pub form_factor: FormFactor,
    /// The model leaving the room.
    pub current_model: String,
    pub shortfalls: Vec<String>,
    /// The room's requirements, in French.
    pub requirements: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    pub hostname: String,
    pub model: String,
    pub from_room: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RotationPlan {
    pub lycee: String,
    pub unfit: Vec<UnfitRoom>,
    pub moves: Vec<Move>,
    pub to_equip: Vec<EquipNeed>,
    pub spare: Vec<Leftover>,
    pub scrapped: Vec<Leftover>,
    /// New machines to buy (Σ seats of `to_equip`).
    pub purchases: usize,
    /// New machines "renew every unfit room" would buy.
    pub baseline_purchases: usize,
    /// Machines reused by moves.
    pub reused: usize,
    /// Rooms with workstations that rotation leaves alone, and why (French).
    pub ignored: Vec<String>,
}

/// A room rotation may touch: it has a recipe, workstations and a known dominant model.
struct Slot<'a> {
    id: &'a str,
    name: &'a str,
    req: &'a Requirements,
    model: &'a Model,
    /// The dominant model's machines (indices, by hostname).
    batch: Vec<usize>,
    /// The other in-service machines.
    others: Vec<usize>,
    fits: bool,
}

impl Slot<'_> {
    fn seats(&self) -> usize {
        self.batch.len() + self.others.len()
    }
}

struct Batch {
    model: String,
    /// Index into the slots; `None` for spares.
    source: Option<usize>,
    machines: Vec<usize>,
}

/// Whether `a` is at least as recent and as powerful as `b`, and better on one.
fn better(a: &Model, b: &Model) -> bool {
    a.year >= b.year && a.cpu_score >= b.cpu_score && (a.year > b.year || a.cpu_score > b.cpu_score)
}

/// The rotation plan of a lycée.
pub fn plan(fleet: &Fleet) -> RotationPlan {
    let views = fleet.room_views();
    let mut slots: Vec<Slot> = Vec::new();
    let mut ignored = Vec::new();
    for v in &views {
        if v.in_service.is_empty() {
            continue;
        }
        let Some(req) = &v.plan.requirements else {
            ignored.push(format!(
                "Salle {} : pas de fiche de salle, ses besoins ne sont pas connus.",
                v.plan.id
            ));
            continue;
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in &v.in_service {
            *counts.entry(fleet.machines[i].model.as_str()).or_default() += 1;
        }
        let top = counts.values().copied().max().unwrap_or(0);
        let dominant = match &v.plan.recipe_model {
            Some(r) if counts.get(r.as_str()) == Some(&top) => r.as_str(),
            _ => counts
                .iter()
                .find(|(_, c)| **c == top)
                .map_or("", |(m, _)| m),
        };
        let Some(model) = fleet.model(dominant) else {
            ignored.push(format!(
                "Salle {} : le modèle {dominant} n'est pas décrit dans models.toml.",
                v.plan.id
            ));
            continue;
        };
        let (batch, others): (Vec<usize>, Vec<usize>) = v
            .in_service
            .iter()
            .partition(|&&i| fleet.machines[i].model == dominant);
        slots.push(Slot {
            id: &v.plan.id,
            name: &v.plan.name,
            req,
            model,
            batch,
            others,
            fits: super::super::validate::fits(model, req),
        });
    }

    // The pool: the batches of unfit rooms, then the spares of each known model.
    let mut pool: Vec<Batch> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.fits)
        .map(|(i, s)| Batch {
            model: s.model.id.value.clone(),
            source: Some(i),
            machines: s.batch.clone(),
        })
        .collect();
    let mut spares: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in fleet.machines.iter().enumerate() {
        if m.state == DeviceState::Spare && fleet.model(&m.model).is_some() {
            spares.entry(m.model.as_str()).or_default().push(i);
        }
    }
    for (model, mut machines) in spares {
        machines.sort_by(|a, b| {
            fleet.machines[*a]
                .hostname
                .cmp(&fleet.machines[*b].hostname)
        });
        pool.push(Batch {
            model: model.to_string(),
            source: None,
            machines,
        });
    }

    // Phase 1: unfit rooms, largest first, take the smallest batch that fits them.
    let mut receivers: Vec<usize> = (0..slots.len()).filter(|&i| !slots[i].fits).collect();
    receivers.sort_by(|&a, &b| {
        slots[b]
            .seats()
            .cmp(&slots[a].seats())
            .then(slots[a].id.cmp(slots[b].id))
    });
    let mut used = vec![false; pool.len()];
    let mut received: HashMap<usize, (usize, bool)> = HashMap::new(); // slot -> (batch, upgrade)
    for &r in &receivers {
        let slot = &slots[r];
        let pick = (0..pool.len())
            .filter(|&b| {
                !used[b] && pool[b].source != Some(r) && pool[b].machines.len() >= slot.seats()
            })
            .filter(|&b| {
                fleet
                    .model(&pool[b].model)
                    .is_some_and(|m| super::super::validate::fits(m, slot.req))
            })
            .min_by(|&a, &b| {
                let (ma, mb) = (fleet.model(&pool[a].model), fleet.model(&pool[b].model));
                pool[a]
                    .machines
                    .len()
                    .cmp(&pool[b].machines.len())
                    .then(
                        mb.map(|m| (m.year, m.cpu_score))
                            .cmp(&ma.map(|m| (m.year, m.cpu_score))),
                    )
                    .then(source_key(&slots, &pool[a]).cmp(&source_key(&slots, &pool[b])))
            });
        if let Some(b) = pick {
            used[b] = true;
            received.insert(r, (b, false));
        }
    }

    // Phase 2: what is left of the unfit rooms' batches upgrades fit rooms with older or weaker
    // machines, the oldest first; the machines it frees may move on in turn.
    let mut queue: Vec<usize> = (0..pool.len())
        .filter(|&b| !used[b] && pool[b].source.is_some())
        .collect();
    loop {
        queue.sort_by(|&a, &b| {
            let (ma, mb) = (fleet.model(&pool[a].model), fleet.model(&pool[b].model));
            mb.map(|m| (m.year, m.cpu_score))
                .cmp(&ma.map(|m| (m.year, m.cpu_score)))
                .then(source_key(&slots, &pool[a]).cmp(&source_key(&slots, &pool[b])))
        });
        let mut progressed = false;
        for qi in 0..queue.len() {
            let b = queue[qi];
            let Some(bm) = fleet.model(&pool[b].model) else {
                continue;
            };
            let target = (0..slots.len())
                .filter(|&r| {
                    slots[r].fits && !received.contains_key(&r) && pool[b].source != Some(r)
                })
                .filter(|&r| pool[b].machines.len() >= slots[r].seats())
                .filter(|&r| {
                    super::super::validate::fits(bm, slots[r].req) && better(bm, slots[r].model)
                })
                .min_by(|&a, &c| {
                    (slots[a].model.year, slots[a].model.cpu_score, slots[a].id).cmp(&(
                        slots[c].model.year,
                        slots[c].model.cpu_score,
                        slots[c].id,
                    ))
                });
            if let Some(r) = target {
                used[b] = true;
                received.insert(r, (b, true));
                queue.remove(qi);
                pool.push(Batch {
                    model: slots[r].model.id.value.clone(),
                    source: Some(r),
                    machines: slots[r].batch.clone(),
                });
                used.push(false);
                queue.push(pool.len() - 1);
                progressed = true;
                break;
            }
        }
        if !progressed {
            break;
        }
    }

    // Moves, with the surplus of each moved batch.
    let mut raw_moves: Vec<Move> = Vec::new();
    let mut leftovers: Vec<usize> = Vec::new();
    let mut received_sorted: Vec<(&usize, &(usize, bool))> = received.iter().collect();
    received_sorted.sort_by_key(|(r, _)| slots[**r].id);
    for (&r, &(b, upgrade)) in received_sorted {
        let batch = &pool[b];
        let seats = slots[r].seats();
        let moving = &batch.machines[..seats];
        // The surplus of a room's batch leaves it; surplus spares simply stay spares.
        if batch.source.is_some() {
            leftovers.extend_from_slice(&batch.machines[seats..]);
        }
        let from = batch.source.map(|s| slots[s].id.to_string());
        let to = &slots[r];
        let reason = match (&from, upgrade) {
            (_, true) => format!(
                "Les postes {} ({}) remplacent en salle {} des postes plus anciens ou moins puissants ({}, {}).",
                batch.model,
                fleet.model(&batch.model).map_or(0, |m| m.year),
                to.id,
                to.model.id.value,
                to.model.year
            ),
            (Some(f), false) => format!(
                "Le modèle {} ne répond plus aux besoins de la salle {f} mais répond à ceux de la salle {}, dont les postes ({}) sont insuffisants.",
                batch.model, to.id, to.model.id.value
            ),
            (None, false) => format!(
                "Postes de réserve {} : ils répondent aux besoins de la salle {}, dont les postes ({}) sont insuffisants.",
                batch.model, to.id, to.model.id.value
            ),
        };
        raw_moves.push(Move {
            step: 0,
            model: batch.model.clone(),
            from_room: from,
            to_room: to.id.to_string(),
            count: seats,
            hostnames: moving
                .iter()
                .map(|&i| fleet.machines[i].hostname.clone())
                .collect(),
            via_storage: false,
            upgrade,
            reason,
        });
    }
    let moves = order_moves(raw_moves);

    // Machines leaving a room without going to another one.
    for (i, s) in slots.iter().enumerate() {
        if !s.fits || received.contains_key(&i) {
            leftovers.extend_from_slice(&s.others);
        }
    }
    for (b, batch) in pool.iter().enumerate() {
        if !used[b] && batch.source.is_some() {
            leftovers.extend_from_slice(&batch.machines);
        }
    }

    let unfit: Vec<UnfitRoom> = slots
        .iter()
        .filter(|s| !s.fits)
        .map(|s| UnfitRoom {
            room: s.id.to_string(),
            name: s.name.to_string(),
            model: s.model.id.value.clone(),
            seats: s.seats(),
            shortfalls: shortfalls_fr(s.model, s.req),
        })
        .collect();
    let to_equip: Vec<EquipNeed> = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| !s.fits && !received.contains_key(i))
        .map(|(_, s)| EquipNeed {
            room: s.id.to_string(),
            name: s.name.to_string(),
            seats: s.seats(),
            form_factor: s.model.form_factor,
            current_model: s.model.id.value.clone(),
            shortfalls: shortfalls_fr(s.model, s.req),
            requirements: requirements_fr(s.req),
        })
        .collect();

    // Models in service once the plan is applied.
    let mut after: BTreeSet<&str> = BTreeSet::new();
    for v in &views {
        let slot = slots.iter().position(|s| s.id == v.plan.id);
        match slot {
            Some(i) if received.contains_key(&i) => {
                after.insert(&pool[received[&i].0].model);
            }
            Some(i) if !slots[i].fits => {}
            _ => after.extend(
                v.in_service
                    .iter()
                    .map(|&i| fleet.machines[i].model.as_str()),
            ),
        }
    }
    let (spare, scrapped) = sort_leftovers(fleet, leftovers, &after);
    let purchases = to_equip.iter().map(|e| e.seats).sum();
    RotationPlan {
        lycee: fleet.lycee.clone(),
        baseline_purchases: unfit.iter().map(|u| u.seats).sum(),
        reused: moves.iter().map(|m| m.count).sum(),
        unfit,
        moves,
        to_equip,
        spare,
        scrapped,
        purchases,
        ignored,
    }
}

fn source_key<'a>(slots: &'a [Slot], b: &Batch) -> (bool, &'a str) {
    match b.source {
        Some(s) => (false, slots[s].id),
        None => (true, ""),
    }
}

/// Orders moves so that a room is emptied before it receives; a cycle goes through storage.
fn order_moves(mut pending: Vec<Move>) -> Vec<Move> {
    pending.sort_by(|a, b| {
        a.from_room
            .cmp(&b.from_room)
            .then(a.to_room.cmp(&b.to_room))
    });
    let mut out: Vec<Move> = Vec::new();
    let mut stored: BTreeSet<String> = BTreeSet::new();
    while !pending.is_empty() {
        // A move can be made once nothing waits to leave its destination.
        let ready = pending.iter().position(|m| {
            !pending.iter().any(|o| {
                o.from_room.as_deref() == Some(m.to_room.as_str()) && !stored.contains(&m.to_room)
            })
        });
        match ready {
            Some(i) => {
                let mut m = pending.remove(i);
                if m.from_room.as_ref().is_some_and(|f| stored.contains(f)) {
                    m.via_storage = true;
                }
                out.push(m);
            }
            None => {
                // A cycle: the first room's machines go to storage, which frees that room.
                if let Some(f) = pending
                    .iter()
                    .filter_map(|m| m.from_room.clone())
                    .find(|f| !stored.contains(f))
                {
                    stored.insert(f);
                } else {
                    break;
                }
            }
        }
    }
    out.extend(pending);
    for (i, m) in out.iter_mut().enumerate() {
        m.step = i + 1;
    }
    out
}

fn sort_leftovers(
    fleet: &Fleet,
    mut left: Vec<usize>,
    after: &BTreeSet<&str>,
) -> (Vec<Leftover>, Vec<Leftover>) {
    let ms = &fleet.machines;
    left.sort_by(|a, b| {
        (
            &ms[*a].model,
            std::cmp::Reverse(ms[*a].purchase_date),
            &ms[*a].hostname,
        )
            .cmp(&(
                &ms[*b].model,
                std::cmp::Reverse(ms[*b].purchase_date),
                &ms[*b].hostname,
            ))
    });
    let mut spares_of: HashMap<&str, usize> = HashMap::new();
    for m in ms.iter().filter(|m| m.state == DeviceState::Spare) {
        *spares_of.entry(m.model.as_str()).or_default() += 1;
    }
    let (mut spare, mut scrapped) = (Vec::new(), Vec::new());
    for i in left {
        let m = &ms[i];
        let kept = spares_of.entry(m.model.as_str()).or_default();
        let lo = |reason: String| Leftover {
            hostname: m.hostname.clone(),
            model: m.model.clone(),
            from_room: m.room.clone(),
            reason,
        };
        if after.contains(m.model.as_str()) && *kept < SPARES_KEPT_PER_MODEL {
            *kept += 1;
            spare.push(lo(format!(
                "Gardé en réserve : le modèle {} reste en service dans le lycée.",
                m.model
            )));
        } else if after.contains(m.model.as_str()) {
            scrapped.push(lo(format!(
                "À réformer : la réserve compte déjà {SPARES_KEPT_PER_MODEL} postes du modèle {}.",
                m.model
            )));
        } else {
            scrapped.push(lo(format!(
                "À réformer : le modèle {} ne sert plus dans aucune salle après la rotation.",
                m.model
            )));
        }
    }
    spare.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    scrapped.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    (spare, scrapped)
}

/// What a model lacks for a room, in French (empty when it fits): the same rule as
/// `parc check`'s `fit`, worded for the administration.
pub fn shortfalls_fr(m: &Model, r: &Requirements) -> Vec<String> {
    crate::domain::validate::shortfalls(m, r)
        .iter()
        .map(crate::domain::validate::Shortfall::french)
        .collect()
}

/// A room's requirements, in French.
pub fn requirements_fr(r: &Requirements) -> String {
    let mut parts = Vec::new();
    if r.min_ram_gb > 0 {
        parts.push(format!("{} Go de mémoire", r.min_ram_gb));
    }
    if r.min_cpu_score > 0 {
        parts.push(format!("indice processeur ≥ {}", r.min_cpu_score));
    }
    if r.min_disk_gb > 0 {
        parts.push(format!("disque ≥ {} Go", r.min_disk_gb));
    }
    if let Some(k) = r.min_disk_kind {
        parts.push(crate::domain::validate::disk_french(k).to_string());
    }
    if r.dedicated_gpu {
        parts.push("carte graphique dédiée".to_string());
    }
    if r.min_vram_gb > 0 {
        parts.push(format!("{} Go de mémoire vidéo", r.min_vram_gb));
    }
    if parts.is_empty() {
        "aucune exigence particulière".to_string()
    } else {
        parts.join(", ")
    }
}

/// The fleet once the plan is carried out: moved machines in their new room, left-overs spare
/// or scrapped, and `seats` new machines of model `neuf-<room>` in each room to equip.
pub fn apply(fleet: &Fleet, plan: &RotationPlan) -> Fleet {
    let mut out = fleet.clone();
    let idx: HashMap<String, usize> = out
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.hostname.clone(), i))
        .collect();
    for mv in &plan.moves {
        for h in &mv.hostnames {
            let m = &mut out.machines[idx[h]];
            m.room = Some(mv.to_room.clone());
            m.state = DeviceState::InService;
        }
    }
    for l in &plan.spare {
        let m = &mut out.machines[idx[&l.hostname]];
        m.room = None;
        m.state = DeviceState::Spare;
    }
    for l in &plan.scrapped {
        let m = &mut out.machines[idx[&l.hostname]];
        m.room = None;
        m.state = DeviceState::Scrapped;
    }
    for e in &plan.to_equip {
        let template = out.machines[0].clone();
        for n in 0..e.seats {
            out.machines.push(super::input::Machine {
                hostname: format!("neuf-{}-{n}", e.room),
                serial: format!("NEUF-{}-{n}", e.room),
                room: Some(e.room.clone()),
                model: format!("neuf-{}", e.room),
                state: DeviceState::InService,
                ..template.clone()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::input::testkit::*;
    use super::*;
    use crate::domain::model::FormFactor::Desktop;

    /// CAO needs 16 GB and CPU 10000; its 2019 model (16 GB, 8000) no longer fits but meets
    /// the bureautique rooms' needs (8 GB, 4000), whose 2014 machines (4 GB, 3000) do not.
    /// The documentation room (4 GB, 1500) fits its 2012 machines but they are the oldest.
    fn cascade() -> Fleet {
        let models = vec![
            model("m2019", 2019, 8000, 16, Desktop),
            model("m2014", 2014, 3000, 4, Desktop),
            model("m2012", 2012, 2000, 4, Desktop),
        ];
        let rooms = vec![
            room("cao", "m2019", 16, 10000),
            room("bur1", "m2014", 8, 4000),
            room("bur2", "m2014", 8, 4000),
            room("lang", "m2014", 4, 2000),
            room("doc", "m2012", 4, 1500),
        ];
        let mut m = machines("cao", "m2019", 16, "2019-09-01");
        m.extend(machines("bur1", "m2014", 14, "2014-09-01"));
        m.extend(machines("bur2", "m2014", 20, "2014-09-01"));
        m.extend(machines("lang", "m2014", 12, "2014-09-01"));
        m.extend(machines("doc", "m2012", 10, "2012-09-01"));
        fleet(models, rooms, m)
    }

    #[test]
    fn the_demanding_rooms_model_moves_down_and_is_replaced_by_new() {
        let p = plan(&cascade());
        let unfit: Vec<&str> = p.unfit.iter().map(|u| u.room.as_str()).collect();
        assert_eq!(unfit, vec!["bur1", "bur2", "cao"]);
        assert_eq!(p.baseline_purchases, 14 + 20 + 16);
        // Phase 1, largest first: bur2 (20) finds no batch of 20 that fits it; cao (16) none
        // that fits it; bur1 (14) takes 14 of cao's 16 m2019.
        // Phase 2: bur1's freed m2014 (14) replace doc's older m2012 (10 seats).
        // Order: bur1 must be emptied (step 1, to doc) before cao's machines arrive (step 2).
        let got: Vec<(usize, &str, &str, usize, bool)> = p
            .moves
            .iter()
            .map(|m| {
                (
                    m.step,
                    m.from_room.as_deref().unwrap(),
                    m.to_room.as_str(),
                    m.count,
                    m.upgrade,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![(1, "bur1", "doc", 10, true), (2, "cao", "bur1", 14, false)]
        );
        assert_eq!(p.moves[1].hostnames[0], "cao-pc01");
        assert_eq!(p.moves[1].hostnames.len(), 14);
        let to_equip: Vec<(&str, usize)> = p
            .to_equip
            .iter()
            .map(|e| (e.room.as_str(), e.seats))
            .collect();
        assert_eq!(to_equip, vec![("bur2", 20), ("cao", 16)]);
        assert_eq!(p.purchases, 36);
        assert_eq!(p.reused, 24);
        // Left over: 2 m2019 (spare), 4 + 20 m2014 (2 spare, 22 scrapped), 10 m2012 (scrapped:
        // no room keeps that model).
        assert_eq!(p.spare.len(), 4);
        assert_eq!(p.spare.iter().filter(|l| l.model == "m2019").count(), 2);
        assert_eq!(p.scrapped.len(), 32);
        assert_eq!(p.scrapped.iter().filter(|l| l.model == "m2012").count(), 10);
    }

    #[test]
    fn spares_can_equip_an_unfit_room_and_the_rest_stay_spares() {
        let models = vec![
            model("new", 2022, 9000, 16, Desktop),
            model("old", 2012, 2000, 4, Desktop),
        ];
        let rooms = vec![room("b", "old", 8, 1000)];
        let mut m = machines("b", "old", 3, "2012-01-01");
        m.extend(
            machines("res", "new", 5, "2022-01-01")
                .into_iter()
                .map(|mut d| {
                    d.room = None;
                    d.state = DeviceState::Spare;
                    d
                }),
        );
        let p = plan(&fleet(models, rooms, m));
        assert_eq!(p.moves.len(), 1);
        assert_eq!(p.moves[0].from_room, None);
        assert_eq!(
            p.moves[0].hostnames,
            vec!["res-pc01", "res-pc02", "res-pc03"]
        );
        assert_eq!(p.purchases, 0);
        // res-pc04 and res-pc05 are not "left over": they were and stay spares.
        assert!(p.spare.is_empty(), "{:?}", p.spare);
        assert_eq!(p.scrapped.len(), 3);
    }

    #[test]
    fn rooms_without_recipe_or_known_model_are_left_alone_and_said_so() {
        let models = vec![model("old", 2012, 2000, 4, Desktop)];
        let rooms = vec![room("b", "mystery", 8, 1000)];
        let mut m = machines("b", "mystery", 3, "2012-01-01");
        m.extend(machines("x", "old", 2, "2012-01-01"));
        let p = plan(&fleet(models, rooms, m));
        assert!(p.moves.is_empty() && p.unfit.is_empty());
        assert_eq!(
            p.ignored,
            vec![
                "Salle b : le modèle mystery n'est pas décrit dans models.toml.",
                "Salle x : pas de fiche de salle, ses besoins ne sont pas connus."
            ]
        );
    }

    #[test]
    fn a_cycle_goes_through_storage() {
        // Room a needs CPU, room b needs RAM: each has the other's model.
        let models = vec![
            model("fast", 2020, 9000, 4, Desktop),
            model("big", 2020, 3000, 16, Desktop),
        ];
        let rooms = vec![room("a", "big", 4, 8000), room("b", "fast", 16, 1000)];
        let mut m = machines("a", "big", 10, "2020-01-01");
        m.extend(machines("b", "fast", 10, "2020-01-01"));
        let p = plan(&fleet(models, rooms, m));
        assert_eq!(p.purchases, 0);
        assert_eq!(p.baseline_purchases, 20);
        assert_eq!(p.moves.len(), 2);
        assert_eq!(p.moves[0].from_room.as_deref(), Some("b"));
        assert!(!p.moves[0].via_storage);
        assert_eq!(p.moves[1].from_room.as_deref(), Some("a"));
        assert!(p.moves[1].via_storage);
        assert_eq!(
            p.moves.iter().map(|m| m.step).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn surplus_becomes_spare_then_scrap() {
        let models = vec![
            model("new", 2022, 9000, 16, Desktop),
            model("old", 2012, 2000, 4, Desktop),
        ];
        let rooms = vec![room("a", "new", 32, 1000), room("b", "old", 8, 1000)];
        let mut m = machines("a", "new", 15, "2022-01-01");
        m.extend(machines("b", "old", 10, "2012-01-01"));
        let p = plan(&fleet(models, rooms, m));
        assert_eq!(p.moves.len(), 1);
        assert_eq!(p.moves[0].count, 10);
        assert_eq!(p.purchases, 15);
        // 5 surplus "new": 2 kept as spares, 3 scrapped; the 10 "old" are scrapped.
        assert_eq!(p.spare.len(), 2);
        assert_eq!(p.scrapped.len(), 13);
        assert!(p.scrapped.iter().any(|l| l.reason.contains("ne sert plus")));
    }

    #[test]
    fn requirements_and_shortfalls_in_french() {
        let m = model("x", 2015, 3000, 4, Desktop);
        let r = Requirements {
            min_ram_gb: 8,
            min_cpu_score: 5000,
            dedicated_gpu: true,
            ..Default::default()
        };
        assert_eq!(
            shortfalls_fr(&m, &r),
            vec![
                "4 Go de mémoire pour 8 Go demandés",
                "indice processeur 3000 pour 5000 demandé",
                "pas de carte graphique dédiée"
            ]
        );
        assert_eq!(
            requirements_fr(&r),
            "8 Go de mémoire, indice processeur ≥ 5000, carte graphique dédiée"
        );
    }
}
