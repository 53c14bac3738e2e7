//! What a deploy left on a workstation's filesystem, so that its next reimage reads only what
//! changed since (rsync's quick check, made safe by the inode change time).
//!
//! After a deploy writes a chunked file stream, the agent records, for each entry of the
//! stream in order, its path, where it ends in the stream, and the inode number, change time
//! (to the nanosecond), size and type the filesystem then gave that path. The endpoint keeps
//! the record of each workstation's partition and hands it to the next deploy of that
//! workstation. On a reimage with the same stream, an entry whose path still shows the same
//! inode with the same change time has not been touched: every write, truncation, chmod,
//! chown, xattr, link count or rename changes the change time, which nothing but the kernel
//! sets. Only the other entries (and their folders) are fetched, as the byte ranges the record
//! gives them in the stream, and synced; what the record does not name is removed. No
//! unchanged file is read.
//!
//! The record is of one filesystem: it names the stream's index digest and the time mkfs
//! made the filesystem (a full deploy makes a new one), and is used only on a filesystem
//! whose inodes keep nanoseconds (256-byte inodes). Bytes synced are the image's: every
//! chunk is checked against the index, the index against the manifest, and each entry read
//! from a range must be the one the record says starts there, else the record is not used
//! and the deploy reads the whole tree ([`super::incremental`]). What it cannot see is a
//! disk changed under the filesystem (a raw write, a failing sector): `parc-agent deploy
//! --read-all` reads every file.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;

use super::chunks::{ChunkIndex, ChunkRef, IndexError, decode_chunk, unzstd_text};
use super::error::{ImageError, ImageResult};
use super::ext4::InodeTables;
use super::incremental::{ChunkFetcher, Seeded};
use super::pipe::chunk_pipe;
use super::progress::Progress;
use super::sync::{remove_all, sync_listed};
use super::unpack::{UnpackOptions, at};

const RECORD_MAGIC: &str = "parc-deploy-record";
const RECORD_VERSION: u32 = 1;

/// What a path showed right after the deploy wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub size: u64,
    /// `st_mode`, type bits included.
    pub mode: u32,
}

impl Stamp {
    pub fn of(md: &Metadata) -> Self {
        Self {
            ino: md.ino(),
            ctime: md.ctime(),
            ctime_nsec: md.ctime_nsec(),
            size: md.size(),
            mode: md.mode(),
        }
    }

