//! The field's rules over a whole workspace: identities, licences, sign-offs, homogeneity, fit.
//!
//! Each rule is a function returning findings; [`validate`] runs them all. The licence gate and
//! the sign-off state are public: the engine enforces the same rules before `install` and
//! `capture`.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::device::DeviceState;
use super::digest::software_digest;
use super::finding::{Finding, did_you_mean};
use super::model::{DiskKind, Model};
use super::recipe::{LicenceKind, Recipe, Signoff};
use super::workspace::Workspace;

type DeviceField = fn(&super::device::Device) -> &super::toml_read::Sp<String>;

/// What the rules need besides the workspace.
#[derive(Debug, Clone)]
pub struct CheckContext {
    /// The day the check is made (licence expiry); passed in, never read from a clock here.
    pub today: NaiveDate,
    /// Names of the secrets in the store, when known: references to missing ones are warned.
    pub known_secrets: Option<Vec<String>>,
}

/// A licence expiring within this many days is warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 60;

/// Runs every rule. Findings come sorted by file, line and column.
pub fn validate(ws: &Workspace, cx: &CheckContext) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(identities(ws));
    out.extend(references(ws));
    out.extend(secrets(ws, cx));
    for (i, room) in ws.rooms.iter().enumerate() {
        if ws.rooms[..i].iter().any(|r| r.id.value == room.id.value) {
            continue; // a duplicate id: reported once, its rules would describe another room
        }
        out.extend(licence_gate(ws, room, cx.today));
        out.extend(signoff_findings(room));
        if ws.model(&room.model.value).is_some() {
            out.extend(homogeneity(ws, room));
            out.extend(fit(ws, room));
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
    out
}

/// Duplicate room ids, hostnames, MACs and serials.
pub fn identities(ws: &Workspace) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut rooms: HashMap<&str, &Recipe> = HashMap::new();
    for r in &ws.rooms {
        if let Some(first) = rooms.get(r.id.value.as_str()) {
            out.push(Finding::error(
                r.id.at.clone(),
                "duplicate-room",
                format!(
                    "room id \"{}\" is already used at {}",
                    r.id.value, first.id.at
                ),
            ));
        } else {
            rooms.insert(&r.id.value, r);
        }
        let stem = r
            .file
            .rsplit('/')
            .next()
            .unwrap_or(&r.file)
            .trim_end_matches(".toml");
        if stem != r.id.value {
            out.push(
                Finding::warning(
                    r.id.at.clone(),
                    "room-file-name",
                    format!("room \"{}\" is in {}", r.id.value, r.file),
                )
                .hint(format!(
                    "name the file rooms/{}.toml so it is found by its id",
                    r.id.value
                )),
            );
        }
    }
    let fields: [(&str, DeviceField); 3] = [
        ("hostname", |d| &d.hostname),
        ("MAC address", |d| &d.mac),
        ("serial number", |d| &d.serial),
    ];
    for (what, get) in fields {
        let mut seen: HashMap<&str, &super::device::Device> = HashMap::new();
        for d in &ws.devices {
            let v = get(d);
            match seen.get(v.value.as_str()) {
                Some(first) => out.push(Finding::error(
                    v.at.clone(),
                    "duplicate-device",
                    format!(
                        "{what} \"{}\" is already used at {}",
                        v.value,
                        get(first).at
                    ),
                )),
                None => {
                    seen.insert(&v.value, d);
                }
            }
        }
    }
    out
}

