//! What parc reads of an NTFS volume without mounting it: the boot sector, the master file
//! table's records (one per file, its attributes and where their data lies) and whether
//! the `$LogFile` says the volume was shut down cleanly. Read-only; used by the NTFS deploy
//! record ([`super::ntfs_record`]).
//!
//! Layouts as ntfs-3g's `layout.h` and `logfile.h` give them (NTFS 3.1).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Attribute types parc looks at.
const AT_FILE_NAME: u32 = 0x30;
const AT_DATA: u32 = 0x80;
const AT_END: u32 = 0xFFFF_FFFF;

/// Record flags.
const MFT_RECORD_IN_USE: u16 = 0x0001;

/// What the boot sector says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootSector {
    pub cluster: u64,
    pub record_size: u64,
    pub mft_lcn: u64,
    pub serial: u64,
    /// Sectors of the volume.
    pub sectors: u64,
    pub sector: u64,
}

impl BootSector {
    pub fn read(dev: &File) -> io::Result<Option<Self>> {
        let mut b = [0u8; 512];
        dev.read_exact_at(&mut b, 0)?;
        Ok(Self::parse(&b))
    }

    pub fn parse(b: &[u8; 512]) -> Option<Self> {
        if &b[3..11] != b"NTFS    " {
            return None;
        }
        let sector = u64::from(u16::from_le_bytes([b[0x0B], b[0x0C]]));
        let spc = b[0x0D];
        // Above 128 sectors a cluster, the byte is a negative power of two.
        let spc = if spc > 0x80 {
            1u64.checked_shl(256 - u32::from(spc))?
        } else {
            u64::from(spc)
        };
        let cluster = sector * spc;
        let per_record = b[0x40] as i8;
        let record_size = if per_record > 0 {
            cluster * per_record as u64
        } else {
            1u64.checked_shl(u32::from(per_record.unsigned_abs()))?
        };
        if !(512..=4096).contains(&sector)
            || !cluster.is_power_of_two()
            || !(512..=2 << 20).contains(&cluster)
            || !(512..=65536).contains(&record_size)
            || record_size % 512 != 0
        {
            return None;
        }
        Some(Self {
            cluster,
            record_size,
            mft_lcn: u64_at(b, 0x30),
            serial: u64_at(b, 0x48),
            sectors: u64_at(b, 0x28),
            sector,
        })
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Undoes the update sequence of a multi-sector record (the last two bytes of each 512-byte
/// sector were swapped for the sequence number when it was written). False when it does
/// not check (a torn write, or not such a record).
fn fixup(rec: &mut [u8]) -> bool {
    if rec.len() < 8 {
        return false;
    }
    let (ofs, count) = (usize::from(u16_at(rec, 4)), usize::from(u16_at(rec, 6)));
    if count == 0 || ofs + 2 * count > rec.len() || (count - 1) * 512 > rec.len() {
        return false;
    }
    let usn = [rec[ofs], rec[ofs + 1]];
    for i in 1..count {
        let end = i * 512 - 2;
        if rec[end..end + 2] != usn {
            return false;
        }
        let (a, b) = (rec[ofs + 2 * i], rec[ofs + 2 * i + 1]);
        rec[end] = a;
        rec[end + 1] = b;
    }
    true
}

/// One non-resident attribute's extent: clusters `(lcn, count)`, sparse runs left out.
pub type Runs = Vec<(u64, u64)>;

/// Decodes a mapping-pairs array (NTFS's run list).
fn decode_runs(b: &[u8]) -> Option<Runs> {
    let mut runs = Vec::new();
    let (mut at, mut lcn) = (0usize, 0i64);
    loop {
        let head = *b.get(at)?;
        if head == 0 {
            return Some(runs);
        }
        let (len_size, off_size) = (usize::from(head & 0x0F), usize::from(head >> 4));
        if len_size == 0 || len_size > 8 || off_size > 8 || at + 1 + len_size + off_size > b.len() {
            return None;
        }
        let mut len = 0u64;
        for k in (0..len_size).rev() {
            len = len << 8 | u64::from(b[at + 1 + k]);
        }
        if off_size > 0 {
            let o = &b[at + 1 + len_size..at + 1 + len_size + off_size];
            // Sign-extended little-endian.
            let mut off: i64 = if o[off_size - 1] & 0x80 != 0 { -1 } else { 0 };
            for k in (0..off_size).rev() {
                off = off << 8 | i64::from(o[k]);
            }
            lcn = lcn.checked_add(off)?;
            if lcn < 0 {
                return None;
            }
            runs.push((lcn as u64, len));
        }
        at += 1 + len_size + off_size;
    }
}

/// What one MFT record holds that the NTFS record needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRecord {
    pub in_use: bool,
    /// In use (1), a folder (2), an index of another kind (8: `$Secure`, `$Extend`'s).
    pub flags: u16,
    /// The base record of an extension record (None for a base record).
    pub base: Option<u64>,
    /// Folders it is named in, with its names there.
    pub names: Vec<(u64, String)>,
    /// Every non-resident attribute: its type, whether it is the unnamed data stream, and
    /// its clusters.
    pub extents: Vec<Extent>,
    /// A folder's `$INDEX_ROOT` value (resident).
    pub index_root: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub kind: u32,
    pub unnamed: bool,
    pub first_vcn: u64,
    /// Bytes of the whole attribute (given only in its first extent).
    pub size: Option<u64>,
    pub runs: Runs,
}

impl FileRecord {
    /// Parses a record as read from the disk (fixups not yet undone). None when it is not
    /// a sound FILE record (never written, or torn).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() < 48 || &raw[..4] != b"FILE" {
            return None;
        }
        let mut rec = raw.to_vec();
        if !fixup(&mut rec) {
            return None;
        }
        let flags = u16_at(&rec, 0x16);
        let used = (u32_at(&rec, 0x18) as usize).min(rec.len());
        let base = u64_at(&rec, 0x20) & 0xFFFF_FFFF_FFFF;
        let mut out = FileRecord {
            in_use: flags & MFT_RECORD_IN_USE != 0,
            flags,
            base: (base != 0).then_some(base),
            ..Default::default()
        };
        let mut at = usize::from(u16_at(&rec, 0x14));
        while at + 16 <= used {
            let kind = u32_at(&rec, at);
            if kind == AT_END {
                break;
            }
            let len = u32_at(&rec, at + 4) as usize;
            if len < 16 || at + len > used {
                return None;
            }
            let a = &rec[at..at + len];
            let non_resident = a[8] != 0;
            let name_len = a[9];
            if non_resident {
                if len < 0x40 {
                    return None;
                }
                let first_vcn = u64_at(a, 0x10);
                let pairs = usize::from(u16_at(a, 0x20));
                let runs = decode_runs(a.get(pairs..)?)?;
                out.extents.push(Extent {
                    kind,
                    unnamed: name_len == 0,
                    first_vcn,
                    size: (first_vcn == 0).then(|| u64_at(a, 0x30)),
                    runs,
                });
            } else if kind == 0x90 {
                let (vlen, voff) = (u32_at(a, 0x10) as usize, usize::from(u16_at(a, 0x14)));
                out.index_root = Some(a.get(voff..voff + vlen)?.to_vec());
            } else if kind == AT_FILE_NAME {
                let (vlen, voff) = (u32_at(a, 0x10) as usize, usize::from(u16_at(a, 0x14)));
                let v = a.get(voff..voff + vlen)?;
                if v.len() >= 0x42 {
                    let parent = u64_at(v, 0) & 0xFFFF_FFFF_FFFF;
                    let n = usize::from(v[0x40]);
                    let units: Vec<u16> = v
                        .get(0x42..0x42 + 2 * n)?
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    out.names.push((parent, String::from_utf16_lossy(&units)));
                }
            }
            at += len;
        }
        Some(out)
    }

