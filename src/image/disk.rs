//! Disk operations of the deploy and capture agents: wiping the boot area, reaching a
//! partition by offset through a loop device (before any partition table exists), making
//! filesystems, mounting, and writing the partition table with sfdisk.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{ImageError, ImageResult};
use super::manifest::{BOOT_AREA, DiskLayout, Filesystem, Partition, PartitionLabel, is_esp};

const MIB: u64 = 1 << 20;

/// Runs a tool, returning its stdout; the error carries its stderr.
pub fn run(cmd: &mut Command) -> ImageResult<String> {
    run_with_stdin(cmd, None)
}

fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> ImageResult<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::Command {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
    if let Some(text) = stdin {
        let mut i = child.stdin.take().expect("piped stdin");
        i.write_all(text.as_bytes())
            .map_err(|e| ImageError::Command {
                command: shown.clone(),
                detail: e.to_string(),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| ImageError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ImageError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Size in bytes of a disk (block device or image file).
pub fn disk_size(target: &Path) -> ImageResult<u64> {
    let mut f = File::open(target).map_err(ImageError::io(target))?;
    f.seek(SeekFrom::End(0)).map_err(ImageError::io(target))
}

/// Zeroes the first MiB (MBR / protective MBR and primary GPT, boot code) and the last MiB
/// (backup GPT), then syncs: the disk no longer has a partition table anything would boot.
pub fn wipe_partition_table(target: &Path) -> ImageResult<()> {
    let size = disk_size(target)?;
    let f = OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(ImageError::io(target))?;
    let zeros = vec![0u8; BOOT_AREA as usize];
    f.write_all_at(&zeros, 0).map_err(ImageError::io(target))?;
    if size > 2 * BOOT_AREA {
        let tail = size - BOOT_AREA;
        f.write_all_at(&zeros, tail)
            .map_err(ImageError::io(target))?;
    }
    f.sync_all().map_err(ImageError::io(target))
}

/// Byte ranges (offset, length) of each partition of `layout` on a disk of `disk_size` bytes.
/// A partition without size takes the room left: when it is the last, up to 1 MiB before the
/// end (room for the backup GPT); when partitions follow it (a Windows recovery partition),
/// they keep their sizes and the gaps between them and move so the last ends 1 MiB before the
/// end of the disk.
pub fn partition_ranges(layout: &DiskLayout, disk_size: u64) -> ImageResult<Vec<(u64, u64)>> {
    let disk_mib = disk_size / MIB;
    let parts = &layout.partitions;
    let growing = parts.iter().position(|p| p.size_mib.is_none());
    // Where the partitions after the growing one start (in MiB), shifted to the disk's end.
    let mut starts: Vec<i64> = parts.iter().map(|p| p.start_mib as i64).collect();
    let mut grow_end = disk_mib.saturating_sub(1) as i64;
    if let Some(g) = growing {
        if let Some(last) = parts.last().filter(|_| g + 1 < parts.len()) {
            let last_end = (last.start_mib + last.size_mib.unwrap_or(0)) as i64;
            let shift = disk_mib as i64 - 1 - last_end;
            for s in &mut starts[g + 1..] {
                *s += shift;
            }
            grow_end = starts[g + 1];
        }
    }
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let start = starts[i];
        let size = match p.size_mib {
            Some(s) => s as i64,
            None => grow_end - start,
        };
        let prev_end = out
            .last()
            .map_or(1, |&(o, l): &(u64, u64)| ((o + l) / MIB) as i64);
        if size <= 0 || start < prev_end || start + size + 1 > disk_mib as i64 {
            return Err(ImageError::Invalid(format!(
                "partition {} ({} MiB at {} MiB) does not fit a disk of {disk_mib} MiB",
                p.number,
                size.max(0),
                start.max(0)
            )));
        }
        out.push((start as u64 * MIB, size as u64 * MIB));
    }
    Ok(out)
}

/// The sfdisk script for `layout` with explicit sizes, with the captured disk and partition
/// GUIDs, names and attribute bits. Pure.
pub fn sfdisk_script(layout: &DiskLayout, ranges: &[(u64, u64)]) -> String {
    let mut s = String::new();
    s.push_str(match layout.label {
        PartitionLabel::Gpt => "label: gpt\n",
        PartitionLabel::Dos => "label: dos\n",
    });
    if let Some(id) = &layout.disk_guid {
        s.push_str(&format!("label-id: {id}\n"));
    }
    s.push_str("unit: sectors\n\n");
    for (p, (off, len)) in layout.partitions.iter().zip(ranges) {
        s.push_str(&format!(
            "start={}, size={}, type={}",
            off / 512,
            len / 512,
            p.type_code
        ));
        if let Some(u) = &p.uuid {
            s.push_str(&format!(", uuid={u}"));
        }
        if let Some(n) = &p.name {
            s.push_str(&format!(", name=\"{}\"", n.replace('"', "")));
        }
        if let Some(a) = &p.attrs {
            s.push_str(&format!(", attrs=\"{}\"", a.replace('"', "")));
        }
        s.push('\n');
    }
    s
}

/// One partition of a disk's table, as `sfdisk --json` reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TablePartition {
    /// Device path sfdisk names it by (`/dev/sda3`, `disk.img3`).
    pub node: String,
    /// Start and size in sectors of 512 bytes.
    pub start: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub type_code: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub attrs: Option<String>,
}

impl TablePartition {
    /// The partition number, from the end of its node name.
    pub fn number(&self) -> Option<u32> {
        let digits: String = self
            .node
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.chars().rev().collect::<String>().parse().ok()
    }
}

/// A disk's partition table, as `sfdisk --json` reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DiskTable {
    pub label: String,
    /// GPT disk GUID or DOS disk signature.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub partitions: Vec<TablePartition>,
}

/// Parses `sfdisk --json`'s output. Pure.
pub fn parse_sfdisk_json(text: &str) -> ImageResult<DiskTable> {
    #[derive(serde::Deserialize)]
    struct Top {
        partitiontable: DiskTable,
    }
    serde_json::from_str::<Top>(text)
        .map(|t| t.partitiontable)
        .map_err(|e| ImageError::Invalid(format!("sfdisk --json gave an unreadable table: {e}")))
}

/// Byte ranges of the layout's partitions as the disk's own table places them (a capture
/// reads the master's partitions where they are, whatever the layout's sizes). Pure.
pub fn table_ranges(layout: &DiskLayout, table: &DiskTable) -> ImageResult<Vec<(u64, u64)>> {
    layout
        .partitions
        .iter()
        .map(|p| {
            table
                .partitions
                .iter()
                .find(|tp| tp.number() == Some(p.number))
                .map(|tp| (tp.start * 512, tp.size * 512))
                .ok_or_else(|| {
                    ImageError::Invalid(format!(
                        "the layout has partition {} but the disk's table does not",
                        p.number
                    ))
                })
        })
        .collect()
}

/// Reads the partition table of `disk` (`None` when it has none).
pub fn read_table(disk: &Path) -> ImageResult<Option<DiskTable>> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .output()
        .map_err(|e| ImageError::Command {
            command: "sfdisk --json".into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Ok(None);
    }
    parse_sfdisk_json(&String::from_utf8_lossy(&out.stdout)).map(Some)
}

/// Writes the partition table of `layout` onto `target`.
pub fn write_partition_table(
    target: &Path,
    layout: &DiskLayout,
    ranges: &[(u64, u64)],
) -> ImageResult<()> {
    run_with_stdin(
        Command::new("sfdisk")
            .args([
                "--quiet",
                "--no-reread",
                "--no-tell-kernel",
                "--wipe",
                "always",
            ])
            .arg(target),
        Some(&sfdisk_script(layout, ranges)),
    )?;
    Ok(())
}

/// Copies the captured boot area back, around the partition table: the boot code (bytes
/// 0..440) and the gap between the table and the first partition (after sector 0 for DOS,
/// after the GPT entries, sector 34, for GPT).
pub fn write_boot_area(target: &Path, label: PartitionLabel, area: &[u8]) -> ImageResult<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(ImageError::io(target))?;
    let gap_start = match label {
        PartitionLabel::Dos => 512,
        PartitionLabel::Gpt => 34 * 512,
    };
    f.write_all_at(&area[..440], 0)
        .map_err(ImageError::io(target))?;
    f.write_all_at(&area[gap_start..], gap_start as u64)
        .map_err(ImageError::io(target))?;
    f.sync_all().map_err(ImageError::io(target))
}

