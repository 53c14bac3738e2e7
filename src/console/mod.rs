//! The web console (`parc console`): the site's rooms, each room's workstations live as a run
//! goes, the runs and their journal, the audit log with its chain check, the verify and fleet
//! reports — in French, server-rendered, read-only but for one action (reimaging a
//! workstation, with the token printed at start, written to the audit log).
//!
//! The console is its own process on its own port: it reads the workspace (recipes, devices,
//! journal, audit log, reports) at each request and follows the runs through their live files
//! (see [`live`]), so it can be started, stopped and restarted at any point of a run.

pub mod live;
mod pages;
mod routes;
pub mod tiles;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use live::{Feed, with_live_log};
pub use routes::router;

use crate::ports::ImageStore;

/// What the console serves, and the one action it may take.
pub struct Console {
    /// The workspace folder (site.toml, rooms/, devices.csv, .parc/).
    pub workspace: PathBuf,
    /// The reimage action's token (printed at start, never rendered).
    pub token: String,
    /// Who the console runs as (`user@host`), for the audit log.
    pub actor: String,
    /// The room boards, from the runs' live files.
    pub feed: Arc<Feed>,
    /// The image store the rooms' gates read, when adapters are configured.
    pub images: Option<Arc<dyn ImageStore>>,
    /// How a reimage is started: the program and the arguments before the hostname.
    pub reimage: Vec<std::ffi::OsString>,
    /// Environment the reimage runs with (beyond the console's own).
    pub reimage_env: BTreeMap<String, String>,
}

impl Console {
    pub fn state_dir(&self) -> PathBuf {
        self.workspace.join(".parc")
    }
}

/// A fresh token for the reimage action: 16 random bytes, hex.
pub fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(std::io::Error::other)?;
    Ok(hex::encode(b))
}

/// Whether `given` is the token, in time independent of where they differ.
pub fn token_matches(token: &str, given: &str) -> bool {
    let (a, b) = (token.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_whole_token_matches() {
        let t = new_token().expect("token");
        assert_eq!(t.len(), 32);
        assert!(token_matches(&t, &t));
        assert!(!token_matches(&t, &t[..31]));
        assert!(!token_matches(&t, ""));
        assert!(!token_matches("", ""));
        assert_ne!(t, new_token().expect("token"));
    }
}
