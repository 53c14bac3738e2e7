//! What a deploy left on an NTFS volume, so that its next reimage rewrites only what changed
//! since, without reading the volume (the ext4 record's counterpart, [`super::record`]).
//!
//! Right after a deploy restores an NTFS stream, the agent reads the volume's master file
//! table, all its clusters (one record a file, 1 KiB each: 55 MB for the bench tree's 45 000
//! files, where the volume holds 1.5 GB), and keeps, for each record, a digest of its bytes;
//! for the files in use, their base record, the clusters their non-resident attributes take
//! and what a read alone changes in the record ([`Touch`]); for folders, indexes, NTFS's own
//! files and what lies under `$Extend` (their content changes under an unchanged record:
//! `$LogFile`, `$Bitmap`, `$MFTMirr`, `$Secure`, the boot sector, folder indexes holding their
//! children's sizes and times, the change journal), a sum of each cluster. At the next
//! reimage with the same stream, the MFT is read again where the image put it and compared
//! record by record. Everything NTFS does to a file goes through its record (as NTFS is
//! documented for Windows, and as checked here with ntfs-3g: its times and size move on
//! every write, its runs on every allocation), so:
//! - a record that differs only where a read changes it is put back from the disk;
//! - for any other record that differs, its whole family (a file's extension records) and
//!   the clusters the image gave it are written back; what the volume gave it since is free
//!   in the image's `$Bitmap`, written back too;
//! - the summed clusters are read and written back where they differ;
//! - the first 4 KiB of `pagefile.sys`, `swapfile.sys` and `hiberfil.sys` always (Windows
//!   writes their pages without touching their records; only their headers are ever read
//!   back: a crash dump, a hibernated session).
//!
//! Which clusters the image has is its partclone bitmap; where each one lies in the stream
//! follows from it ([`super::blockseed`]). A chunk whose bytes are all clusters is first read
//! from where the image put them and checked against its digest; only the chunks the disk
//! lacks are fetched, each checked. The record is not used (the volume is read whole,
//! [`super::incremental::restore_blocks_seeded`]) when the volume is not the one deployed
//! (its serial, cluster size or MFT place differ), when its `$LogFile` has transactions to
//! replay or `hiberfil.sys` holds a hibernated session (Windows switched off running: writes
//! may have reached the disk that no record tells of), or when what is read back after the
//! writes is not what the record says. What it cannot see is a write that bypasses the
//! filesystem's times (a raw write, a failing sector, `ntfscp`): `parc-agent deploy
//! --read-all`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::blockseed::Layout;
use super::chunks::{ChunkIndex, ChunkRef, IndexError, decode_chunk, unzstd_text, words};
use super::error::{ImageError, ImageResult};
use super::incremental::{ChunkFetcher, Seeded, fetch_index};
use super::manifest::StreamInfo;
use super::mft::{BootSector, FileRecord, IndexTouch, Mft, Runs, Touch, log_is_clean};
use super::progress::Progress;

pub(super) const MAGIC: &str = "parc-ntfs-record";
const VERSION: u32 = 1;

/// Records below this number are NTFS's own (0–15 named, 16–23 reserved).
const FIRST_USER_RECORD: usize = 24;
const ROOT: u64 = 5;
const EXTEND: u64 = 11;
const AT_DATA: u32 = 0x80;
/// Written at the start of `pagefile.sys` and co. at every reimage.
const HEADER_BYTES: u64 = 4096;

/// One MFT record as the deploy left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The first 16 bytes of the sha256 of the record as on the disk.
    pub hash: [u8; 16],
    /// Set for a record in use.
    pub file: Option<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its base record (itself for a base record).
    pub base: u64,
    /// First cluster of a file whose header is rewritten at every reimage.
    pub header: Option<u64>,
    /// What reading it alone changes: a record that differs only there is put back as it
    /// was without fetching anything, its data left alone.
    pub touch: Option<Touch>,
    /// The clusters its non-resident attributes take.
    pub runs: Runs,
    /// For folders and system files, whose content changes under an unchanged record: the
    /// first 8 bytes of the sha256 of each cluster of `runs`, in order. Compared at every
    /// reimage; a file without them is written back whole when its record changed.
    pub sums: Option<Vec<u64>>,
    /// Of those clusters, the folder index blocks: what reading files changes in each,
    /// by the cluster's place in `runs`.
    pub indexes: Vec<(u32, IndexTouch)>,
}

/// The record of one NTFS stream deployed onto one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfsRecord {
    /// The digest of the stream's index file, `sha256:<hex>`.
    pub index: String,
    pub serial: u64,
    pub cluster: u64,
    pub record_size: u64,
    /// Bytes of the MFT (all its clusters) and where they lie.
    pub mft_size: u64,
    pub mft: Runs,
    pub entries: Vec<Entry>,
}

fn digest16(b: &[u8]) -> [u8; 16] {
    Sha256::digest(b)[..16].try_into().expect("16 bytes")
}

fn sum8(b: &[u8]) -> u64 {
    u64::from_be_bytes(Sha256::digest(b)[..8].try_into().expect("8 bytes"))
}

/// The sums of every cluster of `runs` on `dev`, read a run (at most 4 MiB) at a time.
fn cluster_sums(dev: &File, runs: &Runs, cluster: u64) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    each_cluster(dev, runs, cluster, |b| out.push(sum8(b)))?;
    Ok(out)
}

/// Hands every cluster of `runs` on `dev` to `f`, read a run (at most 4 MiB) at a time.
fn each_cluster(dev: &File, runs: &Runs, cluster: u64, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = Vec::new();
    for &(lcn, n) in runs {
        let mut done = 0;
        while done < n {
            let k = (n - done).min((4 << 20) / cluster);
            buf.resize((k * cluster) as usize, 0);
            dev.read_exact_at(&mut buf, (lcn + done) * cluster)?;
            buf.chunks_exact(cluster as usize).for_each(&mut f);
            done += k;
        }
    }
    Ok(())
}