    /// The stamp of `p` (not followed), None when nothing is there.
    fn at(p: &Path) -> io::Result<Option<Self>> {
        match fs::symlink_metadata(p) {
            Ok(md) => Ok(Some(Self::of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One entry of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// Relative to the filesystem's root (empty: the root).
    pub path: PathBuf,
    /// Where the entry ends in the stream; it starts where the previous one ends.
    pub end: u64,
    /// None: the deploy left nothing at that path (an entry not written on this filesystem).
    pub stamp: Option<Stamp>,
}

/// The record of one stream deployed onto one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecord {
    /// The digest of the stream's index file, `sha256:<hex>` (as in the manifest).
    pub index: String,
    /// When mkfs made the filesystem (ext4 superblock).
    pub fs_made: u64,
    pub entries: Vec<RecordEntry>,
}

/// The entries of a stream as a deploy met them: relative path, end in the stream.
pub type Listing = Vec<(PathBuf, u64)>;

impl DeployRecord {
    /// Stamps every path of `listing` under `root`.
    pub fn take(root: &Path, index: &str, fs_made: u64, listing: Listing) -> io::Result<Self> {
        let entries = listing
            .into_iter()
            .map(|(path, end)| {
                let stamp = Stamp::at(&root.join(&path))?;
                Ok(RecordEntry { path, end, stamp })
            })
            .collect::<io::Result<_>>()?;
        Ok(Self {
            index: index.to_string(),
            fs_made,
            entries,
        })
    }

    /// The record as kept by the endpoint: text, zstd-compressed.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = format!(
            "{RECORD_MAGIC} {RECORD_VERSION}\nindex {}\nfs-made {}\n",
            self.index, self.fs_made
        );
        use std::fmt::Write as _;
        for e in &self.entries {
            // Writing to a String cannot fail.
            let _ = match &e.stamp {
                Some(s) => write!(
                    t,
                    "{} {} {}.{:09} {} {:o} ",
                    e.end, s.ino, s.ctime, s.ctime_nsec, s.size, s.mode
                ),
                None => write!(t, "{} - - - - ", e.end),
            };
            escape_path(&e.path, &mut t);
            t.push('\n');
        }
        // Level 1: the record is made at the end of every deploy (on the bench tree's 55 000
        // entries, 5.5 MB of text: 15 ms against 21 ms at level 3, for 0.6% more bytes).
        zstd::bulk::compress(t.as_bytes(), 1).expect("compressing text in memory")
    }

    /// Reads a record written by [`DeployRecord::encode`]: at most 1 GiB of text, and 1 MiB
    /// plus 128 times the compressed bytes: a record's lines all differ (ends, inodes, change
    /// times to the nanosecond, paths), far from such a ratio. The endpoint decodes what a
    /// workstation sends, where 40 KiB of zstd could otherwise make 1 GiB of spaces.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let max = (1u64 << 30).min((1 << 20) + bytes.len() as u64 * 128);
        let text = unzstd_text(bytes, "a deploy record", max)?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let err = |line: usize, col: usize, msg: &str| IndexError {
            line,
            col,
            msg: msg.to_string(),
        };
        let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| {
            let n = i + 1;
            l.strip_suffix('\n').map(|l| (n, l)).ok_or_else(|| {
                err(
                    n,
                    l.len() + 1,
                    "the line has no newline: the record is cut short",
                )
            })
        });
        let mut header = |n: usize, key: &str| -> Result<&str, IndexError> {
            let (_, l) = lines
                .next()
                .unwrap_or_else(|| Err(err(n, 1, "the record is cut short")))?;
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(' '))
                .ok_or_else(|| err(n, 1, &format!("expected `{key} …`")))
        };
        if header(1, RECORD_MAGIC)? != RECORD_VERSION.to_string() {
            return Err(err(
                1,
                RECORD_MAGIC.len() + 2,
                &format!("unknown record version (this parc reads {RECORD_VERSION})"),
            ));
        }
        let index = header(2, "index")?;
        let hex = index.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(2, 7, "expected sha256:<64 hex digits>"));
        }
        let index = index.to_string();
        let fs_made = header(3, "fs-made")?
            .parse()
            .map_err(|_| err(3, 9, "expected seconds since the epoch"))?;
        let mut entries = Vec::new();
        let mut last_end = 0;
        for line in lines {
            let (n, line) = line?;
            let mut fields = line.splitn(6, ' ');
            let mut col = 1;
            let mut next = |what: &str| -> Result<(usize, &str), IndexError> {
                let f = fields
                    .next()
                    .ok_or_else(|| err(n, line.len() + 1, &format!("expected {what}")))?;
                let at = col;
                col += f.len() + 1;
                Ok((at, f))
            };
            let (at, end) = next("the entry's end")?;
            let end: u64 = end
                .parse()
                .ok()
                .filter(|&e| e > last_end)
                .ok_or_else(|| err(n, at, "expected an end past the previous entry's"))?;
            last_end = end;
            let (at, ino) = next("an inode number")?;
            let (at_c, ctime) = next("a change time")?;
            let (at_s, size) = next("a size")?;
            let (at_m, mode) = next("a mode")?;
            let (at_p, path) = next("a path")?;
            let stamp = if (ino, ctime, size, mode) == ("-", "-", "-", "-") {
                None
            } else {
                let (secs, nsec) = ctime
                    .split_once('.')
                    .and_then(|(s, ns)| Some((s.parse().ok()?, ns.parse().ok()?)))
                    .filter(|&(_, ns): &(i64, i64)| (0..1_000_000_000).contains(&ns))
                    .ok_or_else(|| err(n, at_c, "expected <seconds>.<nanoseconds>"))?;
                Some(Stamp {
                    ino: ino
                        .parse()
                        .map_err(|_| err(n, at, "expected an inode number"))?,
                    ctime: secs,
                    ctime_nsec: nsec,
                    size: size.parse().map_err(|_| err(n, at_s, "expected a size"))?,
                    mode: u32::from_str_radix(mode, 8)
                        .map_err(|_| err(n, at_m, "expected an octal mode"))?,
                })
            };
            let path = unescape_path(path).map_err(|(c, m)| err(n, at_p + c, m))?;
            entries.push(RecordEntry { path, end, stamp });
        }
        Ok(Self {
            index,
            fs_made,
            entries,
        })
    }
}

