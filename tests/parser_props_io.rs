//! Property tests of every parser parc has besides the workspace files (those are in
//! `tests/parser_props.rs`): inventory imports (parc and LINBO `devices.csv`, GLPI CSV export,
//! GLPI REST JSON), image manifests, chunk indexes and deploy records (zstd text), TFTP
//! packets, the agent's wire messages, `parc serve`'s assignments, HTTP ranges, multicast
//! blocks, the endpoint's task table, DHCP replies, `sfdisk --json`, Windows' State.ini and
//! PowerShell's JSON. Each parser gets arbitrary input and random mutations (insert, delete,
//! bit flip) of a real valid sample, and must never panic; each valid sample parses; an error
//! that carries a line and column points inside its input; the zstd decoders stay bounded
//! (a small input never makes a large allocation, measured by this file's allocator).
//!
//! Long run (issue 15): both property files, release build, at least 1 h together on the
//! 2-core CI machine with nothing else running. Timed there, idle: this file at
//! PROPTEST_CASES=600000 in 674 s (~890 cases/s per property, 11 properties on 2 cores),
//! `parser_props` at 2000000 in 176 s (3 properties); hence
//!
//! ```sh
//! PROPTEST_CASES=3200000 cargo test --release --test parser_props_io   # ~60 min
//! PROPTEST_CASES=4000000 cargo test --release --test parser_props      # ~6 min
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parc::agent::wire::{
    CaptureDone, CapturedPartition, Delivery, DeliveryPath, FinalReport, FormatBase,
    MulticastAnswer, MulticastOffer, ProgressReport, TableIdentity, TaskSpec,
};
use parc::domain::multicast::GroupRange;
use parc::image::chunks::{ChunkIndex, ChunkParams, ChunkRef, IndexError};
use parc::image::manifest::{
    Compression, DiskLayout, Filesystem, IndexRef, Manifest, ManifestError, OsFamily, Partition,
    PartitionLabel, SoftwareItem, StreamInfo,
};
use parc::image::record::DeployRecord;
use parc::inventory::{InventoryError, glpi_api, glpi_csv, linbo, parc_csv};
use parc::netboot::endpoint::assign::parse_assignment;
use parc::netboot::endpoint::dhcp_probe;
use parc::netboot::endpoint::tasks::{StoredAction, TaskTable};
use parc::netboot::serve::range::{RangeAnswer, parse_range};
use parc::netboot::tftp;
use parc::ports::InjectFile;
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The allocator: counts this thread's live heap bytes and their peak.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let v = live.get() + delta;
        live.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are noted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        note(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            note(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` on this thread: its result, the most its heap grew meanwhile (Rust allocations;
/// zstd's own buffers are C's) and the time it took.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    let grew = (PEAK.with(Cell::get) - start).max(0) as usize;
    (r, grew, took)
}

// ---------------------------------------------------------------------------------------------
// Helpers: locations, mutations.

/// `line:col` (1-based, col in bytes; line 0 = the input as a whole) lies inside `text`.
fn inside(text: &str, line: usize, col: usize, what: &str) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        line >= 1 && line <= lines.len(),
        "{what}: line {line} outside {} lines",
        lines.len()
    );
    let l = lines[line - 1];
    prop_assert!(
        col >= 1 && col <= l.len() + 1,
        "{what}: column {col} off line {line} ({} bytes)",
        l.len()
    );
    Ok(())
}

fn index_error_inside(text: &str, e: &IndexError) -> Result<(), TestCaseError> {
    inside(text, e.line, e.col, &e.to_string())
}

fn inventory_error_inside(name: &str, text: &str, e: &InventoryError) -> Result<(), TestCaseError> {
    match e {
        InventoryError::Input {
            file, line, col, ..
        } => {
            prop_assert_eq!(file, name);
            inside(text, *line, *col, &e.to_string())
        }
        other => Err(TestCaseError::fail(format!(
            "a pure parse failed as {other}"
        ))),
    }
}

/// serde_json counts lines by `\n` and columns in bytes, 0 at the very start of a line; line
/// 0 is no place (an error found in content serde buffered: an internally tagged enum's).
fn json_error_inside(text: &str, e: &serde_json::Error) -> Result<(), TestCaseError> {
    if e.line() == 0 {
        prop_assert_eq!(e.column(), 0);
        return Ok(());
    }
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        e.line() <= lines.len(),
        "{e}: outside {} lines",
        lines.len()
    );
    prop_assert!(
        e.column() <= lines[e.line() - 1].len() + 1,
        "{e}: off its line"
    );
    Ok(())
}

fn toml_error_inside(text: &str, e: &ManifestError) -> Result<(), TestCaseError> {
    if let ManifestError::Parse(e) = e {
        if let Some(span) = e.span() {
            prop_assert!(
                span.start <= span.end && span.end <= text.len(),
                "{e}: span {span:?} outside {} bytes",
                text.len()
            );
        }
    }
    Ok(())
}

/// Bytes that matter to one format or another.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b";",
    b",",
    b"\"",
    b" ",
    b"\0",
    b"{",
    b"}",
    b"[",
    b"=",
    b"-",
    b"\\x",
    b"999999999999999999999",
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Flip(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
            ]
        )
            .prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..5)
}

fn apply(sample: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = sample.to_vec();
    for e in edits {
        match e {
            Edit::Insert(at, s) => {
                let at = at % (b.len() + 1);
                b.splice(at..at, s.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % (b.len() + 1);
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
            Edit::Flip(at, bit) => {
                if !b.is_empty() {
                    let at = at % b.len();
                    b[at] ^= 1 << bit;
                }
            }
        }
    }
    b
}

/// A text sample mutated, kept UTF-8 (text parsers take `&str`).
fn apply_text(sample: &str, edits: &[Edit]) -> String {
    String::from_utf8_lossy(&apply(sample.as_bytes(), edits)).into_owned()
}

fn zstd(text: &str) -> Vec<u8> {
    zstd::bulk::compress(text.as_bytes(), 3).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Real samples.

const EXAMPLE_DEVICES: &str = include_str!("../recipes/lycee-mistral/devices.csv");
const GLPI_EXPECTED_DEVICES: &str = include_str!("fixtures/glpi/expected-devices.csv");
const GLPI_OPTIONS: &str = include_str!("fixtures/glpi/listSearchOptions-Computer.json");
const GLPI_SEARCH: &str = include_str!("fixtures/glpi/search-Computer.json");
const GLPI_SESSION: &str = include_str!("fixtures/glpi/initSession.json");
const GLPI_ERROR_RANGE: &str = include_str!("fixtures/glpi/error-range.json");
const GLPI_ERROR_LOGIN: &str = include_str!("fixtures/glpi/error-login.json");

/// LINBO's devices.csv as linuxmuster.net writes it.
const LINBO: &str = "# linuxmuster.net devices\n\
b204;B204-PC01;win10-optiplex-7010;52:54:00:AA:BB:01;10.0.4.11;;;;classroom-studentcomputer;;1\n\
b204;b204-pc02;win10-optiplex-7010;52:54:00:aa:bb:02;DHCP;;;;classroom-studentcomputer;;1\n\
\n\
server;server;nopxe;52:54:00:00:00:01;10.0.0.1;;;;server;;0\n";

/// A GLPI computer export (Parc > Ordinateurs > Exporter > CSV), French interface.
const GLPI_CSV: &str = "\u{feff}Nom;Statut;Fabricant;Numéro de série;Modèle;Lieu;\
Informations financières et administratives - Date d'achat;\
Informations financières et administratives - Durée de garantie;Adresse MAC;Adresse IP\n\
B204-PC01;En service;Dell Inc.;7XK2Q31;OptiPlex 7010;Lycée Mistral > Bâtiment B > B204;01-09-2019;60 mois;52:54:00:aa:bb:01;10.0.4.11\n\
B204-PC02;En stock;Dell Inc.;7XK2Q32;OptiPlex 7010;;2019-09-01;;\"52:54:00:aa:bb:02\n52:54:00:aa:bb:92\";\n\
B204-PC03;Au rebut;Dell Inc.;7XK2Q33;OptiPlex 7010;Lycée Mistral > Bâtiment B > B204;01/09/2019 00:00;36;;\n";

/// The manifest of the lab's Debian base image, as `parc` captured it.
const BASE_MANIFEST: &str = r#"format = 1
room = "base"
version = "debian-12-amd64"
recipe-digest = "sha256:73ef47565c73b54ece57fc77fabebe530bf78c07fc79acb8b0d72ca024863e37"
software-digest = "sha256:73ef47565c73b54ece57fc77fabebe530bf78c07fc79acb8b0d72ca024863e37"
hardware-model = "any"
os-family = "linux"
captured-from = "debootstrap lab-e4709f428664"
captured-at = "2026-12-04T12:45:15Z"
parc-version = "0.1.0"
compression = "zstd"
software = []

[disk]
label = "gpt"

[[disk.partitions]]
number = 1
start-mib = 1
size-mib = 16
type = "linux"
filesystem = "ext4"
fs-label = "parc-data"

[[disk.partitions]]
number = 2
start-mib = 17
type = "linux"
filesystem = "ext4"
fs-label = "parc-root"
mountpoint = "/"

[disk.partitions.stream]
file = "p2.tar.zst"
sha256 = "sha256:3cddc8340525f26cf2b9cb6b2dd402701a04aab08c5c310e43649709270b6ff2"
size = 119118088
uncompressed-size = 296437248
"#;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn stream(file: &str, chunked: bool) -> StreamInfo {
    StreamInfo {
        file: file.into(),
        sha256: digest('c'),
        size: 1 << 30,
        uncompressed_size: 3 << 30,
        index: chunked.then(|| IndexRef {
            file: StreamInfo::index_file(file),
            sha256: digest('d'),
        }),
    }
}

fn partition(
    number: u32,
    start: u64,
    size: Option<u64>,
    fs: Filesystem,
    type_code: &str,
) -> Partition {
    Partition {
        number,
        start_mib: start,
        size_mib: size,
        type_code: type_code.into(),
        uuid: Some(format!("11111111-2222-4333-8444-55555555555{number}")),
        name: None,
        attrs: None,
        filesystem: fs,
        fs_label: None,
        fs_uuid: None,
        mountpoint: None,
        stream: None,
    }
}

/// A Windows room's image: ESP as blocks, MSR, NTFS as blocks (chunked), recovery; boot area.
fn windows_manifest() -> Manifest {
    let mut esp = partition(
        1,
        1,
        Some(100),
        Filesystem::Vfat,
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    );
    esp.stream = Some(stream("p1.vfat.zst", false));
    esp.name = Some("EFI system partition".into());
    let msr = partition(
        2,
        101,
        Some(16),
        Filesystem::None,
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
    );
    let mut c = partition(
        3,
        117,
        None,
        Filesystem::Ntfs,
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
    );
    c.stream = Some(stream("p3.ntfs.zst", true));
    c.fs_label = Some("Windows".into());
    let mut recovery = partition(
        4,
        118,
        Some(600),
        Filesystem::Ntfs,
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
    );
    recovery.attrs = Some("RequiredPartition GUID:63".into());
    Manifest {
        format: parc::image::manifest::FORMAT_VERSION,
        room: "c112".into(),
        version: "2026-11-22.1".into(),
        recipe_digest: digest('a'),
        software_digest: digest('b'),
        hardware_model: "optiplex-7010".into(),
        os_family: OsFamily::Windows,
        captured_from: "c112-master".into(),
        captured_at: "2026-11-22T15:00:00Z".into(),
        parc_version: "0.1.0".into(),
        compression: Compression::Zstd,
        software: vec![SoftwareItem {
            name: "libreoffice".into(),
            version: "24.8.3".into(),
        }],
        disk: DiskLayout {
            label: PartitionLabel::Gpt,
            disk_guid: Some("AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE".into()),
            partitions: vec![esp, msr, c, recovery],
        },
        boot_area: Some(StreamInfo {
            file: "boot.bin".into(),
            sha256: digest('e'),
            size: 1 << 20,
            uncompressed_size: 1 << 20,
            index: None,
        }),
    }
}

fn manifests() -> Vec<String> {
    vec![BASE_MANIFEST.to_string(), windows_manifest().render()]
}

fn index_sample() -> ChunkIndex {
    let chunks: Vec<ChunkRef> = (0u8..6)
        .map(|i| ChunkRef {
            digest: [i.wrapping_mul(37).wrapping_add(5); 32],
            len: 16384 + u32::from(i) * 9000,
        })
        .collect();
    let stored = chunks.iter().map(|c| c.len / 3 + 17).collect();
    ChunkIndex {
        params: ChunkParams {
            min: 16384,
            avg: 65536,
            max: 262144,
        },
        chunks,
        stored,
    }
}

/// A record taken of a real tree (inode numbers and change times of this filesystem).
fn record_text() -> String {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("etc")).unwrap();
    std::fs::write(d.path().join("etc/hostname"), "c112-pc01\n").unwrap();
    std::fs::write(d.path().join("etc/a b\\c"), "x").unwrap();
    let listing = vec![
        (PathBuf::new(), 512),
        (PathBuf::from("etc"), 1024),
        (PathBuf::from("etc/hostname"), 2560),
        (PathBuf::from("etc/a b\\c"), 4096),
        (PathBuf::from("gone"), 4608),
    ];
    let r = DeployRecord::take(d.path(), &digest('f'), 1_765_000_000, listing).unwrap();
    String::from_utf8(zstd::stream::decode_all(&r.encode()[..]).unwrap()).unwrap()
}

fn rrq(fields: &[&str]) -> Vec<u8> {
    let mut p = 1u16.to_be_bytes().to_vec();
    for f in fields {
        p.extend_from_slice(f.as_bytes());
        p.push(0);
    }
    p
}

fn tftp_samples() -> Vec<Vec<u8>> {
    vec![
        rrq(&["undionly.kpxe", "octet", "blksize", "1432", "tsize", "0"]),
        rrq(&["boot.ipxe", "octet", "timeout", "5"]),
        rrq(&["ipxe.efi", "netascii"]),
        vec![0, 4, 0, 7],
    ]
}

fn table_identity() -> TableIdentity {
    TableIdentity {
        type_code: "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7".into(),
        uuid: Some("11111111-2222-4333-8444-555555555553".into()),
        name: Some("Basic data partition".into()),
        attrs: None,
    }
}

/// What the endpoint and the agent send each other, as they send it.
fn wire_samples() -> Vec<(&'static str, String)> {
    let w = windows_manifest();
    vec![
        (
            "task",
            j(&TaskSpec::Deploy {
                image_id: w.id(),
                manifest: w.render(),
                hostname: "c112-pc01".into(),
                unattend: true,
                multicast: Some(MulticastOffer {
                    portbase: 9000,
                    rendezvous: "239.255.80.1".into(),
                    start_timeout_secs: 60,
                }),
                read_all: true,
            }),
        ),
        (
            "task",
            j(&TaskSpec::Capture {
                room: "c112".into(),
                version: "2026-11-22.1".into(),
                layout: w.disk.clone(),
            }),
        ),
        (
            "task",
            j(&TaskSpec::Format {
                layout: DiskLayout::single_ext4_root(Some("parc-root")),
                base: Some(FormatBase {
                    image_id: "base/debian-12-amd64".into(),
                    manifest: BASE_MANIFEST.into(),
                    hostname: "labo-master".into(),
                    inject: vec![InjectFile {
                        path: "/root/.ssh/authorized_keys".into(),
                        mode: 0o600,
                        content: "ssh-ed25519 AAAA parc\n".into(),
                    }],
                }),
            }),
        ),
        (
            "capture",
            j(&CaptureDone {
                captured_from: "c112-master".into(),
                partitions: vec![CapturedPartition {
                    number: 3,
                    fs_label: Some("Windows".into()),
                    fs_uuid: None,
                    stream: stream("p3.ntfs.zst", true),
                    table: Some(table_identity()),
                }],
                boot_area: w.boot_area.clone(),
                disk_guid: w.disk.disk_guid.clone(),
                other_partitions: vec![(2, table_identity())],
            }),
        ),
        (
            "progress",
            j(&ProgressReport {
                phase: "deploy p3.ntfs.zst".into(),
                bytes: 123_456_789,
                total: 1 << 30,
                rate: 1.25e7,
            }),
        ),
        (
            "status",
            j(&FinalReport {
                success: true,
                message: "deployed c112/2026-11-22.1".into(),
                delivery: Some(Delivery {
                    path: DeliveryPath::MulticastThenUnicast,
                    multicast_bytes: 1 << 29,
                    unicast_bytes: 1 << 20,
                    seeded_bytes: 1 << 28,
                    recorded: true,
                    note: "joined late".into(),
                }),
            }),
        ),
        (
            "multicast",
            j(&MulticastAnswer {
                open: false,
                reason: "the session started".into(),
            }),
        ),
    ]
}

fn j<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// Parses `text` as the message `kind`, as its receiver does; a task's manifest too.
fn parse_wire(kind: &str, text: &str) -> Result<bool, TestCaseError> {
    fn one<T: serde::de::DeserializeOwned>(text: &str) -> Result<Option<T>, TestCaseError> {
        match serde_json::from_str::<T>(text) {
            Ok(v) => Ok(Some(v)),
            Err(e) => json_error_inside(text, &e).map(|()| None),
        }
    }
    Ok(match kind {
        "task" => match one::<TaskSpec>(text)? {
            Some(TaskSpec::Deploy { manifest, .. }) => {
                if let Err(e) = Manifest::parse(&manifest) {
                    toml_error_inside(&manifest, &e)?;
                    return Ok(false);
                }
                true
            }
            Some(TaskSpec::Format { base: Some(b), .. }) => {
                if let Err(e) = Manifest::parse(&b.manifest) {
                    toml_error_inside(&b.manifest, &e)?;
                    return Ok(false);
                }
                true
            }
            Some(_) => true,
            None => false,
        },
        "capture" => one::<CaptureDone>(text)?.is_some(),
        "progress" => one::<ProgressReport>(text)?.is_some(),
        "status" => one::<FinalReport>(text)?.is_some(),
        "multicast" => one::<MulticastAnswer>(text)?.is_some(),
        _ => unreachable!(),
    })
}

const WIRE_KINDS: &[&str] = &["task", "capture", "progress", "status", "multicast"];

fn task_table_json() -> String {
    let mut t = TaskTable::default();
    t.assign(
        "52:54:00:aa:bb:01",
        StoredAction::Deploy {
            room: "c112".into(),
            image_id: "c112/2026-11-22.1".into(),
            hostname: "c112-pc01".into(),
            read_all: false,
        },
        "t1".into(),
        "secret-token".into(),
        1_765_000_000,
        3600,
    )
    .unwrap();
    t.assign(
        "52:54:00:aa:bb:02",
        StoredAction::Format {
            base_image: "base/debian-12-amd64".into(),
            hostname: "labo-master".into(),
            inject: Vec::new(),
        },
        "t2".into(),
        "other-token".into(),
        1_765_000_000,
        3600,
    )
    .unwrap();
    t.to_json()
}

/// A DHCPOFFER: the probe's own DISCOVER turned into a server's reply (op 2, type 2).
fn dhcp_offer() -> Vec<u8> {
    let mut p = dhcp_probe::discover_packet(0x1234_5678, [2, 0, 0, 0, 0, 1]).unwrap();
    p[0] = 2;
    let at = p
        .windows(3)
        .rposition(|w| w == [53, 1, 1])
        .expect("the DISCOVER's message type");
    p[at + 2] = 2;
    p
}

const SFDISK: &str = r#"{"partitiontable": {"label": "gpt", "id": "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE",
"device": "d.img", "unit": "sectors", "firstlba": 34, "lastlba": 8388574,
"sectorsize": 512, "partitions": [
  {"node": "d.img1", "start": 2048, "size": 204800,
   "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
   "uuid": "11111111-2222-4333-8444-555555555555", "name": "EFI"},
  {"node": "d.img4", "start": 7159808, "size": 1228800,
   "type": "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
   "uuid": "11111111-2222-4333-8444-555555555556",
   "attrs": "RequiredPartition GUID:63"}]}}"#;

const STATE_INI: &str = "[_CLEANPOINT]\r\nImageState=IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE\r\n";

fn state_ini_utf16() -> Vec<u8> {
    let mut b = vec![0xff, 0xfe];
    for u in STATE_INI.encode_utf16() {
        b.extend_from_slice(&u.to_le_bytes());
    }
    b
}

const PS_JSON: &str = "WARNING: something\n{\"Name\":\"c112-pc01\",\"Disks\":[{\"Number\":0,\"Size\":256060514304}]}\n";

// ---------------------------------------------------------------------------------------------
// Every parser on one input, with its properties; the sample's kind says which.

fn inventory(which: usize, text: &str) -> Result<bool, TestCaseError> {
    let models = ["optiplex-7010".to_string(), "elitedesk-800".to_string()];
    let (name, got) = match which {
        0 => (
            "devices.csv",
            parc_csv::parse("devices.csv", text).map(|v| v.len()),
        ),
        1 => (
            "linbo.csv",
            linbo::parse("linbo.csv", text, &models).map(|v| v.len()),
        ),
        _ => (
            "export.csv",
            glpi_csv::parse("export.csv", text).map(|v| v.len()),
        ),
    };
    match got {
        Ok(_) => Ok(true),
        Err(e) => inventory_error_inside(name, text, &e).map(|()| false),
    }
}

/// GLPI's answers as `fetch` reads them: error bodies, initSession, listSearchOptions and
/// search pages, every row to a workstation.
fn glpi_json(text: &str) -> Result<bool, TestCaseError> {
    let _ = glpi_api::error_code(text);
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json_error_inside(text, &e).map(|()| false),
    };
    let _ = v.get("session_token").and_then(Value::as_str);
    let mut ok = glpi_api::field_ids(&v).is_ok();
    let ids = glpi_api::field_ids(&serde_json::from_str(GLPI_OPTIONS).unwrap()).unwrap();
    if let Ok(rows) = glpi_api::rows(&v) {
        for r in rows {
            ok &= glpi_api::to_imported(r, &ids).is_ok();
        }
    }
    Ok(ok)
}

fn manifest(text: &str) -> Result<bool, TestCaseError> {
    match Manifest::parse(text) {
        Ok(m) => {
            // What parses renders and parses back the same.
            prop_assert_eq!(Manifest::parse(&m.render()).unwrap(), m);
            Ok(true)
        }
        Err(e) => toml_error_inside(text, &e).map(|()| false),
    }
}

fn index_text(text: &str) -> Result<bool, TestCaseError> {
    match ChunkIndex::parse(text) {
        Ok(i) => {
            prop_assert_eq!(ChunkIndex::parse(&i.render()).unwrap(), i);
            Ok(true)
        }
        Err(e) => index_error_inside(text, &e).map(|()| false),
    }
}

fn record_text_parse(text: &str) -> Result<bool, TestCaseError> {
    match DeployRecord::parse(text) {
        Ok(r) => {
            let back = DeployRecord::decode(&r.encode()).unwrap();
            prop_assert_eq!(back, r);
            Ok(true)
        }
        Err(e) => index_error_inside(text, &e).map(|()| false),
    }
}

/// The zstd decoders on raw bytes: never panic, errors say line 1 or a place in the text,
/// and a deploy record (what a workstation sends the endpoint) never grows the heap past twice
/// its bound, 1 MiB plus 128 times its compressed size.
fn compressed(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let bound = 2 * ((1 << 20) + bytes.len() * 128) + (1 << 20);
    let (i, _, _) = measured(|| ChunkIndex::decode(bytes));
    let (r, grew, _) = measured(|| DeployRecord::decode(bytes));
    prop_assert!(grew <= bound, "{grew} bytes from {}", bytes.len());
    for e in [i.as_ref().err(), r.as_ref().err()].into_iter().flatten() {
        if (e.line, e.col) != (1, 1) {
            // The text read: the error is about it.
            let text = zstd::stream::decode_all(bytes).unwrap();
            index_error_inside(&String::from_utf8(text).unwrap(), e)?;
        }
    }
    Ok(i.is_ok() || r.is_ok())
}

fn tftp_packet(p: &[u8]) -> Result<bool, TestCaseError> {
    let ack = tftp::parse_ack(p);
    prop_assert_eq!(ack.is_some(), p.len() >= 4 && p[..2] == [0, 4]);
    Ok(match tftp::parse_request(p) {
        Ok(r) => {
            if let Some(b) = r.blksize {
                prop_assert!((8..=65464).contains(&b));
            }
            true
        }
        Err(_) => ack.is_some(),
    })
}

/// A requested file name either stays under the root or is refused.
fn tftp_resolve(root: &Path, name: &str) -> Result<(), TestCaseError> {
    if let Ok(p) = tftp::resolve(root, name) {
        prop_assert!(
            p.starts_with(root.canonicalize().unwrap()),
            "{name:?} → {p:?}"
        );
    }
    Ok(())
}

fn small_parsers(text: &str) -> Result<(), TestCaseError> {
    let _ = parse_assignment(text);
    if let Ok(g) = GroupRange::parse(text) {
        prop_assert!(g.base.is_multicast() && (4..=30).contains(&g.prefix));
        let _ = (g.rendezvous(), g.data_group(u32::MAX));
    }
    for len in [0u64, 1, 4096, u64::MAX] {
        match parse_range(Some(text), len) {
            RangeAnswer::Part(r) => prop_assert!(r.start <= r.end && r.end < len),
            RangeAnswer::Unsatisfiable => prop_assert!(len < u64::MAX),
            RangeAnswer::Whole => {}
        }
    }
    if let Err(e) = TaskTable::from_json(text) {
        json_error_inside(text, &e)?;
    }
    let _ = parc::image::disk::parse_sfdisk_json(text);
    let _ = parc::image::windows::image_state(text.as_bytes());
    let _ = parc::psjson::last_object::<Value>(text);
    let _ = parc::psjson::list::<Value>(text);
    Ok(())
}

fn dhcp(p: &[u8]) {
    let _ = dhcp_probe::parse_reply(p, 0x1234_5678, std::net::Ipv4Addr::new(10, 0, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// The valid samples parse, and the decoders refuse crafted size claims quickly.

#[test]
fn valid_samples_parse() {
    let check = |r: Result<bool, TestCaseError>, what: &str| {
        assert!(r.expect(what), "{what} does not parse");
    };
    check(inventory(0, EXAMPLE_DEVICES), "example devices.csv");
    check(inventory(0, GLPI_EXPECTED_DEVICES), "expected-devices.csv");
    check(inventory(1, LINBO), "LINBO devices.csv");
    check(inventory(2, GLPI_CSV), "GLPI export");
    assert_eq!(glpi_csv::parse("x", GLPI_CSV).unwrap().len(), 3);
    for (what, json) in [
        ("listSearchOptions", GLPI_OPTIONS),
        ("search", GLPI_SEARCH),
        ("initSession", GLPI_SESSION),
    ] {
        assert!(
            serde_json::from_str::<Value>(json).is_ok(),
            "{what} is not JSON"
        );
    }
    check(glpi_json(GLPI_SEARCH), "GLPI search");
    assert_eq!(
        glpi_api::error_code(GLPI_ERROR_RANGE).as_deref(),
        Some("ERROR_RANGE_EXCEED_TOTAL")
    );
    assert!(glpi_api::error_code(GLPI_ERROR_LOGIN).is_some());
    for m in manifests() {
        check(manifest(&m), "a manifest");
    }
    let index = index_sample();
    check(index_text(&index.render()), "a chunk index");
    assert_eq!(ChunkIndex::decode(&index.encode()).unwrap(), index);
    let record = record_text();
    check(record_text_parse(&record), "a deploy record");
    assert!(compressed(&zstd(&record)).unwrap());
    assert!(compressed(&index.encode()).unwrap());
    for p in tftp_samples() {
        check(tftp_packet(&p), "a TFTP packet");
    }
    for (kind, json) in wire_samples() {
        check(parse_wire(kind, &json), kind);
    }
    assert!(parse_assignment("52:54:00:aa:bb:01=deploy:c112/2026-11-22.1:c112-pc01").is_ok());
    assert!(GroupRange::parse("239.255.80.0/24").is_ok());
    assert!(matches!(
        parse_range(Some("bytes=10-"), 100),
        RangeAnswer::Part(_)
    ));
    assert_eq!(
        TaskTable::from_json(&task_table_json())
            .unwrap()
            .tasks
            .len(),
        2
    );
    let offer = dhcp_probe::parse_reply(&dhcp_offer(), 0x1234_5678, "10.0.0.1".parse().unwrap())
        .expect("an offer");
    assert!(offer.pxe);
    assert!(parc::image::disk::parse_sfdisk_json(SFDISK).is_ok());
    for b in [STATE_INI.as_bytes().to_vec(), state_ini_utf16()] {
        assert_eq!(
            parc::image::windows::image_state(&b).as_deref(),
            Some("IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE")
        );
    }
    assert!(parc::psjson::last_object::<Value>(PS_JSON).is_ok());
}

/// A zstd frame header claiming `size` bytes of content, then one raw block of `data`.
fn frame_claiming(size: u64, data: &[u8]) -> Vec<u8> {
    // Magic, then the frame header descriptor: content size on 8 bytes, single segment.
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0b1110_0000];
    f.extend_from_slice(&size.to_le_bytes());
    // Last block, raw, of data.len() bytes.
    let h = (data.len() as u32) << 3 | 1;
    f.extend_from_slice(&h.to_le_bytes()[..3]);
    f.extend_from_slice(data);
    f
}

/// `n` zstd RLE blocks of 128 KiB of `byte`: 4 bytes each, a bomb of 32768:1.
fn rle_frame(byte: u8, blocks: usize) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0b0000_0000, 0x58]; // window 128 KiB (descriptor)
    for k in 0..blocks {
        let last = u32::from(k + 1 == blocks);
        let h = (128u32 << 10) << 3 | 1 << 1 | last;
        f.extend_from_slice(&h.to_le_bytes()[..3]);
        f.push(byte);
    }
    f
}

type Decoder = dyn Fn(&[u8]) -> Result<(), IndexError>;

#[test]
fn decoders_refuse_huge_claims_quickly() {
    let header = format!("{}\n", index_sample().render().lines().next().unwrap());
    let claims: Vec<(&str, Vec<u8>)> = vec![
        ("claims 1 TiB", frame_claiming(1 << 40, header.as_bytes())),
        ("claims 2 GiB", frame_claiming(2 << 30, header.as_bytes())),
        (
            "claims u64::MAX",
            frame_claiming(u64::MAX, header.as_bytes()),
        ),
    ];
    let bombs: Vec<(&str, Vec<u8>)> = vec![
        // 40 KiB that decompress to 1.25 GiB of spaces.
        ("a bomb of spaces", rle_frame(b' ', 10 << 10)),
        // 4 KiB that decompress to 128 MiB of newlines.
        ("a bomb of newlines", rle_frame(b'\n', 1 << 10)),
    ];
    let index = |b: &[u8]| ChunkIndex::decode(b).map(drop);
    let record = |b: &[u8]| DeployRecord::decode(b).map(drop);
    let decoders: [(&str, &Decoder); 2] = [("index", &index), ("record", &record)];
    // An index is trusted (the image store's) and may compress without bound: a stream of
    // zeros makes identical lines. Records come from workstations: bombs are refused too.
    let cases = claims
        .iter()
        .flat_map(|c| decoders.iter().map(move |d| (c, d)))
        .chain(bombs.iter().map(|c| (c, &decoders[1])));
    for ((what, bytes), (decoder, run)) in cases {
        let (got, grew, took) = measured(|| run(bytes));
        assert!(got.is_err(), "{decoder}, {what}: read");
        assert!(
            grew <= 16 << 20,
            "{decoder}, {what}: {} bytes in, heap grew {grew} bytes",
            bytes.len()
        );
        assert!(
            took < Duration::from_secs(2),
            "{decoder}, {what}: refused after {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The properties.

fn text_sample(which: usize) -> (usize, String) {
    // (parser, sample): 0-2 inventory, 3 GLPI JSON, 4 manifest, 5 index, 6 record, 7 small.
    let mut all: Vec<(usize, String)> = vec![
        (0, EXAMPLE_DEVICES.into()),
        (1, LINBO.into()),
        (2, GLPI_CSV.into()),
        (3, GLPI_SEARCH.into()),
        (3, GLPI_OPTIONS.into()),
        (3, GLPI_ERROR_RANGE.into()),
        (4, BASE_MANIFEST.into()),
        (4, windows_manifest().render()),
        (5, index_sample().render()),
        (6, record_text()),
        (7, task_table_json()),
        (7, SFDISK.into()),
        (7, PS_JSON.into()),
        (7, "52:54:00:aa:bb:01=capture:c112:2026-11-22.1".into()),
        (7, "239.255.80.0/24".into()),
        (7, "bytes=1024-4095".into()),
    ];
    all.swap_remove(which % all.len())
}

const TEXT_SAMPLES: usize = 16;

fn parse_text(parser: usize, text: &str) -> Result<(), TestCaseError> {
    match parser {
        0..=2 => inventory(parser, text).map(drop),
        3 => glpi_json(text).map(drop),
        4 => manifest(text).map(drop),
        5 => index_text(text).map(drop),
        6 => record_text_parse(text).map(drop),
        _ => small_parsers(text),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(parser in 0usize..8, text in "\\PC*") {
        parse_text(parser, &text)?;
        for kind in WIRE_KINDS {
            parse_wire(kind, &text)?;
        }
    }

    #[test]
    fn mutated_text_samples_never_panic(which in 0..TEXT_SAMPLES, e in edits()) {
        let (parser, sample) = text_sample(which);
        let text = apply_text(&sample, &e);
        parse_text(parser, &text)?;
        // Every parser sees every mutated sample: a GLPI answer as a manifest, and so on.
        parse_text((parser + 1 + which) % 8, &text)?;
    }

    #[test]
    fn mutated_wire_messages_never_panic(which in 0usize..7, e in edits()) {
        let (kind, json) = wire_samples().swap_remove(which);
        parse_wire(kind, &apply_text(&json, &e))?;
    }

    #[test]
    fn mutated_manifests_inside_a_task_never_panic(e in edits()) {
        // The manifest the agent reads is the JSON string's content: mutate that, not the JSON.
        let w = windows_manifest();
        let task = TaskSpec::Deploy {
            image_id: w.id(),
            manifest: apply_text(&w.render(), &e),
            hostname: "c112-pc01".into(),
            unattend: false,
            multicast: None,
            read_all: false,
        };
        parse_wire("task", &serde_json::to_string(&task).unwrap())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        tftp_packet(&bytes)?;
        compressed(&bytes)?;
        dhcp(&bytes);
        let _ = parc::image::windows::image_state(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(which in 0usize..5, e in edits()) {
        if which < 4 {
            tftp_packet(&apply(&tftp_samples()[which], &e))?;
        } else {
            dhcp(&apply(&dhcp_offer(), &e));
        }
    }

    #[test]
    fn mutated_compressed_files_never_panic(record in any::<bool>(), text_edits in any::<bool>(),
        e in edits()) {
        let text = if record { record_text() } else { index_sample().render() };
        let bytes = if text_edits {
            zstd(&apply_text(&text, &e))
        } else {
            apply(&zstd(&text), &e)
        };
        compressed(&bytes)?;
    }

    #[test]
    fn zstd_frames_claiming_any_size_are_bounded(size in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..64)) {
        compressed(&frame_claiming(size, &data))?;
    }

    #[test]
    fn tftp_names_never_leave_the_root(name in prop_oneof![
        "\\PC{0,24}",
        "((\\.\\.|\\.|[a-z]{1,4}|/|\\\\|%2e|\0){1,8})",
    ]) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("efi")).unwrap();
        std::fs::write(root.join("efi/ipxe.efi"), "x").unwrap();
        std::fs::write(d.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("link")).unwrap();
        tftp_resolve(&root, &name)?;
    }
}