impl NtfsRecord {
    /// Reads the MFT of the volume on `dev` (just restored from the stream whose index is
    /// `index`), and the clusters of its folders and system files. None when it is not an
    /// NTFS volume parc can read this way.
    pub fn take(dev: &Path, index: &str) -> io::Result<Option<Self>> {
        let f = File::open(dev)?;
        let Some(mft) = Mft::read(&f)? else {
            return Ok(None);
        };
        let parsed: Vec<Option<FileRecord>> = (0..mft.len())
            .map(|i| FileRecord::parse(mft.record(i)).filter(|r| r.in_use))
            .collect();
        let record = |i: u64| parsed.get(i as usize).and_then(Option::as_ref);
        let under_extend = |mut i: u64| -> bool {
            for _ in 0..64 {
                match record(i).and_then(|r| r.names.first()).map(|n| n.0) {
                    Some(EXTEND) => return true,
                    Some(p) if p != i && p != ROOT => i = p,
                    _ => return false,
                }
            }
            false
        };
        // Folders and indexes (flags 2, 8), NTFS's own files and what lies under $Extend
        // (the change journal, transaction logs): their clusters are summed.
        let summed = |base: u64| -> bool {
            (base as usize) < FIRST_USER_RECORD
                || record(base).is_some_and(|r| r.flags & 0x0A != 0)
                || under_extend(base)
        };
        let mut entries = Vec::with_capacity(parsed.len());
        for (i, r) in parsed.iter().enumerate() {
            let hash = digest16(mft.record(i));
            let Some(r) = r else {
                entries.push(Entry { hash, file: None });
                continue;
            };
            let base = r.base.unwrap_or(i as u64);
            let runs: Runs = r
                .extents
                .iter()
                // $MFT's data is the records, compared one by one.
                .filter(|e| !(base == 0 && e.kind == AT_DATA && e.unnamed))
                .flat_map(|e| e.runs.iter().copied())
                .collect();
            let header = r
                .names
                .iter()
                .any(|(p, n)| {
                    *p == ROOT
                        && matches!(
                            n.to_ascii_lowercase().as_str(),
                            "pagefile.sys" | "swapfile.sys" | "hiberfil.sys"
                        )
                })
                .then(|| {
                    r.extents
                        .iter()
                        .find(|e| e.kind == AT_DATA && e.unnamed && e.first_vcn == 0)
                        .and_then(|e| e.runs.first())
                        .map(|r| r.0)
                })
                .flatten();
            let (mut sums, mut indexes) = (None, Vec::new());
            if summed(base) {
                let mut all = Vec::new();
                each_cluster(&f, &runs, mft.boot.cluster, |b| {
                    // A folder's index block the size of a cluster (4 KiB on most volumes).
                    if let Some(t) = IndexTouch::of(b).filter(|_| b.len() == 4096) {
                        indexes.push((all.len() as u32, t));
                    }
                    all.push(sum8(b));
                })?;
                sums = Some(all);
            }
            entries.push(Entry {
                hash,
                file: Some(FileEntry {
                    base,
                    header,
                    touch: Touch::of(mft.record(i)),
                    runs,
                    sums,
                    indexes,
                }),
            });
        }
        Ok(Some(Self {
            index: index.to_string(),
            serial: mft.boot.serial,
            cluster: mft.boot.cluster,
            record_size: mft.boot.record_size,
            mft_size: mft.bytes.len() as u64,
            mft: mft.runs,
            entries,
        }))
    }

