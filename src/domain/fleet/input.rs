//! The fleet as the planners see it: a lycée's models, rooms (with their requirements) and
//! machines, detached from file positions so that large synthetic regions stay cheap.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use crate::domain::device::{DeviceState, Funding};
use crate::domain::model::{FormFactor, Model};
use crate::domain::recipe::Requirements;
use crate::domain::workspace::Workspace;

/// One room of the lycée.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPlan {
    pub id: String,
    pub name: String,
    /// The model the recipe assigns; `None` for a room seen only in the inventory.
    pub recipe_model: Option<String>,
    /// `None` when the room has no recipe: its needs are unknown, rotation leaves it alone.
    pub requirements: Option<Requirements>,
}

/// One workstation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hostname: String,
    pub serial: String,
    pub room: Option<String>,
    pub model: String,
    pub purchase_date: NaiveDate,
    pub warranty_end: Option<NaiveDate>,
    pub funding: Funding,
    pub state: DeviceState,
}

/// A lycée's fleet.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub lycee: String,
    pub uai: String,
    pub sector: String,
    pub models: Vec<Model>,
    /// Sorted by id.
    pub rooms: Vec<RoomPlan>,
    pub machines: Vec<Machine>,
}

/// A room with its in-service machines (indices into `Fleet::machines`, by hostname).
#[derive(Debug, Clone)]
pub struct RoomView<'a> {
    pub plan: &'a RoomPlan,
    pub in_service: Vec<usize>,
}

impl Fleet {
    /// Builds the planning view of a parsed workspace. Rooms seen only in `devices.csv` are
    /// kept, without requirements.
    pub fn from_workspace(ws: &Workspace) -> Fleet {
        let (lycee, uai, sector) = match &ws.site {
            Some(s) => (
                s.name.value.clone(),
                s.uai.value.clone(),
                s.sector.value.clone(),
            ),
            None => (
                String::from("(lycée sans site.toml)"),
                String::new(),
                String::new(),
            ),
        };
        let machines: Vec<Machine> = ws
            .devices
            .iter()
            .map(|d| Machine {
                hostname: d.hostname.value.clone(),
                serial: d.serial.value.clone(),
                room: d.room.as_ref().map(|r| r.value.clone()),
                model: d.model.value.clone(),
                purchase_date: d.purchase_date.value,
                warranty_end: d.warranty_end.as_ref().map(|w| w.value),
                funding: d.funding,
                state: d.state,
            })
            .collect();
        let rooms = ws
            .rooms
            .iter()
            .map(|r| RoomPlan {
                id: r.id.value.clone(),
                name: r.name.clone(),
                recipe_model: Some(r.model.value.clone()),
                requirements: Some(r.requirements.clone()),
            })
            .collect();
        Fleet::new(lycee, uai, sector, ws.models.clone(), rooms, machines)
    }