    /// The unnamed data stream's clusters in order, when this record holds all of it.
    pub fn data_runs(&self) -> Option<(Runs, u64)> {
        let mut ext: Vec<&Extent> = self
            .extents
            .iter()
            .filter(|e| e.kind == AT_DATA && e.unnamed)
            .collect();
        ext.sort_by_key(|e| e.first_vcn);
        let size = ext.first()?.size?;
        let mut runs = Vec::new();
        let mut vcn = 0;
        for e in ext {
            if e.first_vcn != vcn {
                return None;
            }
            vcn += e.runs.iter().map(|r| r.1).sum::<u64>();
            runs.extend_from_slice(&e.runs);
        }
        Some((runs, size))
    }
}

/// What reading a file alone changes in its record: the log sequence number, the update
/// sequence number (moved at every write of the record) and `$STANDARD_INFORMATION`'s access
/// time (Windows keeps it on small volumes, ntfs-3g by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub lsn: u64,
    pub usn: u16,
    pub atime: u64,
}

impl Touch {
    /// The values of a raw record (as on the disk).
    pub fn of(raw: &[u8]) -> Option<Self> {
        let at = atime_offset(raw)?;
        let usa = usize::from(u16_at(raw, 4));
        Some(Self {
            lsn: u64_at(raw, 0x08),
            usn: u16_at(raw, usa),
            atime: u64_at(raw, at),
        })
    }