/// Reads a disk's first MiB.
pub fn read_boot_area(disk: &Path) -> ImageResult<Vec<u8>> {
    let mut buf = vec![0u8; BOOT_AREA as usize];
    File::open(disk)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(ImageError::io(disk))?;
    Ok(buf)
}

/// A loop device over a byte range of a disk; detached on drop. A writable one does direct
/// I/O to the disk when the disk allows it (the kernel falls back to buffered I/O otherwise):
/// the filesystem's page cache is the only copy of the data, not a second one over the disk
/// that the final sync would then write out.
#[derive(Debug)]
pub struct LoopDevice {
    pub dev: PathBuf,
}

impl LoopDevice {
    pub fn attach(target: &Path, offset: u64, size: u64, read_only: bool) -> ImageResult<Self> {
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show"])
            .arg(format!("--offset={offset}"))
            .arg(format!("--sizelimit={size}"));
        if read_only {
            cmd.arg("--read-only");
        } else {
            cmd.arg("--direct-io=on");
        }
        let dev = run(cmd.arg(target))?.trim().to_string();
        Ok(Self { dev: dev.into() })
    }

    /// Writes what the loop device's own cache holds to the disk beneath (what a tool wrote
    /// to the device itself, or a filesystem left behind at unmount): with the disk's own
    /// sync after, the deploy's writes are durable without syncing every filesystem of the
    /// machine.
    pub fn flush(&self) -> ImageResult<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.dev)
            .and_then(|f| f.sync_all())
            .map_err(ImageError::io(&self.dev))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = run(Command::new("losetup").arg("-d").arg(&self.dev));
    }
}