/// Models and rooms that are referred to but not defined.
pub fn references(ws: &Workspace) -> Vec<Finding> {
    let mut out = Vec::new();
    let model_ids: Vec<&str> = ws.models.iter().map(|m| m.id.value.as_str()).collect();
    let unknown_model = |id: &super::toml_read::Sp<String>| {
        let mut f = Finding::error(
            id.at.clone(),
            "unknown-model",
            format!("model \"{}\" is not in models.toml", id.value),
        );
        if let Some(m) = did_you_mean(&id.value, model_ids.iter().copied()) {
            f = f.hint(format!("did you mean \"{m}\"?"));
        }
        f
    };
    for r in &ws.rooms {
        if ws.model(&r.model.value).is_none() && !ws.models.is_empty() {
            out.push(unknown_model(&r.model));
        }
        if let Some(m) = &r.master {
            let found = ws
                .devices_in(&r.id.value)
                .any(|d| d.hostname.value == m.value.to_ascii_lowercase());
            if !found {
                out.push(Finding::error(
                    m.at.clone(),
                    "master",
                    format!(
                        "master \"{}\" is not a workstation of room {} in devices.csv",
                        m.value, r.id.value
                    ),
                ));
            }
        }
        if ws.workstations(&r.id.value).is_empty() && !ws.devices.is_empty() {
            out.push(Finding::warning(
                r.id.at.clone(),
                "empty-room",
                format!(
                    "room {} has no workstation in service in devices.csv",
                    r.id.value
                ),
            ));
        }
    }
    let mut reported_rooms = Vec::new();
    for d in &ws.devices {
        if ws.model(&d.model.value).is_none() && !ws.models.is_empty() {
            out.push(unknown_model(&d.model));
        }
        if let Some(room) = &d.room {
            if !ws.has_recipe_file(&room.value)
                && !reported_rooms.contains(&room.value.as_str())
                && !ws.rooms.is_empty()
            {
                reported_rooms.push(&room.value);
                let mut f = Finding::warning(
                    room.at.clone(),
                    "room-without-recipe",
                    format!(
                        "room \"{}\" has no recipe (rooms/{}.toml)",
                        room.value, room.value
                    ),
                );
                if let Some(m) =
                    did_you_mean(&room.value, ws.rooms.iter().map(|r| r.id.value.as_str()))
                {
                    f = f.hint(format!("did you mean \"{m}\"?"));
                }
                out.push(f);
            }
        }
    }
    out
}

/// Secret references to names the store does not hold (when the store is known).
pub fn secrets(ws: &Workspace, cx: &CheckContext) -> Vec<Finding> {
    let Some(known) = &cx.known_secrets else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    if let Some(d) = ws.site.as_ref().map(|s| &s.domain) {
        refs.extend(d.join_password_secret.as_ref());
        refs.extend(
            d.controller
                .as_ref()
                .and_then(|c| c.admin_password_secret.as_ref()),
        );
    }
    for r in &ws.rooms {
        refs.extend(
            r.software
                .iter()
                .filter_map(|s| s.licence.key_secret.as_ref()),
        );
    }
    refs.into_iter()
        .filter(|name| !known.contains(&name.value))
        .map(|name| {
            Finding::warning(
                name.at.clone(),
                "secret-missing",
                format!("secret \"{}\" is not set", name.value),
            )
            .hint(format!(
                "store it with `parc secret set {}` (the value is read from stdin)",
                name.value
            ))
        })
        .collect()
}

/// The licence gate of one room: every non-free product needs a proof, an unexpired licence,
/// and seats for every in-service workstation — unless the head authorised it in writing.
pub fn licence_gate(ws: &Workspace, room: &Recipe, today: NaiveDate) -> Vec<Finding> {
    let mut out = Vec::new();
    let in_service = ws.workstations(&room.id.value).len() as u32;
    for s in &room.software {
        let l = &s.licence;
        let name = &s.name.value;
        let mut problems: Vec<(super::finding::Location, String, &'static str)> = Vec::new();
        if l.kind.value == LicenceKind::Seats {
            if let Some(seats) = &l.seats {
                if seats.value < in_service {
                    problems.push((
                        seats.at.clone(),
                        format!(
                            "{name}: {} seats for {in_service} workstations in service in room {}",
                            seats.value, room.id.value
                        ),
                        "licence-seats",
                    ));
                }
            }
        }
        if let Some(exp) = &l.expires {
            if exp.value < today {
                problems.push((
                    exp.at.clone(),
                    format!("{name}: the licence expired on {}", exp.value),
                    "licence-expired",
                ));
            } else if (exp.value - today).num_days() <= EXPIRY_WARNING_DAYS {
                out.push(
                    Finding::warning(
                        exp.at.clone(),
                        "licence-expiring",
                        format!("{name}: the licence expires on {}", exp.value),
                    )
                    .hint("renew it before it blocks the next install"),
                );
            }
        }
        if l.kind.value != LicenceKind::Free && l.proof.is_none() {
            problems.push((
                l.kind.at.clone(),
                format!(
                    "{name}: a \"{}\" licence without `proof`",
                    super::recipe::licence_word(l.kind.value)
                ),
                "licence-proof",
            ));
        }
        for (at, msg, rule) in problems {
            match room.authorisation_for(name) {
                Some(a) => out.push(Finding::warning(
                    at,
                    "licence-authorised",
                    format!(
                        "{msg}; allowed by the written authorisation of {} ({}, {})",
                        a.by.value, a.reference.value, a.date.value
                    ),
                )),
                None => out.push(Finding::error(at, rule, msg).hint(match rule {
                    "licence-seats" => {
                        "buy more seats, or record the head's written authorisation in [[authorisation]]"
                    }
                    "licence-expired" => "renew the licence and update `expires`",
                    _ => "write the order form, invoice or agreement reference in `proof`",
                })),
            }
        }
    }
    out
}

/// Where the room's software list stands with respect to the teachers' signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignoffState<'a> {
    /// Nobody signed any list of this room.
    None,
    /// Signatures exist, but none for the current list; `latest` is the most recent one.
    Stale {
        latest: &'a Signoff,
        current: String,
    },
    /// These signatures are of the current list.
    Valid(Vec<&'a Signoff>),
}

/// Compares the sign-offs with the current list's digest.
pub fn signoff_state(room: &Recipe) -> SignoffState<'_> {
    let current = software_digest(&room.software);
    let valid: Vec<&Signoff> = room
        .signoffs
        .iter()
        .filter(|s| s.digest.value == current)
        .collect();
    if !valid.is_empty() {
        return SignoffState::Valid(valid);
    }
    match room.signoffs.iter().max_by_key(|s| s.date.value) {
        Some(latest) => SignoffState::Stale { latest, current },
        None => SignoffState::None,
    }
}

