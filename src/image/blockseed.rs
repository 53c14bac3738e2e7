//! A block partition's current volume as a seed of chunks, for incremental deploys of NTFS
//! images: the volume a workstation holds (its last deploy plus what Windows changed since)
//! is read by partclone as a capture reads it, and the stream is cut with the image's chunk
//! parameters. Unchanged clusters give the same bytes in the same order (partclone 0.3's
//! checksums restart every group of blocks, so a change only alters its own group's), so
//! most of the image's chunks are found. As [`super::seed::TreeSeed`] does for trees, only
//! where each chunk's bytes are is kept: partclone's header and bitmap and the groups'
//! checksums in memory, block data as places on the partition. A chunk read back is checked
//! against its digest: the restore writing the partition meanwhile costs a fetch, never a
//! wrong byte.
//!
//! The partclone image format 0002: a 110-byte header, the bitmap of used blocks (one bit a
//! block, lowest bit first) and its 4-byte CRC, then the used blocks in order with a checksum
//! after every `blocks_per_checksum` blocks and after the last ones.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Stdio;

use sha2::{Digest, Sha256};

use super::capture::block_capture_command;
use super::chunks::{ChunkParams, ChunkRef};
use super::manifest::Filesystem;
use super::seed::{ChunkSeed, Place, cut};

const HEADER: usize = 110;

/// Where the bytes of a partclone stream come from.
#[derive(Debug)]
pub(super) struct Layout {
    /// Header, bitmap and bitmap CRC.
    pub(super) head_len: u64,
    pub(super) block: u64,
    per_sum: u64,
    sum_size: u64,
    /// Blocks in the stream (bits set in the bitmap).
    used: u64,
    /// Runs of used blocks: (index of the first in the stream, its block on the volume).
    runs: Vec<(u64, u64)>,
    len: u64,
}

enum Spot {
    Head { at: u64, left: u64 },
    Block { on_disk: u64, left: u64 },
    Sum { at: u64, left: u64 },
}

impl Layout {
    /// The layout of a stream whose header and bitmap are `head` (at least the header);
    /// None when `head` is not a partclone 0002 image parc can seed from, or is too short
    /// yet (`Err(needed)`: the bytes the header and bitmap take).
    pub(super) fn parse(head: &[u8]) -> Result<Option<Layout>, usize> {
        if head.len() < HEADER {
            return Err(HEADER);
        }
        let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
        if &head[..16] != b"partclone-image\0" || &head[30..34] != b"0002" || u16_at(34) != 0xC0DE {
            return Ok(None);
        }
        let total = u64_at(60);
        let block = u64::from(u32_at(84));
        let (sum_size, per_sum) = (u64::from(u16_at(98)), u64::from(u32_at(100)));
        // Bitmap mode 1: one bit a block. Anything else, or absurd sizes: not seeded.
        if head[105] != 1 || !(512..=1 << 20).contains(&block) || total > 1 << 40 {
            return Ok(None);
        }
        if sum_size > 0 && per_sum == 0 {
            return Ok(None);
        }
        let bitmap = total.div_ceil(8) as usize;
        let head_len = HEADER + bitmap + 4;
        if head.len() < head_len {
            return Err(head_len);
        }
        let bits = &head[HEADER..HEADER + bitmap];
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut used = 0u64;
        let mut last = None;
        for (i, &byte) in bits.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            for k in 0..8 {
                let b = i as u64 * 8 + k;
                if b < total && byte >> k & 1 == 1 {
                    if last != Some(b.wrapping_sub(1)) {
                        runs.push((used, b));
                    }
                    last = Some(b);
                    used += 1;
                }
            }
        }
        let groups = if sum_size == 0 {
            0
        } else {
            used.div_ceil(per_sum)
        };
        Ok(Some(Layout {
            head_len: head_len as u64,
            block,
            per_sum: if sum_size == 0 { u64::MAX } else { per_sum },
            sum_size,
            used,
            runs,
            len: head_len as u64 + used * block + groups * sum_size,
        }))
    }

    /// Where volume block `b` starts in the stream; None when the bitmap says it is unused
    /// (not in the stream).
    pub(super) fn block_pos(&self, b: u64) -> Option<u64> {
        let k = self
            .runs
            .partition_point(|&(_, b0)| b0 <= b)
            .checked_sub(1)?;
        let (i0, b0) = self.runs[k];
        let end = self.runs.get(k + 1).map_or(self.used, |r| r.0);
        let index = i0 + (b - b0);
        if index >= end {
            return None;
        }
        let sums = if self.sum_size == 0 {
            0
        } else {
            index / self.per_sum * self.sum_size
        };
        Some(self.head_len + index * self.block + sums)
    }

    /// Where on the volume bytes `pos..pos + len` of the stream lie, as (byte, length)
    /// pieces; None when some of them are partclone's (header, bitmap, checksums).
    pub(super) fn on_disk(&self, pos: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut done = 0;
        while done < len {
            let Spot::Block { on_disk, left } = self.spot(pos + done) else {
                return None;
            };
            let n = left.min(len - done);
            match out.last_mut() {
                Some(last) if last.0 + last.1 == on_disk => last.1 += n,
                _ => out.push((on_disk, n)),
            }
            done += n;
        }
        Some(out)
    }

    fn spot(&self, pos: u64) -> Spot {
        if pos < self.head_len {
            return Spot::Head {
                at: pos,
                left: self.head_len - pos,
            };
        }
        let q = pos - self.head_len;
        let group = self.per_sum.saturating_mul(self.block) + self.sum_size;
        let (g, r) = (q / group, q % group);
        let first = g.saturating_mul(self.per_sum);
        let n = self.per_sum.min(self.used - first);
        if r < n * self.block {
            let index = first + r / self.block;
            let k = self.runs.partition_point(|&(i, _)| i <= index) - 1;
            let (i0, b0) = self.runs[k];
            let at = r % self.block;
            Spot::Block {
                on_disk: (b0 + index - i0) * self.block + at,
                left: self.block - at,
            }
        } else {
            let at = r - n * self.block;
            Spot::Sum {
                at: g * self.sum_size + at,
                left: self.sum_size - at,
            }
        }
    }
}