    /// `raw` (another version of the same record) with these values put back.
    pub fn apply(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let at = atime_offset(raw)?;
        let (usa, count) = (usize::from(u16_at(raw, 4)), usize::from(u16_at(raw, 6)));
        let mut b = raw.to_vec();
        let old = [b[usa], b[usa + 1]];
        let usn = self.usn.to_le_bytes();
        b[usa..usa + 2].copy_from_slice(&usn);
        for k in 1..count {
            let end = k * 512 - 2;
            if b[end..end + 2] != old {
                return None;
            }
            b[end..end + 2].copy_from_slice(&usn);
        }
        b[0x08..0x10].copy_from_slice(&self.lsn.to_le_bytes());
        b[at..at + 8].copy_from_slice(&self.atime.to_le_bytes());
        Some(b)
    }
}

/// Puts the update sequence back into a record whose fixups were undone, with sequence
/// number `usn` (what NTFS does before writing it). False when it does not fit.
fn protect(rec: &mut [u8], usn: u16) -> bool {
    let (ofs, count) = (usize::from(u16_at(rec, 4)), usize::from(u16_at(rec, 6)));
    if count == 0 || ofs + 2 * count > rec.len() || (count - 1) * 512 > rec.len() {
        return false;
    }
    let usn = usn.to_le_bytes();
    rec[ofs..ofs + 2].copy_from_slice(&usn);
    for i in 1..count {
        let end = i * 512 - 2;
        let (a, b) = (rec[end], rec[end + 1]);
        rec[ofs + 2 * i] = a;
        rec[ofs + 2 * i + 1] = b;
        rec[end..end + 2].copy_from_slice(&usn);
    }
    true
}

/// What reading the files of a folder alone changes in a block of its index (`INDX`): the
/// block's LSN and update sequence number, and each entry's copy of its file's access time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTouch {
    pub lsn: u64,
    pub usn: u16,
    pub atimes: Vec<u64>,
}

impl IndexTouch {
    /// The values of an index block as on the disk; None when it is not one.
    pub fn of(raw: &[u8]) -> Option<Self> {
        let mut b = raw.to_vec();
        if &b[..4] != b"INDX" || !fixup(&mut b) {
            return None;
        }
        let usa = usize::from(u16_at(raw, 4));
        let atimes = index_atimes(&b)?
            .into_iter()
            .map(|o| u64_at(&b, o))
            .collect();
        Some(Self {
            lsn: u64_at(&b, 0x08),
            usn: u16_at(raw, usa),
            atimes,
        })
    }

    /// `raw` (another version of the same block) with these values put back; None when its
    /// entries are not the same count.
    pub fn apply(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let mut b = raw.to_vec();
        if raw.len() < 0x28 || &b[..4] != b"INDX" || !fixup(&mut b) {
            return None;
        }
        let at = index_atimes(&b)?;
        if at.len() != self.atimes.len() {
            return None;
        }
        for (o, t) in at.into_iter().zip(&self.atimes) {
            b[o..o + 8].copy_from_slice(&t.to_le_bytes());
        }
        b[0x08..0x10].copy_from_slice(&self.lsn.to_le_bytes());
        protect(&mut b, self.usn).then_some(b)
    }
}