/// Makes partition `p`'s filesystem on `dev`, keeping the captured label and UUID. An EFI
/// system partition is FAT32, as UEFI asks of a fixed disk, when it is large enough for it
/// (mkfs.vfat would pick FAT16 under 512 MiB).
pub fn mkfs(dev: &Path, p: &Partition) -> ImageResult<()> {
    let (fs, label, uuid) = (p.filesystem, p.fs_label.as_deref(), p.fs_uuid.as_deref());
    let mut cmd;
    match fs {
        Filesystem::Ext4 => {
            cmd = Command::new("mkfs.ext4");
            cmd.args(["-q", "-F"]);
            if let Some(l) = label {
                cmd.arg("-L").arg(l);
            }
            if let Some(u) = uuid {
                cmd.arg("-U").arg(u);
            }
        }
        Filesystem::Vfat => {
            cmd = Command::new("mkfs.vfat");
            if is_esp(&p.type_code) && disk_size(dev)? >= 36 * MIB {
                cmd.args(["-F", "32"]);
            }
            if let Some(l) = label {
                cmd.arg("-n").arg(l);
            }
            if let Some(u) = uuid {
                cmd.arg("-i").arg(u.replace('-', ""));
            }
        }
        Filesystem::Swap => {
            cmd = Command::new("mkswap");
            if let Some(l) = label {
                cmd.arg("-L").arg(l);
            }
            if let Some(u) = uuid {
                cmd.arg("-U").arg(u);
            }
        }
        Filesystem::Ntfs => {
            // -Q: no zeroing of the volume (what `format /q` does).
            cmd = Command::new("mkntfs");
            cmd.args(["-Q", "-F", "-q"]);
            if let Some(l) = label {
                cmd.arg("-L").arg(l);
            }
            run(cmd.arg(dev))?;
            if let Some(u) = uuid {
                // blkid shows NTFS's 64-bit volume serial number as the UUID.
                run(Command::new("ntfslabel")
                    .arg(format!("--new-serial={u}"))
                    .arg(dev))?;
            }
            return Ok(());
        }
        Filesystem::None => return Ok(()),
    }
    run(cmd.arg(dev))?;
    Ok(())
}

