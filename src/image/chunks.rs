//! Content-addressed chunks, the ground floor of incremental images: a stream is cut where its
//! content says (FastCDC, so an insertion moves the cuts near it only), each chunk is stored
//! once under the sha256 of its bytes, zstd-compressed, in `<store>/chunks/<aa>/<digest>.zst`,
//! and the stream becomes an index: the ordered digests and lengths of its chunks.
//!
//! Chunk files are immutable and named by what they hold, so any HTTP server or cache can
//! serve them and two images that share content share its chunks. A chunk is checked against
//! its name every time it is read.
//!
//! The index is plain text, one chunk per line after a header naming the cutting parameters:
//! the sha256 of the chunk's bytes, their length, and the length of its file in the store.
//!
//! ```text
//! parc-chunk-index 1 fastcdc-2020 16384 65536 262144
//! 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b 70112 21934
//! …
//! ```
//!
//! Each chunk file is one zstd frame, so the chunk files of an index concatenated in order are
//! a zstd stream of the whole uncompressed stream: the endpoint serves that concatenation as
//! the image's stream (one request, HTTP ranges, the room's multicast), and the manifest keeps
//! its sha256 and length as it does for a single-file stream.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{ImageError, ImageResult};

const INDEX_MAGIC: &str = "parc-chunk-index";
const INDEX_VERSION: u32 = 1;
const ALGORITHM: &str = "fastcdc-2020";

/// Where FastCDC may cut: no chunk shorter than `min` (but the last), none longer than `max`,
/// `avg` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// 4/16/64 KiB: `scripts/bench-store.sh` compared 16, 32 and 64 KiB averages on the bench
/// tree; a reimage of a disk drifted by 1% of its files fetched 2.5%, 3.4% and 4.7% of the
/// image (the issue's target: 3%), for an image 6% larger at 16 than at 64 KiB (each chunk is
/// compressed alone).
impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            min: 4 << 10,
            avg: 16 << 10,
            max: 64 << 10,
        }
    }
}

impl ChunkParams {
    /// The parameters of new captures: the default, or an average of `PARC_CHUNK_AVG_KIB`
    /// KiB (min a quarter of it, max four times), which `scripts/bench-store.sh` uses to
    /// compare sizes. Deploys read the parameters from each index.
    pub fn for_capture() -> Result<Self, String> {
        let Ok(v) = std::env::var("PARC_CHUNK_AVG_KIB") else {
            return Ok(Self::default());
        };
        let avg: u32 = v
            .parse()
            .map_err(|_| format!("PARC_CHUNK_AVG_KIB={v} is not a number of KiB"))?;
        let avg = avg.saturating_mul(1024);
        let p = Self {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        };
        p.check().map(|()| p)
    }

    /// The limits FastCDC accepts, and min < avg < max.
    pub fn check(&self) -> Result<(), String> {
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        if !(MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            || !(AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            || !(MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            || min >= avg
            || avg >= max
        {
            return Err(format!(
                "chunk sizes {min}/{avg}/{max} are outside FastCDC's limits or not min < avg < max"
            ));
        }
        Ok(())
    }
}

/// One chunk of a stream: the sha256 of its bytes and their length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    pub digest: [u8; 32],
    pub len: u32,
}

impl ChunkRef {
    pub fn hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// A stream as its chunks, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub params: ChunkParams,
    pub chunks: Vec<ChunkRef>,
    /// The length of each chunk's file in the store (same order and count as `chunks`).
    pub stored: Vec<u32>,
}

/// Why an index cannot be read, with the line and column where it went wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}, column {col}: {msg}")]
pub struct IndexError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ChunkIndex {
    /// Bytes of the whole stream.
    pub fn stream_len(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.len)).sum()
    }

    /// Bytes of the chunk files concatenated (the stream as served).
    pub fn stored_len(&self) -> u64 {
        self.stored.iter().map(|&n| u64::from(n)).sum()
    }

    /// Where byte `offset` of the stored stream (the chunk files concatenated in index
    /// order) lies: the index of the chunk holding it and how many bytes of that chunk's
    /// file come before it. None at or past the end.
    pub fn locate(&self, offset: u64) -> Option<(usize, u64)> {
        let mut start = 0u64;
        for (i, &z) in self.stored.iter().enumerate() {
            let end = start + u64::from(z);
            if offset < end {
                return Some((i, offset - start));
            }
            start = end;
        }
        None
    }

    pub fn render(&self) -> String {
        let p = self.params;
        let mut s = format!(
            "{INDEX_MAGIC} {INDEX_VERSION} {ALGORITHM} {} {} {}\n",
            p.min, p.avg, p.max
        );
        s.reserve(self.chunks.len() * 76);
        for (c, z) in self.chunks.iter().zip(&self.stored) {
            s.push_str(&c.hex());
            s.push(' ');
            s.push_str(&c.len.to_string());
            s.push(' ');
            s.push_str(&z.to_string());
            s.push('\n');
        }
        s
    }

    /// The index file as stored and served: the text, zstd-compressed (the hex digests
    /// compress to about half; a reimage fetches the index whole). Level 3: on the bench
    /// image's index (5.4 MB of text) level 19 took 4.3 s, at the end of every capture, for a
    /// file 4% smaller than level 3 makes in 0.05 s.
    pub fn encode(&self) -> Vec<u8> {
        zstd::bulk::compress(self.render().as_bytes(), 3).expect("compressing text in memory")
    }