/// A record as the endpoint keeps it: of a file tree, or of an NTFS volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptRecord {
    Files(DeployRecord),
    Ntfs(super::ntfs_record::NtfsRecord),
}

impl KeptRecord {
    /// Reads either kind, told apart by the first word of its text.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        use std::io::Read as _;
        let mut first = Vec::new();
        let _ = zstd::stream::read::Decoder::new(bytes)
            .and_then(|d| d.take(32).read_to_end(&mut first));
        if first.starts_with(super::ntfs_record::MAGIC.as_bytes()) {
            super::ntfs_record::NtfsRecord::decode(bytes).map(Self::Ntfs)
        } else {
            DeployRecord::decode(bytes).map(Self::Files)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Files(r) => r.encode(),
            Self::Ntfs(r) => r.encode(),
        }
    }

    /// The digest of the index of the stream it is of.
    pub fn index(&self) -> &str {
        match self {
            Self::Files(r) => &r.index,
            Self::Ntfs(r) => &r.index,
        }
    }
}

/// A path as one word: `.` for the root, bytes outside printable ASCII, space and `\` as
/// `\xHH`.
fn escape_path(p: &Path, out: &mut String) {
    let b = p.as_os_str().as_bytes();
    if b.is_empty() {
        out.push('.');
        return;
    }
    for &c in b {
        if c.is_ascii_graphic() && c != b'\\' {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
}

fn unescape_path(w: &str) -> Result<PathBuf, (usize, &'static str)> {
    if w == "." {
        return Ok(PathBuf::new());
    }
    let b = w.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let h = b
                    .get(i + 1..i + 4)
                    .filter(|h| h[0] == b'x')
                    .and_then(|h| std::str::from_utf8(&h[1..]).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or((i, "expected \\xHH"))?;
                out.push(h);
                i += 4;
            }
            c if c.is_ascii_graphic() => {
                out.push(c);
                i += 1;
            }
            _ => return Err((i, "unexpected character in a path")),
        }
    }
    let p = PathBuf::from(std::ffi::OsString::from_vec(out));
    let relative = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !relative {
        return Err((0, "expected a relative path without `.` or `..`"));
    }
    Ok(p)
}

/// The outcome of a reimage from a record.
pub(super) enum Recorded {
    /// Synced: what it took, and the record of the filesystem now.
    Done(Seeded, DeployRecord),
    /// The record cannot be used (why): read the whole tree instead. What was synced before
    /// that was found out is the image's bytes at the image's paths.
    Unusable(String),
}

/// The tree at `root` against `record`, the record of its last deploy: which of the record's
/// entries changed since and what the record does not name. Only reads the disk, and needs
/// no index: a reimage fetches the stream's index meanwhile.
pub(super) struct Compared<'r> {
    at: HashMap<&'r Path, usize>,
    dev: u64,
    looked: Looked,
}

/// Compares the tree at `root` (the filesystem whose inode tables are `inodes`, else looked
/// up path by path) with `record`.
pub(super) fn compare_record<'r>(
    record: &'r DeployRecord,
    (root, inodes): (&Path, Option<&InodeTables>),
    progress: &Progress,
) -> ImageResult<Compared<'r>> {
    progress.set_phase(match inodes {
        Some(_) => "read the record's inodes from the inode tables",
        None => "look every path of the disk up",
    });
    let dev = fs::symlink_metadata(root)
        .map_err(ImageError::io(root))?
        .dev();
    let at: HashMap<&Path, usize> = record
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_path(), i))
        .collect();
    let table = match inodes {
        Some(t) => {
            let inos: Vec<u64> = record
                .entries
                .iter()
                .filter_map(|e| e.stamp.map(|s| s.ino))
                .collect();
            t.stamps(&inos).map_err(ImageError::io(root))?
        }
        None => walk(root, dev)
            .map_err(ImageError::io(root))?
            .into_values()
            .map(|s| (s.ino, s))
            .collect(),
    };
    progress.set_phase("compare the disk with its last deploy's record");
    let looked = look(record, &at, root, &table).map_err(ImageError::io(root))?;
    Ok(Compared { at, dev, looked })
}

