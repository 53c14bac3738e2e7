//! Merges imported records into the workspace's devices: matched by hostname, else by serial
//! number; known fields are updated, new workstations appended when complete. Devices the
//! source does not mention are kept unchanged. Pure; returns the changes for the diff.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Imported, slug};
use crate::domain::device::{Device, DeviceState, Funding};
use crate::domain::finding::Location;
use crate::domain::model::Model;
use crate::domain::toml_read::Sp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        hostname: String,
        summary: String,
    },
    Updated {
        hostname: String,
        fields: Vec<(&'static str, String, String)>,
    },
    Skipped {
        hostname: String,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Merged {
    pub devices: Vec<Device>,
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

/// The model id of a name a source gives (`OptiPlex 7010`, `Dell OptiPlex 7010`, an id).
pub fn resolve_model(name: &str, models: &[Model]) -> String {
    let s = slug(name);
    models
        .iter()
        .find(|m| {
            m.id.value == name
                || m.id.value == s
                || m.name.eq_ignore_ascii_case(name)
                || format!("{} {}", m.manufacturer, m.name).eq_ignore_ascii_case(name)
        })
        .map_or(s, |m| m.id.value.clone())
}

fn sp<T>(value: T) -> Sp<T> {
    Sp {
        value,
        at: Location {
            file: "devices.csv".into(),
            line: 0,
            col: 0,
        },
    }
}

pub fn merge(existing: &[Device], imported: &[Imported], models: &[Model]) -> Merged {
    let mut devices: Vec<Device> = existing.to_vec();
    let by_host: HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.hostname.value.clone(), i))
        .collect();
    let by_serial: HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.serial.value.clone(), i))
        .collect();
    let mut changes = Vec::new();
    let mut touched = vec![false; devices.len()];
    let mut added: Vec<Device> = Vec::new();
    let mut sorted: Vec<&Imported> = imported.iter().collect();
    sorted.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    for imp in sorted {
        let model = imp.model.as_deref().map(|m| resolve_model(m, models));
        let idx = by_host
            .get(&imp.hostname)
            .or_else(|| imp.serial.as_ref().and_then(|s| by_serial.get(s)))
            .copied();
        match idx {
            Some(i) => {
                touched[i] = true;
                let d = &mut devices[i];
                let mut fields = Vec::new();
                let mut set = |name: &'static str, old: &mut String, new: Option<&String>| {
                    if let Some(n) = new {
                        if old != n {
                            fields.push((name, old.clone(), n.clone()));
                            *old = n.clone();
                        }
                    }
                };
                set("hostname", &mut d.hostname.value, Some(&imp.hostname));
                set("mac", &mut d.mac.value, imp.mac.as_ref());
                set("serial", &mut d.serial.value, imp.serial.as_ref());
                set("model", &mut d.model.value, model.as_ref());
                let mut room = d.room.as_ref().map(|r| r.value.clone()).unwrap_or_default();
                let before = room.clone();
                set("room", &mut room, imp.room.as_ref());
                if room != before {
                    d.room = Some(sp(room));
                }
                let mut ip = d.ip.clone().unwrap_or_default();
                set("ip", &mut ip, imp.ip.as_ref());
                d.ip = Some(ip).filter(|s| !s.is_empty());
                if let Some(p) = imp.purchase_date {
                    if p != d.purchase_date.value {
                        fields.push((
                            "purchase_date",
                            d.purchase_date.value.to_string(),
                            p.to_string(),
                        ));
                        d.purchase_date.value = p;
                    }
                }
                if let Some(w) = imp.warranty_end {
                    if Some(w) != d.warranty_end.as_ref().map(|x| x.value) {
                        let old = d
                            .warranty_end
                            .as_ref()
                            .map(|x| x.value.to_string())
                            .unwrap_or_default();
                        fields.push(("warranty_end", old, w.to_string()));
                        d.warranty_end = Some(sp(w));
                    }
                }
                if let Some(s) = imp.state {
                    if s != d.state {
                        fields.push(("state", d.state.as_str().into(), s.as_str().into()));
                        d.state = s;
                    }
                }
                if let Some(f) = imp.funding {
                    if f != d.funding {
                        fields.push(("funding", d.funding.as_str().into(), f.as_str().into()));
                        d.funding = f;
                    }
                }
                if !fields.is_empty() {
                    changes.push(Change::Updated {
                        hostname: imp.hostname.clone(),
                        fields,
                    });
                }
            }
            None => {
                let mut missing = Vec::new();
                if imp.serial.is_none() {
                    missing.push("serial number");
                }
                if model.is_none() {
                    missing.push("model");
                }
                if imp.purchase_date.is_none() {
                    missing.push("purchase date");
                }
                if imp.mac.is_none() {
                    missing.push("MAC address");
                }
                let (Some(serial), Some(model), Some(purchase), Some(mac)) = (
                    imp.serial.clone(),
                    model,
                    imp.purchase_date,
                    imp.mac.clone(),
                ) else {
                    changes.push(Change::Skipped {
                        hostname: imp.hostname.clone(),
                        reason: format!("new workstation without {}", missing.join(", ")),
                    });
                    continue;
                };
                let state = imp.state.unwrap_or(if imp.room.is_some() {
                    DeviceState::InService
                } else {
                    DeviceState::Spare
                });
                if state == DeviceState::InService && imp.room.is_none() {
                    changes.push(Change::Skipped {
                        hostname: imp.hostname.clone(),
                        reason: "in service but without a room (location)".into(),
                    });
                    continue;
                }
                changes.push(Change::Added {
                    hostname: imp.hostname.clone(),
                    summary: format!(
                        "room {}, model {model}, serial {serial}, bought {purchase}",
                        imp.room.as_deref().unwrap_or("-")
                    ),
                });
                added.push(Device {
                    row: Location {
                        file: "devices.csv".into(),
                        line: 0,
                        col: 0,
                    },
                    room: imp.room.clone().map(sp),
                    hostname: sp(imp.hostname.clone()),
                    mac: sp(mac),
                    serial: sp(serial),
                    model: sp(model),
                    purchase_date: sp(purchase),
                    warranty_end: imp.warranty_end.map(sp),
                    funding: imp.funding.unwrap_or(Funding::Region),
                    state,
                    ip: imp.ip.clone(),
                    notes: String::new(),
                });
            }
        }
    }
    let unchanged = touched.iter().filter(|t| **t).count()
        - changes
            .iter()
            .filter(|c| matches!(c, Change::Updated { .. }))
            .count();
    devices.extend(added);
    Merged {
        devices,
        changes,
        unchanged,
    }
}

