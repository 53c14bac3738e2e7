//! Network boot, everything a workstation meets between its PXE ROM and the agent's last
//! report (`parc serve`, and the endpoint `parc master` starts):
//! - [`tftp`]: the first stage of the PXE chain (iPXE binaries) over a read-only TFTP server;
//! - [`endpoint`]: the boot endpoint — the task table (which MAC does what at its next boot),
//!   the iPXE scripts, the boot environment over HTTP, dnsmasq for DHCP when asked, and the
//!   DHCP probe `parc doctor` runs; its server binds HTTP, TFTP and DHCP together;
//! - [`serve`]: the image routes mounted in the same HTTP server — the tasks `parc-agent`
//!   fetches, the image to deploy (with Range, to resume), captures uploaded, progress and
//!   reports, multicast sessions, deploy records, the access log;
//! - [`client`]: the engine's `BootEndpoint` port on the endpoint running in this process.
pub mod client;
pub mod endpoint;
pub mod serve;
pub mod tftp;
