//! The agent's three jobs, driven by the task fetched from the endpoint: capture, deploy,
//! format. Progress is posted every interval; the outcome is always reported.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::endpoint::Endpoint;
use super::error::AgentError;
use super::multicast::RoomSource;
use super::wire::{
    CaptureDone, CapturedPartition, Delivery, DeliveryPath, FinalReport, MulticastOffer,
    ProgressReport, TableIdentity, TaskSpec,
};
use crate::image::capture::{CaptureSettings, capture_blocks, capture_tree};
use crate::image::chunks::ChunkParams;
use crate::image::deploy::{DeployPlan, deploy};
use crate::image::disk::{
    LoopDevice, Mount, disk_size, partition_ranges, probe_fs, read_boot_area, read_table,
    table_ranges,
};
use crate::image::error::ImageError;
use crate::image::format::format_disk;
use crate::image::hashing::hash_reader;
use crate::image::manifest::{
    BOOT_AREA, DiskLayout, Filesystem, Manifest, Partition, StreamInfo, StreamKind,
};
use crate::image::progress::Progress;

/// Where the captured filesystems come from.
#[derive(Debug, Clone, Default)]
pub struct CaptureSources {
    /// The master's whole disk: partitions are reached by offset, mounted read-only, and its
    /// first MiB becomes the boot area.
    pub disk: Option<PathBuf>,
    /// Folder trees standing in for partitions (partition number → folder).
    pub dirs: Vec<(u32, PathBuf)>,
}

/// Runs the task and reports its outcome to the endpoint; returns the outcome too.
pub fn run_task(
    rt: &Runtime,
    ep: &Endpoint,
    target: Option<&Path>,
    sources: &CaptureSources,
    settings: CaptureSettings,
    interval: Duration,
    read_all: bool,
) -> Result<String, AgentError> {
    let spec = rt.block_on(ep.task())?;
    let progress = Arc::new(Progress::default());
    let reporter = spawn_reporter(rt, ep.clone(), progress.clone(), interval);
    let mut delivery = None;
    let outcome = match &spec {
        TaskSpec::Capture { layout, .. } => capture(rt, ep, layout, sources, settings, &progress),
        TaskSpec::Deploy {
            image_id,
            manifest,
            hostname,
            unattend,
            multicast,
            read_all: asked,
        } => need_target(target).and_then(|t| {
            // Fetched before the disk is touched: a refused fetch leaves it as it was.
            let answer = if *unattend {
                Some(rt.block_on(ep.unattend())?)
            } else {
                None
            };
            deploy_task(
                rt,
                ep,
                t,
                image_id,
                manifest,
                (Some(hostname), answer.as_ref().map(|a| a.0.as_slice())),
                &[],
                (multicast.clone(), &mut delivery),
                Some(read_all || *asked),
                &progress,
            )
            .map(|()| {
                let path = delivery.as_ref().map_or(DeliveryPath::Unicast, |d| d.path);
                let mut msg = format!("deployed {image_id} as {hostname} by {path}");
                if let Some(d) = delivery.as_ref().filter(|d| d.seeded_bytes > 0) {
                    msg.push_str(&format!(
                        ", incrementally ({} MiB found on the disk, {} MiB fetched{})",
                        d.seeded_bytes >> 20,
                        d.unicast_bytes >> 20,
                        if d.recorded {
                            "; only the files changed since its last deploy read"
                        } else {
                            ""
                        }
                    ));
                }
                msg
            })
        }),
        TaskSpec::Format { layout, base: None } => need_target(target)
            .and_then(|t| format_disk(layout, t, &progress).map_err(AgentError::from))
            .map(|()| "formatted".to_string()),
        TaskSpec::Format {
            base: Some(base), ..
        } => need_target(target).and_then(|t| {
            let hostname = Some(base.hostname.as_str()).filter(|h| !h.is_empty());
            deploy_task(
                rt,
                ep,
                t,
                &base.image_id,
                &base.manifest,
                (hostname, None),
                &base.inject,
                (None, &mut delivery),
                None,
                &progress,
            )
            .map(|()| {
                format!(
                    "formatted with {} as {}",
                    base.image_id,
                    hostname.unwrap_or("(unnamed)")
                )
            })
        }),
    };
    reporter.abort();
    let snap = progress.snapshot();
    let _ = rt.block_on(ep.progress(&ProgressReport {
        phase: snap.phase,
        bytes: snap.bytes,
        total: snap.total,
        rate: 0.0,
    }));
    let report = match &outcome {
        Ok(msg) => FinalReport {
            success: true,
            message: msg.clone(),
            delivery,
        },
        Err(e) => FinalReport {
            success: false,
            message: error_chain(e),
            delivery,
        },
    };
    let reported = rt.block_on(ep.status(&report));
    match (outcome, reported) {
        (Err(e), Err(r)) => {
            eprintln!("parc-agent: {}", error_chain(&r));
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(r)) => Err(r),
        (Ok(msg), Ok(())) => Ok(msg),
    }
}

