//! Property tests of the rotation plan over random lycées (1,000 cases; about a quarter
//! involve moves, a fifth save purchases): it never breaks a room's
//! homogeneity, never moves a model into a room it does not fit, never buys more than
//! "renew every unfit room", uses each machine once, and does not depend on input order; and
//! the PRELP request built on it buys whole rooms, adds up and never scraps a reused machine.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::input::testkit::{fleet, machines, model, room};
use super::input::{Fleet, Machine};
use super::rotation::{apply, plan};
use crate::domain::device::DeviceState;
use crate::domain::model::FormFactor;
use crate::domain::validate::fits;

fn arb_fleet() -> impl Strategy<Value = Fleet> {
    let models = prop::collection::vec(
        (
            2010u32..2025,
            1000u32..12000,
            prop::sample::select(vec![4u32, 8, 16, 32]),
        ),
        2..5,
    );
    let rooms = prop::collection::vec(
        (
            0usize..6,
            prop::sample::select(vec![4usize, 8, 12, 16]),
            prop::sample::select(vec![0u32, 4, 8, 16]),
            0u32..10000,
            prop_oneof![3 => Just(0usize), 1 => 1usize..4],
            0usize..6,
        ),
        2..9,
    );
    let spares = prop::collection::vec((0usize..6, 0usize..5), 0..3);
    (models, rooms, spares).prop_map(|(ms, rs, sp)| {
        let models: Vec<_> = ms
            .iter()
            .enumerate()
            .map(|(i, (y, c, r))| model(&format!("m{i}"), *y, *c, *r, FormFactor::Desktop))
            .collect();
        let mut plans = Vec::new();
        let mut all: Vec<Machine> = Vec::new();
        for (i, (mi, seats, ram, cpu, off, off_model)) in rs.iter().enumerate() {
            let id = format!("r{i}");
            let m = format!("m{}", mi % models.len());
            plans.push(room(&id, &m, *ram, *cpu));
            all.extend(machines(&id, &m, *seats, "2018-01-01"));
            // Some rooms are heterogeneous already.
            let om = format!("m{}", off_model % models.len());
            all.extend(
                machines(&format!("{id}x"), &om, *off, "2016-01-01")
                    .into_iter()
                    .map(|mut d| {
                        d.room = Some(id.clone());
                        d
                    }),
            );
        }
        for (k, (mi, n)) in sp.iter().enumerate() {
            let m = format!("m{}", mi % models.len());
            all.extend(
                machines(&format!("sp{k}"), &m, *n, "2020-01-01")
                    .into_iter()
                    .map(|mut d| {
                        d.room = None;
                        d.state = DeviceState::Spare;
                        d
                    }),
            );
        }
        fleet(models, plans, all)
    })
}

fn composition(f: &Fleet) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in f
        .machines
        .iter()
        .filter(|m| m.state == DeviceState::InService)
    {
        if let Some(r) = &m.room {
            out.entry(r.clone())
                .or_default()
                .push((m.hostname.clone(), m.model.clone()));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn rotation_properties(f in arb_fleet(), shuffle in any::<u64>()) {
        let p = plan(&f);
        // Never a model into a room it does not fit.
        for mv in &p.moves {
            let model = f.model(&mv.model).unwrap();
            let req = f.rooms.iter().find(|r| r.id == mv.to_room).unwrap().requirements.as_ref().unwrap();
            prop_assert!(fits(model, req), "{} moved into {} it does not fit", mv.model, mv.to_room);
            prop_assert_eq!(mv.count, mv.hostnames.len());
        }
        // Never more purchases than renewing every unfit room.
        prop_assert!(p.purchases <= p.baseline_purchases);
        // Each machine used once.
        let mut seen = HashSet::new();
        for h in p.moves.iter().flat_map(|m| &m.hostnames).chain(p.spare.iter().map(|l| &l.hostname)).chain(p.scrapped.iter().map(|l| &l.hostname)) {
            prop_assert!(seen.insert(h.clone()), "{} appears twice", h);
        }
        // Homogeneity: a room whose machines changed holds one model, as many as before.
        let before = composition(&f);
        let after = composition(&apply(&f, &p));
        for (room, now) in &after {
            let was = before.get(room).cloned().unwrap_or_default();
            if &was != now {
                let models: HashSet<&String> = now.iter().map(|(_, m)| m).collect();
                prop_assert_eq!(models.len(), 1, "room {} is mixed after the plan: {:?}", room, now);
                prop_assert_eq!(now.len(), was.len(), "room {} changed size", room);
            }
        }
        for room in before.keys() {
            prop_assert!(after.contains_key(room), "room {} was emptied", room);
        }
        // Deterministic, whatever the order of the inventory.
        let mut g = f.clone();
        let n = g.machines.len();
        if n > 1 {
            let k = (shuffle % n as u64) as usize;
            g.machines.rotate_left(k);
            g.machines.reverse();
        }
        prop_assert_eq!(plan(&g), p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The PRELP built on the plan: each line buys a whole room, totals add up, no machine is
    /// both reused by the rotation and scrapped, and every room the rotation leaves to equip
    /// is requested.
    #[test]
    fn prelp_properties(f in arb_fleet(), year in 2020i32..2035) {
        let today = chrono::NaiveDate::from_ymd_opt(year, 2, 1).unwrap();
        let p = super::prelp::request(&f, year, today);
        let seats: BTreeMap<String, usize> =
            composition(&f).into_iter().map(|(r, v)| (r, v.len())).collect();
        for l in &p.lines {
            prop_assert_eq!(Some(&l.quantity), seats.get(&l.room), "line {} is not a whole room", l.room);
        }
        prop_assert_eq!(p.total, p.lines.iter().map(|l| l.quantity).sum::<usize>());
        prop_assert_eq!(p.total, p.totals.iter().map(|t| t.quantity).sum::<usize>());
        let moved: HashSet<&String> = p.rotation.moves.iter().flat_map(|m| &m.hostnames).collect();
        for s in &p.scrap {
            prop_assert!(!moved.contains(&s.hostname), "{} is both moved and scrapped", s.hostname);
        }
        let rooms: HashSet<&String> = p.lines.iter().map(|l| &l.room).collect();
        prop_assert_eq!(rooms.len(), p.lines.len(), "a room is requested twice");
        for e in &p.rotation.to_equip {
            prop_assert!(rooms.contains(&e.room), "room {} to equip is not requested", e.room);
        }
    }
}
