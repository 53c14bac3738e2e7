//! The image manifest (`manifest.toml`): what an image is, how its disk is laid out and how to
//! check each of its streams. Pure: parsing, rendering and validation, no I/O.
//!
//! The manifest uses its own plain types (room id, digests as `sha256:<hex>` strings, the
//! software list as name/version pairs) so the image layer does not depend on the recipe model.

use serde::{Deserialize, Serialize};

/// The manifest format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One image's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Manifest format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The room this image is the master of.
    pub room: String,
    /// The image version inside the room (folder name), e.g. `2026-11-22.1`.
    pub version: String,
    /// Digest of the recipe the master was built from (`sha256:<hex>`).
    pub recipe_digest: String,
    /// Digest of the signed software list (`sha256:<hex>`).
    pub software_digest: String,
    /// Hardware model id of the master (the room's model).
    pub hardware_model: String,
    pub os_family: OsFamily,
    /// Hostname of the master the image was captured from.
    pub captured_from: String,
    /// When the capture finished (RFC 3339, UTC), passed in by the caller.
    pub captured_at: String,
    /// Version of parc that captured the image.
    pub parc_version: String,
    pub compression: Compression,
    /// The software installed on the master, with versions.
    #[serde(default)]
    pub software: Vec<SoftwareItem>,
    pub disk: DiskLayout,
    /// Raw copy of the disk's first MiB (boot code and the gap before the first partition),
    /// written back last, after every stream verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_area: Option<StreamInfo>,
}

pub use crate::domain::recipe::OsFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Each filesystem stream is a tar archive compressed with zstd (`.tar.zst`).
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftwareItem {
    pub name: String,
    pub version: String,
}

/// The partition table to recreate on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiskLayout {
    pub label: PartitionLabel,
    /// The disk's identifier, recreated as captured: the GPT disk GUID, or the DOS disk
    /// signature (`0x…`). Windows' BCD names its partitions by disk and partition GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_guid: Option<String>,
    pub partitions: Vec<Partition>,
}

