//! The region's fleet in PostgreSQL: each lycée's inventory (devices.csv's rows), models and
//! rooms as its workspace last published them, keyed by its UAI (`fleet_lycees`,
//! `fleet_devices`; `src/state/pg/migrations/0003_fleet.sql`). [`publish`] replaces one
//! lycée's rows in one transaction; [`load_region`] reads every lycée (or a sector's) back as
//! the planners' [`Fleet`]s for `parc report … --region`.

use std::collections::HashMap;

use chrono::NaiveDate;
use tokio_postgres::types::ToSql;

use crate::domain::device::{Device, DeviceState, Funding};
use crate::domain::finding::Location;
use crate::domain::fleet::{Fleet, Machine, RoomPlan};
use crate::domain::model::{DiskKind, FormFactor, Model, Origin};
use crate::domain::recipe::Requirements;
use crate::domain::toml_read::Sp;
use crate::domain::workspace::Workspace;
use crate::state::pg::store::{Store, StoreError};

/// What one lycée publishes: its name, sector, models, rooms and inventory.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub sector: String,
    pub models: Vec<Model>,
    pub rooms: Vec<RoomPlan>,
    pub devices: Vec<Device>,
}

impl Snapshot {
    /// A parsed workspace's fleet (its recipes' rooms and the rooms only devices.csv names).
    pub fn of(ws: &Workspace) -> Snapshot {
        let fleet = Fleet::from_workspace(ws);
        Snapshot {
            name: fleet.lycee,
            sector: fleet.sector,
            models: fleet.models,
            rooms: fleet.rooms,
            devices: ws.devices.clone(),
        }
    }
}

/// What a publication wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub devices: usize,
    pub rooms: usize,
    pub models: usize,
    /// The devices the lycée had in the database before (0 the first time).
    pub replaced: usize,
}

/// A model as stored (JSON in `fleet_lycees.models`).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredModel {
    id: String,
    manufacturer: String,
    name: String,
    form_factor: FormFactor,
    year: u32,
    cpu: String,
    cpu_score: u32,
    ram_gb: u32,
    disk_kind: DiskKind,
    disk_gb: u32,
    gpu: String,
    gpu_dedicated: bool,
    vram_gb: u32,
    warranty_years: u32,
    origin: Origin,
}

/// A room as stored (JSON in `fleet_lycees.rooms`).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRoom {
    id: String,
    name: String,
    recipe_model: Option<String>,
    needs: Option<Requirements>,
}

impl From<&Model> for StoredModel {
    fn from(m: &Model) -> Self {
        StoredModel {
            id: m.id.value.clone(),
            manufacturer: m.manufacturer.clone(),
            name: m.name.clone(),
            form_factor: m.form_factor,
            year: m.year,
            cpu: m.cpu.clone(),
            cpu_score: m.cpu_score,
            ram_gb: m.ram_gb,
            disk_kind: m.disk_kind,
            disk_gb: m.disk_gb,
            gpu: m.gpu.clone(),
            gpu_dedicated: m.gpu_dedicated,
            vram_gb: m.vram_gb,
            warranty_years: m.warranty_years,
            origin: m.origin,
        }
    }
}

impl StoredModel {
    fn model(self, lycee: &str) -> Model {
        Model {
            id: Sp {
                value: self.id,
                at: Location {
                    file: format!("models of {lycee} (database)"),
                    line: 0,
                    col: 0,
                },
            },
            manufacturer: self.manufacturer,
            name: self.name,
            form_factor: self.form_factor,
            year: self.year,
            cpu: self.cpu,
            cpu_score: self.cpu_score,
            ram_gb: self.ram_gb,
            disk_kind: self.disk_kind,
            disk_gb: self.disk_gb,
            gpu: self.gpu,
            gpu_dedicated: self.gpu_dedicated,
            vram_gb: self.vram_gb,
            warranty_years: self.warranty_years,
            origin: self.origin,
        }
    }
}

impl From<&RoomPlan> for StoredRoom {
    fn from(r: &RoomPlan) -> Self {
        StoredRoom {
            id: r.id.clone(),
            name: r.name.clone(),
            recipe_model: r.recipe_model.clone(),
            needs: r.requirements.clone(),
        }
    }
}

impl From<StoredRoom> for RoomPlan {
    fn from(r: StoredRoom) -> Self {
        RoomPlan {
            id: r.id,
            name: r.name,
            recipe_model: r.recipe_model,
            requirements: r.needs,
        }
    }
}

/// Who publishes: recorded beside the lycée's rows.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub at: String,
    pub by: String,
}

