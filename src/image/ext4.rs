//! An ext4 filesystem's inodes read from its device, as the kernel keeps them: what a
//! reimage compares with the record of the last deploy ([`super::record`]) without looking
//! each path up. Reading the inode tables in block order costs a few large reads where
//! `lstat` on every path costs one small read per inode table block, in path order.
//!
//! Only what `stat` shows and a record holds is decoded: mode, size, change time (seconds with
//! the extra epoch bits, nanoseconds) and whether the inode is in use. Layouts this does not
//! read (a `meta_bg` descriptor table, block sizes over 64 KiB) give `None`: the caller walks
//! the tree instead.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::record::Stamp;

const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const BG_INODE_UNINIT: u16 = 0x1;
/// Inode table bytes between two wanted inodes below which one read takes both.
const GAP: u64 = 256 << 10;
/// The largest single read.
const MAX_READ: u64 = 8 << 20;

/// The inode tables of one ext4 filesystem.
pub struct InodeTables {
    dev: File,
    block: u64,
    inodes_per_group: u64,
    inode_size: u64,
    inodes_count: u64,
    /// Per block group: the first block of its inode table, and whether its inodes were never
    /// used (`INODE_UNINIT`).
    groups: Vec<(u64, bool)>,
}

impl InodeTables {
    /// The inode tables of the ext4 filesystem on `dev`; None when there is none, or it is
    /// laid out in a way this does not read.
    pub fn open(dev: &Path) -> io::Result<Option<Self>> {
        let dev = File::open(dev)?;
        let mut sb = [0u8; 1024];
        dev.read_exact_at(&mut sb, 1024)?;
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([sb[o], sb[o + 1]]));
        let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
        if u16_at(0x38) != 0xEF53 || u32_at(0x4C) == 0 {
            return Ok(None);
        }
        let log = u32_at(0x18);
        let incompat = u32_at(0x60);
        if log > 6 || incompat & INCOMPAT_META_BG != 0 {
            return Ok(None);
        }
        let block = 1024u64 << log;
        let wide = incompat & INCOMPAT_64BIT != 0;
        let blocks_hi = if wide { u64::from(u32_at(0x150)) } else { 0 };
        let blocks = (blocks_hi << 32) | u64::from(u32_at(0x4));
        let first_data_block = u64::from(u32_at(0x14));
        let blocks_per_group = u64::from(u32_at(0x20));
        let inodes_per_group = u64::from(u32_at(0x28));
        let inode_size = u16_at(0x58);
        let desc_size = if wide { u16_at(0xFE) } else { 32 };
        if blocks_per_group == 0
            || inodes_per_group == 0
            || !(128..=block).contains(&inode_size)
            || !inode_size.is_power_of_two()
            || desc_size < 32
            || (wide && desc_size < 64)
        {
            return Ok(None);
        }
        let count = (blocks - first_data_block).div_ceil(blocks_per_group);
        let mut table = vec![0u8; (count * desc_size) as usize];
        dev.read_exact_at(&mut table, (first_data_block + 1) * block)?;
        let groups = table
            .chunks_exact(desc_size as usize)
            .map(|d| {
                let lo = u64::from(u32::from_le_bytes(d[8..12].try_into().expect("4 bytes")));
                let hi = if wide {
                    u64::from(u32::from_le_bytes(
                        d[0x28..0x2C].try_into().expect("4 bytes"),
                    ))
                } else {
                    0
                };
                let flags = u16::from_le_bytes([d[0x12], d[0x13]]);
                ((hi << 32) | lo, flags & BG_INODE_UNINIT != 0)
            })
            .collect();
        Ok(Some(Self {
            dev,
            block,
            inodes_per_group,
            inode_size,
            inodes_count: u64::from(u32_at(0x0)),
            groups,
        }))
    }

    /// The stamps of inodes `inos` (any order, repeats allowed); an inode not in use, or
    /// not of this filesystem, is absent from the map.
    pub fn stamps(&self, inos: &[u64]) -> io::Result<HashMap<u64, Stamp>> {
        // Where each inode is, in table order.
        let mut at: Vec<(u64, u64)> = inos
            .iter()
            .filter(|&&n| n >= 1 && n <= self.inodes_count)
            .filter_map(|&n| {
                let (g, i) = (
                    (n - 1) / self.inodes_per_group,
                    (n - 1) % self.inodes_per_group,
                );
                match self.groups.get(g as usize) {
                    Some(&(table, false)) if table > 0 => {
                        Some((table * self.block + i * self.inode_size, n))
                    }
                    _ => None,
                }
            })
            .collect();
        at.sort_unstable();
        at.dedup();
        let mut out = HashMap::with_capacity(at.len());
        let mut buf = Vec::new();
        let mut k = 0;
        while k < at.len() {
            // One read: the following inodes close enough and under the size limit.
            let start = at[k].0;
            let mut end = start + self.inode_size;
            let mut j = k + 1;
            while j < at.len()
                && at[j].0 <= end + GAP
                && at[j].0 + self.inode_size - start <= MAX_READ
            {
                end = at[j].0 + self.inode_size;
                j += 1;
            }
            buf.resize((end - start) as usize, 0);
            self.dev.read_exact_at(&mut buf, start)?;
            for &(off, n) in &at[k..j] {
                let o = (off - start) as usize;
                if let Some(s) = decode(n, &buf[o..o + self.inode_size as usize]) {
                    out.insert(n, s);
                }
            }
            k = j;
        }
        Ok(out)
    }
}