impl DiskLayout {
    /// GPT with one ext4 root filesystem from 1 MiB to the end of the disk, labelled
    /// `fs_label` (the benches' and tests' simplest Linux disk).
    pub fn single_ext4_root(fs_label: Option<&str>) -> Self {
        DiskLayout {
            label: PartitionLabel::Gpt,
            disk_guid: None,
            partitions: vec![Partition {
                number: 1,
                start_mib: 1,
                size_mib: None,
                type_code: "linux".into(),
                uuid: None,
                name: None,
                attrs: None,
                filesystem: Filesystem::Ext4,
                fs_label: fs_label.map(str::to_string),
                fs_uuid: None,
                mountpoint: Some("/".into()),
                stream: None,
            }],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionLabel {
    Gpt,
    Dos,
}

/// One partition and, when it holds a filesystem parc restores, that filesystem's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Partition {
    /// Partition number (1-based).
    pub number: u32,
    /// Start, in MiB from the start of the disk (>= 1: the first MiB is the boot area).
    pub start_mib: u64,
    /// Size in MiB; absent means "all the room the other partitions leave" (one partition at
    /// most). The partitions after it keep their sizes and the gaps between them and move so
    /// the last one ends 1 MiB before the end of the disk: a Windows partition grows on a
    /// larger disk and its recovery partition stays after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u64>,
    /// Partition type as sfdisk takes it (GPT type GUID, DOS hex code or an sfdisk alias).
    #[serde(rename = "type")]
    pub type_code: String,
    /// GPT partition GUID (unique), recreated as captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// GPT partition name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GPT attribute bits as sfdisk writes them (`RequiredPartition GUID:63`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<String>,
    pub filesystem: Filesystem,
    /// Filesystem label and UUID, recreated identically so fstab and the bootloader still match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_uuid: Option<String>,
    /// Where the filesystem is mounted on the installed system (`/` gets the id marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// The content of the filesystem; absent for swap or an empty filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Ext4,
    Vfat,
    Swap,
    /// NTFS, streamed as partclone's image of the used clusters (see `images/README.md`).
    Ntfs,
    /// No filesystem parc knows: the partition is created and left empty.
    None,
}

impl Filesystem {
    /// Whether the filesystem can hold Unix owners, modes and xattrs.
    pub fn is_posix(self) -> bool {
        matches!(self, Filesystem::Ext4)
    }

    /// Whether parc mounts it to unpack a tree stream (ext4, FAT).
    pub fn is_mountable(self) -> bool {
        matches!(self, Filesystem::Ext4 | Filesystem::Vfat)
    }

    /// The partclone tool that images this filesystem's used blocks, when parc can stream it
    /// as blocks (`pN.<fs>.zst`): NTFS always, FAT for a partition parc writes nothing into
    /// (Windows' ESP: its FAT type, serial and boot sector come back as they were).
    pub fn partclone(self) -> Option<&'static str> {
        match self {
            Filesystem::Ntfs => Some("partclone.ntfs"),
            Filesystem::Vfat => Some("partclone.fat"),
            _ => None,
        }
    }

    /// The stream file of partition `number` holding this filesystem as files (tar) or as
    /// partclone's block image.
    pub fn stream_file(self, number: u32, kind: StreamKind) -> String {
        match kind {
            StreamKind::Files => format!("p{number}.tar.zst"),
            StreamKind::Blocks => format!("p{number}.{}.zst", self.as_str()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Vfat => "vfat",
            Filesystem::Swap => "swap",
            Filesystem::Ntfs => "ntfs",
            Filesystem::None => "none",
        }
    }
}

/// How a stream holds its filesystem: the files in a tar archive, or partclone's image of the
/// used blocks. Told by the stream's file name ([`Filesystem::stream_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Files,
    Blocks,
}

/// Whether `type_code` names an EFI system partition (GPT type GUID or sfdisk's aliases).
pub fn is_esp(type_code: &str) -> bool {
    type_code.eq_ignore_ascii_case("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        || ["uefi", "U", "ef"]
            .iter()
            .any(|a| type_code.eq_ignore_ascii_case(a))
}

impl Partition {
    /// How this partition's stream holds its filesystem (None without a stream).
    pub fn stream_kind(&self) -> Option<StreamKind> {
        let s = self.stream.as_ref()?;
        if s.file == self.filesystem.stream_file(self.number, StreamKind::Blocks) {
            Some(StreamKind::Blocks)
        } else {
            Some(StreamKind::Files)
        }
    }
}

/// One stored stream: its file in the image folder and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StreamInfo {
    /// File name inside the image folder (`<name>.tar.zst`, or `boot.bin`).
    pub file: String,
    /// sha256 of the stored (compressed) bytes: `sha256:<hex>`.
    pub sha256: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// Size once decompressed (the tar archive).
    pub uncompressed_size: u64,
    /// The stream stored as content-defined chunks in the store's `chunks/` folder: the
    /// image folder holds their index instead of `file`, and `sha256` and `size` are those of
    /// the chunk files concatenated in the index's order (what the endpoint serves as `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexRef>,
}

/// A stream's chunk index: its file in the image folder and the sha256 of that file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IndexRef {
    pub file: String,
    pub sha256: String,
}

impl StreamInfo {
    /// The index file of stream file `file`: `<file>.idx.zst` (zstd-compressed text).
    pub fn index_file(file: &str) -> String {
        format!("{file}.idx.zst")
    }
}

/// Why a manifest is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid TOML for an image: {0}")]
    Parse(#[from] Box<toml::de::Error>),
    #[error("manifest: {0}")]
    Invalid(String),
}