/// Writes the NTFS boot sector of `dev` again as its backup, in the sector after the volume's
/// last (where NTFS keeps it). partclone copies the volume's clusters, and the backup lies
/// beyond them: without this a restored volume's backup boot sector is whatever the disk held
/// (`ntfsfix -n`: "alternate boot sector... BAD"; chkdsk would rewrite it).
/// Returns the bytes the volume spans, backup boot sector included.
pub fn write_ntfs_backup_boot_sector(dev: &Path) -> ImageResult<u64> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map_err(ImageError::io(dev))?;
    let mut boot = [0u8; 512];
    f.read_exact_at(&mut boot, 0).map_err(ImageError::io(dev))?;
    let sector = u64::from(u16::from_le_bytes([boot[0x0B], boot[0x0C]]));
    let total = u64::from_le_bytes(boot[0x28..0x30].try_into().expect("8 bytes"));
    if &boot[3..11] != b"NTFS    " || !(512..=4096).contains(&sector) {
        return Err(ImageError::Invalid(format!(
            "{}: no NTFS boot sector after the restore",
            dev.display()
        )));
    }
    let mut primary = vec![0u8; sector as usize];
    f.read_exact_at(&mut primary, 0)
        .map_err(ImageError::io(dev))?;
    let at = total * sector;
    if at + sector > disk_size(dev)? {
        return Err(ImageError::Invalid(format!(
            "{}: the NTFS volume ({} sectors) does not fit its partition",
            dev.display(),
            total + 1
        )));
    }
    // Synced with the rest of the disk at the end of the deploy.
    f.write_all_at(&primary, at).map_err(ImageError::io(dev))?;
    Ok(at + sector)
}