    /// Reads an index file written by [`ChunkIndex::encode`], of at most 1 GiB of text. No
    /// bound on the compression ratio: a stream of zeros makes an index of identical lines.
    /// Indexes come from the image store (the endpoint's, or the agent fetching it).
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let text = unzstd_text(bytes, "a chunk index", 1 << 30)?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let err = |line: usize, col: usize, msg: String| IndexError { line, col, msg };
        let mut lines = text.split_inclusive('\n').enumerate();
        let (_, header) = lines
            .next()
            .ok_or_else(|| err(1, 1, "empty file, expected the index header".into()))?;
        let header = header.trim_end_matches('\n');
        let fields: Vec<(usize, &str)> = words(header);
        let at = |i: usize| fields.get(i).map(|f| f.0 + 1).unwrap_or(header.len() + 1);
        if fields.first().map(|f| f.1) != Some(INDEX_MAGIC) {
            return Err(err(1, 1, format!("expected `{INDEX_MAGIC}`")));
        }
        if fields.get(1).map(|f| f.1) != Some("1") {
            return Err(err(
                1,
                at(1),
                format!("unknown index version (this parc reads {INDEX_VERSION})"),
            ));
        }
        if fields.get(2).map(|f| f.1) != Some(ALGORITHM) {
            return Err(err(
                1,
                at(2),
                format!("expected the algorithm `{ALGORITHM}`"),
            ));
        }
        let mut sizes = [0u32; 3];
        for (k, s) in sizes.iter_mut().enumerate() {
            *s = fields
                .get(3 + k)
                .and_then(|f| f.1.parse().ok())
                .ok_or_else(|| err(1, at(3 + k), "expected the min, avg and max sizes".into()))?;
        }
        if fields.len() > 6 {
            return Err(err(1, at(6), "unexpected text after the sizes".into()));
        }
        let params = ChunkParams {
            min: sizes[0],
            avg: sizes[1],
            max: sizes[2],
        };
        params.check().map_err(|m| err(1, at(3), m))?;
        let mut chunks = Vec::new();
        let mut stored = Vec::new();
        for (i, raw) in lines {
            let n = i + 1;
            let line = raw.strip_suffix('\n').ok_or_else(|| {
                err(
                    n,
                    raw.len() + 1,
                    "the last line has no newline: the index is cut short".into(),
                )
            })?;
            let mut f = words(line).into_iter();
            let shape = "expected `<sha256 hex> <length> <stored length>`";
            let (_, digest) = f.next().expect("split yields one word at least");
            let mut d = [0u8; 32];
            hex::decode_to_slice(digest, &mut d)
                .map_err(|_| err(n, 1, "expected 64 hex digits of sha256".into()))?;
            let mut number = |what: &str, max: u32| -> Result<u32, IndexError> {
                let (at, w) = f
                    .next()
                    .ok_or_else(|| err(n, line.len() + 1, shape.into()))?;
                w.parse()
                    .ok()
                    .filter(|&l| l > 0 && l <= max)
                    .ok_or_else(|| err(n, at + 1, format!("expected {what} from 1 to {max}")))
            };
            let len = number("a chunk length", params.max)?;
            // zstd's bound for a frame of `max` bytes, with room to spare.
            let z = number("a stored length", params.max + (params.max >> 7) + 1024)?;
            if let Some((at, _)) = f.next() {
                return Err(err(
                    n,
                    at + 1,
                    "unexpected text after the stored length".into(),
                ));
            }
            chunks.push(ChunkRef { digest: d, len });
            stored.push(z);
        }
        Ok(Self {
            params,
            chunks,
            stored,
        })
    }
}

/// The words of a line (separated by one space, as `render` writes them) with their byte
/// offsets; two spaces make an empty word, which then fails to parse where it stands.
/// The text of a zstd-compressed text file parc wrote (`what` it should be), up to `max` bytes
/// (read no further: a larger text is refused before it takes the memory).
pub(super) fn unzstd_text(bytes: &[u8], what: &str, max: u64) -> Result<String, IndexError> {
    let not = |why: &str| IndexError {
        line: 1,
        col: 1,
        msg: format!("not {what} (zstd-compressed text{why})"),
    };
    let mut text = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .and_then(|d| d.take(max + 1).read_to_end(&mut text))
        .map_err(|_| not(""))?;
    if text.len() as u64 > max {
        return Err(not(&format!(" of at most {max} bytes")));
    }
    String::from_utf8(text).map_err(|_| not(""))
}

/// The words of a line with the column each starts at (0-based).
pub(super) fn words(line: &str) -> Vec<(usize, &str)> {
    let mut off = 0;
    line.split(' ')
        .map(|w| {
            let at = off;
            off += w.len() + 1;
            (at, w)
        })
        .collect()
}

/// The chunk folder of an image store: `<store>/chunks`.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    root: PathBuf,
}