/// The diff as the technician reads it before writing.
pub fn render_diff(m: &Merged) -> String {
    let mut out = String::new();
    let (mut a, mut u, mut s) = (0, 0, 0);
    for c in &m.changes {
        match c {
            Change::Added { hostname, summary } => {
                a += 1;
                let _ = writeln!(out, "+ {hostname}: {summary}");
            }
            Change::Updated { hostname, fields } => {
                u += 1;
                let f: Vec<String> = fields
                    .iter()
                    .map(|(k, o, n)| {
                        format!("{k}: {} → {}", if o.is_empty() { "(empty)" } else { o }, n)
                    })
                    .collect();
                let _ = writeln!(out, "~ {hostname}: {}", f.join("; "));
            }
            Change::Skipped { hostname, reason } => {
                s += 1;
                let _ = writeln!(out, "! {hostname}: skipped, {reason}");
            }
        }
    }
    let _ = writeln!(
        out,
        "{a} added, {u} updated, {s} skipped, {} unchanged",
        m.unchanged
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::parse;
    use crate::domain::finding::Source;

    fn existing() -> Vec<Device> {
        let text = "room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state\n\
                    b204;b204-pc01;52:54:00:00:00:01;SN1;optiplex-7010;2019-09-01;;region;in-service\n\
                    b204;b204-pc02;52:54:00:00:00:02;SN2;optiplex-7010;2019-09-01;;region;in-service\n";
        parse(&Source::new("devices.csv", text)).0
    }

    #[test]
    fn update_add_skip_and_keep() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let imported = vec![
            Imported {
                hostname: "b204-pc01".into(),
                room: Some("b205".into()),
                ..Default::default()
            },
            Imported {
                hostname: "b204-pc03".into(),
                room: Some("b204".into()),
                mac: Some("52:54:00:00:00:03".into()),
                serial: Some("SN3".into()),
                model: Some("OptiPlex 7010".into()),
                purchase_date: d("2020-01-15"),
                ..Default::default()
            },
            Imported {
                hostname: "b204-pc04".into(),
                room: Some("b204".into()),
                ..Default::default()
            },
        ];
        let m = merge(&existing(), &imported, &[]);
        assert_eq!(m.devices.len(), 3);
        assert_eq!(m.devices[0].room.as_ref().unwrap().value, "b205");
        assert_eq!(m.devices[2].model.value, "optiplex-7010");
        assert_eq!(
            render_diff(&m),
            "~ b204-pc01: room: b204 → b205\n\
             + b204-pc03: room b204, model optiplex-7010, serial SN3, bought 2020-01-15\n\
             ! b204-pc04: skipped, new workstation without serial number, model, purchase date, MAC address\n\
             1 added, 1 updated, 1 skipped, 0 unchanged\n"
        );
        // Importing the result again changes nothing.
        let again: Vec<Imported> =
            super::super::parc_csv::parse("x", &crate::domain::device::render(&m.devices)).unwrap();
        let m2 = merge(&m.devices, &again, &[]);
        assert!(m2.changes.is_empty(), "{:?}", m2.changes);
        assert_eq!(m2.unchanged, 3);
    }
}
