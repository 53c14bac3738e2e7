//! The figures behind the reports' charts: age pyramid, model share per room, warranty ends.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use super::homogeneity::ModelCount;
use super::input::{Fleet, form_factor_of, warranty_end_of, whole_years};
use crate::domain::device::DeviceState;
use crate::domain::model::FormFactor;

/// Ages from 0 to this; older machines count in the last bucket.
pub const MAX_AGE_BUCKET: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgeBucket {
    /// Whole years since purchase; the last bucket holds this age and older.
    pub age: u32,
    pub desktops: usize,
    pub laptops: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WarrantyYear {
    pub year: i32,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoomShare {
    pub lycee: String,
    pub room: String,
    pub models: Vec<ModelCount>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Overview {
    pub as_of: NaiveDate,
    pub machines: usize,
    pub age_pyramid: Vec<AgeBucket>,
    pub warranty_timeline: Vec<WarrantyYear>,
    pub room_shares: Vec<RoomShare>,
}

/// The chart figures of several lycées (machines not scrapped), as of a date.
pub fn overview(fleets: &[Fleet], as_of: NaiveDate) -> Overview {
    let mut ages = vec![(0usize, 0usize); MAX_AGE_BUCKET as usize + 1];
    let mut warranty: BTreeMap<i32, usize> = BTreeMap::new();
    let mut room_shares = Vec::new();
    let mut machines = 0;
    for f in fleets {
        let models = f.model_index();
        for m in f
            .machines
            .iter()
            .filter(|m| m.state != DeviceState::Scrapped)
        {
            machines += 1;
            let age = whole_years(m.purchase_date, as_of).min(MAX_AGE_BUCKET) as usize;
            let model = models.get(m.model.as_str()).copied();
            match form_factor_of(model) {
                FormFactor::Laptop => ages[age].1 += 1,
                _ => ages[age].0 += 1,
            }
            *warranty
                .entry(warranty_end_of(m, model).year())
                .or_default() += 1;
        }
        for v in f.room_views() {
            if let Some(r) = super::homogeneity::room(f, &v) {
                room_shares.push(RoomShare {
                    lycee: f.lycee.clone(),
                    room: r.room,
                    models: r.models,
                });
            }
        }
    }
    Overview {
        as_of,
        machines,
        age_pyramid: ages
            .into_iter()
            .enumerate()
            .map(|(a, (d, l))| AgeBucket {
                age: a as u32,
                desktops: d,
                laptops: l,
            })
            .collect(),
        warranty_timeline: warranty
            .into_iter()
            .map(|(year, count)| WarrantyYear { year, count })
            .collect(),
        room_shares,
    }
}

#[cfg(test)]
mod tests {
    use super::super::input::testkit::*;
    use super::*;
    use crate::domain::model::FormFactor::{Desktop, Laptop};

    #[test]
    fn buckets_by_age_and_warranty_year() {
        let models = vec![
            model("d", 2015, 1, 1, Desktop),
            model("l", 2022, 1, 1, Laptop),
        ];
        let mut m = machines("a", "d", 3, "2010-01-01");
        m.extend(machines("b", "l", 2, "2023-06-01"));
        m[0].state = DeviceState::Scrapped;
        let o = overview(&[fleet(models, vec![], m)], date("2025-03-01"));
        assert_eq!(o.machines, 4);
        assert_eq!(
            o.age_pyramid[10],
            AgeBucket {
                age: 10,
                desktops: 2,
                laptops: 0
            }
        );
        assert_eq!(
            o.age_pyramid[1],
            AgeBucket {
                age: 1,
                desktops: 0,
                laptops: 2
            }
        );
        assert_eq!(
            o.warranty_timeline,
            vec![
                WarrantyYear {
                    year: 2015,
                    count: 2
                },
                WarrantyYear {
                    year: 2026,
                    count: 2
                }
            ]
        );
        assert_eq!(o.room_shares.len(), 2);
    }
}
