//! WIM, the format of Windows Deployment Services and DISM, at the store's edge:
//!
//! - [`export_wim`]: an image's Windows partition as a standard WIM (one image, named), for
//!   lycées that keep WDS (`Import-WdsInstallImage`) or apply with DISM. The partition's
//!   partclone stream is restored into a sparse file, then `wimlib-imagex capture` reads that
//!   NTFS volume through its NTFS-3G backend (security descriptors, named streams, reparse
//!   points, short names kept) and writes an LZX WIM with an integrity table, checked with
//!   `wimlib-imagex verify` before it takes its name.
//! - [`import_wim`]: a manufacturer's WIM as a base image of a Windows recipe: applied with
//!   `wimlib-imagex apply` onto a fresh NTFS volume in a sparse file, then captured as blocks
//!   like a master's Windows partition. The layout's other partitions (ESP, MSR, recovery) are
//!   made empty at deploy; the ESP's boot files come from Windows' `bcdboot`.
//!
//! Scratch files live in a hidden folder of the store (same filesystem, ignored by listings,
//! removed when done or on failure, and by `parc image prune` after a crash).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::capture::{CaptureSettings, capture_blocks};
use super::deploy::restore_stream;
use super::disk::{probe_fs, run};
use super::error::{ImageError, ImageResult};
use super::import::ImportMeta;
use super::manifest::{DiskLayout, Filesystem, Manifest, OsFamily, Partition, StreamKind};
use super::progress::Progress;
use super::store::{FsImageStore, SCRATCH_PREFIX, parse_id};

const MIB: u64 = 1 << 20;

/// The Windows partition of a layout: the NTFS partition that grows with the disk, else the
/// largest NTFS one (the recovery partition has a fixed, smaller size).
pub fn windows_partition(layout: &DiskLayout) -> Option<&Partition> {
    let ntfs = || {
        layout
            .partitions
            .iter()
            .filter(|p| p.filesystem == Filesystem::Ntfs)
    };
    ntfs()
        .find(|p| p.size_mib.is_none())
        .or_else(|| ntfs().max_by_key(|p| p.size_mib))
}

/// Name and description of the exported WIM image (what WDS and DISM show).
#[derive(Debug, Clone)]
pub struct WimLabel {
    pub name: String,
    pub description: String,
}

