//! Region-wide fleet figures (Hauts-de-France: some 300 lycées, one STIL technician per
//! sector of a few lycées): the lycées grouped by sector, each lycée planned once, its figures
//! summed per sector and for the region. Pure.
//!
//! Sectors come sorted by name, the lycées of a sector by name (then UAI); lycées whose
//! `site.toml` names no sector are gathered under [`NO_SECTOR`], after the others.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::homogeneity::{self, LyceeHomogeneity, SectorHomogeneity, percent};
use super::input::Fleet;
use super::prelp::{FormFactorTotal, Prelp, PrelpLine};
use super::renewal::{self, RenewalReport};
use crate::domain::device::DeviceState;
use crate::domain::model::FormFactor;

/// The sector of the lycées whose `site.toml` names none.
pub const NO_SECTOR: &str = "(sans secteur)";

/// A sector and its lycées (indices into the fleets, by lycée name then UAI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorGroup {
    pub sector: String,
    pub members: Vec<usize>,
}

/// The fleets grouped by sector: sectors by name ([`NO_SECTOR`] last), lycées by name then
/// UAI (then in the order given). Sector names are compared without surrounding blanks.
pub fn group(fleets: &[Fleet]) -> Vec<SectorGroup> {
    let mut by: BTreeMap<(bool, &str), Vec<usize>> = BTreeMap::new();
    for (i, f) in fleets.iter().enumerate() {
        let name = f.sector.trim();
        by.entry((name.is_empty(), name)).or_default().push(i);
    }
    by.into_iter()
        .map(|((none, name), mut members)| {
            members.sort_by(|&a, &b| {
                (&fleets[a].lycee, &fleets[a].uai).cmp(&(&fleets[b].lycee, &fleets[b].uai))
            });
            SectorGroup {
                sector: if none { NO_SECTOR } else { name }.to_string(),
                members,
            }
        })
        .collect()
}

/// Moves per-lycée results (in the fleets' order) into their sectors, without copying them.
fn distribute<T>(groups: &[SectorGroup], items: Vec<T>) -> Vec<(String, Vec<T>)> {
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    groups
        .iter()
        .map(|g| {
            let here = g
                .members
                .iter()
                .filter_map(|&i| items.get_mut(i).and_then(Option::take))
                .collect();
            (g.sector.clone(), here)
        })
        .collect()
}

/// In-service workstations of a lycée (rooms and elsewhere).
fn in_service(f: &Fleet) -> usize {
    f.machines
        .iter()
        .filter(|m| m.state == DeviceState::InService)
        .count()
}

