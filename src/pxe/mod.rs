//! Network-boot protocols parc speaks itself: TFTP for the first stage (iPXE binaries).
pub mod tftp;
