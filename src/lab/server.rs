//! What `parc serve --lab` does to the lab's server namespace before serving there: an IPv6
//! ULA (fd77::1/64) on its eth0 so dnsmasq can construct a Router Advertisement from it, and
//! no autoconfiguration from that RA on the server itself. With the RA, iPXE finishes IPv6
//! autoconfiguration at once instead of waiting ~13 s per boot (lab/NOTES.md).

use std::process::Command;

/// The lab's server address (lab/lib.sh).
pub const LAB_SERVER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 77, 0, 1);

/// Why the namespace could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LabNsError {
    #[error("the lab's server namespace {0} does not exist")]
    Missing(String),
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
}

fn ip(args: &[&str]) -> Result<std::process::Output, LabNsError> {
    Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabNsError::Command {
            cmd: format!("ip {}", args.join(" ")),
            stderr: e.to_string(),
        })
}

/// Prepares namespace `ns` (idempotent).
pub fn prepare_namespace(ns: &str) -> Result<(), LabNsError> {
    if !std::path::Path::new("/run/netns").join(ns).exists() {
        return Err(LabNsError::Missing(ns.into()));
    }
    let o = ip(&[
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.eth0.accept_ra=0",
    ])?;
    if !o.status.success() {
        return Err(LabNsError::Command {
            cmd: format!("sysctl accept_ra=0 in {ns}"),
            stderr: String::from_utf8_lossy(&o.stderr).trim().into(),
        });
    }
    let shown = ip(&["-n", ns, "-6", "addr", "show", "dev", "eth0"])?;
    if !String::from_utf8_lossy(&shown.stdout).contains("fd77::1/64") {
        let o = ip(&[
            "-n",
            ns,
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            "eth0",
            "nodad",
        ])?;
        if !o.status.success() {
            return Err(LabNsError::Command {
                cmd: format!("ip -n {ns} addr add fd77::1/64 dev eth0"),
                stderr: String::from_utf8_lossy(&o.stderr).trim().into(),
            });
        }
    }
    Ok(())
}
