//! The incremental deploy of a chunked file stream onto a filesystem that already holds most
//! of it (a reimage, or a deploy cut short and started again), as desync seeds from the
//! target: the existing tree is serialised as the image's stream would be and cut with the
//! image's chunk parameters ([`TreeSeed`]); only the chunks it lacks are fetched; the stream
//! rebuilt from both, every chunk checked against its digest, is synced onto the tree in
//! place ([`sync_tree`]), which rewrites only what differs.
//!
//! The result is the tree a full deploy gives: the index is checked against the manifest's
//! digest and every chunk against the index, so the bytes synced are the image's stream.
//! A deploy cut at any point leaves a filesystem the next try seeds from: what was written
//! and verified is not fetched again.

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::thread;

use sha2::{Digest, Sha256};

use super::blockseed::BlockSeed;
use super::chunks::{ChunkIndex, ChunkRef, decode_chunk};
use super::deploy::restore_blocks;
use super::error::{ImageError, ImageResult};
use super::ext4::InodeTables;
use super::hashing::digest_string;
use super::manifest::{Filesystem, Partition, StreamInfo};
use super::pipe::ChunkReader;
use super::pipe::chunk_pipe;
use super::progress::Progress;
use super::record::{DeployRecord, Listing, Recorded, compare_record, restore_recorded};
use super::seed::{ChunkSeed, TreeSeed};
use super::sync::{SyncStats, sync_listed};
use super::unpack::UnpackOptions;

/// Fetches a chunked stream piece by piece (HTTP in the agent, the store's folder locally).
pub trait ChunkFetcher: Send {
    /// The bytes of stream `s`'s index file (checked by the caller).
    fn index(&mut self, s: &StreamInfo) -> io::Result<Vec<u8>>;
    /// Starts fetching the stored (zstd) files of `chunks`, and yields them in that order.
    fn fetch(
        &mut self,
        chunks: Vec<ChunkRef>,
    ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>;
}

/// What an incremental restore took from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Uncompressed bytes of the stream found on the target.
    pub seeded_bytes: u64,
    /// Chunks fetched, and their stored (compressed) bytes: what crossed the network.
    pub fetched_chunks: u64,
    pub fetched_bytes: u64,
    pub sync: SyncStats,
    /// Whether the record of the last deploy told what changed (no unchanged file read).
    pub recorded: bool,
}

/// Whether partition `p`'s filesystem on `dev` can be synced in place instead of made anew:
/// an ext4 filesystem that fills the partition as mkfs would, with the manifest's UUID and
/// label when the manifest names them, and that `e2fsck -p` finds sound. Anything else (a blank disk, a damaged filesystem, another layout) gets a fresh
/// filesystem and the whole stream. Which files it holds does not matter: what it lacks is
/// fetched, what it has is checked chunk by chunk.
/// Returns its superblock when it can.
pub fn can_seed(dev: &Path, len: u64, p: &Partition) -> Option<Superblock> {
    if p.filesystem != Filesystem::Ext4 {
        return None;
    }
    let Ok(Some(mut sb)) = read_ext4_superblock(dev) else {
        return None;
    };
    // mkfs may leave a last partial block group out; a filesystem much smaller than its
    // partition was made for another layout.
    if sb.bytes > len || len - sb.bytes > 16 << 20 {
        return None;
    }
    if p.fs_uuid
        .as_deref()
        .is_some_and(|u| !sb.uuid.eq_ignore_ascii_case(u))
        || p.fs_label.as_deref().is_some_and(|l| sb.label != l)
    {
        return None;
    }
    let e2fsck = |extra: &[&str]| {
        Command::new("e2fsck")
            .arg("-p")
            .args(extra)
            .arg(dev)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.code())
    };
    // A workstation switched off running leaves a journal to replay: the kernel's own
    // writes, which keep the deploy record true. Replayed first, so that what the check
    // then corrects (exit 1) is only what went wrong.
    let _ = e2fsck(&["-E", "journal_only"]);
    // 0: clean, 1: errors corrected. More is a filesystem not to build on.
    match e2fsck(&[]) {
        Ok(Some(0)) => Some(sb),
        // What e2fsck changed in inodes it did not stamp: no record holds.
        Ok(Some(1)) => {
            sb.checked_clean = false;
            Some(sb)
        }
        _ => None,
    }
}

