//! The capture pipeline: archive → zstd (multi-threaded; by default chunk by chunk, the chunk
//! store's form) → sha256 → sink, where the archive
//! is a filesystem tree as tar ([`capture_tree`]) or an NTFS or FAT volume as partclone's
//! image of its used clusters ([`capture_blocks`]). Each stage runs on its own thread, joined
//! by bounded chunk pipes, so reading files, compressing and hashing overlap instead of
//! waiting on each other.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use sha2::{Digest, Sha256};

use super::chunks::{ChunkParams, compress_chunks};
use super::hashing::digest_string;
use super::manifest::{Filesystem, StreamInfo};
use super::pipe::chunk_pipe;
use super::progress::Progress;
use super::treetar::write_tree;

/// Compression settings. The default, zstd level 2 with a 16 MiB window, matches the ratio of
/// `zstd -3` on parc's name-sorted archives for about a sixth less CPU (see
/// `scripts/bench-capture.sh`, which prints both ratios).
#[derive(Debug, Clone, Copy)]
pub struct CaptureSettings {
    /// zstd level of file archives (3 is zstd's default).
    pub level: i32,
    /// zstd level of block images (partclone's NTFS and FAT streams). They are not
    /// name-sorted archives: there level 2 loses ~2.5% of ratio against `zstd -3`
    /// (`scripts/bench-capture.sh`, NTFS case), so they keep zstd's default.
    pub block_level: i32,
    /// zstd worker threads; 0 = one per core.
    pub workers: u32,
    /// zstd's window, hash and chain table sizes (log2); 0 keeps the level's own.
    pub window_log: u32,
    pub hash_log: u32,
    pub chain_log: u32,
    /// Cut the stream into content-defined chunks and compress each as one zstd frame (the
    /// chunk store's form: the endpoint stores the frames as they come, see
    /// `super::chunks::compress_chunks`); None: one zstd stream with the settings above.
    pub chunks: Option<ChunkParams>,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            level: 2,
            block_level: 3,
            workers: 0,
            window_log: 24,
            hash_log: 0,
            chain_log: 0,
            chunks: Some(ChunkParams::default()),
        }
    }
}

/// What a capture produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOutput {
    /// sha256 of the compressed stream, `sha256:<hex>`.
    pub sha256: String,
    /// Compressed size.
    pub size: u64,
    /// Size of the archive (tar or WIM) before compression.
    pub uncompressed_size: u64,
    /// Entries archived (0 for an NTFS block image).
    pub entries: u64,
}

impl CaptureOutput {
    /// The manifest's record of this output stored as `file`.
    pub fn into_stream(self, file: String) -> StreamInfo {
        StreamInfo {
            file,
            sha256: self.sha256,
            size: self.size,
            uncompressed_size: self.uncompressed_size,
            index: None,
        }
    }
}

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 8;

/// Counts bytes written through it.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Archives `root` and writes the compressed stream to `sink`, counting sent bytes in
/// `progress`. The sink is written from the calling thread.
pub fn capture_tree(
    root: &Path,
    settings: CaptureSettings,
    progress: &Progress,
    sink: &mut dyn Write,
) -> io::Result<CaptureOutput> {
    capture_with(|w| write_tree(root, w), settings, progress, sink)
}

/// The partclone command writing filesystem `fs` on `dev` (not mounted) on its stdout as a
/// block image of its used clusters. For NTFS every structure (security descriptors, named
/// streams, reparse points, hard links, short names, object ids, the boot sector, the volume
/// serial) comes back bit for bit; for FAT its type, serial, label and boot sector. See
/// `images/README.md` for why not a WIM.
pub fn block_capture_command(fs: Filesystem, dev: &Path) -> io::Result<Command> {
    let mut c = Command::new(partclone_tool(fs)?);
    c.args(["--clone", "--quiet", "--source"])
        .arg(dev)
        .args(["--output", "-"]);
    Ok(c)
}

/// The partclone tool of `fs`; an error for a filesystem parc does not stream as blocks.
pub fn partclone_tool(fs: Filesystem) -> io::Result<&'static str> {
    fs.partclone().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not streamed as blocks", fs.as_str()),
        )
    })
}

