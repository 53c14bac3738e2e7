//! The deploy pipeline, as coreos-installer writes an image: the target's partition table is
//! wiped first; each filesystem is made on its partition reached by offset (no partition table
//! exists yet) and filled from its stream, read as download → sha256 → zstd → untar; only once
//! every stream verified are the partition table and the boot area written, then everything
//! is synced. A root filesystem that boots with extlinux gets its bootloader installed again
//! (`super::bootloader`). Files given in the plan (a format's parc SSH key, the site's
//! settings) are written on the root filesystem. On any failure the partition table is wiped again: a half-written disk never
//! boots.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::bootloader::{install_extlinux, make_disk_bootable, uses_extlinux};
use super::disk::{
    Flusher, LoopDevice, Mount, disk_size, grow_ntfs, mkfs, partition_ranges, sync_all,
    wipe_partition_table, write_boot_area, write_ntfs_backup_boot_sector, write_partition_table,
};
use super::error::{ImageError, ImageResult};
use super::hashing::HashingReader;
use super::incremental::{
    ChunkFetcher, Seeded, can_seed, read_ext4_superblock, restore_blocks_seeded,
    restore_incremental,
};
use super::manifest::{Filesystem, Manifest, OsFamily, StreamInfo, StreamKind};
use super::ntfs_record::{NtfsRecord, reimage_recorded};
use super::pipe::{ChunkReader, chunk_pipe};
use super::progress::Progress;
use super::record::{DeployRecord, KeptRecord};
use super::unpack::{UnpackOptions, unpack_listed};
use crate::ports::InjectFile;

/// Where the marker naming the deployed image lives on the root filesystem.
pub const IMAGE_ID_MARKER: &str = "etc/parc/image-id";

/// Opens an image's streams (over HTTP in the agent, from the store folder locally).
pub trait StreamSource {
    fn open(&mut self, stream: &StreamInfo) -> io::Result<Box<dyn Read + Send + '_>>;

    /// Fetches chunked streams chunk by chunk, when this source can: a filesystem already on
    /// the target is then synced in place from what it holds plus the chunks it lacks
    /// (`super::incremental`). None: whole streams only (a room's multicast).
    fn fetcher(&mut self) -> Option<&mut dyn ChunkFetcher> {
        None
    }

    /// Told what an incremental restore of stream `s` took from the disk and the network.
    fn seeded(&mut self, _s: &StreamInfo, _what: &Seeded) {}

    /// Keeps the records deploys leave of the workstation's filesystems, when this source
    /// can (the endpoint does, per workstation): the next reimage then reads only what
    /// changed since.
    fn records(&mut self) -> Option<&mut dyn RecordKeeper> {
        None
    }
}

/// Keeps the record each deploy leaves of a workstation's filesystems
/// ([`super::record`]) for its next deploy.
pub trait RecordKeeper {
    /// The record the last deploy left of partition `n`, if any (a failure to get it only
    /// costs this deploy a read of the whole tree).
    fn load(&mut self, partition: u32) -> Option<Vec<u8>>;
    /// Keeps partition `n`'s record (a failure only costs the next deploy a whole read).
    fn save(&mut self, partition: u32, record: Vec<u8>);
}

/// Streams read from an image folder on disk.
pub struct FolderSource(pub PathBuf);

impl StreamSource for FolderSource {
    fn open(&mut self, stream: &StreamInfo) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(File::open(self.0.join(&stream.file))?))
    }
}

/// What to deploy where.
#[derive(Debug, Clone, Copy)]
pub struct DeployPlan<'a> {
    pub manifest: &'a Manifest,
    /// The whole disk (block device or image file).
    pub target: &'a Path,
    /// Hostname written on the root filesystem.
    pub hostname: Option<&'a str>,
    /// Files written on the root filesystem after the restore.
    pub inject: &'a [InjectFile],
    /// Windows: the answer file written as `\Windows\Panther\unattend.xml` (a secret).
    pub unattend: Option<&'a [u8]>,
}

/// Deploys; on failure wipes the partition table before returning the error.
pub fn deploy(
    plan: DeployPlan<'_>,
    source: &mut dyn StreamSource,
    progress: &Progress,
) -> ImageResult<()> {
    match deploy_inner(plan, source, progress) {
        Ok(()) => {
            progress.set_phase("done");
            Ok(())
        }
        Err(e) => {
            progress.set_phase("failed: wiping the partition table");
            let _ = wipe_partition_table(plan.target);
            sync_all();
            Err(e)
        }
    }
}

/// Counts bytes read into the progress.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