/// Where the access times of a folder index block's entries lie (fixups undone): each
/// entry with a `$FILE_NAME` key holds one at 0x20 into its key.
fn index_atimes(b: &[u8]) -> Option<Vec<usize>> {
    if b.len() < 0x28 {
        return None;
    }
    let start = 0x18 + u32_at(b, 0x18) as usize;
    let end = (0x18 + u32_at(b, 0x1C) as usize).min(b.len());
    let mut out = Vec::new();
    let mut at = start;
    while at + 0x10 <= end {
        let len = usize::from(u16_at(b, at + 8));
        let key = usize::from(u16_at(b, at + 0x0A));
        let flags = u16_at(b, at + 0x0C);
        if flags & 2 != 0 {
            return Some(out);
        }
        if len < 0x10 || at + len > end {
            return None;
        }
        if key >= 0x42 && at + 0x10 + 0x28 <= end {
            out.push(at + 0x10 + 0x20);
        }
        at += len;
    }
    None
}

/// Where `$STANDARD_INFORMATION`'s access time lies in a raw record; None when the record
/// does not read or the field would cross a sector's end (kept in the update sequence).
fn atime_offset(raw: &[u8]) -> Option<usize> {
    if raw.len() < 48 || &raw[..4] != b"FILE" {
        return None;
    }
    let mut rec = raw.to_vec();
    if !fixup(&mut rec) {
        return None;
    }
    let used = (u32_at(&rec, 0x18) as usize).min(rec.len());
    let mut at = usize::from(u16_at(&rec, 0x14));
    while at + 0x18 <= used {
        let (kind, len) = (u32_at(&rec, at), u32_at(&rec, at + 4) as usize);
        if kind == AT_END || len < 16 || at + len > used {
            return None;
        }
        if kind == 0x10 && rec[at + 8] == 0 {
            let v = at + usize::from(u16_at(&rec, at + 0x14));
            let field = v + 0x18;
            let crosses = (field..field + 8).any(|o| o % 512 >= 510);
            return (field + 8 <= at + len && !crosses).then_some(field);
        }
        at += len;
    }
    None
}

/// The master file table as it lies on the disk: every record's raw bytes.
pub struct Mft {
    pub boot: BootSector,
    /// Where its data lies, in clusters.
    pub runs: Runs,
    pub bytes: Vec<u8>,
}

impl Mft {
    /// Reads the MFT of the volume on `dev`, all the clusters its record 0 maps (more than
    /// its data size: NTFS allocates ahead). None when `dev` holds
    /// no NTFS volume parc can read this way (an MFT whose map spills into other records).
    pub fn read(dev: &File) -> io::Result<Option<Self>> {
        let Some(boot) = BootSector::read(dev)? else {
            return Ok(None);
        };
        let mut first = vec![0u8; boot.record_size as usize];
        dev.read_exact_at(&mut first, boot.mft_lcn * boot.cluster)?;
        let Some((runs, size)) = FileRecord::parse(&first).and_then(|r| r.data_runs()) else {
            return Ok(None);
        };
        // All of it: the records past its data size are in the volume's used clusters too
        // (what a capture reads), and new files take them.
        let mapped: u64 = runs.iter().map(|r| r.1).sum::<u64>() * boot.cluster;
        if size > mapped || mapped % boot.record_size != 0 || mapped > 16 << 30 {
            return Ok(None);
        }
        Ok(Some(Self::read_at(dev, boot, runs, mapped)?))
    }

    /// Reads `size` bytes of MFT from `runs` (an MFT as another deploy mapped it).
    pub fn read_at(dev: &File, boot: BootSector, runs: Runs, size: u64) -> io::Result<Self> {
        let mut bytes = vec![0u8; size as usize];
        let mut done = 0usize;
        for &(lcn, n) in &runs {
            if done == bytes.len() {
                break;
            }
            let take = ((n * boot.cluster) as usize).min(bytes.len() - done);
            dev.read_exact_at(&mut bytes[done..done + take], lcn * boot.cluster)?;
            done += take;
        }
        if done < bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the MFT's map is shorter than the MFT",
            ));
        }
        Ok(Self { boot, runs, bytes })
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / self.boot.record_size as usize
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn record(&self, i: usize) -> &[u8] {
        let s = self.boot.record_size as usize;
        &self.bytes[i * s..(i + 1) * s]
    }

    /// The volume cluster holding byte `i * record_size` of the MFT.
    pub fn cluster_of(&self, i: usize) -> Option<u64> {
        let mut at = i as u64 * self.boot.record_size / self.boot.cluster;
        for &(lcn, n) in &self.runs {
            if at < n {
                return Some(lcn + at);
            }
            at -= n;
        }
        None
    }
}

