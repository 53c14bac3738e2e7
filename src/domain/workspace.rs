//! A whole workspace in memory: the site, its models, its inventory and its room recipes,
//! parsed from their texts. The disk side (`crate::workspace`) only reads the files.

use super::device::{self, Device, DeviceState};
use super::finding::{Finding, Location, Source};
use super::model::{self, Model};
use super::recipe::{self, Recipe};
use super::site::{self, Site};

/// The texts of a workspace's files. `None` means the file does not exist.
#[derive(Debug, Default)]
pub struct Sources {
    pub site: Option<Source>,
    pub models: Option<Source>,
    pub devices: Option<Source>,
    /// `rooms/*.toml`, in file-name order.
    pub rooms: Vec<Source>,
    /// Files that exist but could not be read as text (already reported).
    pub unreadable: Vec<String>,
}

/// A parsed workspace. Parts that were too broken to read are missing; findings say why.
#[derive(Debug, Default)]
pub struct Workspace {
    pub site: Option<Site>,
    pub models: Vec<Model>,
    pub devices: Vec<Device>,
    pub rooms: Vec<Recipe>,
    /// Room ids whose recipe file exists but is too broken to use (`rooms/<id>.toml`).
    pub broken_rooms: Vec<String>,
}

impl Workspace {
    /// Parses every file, collecting every finding.
    pub fn parse(sources: &Sources) -> (Workspace, Vec<Finding>) {
        let mut findings = Vec::new();
        let mut ws = Workspace::default();
        let missing = |name: &str, what: &str| {
            if sources.unreadable.iter().any(|u| u == name) {
                return None;
            }
            Some(
                Finding::error(
                    Location {
                        file: name.to_string(),
                        line: 0,
                        col: 0,
                    },
                    "missing-file",
                    format!("{name} is missing"),
                )
                .hint(format!(
                    "every workspace has {name}: {what} (see docs/recipes.md)"
                )),
            )
        };
        match &sources.site {
            Some(src) => {
                let (s, f) = site::parse(src);
                ws.site = s;
                findings.extend(f);
            }
            None => findings.extend(missing("site.toml", "the lycée, its domain and endpoint")),
        }
        match &sources.models {
            Some(src) => {
                let (m, f) = model::parse(src);
                ws.models = m;
                findings.extend(f);
            }
            None => findings.extend(missing("models.toml", "the hardware models")),
        }
        match &sources.devices {
            Some(src) => {
                let (d, f) = device::parse(src);
                ws.devices = d;
                findings.extend(f);
            }
            None => findings.extend(missing("devices.csv", "the inventory")),
        }
        for src in &sources.rooms {
            let (r, f) = recipe::parse(src);
            findings.extend(f);
            match r {
                Some(r) => ws.rooms.push(r),
                None => ws.broken_rooms.push(room_id_of_file(&src.name)),
            }
        }
        (ws, findings)
    }

    /// Whether a room has a recipe file, usable or not.
    pub fn has_recipe_file(&self, id: &str) -> bool {
        self.room(id).is_some()
            || self.broken_rooms.iter().any(|b| b == id)
            || self.rooms.iter().any(|r| room_id_of_file(&r.file) == id)
    }

    pub fn room(&self, id: &str) -> Option<&Recipe> {
        self.rooms.iter().find(|r| r.id.value == id)
    }

    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id.value == id)
    }

    /// The devices of a room (any state).
    pub fn devices_in<'a>(&'a self, room: &'a str) -> impl Iterator<Item = &'a Device> + 'a {
        self.devices
            .iter()
            .filter(move |d| d.room.as_ref().is_some_and(|r| r.value == room))
    }

    /// The in-service workstations of a room, in hostname order.
    pub fn workstations<'a>(&'a self, room: &str) -> Vec<&'a Device> {
        let mut v: Vec<&Device> = self
            .devices
            .iter()
            .filter(|d| {
                d.state == DeviceState::InService
                    && d.room.as_ref().is_some_and(|r| r.value == room)
            })
            .collect();
        v.sort_by(|a, b| a.hostname.value.cmp(&b.hostname.value));
        v
    }

    /// The room's master: the recipe's `master`, else its first in-service workstation.
    pub fn master_of(&self, room: &Recipe) -> Option<&Device> {
        let ws = self.workstations(&room.id.value);
        match &room.master {
            Some(m) => self
                .devices
                .iter()
                .find(|d| d.hostname.value == m.value.to_ascii_lowercase()),
            None => ws.first().copied(),
        }
    }
}

/// `rooms/b204.toml` → `b204`.
pub fn room_id_of_file(name: &str) -> String {
    name.rsplit('/')
        .next()
        .unwrap_or(name)
        .trim_end_matches(".toml")
        .to_string()
}