/// Brings the tree at `root` to the stream of `index` using `record`, the record of its last
/// deploy (checked by the caller to be of this stream and this filesystem) and what
/// [`compare_record`] found: fetches and syncs only the entries whose paths changed since,
/// removes what the record does not name.
pub(super) fn restore_recorded(
    fetcher: &mut dyn ChunkFetcher,
    index: &ChunkIndex,
    record: &DeployRecord,
    compared: Compared<'_>,
    root: &Path,
    opts: UnpackOptions,
    progress: &Progress,
) -> ImageResult<Recorded> {
    let total = index.stream_len();
    if record.entries.last().is_none_or(|e| e.end > total) {
        return Ok(Recorded::Unusable(format!(
            "its entries end past the stream's {total} bytes"
        )));
    }
    let Compared {
        at,
        dev,
        looked: Looked {
            mut dirty,
            mut extra,
        },
    } = compared;
    // What the record does not name goes (a folder with its subtree); its folder's entry is
    // synced again afterwards, for its mtime.
    extra.sort();
    let mut removed = 0u64;
    let mut gone: Option<&PathBuf> = None;
    for p in &extra {
        if gone.is_some_and(|g| p.starts_with(g)) {
            continue;
        }
        let full = root.join(p);
        let md = fs::symlink_metadata(&full).map_err(ImageError::io(&full))?;
        if md.dev() != dev {
            continue;
        }
        remove_all(&full, &md, dev, &mut removed).map_err(ImageError::io(&full))?;
        gone = Some(p);
        if let Some(&i) = p.parent().and_then(|q| at.get(q)) {
            dirty[i] = true;
        }
    }
    // A changed entry may be replaced: its folder's mtime is set again after it.
    for i in 0..dirty.len() {
        if dirty[i] {
            if let Some(&k) = record.entries[i].path.parent().and_then(|q| at.get(q)) {
                dirty[k] = true;
            }
        }
    }

    // The byte ranges of the changed entries, merged when they follow one another, and the
    // chunks that hold them.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut expect = Vec::new();
    let mut partial = 0u64;
    for (i, e) in record.entries.iter().enumerate() {
        if !dirty[i] {
            continue;
        }
        let start = i.checked_sub(1).map_or(0, |k| record.entries[k].end);
        match runs.last_mut() {
            Some(r) if r.1 == start => r.1 = e.end,
            _ => runs.push((start, e.end)),
        }
        partial += e.end - start;
        expect.push((e.path.as_path(), partial));
    }
    let mut offsets = Vec::with_capacity(index.chunks.len());
    let mut o = 0u64;
    for c in &index.chunks {
        offsets.push(o);
        o += u64::from(c.len);
    }
    let mut needed: Vec<usize> = Vec::new();
    for &(start, end) in &runs {
        let first = offsets.partition_point(|&x| x <= start) - 1;
        let last = offsets.partition_point(|&x| x < end) - 1;
        for k in first..=last {
            if needed.last().is_none_or(|&l| l < k) {
                needed.push(k);
            }
        }
    }
    let refs: Vec<ChunkRef> = needed.iter().map(|&k| index.chunks[k]).collect();
    let fetched_raw: u64 = refs.iter().map(|c| u64::from(c.len)).sum();
    let fetched_chunks = refs.len() as u64;
    progress.set_phase(format!(
        "write {} changed entries of {}",
        expect.len(),
        record.entries.len()
    ));
    let prefetched = fetcher.fetch(refs);

    let (w, r) = chunk_pipe(8, 1 << 20);
    let mut mismatch: Option<String> = None;
    let (fetched, synced) = thread::scope(|sc| {
        let needed = &needed;
        let runs = &runs;
        let offsets = &offsets;
        let producer = sc.spawn(move || -> ImageResult<u64> {
            let mut w = w;
            let mut bytes = 0u64;
            let mut prefetched = prefetched;
            let mut run = 0;
            for &k in needed {
                let c = &index.chunks[k];
                let z = prefetched
                    .next()
                    .unwrap_or_else(|| Err(io::Error::other("the chunk fetch ended early")))
                    .map_err(ImageError::stream(format!("downloading chunk {}", c.hex())))?;
                bytes += z.len() as u64;
                progress.add(u64::from(index.stored[k]));
                let data = decode_chunk(c, &z).map_err(|detail| ImageError::Integrity {
                    file: format!("chunk {}", c.hex()),
                    detail,
                })?;
                let (from, to) = (offsets[k], offsets[k] + u64::from(c.len));
                while run < runs.len() && runs[run].0 < to {
                    let (s, e) = runs[run];
                    let a = s.max(from);
                    let b = e.min(to);
                    if a < b
                        && w.write_all(&data[(a - from) as usize..(b - from) as usize])
                            .is_err()
                    {
                        // The sync stopped: its error is the cause.
                        return Ok(bytes);
                    }
                    if e > to {
                        break;
                    }
                    run += 1;
                }
            }
            // The end of the archive.
            if w.write_all(&[0u8; 1024]).is_ok() {
                let _ = w.finish();
            }
            Ok(bytes)
        });
        let mut seen = 0usize;
        let mut check = |p: &Path, end: u64| -> io::Result<()> {
            match expect.get(seen) {
                Some(&(want, at)) if want == p && at == end => {
                    seen += 1;
                    Ok(())
                }
                _ => {
                    let why = format!(
                        "its entry ending at {end} of the changed entries is not {} as it says",
                        p.display()
                    );
                    mismatch = Some(why.clone());
                    Err(io::Error::new(io::ErrorKind::InvalidData, why))
                }
            }
        };
        let synced = sync_listed(r, root, opts, false, &mut check);
        let complete = seen == expect.len();
        if synced.is_ok() && !complete && mismatch.is_none() {
            mismatch = Some("the changed entries read end early".into());
        }
        (producer.join().expect("record thread panicked"), synced)
    });
    let fetched_bytes = fetched?;
    if let Some(why) = mismatch {
        return Ok(Recorded::Unusable(why));
    }
    let mut sync = synced.map_err(ImageError::stream("syncing the changed entries"))?;
    sync.removed += removed;

    let mut now = record.clone();
    for (e, d) in now.entries.iter_mut().zip(&dirty) {
        if *d {
            let p = root.join(&e.path);
            e.stamp = Stamp::at(&p).map_err(ImageError::io(&p))?;
        }
    }
    let seeded = Seeded {
        seeded_bytes: total - fetched_raw,
        fetched_chunks,
        fetched_bytes,
        sync,
        recorded: true,
    };
    Ok(Recorded::Done(seeded, now))
}