/// Grows the NTFS volume on `dev`, spanning `volume` bytes, to the whole device (no-op when
/// it already fills it, without reading it).
pub fn grow_ntfs(dev: &Path, volume: u64) -> ImageResult<()> {
    if disk_size(dev)? < volume + MIB {
        return Ok(());
    }
    let info = run(Command::new("ntfsresize")
        .args(["--info", "--force", "--no-progress-bar"])
        .arg(dev))?;
    // "Current volume size: 1073737728 bytes (1074 MB)" vs "Current device size: …".
    let bytes = |key: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    match (bytes("Current volume size:"), bytes("Current device size:")) {
        (Some(v), Some(d)) if d >= v + MIB => {
            run(Command::new("ntfsresize")
                .args(["--force", "--force", "--no-progress-bar"])
                .arg(dev))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Label and UUID of the filesystem on `dev`, for the manifest. `blkid -p` probes the device
/// itself: the blkid cache may still describe whatever a reused loop device held before.
pub fn probe_fs(dev: &Path) -> ImageResult<(Option<String>, Option<String>)> {
    let get = |tag: &str| -> Option<String> {
        run(Command::new("blkid")
            .args(["-p", "-s", tag, "-o", "value"])
            .arg(dev))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    };
    Ok((get("LABEL"), get("UUID")))
}

/// A mounted filesystem on a fresh temporary folder; unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Mount {
    pub fn new(dev: &Path, read_only: bool) -> ImageResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("parc-mnt-")
            .tempdir()
            .map_err(ImageError::io(std::env::temp_dir()))?;
        let mut cmd = Command::new("mount");
        if read_only {
            cmd.args(["-o", "ro"]);
        }
        run(cmd.arg(dev).arg(dir.path()))?;
        Ok(Self { dir, mounted: true })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Unmounts, reporting failure (drop only tries).
    pub fn unmount(mut self) -> ImageResult<()> {
        self.mounted = false;
        run(Command::new("umount").arg(self.dir.path()))?;
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = run(Command::new("umount").arg("-l").arg(self.dir.path()));
        }
    }
}

/// Flushes every filesystem and block device.
pub fn sync_all() {
    // SAFETY: sync(2) has no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Flushes a mounted filesystem every `interval` from its own thread while it is written, so
/// the writeback overlaps the unpacking instead of all happening at unmount.
pub struct Flusher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub fn start(mounted: &Path, interval: std::time::Duration) -> ImageResult<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = File::open(mounted).map_err(ImageError::io(mounted))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(interval);
                // SAFETY: dir is an open descriptor for the life of this thread.
                unsafe { libc::syncfs(dir.as_raw_fd()) };
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::Partition;

    fn part(n: u32, start: u64, size: Option<u64>) -> Partition {
        Partition {
            number: n,
            start_mib: start,
            size_mib: size,
            type_code: "linux".into(),
            uuid: None,
            name: None,
            attrs: None,
            filesystem: Filesystem::Ext4,
            fs_label: None,
            fs_uuid: None,
            mountpoint: None,
            stream: None,
        }
    }

    #[test]
    fn last_partition_fills_the_disk_but_the_last_mib() {
        let layout = DiskLayout {
            label: PartitionLabel::Gpt,
            disk_guid: None,
            partitions: vec![part(1, 1, Some(100)), part(2, 101, None)],
        };
        let r = partition_ranges(&layout, 1024 * MIB).unwrap();
        assert_eq!(r, vec![(MIB, 100 * MIB), (101 * MIB, 922 * MIB)]);
        let s = sfdisk_script(&layout, &r);
        assert!(s.starts_with("label: gpt\nunit: sectors\n"), "{s}");
        assert!(s.contains("start=2048, size=204800, type=linux\n"), "{s}");
        assert!(
            s.contains("start=206848, size=1888256, type=linux\n"),
            "{s}"
        );
    }

    #[test]
    fn too_small_disk_is_refused() {
        let layout = DiskLayout {
            label: PartitionLabel::Dos,
            disk_guid: None,
            partitions: vec![part(1, 1, Some(100))],
        };
        let err = partition_ranges(&layout, 50 * MIB).unwrap_err().to_string();
        assert!(err.contains("does not fit a disk of 50 MiB"), "{err}");
    }

    /// ESP, MSR, Windows (grows), recovery: on a larger disk the recovery partition moves to
    /// the end, keeps its size, and the Windows partition takes the room.
    #[test]
    fn windows_partition_grows_and_recovery_stays_after_it() {
        let mut esp = part(1, 1, Some(100));
        esp.uuid = Some("11111111-2222-4333-8444-555555555555".into());
        esp.name = Some("EFI system partition".into());
        let mut msr = part(2, 101, Some(16));
        msr.filesystem = Filesystem::None;
        let win = part(3, 117, None);
        let mut rec = part(4, 1500, Some(600));
        rec.attrs = Some("RequiredPartition GUID:63".into());
        let layout = DiskLayout {
            label: PartitionLabel::Gpt,
            disk_guid: Some("AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE".into()),
            partitions: vec![esp, msr, win, rec],
        };
        let r = partition_ranges(&layout, 4096 * MIB).unwrap();
        assert_eq!(
            r,
            vec![
                (MIB, 100 * MIB),
                (101 * MIB, 16 * MIB),
                (117 * MIB, (3495 - 117) * MIB),
                (3495 * MIB, 600 * MIB)
            ]
        );
        let s = sfdisk_script(&layout, &r);
        assert!(
            s.contains("label-id: AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE\n"),
            "{s}"
        );
        assert!(
            s.contains("uuid=11111111-2222-4333-8444-555555555555, name=\"EFI system partition\""),
            "{s}"
        );
        assert!(s.contains(", attrs=\"RequiredPartition GUID:63\"\n"), "{s}");
        let err = partition_ranges(&layout, 700 * MIB)
            .unwrap_err()
            .to_string();
        assert!(err.contains("partition 3"), "{err}");
    }

    #[test]
    fn reads_sfdisk_json() {
        let t = parse_sfdisk_json(
            r#"{"partitiontable": {"label": "gpt", "id": "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE",
            "device": "d.img", "unit": "sectors", "firstlba": 34, "lastlba": 8388574,
            "sectorsize": 512, "partitions": [
              {"node": "d.img1", "start": 2048, "size": 204800,
               "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
               "uuid": "11111111-2222-4333-8444-555555555555", "name": "EFI"},
              {"node": "d.img4", "start": 7159808, "size": 1228800,
               "type": "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
               "uuid": "11111111-2222-4333-8444-555555555556",
               "attrs": "RequiredPartition GUID:63"}]}}"#,
        )
        .unwrap();
        assert_eq!(t.label, "gpt");
        assert_eq!(t.partitions[1].number(), Some(4));
        assert_eq!(
            t.partitions[1].attrs.as_deref(),
            Some("RequiredPartition GUID:63")
        );
        assert_eq!(t.partitions[0].name.as_deref(), Some("EFI"));
    }
}