impl ChunkStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<first two hex digits>/<digest>.zst`.
    pub fn path(&self, c: &ChunkRef) -> PathBuf {
        self.digest_path(&c.digest)
    }

    fn digest_path(&self, d: &[u8; 32]) -> PathBuf {
        let h = hex::encode(d);
        self.root.join(&h[..2]).join(format!("{h}.zst"))
    }

    pub fn has(&self, c: &ChunkRef) -> bool {
        self.path(c).is_file()
    }

    /// Stores `data` as chunk `c` unless it is there already; returns the chunk's file as
    /// stored and whether this call wrote it. Written beside its place and renamed, so a chunk
    /// file is either absent or whole; not fsync'd here: the writer calls [`ChunkStore::sync`]
    /// once it has written every chunk of an image, before the image appears.
    pub fn put(
        &self,
        c: &ChunkRef,
        data: &[u8],
        zstd: &mut zstd::bulk::Compressor<'_>,
    ) -> ImageResult<(Vec<u8>, bool)> {
        let path = self.path(c);
        match fs::read(&path) {
            Ok(z) => return Ok((z, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io(&path)(e)),
        }
        let z = zstd.compress(data).map_err(ImageError::io(&path))?;
        self.write_new(c, &path, &z)?;
        Ok((z, true))
    }

    /// Stores `z`, already chunk `c` compressed (a frame an agent sent), unless the store has
    /// the chunk: then its file, should it hold other bytes than `z` (compressed otherwise).
    pub fn put_stored(&self, c: &ChunkRef, z: &[u8]) -> ImageResult<Stored> {
        let path = self.path(c);
        match fs::read(&path) {
            Ok(existing) if existing == z => return Ok(Stored::Same),
            Ok(existing) => return Ok(Stored::Other(existing)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io(&path)(e)),
        }
        self.write_new(c, &path, z)?;
        Ok(Stored::New)
    }

    fn write_new(&self, c: &ChunkRef, path: &Path, z: &[u8]) -> ImageResult<()> {
        let dir = path.parent().expect("a chunk path has a folder");
        fs::create_dir_all(dir).map_err(ImageError::io(dir))?;
        let tmp = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            c.hex(),
            std::process::id(),
            std::thread::current().id()
        ));
        File::create(&tmp)
            .and_then(|mut f| f.write_all(z))
            .and_then(|()| fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                ImageError::io(path)(e)
            })
    }

    /// Makes every chunk written so far durable (one `syncfs` of the store's filesystem,
    /// not one fsync per chunk file).
    pub fn sync(&self) -> ImageResult<()> {
        use std::os::fd::AsRawFd;
        let dir = File::open(&self.root).map_err(ImageError::io(&self.root))?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(ImageError::io(&self.root)(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The bytes of chunk `c`, checked against its digest and length.
    pub fn get(&self, c: &ChunkRef) -> ImageResult<Vec<u8>> {
        let path = self.path(c);
        let z = fs::read(&path).map_err(ImageError::io(&path))?;
        decode_chunk(c, &z).map_err(|detail| ImageError::Integrity {
            file: path.display().to_string(),
            detail,
        })
    }
}

/// A lock on the chunk store (`<root>/.lock`, flock): writers (captures) hold it shared, the
/// sweep of `prune` exclusive, so a sweep never removes a chunk a capture in progress has
/// written or found before its index is in place. Released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl ChunkStore {
    /// Taken by a writer for as long as it writes chunks and until its index is in place.
    pub fn lock_shared(&self) -> ImageResult<StoreLock> {
        self.lock(libc::LOCK_SH)
    }

    /// Taken by a prune, for its whole run; refused at once while a capture holds the store.
    pub fn lock_exclusive(&self) -> ImageResult<StoreLock> {
        self.lock(libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| match e {
                ImageError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    ImageError::Invalid(
                        "a capture is writing to the image store: prune again once it has finished"
                            .into(),
                    )
                }
                e => e,
            })
    }

    fn lock(&self, how: libc::c_int) -> ImageResult<StoreLock> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(&self.root).map_err(ImageError::io(&self.root))?;
        let path = self.root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io(&path))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
            return Err(ImageError::io(&path)(std::io::Error::last_os_error()));
        }
        Ok(StoreLock { _file: file })
    }

    /// The digests of every chunk in the store.
    pub fn digests(&self) -> ImageResult<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        let top = match fs::read_dir(&self.root) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ImageError::io(&self.root)(e)),
        };
        for dir in top {
            let dir = dir.map_err(ImageError::io(&self.root))?.path();
            if !dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&dir).map_err(ImageError::io(&dir))? {
                let name = f.map_err(ImageError::io(&dir))?.file_name();
                let name = name.to_string_lossy();
                let mut d = [0u8; 32];
                if let Some(h) = name.strip_suffix(".zst") {
                    if hex::decode_to_slice(h, &mut d).is_ok() {
                        out.push(d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes every chunk whose digest is not in `live` (the mark of `prune`: every chunk
    /// any image's index names); returns the chunks and compressed bytes removed. Runs under
    /// the exclusive lock (taken before the mark), so no capture writes meanwhile.
    pub fn sweep(
        &self,
        live: &std::collections::HashSet<[u8; 32]>,
        _held: &StoreLock,
    ) -> ImageResult<(usize, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for d in self.digests()? {
            if live.contains(&d) {
                continue;
            }
            let path = self.digest_path(&d);
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(ImageError::io(&path))?;
            n += 1;
            bytes += size;
        }
        Ok((n, bytes))
    }
}

/// Decompresses a stored chunk and checks it is chunk `c`.
pub fn decode_chunk(c: &ChunkRef, z: &[u8]) -> Result<Vec<u8>, String> {
    thread_local! {
        // One zstd context per thread (making one per chunk cost a reimage 3% of its CPU).
        static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let data = UNZSTD
        .with_borrow_mut(|d| {
            let d = match d {
                Some(d) => d,
                None => d.insert(zstd::bulk::Decompressor::new()?),
            };
            d.decompress(z, c.len as usize)
        })
        .map_err(|e| format!("chunk {} does not decompress: {e}", c.hex()))?;
    let got = ChunkRef {
        digest: Sha256::digest(&data).into(),
        len: data.len() as u32,
    };
    if got != *c {
        return Err(format!(
            "chunk {} holds {} bytes with digest {}",
            c.hex(),
            got.len,
            got.hex()
        ));
    }
    Ok(data)
}

/// What cutting a stream into the store did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    pub index: ChunkIndex,
    /// sha256 (`sha256:<hex>`) of the chunk files concatenated in order: the stream as served.
    pub sha256: String,
    /// Compressed bytes of the chunks the store did not have yet.
    pub stored_bytes: u64,
    /// Chunks the store did not have yet.
    pub new_chunks: usize,
}

/// zstd level of chunk files: one level for the whole store, so a chunk's file is the same
/// whichever image stored it first (a chunk stored at another level is kept as it is: the
/// store holds one file per digest). Level 1: `parc-agent archive` of the bench tree, beside a CI run, took 4.7 s
/// of wall time and 6.6 s of CPU against 5.9 s and 8.0 s at level 2 and 7.4 s and 9.5 s at
/// level 3, for chunk files 1.9% and 3.3% smaller than level 1's.
pub const CHUNK_LEVEL: i32 = 1;

/// Runs `work` on every job `jobs` yields, on `workers` threads (0: one per core), each with
/// its own state from `init`, and hands the results to `each` in the jobs' order. Stops at
/// the first error (of a job, of `work` or of `each`).
fn in_order<J: Send, S, T: Send>(
    jobs: impl Iterator<Item = ImageResult<J>>,
    workers: usize,
    init: impl Fn() -> ImageResult<S> + Sync,
    work: impl Fn(&mut S, J) -> ImageResult<T> + Sync,
    mut each: impl FnMut(T) -> ImageResult<()> + Send,
) -> ImageResult<usize> {
    use std::sync::mpsc::{channel, sync_channel};
    use std::sync::{Arc, Mutex};
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (job_tx, job_rx) = sync_channel::<(usize, J)>(workers * 4);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = channel::<ImageResult<(usize, T)>>();
    std::thread::scope(|sc| {
        for _ in 0..workers {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            let (init, work) = (&init, &work);
            sc.spawn(move || {
                let mut state = match init() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((i, job)) = job else { return };
                    if tx.send(work(&mut state, job).map(|t| (i, t))).is_err() {
                        return;
                    }
                }
            });
        }
        // Only the workers hold the jobs' receiver: once they have all stopped (the collector
        // failed, so their results have nowhere to go), feeding fails instead of blocking.
        drop(job_rx);
        drop(done_tx);
        let collector = sc.spawn(move || -> ImageResult<usize> {
            let mut pending = std::collections::BTreeMap::new();
            let mut next = 0usize;
            for r in done_rx {
                let (i, t) = r?;
                pending.insert(i, t);
                while let Some(t) = pending.remove(&next) {
                    each(t)?;
                    next += 1;
                }
            }
            Ok(next)
        });
        let mut sent = 0usize;
        let fed = (|| -> ImageResult<()> {
            for job in jobs {
                if job_tx.send((sent, job?)).is_err() {
                    break; // a worker or the collector failed: the collector says why
                }
                sent += 1;
            }
            Ok(())
        })();
        drop(job_tx);
        let collected = collector.join().expect("chunk collector panicked");
        fed?;
        let done = collected?;
        if done != sent {
            return Err(ImageError::Invalid(
                "a chunk worker stopped before the end of the stream".into(),
            ));
        }
        Ok(done)
    })
}

/// Bytes of stream per batch of chunks: a job for a worker thread (about 64 chunks at the
/// default average, so threads hand over work 64 times less often than chunk by chunk).
const BATCH: usize = 1 << 20;

/// Whole chunks FastCDC cut from one stretch of a stream: the bytes and where each chunk ends.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Where `data` starts in the stream.
    pub offset: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Each chunk with its offset in the stream.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| (self.offset + a as u64, &self.data[a..b]))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

/// A stream read a stretch at a time, the bytes after the last whole piece (chunk or frame)
/// carried into the next stretch.
struct Stretch<R> {
    input: R,
    rest: Vec<u8>,
    /// Where `rest` starts in the stream.
    offset: u64,
    eof: bool,
}

impl<R: Read> Stretch<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            rest: Vec::new(),
            offset: 0,
            eof: false,
        }
    }

    /// The carried bytes, then the input's until `data` holds `fill` bytes or the input ends.
    fn fill(&mut self, data: &mut Vec<u8>, fill: usize) -> std::io::Result<()> {
        data.append(&mut self.rest);
        while !self.eof && data.len() < fill {
            let want = (fill - data.len()) as u64;
            let got = (&mut self.input).take(want).read_to_end(data)?;
            self.eof = (got as u64) < want;
        }
        Ok(())
    }

    /// `data` up to `ends`' last as a batch of pieces ending there; the rest is carried.
    fn batch(&mut self, mut data: Vec<u8>, ends: Vec<usize>) -> Batch {
        let at = ends.last().copied().unwrap_or(0);
        self.rest = data.split_off(at);
        let batch = Batch {
            offset: self.offset,
            data,
            ends,
        };
        self.offset += at as u64;
        batch
    }
}

/// Cuts a stream into chunks, a [`Batch`] of them at a time, where `StreamCDC` would: FastCDC
/// is given, at each cut, the `max` bytes that follow (or all that is left at the end of the
/// stream), as `StreamCDC` gives it, so the chunks are the same; without copying each chunk
/// out and the rest of its buffer down as `StreamCDC` does.
pub(crate) struct Cutter<R> {
    stretch: Stretch<R>,
    params: ChunkParams,
}

impl<R: Read> Cutter<R> {
    pub fn new(input: R, params: ChunkParams) -> Result<Self, String> {
        params.check()?;
        Ok(Self {
            stretch: Stretch::new(input),
            params,
        })
    }

    fn next_batch(&mut self) -> std::io::Result<Option<Batch>> {
        let max = self.params.max as usize;
        // At least two chunks' worth whatever the sizes: a batch always holds a cut.
        let fill = BATCH.max(2 * max);
        let mut data = Vec::with_capacity(fill + max);
        self.stretch.fill(&mut data, fill)?;
        if data.is_empty() {
            return Ok(None);
        }
        let cdc = fastcdc::v2020::FastCDC::new(
            &data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
        );
        let (mut at, mut ends) = (0, Vec::with_capacity(2 * fill / self.params.avg as usize));
        while at < data.len() && (self.stretch.eof || data.len() - at >= max) {
            at = cdc.cut(at, data.len() - at).1;
            ends.push(at);
        }
        Ok(Some(self.stretch.batch(data, ends)))
    }
}

impl<R: Read> Iterator for Cutter<R> {
    type Item = std::io::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// The chunks FastCDC cuts `input` into, in batches.
fn cut(
    input: impl Read,
    params: ChunkParams,
) -> ImageResult<impl Iterator<Item = ImageResult<Batch>>> {
    let cutter = Cutter::new(input, params).map_err(ImageError::Invalid)?;
    Ok(cutter.map(|b| b.map_err(ImageError::stream("cutting the stream into chunks"))))
}

fn compressor() -> ImageResult<zstd::bulk::Compressor<'static>> {
    zstd::bulk::Compressor::new(CHUNK_LEVEL).map_err(ImageError::stream("starting zstd"))
}

fn chunk_ref(data: &[u8]) -> ChunkRef {
    ChunkRef {
        digest: Sha256::digest(data).into(),
        len: data.len() as u32,
    }
}

/// What [`ChunkStore::put_stored`] found: the frame stored as it came, or the store's own
/// file of that chunk, the same bytes or other ones.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    Same,
    Other(Vec<u8>),
}

/// Builds a stream's index and its served digest from its chunk files, in order.
struct Collect {
    index: ChunkIndex,
    served: Sha256,
    stored_bytes: u64,
    new_chunks: usize,
}

impl Collect {
    fn new(params: ChunkParams) -> Self {
        Self {
            index: ChunkIndex {
                params,
                chunks: Vec::new(),
                stored: Vec::new(),
            },
            served: Sha256::new(),
            stored_bytes: 0,
            new_chunks: 0,
        }
    }

    /// Chunk `c`, whose file in the store is `z`, `new` if this capture wrote it.
    fn add(&mut self, (c, z, new): (ChunkRef, Vec<u8>, bool)) {
        self.served.update(&z);
        self.count(c, z.len(), new);
    }

    fn count(&mut self, c: ChunkRef, stored: usize, new: bool) {
        self.index.chunks.push(c);
        self.index.stored.push(stored as u32);
        if new {
            self.stored_bytes += stored as u64;
            self.new_chunks += 1;
        }
    }

    fn finish(self) -> Chunked {
        Chunked {
            index: self.index,
            sha256: super::hashing::digest_string(self.served),
            stored_bytes: self.stored_bytes,
            new_chunks: self.new_chunks,
        }
    }
}

/// Cuts everything `input` yields into chunks (FastCDC on the calling thread), hashes,
/// compresses and stores the ones the store lacks on `workers` threads (0: one per core), and
/// returns the stream's index with the digest of its chunk files in order.
pub fn chunk_into(
    input: impl Read,
    params: ChunkParams,
    store: &ChunkStore,
    workers: usize,
) -> ImageResult<Chunked> {
    let mut out = Collect::new(params);
    in_order(
        cut(input, params)?,
        workers,
        compressor,
        |zstd, batch| {
            let mut done = Vec::with_capacity(batch.len());
            for (_, data) in batch.chunks() {
                let c = chunk_ref(data);
                let (z, new) = store.put(&c, data, zstd)?;
                done.push((c, z, new));
            }
            Ok(done)
        },
        |done| {
            done.into_iter().for_each(|t| out.add(t));
            Ok(())
        },
    )?;
    Ok(out.finish())
}

/// What the agent sends for a chunked capture: `input` cut with `params`, each chunk
/// compressed as one zstd frame (on `workers` threads), the frames written to `out` in order.
/// A zstd stream of the whole input, which the endpoint stores frame by frame
/// ([`store_frames`]) without compressing anything again.
pub fn compress_chunks(
    input: impl Read,
    params: ChunkParams,
    workers: usize,
    out: &mut (dyn Write + Send),
) -> ImageResult<()> {
    in_order(
        cut(input, params)?,
        workers,
        compressor,
        |zstd, batch| {
            let mut frames = Vec::new();
            for (_, data) in batch.chunks() {
                let z = zstd
                    .compress(data)
                    .map_err(ImageError::stream("compressing a chunk"))?;
                frames.extend_from_slice(&z);
            }
            Ok(frames)
        },
        |frames| {
            out.write_all(&frames)
                .map_err(ImageError::stream("writing a chunk"))
        },
    )?;
    Ok(())
}

/// Stores a stream written by [`compress_chunks`] (`params` as the sender says): each zstd
/// frame is one chunk, decompressed and hashed (on `workers` threads) to name it and stored
/// as it came unless the store has it. A frame larger than `params.max` once decompressed is
/// refused. Returns, beside what was stored, the sha256 of the upload as it came (the same
/// as the served stream's unless the store held some chunk compressed otherwise: the two
/// digests share one pass over the bytes until then).
pub fn store_frames(
    input: impl Read,
    params: ChunkParams,
    store: &ChunkStore,
    workers: usize,
) -> ImageResult<(Chunked, String)> {
    params.check().map_err(ImageError::Invalid)?;
    let mut out = Collect::new(params);
    // The upload's digest while every chunk file so far is the frame that came.
    let mut upload: Option<Sha256> = None;
    in_order(
        Frames(Stretch::new(input)),
        workers,
        || zstd::bulk::Decompressor::new().map_err(ImageError::stream("starting zstd")),
        |unzstd, batch: Batch| {
            let mut done = Vec::with_capacity(batch.len());
            for (_, frame) in batch.chunks() {
                let data = unzstd.decompress(frame, params.max as usize).map_err(|e| {
                    ImageError::stream(format!(
                        "a frame of the upload does not decompress to at most {} bytes",
                        params.max
                    ))(e)
                })?;
                if data.is_empty() {
                    return Err(bad_upload("an empty chunk in the upload"));
                }
                let c = chunk_ref(&data);
                done.push((c, store.put_stored(&c, frame)?));
            }
            Ok((batch, done))
        },
        |(batch, done)| {
            let same = upload.is_none() && done.iter().all(|(_, s)| !matches!(s, Stored::Other(_)));
            if same {
                out.served.update(&batch.data);
            }
            for ((_, frame), (c, stored)) in batch.chunks().zip(done) {
                if !same {
                    let upload = upload.get_or_insert_with(|| out.served.clone());
                    upload.update(frame);
                    out.served.update(match &stored {
                        Stored::Other(z) => z,
                        _ => frame,
                    });
                }
                let (len, new) = match &stored {
                    Stored::Other(z) => (z.len(), false),
                    s => (frame.len(), *s == Stored::New),
                };
                out.count(c, len, new);
            }
            Ok(())
        },
    )?;
    let upload = upload.unwrap_or_else(|| out.served.clone());
    Ok((out.finish(), super::hashing::digest_string(upload)))
}

/// What the sender got wrong: a stream error, which the endpoint answers as bad input.
fn bad_upload(why: &str) -> ImageError {
    ImageError::stream("the upload")(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        why.to_string(),
    ))
}

/// The zstd frames of a stream, a [`Batch`] of whole frames at a time.
struct Frames<R>(Stretch<R>);

impl<R: Read> Frames<R> {
    fn next_batch(&mut self) -> ImageResult<Option<Batch>> {
        use zstd::zstd_safe::find_frame_compressed_size;
        let mut data = Vec::with_capacity(BATCH + (1 << 20));
        let mut fill = BATCH;
        loop {
            self.0
                .fill(&mut data, fill)
                .map_err(ImageError::stream("reading the upload"))?;
            let (mut at, mut ends) = (0, Vec::new());
            while at < data.len() {
                match find_frame_compressed_size(&data[at..]) {
                    Ok(n) if at + n <= data.len() => {
                        at += n;
                        ends.push(at);
                    }
                    _ => break,
                }
            }
            if !ends.is_empty() {
                return Ok(Some(self.0.batch(data, ends)));
            }
            if data.is_empty() {
                return Ok(None);
            }
            if self.0.eof {
                return Err(bad_upload("the upload ends inside a zstd frame"));
            }
            if data.len() > 1 << 20 {
                return Err(bad_upload(
                    "the upload holds a zstd frame over 1 MiB: not a chunked stream",
                ));
            }
            // One frame longer than a batch so far: read on.
            fill = data.len() + BATCH;
        }
    }
}

impl<R: Read> Iterator for Frames<R> {
    type Item = ImageResult<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// Writes the stream `index` describes to `out`, every chunk checked; returns its length.
pub fn write_stream(
    index: &ChunkIndex,
    store: &ChunkStore,
    out: &mut impl Write,
) -> ImageResult<u64> {
    let mut n = 0u64;
    for c in &index.chunks {
        let data = store.get(c)?;
        out.write_all(&data)
            .map_err(ImageError::stream("writing the stream from its chunks"))?;
        n += data.len() as u64;
    }
    Ok(n)
}

/// The chunk files of an index concatenated, from byte `start` on: the stream as served (a
/// zstd stream of the whole uncompressed stream). A chunk file whose length is not the
/// index's is an error naming it; contents are not checked here (the reader of the stream
/// checks its digest).
pub struct Concat {
    store: ChunkStore,
    index: std::sync::Arc<ChunkIndex>,
    /// Next chunk to open, and the bytes of the current one left to read.
    next: usize,
    cur: Option<std::io::Take<File>>,
    skip: u64,
}

impl Concat {
    pub fn new(store: ChunkStore, index: std::sync::Arc<ChunkIndex>, start: u64) -> Self {
        let (next, skip) = index.locate(start).unwrap_or((index.stored.len(), 0));
        Self {
            store,
            index,
            next,
            cur: None,
            skip,
        }
    }
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Seek, SeekFrom};
        loop {
            if let Some(cur) = self.cur.as_mut() {
                let n = cur.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.cur = None;
            }
            let Some(c) = self.index.chunks.get(self.next) else {
                return Ok(0);
            };
            let want = u64::from(self.index.stored[self.next]);
            let path = self.store.path(c);
            let mut f = File::open(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let len = f.metadata()?.len();
            if len != want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "chunk {} is stored as {len} bytes, its index says {want}",
                        c.hex()
                    ),
                ));
            }
            f.seek(SeekFrom::Start(self.skip))?;
            self.cur = Some(f.take(want - self.skip));
            self.skip = 0;
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testdata::noise;
    use std::io;

    fn store() -> (tempfile::TempDir, ChunkStore) {
        let d = tempfile::tempdir().unwrap();
        let s = ChunkStore::new(d.path().join("chunks"));
        (d, s)
    }

    #[test]
    fn a_failing_consumer_stops_the_feed_instead_of_blocking_it() {
        // More jobs than the channel holds, and `each` fails at once (a full disk): the call
        // must return that error, not wait forever for workers that have stopped.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = in_order(
                (0..10_000).map(Ok::<usize, ImageError>),
                2,
                || Ok(()),
                |_, j| Ok(j),
                |_| Err(ImageError::Invalid("disk full".into())),
            );
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("in_order blocked after its consumer failed");
        assert!(matches!(r, Err(ImageError::Invalid(m)) if m == "disk full"));
    }

    #[test]
    fn a_stored_offset_names_its_chunk_and_the_bytes_before_it() {
        let c = |b: u8| ChunkRef {
            digest: [b; 32],
            len: 100,
        };
        let index = ChunkIndex {
            params: ChunkParams::default(),
            chunks: vec![c(1), c(2), c(3)],
            stored: vec![10, 20, 5],
        };
        assert_eq!(index.locate(0), Some((0, 0)));
        assert_eq!(index.locate(9), Some((0, 9)), "the first chunk's last byte");
        assert_eq!(index.locate(10), Some((1, 0)), "a chunk boundary");
        assert_eq!(index.locate(29), Some((1, 19)));
        assert_eq!(
            index.locate(30),
            Some((2, 0)),
            "the last chunk's first byte"
        );
        assert_eq!(index.locate(34), Some((2, 4)), "the stream's last byte");
        assert_eq!(index.locate(35), None, "the end of the stream");
        assert_eq!(index.locate(u64::MAX), None);
        let empty = ChunkIndex {
            chunks: Vec::new(),
            stored: Vec::new(),
            ..index
        };
        assert_eq!(empty.locate(0), None);
    }

    /// A reader handing out at most `step` bytes per call, as a pipe or a socket does.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn batches_cut_where_the_streaming_chunker_cuts() {
        // Where an image's chunks are cut is its identity in the store: the batch cutter must
        // agree with fastcdc's StreamCDC on every stream, whatever its length or its reads.
        let small = ChunkParams {
            min: 256,
            avg: 1024,
            max: 4096,
        };
        let data = [noise(3, 3 << 20), vec![0u8; 300 << 10], noise(4, 5000)].concat();
        for p in [ChunkParams::default(), small] {
            for len in [
                0,
                1,
                255,
                4096,
                4097,
                BATCH - 1,
                BATCH,
                BATCH + 1,
                data.len(),
            ] {
                let s = &data[..len];
                let want: Vec<(u64, usize)> = fastcdc::v2020::StreamCDC::new(
                    s,
                    p.min as usize,
                    p.avg as usize,
                    p.max as usize,
                )
                .map(|c| c.map(|c| (c.offset, c.length)).unwrap())
                .collect();
                for step in [7, 65536, usize::MAX] {
                    let got: Vec<(u64, usize)> = Cutter::new(Trickle(s, step), p)
                        .unwrap()
                        .flat_map(|b| {
                            let b = b.unwrap();
                            assert!(b.len() > 0, "an empty batch at {}", b.offset);
                            b.chunks().map(|(o, c)| (o, c.len())).collect::<Vec<_>>()
                        })
                        .collect();
                    assert_eq!(got, want, "{p:?}, {len} bytes read {step} at a time");
                }
            }
        }
    }

    #[test]
    fn a_stream_round_trips_through_its_chunks() {
        let (_d, s) = store();
        let data = noise(1, 3 << 20);
        let c = chunk_into(&data[..], ChunkParams::default(), &s, 3).unwrap();
        assert_eq!(c.index.stream_len(), data.len() as u64);
        assert!(c.index.chunks.len() > 10, "{} chunks", c.index.chunks.len());
        assert!(c.index.chunks.iter().all(|k| k.len <= 256 << 10));
        let mut back = Vec::new();
        write_stream(&c.index, &s, &mut back).unwrap();
        assert_eq!(back, data);
        let parsed = ChunkIndex::parse(&c.index.render()).unwrap();
        assert_eq!(parsed, c.index);
        // The chunk files in order are the stream as served: one zstd stream of the data,
        // whose digest the chunker reported; from any offset, as an HTTP range asks.
        let index = std::sync::Arc::new(c.index.clone());
        let mut served = Vec::new();
        Concat::new(s.clone(), index.clone(), 0)
            .read_to_end(&mut served)
            .unwrap();
        assert_eq!(served.len() as u64, c.index.stored_len());
        let (digest, _) = crate::image::hashing::hash_reader(&served[..]).unwrap();
        assert_eq!(digest, c.sha256);
        assert_eq!(zstd::stream::decode_all(&served[..]).unwrap(), data);
        for start in [1, u64::from(c.index.stored[0]), served.len() as u64 - 3] {
            let mut tail = Vec::new();
            Concat::new(s.clone(), index.clone(), start)
                .read_to_end(&mut tail)
                .unwrap();
            assert_eq!(tail, &served[start as usize..], "from {start}");
        }
    }

    #[test]
    fn frames_compressed_by_the_agent_are_stored_as_they_came() {
        let (_d, s) = store();
        // Text, which zstd levels compress differently (noise they would all store raw).
        let data = crate::image::testdata::text(7, 2 << 20);
        let p = ChunkParams::default();
        let mut sent = Vec::new();
        compress_chunks(&data[..], p, 2, &mut sent).unwrap();
        let (got, upload) = store_frames(&sent[..], p, &s, 2).unwrap();
        // The same chunks as cutting on the endpoint, and the served stream is what was sent.
        let (_d2, s2) = store();
        let there = chunk_into(&data[..], p, &s2, 2).unwrap();
        assert_eq!(got.index, there.index);
        let (digest, n) = crate::image::hashing::hash_reader(&sent[..]).unwrap();
        assert_eq!((digest, n), (got.sha256.clone(), got.index.stored_len()));
        assert_eq!(upload, got.sha256);
        assert_eq!(got.new_chunks, got.index.chunks.len());
        // Sent again: nothing new, same digest.
        let (again, _) = store_frames(&sent[..], p, &s, 1).unwrap();
        assert_eq!((again.new_chunks, again.sha256), (0, got.sha256.clone()));
        // Sent at another zstd level to a store that has the chunks: the index takes the
        // store's files (the served digest is theirs), the upload's digest is what came.
        let mut other = Vec::new();
        for c in Cutter::new(&data[..], p).unwrap() {
            for (_, chunk) in c.unwrap().chunks() {
                other.extend(zstd::bulk::compress(chunk, 12).unwrap());
            }
        }
        assert!(other != sent, "level 12 compressed as the default level");
        let (mixed, upload) = store_frames(&other[..], p, &s, 2).unwrap();
        assert_eq!(
            upload,
            crate::image::hashing::hash_reader(&other[..]).unwrap().0
        );
        assert_eq!((mixed.index, mixed.sha256), (got.index.clone(), got.sha256));
        // A cut upload, and a frame too large for the parameters, are refused.
        let cut = store_frames(&sent[..sent.len() - 7], p, &s, 1).unwrap_err();
        assert!(
            cut.to_string().contains("ends inside a zstd frame"),
            "{cut}"
        );
        let big = zstd::bulk::compress(&noise(8, 200 << 10), 3).unwrap();
        let e = store_frames(&big[..], p, &s, 1).unwrap_err();
        assert!(e.to_string().contains("at most 65536 bytes"), "{e}");
    }

    #[test]
    fn an_insertion_stores_only_the_chunks_around_it() {
        let (_d, s) = store();
        let a = noise(2, 4 << 20);
        let first = chunk_into(&a[..], ChunkParams::default(), &s, 3).unwrap();
        let mut b = a.clone();
        b.splice(2 << 20..2 << 20, noise(3, 1000));
        let second = chunk_into(&b[..], ChunkParams::default(), &s, 3).unwrap();
        assert!(
            second.new_chunks <= 3,
            "{} new chunks of {}",
            second.new_chunks,
            second.index.chunks.len()
        );
        assert!(second.stored_bytes < first.stored_bytes / 10);
        let mut back = Vec::new();
        write_stream(&second.index, &s, &mut back).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn a_corrupt_chunk_is_named_when_read() {
        let (_d, s) = store();
        let c = chunk_into(&noise(4, 1 << 20)[..], ChunkParams::default(), &s, 3).unwrap();
        let victim = c.index.chunks[2];
        let other = ChunkRef {
            digest: c.index.chunks[3].digest,
            len: c.index.chunks[3].len,
        };
        // A valid zstd frame of the wrong chunk in the victim's place.
        fs::copy(s.path(&other), s.path(&victim)).unwrap();
        let err = write_stream(&c.index, &s, &mut io::sink()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ImageError::Integrity { .. }), "{msg}");
        assert!(msg.contains(&victim.hex()), "{msg}");
        // Bytes that are not zstd at all.
        fs::write(s.path(&victim), b"not a chunk").unwrap();
        let msg = s.get(&victim).unwrap_err().to_string();
        assert!(msg.contains("does not decompress"), "{msg}");
    }

    #[test]
    fn sweep_keeps_every_chunk_a_live_image_needs() {
        let (_d, s) = store();
        let base = noise(5, 2 << 20);
        let mut other = base.clone();
        other.extend(noise(6, 1 << 20));
        let keep = chunk_into(&base[..], ChunkParams::default(), &s, 3).unwrap();
        let gone = chunk_into(&other[..], ChunkParams::default(), &s, 3).unwrap();
        let before = s.digests().unwrap().len();
        assert!(gone.new_chunks > 0 && gone.new_chunks < gone.index.chunks.len());
        // A capture in progress holds the store: the sweep refuses and removes nothing.
        let writer = s.lock_shared().unwrap();
        let live = keep.index.chunks.iter().map(|c| c.digest).collect();
        let err = s.lock_exclusive().unwrap_err().to_string();
        assert!(err.contains("capture is writing"), "{err}");
        assert_eq!(s.digests().unwrap().len(), before);
        drop(writer);
        let held = s.lock_exclusive().unwrap();
        let (removed, bytes) = s.sweep(&live, &held).unwrap();
        assert!(removed > 0 && bytes > 0);
        assert_eq!(s.digests().unwrap().len(), before - removed);
        let mut back = Vec::new();
        write_stream(&keep.index, &s, &mut back).unwrap();
        assert_eq!(back, base);
        assert!(write_stream(&gone.index, &s, &mut io::sink()).is_err());
    }

    #[test]
    fn index_errors_say_where() {
        let good = "parc-chunk-index 1 fastcdc-2020 16384 65536 262144\n";
        let line = format!("{} 70112 2000\n", "ab".repeat(32));
        assert_eq!(
            ChunkIndex::parse(&format!("{good}{line}"))
                .unwrap()
                .chunks
                .len(),
            1
        );
        let cases = [
            ("", 1, 1, "empty"),
            ("parc-chunk-index 2 fastcdc-2020 1 2 3\n", 1, 18, "version"),
            (
                "parc-chunk-index 1 rabin 16384 65536 262144\n",
                1,
                20,
                "algorithm",
            ),
            (
                "parc-chunk-index 1 fastcdc-2020 16384 65536\n",
                1,
                44,
                "sizes",
            ),
            (
                "parc-chunk-index 1 fastcdc-2020 65536 16384 262144\n",
                1,
                33,
                "min < avg",
            ),
        ];
        for (text, l, c, what) in cases {
            let e = ChunkIndex::parse(text).unwrap_err();
            assert_eq!((e.line, e.col), (l, c), "{what}: {e}");
            assert!(e.msg.contains(what), "{what}: {e}");
        }
        let e = ChunkIndex::parse(&format!("{good}{}zz 5 5\n", "ab".repeat(31))).unwrap_err();
        assert_eq!((e.line, e.col), (2, 1), "{e}");
        let e = ChunkIndex::parse(&format!("{good}{} 0 5\n", "ab".repeat(32))).unwrap_err();
        assert_eq!((e.line, e.col), (2, 66), "{e}");
        let e = ChunkIndex::parse(&format!("{good}{} 5\n", "ab".repeat(32))).unwrap_err();
        assert_eq!((e.line, e.col), (2, 67), "{e}");
        assert!(e.msg.contains("stored length"), "{e}");
        let e = ChunkIndex::parse(&format!("{good}{} 5 5 5\n", "ab".repeat(32))).unwrap_err();
        assert_eq!((e.line, e.col), (2, 70), "{e}");
        let e = ChunkIndex::parse(&format!("{good}{} 70112 9", "ab".repeat(32))).unwrap_err();
        assert!(e.msg.contains("cut short"), "{e}");
    }
}