/// The size of the boot area (the disk's first MiB).
pub const BOOT_AREA: u64 = 1 << 20;

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(Box::new(e)))?;
        m.validate()?;
        Ok(m)
    }

    /// Renders the manifest as TOML.
    pub fn render(&self) -> String {
        toml::to_string_pretty(self).expect("a manifest always serialises")
    }

    /// `<room>/<version>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.room, self.version)
    }

    /// Every stream of the image, the boot area first.
    pub fn streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.boot_area.iter().chain(
            self.disk
                .partitions
                .iter()
                .filter_map(|p| p.stream.as_ref()),
        )
    }

    /// Checks the rules a manifest must follow.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |m: String| Err(ManifestError::Invalid(m));
        if self.format != FORMAT_VERSION {
            return bad(format!(
                "format {} is not supported (this parc reads format {FORMAT_VERSION})",
                self.format
            ));
        }
        check_name("room", &self.room)?;
        check_name("version", &self.version)?;
        for (what, d) in [
            ("recipe-digest", &self.recipe_digest),
            ("software-digest", &self.software_digest),
        ] {
            check_digest(what, d)?;
        }
        let parts = &self.disk.partitions;
        if parts.is_empty() {
            return bad("disk has no partition".into());
        }
        let mut end = 1u64;
        let mut files = std::collections::BTreeSet::new();
        let mut growing: Option<u32> = None;
        for p in parts {
            if p.start_mib < end {
                return bad(format!(
                    "partition {} starts at {} MiB, inside the boot area or the previous partition",
                    p.number, p.start_mib
                ));
            }
            match p.size_mib {
                Some(0) => return bad(format!("partition {} has size 0", p.number)),
                Some(s) => end = p.start_mib + s,
                None => {
                    if let Some(g) = growing {
                        return bad(format!(
                            "partitions {g} and {} have no size: one partition at most takes the room left",
                            p.number
                        ));
                    }
                    growing = Some(p.number);
                    // The next one may start anywhere after this start: it moves on deploy.
                    end = p.start_mib + 1;
                }
            }
            if let Some(s) = &p.stream {
                if p.filesystem == Filesystem::Swap || p.filesystem == Filesystem::None {
                    return bad(format!(
                        "partition {} has a stream but no filesystem to hold it",
                        p.number
                    ));
                }
                check_stream(s)?;
                let fs = p.filesystem;
                let files_ok = fs != Filesystem::Ntfs;
                let blocks_ok = fs.partclone().is_some();
                let named = |k| fs.stream_file(p.number, k);
                if !((files_ok && s.file == named(StreamKind::Files))
                    || (blocks_ok && s.file == named(StreamKind::Blocks)))
                {
                    let mut expected = Vec::new();
                    if files_ok {
                        expected.push(named(StreamKind::Files));
                    }
                    if blocks_ok {
                        expected.push(named(StreamKind::Blocks));
                    }
                    return bad(format!(
                        "partition {} ({}) has stream {}: expected {}",
                        p.number,
                        fs.as_str(),
                        s.file,
                        expected.join(" or ")
                    ));
                }
                if !files.insert(s.file.clone()) {
                    return bad(format!("stream file {} is used twice", s.file));
                }
            }
        }
        if let Some(b) = &self.boot_area {
            check_stream(b)?;
            if b.uncompressed_size != BOOT_AREA || b.size != BOOT_AREA {
                return bad(format!("boot area {} is not exactly 1 MiB", b.file));
            }
        }
        Ok(())
    }
}

/// Room and version names become folder names: keep them to a safe alphabet.
pub fn check_name(what: &str, s: &str) -> Result<(), ManifestError> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!(
            "{what} `{s}` must be 1-64 characters among a-z A-Z 0-9 - _ . and not start with a dot"
        )))
    }
}

fn check_digest(what: &str, d: &str) -> Result<(), ManifestError> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => Ok(()),
        _ => Err(ManifestError::Invalid(format!(
            "{what} `{d}` is not `sha256:` followed by 64 hex digits"
        ))),
    }
}