fn deploy_inner(
    plan: DeployPlan<'_>,
    source: &mut dyn StreamSource,
    progress: &Progress,
) -> ImageResult<()> {
    let m = plan.manifest;
    m.validate()
        .map_err(|source| ImageError::Manifest { id: m.id(), source })?;
    progress.set_total(m.streams().map(|s| s.size).sum());
    progress.set_phase("wipe");
    wipe_partition_table(plan.target)?;
    let ranges = partition_ranges(&m.disk, disk_size(plan.target)?)?;

    let boot = match &m.boot_area {
        Some(s) => Some(fetch_boot_area(source, s, progress)?),
        None => None,
    };

    // Three passes, so that once the first stream byte is read the streams follow one
    // another with nothing slow in between (a room's multicast goes at the pace of its
    // slowest receiver): every filesystem is made first; then each stream is restored;
    // then the markers, first-boot files and bootloader are written and everything synced.
    let mut parts = Vec::new();
    for (p, &(offset, len)) in m.disk.partitions.iter().zip(&ranges) {
        if p.filesystem == Filesystem::None {
            continue;
        }
        progress.set_phase(format!("format partition {}", p.number));
        let lo = LoopDevice::attach(plan.target, offset, len, false)?;
        let blocks = matches!(p.stream_kind(), Some(StreamKind::Blocks)) && p.stream.is_some();
        let chunked_files = !blocks && p.stream.as_ref().is_some_and(|s| s.index.is_some());
        let mut fs = None;
        if chunked_files && source.fetcher().is_some() {
            fs = can_seed(&lo.dev, len, p);
        }
        // An NTFS volume already there seeds a block stream (checked chunk by chunk).
        let chunked_blocks = blocks && p.stream.as_ref().is_some_and(|s| s.index.is_some());
        let seeded = fs.is_some()
            || (chunked_blocks
                && p.filesystem == Filesystem::Ntfs
                && source.fetcher().is_some()
                && holds_ntfs(&lo.dev));
        if !blocks && !seeded {
            mkfs(&lo.dev, p)?;
            if chunked_files && p.filesystem == Filesystem::Ext4 && source.records().is_some() {
                fs = read_ext4_superblock(&lo.dev).map_err(ImageError::io(&lo.dev))?;
            }
        }
        parts.push((p, lo, blocks, seeded, fs));
    }
    // The records of the filesystems written, kept once the deploy is done.
    let mut records = Vec::new();
    let mut mounts = Vec::new();
    for (p, lo, blocks, seeded, fs) in &parts {
        let is_root = p.mountpoint.as_deref() == Some("/");
        let opts = UnpackOptions {
            posix: p.filesystem.is_posix(),
        };
        match (&p.stream, fs) {
            (Some(s), Some(fs)) if *seeded => {
                let mnt = Mount::new(&lo.dev, false)?;
                let kept = source.records().and_then(|k| k.load(p.number));
                let last = kept.and_then(|b| match DeployRecord::decode(&b) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // Said, not fatal: the whole tree is read instead.
                        progress.set_phase(format!(
                            "the record of partition {}'s last deploy does not read ({e}): reading the whole tree",
                            p.number
                        ));
                        None
                    }
                });
                let fetcher = source.fetcher().expect("checked in the first pass");
                let (what, now) = restore_incremental(
                    fetcher,
                    s,
                    (mnt.path(), &lo.dev, fs),
                    last.as_ref(),
                    opts,
                    progress,
                )?;
                source.seeded(s, &what);
                records.push((p.number, KeptRecord::Files(now)));
                mounts.push((p.number, mnt));
            }
            (Some(s), _) if *blocks => {
                let ntfs = p.filesystem == Filesystem::Ntfs;
                let last = match source.records().filter(|_| *seeded && ntfs) {
                    Some(k) => k.load(p.number).and_then(|b| match NtfsRecord::decode(&b) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            progress.set_phase(format!(
                                "the record of partition {}'s last deploy does not read ({e}): reading the whole volume",
                                p.number
                            ));
                            None
                        }
                    }),
                    None => None,
                };
                let mut what = None;
                if let (Some(r), Some(f)) = (&last, source.fetcher()) {
                    match reimage_recorded(f, s, &lo.dev, r, progress)? {
                        Ok(done) => what = Some(done),
                        Err(why) => progress.set_phase(format!(
                            "the record of partition {}'s last deploy cannot be used: {why}",
                            p.number
                        )),
                    }
                }
                if what.is_none() {
                    if let Some(f) = source.fetcher().filter(|_| *seeded) {
                        what = restore_blocks_seeded(f, s, p.filesystem, &lo.dev, progress)?;
                    }
                }
                match &what {
                    Some(w) => source.seeded(s, w),
                    None => {
                        progress.set_phase(format!("write {}", s.file));
                        restore_stream(source, s, progress, |r| {
                            restore_blocks(p.filesystem, r, &lo.dev)
                        })?;
                    }
                }
                // The volume is the image's now: what its MFT is, for the next reimage.
                if let (true, Some(index), Some(_)) = (ntfs, &s.index, source.records()) {
                    match last.filter(|r| r.index == index.sha256) {
                        Some(r) if what.as_ref().is_some_and(|w| w.recorded) => {
                            records.push((p.number, KeptRecord::Ntfs(r)));
                        }
                        _ => {
                            progress.set_phase(format!("record partition {}", p.number));
                            if let Some(r) = NtfsRecord::take(&lo.dev, &index.sha256)
                                .map_err(ImageError::io(&lo.dev))?
                            {
                                records.push((p.number, KeptRecord::Ntfs(r)));
                            }
                        }
                    }
                }
            }
            (Some(s), fs) if p.filesystem.is_mountable() => {
                let mnt = Mount::new(&lo.dev, false)?;
                progress.set_phase(format!("write {}", s.file));
                let flusher = Flusher::start(mnt.path(), Duration::from_millis(500))?;
                let dst = mnt.path();
                let mut listing = Vec::new();
                let restored = restore_stream(source, s, progress, |r| {
                    unpack_listed(&mut *r, dst, opts, &mut |p, end| {
                        if fs.is_some() {
                            listing.push((p.to_path_buf(), end));
                        }
                        Ok(())
                    })?;
                    Ok(())
                });
                drop(flusher);
                restored?;
                if let (Some(fs), Some(index)) = (fs, &s.index) {
                    let now = DeployRecord::take(dst, &index.sha256, fs.made, listing)
                        .map_err(ImageError::io(dst))?;
                    records.push((p.number, KeptRecord::Files(now)));
                }
                mounts.push((p.number, mnt));
            }
            (None, _) if is_root && p.filesystem.is_mountable() => {
                mounts.push((p.number, Mount::new(&lo.dev, false)?));
            }
            _ => {}
        }
    }
    // The partition extlinux was installed on, to mark bootable once the table exists.
    let mut boot_partition = None;
    let mut windows_volume = false;
    for (p, lo, blocks, _, _) in &parts {
        if *blocks && p.filesystem == Filesystem::Ntfs {
            let volume = write_ntfs_backup_boot_sector(&lo.dev)?;
            progress.set_phase(format!("grow NTFS on partition {}", p.number));
            grow_ntfs(&lo.dev, volume)?;
            // Windows' system volume, whatever the manifest's family says (an imported WIM).
            if !windows_volume && super::windows::is_system_volume(&lo.dev)? {
                progress.set_phase(format!("first-boot files on partition {}", p.number));
                super::windows::write_first_boot(&lo.dev, &m.id(), plan.unattend)?;
                windows_volume = true;
            }
        }
        let Some(at) = mounts.iter().position(|(n, _)| *n == p.number) else {
            continue;
        };
        let (_, mnt) = mounts.remove(at);
        if p.mountpoint.as_deref() == Some("/") {
            write_markers(mnt.path(), m, plan.hostname)?;
            write_injected(mnt.path(), plan.inject)?;
            if uses_extlinux(mnt.path()) {
                progress.set_phase(format!("bootloader on partition {}", p.number));
                install_extlinux(mnt.path())?;
                boot_partition = Some(p.number);
            }
        }
        progress.set_phase(format!("sync partition {}", p.number));
        mnt.unmount()?;
    }
    for (_, lo, ..) in &parts {
        lo.flush()?;
    }
    drop(parts);
    if plan.unattend.is_some() && !windows_volume {
        return Err(ImageError::Invalid(format!(
            "image {} has no Windows system volume (an NTFS partition with \\Windows\\System32) to write the answer file on",
            m.id()
        )));
    }

    progress.set_phase("partition table");
    write_partition_table(plan.target, &m.disk, &ranges)?;
    if let Some(area) = boot {
        write_boot_area(plan.target, m.disk.label, &area)?;
    }
    if let Some(n) = boot_partition {
        progress.set_phase("boot code");
        make_disk_bootable(plan.target, m.disk.label, n)?;
    }
    progress.set_phase("sync");
    OpenOptions::new()
        .write(true)
        .open(plan.target)
        .and_then(|f| f.sync_all())
        .map_err(ImageError::io(plan.target))?;
    if let Some(keeper) = source.records() {
        progress.set_phase("keep the deploy's record");
        for (n, r) in records {
            keeper.save(n, r.encode());
        }
    }
    Ok(())
}