/// What changed on the disk since its record: which entries (by index in the record) and
/// what is there that the record does not name.
struct Looked {
    dirty: Vec<bool>,
    extra: Vec<PathBuf>,
}

/// Compares the tree at `root` with `record`, given `table`, the stamps of the record's inodes
/// as the filesystem holds them now (an inode not in use is absent).
///
/// A folder whose inode shows the same change time as in the record holds the same names for
/// the same inodes: adding, removing or renaming an entry sets its folder's change time. So
/// from the root down, an entry in an unchanged folder is still its recorded inode, and its
/// stamp is read from `table` without looking its path up. Only a changed folder is listed
/// (names and inode numbers, no `lstat`): a name it holds for another inode is a changed
/// entry, a name the record does not have is extra.
fn look(
    record: &DeployRecord,
    at: &HashMap<&Path, usize>,
    root: &Path,
    table: &HashMap<u64, Stamp>,
) -> io::Result<Looked> {
    use std::os::unix::fs::DirEntryExt;
    #[derive(Clone, Copy, PartialEq)]
    enum Folder {
        /// Not a folder now (or nothing there).
        No,
        /// Unchanged: its entries are the record's.
        Same,
        /// Changed: its entries were listed into `found`.
        Listed,
    }
    let mut folder = vec![Folder::No; record.entries.len()];
    let mut dirty = vec![false; record.entries.len()];
    // What listed folders hold: path → (inode number, is a folder).
    let mut found: HashMap<PathBuf, (u64, bool)> = HashMap::new();
    let mut extra = Vec::new();
    let is_dir = |s: &Stamp| s.mode & 0o170000 == 0o040000;
    for (i, e) in record.entries.iter().enumerate() {
        let parent = e.path.parent().map(|q| at.get(q).map(|&k| folder[k]));
        let (now, dir) = match parent {
            // The root, or an entry whose folder the record does not name: by its path.
            None | Some(None) => {
                let s = Stamp::at(&root.join(&e.path))?;
                (s, s.is_some_and(|s| is_dir(&s)))
            }
            Some(Some(Folder::Same)) => {
                let s = e.stamp.and_then(|s| table.get(&s.ino).copied());
                (s, s.is_some_and(|s| is_dir(&s)))
            }
            Some(Some(Folder::Listed)) => match found.get(&e.path) {
                Some(&(ino, dir)) => (table.get(&ino).copied(), dir),
                None => (None, false),
            },
            Some(Some(Folder::No)) => (None, false),
        };
        dirty[i] = e.stamp.is_none() || now != e.stamp;
        folder[i] = match (dir, dirty[i]) {
            (false, _) => Folder::No,
            (true, false) => Folder::Same,
            (true, true) => {
                for d in fs::read_dir(root.join(&e.path))? {
                    let d = d?;
                    let p = e.path.join(d.file_name());
                    if at.contains_key(p.as_path()) {
                        found.insert(p, (d.ino(), d.file_type()?.is_dir()));
                    } else {
                        extra.push(p);
                    }
                }
                Folder::Listed
            }
        };
    }
    Ok(Looked { dirty, extra })
}