/// Sign-off findings of one room.
pub fn signoff_findings(room: &Recipe) -> Vec<Finding> {
    let hint = format!(
        "print the list with `parc software {}`, have it signed, then run `parc signoff {}`",
        room.id.value, room.id.value
    );
    match signoff_state(room) {
        SignoffState::None => vec![
            Finding::error(
                room.id.at.clone(),
                "signoff-missing",
                format!(
                    "room {}: the software list has no teachers' sign-off",
                    room.id.value
                ),
            )
            .hint(hint),
        ],
        SignoffState::Stale { latest, .. } => vec![
            Finding::error(
                latest.digest.at.clone(),
                "signoff-stale",
                format!(
                    "room {}: the list changed since {} signed on {}",
                    room.id.value, latest.teacher.value, latest.date.value
                ),
            )
            .hint(hint),
        ],
        SignoffState::Valid(valid) => room
            .disciplines
            .iter()
            .filter(|d| {
                !valid
                    .iter()
                    .any(|s| s.discipline.value.eq_ignore_ascii_case(&d.value))
            })
            .map(|d| {
                Finding::warning(
                    d.at.clone(),
                    "signoff-discipline",
                    format!(
                        "room {}: no teacher of {} signed the current list",
                        room.id.value, d.value
                    ),
                )
                .hint(format!(
                    "parc signoff {} --teacher \"…\" --discipline \"{}\"",
                    room.id.value, d.value
                ))
            })
            .collect(),
    }
}

/// One model per room, and a model that has a spare elsewhere in the lycée.
pub fn homogeneity(ws: &Workspace, room: &Recipe) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut off_model: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in ws.workstations(&room.id.value) {
        if d.model.value != room.model.value && ws.model(&d.model.value).is_some() {
            off_model
                .entry(&d.model.value)
                .or_default()
                .push(&d.hostname.value);
        }
    }
    for (model, hosts) in &off_model {
        out.push(
            Finding::warning(
                room.model.at.clone(),
                "heterogeneous-room",
                format!(
                    "room {} is not homogeneous: {} workstation(s) are \"{model}\", not \"{}\": {}",
                    room.id.value,
                    hosts.len(),
                    room.model.value,
                    hosts.join(", ")
                ),
            )
            .hint("one model per room: move them to a room of that model, or plan their renewal"),
        );
    }
    let elsewhere = ws.devices.iter().any(|d| {
        d.model.value == room.model.value
            && (d.state == DeviceState::Spare
                || d.room.as_ref().is_some_and(|r| r.value != room.id.value))
    });
    if !elsewhere && !ws.devices.is_empty() {
        out.push(
            Finding::warning(
                room.model.at.clone(),
                "no-spare",
                format!(
                    "model \"{}\" of room {} is found in no other room and has no spare",
                    room.model.value, room.id.value
                ),
            )
            .hint("keep a spare of this model, or a room of the same model, so a broken workstation can be swapped"),
        );
    }
    out
}