/// Whether `dev` starts with an NTFS boot sector.
fn holds_ntfs(dev: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 11];
    File::open(dev)
        .and_then(|f| f.read_exact_at(&mut b, 0))
        .is_ok_and(|()| &b[3..11] == b"NTFS    ")
}

fn fetch_boot_area(
    source: &mut dyn StreamSource,
    s: &StreamInfo,
    progress: &Progress,
) -> ImageResult<Vec<u8>> {
    let r = source.open(s).map_err(ImageError::stream(&s.file))?;
    let mut h = HashingReader::new(Counted { inner: r, progress });
    let mut buf = Vec::new();
    h.read_to_end(&mut buf)
        .map_err(ImageError::stream(&s.file))?;
    let (digest, n) = h.finish().map_err(ImageError::stream(&s.file))?;
    check_digest(s, &digest, n)?;
    Ok(buf)
}

fn check_digest(s: &StreamInfo, digest: &str, size: u64) -> ImageResult<()> {
    if size != s.size || digest != s.sha256 {
        return Err(ImageError::Integrity {
            file: s.file.clone(),
            detail: format!(
                "received {size} bytes with digest {digest}, the manifest says {} bytes with {}",
                s.size, s.sha256
            ),
        });
    }
    Ok(())
}

/// download → sha256 → zstd → `write` (untar, or wimlib's apply), each on its own thread
/// joined by bounded pipes, then checks the digest of the whole stream. What `write` leaves
/// unread (tar padding, a WIM's tables after its blobs) is read and hashed too.
pub(super) fn restore_stream(
    source: &mut dyn StreamSource,
    s: &StreamInfo,
    progress: &Progress,
    write: impl FnOnce(&mut ChunkReader) -> io::Result<()>,
) -> ImageResult<()> {
    let r = source.open(s).map_err(ImageError::stream(&s.file))?;
    let (zst_w, zst_r) = chunk_pipe(8, 1 << 20);
    let (tar_w, mut tar_r) = chunk_pipe(8, 1 << 20);
    let (hashed, decoded, unpacked) = thread::scope(|sc| {
        // Hashes every byte of the stream, even after a later stage stopped (a corrupt
        // stream usually breaks decoding first): the digest names corruption as such.
        let hasher = sc.spawn(move || -> io::Result<(String, u64)> {
            let mut h = HashingReader::new(Counted { inner: r, progress });
            let mut buf = vec![0u8; 1 << 20];
            let mut forward = Some(zst_w);
            loop {
                let n = h.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if let Some(w) = forward.as_mut() {
                    if w.write_all(&buf[..n]).is_err() {
                        forward = None;
                    }
                }
            }
            if let Some(w) = forward {
                let _ = w.finish();
            }
            h.finish()
        });
        let decoder = sc.spawn(move || -> io::Result<()> {
            let mut tar_w = tar_w;
            zstd::stream::copy_decode(zst_r, &mut tar_w)?;
            tar_w.finish()
        });
        let unpacked = (|| -> io::Result<()> {
            write(&mut tar_r)?;
            // The tar end marker may be followed by padding: read the stream to its end.
            io::copy(&mut tar_r, &mut io::sink())?;
            Ok(())
        })();
        drop(tar_r);
        let decoded = decoder.join().expect("zstd thread panicked");
        let hashed = hasher.join().expect("hash thread panicked");
        (hashed, decoded, unpacked)
    });
    // The download failing is the cause of everything else failing.
    let (digest, n) = hashed.map_err(ImageError::stream(format!("downloading {}", s.file)))?;
    check_digest(s, &digest, n)?;
    match decoded {
        // A broken pipe only means unpacking stopped first: its error is the cause.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(ImageError::stream(format!("decompressing {}", s.file))(e));
        }
        _ => {}
    }
    unpacked.map_err(ImageError::stream(format!("unpacking {}", s.file)))
}