/// What `lstat` shows of inode `n` (`raw`: its on-disk bytes), None when it is not in use.
fn decode(n: u64, raw: &[u8]) -> Option<Stamp> {
    let u16_at = |o: usize| u16::from_le_bytes([raw[o], raw[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().expect("4 bytes"));
    let mode = u16_at(0x0);
    let links = u16_at(0x1A);
    if mode == 0 || links == 0 {
        return None;
    }
    let size = (u64::from(u32_at(0x6C)) << 32) | u64::from(u32_at(0x4));
    // The kernel's ext4_decode_extra_time: the low two bits of the extra word widen the
    // seconds, the rest are nanoseconds; present when the inode's extra space holds it.
    let extra_isize = if raw.len() > 128 {
        usize::from(u16_at(0x80))
    } else {
        0
    };
    let extra = if 128 + extra_isize >= 0x88 && raw.len() >= 0x88 {
        u32_at(0x84)
    } else {
        0
    };
    let ctime = i64::from(u32_at(0xC) as i32) + ((i64::from(extra & 3)) << 32);
    Some(Stamp {
        ino: n,
        ctime,
        ctime_nsec: i64::from(extra >> 2),
        size,
        mode: u32::from(mode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(mode: u16, links: u16, size: u64, ctime: u32, extra: u32) -> Vec<u8> {
        let mut r = vec![0u8; 256];
        r[0..2].copy_from_slice(&mode.to_le_bytes());
        r[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        r[0xC..0x10].copy_from_slice(&ctime.to_le_bytes());
        r[0x1A..0x1C].copy_from_slice(&links.to_le_bytes());
        r[0x6C..0x70].copy_from_slice(&((size >> 32) as u32).to_le_bytes());
        r[0x80..0x82].copy_from_slice(&32u16.to_le_bytes());
        r[0x84..0x88].copy_from_slice(&extra.to_le_bytes());
        r
    }

    #[test]
    fn an_inode_reads_as_stat_shows_it() {
        let r = inode(
            0o100644,
            1,
            (5 << 32) + 7,
            1_700_000_000,
            (123_456_789 << 2) | 1,
        );
        let s = decode(12, &r).unwrap();
        assert_eq!(s.ino, 12);
        assert_eq!(s.mode, 0o100644);
        assert_eq!(s.size, (5 << 32) + 7);
        assert_eq!(s.ctime, 1_700_000_000 + (1 << 32));
        assert_eq!(s.ctime_nsec, 123_456_789);
        // Before 1970, no epoch bits.
        let s = decode(12, &inode(0o100644, 1, 0, (-5i32) as u32, 0)).unwrap();
        assert_eq!(s.ctime, -5);
        // A 128-byte inode has no nanoseconds.
        let s = decode(12, &inode(0o100644, 1, 0, 9, 4 << 2)[..128]).unwrap();
        assert_eq!((s.ctime, s.ctime_nsec), (9, 0));
        // Free inodes.
        assert_eq!(decode(12, &inode(0, 0, 0, 9, 0)), None);
        assert_eq!(decode(12, &inode(0o100644, 0, 0, 9, 0)), None);
    }
}
