//! One audit entry: what was done, to what, by whom.

use std::fmt;

/// The kinds of audited actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Format,
    Install,
    Capture,
    Deploy,
    Join,
    Reimage,
    Signoff,
    LicenceOverride,
    /// Stands for the entries removed by a prune.
    Anchor,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Format,
        Action::Install,
        Action::Capture,
        Action::Deploy,
        Action::Join,
        Action::Reimage,
        Action::Signoff,
        Action::LicenceOverride,
        Action::Anchor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Format => "format",
            Action::Install => "install",
            Action::Capture => "capture",
            Action::Deploy => "deploy",
            Action::Join => "join",
            Action::Reimage => "reimage",
            Action::Signoff => "signoff",
            Action::LicenceOverride => "licence-override",
            Action::Anchor => "anchor",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub room: String,
    pub action: Action,
    /// What was changed: a hostname, an image id, a product.
    pub subject: String,
    /// Who did it (the technician's login).
    pub actor: String,
    /// One line of detail (image id, digest, authorisation reference). Never a secret.
    pub detail: String,
}

impl Entry {
    /// The entry `parc signoff` records: who signed which exact list of which room.
    pub fn signoff(room: &str, teacher: &str, discipline: &str, digest: &str, actor: &str) -> Self {
        Entry {
            room: room.to_string(),
            action: Action::Signoff,
            subject: format!("{teacher} ({discipline})"),
            actor: actor.to_string(),
            detail: format!("signed software list {digest}"),
        }
    }
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stored {
    pub seq: i64,
    /// RFC 3339, UTC.
    pub ts: String,
    pub room: String,
    pub action: String,
    pub subject: String,
    pub actor: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}
