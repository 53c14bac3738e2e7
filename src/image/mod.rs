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