    /// Assembles a fleet; adds the rooms that only the inventory names and sorts rooms by id.
    pub fn new(
        lycee: String,
        uai: String,
        sector: String,
        models: Vec<Model>,
        mut rooms: Vec<RoomPlan>,
        machines: Vec<Machine>,
    ) -> Fleet {
        let mut known: std::collections::HashSet<String> =
            rooms.iter().map(|r| r.id.clone()).collect();
        for m in &machines {
            if let Some(r) = &m.room {
                if known.insert(r.clone()) {
                    rooms.push(RoomPlan {
                        id: r.clone(),
                        name: r.clone(),
                        recipe_model: None,
                        requirements: None,
                    });
                }
            }
        }
        rooms.sort_by(|a, b| a.id.cmp(&b.id));
        Fleet {
            lycee,
            uai,
            sector,
            models,
            rooms,
            machines,
        }
    }

    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id.value == id)
    }

    /// The models by id, for the planners that look one up per machine: the same answers as
    /// [`Fleet::model`] (the first model of an id wins).
    pub fn model_index(&self) -> HashMap<&str, &Model> {
        let mut index = HashMap::with_capacity(self.models.len());
        for m in &self.models {
            index.entry(m.id.value.as_str()).or_insert(m);
        }
        index
    }

    /// Every room (by id) with its in-service machines (by hostname).
    pub fn room_views(&self) -> Vec<RoomView<'_>> {
        let mut by_room: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, m) in self.machines.iter().enumerate() {
            if m.state == DeviceState::InService {
                if let Some(r) = &m.room {
                    by_room.entry(r.as_str()).or_default().push(i);
                }
            }
        }
        self.rooms
            .iter()
            .map(|plan| {
                let mut in_service = by_room.remove(plan.id.as_str()).unwrap_or_default();
                let host = |i: &usize| &self.machines[*i].hostname;
                // Inventories usually list a room's machines in order: check before sorting.
                if !in_service.is_sorted_by(|a, b| host(a) <= host(b)) {
                    in_service.sort_by(|a, b| host(a).cmp(host(b)));
                }
                RoomView { plan, in_service }
            })
            .collect()
    }

    /// The form factor of a machine's model (desktop when the model is unknown).
    pub fn form_factor(&self, m: &Machine) -> FormFactor {
        form_factor_of(self.model(&m.model))
    }

    /// The end of a machine's warranty: its own date, else purchase + the model's warranty
    /// (5 years desktops, 3 years laptops unless the model says otherwise).
    pub fn warranty_end(&self, m: &Machine) -> NaiveDate {
        warranty_end_of(m, self.model(&m.model))
    }
}

/// [`Fleet::form_factor`] given the machine's model, already looked up.
pub fn form_factor_of(model: Option<&Model>) -> FormFactor {
    model.map_or(FormFactor::Desktop, |x| x.form_factor)
}

/// [`Fleet::warranty_end`] given the machine's model, already looked up.
pub fn warranty_end_of(m: &Machine, model: Option<&Model>) -> NaiveDate {
    if let Some(w) = m.warranty_end {
        return w;
    }
    let years = model.map_or(FormFactor::Desktop.default_warranty_years(), |x| {
        x.warranty_years
    });
    add_years(m.purchase_date, years)
}

/// `date` plus whole years (29 February becomes 28 February).
pub fn add_years(date: NaiveDate, years: u32) -> NaiveDate {
    let y = date.year() + years as i32;
    NaiveDate::from_ymd_opt(y, date.month(), date.day())
        .or_else(|| NaiveDate::from_ymd_opt(y, date.month(), 28))
        .unwrap_or(date)
}

/// Whole years between two dates (0 when `to` is before `from`).
pub fn whole_years(from: NaiveDate, to: NaiveDate) -> u32 {
    if to < from {
        return 0;
    }
    let mut y = to.year() - from.year();
    if (to.month(), to.day()) < (from.month(), from.day()) {
        y -= 1;
    }
    y.max(0) as u32
}

/// `01/09/2024`, as French documents write dates.
pub fn fr_date(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    push_fr_date(&mut s, d);
    s
}

/// Appends `01/09/2024` to `out`: what `d.format("%d/%m/%Y")` writes, without parsing the
/// format string for each of the region's hundred thousand dates.
pub fn push_fr_date(out: &mut String, d: NaiveDate) {
    let y = d.year();
    if !(0..=9999).contains(&y) {
        // chrono writes a sign and at least four digits out of this range.
        out.push_str(&d.format("%d/%m/%Y").to_string());
        return;
    }
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    for (n, width) in [(d.day(), 2), (d.month(), 2), (y as u32, 4)] {
        if width == 4 {
            out.push(digit(n / 1000));
            out.push(digit(n / 100));
        }
        out.push(digit(n / 10));
        out.push(digit(n));
        if width == 2 {
            out.push('/');
        }
    }
}

