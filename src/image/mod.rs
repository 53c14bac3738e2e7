//! Master images: the on-disk format (manifest + one stream per filesystem: files as
//! `tar.zst`, NTFS and Windows' ESP as partclone blocks), the store, the capture and deploy
//! pipelines the agent runs, and WIM export/import for WDS. See `images/README.md`.

pub mod blockseed;
pub mod bootloader;
pub mod capture;
pub mod chunks;
pub mod deploy;
pub mod disk;
pub mod error;
pub mod ext4;
pub mod format;
pub mod hashing;
pub mod import;
pub mod incremental;
pub mod manifest;
pub mod mft;
pub mod ntfs_record;
pub mod pipe;
pub mod progress;
pub mod record;
pub mod seed;
pub mod store;
pub mod sync;
pub mod treetar;
pub mod unpack;
pub mod wim;
pub mod windows;

/// Test data shared by the image layer's unit tests.
#[cfg(test)]
pub(crate) mod testdata {
    /// Small chunks, for trees of a few MiB.
    pub const SMALL: super::chunks::ChunkParams = super::chunks::ChunkParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };

    use std::ffi::CString;
    use std::fs;
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// What `partclone.ntfs` reads of the NTFS volume in `img` (a capture's stream).
    pub fn partclone_stream(img: &Path) -> Vec<u8> {
        let fs = crate::image::manifest::Filesystem::Ntfs;
        let out = crate::image::capture::block_capture_command(fs, img)
            .unwrap()
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Deterministic bytes that do not repeat (xorshift): FastCDC finds cuts in them and zstd
    /// cannot shrink them.
    pub fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Text-like bytes: a few words repeated, as in config files and scripts.
    pub fn text(seed: u64, len: usize) -> Vec<u8> {
        let words = [
            "root ",
            "usr/lib ",
            "export ",
            "PATH=",
            "\n",
            "# comment ",
            "0644 ",
        ];
        let mut out = Vec::with_capacity(len + 16);
        let mut x = seed | 1;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
            out.extend_from_slice(format!("{}", x >> 50).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// A tree of 400 files over 4 levels of folders: mostly small, some of tens of KiB, four
    /// of a few MiB, empty ones, symlinks, a hard link, a name longer than tar's 100 bytes.
    pub fn make_tree(root: &Path) {
        fs::create_dir_all(root).unwrap();
        for i in 0..400u64 {
            let dir = root
                .join(format!("d{}", i % 7))
                .join(format!("sub{}", i % 3));
            fs::create_dir_all(&dir).unwrap();
            let len = match i % 50 {
                0 if i < 200 => (1 << 20) + (i as usize * 77_777),
                1..=5 => 20_000 + i as usize * 131,
                6 => 0,
                _ => (i as usize * 1_237) % 6_000,
            };
            let data = if i % 2 == 0 {
                noise(i, len)
            } else {
                text(i, len)
            };
            fs::write(dir.join(format!("file-{i:03}.dat")), data).unwrap();
            if i % 40 == 3 {
                symlink(format!("file-{i:03}.dat"), dir.join(format!("link-{i}"))).unwrap();
            }
        }
        let long = root.join("d1").join("n".repeat(150));
        fs::write(&long, noise(999, 9_000)).unwrap();
        fs::hard_link(&long, root.join("d2").join("hard")).unwrap();
        symlink("/nonexistent/target", root.join("dangling")).unwrap();
        settle(root);
    }

    /// Every entry's mtime to a fixed time (folders after their contents), so two trees
    /// made alike serialise alike.
    pub fn settle(root: &Path) {
        fn walk(p: &Path) {
            let meta = fs::symlink_metadata(p).unwrap();
            if meta.is_dir() {
                for e in fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path());
                }
            }
            let c = CString::new(p.as_os_str().as_bytes()).unwrap();
            let t = libc::timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 0,
            };
            // SAFETY: a NUL-terminated path and two timespecs.
            let r = unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    [t, t].as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            assert_eq!(r, 0, "{}", io::Error::last_os_error());
        }
        walk(root);
    }
}