/// Exports image `id`'s Windows partition to `out` as a one-image WIM named `label`.
pub fn export_wim(
    store: &FsImageStore,
    id: &str,
    out: &Path,
    label: &WimLabel,
    progress: &Progress,
) -> ImageResult<()> {
    let m = store.manifest(id)?;
    let p = windows_partition(&m.disk)
        .filter(|p| p.stream_kind() == Some(StreamKind::Blocks))
        .ok_or_else(|| {
            ImageError::Invalid(format!(
                "{id} has no captured NTFS partition to export as a WIM (its OS family is {})",
                m.os_family.as_str()
            ))
        })?;
    let s = p.stream.as_ref().expect("a block stream");
    let parent = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ImageError::Invalid(format!(
            "{}: folder {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    let scratch = Scratch::new(store, "export")?;
    let volume = scratch.path("volume.img");
    progress.set_phase(format!("restore {}", s.file));
    let mut source = super::store::StoreSource::new(store.clone(), id);
    let vol = volume.clone();
    restore_stream(&mut source, s, progress, |r| {
        let mut cmd = Command::new("partclone.ntfs");
        // -W: a sparse regular file of the volume's size rather than a device.
        cmd.args([
            "--restore",
            "--quiet",
            "--restore_raw_file",
            "--source",
            "-",
        ])
        .arg("--overwrite")
        .arg(&vol);
        super::deploy::feed_command(cmd, r)
    })?;
    progress.set_phase(format!("capture {}", out.display()));
    let tmp = partial_path(out);
    let _ = std::fs::remove_file(&tmp);
    let made = (|| {
        run(Command::new("wimlib-imagex")
            .arg("capture")
            .arg(&volume)
            .arg(&tmp)
            .arg(&label.name)
            .arg(&label.description)
            .arg("--check")
            .arg(format!("--image-property=DISPLAYNAME={}", label.name))
            .arg(format!(
                "--image-property=DISPLAYDESCRIPTION={}",
                label.description
            )))?;
        progress.set_phase("verify");
        run(Command::new("wimlib-imagex").arg("verify").arg(&tmp))?;
        std::fs::rename(&tmp, out).map_err(ImageError::io(out))
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// `out` with `.partial` appended: the WIM takes its name only once verified.
fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// What `wimlib-imagex info` says of image `index` of `wim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WimImage {
    pub name: String,
    pub total_bytes: u64,
}

pub fn wim_image(wim: &Path, index: u32) -> ImageResult<WimImage> {
    let info = run(Command::new("wimlib-imagex")
        .arg("info")
        .arg(wim)
        .arg(index.to_string()))?;
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    let total_bytes = field("Total Bytes")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ImageError::Invalid(format!(
                "{}: wimlib-imagex info shows no size for image {index}",
                wim.display()
            ))
        })?;
    Ok(WimImage {
        name: field("Name").unwrap_or_default(),
        total_bytes,
    })
}

/// The NTFS volume size a WIM image of `total_bytes` is applied onto: a quarter more for
/// NTFS's own structures and small files' clusters, plus 256 MiB, in whole MiB.
pub fn volume_size_for(total_bytes: u64) -> u64 {
    (total_bytes + total_bytes / 4 + 256 * MIB).div_ceil(MIB) * MIB
}

/// Imports image `index` of `wim` as image `id` laid out as `layout`: the WIM fills the
/// layout's Windows partition ([`windows_partition`]); the manifest's OS family is Windows.
pub fn import_wim(
    store: &FsImageStore,
    id: &str,
    wim: &Path,
    index: u32,
    layout: DiskLayout,
    meta: &ImportMeta,
    progress: &Progress,
) -> ImageResult<Manifest> {
    let (room, version) = parse_id(id)?;
    let mut layout = layout;
    let number = windows_partition(&layout)
        .map(|p| p.number)
        .ok_or_else(|| {
            ImageError::Invalid(
                "the layout has no NTFS partition to apply the WIM onto (filesystem = \"ntfs\")"
                    .into(),
            )
        })?;
    if !wim.is_file() {
        return Err(ImageError::Invalid(format!(
            "{} is not a file",
            wim.display()
        )));
    }
    // A file that is no WIM, or an index it does not have, is the caller's to fix.
    let image = wim_image(wim, index).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let target = layout
        .partitions
        .iter_mut()
        .find(|p| p.number == number)
        .expect("found above");
    let needed = volume_size_for(image.total_bytes);
    let size = match target.size_mib {
        Some(mib) if mib * MIB < needed => {
            return Err(ImageError::Invalid(format!(
                "partition {number} ({mib} MiB) is too small for image {index} of {} ({} MiB needed)",
                wim.display(),
                needed / MIB
            )));
        }
        Some(mib) => mib * MIB,
        None => needed,
    };
    let scratch = Scratch::new(store, "import")?;
    let volume = scratch.path("volume.img");
    File::create(&volume)
        .and_then(|f| f.set_len(size))
        .map_err(ImageError::io(&volume))?;
    progress.set_phase(format!("apply {} image {index}", wim.display()));
    let mut mkntfs = Command::new("mkntfs");
    mkntfs.args(["-Q", "-F", "-q"]);
    if let Some(l) = &target.fs_label {
        mkntfs.arg("-L").arg(l);
    }
    run(mkntfs.arg(&volume))?;
    run(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(wim)
        .arg(index.to_string())
        .arg(&volume))?;
    let (label, uuid) = probe_fs(&volume)?;
    let file = Filesystem::Ntfs.stream_file(number, StreamKind::Blocks);
    let staging = store.begin(room, version)?;
    let (f, path) = staging.create_stream(&file)?;
    progress.set_phase(format!("capture {file}"));
    let mut sink = BufWriter::with_capacity(1 << 20, f);
    let out = capture_blocks(
        Filesystem::Ntfs,
        &volume,
        CaptureSettings::default(),
        progress,
        &mut sink,
    )
    .and_then(|out| {
        sink.flush()?;
        Ok(out)
    })
    .map_err(ImageError::io(&path))?;
    target.fs_label = label;
    target.fs_uuid = uuid;
    target.stream = Some(out.into_stream(file));
    let manifest = meta.manifest(room, version, OsFamily::Windows, layout);
    progress.set_phase("commit");
    staging.commit(&manifest)?;
    Ok(manifest)
}

/// A hidden scratch folder in the store, removed on drop (and by `parc image prune` when a
/// killed parc left it).
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(store: &FsImageStore, what: &str) -> ImageResult<Self> {
        std::fs::create_dir_all(store.root()).map_err(ImageError::io(store.root()))?;
        tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{what}-"))
            .tempdir_in(store.root())
            .map(Self)
            .map_err(ImageError::io(store.root()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_partition_is_the_growing_ntfs_one() {
        let layout: DiskLayout = toml::from_str(
            r#"
label = "gpt"
[[partitions]]
number = 1
start-mib = 1
size-mib = 100
type = "uefi"
filesystem = "vfat"
[[partitions]]
number = 3
start-mib = 117
type = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
filesystem = "ntfs"
[[partitions]]
number = 4
start-mib = 1000
size-mib = 700
type = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
filesystem = "ntfs"
"#,
        )
        .unwrap();
        assert_eq!(windows_partition(&layout).map(|p| p.number), Some(3));
        let mut fixed = layout.clone();
        fixed.partitions[1].size_mib = Some(800);
        assert_eq!(windows_partition(&fixed).map(|p| p.number), Some(3));
        let mut none = layout;
        none.partitions.retain(|p| p.filesystem != Filesystem::Ntfs);
        assert!(windows_partition(&none).is_none());
    }

    #[test]
    fn the_volume_leaves_room_for_ntfs() {
        assert_eq!(volume_size_for(0), 256 * MIB);
        assert_eq!(volume_size_for(4 * 1024 * MIB), (5 * 1024 + 256) * MIB);
        assert_eq!(volume_size_for(1) % MIB, 0);
    }
}