/// Replaces the store's lycée's fleet with `snap`, in one transaction.
pub fn publish(store: &Store, snap: &Snapshot, who: &Publisher) -> Result<Published, StoreError> {
    let models = serde_json::to_string(
        &snap
            .models
            .iter()
            .map(StoredModel::from)
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let rooms = serde_json::to_string(&snap.rooms.iter().map(StoredRoom::from).collect::<Vec<_>>())
        .unwrap_or_default();
    let columns = DeviceColumns::of(&snap.devices);
    let (name, sector) = (snap.name.clone(), snap.sector.clone());
    let who = who.clone();
    let counts = (snap.devices.len(), snap.rooms.len(), snap.models.len());
    let replaced = store.call(async move |client, lycee| {
        let tx = client.transaction().await?;
        // Two publications of one lycée at once: the second waits for the first.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('parc fleet ' || $1))",
            &[&lycee],
        )
        .await?;
        let replaced = tx
            .execute("DELETE FROM fleet_devices WHERE lycee = $1", &[&lycee])
            .await?;
        tx.execute(
            "INSERT INTO fleet_lycees
                 (lycee, name, sector, models, rooms, published_at, published_by, parc_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (lycee) DO UPDATE SET
                 name = EXCLUDED.name, sector = EXCLUDED.sector, models = EXCLUDED.models,
                 rooms = EXCLUDED.rooms, published_at = EXCLUDED.published_at,
                 published_by = EXCLUDED.published_by, parc_version = EXCLUDED.parc_version",
            &[
                &lycee,
                &name,
                &sector,
                &models,
                &rooms,
                &who.at,
                &who.by,
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await?;
        columns.insert(&tx, lycee).await?;
        tx.commit().await?;
        Ok(replaced)
    })?;
    Ok(Published {
        devices: counts.0,
        rooms: counts.1,
        models: counts.2,
        replaced: replaced as usize,
    })
}

/// The devices as one array per column: one INSERT … SELECT FROM unnest(…) whatever their
/// number.
struct DeviceColumns {
    ord: Vec<i32>,
    room: Vec<Option<String>>,
    hostname: Vec<String>,
    mac: Vec<String>,
    serial: Vec<String>,
    model: Vec<String>,
    purchase_date: Vec<NaiveDate>,
    warranty_end: Vec<Option<NaiveDate>>,
    funding: Vec<&'static str>,
    state: Vec<&'static str>,
    ip: Vec<Option<String>>,
    notes: Vec<String>,
}

impl DeviceColumns {
    fn of(devices: &[Device]) -> DeviceColumns {
        DeviceColumns {
            ord: (0..devices.len() as i32).collect(),
            room: devices
                .iter()
                .map(|d| d.room.as_ref().map(|r| r.value.clone()))
                .collect(),
            hostname: devices.iter().map(|d| d.hostname.value.clone()).collect(),
            mac: devices.iter().map(|d| d.mac.value.clone()).collect(),
            serial: devices.iter().map(|d| d.serial.value.clone()).collect(),
            model: devices.iter().map(|d| d.model.value.clone()).collect(),
            purchase_date: devices.iter().map(|d| d.purchase_date.value).collect(),
            warranty_end: devices
                .iter()
                .map(|d| d.warranty_end.as_ref().map(|w| w.value))
                .collect(),
            funding: devices.iter().map(|d| d.funding.as_str()).collect(),
            state: devices.iter().map(|d| d.state.as_str()).collect(),
            ip: devices.iter().map(|d| d.ip.clone()).collect(),
            notes: devices.iter().map(|d| d.notes.clone()).collect(),
        }
    }

    async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        lycee: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        let params: [&(dyn ToSql + Sync); 13] = [
            &lycee,
            &self.ord,
            &self.room,
            &self.hostname,
            &self.mac,
            &self.serial,
            &self.model,
            &self.purchase_date,
            &self.warranty_end,
            &self.funding,
            &self.state,
            &self.ip,
            &self.notes,
        ];
        tx.execute(
            "INSERT INTO fleet_devices
                 (lycee, ord, room, hostname, mac, serial, model, purchase_date, warranty_end,
                  funding, state, ip, notes)
             SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::date[], $9::date[], $10::text[], $11::text[],
                 $12::text[], $13::text[])",
            &params,
        )
        .await
    }
}

/// One lycée of the region as the database holds it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub uai: String,
    pub name: String,
    pub sector: String,
    pub devices: usize,
    pub published_at: String,
    pub published_by: String,
}