fn check_stream(s: &StreamInfo) -> Result<(), ManifestError> {
    check_name("stream file", &s.file)?;
    check_digest(&format!("sha256 of {}", s.file), &s.sha256)?;
    if let Some(i) = &s.index {
        check_name("index file", &i.file)?;
        check_digest(&format!("sha256 of {}", i.file), &i.sha256)?;
        if i.file != StreamInfo::index_file(&s.file) {
            return Err(ManifestError::Invalid(format!(
                "stream {} has index {}: expected {}",
                s.file,
                i.file,
                StreamInfo::index_file(&s.file)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            room: "b204".into(),
            version: "2026-11-22.1".into(),
            recipe_digest: format!("sha256:{}", "a".repeat(64)),
            software_digest: format!("sha256:{}", "b".repeat(64)),
            hardware_model: "optiplex-7010".into(),
            os_family: OsFamily::Linux,
            captured_from: "b204-master".into(),
            captured_at: "2026-11-22T15:00:00Z".into(),
            parc_version: "0.1.0".into(),
            compression: Compression::Zstd,
            software: vec![SoftwareItem {
                name: "libreoffice".into(),
                version: "7.4".into(),
            }],
            disk: DiskLayout {
                label: PartitionLabel::Gpt,
                disk_guid: None,
                partitions: vec![Partition {
                    number: 1,
                    start_mib: 1,
                    size_mib: None,
                    type_code: "linux".into(),
                    uuid: None,
                    name: None,
                    attrs: None,
                    filesystem: Filesystem::Ext4,
                    fs_label: Some("root".into()),
                    fs_uuid: None,
                    mountpoint: Some("/".into()),
                    stream: Some(StreamInfo {
                        file: "p1.tar.zst".into(),
                        sha256: format!("sha256:{}", "c".repeat(64)),
                        size: 10,
                        uncompressed_size: 20,
                        index: None,
                    }),
                }],
            },
            boot_area: None,
        }
    }

    #[test]
    fn renders_and_parses_back() {
        let m = sample();
        let text = m.render();
        assert!(text.contains("recipe-digest"), "{text}");
        assert_eq!(Manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_names() {
        let text = sample().render().replace("room = ", "rooom = ");
        assert!(Manifest::parse(&text).is_err());
        let mut m = sample();
        m.room = "../etc".into();
        assert!(m.validate().unwrap_err().to_string().contains("room"));
    }

    #[test]
    fn rejects_overlapping_partitions_and_open_middle_partition() {
        let mut m = sample();
        let mut p2 = m.disk.partitions[0].clone();
        p2.number = 2;
        p2.stream = None;
        p2.start_mib = 50;
        m.disk.partitions.push(p2);
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("partitions 1 and 2 have no size"), "{err}");
        m.disk.partitions[0].size_mib = Some(100);
        m.disk.partitions[1].start_mib = 50;
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("partition 2 starts at 50"), "{err}");
        // A growing partition in the middle (Windows, then its recovery partition).
        m.disk.partitions[0].size_mib = None;
        m.disk.partitions[1].start_mib = 2;
        m.disk.partitions[1].size_mib = Some(600);
        m.validate().unwrap();
    }

    #[test]
    fn manifests_without_gpt_identity_still_parse() {
        let m = sample();
        let text = m.render();
        assert!(
            !text.contains("uuid") && !text.contains("disk-guid"),
            "{text}"
        );
        let mut w = sample();
        w.disk.disk_guid = Some("0E6B3F4C-1D2A-4B5C-9D8E-7F6A5B4C3D2E".into());
        w.disk.partitions[0].uuid = Some("5D1F2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A5B".into());
        w.disk.partitions[0].attrs = Some("RequiredPartition GUID:63".into());
        w.disk.partitions[0].filesystem = Filesystem::Ntfs;
        w.disk.partitions[0].stream.as_mut().unwrap().file = "p1.ntfs.zst".into();
        assert_eq!(Manifest::parse(&w.render()).unwrap(), w);
    }

    #[test]
    fn the_stream_name_says_files_or_blocks() {
        let mut m = sample();
        assert_eq!(m.disk.partitions[0].stream_kind(), Some(StreamKind::Files));
        // NTFS only as blocks; ext4 only as files; FAT either way.
        for (fs, file, ok) in [
            (Filesystem::Ntfs, "p1.tar.zst", false),
            (Filesystem::Ntfs, "p1.ntfs.zst", true),
            (Filesystem::Ext4, "p1.ext4.zst", false),
            (Filesystem::Vfat, "p1.tar.zst", true),
            (Filesystem::Vfat, "p1.vfat.zst", true),
            (Filesystem::Vfat, "p2.vfat.zst", false),
        ] {
            m.disk.partitions[0].filesystem = fs;
            m.disk.partitions[0].stream.as_mut().unwrap().file = file.into();
            let r = m.validate();
            assert_eq!(r.is_ok(), ok, "{fs:?} {file}: {r:?}");
            if !ok {
                assert!(r.unwrap_err().to_string().contains("expected p1."));
            }
        }
        m.disk.partitions[0].stream.as_mut().unwrap().file = "p1.vfat.zst".into();
        assert_eq!(m.disk.partitions[0].stream_kind(), Some(StreamKind::Blocks));
        assert!(is_esp("c12a7328-f81f-11d2-ba4b-00a0c93ec93b") && is_esp("uefi"));
        assert!(!is_esp("linux"));
    }

    #[test]
    fn a_chunked_stream_names_its_index() {
        let mut m = sample();
        let s = m.disk.partitions[0].stream.as_mut().unwrap();
        s.index = Some(IndexRef {
            file: "p1.tar.zst.idx.zst".into(),
            sha256: format!("sha256:{}", "d".repeat(64)),
        });
        assert_eq!(Manifest::parse(&m.render()).unwrap(), m);
        let s = m.disk.partitions[0].stream.as_mut().unwrap();
        s.index.as_mut().unwrap().file = "p2.idx".into();
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("expected p1.tar.zst.idx.zst"), "{e}");
    }

    #[test]
    fn rejects_bad_digest() {
        let mut m = sample();
        m.recipe_digest = "md5:00".into();
        assert!(
            m.validate()
                .unwrap_err()
                .to_string()
                .contains("recipe-digest")
        );
    }
}
