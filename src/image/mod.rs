//! Master images: the on-disk format (manifest + one stream per filesystem: files as
//! `tar.zst`, NTFS and Windows' ESP as partclone blocks), the store, the capture and deploy
//! pipelines the agent runs, and WIM export/import for WDS. See `images/README.md`.

pub mod bootloader;
pub mod capture;
pub mod chunks;
pub mod deploy;
pub mod disk;
pub mod error;
pub mod format;
pub mod hashing;
pub mod import;
pub mod incremental;
pub mod manifest;
pub mod pipe;
pub mod progress;
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
}