/// Folders read at once by [`walk`]: on a cold cache each `lstat` waits for an inode table
/// block, so the disk is kept busy with several. `PARC_RECORD_WALKERS` sets another number
/// (`scripts/bench-store.sh` compares with one).
const WALKERS: usize = 8;

fn walkers() -> usize {
    std::env::var("PARC_RECORD_WALKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=64).contains(&n))
        .unwrap_or(WALKERS)
}

/// Every path under `root` on its filesystem (relative) and its stamp; symlinks are not
/// followed, other filesystems mounted inside not entered. [`WALKERS`] threads take folders
/// from one queue.
fn walk(root: &Path, dev: u64) -> io::Result<HashMap<PathBuf, Stamp>> {
    use std::sync::{Condvar, Mutex};
    struct Queue {
        todo: Vec<PathBuf>,
        /// Folders being read: while any is, more may come.
        busy: usize,
        failed: Option<io::Error>,
    }
    let q = Mutex::new(Queue {
        todo: vec![PathBuf::new()],
        busy: 0,
        failed: None,
    });
    let more = Condvar::new();
    let lock = || q.lock().unwrap_or_else(|e| e.into_inner());
    let read = |rel: &Path, found: &mut Vec<(PathBuf, Stamp)>| -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for e in fs::read_dir(root.join(rel))? {
            let rel = rel.join(e?.file_name());
            let md = fs::symlink_metadata(root.join(&rel))?;
            if md.dev() != dev {
                continue;
            }
            if md.is_dir() {
                dirs.push(rel.clone());
            }
            found.push((rel, Stamp::of(&md)));
        }
        Ok(dirs)
    };
    let parts: Vec<Vec<(PathBuf, Stamp)>> = thread::scope(|sc| {
        let workers: Vec<_> = (0..walkers())
            .map(|_| {
                sc.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let mut g = lock();
                        let rel = loop {
                            if g.failed.is_some() {
                                return found;
                            }
                            if let Some(r) = g.todo.pop() {
                                break r;
                            }
                            if g.busy == 0 {
                                return found;
                            }
                            g = more.wait(g).unwrap_or_else(|e| e.into_inner());
                        };
                        g.busy += 1;
                        drop(g);
                        let got = read(&rel, &mut found);
                        let mut g = lock();
                        g.busy -= 1;
                        match got {
                            Ok(dirs) => g.todo.extend(dirs),
                            Err(e) => {
                                g.failed.get_or_insert(at(e, &root.join(&rel)));
                            }
                        }
                        more.notify_all();
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("walk thread panicked"))
            .collect()
    });
    if let Some(e) = q.into_inner().unwrap_or_else(|e| e.into_inner()).failed {
        return Err(e);
    }
    let mut out = HashMap::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 1);
    out.insert(PathBuf::new(), Stamp::of(&fs::symlink_metadata(root)?));
    out.extend(parts.into_iter().flatten());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::chunks::{ChunkStore, chunk_into};
    use crate::image::testdata::{SMALL, make_tree, noise};
    use crate::image::treetar::write_tree;
    use crate::image::unpack::unpack_listed;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Chunk files from a store folder, counted.
    struct Fetch(ChunkStore, u64);

    impl ChunkFetcher for Fetch {
        fn index(&mut self, _s: &crate::image::manifest::StreamInfo) -> io::Result<Vec<u8>> {
            unreachable!("the index is passed in")
        }
        fn fetch(
            &mut self,
            chunks: Vec<ChunkRef>,
        ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
            self.1 += chunks.len() as u64;
            let store = self.0.clone();
            Box::new(chunks.into_iter().map(move |c| fs::read(store.path(&c))))
        }
    }

    fn stream(root: &Path) -> Vec<u8> {
        let mut s = Vec::new();
        write_tree(root, &mut s).unwrap();
        s
    }

    struct Deployed {
        _dir: tempfile::TempDir,
        src: PathBuf,
        dst: PathBuf,
        index: ChunkIndex,
        fetch: Fetch,
        listing: Listing,
        record: DeployRecord,
    }

    /// The test tree, stored as chunks and deployed with its record.
    fn deployed() -> Deployed {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        make_tree(&src);
        let s = stream(&src);
        let store = ChunkStore::new(dir.path().join("chunks"));
        let index = chunk_into(&s[..], SMALL, &store, 1).unwrap().index;
        fs::create_dir(&dst).unwrap();
        let mut listing = Vec::new();
        unpack_listed(
            &s[..],
            &dst,
            UnpackOptions { posix: true },
            &mut |p, end| {
                listing.push((p.to_path_buf(), end));
                Ok(())
            },
        )
        .unwrap();
        // The last entry ends where the end-of-archive blocks start.
        let end = listing.last().unwrap().1 as usize;
        assert!(s[end..end + 1024].iter().all(|&b| b == 0));
        assert_ne!(s[end - 512..end], [0u8; 512]);
        let record = DeployRecord::take(&dst, &"0".repeat(64), 7, listing.clone()).unwrap();
        Deployed {
            _dir: dir,
            src,
            dst,
            index,
            fetch: Fetch(store, 0),
            listing,
            record,
        }
    }

    fn restore(d: &mut Deployed, record: &DeployRecord) -> Recorded {
        let opts = UnpackOptions { posix: true };
        let p = Progress::default();
        let compared = compare_record(record, (&d.dst, None), &p).unwrap();
        restore_recorded(&mut d.fetch, &d.index, record, compared, &d.dst, opts, &p).unwrap()
    }

    #[test]
    fn a_reimage_from_the_record_syncs_only_what_changed_and_gives_the_image() {
        let mut d = deployed();
        let dst = d.dst.clone();
        // Changed in place, grown, removed, added, chmod'ed, a folder swapped for a symlink
        // to another, an extra folder tree, a hard link planted.
        let f = dst.join("d0/sub0/file-084.dat");
        let mut data = fs::read(&f).unwrap();
        data[10] ^= 1;
        fs::write(&f, &data).unwrap();
        let mut g = fs::OpenOptions::new()
            .append(true)
            .open(dst.join("d1/sub1/file-001.dat"))
            .unwrap();
        g.write_all(b"more").unwrap();
        fs::remove_file(dst.join("d2/sub2/file-002.dat")).unwrap();
        fs::write(dst.join("d4/extra.txt"), noise(4, 5000)).unwrap();
        fs::set_permissions(
            dst.join("d5/sub2/file-005.dat"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::rename(dst.join("d3/sub1"), dst.join("moved")).unwrap();
        symlink("../moved", dst.join("d3/sub1")).unwrap();
        fs::create_dir_all(dst.join("d6/new/deeper")).unwrap();
        fs::write(dst.join("d6/new/deeper/x"), b"x").unwrap();
        fs::hard_link(dst.join("d0/sub1/file-007.dat"), dst.join("d6/planted")).unwrap();

        let record = d.record.clone();
        let Recorded::Done(seeded, now) = restore(&mut d, &record) else {
            panic!("the record was not used");
        };
        assert_eq!(stream(&dst), stream(&d.src), "the tree is the image's");
        assert!(seeded.recorded);
        let all = d.index.chunks.len() as u64;
        assert!(
            seeded.fetched_chunks * 4 < all,
            "{} of {all} chunks fetched",
            seeded.fetched_chunks
        );
        assert_eq!(seeded.fetched_chunks, d.fetch.1);
        assert!(seeded.sync.removed >= 5, "{:?}", seeded.sync);
        // The record it returns is the tree's now: a second reimage fetches nothing.
        let fresh = DeployRecord::take(&dst, &"0".repeat(64), 7, d.listing.clone()).unwrap();
        assert_eq!(now, fresh);
        let before = d.fetch.1;
        let Recorded::Done(again, _) = restore(&mut d, &now) else {
            panic!("the new record was not used");
        };
        assert_eq!((again.fetched_chunks, d.fetch.1), (0, before));
        assert_eq!(again.sync.entries, 0);
    }

    #[test]
    fn a_record_that_does_not_match_the_stream_is_not_used() {
        let mut d = deployed();
        let mut wrong = d.record.clone();
        // Two entries' paths swapped: their ranges name other entries.
        let (a, b) = (wrong.entries.len() / 3, wrong.entries.len() / 2);
        let pa = wrong.entries[a].path.clone();
        wrong.entries[a].path = wrong.entries[b].path.clone();
        wrong.entries[b].path = pa;
        wrong.entries[a].stamp = None;
        assert!(matches!(restore(&mut d, &wrong), Recorded::Unusable(_)));
        let mut long = d.record.clone();
        long.entries.last_mut().unwrap().end = d.index.stream_len() + 512;
        assert!(matches!(restore(&mut d, &long), Recorded::Unusable(_)));
        // Whatever was synced before is the image's: the tree is still the image's.
        assert_eq!(stream(&d.dst), stream(&d.src));
    }

    fn sample() -> DeployRecord {
        DeployRecord {
            index: format!("sha256:{}", "ab".repeat(32)),
            fs_made: 1_765_000_000,
            entries: vec![
                RecordEntry {
                    path: PathBuf::new(),
                    end: 512,
                    stamp: Some(Stamp {
                        ino: 2,
                        ctime: 1_765_000_100,
                        ctime_nsec: 5,
                        size: 4096,
                        mode: 0o40755,
                    }),
                },
                RecordEntry {
                    path: PathBuf::from(std::ffi::OsString::from_vec(b"etc/a b\\c\n\xff".to_vec())),
                    end: 2048,
                    stamp: None,
                },
            ],
        }
    }

    #[test]
    fn a_record_reads_back_with_any_path() {
        let r = sample();
        assert_eq!(DeployRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn a_bad_record_says_where() {
        let r = sample();
        let text = String::from_utf8(zstd::stream::decode_all(&r.encode()[..]).unwrap()).unwrap();
        let cases = [
            (
                text.replace("parc-deploy-record 1", "parc-deploy-record 9"),
                1,
                20,
            ),
            (text.replace("index ", "indx "), 2, 1),
            (text.replace("512 2 ", "4096 2 "), 5, 1),
            (text.replace(".000000005", ".x"), 4, 7),
            (text.replace("40755", "9"), 4, 33),
            (text.replace(" etc/", " ../"), 5, 14),
            (text.replace(" etc/", " etc/\\q"), 5, 18),
            (text.trim_end().to_string(), 5, 37),
        ];
        for (bad, line, col) in cases {
            let e = DeployRecord::parse(&bad).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{e} in\n{bad}");
        }
    }
}