/// Every lycée the database holds (or one sector's), by sector then name.
pub fn list(store: &Store, sector: Option<&str>) -> Result<Vec<Listed>, StoreError> {
    let sector = sector.map(str::to_owned);
    store.call(async move |client, _| {
        let rows = client
            .query(
                "SELECT l.lycee, l.name, l.sector, l.published_at, l.published_by,
                        (SELECT count(*) FROM fleet_devices d WHERE d.lycee = l.lycee)
                 FROM fleet_lycees l
                 WHERE $1::text IS NULL OR l.sector = $1
                 ORDER BY l.sector, l.name, l.lycee",
                &[&sector],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Listed {
                uai: r.get(0),
                name: r.get(1),
                sector: r.get(2),
                published_at: r.get(3),
                published_by: r.get(4),
                devices: r.get::<_, i64>(5) as usize,
            })
            .collect())
    })
}

/// Why the region could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database's fleet of lycée {lycee} cannot be read: {why}")]
    Damaged { lycee: String, why: String },
}

/// Every lycée's fleet (or one sector's), by sector then name, each as [`Fleet::new`]
/// assembles it (the same as `Fleet::from_workspace` on the published workspace).
pub fn load_region(store: &Store, sector: Option<&str>) -> Result<Vec<Fleet>, LoadError> {
    let sector = sector.map(str::to_owned);
    let (lycees, devices) = store.call(async move |client, _| {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let lycees = tx
            .query(
                "SELECT lycee, name, sector, models, rooms FROM fleet_lycees
                 WHERE $1::text IS NULL OR sector = $1
                 ORDER BY sector, name, lycee",
                &[&sector],
            )
            .await?;
        let devices = tx
            .query(
                "SELECT d.lycee, d.hostname, d.serial, d.room, d.model, d.purchase_date,
                        d.warranty_end, d.funding, d.state
                 FROM fleet_devices d JOIN fleet_lycees l USING (lycee)
                 WHERE $1::text IS NULL OR l.sector = $1
                 ORDER BY d.lycee, d.ord",
                &[&sector],
            )
            .await?;
        tx.commit().await?;
        Ok((lycees, devices))
    })?;
    let mut machines: HashMap<String, Vec<Machine>> = HashMap::with_capacity(lycees.len());
    let mut current: Option<(String, Vec<Machine>)> = None;
    for r in &devices {
        let lycee: &str = r.get(0);
        if current.as_ref().is_none_or(|(l, _)| l != lycee) {
            if let Some((l, m)) = current.take() {
                machines.insert(l, m);
            }
            current = Some((lycee.to_owned(), Vec::new()));
        }
        let damaged = |why: String| LoadError::Damaged {
            lycee: lycee.to_owned(),
            why,
        };
        let funding: &str = r.get(7);
        let state: &str = r.get(8);
        let machine = Machine {
            hostname: r.get(1),
            serial: r.get(2),
            room: r.get(3),
            model: r.get(4),
            purchase_date: r.get(5),
            warranty_end: r.get(6),
            funding: funding_of(funding)
                .ok_or_else(|| damaged(format!("funding \"{funding}\"")))?,
            state: state_of(state).ok_or_else(|| damaged(format!("state \"{state}\"")))?,
        };
        if let Some((_, m)) = current.as_mut() {
            m.push(machine);
        }
    }
    if let Some((l, m)) = current.take() {
        machines.insert(l, m);
    }
    drop(devices);
    lycees
        .iter()
        .map(|r| {
            let uai: String = r.get(0);
            let damaged = |what: &str, e: serde_json::Error| LoadError::Damaged {
                lycee: uai.clone(),
                why: format!("its {what}: {e}"),
            };
            let models: Vec<StoredModel> =
                serde_json::from_str(r.get(3)).map_err(|e| damaged("models", e))?;
            let rooms: Vec<StoredRoom> =
                serde_json::from_str(r.get(4)).map_err(|e| damaged("rooms", e))?;
            let models = models.into_iter().map(|m| m.model(&uai)).collect();
            let rooms = rooms.into_iter().map(RoomPlan::from).collect();
            let machines = machines.remove(&uai).unwrap_or_default();
            Ok(Fleet::new(r.get(1), uai, r.get(2), models, rooms, machines))
        })
        .collect()
}

/// The stored spelling (`Funding::as_str`), else any the CSV accepts.
fn funding_of(s: &str) -> Option<Funding> {
    match s {
        "region" => Some(Funding::Region),
        "fonds-propres" => Some(Funding::FondsPropres),
        _ => crate::domain::device::parse_funding(s),
    }
}

/// The stored spelling (`DeviceState::as_str`), else any the CSV accepts.
fn state_of(s: &str) -> Option<DeviceState> {
    match s {
        "in-service" => Some(DeviceState::InService),
        "spare" => Some(DeviceState::Spare),
        "broken" => Some(DeviceState::Broken),
        "scrapped" => Some(DeviceState::Scrapped),
        _ => crate::domain::device::parse_state(s),
    }
}