/// Reads partclone's stream through, keeping its header, bitmap and checksums.
struct Tap<R> {
    inner: R,
    pos: u64,
    head: Vec<u8>,
    layout: Option<Option<Layout>>,
    sums: Vec<u8>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut done = 0;
        while done < n {
            let pos = self.pos + done as u64;
            let rest = &buf[done..n];
            let Some(layout) = &self.layout else {
                // Still in the header or bitmap: keep bytes until the layout is known.
                let want = match Layout::parse(&self.head) {
                    Err(need) => need,
                    Ok(l) => {
                        self.layout = Some(l);
                        continue;
                    }
                };
                let k = (want - self.head.len()).min(rest.len());
                self.head.extend_from_slice(&rest[..k]);
                done += k;
                if self.head.len() == want {
                    if let Ok(l) = Layout::parse(&self.head) {
                        self.layout = Some(l);
                    }
                }
                continue;
            };
            let Some(layout) = layout else {
                // Not a stream to seed from: read through.
                break;
            };
            done += match layout.spot(pos) {
                Spot::Head { left, .. } | Spot::Block { left, .. } => left.min(rest.len() as u64),
                Spot::Sum { left, .. } => {
                    let k = left.min(rest.len() as u64) as usize;
                    self.sums.extend_from_slice(&rest[..k]);
                    k as u64
                }
            } as usize;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A block partition's volume as a seed of chunks.
pub struct BlockSeed {
    dev: File,
    layout: Layout,
    head: Vec<u8>,
    sums: Vec<u8>,
    chunks: HashMap<[u8; 32], Place>,
}

impl BlockSeed {
    /// Reads the `fs` volume on `dev` (not mounted) with partclone and cuts the stream with
    /// `params`. None when partclone cannot read it (no such volume, a damaged one).
    pub fn scan(fs: Filesystem, dev: &Path, params: ChunkParams) -> io::Result<Option<Self>> {
        let mut cmd = block_capture_command(fs, dev)?;
        // A volume flagged for a check (ntfsresize flags the one it grew; Windows clears it
        // at its first boot) still seeds: whatever is read is checked chunk by chunk.
        cmd.arg("--ignore_fschk");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut tap = Tap {
            inner: child.stdout.take().expect("piped"),
            pos: 0,
            head: Vec::new(),
            layout: None,
            sums: Vec::new(),
        };
        let chunks = cut(&mut tap, params);
        drop(tap.inner);
        let status = child.wait()?;
        let chunks = chunks?;
        let Some(Some(layout)) = tap.layout else {
            return Ok(None);
        };
        if !status.success() || tap.pos != layout.len {
            return Ok(None);
        }
        Ok(Some(BlockSeed {
            dev: File::open(dev)?,
            layout,
            head: tap.head,
            sums: tap.sums,
            chunks,
        }))
    }

    /// Bytes of the scanned stream.
    pub fn stream_len(&self) -> u64 {
        self.layout.len
    }
}

impl ChunkSeed for BlockSeed {
    fn has(&self, c: &ChunkRef) -> bool {
        self.chunks.get(&c.digest).is_some_and(|p| p.len == c.len)
    }

    fn read(&mut self, c: &ChunkRef) -> io::Result<Option<Vec<u8>>> {
        let Some(place) = self.chunks.get(&c.digest).copied() else {
            return Ok(None);
        };
        if place.len != c.len {
            return Ok(None);
        }
        let mut buf = vec![0u8; c.len as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let want = (buf.len() - done) as u64;
            let to = &mut buf[done..];
            done += match self.layout.spot(place.offset + done as u64) {
                Spot::Head { at, left } => {
                    let n = want.min(left) as usize;
                    to[..n].copy_from_slice(&self.head[at as usize..at as usize + n]);
                    n
                }
                Spot::Sum { at, left } => {
                    let n = want.min(left) as usize;
                    to[..n].copy_from_slice(&self.sums[at as usize..at as usize + n]);
                    n
                }
                Spot::Block { on_disk, left } => {
                    let n = want.min(left) as usize;
                    self.dev.read_exact_at(&mut to[..n], on_disk)?;
                    n
                }
            };
        }
        if Sha256::digest(&buf)[..] != c.digest {
            return Ok(None);
        }
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::disk::run;
    use crate::image::testdata::noise;
    use std::process::Command;

    /// A partclone stream of a small NTFS volume with files, as bytes.
    fn ntfs_volume(dir: &Path) -> std::path::PathBuf {
        let img = dir.join("v.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        run(Command::new("mkntfs").args(["-F", "-q", "-f"]).arg(&img)).unwrap();
        img
    }

    #[test]
    fn every_chunk_of_the_volume_reads_back_from_the_partition() {
        if which("mkntfs").is_none() || which("partclone.ntfs").is_none() {
            panic!(
                "mkntfs and partclone.ntfs are needed (scripts/ensure-packages.sh ntfs-3g partclone)"
            );
        }
        let d = tempfile::tempdir().unwrap();
        let img = ntfs_volume(d.path());
        // Some data in the volume, written with ntfsprogs (no mount needed).
        let f = d.path().join("data");
        std::fs::write(&f, noise(7, 3 << 20)).unwrap();
        run(Command::new("ntfscp")
            .arg("-f")
            .arg(&img)
            .arg(&f)
            .arg("data.bin"))
        .unwrap();
        let params = crate::image::testdata::SMALL;
        let s = crate::image::testdata::partclone_stream(&img);
        let mut seed = BlockSeed::scan(Filesystem::Ntfs, &img, params)
            .unwrap()
            .expect("an NTFS volume seeds");
        assert_eq!(seed.stream_len(), s.len() as u64);
        let mut n = 0;
        for c in fastcdc::v2020::StreamCDC::new(&s[..], 1024, 4096, 16384) {
            let c = c.unwrap();
            let r = ChunkRef {
                digest: Sha256::digest(&c.data).into(),
                len: c.length as u32,
            };
            assert!(seed.has(&r));
            let back = seed.read(&r).unwrap();
            assert!(
                back.as_deref() == Some(&c.data[..]),
                "chunk at {}",
                c.offset
            );
            n += 1;
        }
        assert!(n > 500, "{n} chunks");
        // A chunk whose blocks changed on the partition since is not handed out.
        let data = noise(7, 3 << 20);
        let c = fastcdc::v2020::StreamCDC::new(&s[..], 1024, 4096, 16384)
            .map(|c| c.unwrap())
            .find(|c| {
                // Data of the file written (unique: its first place is here).
                let d: [u8; 32] = Sha256::digest(&c.data).into();
                c.offset > seed.layout.head_len && seed.chunks[&d].offset == c.offset && {
                    let probe = &c.data[..64.min(c.data.len())];
                    data.windows(64).any(|w| w == probe)
                }
            })
            .unwrap();
        let r = ChunkRef {
            digest: Sha256::digest(&c.data).into(),
            len: c.length as u32,
        };
        let Spot::Block { on_disk, .. } = seed.layout.spot(c.offset + 100) else {
            panic!("not in a block");
        };
        let dev = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        dev.write_all_at(b"changed", on_disk).unwrap();
        assert!(
            seed.read(&r).unwrap().is_none(),
            "a changed chunk read back"
        );
        // Not a partclone volume: no seed.
        let blank = d.path().join("blank");
        File::create(&blank).unwrap().set_len(8 << 20).unwrap();
        assert!(
            BlockSeed::scan(Filesystem::Ntfs, &blank, params)
                .unwrap()
                .is_none()
        );
    }

    fn which(tool: &str) -> Option<std::path::PathBuf> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
    }
}