/// Restores block stream `s` of filesystem `fs` from `source` onto `dev` (a whole partition),
/// verified: the digest and size of every byte are checked. An NTFS volume then gets its
/// backup boot sector and grows to the partition (a larger disk).
pub fn restore_block_stream(
    source: &mut dyn StreamSource,
    s: &StreamInfo,
    fs: Filesystem,
    dev: &Path,
    progress: &Progress,
) -> ImageResult<()> {
    restore_stream(source, s, progress, |r| restore_blocks(fs, r, dev))?;
    if fs == Filesystem::Ntfs {
        let volume = write_ntfs_backup_boot_sector(dev)?;
        progress.set_phase("grow NTFS");
        grow_ntfs(dev, volume)?;
    }
    Ok(())
}

/// Restores the partclone image of filesystem `fs` read from `input` onto `dev` (the whole
/// partition); what partclone leaves unread is left for the caller to read and hash.
pub fn restore_blocks(fs: Filesystem, input: &mut ChunkReader, dev: &Path) -> io::Result<()> {
    let mut cmd = Command::new(super::capture::partclone_tool(fs)?);
    cmd.args(["--restore", "--quiet", "--source", "-", "--output"])
        .arg(dev);
    feed_command(cmd, input)
}

/// Runs `cmd` with `input` on its stdin; its failure is an error carrying its stderr.
pub(super) fn feed_command(mut cmd: Command, input: &mut ChunkReader) -> io::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errs = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdin = child.stdin.take().expect("piped stdin");
    let fed = loop {
        match input.next_chunk() {
            Ok(Some(c)) => match stdin.write_all(&c) {
                Ok(()) => {}
                // wimlib has what it needs (or failed: its status says which).
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break Ok(()),
                Err(e) => break Err(e),
            },
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(stdin);
    if fed.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let errs = errs.join().unwrap_or_default();
    fed?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "{shown}: {status}: {}",
            errs.trim()
        )));
    }
    Ok(())
}

