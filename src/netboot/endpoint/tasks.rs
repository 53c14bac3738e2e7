//! The endpoint's task table: for each workstation (by MAC), what it does at its next network
//! boot, with the task's id, secret token and expiry. Pure: time is passed in as Unix seconds,
//! persistence is `to_json`/`from_json` (the caller writes `<ws>/.parc/boot/tasks.json`).
//!
//! Rules: one live task per MAC (a new assignment replaces the old one); a task that reported
//! (success or failure) or expired no longer boots the agent: that MAC boots its local disk, so
//! a workstation can never loop re-imaging itself (LINBO #111).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ports::BootAction;

/// Why a table operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    #[error("`{0}` is not a MAC address (expected six hex pairs, e.g. 52:54:00:77:00:01)")]
    BadMac(String),
    #[error("unknown boot task {0}")]
    UnknownTask(String),
    #[error("wrong token for boot task {0}")]
    BadToken(String),
    #[error("boot task {0} already ended; it cannot report again")]
    Ended(String),
}

/// The action, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum StoredAction {
    LocalDisk,
    Format {
        base_image: String,
        #[serde(default)]
        hostname: String,
        #[serde(default)]
        inject: Vec<crate::ports::InjectFile>,
    },
    Capture {
        room: String,
        image_version: String,
    },
    Deploy {
        room: String,
        image_id: String,
        hostname: String,
        /// `parc reimage --read-all` (absent in older task tables: false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        read_all: bool,
    },
}

impl From<&BootAction> for StoredAction {
    fn from(a: &BootAction) -> Self {
        match a.clone() {
            BootAction::LocalDisk => Self::LocalDisk,
            BootAction::Format {
                base_image,
                hostname,
                inject,
            } => Self::Format {
                base_image,
                hostname,
                inject,
            },
            BootAction::Capture {
                room,
                image_version,
            } => Self::Capture {
                room,
                image_version,
            },
            // The answer file is never stored: a reissued task has none, and its deploy
            // fails at the agent's fetch, to be run again.
            BootAction::Deploy {
                room,
                image_id,
                hostname,
                unattend: _,
                multicast: _,
                read_all,
            } => Self::Deploy {
                room,
                image_id,
                hostname,
                read_all,
            },
        }
    }
}

impl StoredAction {
    /// The `parc-agent` subcommand this action runs (`None`: boot the local disk).
    pub fn agent_command(&self) -> Option<&'static str> {
        match self {
            Self::LocalDisk => None,
            Self::Format { .. } => Some("format"),
            Self::Capture { .. } => Some("capture"),
            Self::Deploy { .. } => Some("deploy"),
        }
    }
}

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TaskState {
    /// Assigned; the workstation has not fetched its boot script yet.
    Pending,
    /// The boot environment started and said so.
    Booted { at: i64 },
    /// The agent reported.
    Done {
        at: i64,
        success: bool,
        message: String,
    },
    /// Nobody booted it before its expiry.
    Expired,
}

impl TaskState {
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Pending | Self::Booted { .. })
    }
}

/// One task.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootTask {
    pub id: String,
    pub mac: String,
    pub action: StoredAction,
    pub token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: TaskState,
}

impl std::fmt::Debug for BootTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootTask")
            .field("id", &self.id)
            .field("mac", &self.mac)
            .field("action", &self.action)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("state", &self.state)
            .finish()
    }
}

/// What a workstation gets when it asks for its boot script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    LocalDisk,
    RunAgent(Box<BootTask>),
}

/// The table itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTable {
    /// Every task by id (ended ones are kept for `parc serve` status and the engine's wait).
    pub tasks: BTreeMap<String, BootTask>,
}