/// What parc reads of an ext4 superblock.
#[derive(Debug, PartialEq, Eq)]
pub struct Superblock {
    pub bytes: u64,
    pub uuid: String,
    pub label: String,
    /// When mkfs made it (seconds since the epoch): a deploy record is of one filesystem.
    pub made: u64,
    /// Bytes of an inode: 256 and more keep nanoseconds in their times.
    pub inode_size: u16,
    /// False when `e2fsck` had to correct it.
    pub checked_clean: bool,
}

impl Superblock {
    /// Whether a deploy record of this filesystem can be trusted: made by this mkfs, times
    /// to the nanosecond, nothing corrected behind the kernel's back.
    pub fn holds(&self, r: &DeployRecord) -> bool {
        r.fs_made == self.made && self.inode_size >= 256 && self.checked_clean
    }
}

/// The superblock of the ext2/3/4 filesystem on `dev`, None when there is none.
pub(super) fn read_ext4_superblock(dev: &Path) -> io::Result<Option<Superblock>> {
    use std::os::unix::fs::FileExt;
    let mut sb = [0u8; 1024];
    std::fs::File::open(dev)?.read_exact_at(&mut sb, 1024)?;
    Ok(parse_superblock(&sb))
}

fn parse_superblock(sb: &[u8; 1024]) -> Option<Superblock> {
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let log = u32_at(0x18);
    if log > 6 {
        return None;
    }
    let block = 1024u64 << log;
    let incompat_64bit = u32_at(0x60) & 0x80 != 0;
    let hi = if incompat_64bit { u32_at(0x150) } else { 0 };
    let blocks = (u64::from(hi) << 32) | u64::from(u32_at(0x4));
    let u = &sb[0x68..0x78];
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&u[0..4]),
        hex::encode(&u[4..6]),
        hex::encode(&u[6..8]),
        hex::encode(&u[8..10]),
        hex::encode(&u[10..16])
    );
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let rev = u32_at(0x4C);
    Some(Superblock {
        bytes: blocks * block,
        uuid,
        label: String::from_utf8_lossy(&name[..end]).into_owned(),
        made: u64::from(u32_at(0x108)),
        checked_clean: true,
        // Revision 0 has 128-byte inodes and no field for it.
        inode_size: if rev == 0 {
            128
        } else {
            u16::from_le_bytes([sb[0x58], sb[0x59]])
        },
    })
}

/// Fetches stream `s`'s index and checks it against the manifest's digest.
pub fn fetch_index(fetcher: &mut dyn ChunkFetcher, s: &StreamInfo) -> ImageResult<ChunkIndex> {
    let want = s
        .index
        .as_ref()
        .ok_or_else(|| ImageError::Invalid(format!("stream {} is not stored as chunks", s.file)))?;
    let text = fetcher
        .index(s)
        .map_err(ImageError::stream(format!("downloading {}", want.file)))?;
    let digest = digest_string(Sha256::new_with_prefix(&text));
    let bad = |detail: String| ImageError::Integrity {
        file: want.file.clone(),
        detail,
    };
    if digest != want.sha256 {
        return Err(bad(format!(
            "received digest {digest}, the manifest says {}",
            want.sha256
        )));
    }
    ChunkIndex::decode(&text).map_err(|e| bad(e.to_string()))
}

/// Syncs the tree mounted at `root` (the filesystem `fs`) to stream `s` (chunked): from the
/// record of its last deploy when there is one that holds ([`super::record`]), else seeding
/// from the whole tree. Returns what it took and the record of the filesystem now.
pub fn restore_incremental(
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    (root, dev, fs): (&Path, &Path, &Superblock),
    last: Option<&DeployRecord>,
    opts: UnpackOptions,
    progress: &Progress,
) -> ImageResult<(Seeded, DeployRecord)> {
    let digest = s.index.as_ref().map(|i| i.sha256.as_str());
    let recorded = last.filter(|r| Some(r.index.as_str()) == digest && fs.holds(r));
    let Some(r) = recorded else {
        let index = fetch_index(fetcher, s)?;
        return restore_whole(fetcher, s, &index, root, fs, opts, progress);
    };
    // The inode tables read from the device, else the tree walked (also when
    // `PARC_RECORD_WALK` is set: the baseline `scripts/bench-store.sh` compares with).
    let tables = match std::env::var_os("PARC_RECORD_WALK") {
        Some(_) => None,
        None => InodeTables::open(dev).ok().flatten(),
    };
    // The index comes over the network and is checked and parsed while the disk is compared
    // with the record (neither needs the other).
    let (index, compared) = std::thread::scope(|sc| {
        let f = &mut *fetcher;
        let index = sc.spawn(move || fetch_index(f, s));
        let compared = compare_record(r, (root, tables.as_ref()), progress);
        (index.join().expect("the index thread panicked"), compared)
    });
    let (index, compared) = (index?, compared?);
    drop(tables);
    match restore_recorded(fetcher, &index, r, compared, root, opts, progress)? {
        Recorded::Done(seeded, now) => Ok((seeded, now)),
        Recorded::Unusable(why) => {
            progress.set_phase(format!(
                "the record of the last deploy cannot be used: {why}"
            ));
            restore_whole(fetcher, s, &index, root, fs, opts, progress)
        }
    }
}

