//! The JSON exchanged between `parc-agent` and the endpoint (`crate::netboot::serve`). Every request
//! carries the task's token as `Authorization: Bearer <token>`.
//!
//! - `GET  /tasks/{id}`                 → [`TaskSpec`]
//! - `GET  /tasks/{id}/streams/{file}`  → a stream of the image to deploy (HTTP Range honoured)
//! - `GET  /tasks/{id}/unattend`        → the workstation's answer file (Windows), served once
//! - `PUT  /tasks/{id}/streams/{file}`  ← a captured stream (restarting a PUT truncates it)
//! - `POST /tasks/{id}/capture`         ← [`CaptureDone`] → the image is committed
//! - `POST /tasks/{id}/progress`        ← [`ProgressReport`]
//! - `POST /tasks/{id}/status`          ← [`FinalReport`]
//! - `POST /tasks/{id}/multicast`       → [`MulticastAnswer`]: whether the room's multicast
//!   session still takes receivers (asked right before the first stream byte is needed)

use serde::{Deserialize, Serialize};

use crate::image::manifest::{DiskLayout, StreamInfo};
use crate::ports::InjectFile;

/// What the agent must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskSpec {
    /// Capture the disk laid out as `layout` into image `<room>/<version>`.
    Capture {
        room: String,
        version: String,
        layout: DiskLayout,
    },
    /// Deploy the image whose manifest is `manifest` (TOML text) and name the machine.
    Deploy {
        image_id: String,
        manifest: String,
        hostname: String,
        /// Whether an answer file waits at `/tasks/{id}/unattend` (a Windows workstation's
        /// name, locale and domain join blob): fetched once, before the disk is touched.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unattend: bool,
        /// The room's multicast session the streams may come from (else unicast only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multicast: Option<MulticastOffer>,
        /// Read every file of the disk rather than trust the record of its last deploy
        /// (`parc reimage --read-all`), as `parc-agent deploy --read-all` does. Absent in
        /// older tasks: false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        read_all: bool,
    },
    /// Partition the disk as `layout` and make empty filesystems; with `base`, lay the base
    /// OS image down (a deploy of it, `layout` being its manifest's) and write its files.
    Format {
        layout: DiskLayout,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<FormatBase>,
    },
}

/// A room's multicast session, as udpcast's `udp-receiver` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MulticastOffer {
    /// udpcast's port base (even: the session uses it and the next port).
    pub portbase: u16,
    /// Where receivers find the sender (a multicast address).
    pub rendezvous: String,
    /// Seconds a receiver waits for the sender to start; then it deploys by unicast.
    pub start_timeout_secs: u64,
}

/// The endpoint's answer to a receiver about to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MulticastAnswer {
    /// The session still takes receivers.
    pub open: bool,
    /// Why not, when it does not (it started, ended or failed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// How a deploy's stream bytes reached the workstation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryPath {
    /// Every byte from the room's multicast stream.
    Multicast,
    /// Part from the multicast stream, the rest by HTTP (the receiver dropped out).
    MulticastThenUnicast,
    /// Every byte by HTTP.
    Unicast,
}

impl std::fmt::Display for DeliveryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeliveryPath::Multicast => "multicast",
            DeliveryPath::MulticastThenUnicast => "multicast, then unicast",
            DeliveryPath::Unicast => "unicast",
        })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a deploy's stream bytes came through, for the status of each workstation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub path: DeliveryPath,
    pub multicast_bytes: u64,
    pub unicast_bytes: u64,
    /// Bytes of the image's streams found on the workstation's disk (an incremental
    /// deploy: only the rest crossed the network, as `unicast_bytes`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seeded_bytes: u64,
    /// Whether the incremental deploy took the record of the workstation's last deploy:
    /// only the files changed since were read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recorded: bool,
    /// Why unicast was taken, when it was (joined late, lost the stream...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The base OS a format lays down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatBase {
    /// Store id of the base image, `base/<name>`.
    pub image_id: String,
    /// Its manifest (TOML text).
    pub manifest: String,
    /// The master's hostname.
    pub hostname: String,
    /// Files written on its root filesystem (public data only: parc's SSH key, site settings).
    pub inject: Vec<InjectFile>,
}

/// One captured filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPartition {
    pub number: u32,
    pub fs_label: Option<String>,
    pub fs_uuid: Option<String>,
    pub stream: StreamInfo,
    /// The partition's identity in the master's table (GPT type, GUID, name, attribute bits),
    /// when captured from a disk that has one: kept so Windows' BCD still names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableIdentity>,
}

/// A partition's identity in the master's partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableIdentity {
    #[serde(rename = "type")]
    pub type_code: String,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub attrs: Option<String>,
}

/// Sent after every stream was uploaded: the agent's own digests, checked by the endpoint
/// against what it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureDone {
    pub captured_from: String,
    pub partitions: Vec<CapturedPartition>,
    pub boot_area: Option<StreamInfo>,
    /// The master's disk GUID (GPT) or signature (DOS), when its disk has a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_guid: Option<String>,
    /// The identity of the partitions without a stream (an MSR), by number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_partitions: Vec<(u32, TableIdentity)>,
}

/// Progress of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub phase: String,
    /// Stream bytes transferred so far.
    pub bytes: u64,
    /// Stream bytes expected (0 = unknown).
    pub total: u64,
    /// Transfer rate over the last interval, bytes per second.
    pub rate: f64,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalReport {
    pub success: bool,
    pub message: String,
    /// A deploy's path (multicast or unicast) and bytes by each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(read_all: bool) -> TaskSpec {
        TaskSpec::Deploy {
            image_id: "b204/v1".into(),
            manifest: "format = 1\n".into(),
            hostname: "b204-p01".into(),
            unattend: false,
            multicast: None,
            read_all,
        }
    }

    #[test]
    fn read_all_crosses_the_wire_and_older_tasks_read_as_false() {
        let json = serde_json::to_string(&deploy(true)).unwrap();
        assert!(json.contains("\"read_all\":true"), "{json}");
        assert_eq!(
            serde_json::from_str::<TaskSpec>(&json).unwrap(),
            deploy(true)
        );
        // Only said when asked, and a task from an older endpoint (no field) is read as false.
        let json = serde_json::to_string(&deploy(false)).unwrap();
        assert!(!json.contains("read_all"), "{json}");
        let older = r#"{"kind":"deploy","image_id":"b204/v1","manifest":"format = 1\n","hostname":"b204-p01"}"#;
        assert_eq!(
            serde_json::from_str::<TaskSpec>(older).unwrap(),
            deploy(false)
        );
    }
}
