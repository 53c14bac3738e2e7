//! Real adapters of the ports (SSH, HTTP, PXE endpoint, directory, image store).
pub mod fake;

pub mod samba_directory;
pub mod ssh;