/// Syncs the tree mounted at `root` to stream `s` (chunked) reading all of it as the seed;
/// returns what it took and the record of the filesystem now.
fn restore_whole(
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    index: &ChunkIndex,
    root: &Path,
    fs: &Superblock,
    opts: UnpackOptions,
    progress: &Progress,
) -> ImageResult<(Seeded, DeployRecord)> {
    let digest = &s.index.as_ref().expect("checked by fetch_index").sha256;
    let mut listing = Vec::new();
    let seeded = restore_seeded(fetcher, s, index, root, opts, progress, &mut listing)?;
    let now = DeployRecord::take(root, digest, fs.made, listing).map_err(ImageError::io(root))?;
    Ok((seeded, now))
}

/// Syncs the tree mounted at `root` to stream `s` (chunked), seeding from the tree itself;
/// lists the stream's entries into `listing`.
fn restore_seeded(
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    index: &ChunkIndex,
    root: &Path,
    opts: UnpackOptions,
    progress: &Progress,
    listing: &mut Listing,
) -> ImageResult<Seeded> {
    progress.set_phase(format!("read what the disk holds of {}", s.file));
    let mut seed = TreeSeed::scan(root, index.params)
        .map_err(ImageError::stream(format!("reading {}", root.display())))?;
    progress.set_phase(format!("write {} (only what differs)", s.file));
    let (taken, synced) = rebuild_into(&mut seed, fetcher, s, index, progress, |r| {
        let stats = sync_listed(&mut *r, root, opts, true, &mut |p, end| {
            listing.push((p.to_path_buf(), end));
            Ok(())
        })?;
        io::copy(r, &mut io::sink())?;
        Ok(stats)
    })?;
    let sync = synced.map_err(ImageError::stream(format!("syncing {}", s.file)))?;
    Ok(Seeded { sync, ..taken })
}

/// Restores block stream `s` (chunked, filesystem `fs`) onto `dev`, seeding from the volume
/// `dev` holds ([`BlockSeed`]: partclone reads it as a capture would): only the chunks it
/// lacks are fetched; partclone then writes the whole volume. None when `dev` holds no
/// volume partclone can read (the caller restores the whole stream).
pub fn restore_blocks_seeded(
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    fs: Filesystem,
    dev: &Path,
    progress: &Progress,
) -> ImageResult<Option<Seeded>> {
    let index = fetch_index(fetcher, s)?;
    progress.set_phase(format!("read what the disk holds of {}", s.file));
    let Some(mut seed) = BlockSeed::scan(fs, dev, index.params)
        .map_err(ImageError::stream(format!("reading {}", dev.display())))?
    else {
        return Ok(None);
    };
    progress.set_phase(format!("write {} (seeded from the disk)", s.file));
    let (taken, written) = rebuild_into(&mut seed, fetcher, s, &index, progress, |r| {
        restore_blocks(fs, r, dev)?;
        io::copy(r, &mut io::sink())?;
        Ok(())
    })?;
    written.map_err(ImageError::stream(format!("writing {}", s.file)))?;
    Ok(Some(taken))
}

