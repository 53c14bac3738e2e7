//! `parc serve`'s library side: the network-boot endpoint. It owns the task table (which MAC
//! does what at its next boot), renders iPXE scripts, serves the boot environment over HTTP and
//! the first stage over TFTP, and runs dnsmasq for DHCP when asked.
pub mod assign;
pub mod dhcp;
pub mod dhcp_probe;
pub mod http;
pub mod ipxe;
pub mod server;
pub mod tasks;

pub use server::{Endpoint, EndpointError, ServeOptions};