/// Serialises a date as chrono does (`"2024-09-01"`), from the digits rather than through
/// the formatting machinery: the reports' JSON holds a few hundred thousand dates.
pub fn serialize_date<S: serde::Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    let y = d.year();
    if !(0..=9999).contains(&y) {
        return serde::Serialize::serialize(d, s);
    }
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let (y, m, day) = (y as u32, d.month(), d.day());
    let text = [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(day / 10),
        digit(day),
    ];
    s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_serialise_as_chrono_serialises_them() {
        #[derive(serde::Serialize)]
        struct Fast(#[serde(serialize_with = "serialize_date")] NaiveDate);
        let mut d = NaiveDate::from_ymd_opt(1999, 12, 25).unwrap();
        let mut days: Vec<NaiveDate> = Vec::new();
        while d.year() < 2031 {
            days.push(d);
            d = d.succ_opt().unwrap();
        }
        for (y, m, day) in [
            (0, 1, 1),
            (999, 2, 28),
            (9999, 12, 31),
            (-1, 6, 1),
            (10000, 6, 1),
        ] {
            days.push(NaiveDate::from_ymd_opt(y, m, day).unwrap());
        }
        for d in days {
            assert_eq!(
                serde_json::to_string(&Fast(d)).unwrap(),
                serde_json::to_string(&d).unwrap()
            );
        }
    }

    #[test]
    fn fr_date_writes_what_chrono_writes() {
        let mut d = NaiveDate::from_ymd_opt(1999, 12, 25).unwrap();
        while d.year() < 2031 {
            assert_eq!(fr_date(d), d.format("%d/%m/%Y").to_string());
            d = d.succ_opt().unwrap();
        }
        for (y, m, day) in [
            (0, 1, 1),
            (9, 3, 7),
            (99, 10, 10),
            (999, 2, 28),
            (9999, 12, 31),
        ] {
            let d = NaiveDate::from_ymd_opt(y, m, day).unwrap();
            assert_eq!(fr_date(d), d.format("%d/%m/%Y").to_string());
        }
        for y in [-1, -44, 10000, 262_000] {
            let d = NaiveDate::from_ymd_opt(y, 6, 1).unwrap();
            assert_eq!(fr_date(d), d.format("%d/%m/%Y").to_string());
        }
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Small hand-made fleets for the planners' unit tests.
    use super::*;
    use crate::domain::finding::Location;
    use crate::domain::model::{DiskKind, Origin};
    use crate::domain::toml_read::Sp;

    pub fn model(id: &str, year: u32, cpu: u32, ram: u32, ff: FormFactor) -> Model {
        Model {
            id: Sp {
                value: id.to_string(),
                at: Location {
                    file: "models.toml".into(),
                    line: 1,
                    col: 1,
                },
            },
            manufacturer: "Dell".into(),
            name: id.to_uppercase(),
            form_factor: ff,
            year,
            cpu: "cpu".into(),
            cpu_score: cpu,
            ram_gb: ram,
            disk_kind: DiskKind::Ssd,
            disk_gb: 256,
            gpu: "igpu".into(),
            gpu_dedicated: false,
            vram_gb: 0,
            warranty_years: ff.default_warranty_years(),
            origin: Origin::New,
        }
    }

    pub fn room(id: &str, model: &str, ram: u32, cpu: u32) -> RoomPlan {
        RoomPlan {
            id: id.into(),
            name: format!("Salle {id}"),
            recipe_model: Some(model.into()),
            requirements: Some(Requirements {
                min_ram_gb: ram,
                min_cpu_score: cpu,
                ..Requirements::default()
            }),
        }
    }

    pub fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// `n` in-service machines `<room>-pcNN` of a model bought on `bought`.
    pub fn machines(room: &str, model: &str, n: usize, bought: &str) -> Vec<Machine> {
        (1..=n)
            .map(|i| Machine {
                hostname: format!("{room}-pc{i:02}"),
                serial: format!("SN-{room}-{i}"),
                room: Some(room.into()),
                model: model.into(),
                purchase_date: date(bought),
                warranty_end: None,
                funding: Funding::Region,
                state: DeviceState::InService,
            })
            .collect()
    }

    pub fn fleet(models: Vec<Model>, rooms: Vec<RoomPlan>, machines: Vec<Machine>) -> Fleet {
        Fleet::new(
            "Lycée Test".into(),
            "0840001A".into(),
            "Vaucluse".into(),
            models,
            rooms,
            machines,
        )
    }
}
