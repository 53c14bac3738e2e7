//! Real adapters of the ports (SSH, directory, image store, WDS, power); the boot endpoint's
//! is in `crate::netboot::client`.
pub mod fake;
pub mod kerberos;
pub mod lab_power;
pub mod ldap_directory;
pub mod offline_join;
pub mod samba_directory;
pub mod ssh;
pub mod wds;
pub mod wol;