/// Rebuilds stream `s` from `seed` and fetched chunks on a thread, every chunk checked, and
/// hands the bytes to `consume`; returns what came from where, and what `consume` returned
/// (its error is the cause when both fail).
fn rebuild_into<T>(
    seed: &mut dyn ChunkSeed,
    fetcher: &mut dyn ChunkFetcher,
    s: &StreamInfo,
    index: &ChunkIndex,
    progress: &Progress,
    consume: impl FnOnce(&mut ChunkReader) -> io::Result<T>,
) -> ImageResult<(Seeded, io::Result<T>)> {
    let missing: Vec<ChunkRef> = index
        .chunks
        .iter()
        .filter(|c| !seed.has(c))
        .copied()
        .collect();
    let prefetched = fetcher.fetch(missing);
    let (w, mut r) = chunk_pipe(8, 1 << 20);
    let file = s.file.clone();
    let (rebuilt, consumed) = thread::scope(|sc| {
        let rebuilder = sc.spawn(move || -> ImageResult<(u64, u64, u64)> {
            let mut rb = Rebuild {
                seed,
                prefetched,
                seeded: 0,
                fetched: 0,
                fetched_bytes: 0,
            };
            let mut w = w;
            for (c, &z) in index.chunks.iter().zip(&index.stored) {
                let data = rb.chunk(c, fetcher)?;
                progress.add(u64::from(z));
                if w.write_all(&data).is_err() {
                    // The consumer stopped: its error is the cause.
                    return Ok((rb.seeded, rb.fetched, rb.fetched_bytes));
                }
            }
            w.finish()
                .map_err(ImageError::stream(format!("rebuilding {file}")))?;
            Ok((rb.seeded, rb.fetched, rb.fetched_bytes))
        });
        let consumed = consume(&mut r);
        drop(r);
        (rebuilder.join().expect("rebuild thread panicked"), consumed)
    });
    let (seeded_bytes, fetched_chunks, fetched_bytes) = rebuilt?;
    let taken = Seeded {
        seeded_bytes,
        fetched_chunks,
        fetched_bytes,
        sync: SyncStats::default(),
        recorded: false,
    };
    Ok((taken, consumed))
}

/// Rebuilds the stream chunk by chunk: from the seed when it still holds the chunk, else
/// the next prefetched one, else fetched on the spot (the seed changed under us).
struct Rebuild<'a> {
    seed: &'a mut dyn ChunkSeed,
    prefetched: Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>,
    seeded: u64,
    fetched: u64,
    fetched_bytes: u64,
}

impl Rebuild<'_> {
    fn chunk(&mut self, c: &ChunkRef, fetcher: &mut dyn ChunkFetcher) -> ImageResult<Vec<u8>> {
        let claimed = self.seed.has(c);
        if claimed {
            let read = self
                .seed
                .read(c)
                .map_err(ImageError::stream("reading the disk's chunks"))?;
            if let Some(data) = read {
                self.seeded += u64::from(c.len);
                return Ok(data);
            }
        }
        let z = if claimed {
            fetcher.fetch(vec![*c]).next()
        } else {
            self.prefetched.next()
        };
        let z = z
            .unwrap_or_else(|| Err(io::Error::other("the chunk fetch ended early")))
            .map_err(ImageError::stream(format!("downloading chunk {}", c.hex())))?;
        self.fetched += 1;
        self.fetched_bytes += z.len() as u64;
        decode_chunk(c, &z).map_err(|detail| ImageError::Integrity {
            file: format!("chunk {}", c.hex()),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::disk::run;

    #[test]
    fn the_superblock_says_size_uuid_and_label() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let uuid = "0e6b3f4c-1d2a-4b5c-9d8e-7f6a5b4c3d2e";
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "racine", "-U", uuid])
            .arg(&img))
        .unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sb = read_ext4_superblock(&img).unwrap().unwrap();
        assert_eq!(
            (sb.bytes, sb.uuid.as_str(), sb.label.as_str()),
            (64 << 20, uuid, "racine")
        );
        assert_eq!(sb.inode_size, 256);
        assert!(
            sb.made + 60 > before && sb.made <= before + 60,
            "{}",
            sb.made
        );
        let mut p = crate::image::manifest::DiskLayout::single_ext4_root(Some("racine"))
            .partitions
            .remove(0);
        assert!(can_seed(&img, 64 << 20, &p).is_some(), "no UUID asked");
        p.fs_uuid = Some(uuid.to_uppercase());
        assert!(
            can_seed(&img, 64 << 20, &p).is_some(),
            "the manifest's UUID"
        );
        p.fs_label = Some("autre".into());
        assert!(can_seed(&img, 64 << 20, &p).is_none(), "another label");
        p.fs_label = None;
        assert!(
            can_seed(&img, 128 << 20, &p).is_none(),
            "made for a smaller partition"
        );
        p.fs_uuid = Some("11111111-2222-3333-4444-555555555555".into());
        assert!(can_seed(&img, 64 << 20, &p).is_none(), "another filesystem");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        assert_eq!(read_ext4_superblock(&img).unwrap(), None);
    }
}