/// The room's model must meet the room's requirements.
pub fn fit(ws: &Workspace, room: &Recipe) -> Vec<Finding> {
    let Some(model) = ws.model(&room.model.value) else {
        return Vec::new();
    };
    let gaps: Vec<String> = shortfalls(model, &room.requirements)
        .iter()
        .map(Shortfall::english)
        .collect();
    if gaps.is_empty() {
        return Vec::new();
    }
    vec![
        Finding::error(
            room.model.at.clone(),
            "fit",
            format!(
                "model \"{}\" does not meet room {}'s requirements: {}",
                model.id.value,
                room.id.value,
                gaps.join("; ")
            ),
        )
        .hint("choose a model that fits, or lower the requirements with the teachers"),
    ]
}

/// One way a model falls short of a room's requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    Ram {
        have: u32,
        need: u32,
    },
    Cpu {
        have: u32,
        need: u32,
    },
    Disk {
        have: u32,
        need: u32,
    },
    DiskKind {
        have: DiskKind,
        need: DiskKind,
    },
    /// No dedicated graphics card; `have` names the integrated one.
    Gpu {
        have: String,
    },
    Vram {
        have: u32,
        need: u32,
    },
}

impl Shortfall {
    /// For `parc check` (English).
    pub fn english(&self) -> String {
        match self {
            Shortfall::Ram { have, need } => format!("{have} GB RAM < {need} GB"),
            Shortfall::Cpu { have, need } => format!("CPU score {have} < {need}"),
            Shortfall::Disk { have, need } => format!("{have} GB disk < {need} GB"),
            Shortfall::DiskKind { have, need } => {
                format!("{} disk, {} needed", disk_word(*have), disk_word(*need))
            }
            Shortfall::Gpu { have } => format!("integrated GPU ({have}), dedicated needed"),
            Shortfall::Vram { have, need } => format!("{have} GB video memory < {need} GB"),
        }
    }

    /// For the reports to the administration (French).
    pub fn french(&self) -> String {
        match self {
            Shortfall::Ram { have, need } => {
                format!("{have} Go de mémoire pour {need} Go demandés")
            }
            Shortfall::Cpu { have, need } => {
                format!("indice processeur {have} pour {need} demandé")
            }
            Shortfall::Disk { have, need } => {
                format!("disque de {have} Go pour {need} Go demandés")
            }
            Shortfall::DiskKind { have, need } => {
                format!("{} au lieu d'un {}", disk_french(*have), disk_french(*need))
            }
            Shortfall::Gpu { .. } => "pas de carte graphique dédiée".to_string(),
            Shortfall::Vram { have, need } => {
                format!("{have} Go de mémoire vidéo pour {need} Go demandés")
            }
        }
    }
}

/// What a model lacks for a set of requirements (empty when it fits).
pub fn shortfalls(m: &Model, r: &super::recipe::Requirements) -> Vec<Shortfall> {
    let mut gaps = Vec::new();
    if m.ram_gb < r.min_ram_gb {
        gaps.push(Shortfall::Ram {
            have: m.ram_gb,
            need: r.min_ram_gb,
        });
    }
    if m.cpu_score < r.min_cpu_score {
        gaps.push(Shortfall::Cpu {
            have: m.cpu_score,
            need: r.min_cpu_score,
        });
    }
    if m.disk_gb < r.min_disk_gb {
        gaps.push(Shortfall::Disk {
            have: m.disk_gb,
            need: r.min_disk_gb,
        });
    }
    if let Some(k) = r.min_disk_kind {
        if m.disk_kind < k {
            gaps.push(Shortfall::DiskKind {
                have: m.disk_kind,
                need: k,
            });
        }
    }
    if r.dedicated_gpu && !m.gpu_dedicated {
        gaps.push(Shortfall::Gpu {
            have: m.gpu.clone(),
        });
    }
    if m.vram_gb < r.min_vram_gb {
        gaps.push(Shortfall::Vram {
            have: m.vram_gb,
            need: r.min_vram_gb,
        });
    }
    gaps
}

/// Disk kinds as the French reports name them.
pub fn disk_french(k: DiskKind) -> &'static str {
    match k {
        DiskKind::Hdd => "disque dur",
        DiskKind::Ssd => "SSD",
        DiskKind::Nvme => "SSD NVMe",
    }
}

fn disk_word(k: DiskKind) -> &'static str {
    match k {
        DiskKind::Hdd => "HDD",
        DiskKind::Ssd => "SSD",
        DiskKind::Nvme => "NVMe",
    }
}

/// Whether a model meets a set of requirements.
pub fn fits(m: &Model, r: &super::recipe::Requirements) -> bool {
    shortfalls(m, r).is_empty()
}