/// Writes each file (absolute path inside the root filesystem, no `..`), creating its parent
/// folders (0700 for a `.ssh` folder, 0755 otherwise), with its mode.
pub fn write_injected(root: &Path, files: &[InjectFile]) -> ImageResult<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for f in files {
        let rel = Path::new(&f.path);
        let sane = rel.is_absolute()
            && rel
                .components()
                .skip(1)
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !sane || rel.parent().is_none() {
            return Err(ImageError::Invalid(format!(
                "file to lay down `{}` is not an absolute path without `..`",
                f.path
            )));
        }
        let dst = root.join(rel.strip_prefix("/").expect("absolute path"));
        let dir = dst.parent().expect("checked above");
        let mut cur = root.to_path_buf();
        for c in dir.strip_prefix(root).expect("under root").components() {
            cur.push(c);
            if !cur.is_dir() {
                let mode = if c.as_os_str() == ".ssh" {
                    0o700
                } else {
                    0o755
                };
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&cur)
                    .map_err(ImageError::io(&cur))?;
            }
        }
        fs::write(&dst, &f.content).map_err(ImageError::io(&dst))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(ImageError::io(&dst))?;
    }
    Ok(())
}

fn write_markers(root: &Path, m: &Manifest, hostname: Option<&str>) -> ImageResult<()> {
    let marker = root.join(IMAGE_ID_MARKER);
    let dir = marker.parent().expect("marker has a folder");
    fs::create_dir_all(dir).map_err(ImageError::io(dir))?;
    fs::write(&marker, format!("{}\n", m.id())).map_err(ImageError::io(&marker))?;
    if let (Some(h), OsFamily::Linux) = (hostname, m.os_family) {
        let hn = root.join("etc/hostname");
        fs::write(&hn, format!("{h}\n")).map_err(ImageError::io(&hn))?;
        let hosts = root.join("etc/hosts");
        if let Ok(text) = fs::read_to_string(&hosts) {
            let new: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("127.0.1.1") {
                        format!("127.0.1.1\t{h}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            fs::write(&hosts, new).map_err(ImageError::io(&hosts))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(path: &str, mode: u32) -> InjectFile {
        InjectFile {
            path: path.into(),
            mode,
            content: format!("content of {path}\n"),
        }
    }

    #[test]
    fn injected_files_get_their_folders_and_modes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        let files = [
            file("/root/.ssh/authorized_keys", 0o600),
            file("/etc/krb5.conf", 0o644),
        ];
        write_injected(d.path(), &files).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(d.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("root/.ssh"), 0o700);
        assert_eq!(mode("root"), 0o755);
        assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
        assert_eq!(mode("etc/krb5.conf"), 0o644);
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/krb5.conf")).unwrap(),
            "content of /etc/krb5.conf\n"
        );
        for bad in ["etc/relative", "/etc/../../escape", "/"] {
            let e = write_injected(d.path(), &[file(bad, 0o644)]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