/// Captures filesystem `fs` on `dev` as a partclone image, then as [`capture_tree`].
pub fn capture_blocks(
    fs: Filesystem,
    dev: &Path,
    settings: CaptureSettings,
    progress: &Progress,
    sink: &mut dyn Write,
) -> io::Result<CaptureOutput> {
    let cmd = block_capture_command(fs, dev)?;
    let settings = CaptureSettings {
        level: settings.block_level,
        ..settings
    };
    capture_with(
        |w| {
            copy_from_command(cmd, w)?;
            Ok(0)
        },
        settings,
        progress,
        sink,
    )
}

/// Runs `cmd` and copies its stdout into `out`; its failure is an error carrying its stderr.
pub fn copy_from_command(mut cmd: Command, out: &mut dyn Write) -> io::Result<u64> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errs = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let copied = io::copy(&mut stdout, out);
    drop(stdout);
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let errs = errs.join().unwrap_or_default();
    let n = copied?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "{shown}: {status}: {}",
            errs.trim()
        )));
    }
    Ok(n)
}

/// The pipeline behind every capture: `archive` writes the uncompressed stream (returning its
/// entry count) on its own thread; zstd and sha256 follow, each on its own.
pub fn capture_with(
    archive: impl FnOnce(&mut dyn Write) -> io::Result<u64> + Send,
    settings: CaptureSettings,
    progress: &Progress,
    sink: &mut dyn Write,
) -> io::Result<CaptureOutput> {
    let workers = if settings.workers == 0 {
        thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        settings.workers
    };
    let (tar_w, mut tar_r) = chunk_pipe(DEPTH, CHUNK);
    let (zst_w, mut zst_r) = chunk_pipe(DEPTH, CHUNK);
    thread::scope(|s| {
        let tar = s.spawn(move || -> io::Result<(u64, u64)> {
            let mut w = Counting { inner: tar_w, n: 0 };
            let entries = archive(&mut w)?;
            let n = w.n;
            w.inner.finish()?;
            Ok((entries, n))
        });
        let zstd = s.spawn(move || -> io::Result<()> {
            if let Some(params) = settings.chunks {
                let mut zst_w = zst_w;
                compress_chunks(&mut tar_r, params, workers as usize, &mut zst_w).map_err(|e| {
                    match e {
                        super::error::ImageError::Stream { source, .. } => source,
                        e => io::Error::other(e.to_string()),
                    }
                })?;
                return zst_w.finish();
            }
            let mut enc = zstd::stream::write::Encoder::new(zst_w, settings.level)?;
            if workers > 1 {
                enc.multithread(workers)?;
            }
            use zstd::zstd_safe::CParameter;
            for (v, p) in [
                (
                    settings.window_log,
                    CParameter::WindowLog as fn(u32) -> CParameter,
                ),
                (settings.hash_log, CParameter::HashLog),
                (settings.chain_log, CParameter::ChainLog),
            ] {
                if v != 0 {
                    enc.set_parameter(p(v))?;
                }
            }
            while let Some(chunk) = tar_r.next_chunk()? {
                enc.write_all(&chunk)?;
            }
            enc.finish()?.finish()
        });
        let sent = (|| -> io::Result<(String, u64)> {
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(chunk) = zst_r.next_chunk()? {
                h.update(&chunk);
                sink.write_all(&chunk)?;
                n += chunk.len() as u64;
                progress.add(chunk.len() as u64);
            }
            sink.flush()?;
            Ok((digest_string(h), n))
        })();
        // Unblock the earlier stages if the sink failed.
        drop(zst_r);
        let tar = tar.join().expect("tar thread panicked");
        let zstd = zstd.join().expect("zstd thread panicked");
        match (tar, zstd, sent) {
            (Ok(t), Ok(()), Ok(s)) => Ok((t, s)),
            (tar, zstd, sent) => Err(first_cause([tar.err(), sent.err(), zstd.err()])),
        }
    })
    .map(|((entries, uncompressed), (sha256, size))| CaptureOutput {
        sha256,
        size,
        uncompressed_size: uncompressed,
        entries,
    })
}

/// The error of the stage that failed first, not the broken pipes it caused in the others.
fn first_cause(errors: [Option<io::Error>; 3]) -> io::Error {
    let is_pipe = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
        )
    };
    let mut errors: Vec<io::Error> = errors.into_iter().flatten().collect();
    match errors.iter().position(|e| !is_pipe(e)) {
        Some(i) => errors.swap_remove(i),
        None => errors.swap_remove(0),
    }
}