// ---------------------------------------------------------------------------------------------
// Homogeneity

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SectorHomogeneityEntry {
    pub sector: String,
    /// The sector's lycées (by name), its model sprawl and score, as `homogeneity::sector`.
    pub homogeneity: SectorHomogeneity,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegionHomogeneity {
    pub sectors: Vec<SectorHomogeneityEntry>,
    pub lycees: usize,
    /// In-service workstations in rooms.
    pub workstations: usize,
    /// Models in service across the region.
    pub distinct_models: usize,
    /// % of the region's workstations on their room's reference model.
    pub score: f64,
}

/// Homogeneity per sector (each lycée worked out once) and for the region.
pub fn homogeneity(fleets: &[Fleet]) -> RegionHomogeneity {
    let groups = group(fleets);
    let lycees: Vec<LyceeHomogeneity> = fleets.iter().map(homogeneity::lycee).collect();
    let sectors: Vec<SectorHomogeneityEntry> = distribute(&groups, lycees)
        .into_iter()
        .map(|(sector, lycees)| SectorHomogeneityEntry {
            sector,
            homogeneity: homogeneity::of_lycees(lycees),
        })
        .collect();
    let rooms = || {
        sectors
            .iter()
            .flat_map(|s| &s.homogeneity.lycees)
            .flat_map(|l| &l.rooms)
    };
    let workstations: usize = rooms().map(|r| r.workstations).sum();
    let on: usize = rooms().map(|r| r.workstations - r.off_model.len()).sum();
    let models: BTreeSet<&str> = sectors
        .iter()
        .flat_map(|s| &s.homogeneity.models)
        .map(|m| m.model.as_str())
        .collect();
    RegionHomogeneity {
        lycees: fleets.len(),
        workstations,
        distinct_models: models.len(),
        score: percent(on, workstations),
        sectors,
    }
}

// ---------------------------------------------------------------------------------------------
// Renewal

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RenewalCounts {
    /// In-service workstations.
    pub in_service: usize,
    pub candidates: usize,
    pub haute: usize,
    pub moyenne: usize,
    pub basse: usize,
}

impl RenewalCounts {
    fn of(fleet: &Fleet, r: &RenewalReport) -> RenewalCounts {
        RenewalCounts {
            in_service: in_service(fleet),
            candidates: r.candidates.len(),
            haute: r.haute,
            moyenne: r.moyenne,
            basse: r.basse,
        }
    }

    pub fn add(&mut self, o: &RenewalCounts) {
        self.in_service += o.in_service;
        self.candidates += o.candidates;
        self.haute += o.haute;
        self.moyenne += o.moyenne;
        self.basse += o.basse;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LyceeRenewal {
    pub lycee: String,
    pub uai: String,
    pub counts: RenewalCounts,
    /// The lycée's candidates, as `renewal::report`.
    pub renewal: RenewalReport,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SectorRenewal {
    pub sector: String,
    pub counts: RenewalCounts,
    pub lycees: Vec<LyceeRenewal>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegionRenewal {
    pub as_of: NaiveDate,
    pub lycees: usize,
    pub counts: RenewalCounts,
    pub sectors: Vec<SectorRenewal>,
}

/// Every lycée's renewal candidates as of `as_of` (one rotation plan per lycée), counted per
/// lycée, per sector and for the region.
pub fn renewal(fleets: &[Fleet], as_of: NaiveDate) -> RegionRenewal {
    let groups = group(fleets);
    let lycees: Vec<LyceeRenewal> = fleets
        .iter()
        .map(|f| {
            let r = renewal::report(f, as_of);
            LyceeRenewal {
                lycee: f.lycee.clone(),
                uai: f.uai.clone(),
                counts: RenewalCounts::of(f, &r),
                renewal: r,
            }
        })
        .collect();
    let mut counts = RenewalCounts::default();
    let sectors = distribute(&groups, lycees)
        .into_iter()
        .map(|(sector, lycees)| {
            let mut c = RenewalCounts::default();
            for l in &lycees {
                c.add(&l.counts);
            }
            counts.add(&c);
            SectorRenewal {
                sector,
                counts: c,
                lycees,
            }
        })
        .collect();
    RegionRenewal {
        as_of,
        lycees: fleets.len(),
        counts,
        sectors,
    }
}

// ---------------------------------------------------------------------------------------------
// PRELP

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LyceePrelp {
    pub lycee: String,
    pub uai: String,
    pub total: usize,
    /// By form factor, as the lycée's request.
    pub totals: Vec<FormFactorTotal>,
    /// The lycée's request lines (the full request — scrap, rotation — is the lycée's own
    /// report).
    pub lines: Vec<PrelpLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SectorPrelp {
    pub sector: String,
    pub total: usize,
    pub totals: Vec<FormFactorTotal>,
    pub lycees: Vec<LyceePrelp>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegionPrelp {
    pub year: i32,
    pub prepared_on: NaiveDate,
    /// The date needs are assessed at (1 November of the year), as each request.
    pub assessed_at: NaiveDate,
    pub survey: String,
    pub delivery: String,
    pub lycees: usize,
    pub total: usize,
    pub totals: Vec<FormFactorTotal>,
    /// The form factors requested somewhere in the region (the columns of the tables).
    pub form_factors: Vec<FormFactor>,
    pub sectors: Vec<SectorPrelp>,
}

impl RegionPrelp {
    /// The request lines of every lycée of the region.
    pub fn line_count(&self) -> usize {
        self.sectors
            .iter()
            .flat_map(|s| &s.lycees)
            .map(|l| l.lines.len())
            .sum()
    }
}

/// Every lycée's PRELP request for `year`, in the fleets' order.
pub fn requests(fleets: &[Fleet], year: i32, today: NaiveDate) -> Vec<Prelp> {
    fleets
        .iter()
        .map(|f| super::prelp::request(f, year, today))
        .collect()
}

fn totals_of(per_ff: &BTreeMap<FormFactor, usize>) -> Vec<FormFactorTotal> {
    per_ff
        .iter()
        .map(|(&f, &q)| FormFactorTotal {
            form_factor: f,
            label: f.french().to_string(),
            quantity: q,
        })
        .collect()
}

/// The region's PRELP request from every lycée's ([`requests`], one per fleet in the same
/// order; a missing one counts as an empty request): totals by form factor per lycée, per
/// sector and for the region, and the request lines (copied; the requests are left whole for
/// the lycées' own documents).
pub fn prelp(fleets: &[Fleet], requests: &[Prelp], year: i32, today: NaiveDate) -> RegionPrelp {
    let groups = group(fleets);
    let lycees: Vec<LyceePrelp> = fleets
        .iter()
        .enumerate()
        .map(|(i, f)| match requests.get(i) {
            Some(p) => LyceePrelp {
                lycee: p.lycee.clone(),
                uai: p.uai.clone(),
                total: p.total,
                totals: p.totals.clone(),
                lines: p.lines.clone(),
            },
            None => LyceePrelp {
                lycee: f.lycee.clone(),
                uai: f.uai.clone(),
                total: 0,
                totals: Vec::new(),
                lines: Vec::new(),
            },
        })
        .collect();
    let mut region: BTreeMap<FormFactor, usize> = BTreeMap::new();
    let sectors: Vec<SectorPrelp> = distribute(&groups, lycees)
        .into_iter()
        .map(|(sector, lycees)| {
            let mut per_ff: BTreeMap<FormFactor, usize> = BTreeMap::new();
            for t in lycees.iter().flat_map(|l| &l.totals) {
                *per_ff.entry(t.form_factor).or_default() += t.quantity;
                *region.entry(t.form_factor).or_default() += t.quantity;
            }
            SectorPrelp {
                sector,
                total: per_ff.values().sum(),
                totals: totals_of(&per_ff),
                lycees,
            }
        })
        .collect();
    RegionPrelp {
        year,
        prepared_on: today,
        assessed_at: NaiveDate::from_ymd_opt(year, 11, 1).unwrap_or(today),
        survey: format!("février–mars {year}"),
        delivery: format!("octobre–novembre {year}"),
        lycees: fleets.len(),
        total: region.values().sum(),
        totals: totals_of(&region),
        form_factors: region.keys().copied().collect(),
        sectors,
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! A small region: five lycées in two sectors and one without a sector.
    use super::super::input::testkit::{date, fleet, machines, model, room};
    use super::*;
    use crate::domain::model::FormFactor::{Desktop, Laptop};

    /// Lycée `name` of `sector`: rooms with a rotation, ageing laptops, a mixed room.
    pub fn lycee(name: &str, uai: &str, sector: &str, extra: usize) -> Fleet {
        let models = vec![
            model("new", 2021, 9000, 16, Desktop),
            model("old", 2013, 2000, 4, Desktop),
            model("lap", 2022, 8000, 8, Laptop),
        ];
        let rooms = vec![
            room("cao", "new", 32, 1000),
            room("bur", "old", 8, 1000),
            room("mob", "lap", 4, 1000),
        ];
        let mut m = machines("cao", "new", 6 + extra, "2021-09-01");
        m.extend(machines("bur", "old", 6, "2013-09-01"));
        m.extend(machines("mob", "lap", 4 + extra, "2022-09-01"));
        // An off-model machine in mob, and a broken one in bur.
        m.last_mut().unwrap().model = "old".into();
        m[6 + extra].state = DeviceState::Broken;
        let mut f = fleet(models, rooms, m);
        f.lycee = name.into();
        f.uai = uai.into();
        f.sector = sector.into();
        f
    }

    /// Given out of order, to check the sorting.
    pub fn region() -> Vec<Fleet> {
        vec![
            lycee("Lycée Jean Bart", "0590002B", "Secteur Dunkerque", 2),
            lycee("Lycée Arago", "0590003C", "  ", 1),
            lycee("Lycée Condorcet", "0020001A", "Secteur Aisne", 0),
            lycee("Lycée Angellier", "0590001A", "Secteur Dunkerque", 3),
            lycee("Lycée Branly", "0020002B", "Secteur Aisne", 4),
        ]
    }

    pub fn today() -> NaiveDate {
        date("2025-02-10")
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{region, today};
    use super::*;

    fn names(fleets: &[Fleet], g: &SectorGroup) -> Vec<String> {
        g.members.iter().map(|&i| fleets[i].lycee.clone()).collect()
    }

    #[test]
    fn lycees_are_grouped_by_sector_sorted_and_the_sectorless_last() {
        let fleets = region();
        let g = group(&fleets);
        let sectors: Vec<&str> = g.iter().map(|s| s.sector.as_str()).collect();
        assert_eq!(
            sectors,
            vec!["Secteur Aisne", "Secteur Dunkerque", "(sans secteur)"]
        );
        assert_eq!(
            names(&fleets, &g[0]),
            vec!["Lycée Branly", "Lycée Condorcet"]
        );
        assert_eq!(
            names(&fleets, &g[1]),
            vec!["Lycée Angellier", "Lycée Jean Bart"]
        );
        assert_eq!(names(&fleets, &g[2]), vec!["Lycée Arago"]);
    }

    #[test]
    fn the_synthetic_region_has_sectors_of_three_lycees() {
        use super::super::synth::{RegionSize, lycee_sources};
        use crate::domain::workspace::Workspace;
        let size = RegionSize {
            lycees: 7,
            rooms_per_lycee: 2,
            devices_per_room: 4,
        };
        let fleets: Vec<Fleet> = (0..size.lycees)
            .map(|n| Fleet::from_workspace(&Workspace::parse(&lycee_sources(n, size, 1)).0))
            .collect();
        let g = group(&fleets);
        let got: Vec<(&str, usize)> = g
            .iter()
            .map(|s| (s.sector.as_str(), s.members.len()))
            .collect();
        assert_eq!(
            got,
            vec![("Secteur 00", 3), ("Secteur 01", 3), ("Secteur 02", 1)]
        );
        let r = renewal(&fleets, today());
        assert_eq!(
            r.counts.candidates,
            fleets
                .iter()
                .map(|f| renewal::report(f, today()).candidates.len())
                .sum::<usize>()
        );
    }

    #[test]
    fn homogeneity_per_sector_is_the_sector_report_of_its_lycees() {
        let fleets = region();
        let h = homogeneity(&fleets);
        assert_eq!(h.lycees, 5);
        assert_eq!(h.sectors.len(), 3);
        for (g, s) in group(&fleets).iter().zip(&h.sectors) {
            let members: Vec<Fleet> = g.members.iter().map(|&i| fleets[i].clone()).collect();
            assert_eq!(s.sector, g.sector);
            assert_eq!(s.homogeneity, homogeneity::sector(&members));
        }
        let all = homogeneity::sector(&fleets);
        assert_eq!(h.workstations, all.workstations);
        assert_eq!(h.score, all.score);
        assert_eq!(h.distinct_models, all.distinct_models);
        assert_eq!(
            h.workstations,
            h.sectors
                .iter()
                .map(|s| s.homogeneity.workstations)
                .sum::<usize>()
        );
        assert!(h.score < 100.0);
    }

    #[test]
    fn renewal_counts_add_up_per_lycee_sector_and_region() {
        let fleets = region();
        let r = renewal(&fleets, today());
        let mut total = RenewalCounts::default();
        for s in &r.sectors {
            let mut c = RenewalCounts::default();
            for l in &s.lycees {
                let f = fleets.iter().find(|f| f.uai == l.uai).unwrap();
                assert_eq!(l.renewal, renewal::report(f, today()));
                assert_eq!(l.counts.candidates, l.renewal.candidates.len());
                assert_eq!(
                    l.counts.candidates,
                    l.counts.haute + l.counts.moyenne + l.counts.basse
                );
                assert_eq!(l.counts.in_service, in_service(f));
                c.add(&l.counts);
            }
            assert_eq!(s.counts, c);
            total.add(&c);
        }
        assert_eq!(r.counts, total);
        assert!(r.counts.candidates > 0 && r.counts.haute > 0);
        assert_eq!(r.sectors[2].sector, NO_SECTOR);
        assert_eq!(r.sectors[2].lycees[0].lycee, "Lycée Arago");
    }

    #[test]
    fn prelp_totals_add_up_per_form_factor() {
        let fleets = region();
        let req = requests(&fleets, 2025, today());
        let p = prelp(&fleets, &req, 2025, today());
        assert_eq!(p.total, req.iter().map(|r| r.total).sum::<usize>());
        assert!(p.total > 0);
        assert_eq!(
            p.form_factors,
            vec![FormFactor::Desktop, FormFactor::Laptop]
        );
        for t in &p.totals {
            let sum: usize = req
                .iter()
                .flat_map(|r| &r.totals)
                .filter(|x| x.form_factor == t.form_factor)
                .map(|x| x.quantity)
                .sum();
            assert_eq!(t.quantity, sum, "{:?}", t.form_factor);
        }
        assert_eq!(
            p.line_count(),
            req.iter().map(|r| r.lines.len()).sum::<usize>()
        );
        for s in &p.sectors {
            assert_eq!(s.total, s.lycees.iter().map(|l| l.total).sum::<usize>());
            assert_eq!(s.total, s.totals.iter().map(|t| t.quantity).sum::<usize>());
        }
        assert_eq!(p.sectors[0].lycees[0].lycee, "Lycée Branly");
        assert_eq!(
            p.assessed_at,
            super::super::input::testkit::date("2025-11-01")
        );
    }
}