/// `52:54:00:77:00:01` from any of `52-54-00-77-00-01`, `525400770001`, upper or lower case.
pub fn normalize_mac(mac: &str) -> Result<String, TaskError> {
    let hex: String = mac
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TaskError::BadMac(mac.into()));
    }
    let hex = hex.to_ascii_lowercase();
    Ok((0..6)
        .map(|i| &hex[2 * i..2 * i + 2])
        .collect::<Vec<_>>()
        .join(":"))
}

fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl TaskTable {
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Assigns `action` to `mac` from `now` for `ttl` seconds, replacing the MAC's live task.
    pub fn assign(
        &mut self,
        mac: &str,
        action: StoredAction,
        id: String,
        token: String,
        now: i64,
        ttl: i64,
    ) -> Result<&BootTask, TaskError> {
        let mac = normalize_mac(mac)?;
        for t in self.tasks.values_mut() {
            if t.mac == mac && t.state.is_live() {
                t.state = TaskState::Expired;
            }
        }
        let task = BootTask {
            id: id.clone(),
            mac,
            action,
            token,
            created_at: now,
            expires_at: now + ttl,
            state: TaskState::Pending,
        };
        self.tasks.insert(id.clone(), task);
        Ok(&self.tasks[&id])
    }

    /// Marks tasks past their expiry; returns the ids that expired now.
    pub fn expire(&mut self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.tasks.values_mut() {
            if t.state.is_live() && now >= t.expires_at {
                t.state = TaskState::Expired;
                out.push(t.id.clone());
            }
        }
        out
    }

    /// What `mac` boots now: its live task, else the local disk.
    pub fn decide(&mut self, mac: &str, now: i64) -> Result<BootDecision, TaskError> {
        let mac = normalize_mac(mac)?;
        self.expire(now);
        Ok(self
            .tasks
            .values()
            .find(|t| t.mac == mac && t.state.is_live() && t.action.agent_command().is_some())
            .map_or(BootDecision::LocalDisk, |t| {
                BootDecision::RunAgent(Box::new(t.clone()))
            }))
    }

    fn checked(&mut self, id: &str, token: &str) -> Result<&mut BootTask, TaskError> {
        let t = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| TaskError::UnknownTask(id.into()))?;
        if !same_secret(&t.token, token) {
            return Err(TaskError::BadToken(id.into()));
        }
        if !t.state.is_live() {
            return Err(TaskError::Ended(id.into()));
        }
        Ok(t)
    }

    /// The boot environment started for task `id`.
    pub fn booted(&mut self, id: &str, token: &str, now: i64) -> Result<(), TaskError> {
        self.checked(id, token)?.state = TaskState::Booted { at: now };
        Ok(())
    }

    /// The agent's final word: the task ends, and its MAC boots the local disk from now on.
    pub fn report(
        &mut self,
        id: &str,
        token: &str,
        success: bool,
        message: String,
        now: i64,
    ) -> Result<&BootTask, TaskError> {
        let t = self.checked(id, token)?;
        t.state = TaskState::Done {
            at: now,
            success,
            message,
        };
        Ok(t)
    }

    pub fn get(&self, id: &str) -> Option<&BootTask> {
        self.tasks.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "52:54:00:77:00:01";

    fn deploy() -> StoredAction {
        StoredAction::Deploy {
            room: "b204".into(),
            image_id: "b204/v1".into(),
            hostname: "b204-p01".into(),
            read_all: false,
        }
    }

    fn table_with_task() -> TaskTable {
        let mut t = TaskTable::default();
        t.assign(
            "52-54-00-77-00-01",
            deploy(),
            "t1".into(),
            "secret".into(),
            1000,
            600,
        )
        .unwrap();
        t
    }

    #[test]
    fn macs_are_normalized_or_refused() {
        assert_eq!(
            normalize_mac("52-54-00-77-00-0A").unwrap(),
            "52:54:00:77:00:0a"
        );
        assert_eq!(normalize_mac("525400770001").unwrap(), MAC);
        for bad in [
            "52:54:00:77:00",
            "zz:54:00:77:00:01",
            "",
            "52:54:00:77:00:01:02",
        ] {
            assert!(normalize_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pending_task_boots_the_agent_then_success_switches_to_local_disk() {
        let mut t = table_with_task();
        let BootDecision::RunAgent(task) = t.decide(MAC, 1001).unwrap() else {
            panic!("no agent")
        };
        assert_eq!(task.id, "t1");
        t.booted("t1", "secret", 1010).unwrap();
        // A reboot during the task (power cut) still gets the agent.
        assert!(matches!(
            t.decide(MAC, 1020).unwrap(),
            BootDecision::RunAgent(_)
        ));
        t.report("t1", "secret", true, "deployed".into(), 1100)
            .unwrap();
        assert_eq!(t.decide(MAC, 1101).unwrap(), BootDecision::LocalDisk);
        assert_eq!(t.decide(MAC, 99_999).unwrap(), BootDecision::LocalDisk);
        // No second report.
        assert_eq!(
            t.report("t1", "secret", false, "x".into(), 1102),
            Err(TaskError::Ended("t1".into()))
        );
    }

    #[test]
    fn a_failed_task_also_stops_reimaging() {
        let mut t = table_with_task();
        t.report("t1", "secret", false, "disk too small".into(), 1100)
            .unwrap();
        assert_eq!(t.decide(MAC, 1101).unwrap(), BootDecision::LocalDisk);
    }

    #[test]
    fn pending_tasks_expire() {
        let mut t = table_with_task();
        assert!(matches!(
            t.decide(MAC, 1599).unwrap(),
            BootDecision::RunAgent(_)
        ));
        assert_eq!(t.decide(MAC, 1600).unwrap(), BootDecision::LocalDisk);
        assert_eq!(t.get("t1").unwrap().state, TaskState::Expired);
        assert_eq!(
            t.report("t1", "secret", true, String::new(), 1601),
            Err(TaskError::Ended("t1".into()))
        );
        let mut t = table_with_task();
        assert_eq!(t.expire(2000), vec!["t1".to_string()]);
        assert!(t.expire(2001).is_empty());
    }

    #[test]
    fn tokens_are_checked_and_unknown_tasks_refused() {
        let mut t = table_with_task();
        assert_eq!(
            t.booted("t1", "secrex", 1001),
            Err(TaskError::BadToken("t1".into()))
        );
        assert_eq!(
            t.report("t1", "", true, String::new(), 1001),
            Err(TaskError::BadToken("t1".into()))
        );
        assert_eq!(
            t.booted("t9", "secret", 1001),
            Err(TaskError::UnknownTask("t9".into()))
        );
        assert!(t.get("t1").unwrap().state.is_live());
        assert!(!format!("{:?}", t).contains("secret"));
    }

    #[test]
    fn a_new_assignment_replaces_the_live_one() {
        let mut t = table_with_task();
        t.assign(
            MAC,
            StoredAction::Format {
                base_image: "debian".into(),
                hostname: String::new(),
                inject: Vec::new(),
            },
            "t2".into(),
            "s2".into(),
            1050,
            600,
        )
        .unwrap();
        assert_eq!(t.get("t1").unwrap().state, TaskState::Expired);
        let BootDecision::RunAgent(task) = t.decide(MAC, 1051).unwrap() else {
            panic!()
        };
        assert_eq!(task.id, "t2");
        // Assigning LocalDisk cancels without a new agent boot.
        t.assign(
            MAC,
            StoredAction::LocalDisk,
            "t3".into(),
            "s3".into(),
            1060,
            600,
        )
        .unwrap();
        assert_eq!(t.decide(MAC, 1061).unwrap(), BootDecision::LocalDisk);
    }

    #[test]
    fn survives_a_round_trip_through_json() {
        let mut t = table_with_task();
        t.booted("t1", "secret", 1001).unwrap();
        let back = TaskTable::from_json(&t.to_json()).unwrap();
        assert_eq!(back, t);
    }
}