/// `error: a: b: c` in one line, for the report.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn need_target(t: Option<&Path>) -> Result<&Path, AgentError> {
    t.ok_or_else(|| AgentError::Task("this task needs --target <disk>".into()))
}

fn spawn_reporter(
    rt: &Runtime,
    ep: Endpoint,
    progress: Arc<Progress>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(interval).await;
            let snap = progress.snapshot();
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let rate = snap.bytes.saturating_sub(last.1) as f64 / dt;
            last = (now, snap.bytes);
            eprintln!(
                "parc-agent: {}: {} / {} MiB, {:.1} MiB/s",
                snap.phase,
                snap.bytes >> 20,
                snap.total >> 20,
                rate / (1u64 << 20) as f64
            );
            let _ = ep
                .progress(&ProgressReport {
                    phase: snap.phase,
                    bytes: snap.bytes,
                    total: snap.total,
                    rate,
                })
                .await;
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn deploy_task(
    rt: &Runtime,
    ep: &Endpoint,
    target: &Path,
    image_id: &str,
    manifest: &str,
    (hostname, unattend): (Option<&str>, Option<&[u8]>),
    inject: &[crate::ports::InjectFile],
    (offer, delivery): (Option<MulticastOffer>, &mut Option<Delivery>),
    records: Option<bool>,
    progress: &Progress,
) -> Result<(), AgentError> {
    let m = Manifest::parse(manifest).map_err(|source| ImageError::Manifest {
        id: image_id.to_string(),
        source,
    })?;
    if m.id() != image_id {
        return Err(AgentError::Task(format!(
            "the task names image {image_id} but sends the manifest of {}",
            m.id()
        )));
    }
    let plan = DeployPlan {
        manifest: &m,
        target,
        hostname,
        inject,
        unattend,
    };
    let room = |offer| {
        let s = RoomSource::new(rt, ep, &m, offer);
        match records {
            Some(read_all) => s.keeping_records(read_all),
            None => s,
        }
    };
    let mut source = room(offer);
    let first = deploy(plan, &mut source, progress);
    *delivery = Some(source.delivery());
    match first {
        // Bytes from the room's stream that do not verify: the whole deploy again, by HTTP.
        Err(e @ ImageError::Integrity { .. }) if source.delivery().multicast_bytes > 0 => {
            eprintln!("parc-agent: {e}; deploying again by unicast");
            let mut again = room(None);
            again.leave(&format!("the multicast stream did not verify: {e}"));
            let second = deploy(plan, &mut again, progress);
            let mut d = again.delivery();
            let before = source.delivery();
            d.path = DeliveryPath::MulticastThenUnicast;
            d.multicast_bytes = before.multicast_bytes;
            d.unicast_bytes += before.unicast_bytes;
            *delivery = Some(d);
            second?;
        }
        r => r?,
    }
    Ok(())
}

/// A `Write` that hands chunks to an upload running on the runtime.
struct UploadSink {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl Write for UploadSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(b)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Uploads what `produce` writes as stream `file`; a failure of `produce` aborts the upload.
/// What the report says of one partition's uploaded stream.
fn captured(
    number: u32,
    fs_label: Option<String>,
    fs_uuid: Option<String>,
    file: String,
    out: crate::image::capture::CaptureOutput,
    table: Option<crate::agent::wire::TableIdentity>,
) -> CapturedPartition {
    CapturedPartition {
        number,
        fs_label,
        fs_uuid,
        stream: StreamInfo {
            file,
            sha256: out.sha256,
            size: out.size,
            uncompressed_size: out.uncompressed_size,
            index: None,
        },
        table,
    }
}

/// Uploads what `produce` writes as `file`; `chunks`: the cutting parameters of a stream
/// written chunk by chunk (the endpoint stores its frames as they are).
fn upload_with<T>(
    rt: &Runtime,
    ep: &Endpoint,
    file: &str,
    chunks: Option<ChunkParams>,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> Result<T, AgentError> {
    let (tx, rx) = mpsc::channel(8);
    let upload = {
        let ep = ep.clone();
        let file = file.to_string();
        rt.spawn(async move { ep.upload(&file, rx, chunks).await })
    };
    let mut sink = UploadSink { tx: tx.clone() };
    let produced = produce(&mut sink);
    drop(sink);
    if let Err(e) = &produced {
        let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
    }
    drop(tx);
    let uploaded = rt
        .block_on(upload)
        .map_err(|e| AgentError::Task(format!("upload of {file} panicked: {e}")))?;
    match (produced, uploaded) {
        (Ok(v), Ok(())) => Ok(v),
        // The upload failing stops the pipeline: its error is the cause.
        (Err(e), Err(u)) if e.kind() == io::ErrorKind::BrokenPipe => Err(u),
        (Err(e), _) => Err(ImageError::stream(format!("capturing {file}"))(e).into()),
        (Ok(_), Err(u)) => Err(u),
    }
}

/// Whether partition `p` is captured as partclone's image of its blocks rather than as files:
/// NTFS always; FAT from the disk when parc writes nothing into it (no mountpoint: Windows'
/// ESP, whose FAT type, serial and boot sector then come back as they were).
fn captured_as_blocks(p: &Partition, from_folder: bool, from_disk: bool) -> bool {
    match p.filesystem {
        Filesystem::Ntfs => true,
        Filesystem::Vfat => p.mountpoint.is_none() && !from_folder && from_disk,
        _ => false,
    }
}

fn capture(
    rt: &Runtime,
    ep: &Endpoint,
    layout: &DiskLayout,
    sources: &CaptureSources,
    settings: CaptureSettings,
    progress: &Progress,
) -> Result<String, AgentError> {
    // The master's own table, when it has one, says where each partition is and names it.
    let table = match &sources.disk {
        Some(d) => read_table(d)?,
        None => None,
    };
    let ranges = match (&sources.disk, &table) {
        (Some(_), Some(t)) => Some(table_ranges(layout, t)?),
        (Some(d), None) => Some(partition_ranges(layout, disk_size(d)?)?),
        (None, _) => None,
    };
    let identity = |n: u32| -> Option<TableIdentity> {
        let t = table.as_ref()?;
        let tp = t.partitions.iter().find(|tp| tp.number() == Some(n))?;
        Some(TableIdentity {
            type_code: tp.type_code.clone(),
            uuid: tp.uuid.clone(),
            name: tp.name.clone(),
            attrs: tp.attrs.clone(),
        })
    };
    // A Windows that sysprep has not generalised is refused before anything is sent.
    if let (Some(disk), Some(r)) = (&sources.disk, &ranges) {
        for (i, p) in layout.partitions.iter().enumerate() {
            if p.filesystem != Filesystem::Ntfs {
                continue;
            }
            let (off, len) = r[i];
            let lo = LoopDevice::attach(disk, off, len, true)?;
            if crate::image::windows::is_system_volume(&lo.dev)? {
                progress.set_phase(format!("check sysprep on partition {}", p.number));
                crate::image::windows::check_generalized(&lo.dev, p.number)?;
            }
        }
    }
    let mut parts = Vec::new();
    let mut others = Vec::new();
    for (i, p) in layout.partitions.iter().enumerate() {
        if !matches!(
            p.filesystem,
            Filesystem::Ext4 | Filesystem::Vfat | Filesystem::Ntfs
        ) {
            others.extend(identity(p.number).map(|t| (p.number, t)));
            continue;
        }
        let dir = sources.dirs.iter().find(|(n, _)| *n == p.number);
        if captured_as_blocks(p, dir.is_some(), sources.disk.is_some()) {
            let (Some(disk), Some(r), None) = (&sources.disk, &ranges, dir) else {
                return Err(AgentError::Task(format!(
                    "partition {} is NTFS: it is captured from the master's disk (--disk), not from a folder",
                    p.number
                )));
            };
            let (off, len) = r[i];
            let lo = LoopDevice::attach(disk, off, len, true)?;
            let (label, uuid) = probe_fs(&lo.dev)?;
            let file = p.filesystem.stream_file(p.number, StreamKind::Blocks);
            progress.set_phase(format!("capture {file}"));
            let out = upload_with(rt, ep, &file, settings.chunks, |sink| {
                capture_blocks(p.filesystem, &lo.dev, settings, progress, sink)
            })?;
            drop(lo);
            parts.push(captured(
                p.number,
                label,
                uuid,
                file,
                out,
                identity(p.number),
            ));
            continue;
        }
        // Keep the loop device and mount alive while archiving.
        let mut held = None;
        let (root, label, uuid): (PathBuf, _, _) = match (dir, &sources.disk, &ranges) {
            (Some((_, d)), _, _) => (d.clone(), p.fs_label.clone(), p.fs_uuid.clone()),
            (None, Some(disk), Some(r)) => {
                let (off, len) = r[i];
                let lo = LoopDevice::attach(disk, off, len, true)?;
                let (label, uuid) = probe_fs(&lo.dev)?;
                let mnt = Mount::new(&lo.dev, true)?;
                let root = mnt.path().to_path_buf();
                held = Some((mnt, lo));
                (root, label, uuid)
            }
            _ => {
                return Err(AgentError::Task(format!(
                    "partition {} has a filesystem but neither --disk nor --source {}=DIR was given",
                    p.number, p.number
                )));
            }
        };
        let file = p.filesystem.stream_file(p.number, StreamKind::Files);
        progress.set_phase(format!("capture {file}"));
        let out = upload_with(rt, ep, &file, settings.chunks, |sink| {
            capture_tree(&root, settings, progress, sink)
        })?;
        if let Some((mnt, lo)) = held {
            mnt.unmount()?;
            drop(lo);
        }
        parts.push(captured(
            p.number,
            label,
            uuid,
            file,
            out,
            identity(p.number),
        ));
    }
    if parts.is_empty() {
        return Err(AgentError::Task(
            "the layout has no filesystem to capture".into(),
        ));
    }
    let boot_area = match &sources.disk {
        Some(d) => {
            progress.set_phase("capture boot area");
            let area = read_boot_area(d)?;
            let (sha256, size) =
                hash_reader(area.as_slice()).map_err(ImageError::stream("boot.bin"))?;
            upload_with(rt, ep, "boot.bin", None, |sink| sink.write_all(&area))?;
            Some(StreamInfo {
                file: "boot.bin".into(),
                sha256,
                size,
                uncompressed_size: BOOT_AREA,
                index: None,
            })
        }
        None => None,
    };
    progress.set_phase("commit");
    let captured_from = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    rt.block_on(ep.capture_done(&CaptureDone {
        captured_from,
        partitions: parts,
        boot_area,
        disk_guid: table.as_ref().and_then(|t| t.id.clone()),
        other_partitions: others,
    }))?;
    Ok("captured".into())
}
