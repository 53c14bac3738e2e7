//! What the pages show, read from the workspace at each request: the site, a room's devices,
//! its status in the journal merged with its live board, its verify reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::Console;
use super::pages::DomainText;
use super::tiles::{Board, Tile, TileState};
use crate::domain::procedure::Step;
use crate::engine::{self, RoomStatus};
use crate::workspace::{Loaded, WorkspaceDir};

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("the workspace cannot be read: {0}")]
    Workspace(String),
    #[error("no room \"{0}\" in this workspace")]
    NoRoom(String),
    #[error("{0}")]
    Other(String),
}

/// Reads the workspace as it is now.
pub fn load(console: &Console) -> Result<Loaded, ViewError> {
    WorkspaceDir::open(&console.workspace)
        .and_then(|d| d.load())
        .and_then(|l| l.require_parsed())
        .map_err(|e| ViewError::Workspace(e.to_string()))
}

/// The lycée's name for the header.
pub fn site_name(loaded: &Loaded) -> String {
    loaded
        .ws
        .site
        .as_ref()
        .map(|s| format!("{} ({})", s.name.value, s.uai.value))
        .unwrap_or_default()
}

/// The domain and OU a room's workstations join.
pub fn domain_text(loaded: &Loaded, room: &str) -> DomainText {
    DomainText(match &loaded.ws.site {
        Some(s) => format!(
            "{}, OU={room},{}",
            s.domain.realm.value, s.domain.computers_ou.value
        ),
        None => "domaine du site".into(),
    })
}

/// The room's workstations (hostnames, in devices.csv order) and their models.
pub fn room_hosts(loaded: &Loaded, room: &str) -> Vec<(String, String)> {
    loaded
        .ws
        .devices
        .iter()
        .filter(|d| d.room.as_ref().is_some_and(|r| r.value == room))
        .map(|d| (d.hostname.value.clone(), d.model.value.clone()))
        .collect()
}

/// "homogène" or how many models a room mixes.
pub fn homogeneity(hosts: &[(String, String)]) -> (bool, String) {
    let models: BTreeSet<&str> = hosts.iter().map(|(_, m)| m.as_str()).collect();
    match models.len() {
        0 => (true, "aucun poste".into()),
        1 => (true, "homogène".into()),
        n => (
            false,
            format!(
                "hétérogène : {n} modèles ({})",
                models.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

/// The room's status in the journal.
pub async fn status(
    console: &Console,
    loaded: &Loaded,
    room: &str,
) -> Result<RoomStatus, ViewError> {
    if !loaded.ws.rooms.iter().any(|r| r.id.value == room) {
        return Err(ViewError::NoRoom(room.to_owned()));
    }
    engine::room_status(
        loaded,
        room,
        console.images.as_deref(),
        chrono::Local::now().date_naive(),
    )
    .await
    .map_err(|e| ViewError::Other(e.to_string()))
}

/// A workstation's tile as the journal has it (before or without a live run).
fn journal_tile(st: &RoomStatus, host: &str) -> Tile {
    let on = |step: Step| {
        st.steps
            .iter()
            .find(|s| s.step == step)
            .and_then(|s| s.hosts.iter().find(|h| h.host == host))
    };
    let mut t = Tile {
        host: host.to_owned(),
        ..Tile::default()
    };
    for step in [Step::Deploy, Step::Join, Step::Verify] {
        let Some(h) = on(step) else { continue };
        if matches!(h.state, "pending" | "") {
            continue;
        }
        t.step = Some(step.to_string());
        t.state = match h.state {
            "done" => TileState::Done,
            "failed" => TileState::Failed,
            "running" => TileState::Running,
            _ => TileState::Waiting,
        };
        t.message = h.detail.clone();
        match (step, h.state) {
            (Step::Deploy, "done") => t.path = super::tiles::path_of(&h.detail),
            (Step::Join, "done") => t.joined = true,
            (Step::Verify, "done") => t.verified = Some(Ok(())),
            (Step::Verify, "failed") => t.verified = Some(Err(h.detail.clone())),
            _ => {}
        }
    }
    t
}

/// Every workstation's tile: the live board's where the current run reached it, else the
/// journal's.
pub fn tiles(st: &RoomStatus, board: &Board, hosts: &[(String, String)]) -> Vec<Tile> {
    let mut out: Vec<Tile> = hosts
        .iter()
        .map(|(h, _)| {
            board
                .hosts
                .get(h)
                .cloned()
                .unwrap_or_else(|| journal_tile(st, h))
        })
        .collect();
    // A workstation the run reports on that devices.csv no longer lists.
    let listed: BTreeSet<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
    out.extend(
        board
            .hosts
            .values()
            .filter(|t| !listed.contains(t.host.as_str()))
            .cloned(),
    );
    out
}

/// The verify reports under `reports/`, newest first: (room, file name).
pub fn verify_reports(workspace: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(workspace.join("reports")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let stem = name
                .strip_prefix("verification-")?
                .strip_suffix(".html")?
                .to_owned();
            // `<room>-<stamp>`: the stamp is the last dash's part.
            let (room, _) = stem.rsplit_once('-')?;
            Some((room.to_owned(), name))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1));
    out
}

/// The room's newest verify report that reads as a conformity record: (its HTML file's name,
/// the record). Reports written by an older parc (another JSON shape) are passed over.
pub fn latest_record(
    workspace: &Path,
    room: &str,
) -> Option<(String, crate::steps::report::ConformityRecord)> {
    verify_reports(workspace)
        .into_iter()
        .filter(|(r, _)| r == room)
        .find_map(|(_, html)| {
            let json = html.strip_suffix(".html")?.to_owned() + ".json";
            let text = std::fs::read_to_string(workspace.join("reports").join(json)).ok()?;
            let record = crate::steps::report::parse_json(&text).ok()?;
            Some((html, record))
        })
}

/// A file under `reports/` the console may hand out: a verify report, by its plain name.
pub fn report_file(workspace: &Path, name: &str) -> Option<(std::path::PathBuf, &'static str)> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !plain || !name.starts_with("verification-") {
        return None;
    }
    let kind = if name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else if name.ends_with(".json") {
        "application/json"
    } else {
        return None;
    };
    Some((workspace.join("reports").join(name), kind))
}

/// Per room: (id, name, hosts with models).
pub fn rooms(loaded: &Loaded) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    loaded
        .ws
        .rooms
        .iter()
        .map(|r| {
            (
                r.id.value.clone(),
                (r.name.clone(), room_hosts(loaded, &r.id.value)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_verify_report_names_are_handed_out() {
        let ws = Path::new("/ws");
        assert!(report_file(ws, "verification-b204-20261204T100000.html").is_some());
        assert!(report_file(ws, "verification-b204-20261204T100000.json").is_some());
        for bad in [
            "../site.toml",
            "verification-../../etc/passwd.html",
            ".verification-x.html",
            "verification-b204.toml",
            "devices.csv",
            "",
        ] {
            assert!(report_file(ws, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_room_mixing_models_is_not_homogeneous() {
        let h = |m: &str| ("h".to_string(), m.to_string());
        assert!(homogeneity(&[h("a"), h("a")]).0);
        let (ok, text) = homogeneity(&[h("a"), h("b")]);
        assert!(!ok);
        assert_eq!(text, "hétérogène : 2 modèles (a, b)");
    }
}
