//! Master images: the on-disk format (manifest + one `tar.zst` stream per filesystem), the
//! store, and the capture and deploy pipelines the agent runs. See `images/README.md`.

pub mod bootloader;
pub mod capture;
pub mod deploy;
pub mod disk;
pub mod error;
pub mod format;
pub mod hashing;
pub mod import;
pub mod manifest;
pub mod pipe;
pub mod progress;
pub mod store;
pub mod treetar;
pub mod unpack;