/// The record number `path` (names from the root folder, compared without case for ASCII
/// letters) leads to on the volume on `dev`, scanning each folder's index (its root and
/// every block). None when a name is not there, or the volume does not read this way.
pub fn find_path(dev: &File, path: &[&str]) -> io::Result<Option<u64>> {
    let Some(boot) = BootSector::read(dev)? else {
        return Ok(None);
    };
    let mut first = vec![0u8; boot.record_size as usize];
    dev.read_exact_at(&mut first, boot.mft_lcn * boot.cluster)?;
    let Some((mft, _)) = FileRecord::parse(&first).and_then(|r| r.data_runs()) else {
        return Ok(None);
    };
    let record = |i: u64| -> io::Result<Option<FileRecord>> {
        let mut raw = vec![0u8; boot.record_size as usize];
        let mut at = i * boot.record_size;
        for &(lcn, n) in &mft {
            if at < n * boot.cluster {
                if boot.record_size > boot.cluster {
                    return Ok(None);
                }
                dev.read_exact_at(&mut raw, lcn * boot.cluster + at)?;
                return Ok(FileRecord::parse(&raw).filter(|r| r.in_use));
            }
            at -= n * boot.cluster;
        }
        Ok(None)
    };
    let mut dir = 5u64;
    for name in path {
        let Some(r) = record(dir)? else {
            return Ok(None);
        };
        let Some(root) = &r.index_root else {
            return Ok(None);
        };
        let mut found = root.get(0x10..).and_then(|h| find_entry(h, name));
        if found.is_none() && root.len() >= 12 {
            let block = u32_at(root, 8) as usize;
            let runs: Runs = r
                .extents
                .iter()
                .filter(|e| e.kind == 0xA0)
                .flat_map(|e| e.runs.iter().copied())
                .collect();
            let mut bytes = Vec::new();
            for &(lcn, n) in &runs {
                let mut b = vec![0u8; (n * boot.cluster) as usize];
                dev.read_exact_at(&mut b, lcn * boot.cluster)?;
                bytes.extend(b);
            }
            if (512..=65536).contains(&block) {
                found = bytes.chunks_exact_mut(block).find_map(|b| {
                    (&b[..4] == b"INDX" && fixup(b))
                        .then(|| find_entry(&b[0x18..], name))
                        .flatten()
                });
            }
        }
        match found {
            Some(r) => dir = r,
            None => return Ok(None),
        }
    }
    Ok(Some(dir))
}

/// The file an index node (from its `INDEX_HEADER`) names `name`.
fn find_entry(h: &[u8], name: &str) -> Option<u64> {
    let start = u32_at(h, 0) as usize;
    let end = (u32_at(h, 4) as usize).min(h.len());
    let want: Vec<u16> = name.encode_utf16().map(upper).collect();
    let mut at = start;
    while at + 0x10 <= end {
        let len = usize::from(u16_at(h, at + 8));
        let key = usize::from(u16_at(h, at + 0x0A));
        if u16_at(h, at + 0x0C) & 2 != 0 || len < 0x10 || at + len > end {
            return None;
        }
        if let Some(k) = h.get(at + 0x10..at + 0x10 + key).filter(|_| key >= 0x42) {
            let n = usize::from(k[0x40]);
            if let Some(units) = k.get(0x42..0x42 + 2 * n) {
                let same = n == want.len()
                    && units
                        .chunks_exact(2)
                        .zip(&want)
                        .all(|(c, w)| upper(u16::from_le_bytes([c[0], c[1]])) == *w);
                if same {
                    return Some(u64_at(h, at) & 0xFFFF_FFFF_FFFF);
                }
            }
        }
        at += len;
    }
    None
}

fn upper(c: u16) -> u16 {
    if (u16::from(b'a')..=u16::from(b'z')).contains(&c) {
        c - 32
    } else {
        c
    }
}