    /// The record as kept by the endpoint: text, zstd-compressed.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = format!(
            "{MAGIC} {VERSION}\nindex {}\nvolume {:016x} {} {}\nmft {} {}\n",
            self.index,
            self.serial,
            self.cluster,
            self.record_size,
            self.mft_size,
            runs_text(&self.mft)
        );
        for e in &self.entries {
            t.push_str(&hex::encode(e.hash));
            if let Some(f) = &e.file {
                // Writing to a String cannot fail.
                let _ = write!(t, " {} ", f.base);
                match f.header {
                    Some(h) => {
                        let _ = write!(t, "{h}");
                    }
                    None => t.push('-'),
                }
                t.push(' ');
                match f.touch {
                    Some(x) => {
                        let _ = write!(t, "{:x}.{:x}.{:x}", x.lsn, x.usn, x.atime);
                    }
                    None => t.push('-'),
                }
                t.push(' ');
                t.push_str(&runs_text(&f.runs));
                t.push(' ');
                match &f.sums {
                    Some(sums) if !sums.is_empty() => {
                        for s in sums {
                            let _ = write!(t, "{s:016x}");
                        }
                    }
                    Some(_) => t.push('='),
                    None => t.push('-'),
                }
                t.push(' ');
                if f.indexes.is_empty() {
                    t.push('-');
                }
                for (k, (at, x)) in f.indexes.iter().enumerate() {
                    if k > 0 {
                        t.push(',');
                    }
                    let _ = write!(t, "{at}:{:x}.{:x}", x.lsn, x.usn);
                    for a in &x.atimes {
                        let _ = write!(t, ".{a:x}");
                    }
                }
            }
            t.push('\n');
        }
        zstd::bulk::compress(t.as_bytes(), 1).expect("compressing text in memory")
    }

    /// Reads a record written by [`NtfsRecord::encode`] (at most 1 GiB of text, and 1 MiB
    /// plus 64 times the compressed bytes: its digests do not compress).
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let max = (1u64 << 30).min((1 << 20) + bytes.len() as u64 * 64);
        let text = unzstd_text(bytes, "an NTFS deploy record", max)?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let err = |line: usize, col: usize, msg: &str| IndexError {
            line,
            col,
            msg: msg.to_string(),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let mut header = |n: usize, key: &str| -> Result<Vec<(usize, &str)>, IndexError> {
            let (_, l) = lines
                .next()
                .ok_or_else(|| err(n, 1, "the record is cut short"))?;
            let w = words(l);
            if w.first().map(|w| w.1) != Some(key) {
                return Err(err(n, 1, &format!("expected `{key} …`")));
            }
            Ok(w[1..].to_vec())
        };
        let h = header(1, MAGIC)?;
        if h.len() != 1 || h[0].1 != VERSION.to_string() {
            return Err(err(
                1,
                MAGIC.len() + 2,
                &format!("unknown record version (this parc reads {VERSION})"),
            ));
        }
        let h = header(2, "index")?;
        let index = h.first().map(|w| w.1).unwrap_or_default();
        let hex_ok = index
            .strip_prefix("sha256:")
            .is_some_and(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()));
        if h.len() != 1 || !hex_ok {
            return Err(err(2, 7, "expected sha256:<64 hex digits>"));
        }
        let index = index.to_string();
        let num = |n: usize, (col, w): (usize, &str)| -> Result<u64, IndexError> {
            w.parse().map_err(|_| err(n, col + 1, "expected a number"))
        };
        let h = header(3, "volume")?;
        if h.len() != 3 {
            return Err(err(
                3,
                1,
                "expected `volume <serial> <cluster> <record size>`",
            ));
        }
        let serial = u64::from_str_radix(h[0].1, 16)
            .map_err(|_| err(3, h[0].0 + 1, "expected a serial number in hex"))?;
        let (cluster, record_size) = (num(3, h[1])?, num(3, h[2])?);
        if !cluster.is_power_of_two() || !(512..=65536).contains(&record_size) {
            return Err(err(3, h[1].0 + 1, "not a cluster and record size"));
        }
        let h = header(4, "mft")?;
        if h.len() != 2 {
            return Err(err(4, 1, "expected `mft <bytes> <runs>`"));
        }
        let mft_size = num(4, h[0])?;
        let mft = parse_runs(h[1].1).ok_or_else(|| err(4, h[1].0 + 1, "expected runs"))?;
        let mut entries = Vec::new();
        for (n, l) in lines {
            let w = words(l);
            let hash: [u8; 16] = hex::decode(w[0].1)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| err(n, 1, "expected 32 hex digits"))?;
            let file = match w.len() {
                1 => None,
                7 => {
                    let indexes = parse_indexes(w[6].1)
                        .ok_or_else(|| err(n, w[6].0 + 1, "expected index blocks"))?;
                    let touch = match w[3].1 {
                        "-" => None,
                        x => Some(parse_touch(x).ok_or_else(|| {
                            err(n, w[3].0 + 1, "expected <lsn>.<usn>.<access time> in hex")
                        })?),
                    };
                    let w = [w[0], w[1], w[2], w[4], w[5]];
                    let runs =
                        parse_runs(w[3].1).ok_or_else(|| err(n, w[3].0 + 1, "expected runs"))?;
                    let sums = match w[4].1 {
                        "-" => None,
                        "=" => Some(Vec::new()),
                        x => Some(
                            parse_sums(x)
                                .ok_or_else(|| err(n, w[4].0 + 1, "expected cluster sums"))?,
                        ),
                    };
                    let clusters: u64 = runs.iter().map(|r| r.1).sum();
                    if sums.as_ref().is_some_and(|s| s.len() as u64 != clusters) {
                        return Err(err(
                            n,
                            w[4].0 + 1,
                            &format!("expected a sum for each of its {clusters} clusters"),
                        ));
                    }
                    Some(FileEntry {
                        base: num(n, w[1])?,
                        header: match w[2].1 {
                            "-" => None,
                            _ => Some(num(n, w[2])?),
                        },
                        touch,
                        runs,
                        sums,
                        indexes,
                    })
                }
                _ => return Err(err(n, 1, "expected a digest, or a digest and 6 fields")),
            };
            entries.push(Entry { hash, file });
        }
        if entries.len() < FIRST_USER_RECORD {
            return Err(err(
                5 + entries.len(),
                1,
                &format!("expected at least NTFS's own {FIRST_USER_RECORD} records"),
            ));
        }
        if entries.len() as u64 * record_size != mft_size {
            return Err(err(
                4,
                5,
                &format!(
                    "the MFT's size does not match its {} records",
                    entries.len()
                ),
            ));
        }
        Ok(Self {
            index,
            serial,
            cluster,
            record_size,
            mft_size,
            mft,
            entries,
        })
    }

    /// Compares the volume on `dev` with the record: the clusters to write back, or why
    /// the record cannot tell.
    pub fn plan(&self, dev: &File) -> io::Result<Result<Plan, String>> {
        let Some(boot) = BootSector::read(dev)? else {
            return Ok(Err("no NTFS volume on the partition".into()));
        };
        if boot.serial != self.serial
            || boot.cluster != self.cluster
            || boot.record_size != self.record_size
            || self.mft.first().map(|r| r.0) != Some(boot.mft_lcn)
        {
            return Ok(Err("the volume is not the one deployed".into()));
        }
        // The MFT and the summed clusters, each read and hashed on its own core.
        let (mft, summed) = std::thread::scope(|sc| {
            let summed = sc.spawn(|| self.differing(dev));
            let mft = Mft::read_at(dev, boot, self.mft.clone(), self.mft_size).map(|mft| {
                let changed: Vec<usize> = (0..mft.len())
                    .filter(|&i| digest16(mft.record(i)) != self.entries[i].hash)
                    .collect();
                (mft, changed)
            });
            (mft, summed.join().expect("the summing thread panicked"))
        });
        let ((mft, changed), (differ, summed)) = (mft?, summed?);
        // The log: where the image put it, unless its record changed.
        if changed.contains(&2) {
            return Ok(Err("$LogFile's record changed".into()));
        }
        let log = self.entries[2].file.as_ref().and_then(|f| f.runs.first());
        match log {
            Some(&(lcn, n)) if n * self.cluster >= 8192 => {
                let mut head = vec![0u8; 8192];
                dev.read_exact_at(&mut head, lcn * self.cluster)?;
                if !log_is_clean(&head) {
                    return Ok(Err(
                        "Windows did not shut down cleanly ($LogFile has transactions to replay)"
                            .into(),
                    ));
                }
            }
            _ => return Ok(Err("no $LogFile where the image has it".into())),
        }
        // A hibernated session, in the image's hiberfil.sys or one made since (in a record
        // that changed, or past the MFT's recorded end).
        let mut now: Vec<FileRecord> = changed
            .iter()
            .filter_map(|&i| FileRecord::parse(mft.record(i)).filter(|r| r.in_use))
            .collect();
        let Some((runs, _)) = FileRecord::parse(mft.record(0)).and_then(|r| r.data_runs()) else {
            return Ok(Err("the MFT's own record does not read".into()));
        };
        let mapped = runs.iter().map(|r| r.1).sum::<u64>() * self.cluster;
        if mapped > self.mft_size && mapped <= 16 << 30 {
            let grown = Mft::read_at(dev, boot, runs, mapped)?;
            now.extend(
                (mft.len()..grown.len())
                    .filter_map(|i| FileRecord::parse(grown.record(i)).filter(|r| r.in_use)),
            );
        }
        let headers = self
            .entries
            .iter()
            .filter_map(|e| e.file.as_ref()?.header)
            .chain(now.iter().filter_map(hiberfil_cluster));
        for lcn in headers {
            let mut sig = [0u8; 4];
            dev.read_exact_at(&mut sig, lcn * self.cluster)?;
            if matches!(&sig.to_ascii_lowercase()[..], b"hibr" | b"wake") {
                return Ok(Err(
                    "Windows is hibernated (hiberfil.sys holds a session)".into()
                ));
            }
        }

        // Records that only show a read since (access time, sequence numbers): put back as
        // they were, here, with nothing fetched and their data left alone.
        let mut local = Vec::new();
        let mut changed_more = Vec::new();
        for &i in &changed {
            let e = &self.entries[i];
            let back = e.file.as_ref().and_then(|f| f.touch?.apply(mft.record(i)));
            match (back, self.record_at(i)) {
                (Some(b), Some(at)) if digest16(&b) == e.hash => local.push((at, b)),
                _ => changed_more.push(i),
            }
        }
        let records_changed = changed.clone();
        let touched = local.len();
        let changed = changed_more;
        // Files whose record changed otherwise: their whole family, written back whole.
        let mut family: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(f) = &e.file {
                family.entry(f.base).or_default().push(i);
            }
        }
        let mut whole = BTreeSet::new();
        for &i in &changed {
            let base = self.entries[i].file.as_ref().map_or(i as u64, |f| f.base);
            whole.insert(i);
            whole.extend(family.get(&base).into_iter().flatten().copied());
        }
        let mut clusters: Runs = whole
            .iter()
            .filter_map(|&i| self.entries[i].file.as_ref())
            .filter(|f| f.sums.is_none())
            .flat_map(|f| f.runs.iter().copied())
            .collect();
        let files = whole
            .iter()
            .filter(|&&i| {
                self.entries[i]
                    .file
                    .as_ref()
                    .is_some_and(|f| f.sums.is_none())
            })
            .count();
        // Folders and system files: the clusters that differ from their sums.
        // A folder's index block that only shows reads: put back from the disk.
        let mut block = vec![0u8; self.cluster as usize];
        let mut sums_differing = Vec::with_capacity(differ.len());
        // Clusters known to differ from the image's: their chunks are not looked for on the disk.
        let mut differs = Vec::new();
        for (c, sum, index) in differ {
            sums_differing.push((c, sum));
            if let Some(t) = index {
                dev.read_exact_at(&mut block, c * self.cluster)?;
                if let Some(b) = t.apply(&block).filter(|b| sum8(b) == sum) {
                    local.push((c * self.cluster, b));
                    continue;
                }
            }
            clusters.push((c, 1));
            differs.push(c);
        }
        let per_record = self.record_size.div_ceil(self.cluster);
        for &i in &changed {
            let lcn = mft.cluster_of(i).expect("within the MFT's map");
            clusters.push((lcn, per_record));
            differs.extend(lcn..lcn + per_record);
        }
        let header = HEADER_BYTES.div_ceil(self.cluster);
        clusters.extend(
            self.entries
                .iter()
                .filter_map(|e| Some((e.file.as_ref()?.header?, header))),
        );
        Ok(Ok(Plan {
            changed: records_changed.len(),
            records_changed,
            sums_differing,
            differs: {
                differs.sort_unstable();
                differs.dedup();
                differs
            },
            touched,
            blocks_touched: local.len() - touched,
            files,
            summed,
            clusters: merge(clusters),
            records: local,
        }))
    }

    /// The clusters of folders and system files that differ from their sums (with the sum
    /// the record gives), and how many clusters were compared.
    fn differing(&self, dev: &File) -> io::Result<(Vec<Differing<'_>>, u64)> {
        let summed: Vec<&FileEntry> = self
            .entries
            .iter()
            .filter_map(|e| e.file.as_ref().filter(|f| f.sums.is_some()))
            .collect();
        // Folder indexes lie in small pieces all over the volume: read a few at a time.
        let total: u64 = summed.iter().map(|f| f.runs.len() as u64 + 1).sum();
        let mut parts: Vec<Vec<&FileEntry>> = vec![Vec::new()];
        let mut acc = 0;
        for f in summed {
            acc += f.runs.len() as u64 + 1;
            parts.last_mut().expect("one part").push(f);
            if acc * 4 >= total * parts.len() as u64 {
                parts.push(Vec::new());
            }
        }
        let found = std::thread::scope(|sc| {
            let threads: Vec<_> = parts
                .iter()
                .map(|part| sc.spawn(move || self.differing_in(dev, part)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a summing thread panicked"))
                .collect::<io::Result<Vec<_>>>()
        })?;
        let mut out = Vec::new();
        let mut n = 0;
        for (d, k) in found {
            out.extend(d);
            n += k;
        }
        out.sort_unstable_by_key(|d| d.0);
        Ok((out, n))
    }

    fn differing_in<'a>(
        &self,
        dev: &File,
        files: &[&'a FileEntry],
    ) -> io::Result<(Vec<Differing<'a>>, u64)> {
        let mut out = Vec::new();
        let mut n = 0;
        for f in files {
            let Some(sums) = &f.sums else { continue };
            let now = cluster_sums(dev, &f.runs, self.cluster)?;
            n += now.len() as u64;
            let clusters = f.runs.iter().flat_map(|&(l, k)| l..l + k);
            for (k, ((c, &a), b)) in clusters.zip(sums).zip(&now).enumerate() {
                if a != *b {
                    let index = f
                        .indexes
                        .binary_search_by_key(&(k as u32), |x| x.0)
                        .ok()
                        .map(|i| &f.indexes[i].1);
                    out.push((c, a, index));
                }
            }
        }
        Ok((out, n))
    }

    /// Byte `i * record_size` of the MFT on the volume, when the record lies in one cluster.
    fn record_at(&self, i: usize) -> Option<u64> {
        if self.record_size > self.cluster {
            return None;
        }
        let byte = i as u64 * self.record_size;
        let mut at = byte / self.cluster;
        for &(lcn, n) in &self.mft {
            if at < n {
                return Some((lcn + at) * self.cluster + byte % self.cluster);
            }
            at -= n;
        }
        None
    }

    /// Whether what a reimage wrote after `plan` is what the record says: the records that
    /// differed and the summed clusters that differed (the rest was found as recorded).
    pub fn written(&self, dev: &File, plan: &Plan) -> io::Result<bool> {
        let mut rec = vec![0u8; self.record_size as usize];
        for &i in &plan.records_changed {
            let Some(at) = self.record_at(i) else {
                return self.holds(dev);
            };
            dev.read_exact_at(&mut rec, at)?;
            if digest16(&rec) != self.entries[i].hash {
                return Ok(false);
            }
        }
        let mut c = vec![0u8; self.cluster as usize];
        for &(lcn, sum) in &plan.sums_differing {
            dev.read_exact_at(&mut c, lcn * self.cluster)?;
            if sum8(&c) != sum {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the volume on `dev` is the recorded one where the record can tell: the MFT
    /// where the image put it, and the clusters of folders and system files.
    pub fn holds(&self, dev: &File) -> io::Result<bool> {
        let Some(boot) = BootSector::read(dev)? else {
            return Ok(false);
        };
        let mft = Mft::read_at(dev, boot, self.mft.clone(), self.mft_size)?;
        Ok(
            (0..mft.len()).all(|i| digest16(mft.record(i)) == self.entries[i].hash)
                && self.differing(dev)?.0.is_empty(),
        )
    }
}

/// The first cluster of a `hiberfil.sys` in the root folder.
fn hiberfil_cluster(r: &FileRecord) -> Option<u64> {
    r.names
        .iter()
        .any(|(p, n)| *p == ROOT && n.eq_ignore_ascii_case("hiberfil.sys"))
        .then(|| {
            r.data_runs()
                .and_then(|(runs, _)| runs.first().map(|r| r.0))
        })
        .flatten()
}

/// A summed cluster that differs: where, the recorded sum, and what reads change in it
/// when it is a folder's index block.
type Differing<'a> = (u64, u64, Option<&'a IndexTouch>);

/// What a reimage writes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Records that differ from the deploy's, and of those, the ones that only show a read.
    pub changed: usize,
    pub touched: usize,
    /// Folder index blocks that only show reads (put back from the disk too).
    pub blocks_touched: usize,
    /// Records whose clusters are written back whole.
    pub files: usize,
    /// Clusters of folders and system files compared with their sums.
    pub summed: u64,
    /// Clusters to fetch and write, sorted and merged.
    pub clusters: Runs,
    /// What to check once written: the records that differed, the summed clusters that
    /// differed (with their sums).
    pub records_changed: Vec<usize>,
    pub sums_differing: Vec<(u64, u64)>,
    /// Clusters known to differ from the image's (sorted).
    pub differs: Vec<u64>,
    /// Records put back from what the disk holds: (byte on the volume, bytes).
    pub records: Vec<(u64, Vec<u8>)>,
}

fn merge(mut runs: Runs) -> Runs {
    runs.retain(|r| r.1 > 0);
    runs.sort_unstable();
    let mut out: Runs = Vec::with_capacity(runs.len());
    for (lcn, n) in runs {
        match out.last_mut() {
            Some(last) if lcn <= last.0 + last.1 => last.1 = last.1.max(lcn + n - last.0),
            _ => out.push((lcn, n)),
        }
    }
    out
}

fn runs_text(runs: &Runs) -> String {
    if runs.is_empty() {
        return "-".into();
    }
    runs.iter()
        .map(|(l, n)| format!("{l}+{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_indexes(w: &str) -> Option<Vec<(u32, IndexTouch)>> {
    if w == "-" {
        return Some(Vec::new());
    }
    w.split(',')
        .map(|b| {
            let (at, rest) = b.split_once(':')?;
            let mut p = rest.split('.');
            let lsn = u64::from_str_radix(p.next()?, 16).ok()?;
            let usn = u16::from_str_radix(p.next()?, 16).ok()?;
            let atimes = p
                .map(|a| u64::from_str_radix(a, 16).ok())
                .collect::<Option<_>>()?;
            Some((at.parse().ok()?, IndexTouch { lsn, usn, atimes }))
        })
        .collect()
}

fn parse_touch(w: &str) -> Option<Touch> {
    let mut p = w.split('.');
    let t = Touch {
        lsn: u64::from_str_radix(p.next()?, 16).ok()?,
        usn: u16::from_str_radix(p.next()?, 16).ok()?,
        atime: u64::from_str_radix(p.next()?, 16).ok()?,
    };
    p.next().is_none().then_some(t)
}

fn parse_sums(w: &str) -> Option<Vec<u64>> {
    if w.len() % 16 != 0 {
        return None;
    }
    (0..w.len())
        .step_by(16)
        .map(|i| u64::from_str_radix(w.get(i..i + 16)?, 16).ok())
        .collect()
}

fn parse_runs(w: &str) -> Option<Runs> {
    if w == "-" {
        return Some(Vec::new());
    }
    w.split(',')
        .map(|r| {
            let (l, n) = r.split_once('+')?;
            Some((l.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

/// Reimages the NTFS volume on `dev` from stream `s` (chunked) using the record of its last
/// deploy: Ok(Err(why)) when the record cannot tell what changed (the caller reads the
/// volume whole), nothing written then.
pub fn reimage_recorded(
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    dev: &Path,
    r: &NtfsRecord,
    progress: &Progress,
) -> ImageResult<Result<Seeded, String>> {
    if s.index.as_ref().map(|i| i.sha256.as_str()) != Some(r.index.as_str()) {
        return Ok(Err("it is of another image".into()));
    }
    progress.set_phase(format!("compare {} with its last deploy", s.file));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map_err(ImageError::io(dev))?;
    // The index comes over the network while the MFT is compared.
    let (index, plan) = std::thread::scope(|sc| {
        let fe = &mut *fetcher;
        let index = sc.spawn(move || fetch_index(fe, s));
        let plan = r.plan(&f);
        (index.join().expect("the index thread panicked"), plan)
    });
    // A record that does not fit this disk (runs past its end, a read that fails) is one
    // that cannot tell: the volume is read whole, the deploy goes on.
    let plan = match plan {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => return Ok(Err(why)),
        Err(e) => return Ok(Err(format!("reading what it names failed ({e})"))),
    };
    let index = index?;
    let n: u64 = plan.clusters.iter().map(|r| r.1).sum();
    progress.set_phase(format!(
        "write {} ({} MFT records changed, {} only read, {} index blocks only read; {} MiB: {} files, folders and system files)",
        s.file,
        plan.changed,
        plan.touched,
        plan.blocks_touched,
        (n * r.cluster) >> 20,
        plan.files
    ));
    let written = write_clusters(
        fetcher,
        &index,
        (&s.file, &f),
        r.cluster,
        (&plan.clusters, &plan.differs),
        progress,
    )?;
    let mut taken = match written {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    for (at, b) in &plan.records {
        f.write_all_at(b, *at).map_err(ImageError::io(dev))?;
    }
    // Read back from the page cache: what matters here is what was written; it reaches the
    // disk with the rest of the deploy, synced at its end.
    progress.set_phase(format!("check what was written of {}", s.file));
    if !r.written(&f, &plan).map_err(ImageError::io(dev))? {
        return Ok(Err(
            "the MFT written back is not the recorded one (the record is not used again)".into(),
        ));
    }
    taken.recorded = true;
    Ok(Ok(taken))
}

/// Writes the image's content of `clusters` onto `dev`, fetching the chunks of stream
/// `file` (`index`) that hold them. Ok(Err(why)) when the stream is not a partclone image of
/// clusters this size; nothing written then.
fn write_clusters(
    fetcher: &mut dyn ChunkFetcher,
    index: &ChunkIndex,
    (file, dev): (&str, &File),
    cluster: u64,
    (clusters, differs): (&Runs, &[u64]),
    progress: &Progress,
) -> ImageResult<Result<Seeded, String>> {
    let mut starts = Vec::with_capacity(index.chunks.len() + 1);
    let mut at = 0u64;
    for c in &index.chunks {
        starts.push(at);
        at += u64::from(c.len);
    }
    starts.push(at);
    let mut taken = Seeded::default();
    let mut fetch_one = |k: usize, taken: &mut Seeded| -> ImageResult<Vec<u8>> {
        let c = index.chunks[k];
        let z = fetcher
            .fetch(vec![c])
            .next()
            .unwrap_or_else(|| Err(io::Error::other("the chunk fetch ended early")))
            .map_err(ImageError::stream(format!("downloading chunk {}", c.hex())))?;
        taken.fetched_chunks += 1;
        taken.fetched_bytes += z.len() as u64;
        decode(&c, &z)
    };
    // partclone's header and bitmap: where each cluster lies in the stream.
    let mut head = Vec::new();
    let mut k = 0;
    let layout = loop {
        match Layout::parse(&head) {
            Ok(Some(l)) => break l,
            Ok(None) => return Ok(Err(format!("{file} is not a partclone image"))),
            Err(_) if k == index.chunks.len() => {
                return Ok(Err(format!("{file} ends inside its header")));
            }
            Err(_) => {
                head.extend(fetch_one(k, &mut taken)?);
                k += 1;
            }
        }
    };
    if layout.block != cluster {
        return Ok(Err(format!(
            "{file} has blocks of {} bytes, the volume clusters of {cluster}",
            layout.block
        )));
    }
    // The clusters the image has, where they lie in the stream, in order.
    let blocks: Vec<(u64, u64)> = clusters
        .iter()
        .flat_map(|&(lcn, n)| lcn..lcn + n)
        .filter_map(|b| Some((b, layout.block_pos(b)?)))
        .collect();
    let mut wanted: Vec<usize> = Vec::new();
    // Chunks holding a cluster known to differ: fetched without looking on the disk.
    let mut sure = std::collections::HashSet::new();
    for &(b, pos) in &blocks {
        let first = starts.partition_point(|&s| s <= pos) - 1;
        let last = starts.partition_point(|&s| s < pos + cluster) - 1;
        let differ = differs.binary_search(&b).is_ok();
        for c in first..=last.min(index.chunks.len() - 1) {
            if wanted.last() != Some(&c) {
                wanted.push(c);
            }
            if differ {
                sure.insert(c);
            }
        }
    }
    // The header's chunks are in hand already.
    let (held, wanted): (Vec<usize>, Vec<usize>) = wanted.into_iter().partition(|&c| c < k);
    // Chunks the disk still holds where the image put them (a file rewritten in its middle
    // keeps its other clusters; a removed file's stay until reused): read and checked
    // against their digest, neither fetched nor written.
    let look: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|c| !sure.contains(c))
        .collect();
    // Small reads spread over the disk: a few at a time.
    let read_local = |c: usize| -> io::Result<Option<Vec<u8>>> {
        let (s, e) = (starts[c], starts[c + 1]);
        let Some(pieces) = layout.on_disk(s, e - s) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; (e - s) as usize];
        let mut at = 0;
        for (on_disk, n) in pieces {
            dev.read_exact_at(&mut buf[at..at + n as usize], on_disk)?;
            at += n as usize;
        }
        Ok((Sha256::digest(&buf)[..] == index.chunks[c].digest).then_some(buf))
    };
    let found = std::thread::scope(|sc| {
        let part = look.len().div_ceil(4).max(1);
        let readers: Vec<_> = look
            .chunks(part)
            .map(|cs| {
                sc.spawn(move || -> io::Result<Vec<(usize, Vec<u8>)>> {
                    let mut out = Vec::new();
                    for &c in cs {
                        if let Some(b) = read_local(c)? {
                            out.push((c, b));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("a disk reader panicked"))
            .collect::<io::Result<Vec<_>>>()
    })
    .map_err(ImageError::stream("reading the volume"))?;
    let mut local: HashMap<usize, Vec<u8>> = found.into_iter().flatten().collect();
    let wanted: Vec<usize> = wanted
        .into_iter()
        .filter(|c| !local.contains_key(c))
        .collect();
    progress.set_phase(format!(
        "fetch {} chunks of {file} (the disk holds {} of those needed)",
        wanted.len(),
        local.len()
    ));
    let refs: Vec<ChunkRef> = wanted.iter().map(|&c| index.chunks[c]).collect();
    let mut fetched = fetcher.fetch(refs).zip(wanted.iter().copied());
    // Chunks in hand for the blocks at hand: (number, bytes, read from the disk).
    let mut window: Vec<(usize, Vec<u8>, bool)> = Vec::new();
    let mut out = Writer::new(dev, cluster);
    for &(b, pos) in &blocks {
        let end = pos + cluster;
        window.retain(|(c, ..)| starts[c + 1] > pos);
        while window.last().is_none_or(|(c, ..)| starts[c + 1] < end) {
            let next = window.last().map_or_else(
                || starts.partition_point(|&s| s <= pos) - 1,
                |(c, ..)| c + 1,
            );
            if let Some(data) = local.remove(&next) {
                window.push((next, data, true));
                continue;
            }
            let data = if held.contains(&next) {
                // Bytes of the header's chunks, which are the stream's first ones.
                head[starts[next] as usize..starts[next + 1] as usize].to_vec()
            } else {
                let (z, c) = fetched
                    .next()
                    .expect("every chunk a wanted cluster needs was asked for");
                debug_assert_eq!(c, next);
                let z = z.map_err(ImageError::stream(format!(
                    "downloading chunk {}",
                    index.chunks[c].hex()
                )))?;
                taken.fetched_chunks += 1;
                taken.fetched_bytes += z.len() as u64;
                decode(&index.chunks[c], &z)?
            };
            window.push((next, data, false));
        }
        if window.iter().all(|w| w.2) {
            // The disk holds it already.
            continue;
        }
        let mut block = Vec::with_capacity(cluster as usize);
        for (c, data, _) in &window {
            let (s, e) = (starts[*c], starts[c + 1]);
            let (from, to) = (pos.max(s), end.min(e));
            if from < to {
                block.extend_from_slice(&data[(from - s) as usize..(to - s) as usize]);
            }
        }
        out.put(b, &block)
            .map_err(ImageError::stream("writing the volume"))?;
    }
    out.finish()
        .map_err(ImageError::stream("writing the volume"))?;
    let fetched_len: u64 = (0..index.chunks.len())
        .filter(|c| *c < k || wanted.binary_search(c).is_ok())
        .map(|c| u64::from(index.chunks[c].len))
        .sum();
    taken.seeded_bytes = index.stream_len().saturating_sub(fetched_len);
    Ok(Ok(taken))
}

fn decode(c: &ChunkRef, z: &[u8]) -> ImageResult<Vec<u8>> {
    decode_chunk(c, z).map_err(|detail| ImageError::Integrity {
        file: format!("chunk {}", c.hex()),
        detail,
    })
}

/// Gathers consecutive clusters into one write.
struct Writer<'a> {
    dev: &'a File,
    cluster: u64,
    first: u64,
    buf: Vec<u8>,
}

impl<'a> Writer<'a> {
    fn new(dev: &'a File, cluster: u64) -> Self {
        Self {
            dev,
            cluster,
            first: 0,
            buf: Vec::new(),
        }
    }

    fn put(&mut self, b: u64, data: &[u8]) -> io::Result<()> {
        let next = self.first + self.buf.len() as u64 / self.cluster;
        if !self.buf.is_empty() && (b != next || self.buf.len() >= 4 << 20) {
            self.finish()?;
        }
        if self.buf.is_empty() {
            self.first = b;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.dev
            .write_all_at(&self.buf, self.first * self.cluster)?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::chunks::{ChunkStore, chunk_into};
    use crate::image::disk::run;
    use crate::image::testdata::{SMALL, noise, partclone_stream};
    use std::process::Command;

    /// Chunk files from a store folder.
    struct Fetch(ChunkStore);

    impl ChunkFetcher for Fetch {
        fn index(&mut self, _s: &StreamInfo) -> io::Result<Vec<u8>> {
            unreachable!("the index is passed in")
        }
        fn fetch(
            &mut self,
            chunks: Vec<ChunkRef>,
        ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
            let store = self.0.clone();
            Box::new(
                chunks
                    .into_iter()
                    .map(move |c| std::fs::read(store.path(&c))),
            )
        }
    }

    fn put(img: &Path, dir: &Path, name: &str, data: &[u8]) {
        let f = dir.join("put");
        std::fs::write(&f, data).unwrap();
        run(Command::new("ntfscp").arg("-f").arg(img).arg(&f).arg(name)).unwrap();
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn a_reimage_from_the_record_writes_back_only_what_changed() {
        for tool in ["mkntfs", "partclone.ntfs", "ntfscp", "ntfs-3g"] {
            assert!(
                crate::image::disk::run(
                    Command::new("sh").args(["-c", &format!("command -v {tool}")])
                )
                .is_ok(),
                "{tool} is needed (scripts/ensure-packages.sh ntfs-3g partclone)"
            );
        }
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("v.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        run(Command::new("mkntfs").args(["-F", "-q", "-f"]).arg(&img)).unwrap();
        for k in 0..24u64 {
            put(&img, d.path(), &format!("f{k}.bin"), &noise(k, 96 << 10));
        }
        // A file last read before it was last written: a read moves its access time
        // (ntfs-3g's relatime, as Windows' last-access updates).
        let mnt = d.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("ntfs-3g").arg(&img).arg(&mnt)).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let set = File::open(mnt.join("f13.bin"))
            .and_then(|f| f.set_times(std::fs::FileTimes::new().set_accessed(old)));
        run(Command::new("umount").arg(&mnt)).unwrap();
        set.unwrap();
        let image = partclone_stream(&img);
        let store = ChunkStore::new(d.path().join("chunks"));
        let index = chunk_into(&image[..], SMALL, &store, 1).unwrap().index;
        let mut fetch = Fetch(store);

        let r = NtfsRecord::take(&img, &format!("sha256:{}", "0".repeat(64)))
            .unwrap()
            .expect("an NTFS volume");
        assert_eq!(NtfsRecord::decode(&r.encode()).unwrap(), r);
        assert!(r.entries.len() > 24 + 24, "{} records", r.entries.len());
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        assert!(r.holds(&dev).unwrap());
        let p = r.plan(&dev).unwrap().unwrap();
        assert_eq!(p.changed, 0, "nothing changed yet");

        // What Windows might do, through ntfs-3g (which keeps times as Windows does): a file
        // rewritten in its middle, one cut short, one removed, one added.
        run(Command::new("ntfs-3g").arg(&img).arg(&mnt)).unwrap();
        let drift = || -> io::Result<()> {
            let f3 = OpenOptions::new().write(true).open(mnt.join("f3.bin"))?;
            f3.write_all_at(&noise(100, 5000), 40_000)?;
            drop(f3);
            OpenOptions::new()
                .write(true)
                .open(mnt.join("f7.bin"))?
                .set_len(1000)?;
            std::fs::remove_file(mnt.join("f11.bin"))?;
            // Read only: its access time moves, nothing else.
            std::fs::read(mnt.join("f13.bin"))?;
            std::fs::write(mnt.join("nouveau.bin"), noise(101, 200 << 10))
        };
        let drifted = drift();
        run(Command::new("umount").arg(&mnt)).unwrap();
        drifted.unwrap();
        assert_ne!(sha(&partclone_stream(&img)), sha(&image));
        assert!(!r.holds(&dev).unwrap());

        let p = r.plan(&dev).unwrap().unwrap();
        assert!(p.changed >= 4, "{p:?}");
        assert!(p.touched >= 1, "the file only read: {p:?}");
        let taken = write_clusters(
            &mut fetch,
            &index,
            ("v", &dev),
            r.cluster,
            (&p.clusters, &p.differs),
            &Progress::default(),
        )
        .unwrap()
        .unwrap();
        for (at, b) in &p.records {
            dev.write_all_at(b, *at).unwrap();
        }
        dev.sync_data().unwrap();
        assert!(r.holds(&dev).unwrap(), "the MFT is the recorded one again");
        assert_eq!(
            sha(&partclone_stream(&img)),
            sha(&image),
            "the volume reads as the image again"
        );
        let stored = index.stored_len();
        eprintln!(
            "{} records changed, {} files written back, {} chunks ({} bytes of {stored}) fetched",
            p.changed, p.files, taken.fetched_chunks, taken.fetched_bytes
        );
        assert!(
            taken.fetched_bytes * 4 < stored,
            "fetched {} bytes of {stored}",
            taken.fetched_bytes
        );

        // Another volume: the record says so, nothing is planned.
        let other = d.path().join("w.img");
        File::create(&other).unwrap().set_len(64 << 20).unwrap();
        run(Command::new("mkntfs").args(["-F", "-q", "-f"]).arg(&other)).unwrap();
        let o = File::open(&other).unwrap();
        assert_eq!(
            r.plan(&o).unwrap(),
            Err("the volume is not the one deployed".to_string())
        );
    }

    #[test]
    fn a_record_that_does_not_read_says_where() {
        let r = "parc-ntfs-record 1\nindex sha256:00\n";
        let e = NtfsRecord::parse(r).unwrap_err();
        assert_eq!((e.line, e.col), (2, 7), "{e}");
        let good = format!(
            "parc-ntfs-record 1\nindex sha256:{}\nvolume 00ab 4096 1024\nmft 24576 10+6\n{}\n{} 0 - 1a.3.ff 12+4,20+1 - -\n{}",
            "0".repeat(64),
            "1".repeat(32),
            "2".repeat(32),
            format!("{}\n", "3".repeat(32)).repeat(22)
        );
        let r = NtfsRecord::parse(&good).unwrap();
        // Fewer records than NTFS's own: not a record of a volume.
        let short = good.replace(&format!("{}\n", "3".repeat(32)), "");
        let short = short.replace("mft 24576", "mft 2048");
        let e = NtfsRecord::parse(&short).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(
            r.entries[1].file.as_ref().unwrap().runs,
            vec![(12, 4), (20, 1)]
        );
        let bad = good.replace("12+4", "12-4");
        let e = NtfsRecord::parse(&bad).unwrap_err();
        assert_eq!((e.line, e.col), (6, 46), "{e}");
        let sums = good.replace("20+1 -", "20+1 00000000000000010000000000000002");
        let e = NtfsRecord::parse(&sums).unwrap_err();
        assert_eq!((e.line, e.col), (6, 56), "{e}");
        assert!(e.msg.contains("each of its 5 clusters"), "{e}");
    }
}