/// Whether the `$LogFile` whose first bytes are `head` (at least its two restart pages)
/// says the volume was shut down cleanly: a log reset (all 0xFF, as mkntfs and ntfs-3g
/// leave it), or a restart area with no client in use or flagged clean. Windows switched
/// off running, or hibernated, leaves a log to replay: what the MFT says may not be all
/// that was written.
pub fn log_is_clean(head: &[u8]) -> bool {
    if head.len() < 8192 {
        return false;
    }
    let mut newest: Option<(u64, bool)> = None;
    let mut page_size = 4096usize;
    let mut at = 0usize;
    for _ in 0..2 {
        let Some(p) = head.get(at..at + 4096.min(head.len() - at)) else {
            break;
        };
        if p.iter().all(|&b| b == 0xFF) {
            at += page_size;
            continue;
        }
        if &p[..4] != b"RSTR" && &p[..4] != b"CHKD" {
            return false;
        }
        if &p[..4] == b"CHKD" {
            return false;
        }
        let sys = u32_at(p, 0x10) as usize;
        if (512..=65536).contains(&sys) && sys.is_power_of_two() {
            page_size = sys;
        }
        let ra = usize::from(u16_at(p, 0x18));
        if ra + 0x10 > 510 {
            return false;
        }
        let lsn = u64_at(p, ra);
        let in_use = u16_at(p, ra + 0x0C);
        let flags = u16_at(p, ra + 0x0E);
        let clean = in_use == 0xFFFF || flags & 0x0002 != 0;
        if newest.is_none_or(|(l, _)| lsn >= l) {
            newest = Some((lsn, clean));
        }
        at += page_size;
    }
    newest.is_none_or(|(_, clean)| clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lists_decode_with_negative_and_sparse_runs() {
        // 0x18 clusters at 0x5634, then 0x10 at 0x5634 - 0x100, a sparse 8, then 4 more.
        let b = [
            0x21, 0x18, 0x34, 0x56, 0x21, 0x10, 0x00, 0xFF, 0x01, 0x08, 0x11, 0x04, 0x10, 0x00,
        ];
        assert_eq!(
            decode_runs(&b),
            Some(vec![(0x5634, 0x18), (0x5534, 0x10), (0x5544, 4)])
        );
        assert_eq!(decode_runs(&[0x21, 0x18]), None, "cut short");
        assert_eq!(
            decode_runs(&[0x31, 0x01, 0xFF, 0xFF, 0xFF]),
            None,
            "before 0"
        );
    }

    #[test]
    fn fixups_restore_sector_ends_and_catch_torn_writes() {
        let mut rec = vec![0u8; 1024];
        rec[..4].copy_from_slice(b"FILE");
        rec[4..6].copy_from_slice(&0x30u16.to_le_bytes());
        rec[6..8].copy_from_slice(&3u16.to_le_bytes());
        rec[0x30..0x36].copy_from_slice(&[7, 0, 0xAA, 0xBB, 0xCC, 0xDD]);
        rec[510..512].copy_from_slice(&[7, 0]);
        rec[1022..1024].copy_from_slice(&[7, 0]);
        let mut ok = rec.clone();
        assert!(fixup(&mut ok));
        assert_eq!(
            (&ok[510..512], &ok[1022..1024]),
            (&[0xAA, 0xBB][..], &[0xCC, 0xDD][..])
        );
        rec[1022] = 8;
        assert!(!fixup(&mut rec), "a torn sector");
    }

    /// A folder's index block with `names` entries (fixups applied, sequence number `usn`).
    fn index_block(names: usize, usn: u16, lsn: u64, atime: u64) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"INDX");
        b[4..6].copy_from_slice(&0x28u16.to_le_bytes());
        b[6..8].copy_from_slice(&9u16.to_le_bytes());
        b[8..16].copy_from_slice(&lsn.to_le_bytes());
        let mut at = 0x40;
        for k in 0..names {
            b[at..at + 8].copy_from_slice(&(64 + k as u64).to_le_bytes());
            b[at + 8..at + 10].copy_from_slice(&0x68u16.to_le_bytes());
            b[at + 0x0A..at + 0x0C].copy_from_slice(&0x52u16.to_le_bytes());
            b[at + 0x30..at + 0x38].copy_from_slice(&(atime + k as u64).to_le_bytes());
            b[at + 0x50] = 8; // name length
            at += 0x68;
        }
        b[at + 8..at + 10].copy_from_slice(&0x10u16.to_le_bytes());
        b[at + 0x0C..at + 0x0E].copy_from_slice(&2u16.to_le_bytes());
        let used = (at + 0x10 - 0x18) as u32;
        b[0x18..0x1C].copy_from_slice(&0x28u32.to_le_bytes());
        b[0x1C..0x20].copy_from_slice(&used.to_le_bytes());
        b[0x20..0x24].copy_from_slice(&(4096u32 - 0x18).to_le_bytes());
        assert!(protect(&mut b, usn));
        b
    }

    #[test]
    fn an_index_block_only_read_is_put_back() {
        // 36 entries over the block's sectors (their last bytes kept in the update sequence).
        let image = index_block(36, 7, 0x1000, 0x01D0_0000_0000_0000);
        let t = IndexTouch::of(&image).expect("an index block");
        assert_eq!(t.atimes.len(), 36);
        assert_eq!((t.usn, t.lsn), (7, 0x1000));
        let read = index_block(36, 8, 0x2000, 0x01D1_0000_0000_0000);
        assert_ne!(read, image);
        assert_eq!(t.apply(&read).as_deref(), Some(&image[..]));
        // An entry more: not the same block.
        assert_eq!(t.apply(&index_block(37, 8, 0x2000, 0)), None);
        assert_eq!(IndexTouch::of(&[0u8; 4096]), None);
    }

    #[test]
    fn paths_are_found_through_folder_indexes() {
        use crate::image::disk::run;
        use std::process::Command;
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("v.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        run(Command::new("mkntfs").args(["-F", "-q", "-f"]).arg(&img)).unwrap();
        let mnt = d.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("ntfs-3g").arg(&img).arg(&mnt)).unwrap();
        let made = (|| -> io::Result<()> {
            // Enough names that both folders' indexes take blocks beyond their root.
            for k in 0..200 {
                std::fs::write(mnt.join(format!("racine-{k:03}.txt")), b"x")?;
            }
            std::fs::create_dir_all(mnt.join("Windows/System32"))?;
            for k in 0..200 {
                std::fs::write(mnt.join(format!("Windows/f-{k:03}.dll")), b"x")?;
            }
            Ok(())
        })();
        run(Command::new("umount").arg(&mnt)).unwrap();
        made.unwrap();
        let f = File::open(&img).unwrap();
        let sys = find_path(&f, &["Windows", "System32"]).unwrap();
        assert!(sys.is_some_and(|r| r >= 24), "{sys:?}");
        assert_eq!(find_path(&f, &["windows", "SYSTEM32"]).unwrap(), sys);
        assert!(find_path(&f, &["racine-150.txt"]).unwrap().is_some());
        assert_eq!(find_path(&f, &["Windows", "System64"]).unwrap(), None);
        assert_eq!(find_path(&f, &["Program Files"]).unwrap(), None);
    }

    #[test]
    fn a_reset_log_is_clean_and_a_log_in_use_is_not() {
        assert!(log_is_clean(&[0xFF; 8192]));
        let mut page = vec![0u8; 8192];
        page[..4].copy_from_slice(b"RSTR");
        page[0x10..0x14].copy_from_slice(&4096u32.to_le_bytes());
        page[0x18..0x1A].copy_from_slice(&0x30u16.to_le_bytes());
        page[0x30 + 0x0C..0x30 + 0x0E].copy_from_slice(&0u16.to_le_bytes());
        page[4096..].fill(0xFF);
        assert!(!log_is_clean(&page), "a client in use, not flagged clean");
        page[0x30 + 0x0E] = 0x02;
        assert!(log_is_clean(&page), "flagged clean");
        page[0x30 + 0x0E] = 0;
        page[0x30 + 0x0C..0x30 + 0x0E].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(log_is_clean(&page), "no client");
        page[..4].copy_from_slice(b"RCRD");
        assert!(!log_is_clean(&page), "not a restart page");
    }
}
