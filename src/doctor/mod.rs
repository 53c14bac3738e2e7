//! The pre-flight (`parc doctor`, and `parc master` before it touches anything): checks, read
//! only, that this machine can run a room's procedure on the site's network — the serving
//! address and its ports, the DHCP servers answering on the segment against the site's mode,
//! the domain controller (LDAP bind, Kerberos, clock, the room's OU), the secrets, disk space
//! for the image, the room's workstations. Each check is a line: ok, or the problem and what
//! to do.
//!
//! Network checks run only when the serving address is one of this machine's (in the lab: of
//! the lab's server namespace, where they run): off the pedagogical network, parc sends
//! nothing anywhere and says so.

mod dhcp;
mod network;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::domain::site::{DhcpSetting, Endpoint, Site};
use crate::workspace::Loaded;

pub use dhcp::dhcp_verdict;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Problem,
    /// Not run: what it needs failed first (said in the detail).
    Skipped,
}

/// One line of the pre-flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name (`address`, `dhcp`, `dc-bind`, …).
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do about a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skipped(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Skipped,
            detail: detail.into(),
            fix: None,
        }
    }

    /// `ok      name     detail` (and `        fix: …` under a problem).
    pub fn render(&self) -> String {
        let word = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Problem => "problem",
            Verdict::Skipped => "skipped",
        };
        let mut s = format!("{word:<8}{:<14}{}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            s.push_str(&format!("\n{:<22}fix: {fix}", ""));
        }
        s
    }
}

/// What the pre-flight needs besides the workspace.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The room whose OU, image and workstations are checked (the site alone when `None`).
    pub room: Option<String>,
    /// The lab's server namespace: the network checks run inside it.
    pub netns: Option<String>,
    /// How long to listen for DHCP answers.
    pub dhcp_wait: Duration,
    /// Connect and operation timeout towards the DC.
    pub dc_timeout: Duration,
    /// The boot environment (vmlinuz, initrd.img), when a run will need it.
    pub bootenv: Option<PathBuf>,
    /// Where Debian's `ipxe` put its binaries.
    pub ipxe_dir: Option<PathBuf>,
}

/// The serving side of the site, as the checks need it.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    pub address: Ipv4Addr,
    pub interface: Option<String>,
    pub http_port: u16,
    pub dhcp: DhcpSetting,
}

impl Serving {
    pub fn of(site: &Site) -> Option<Serving> {
        match &site.endpoint {
            Endpoint::Pxe {
                address,
                interface,
                http_port,
                dhcp,
            } => Some(Serving {
                address: address.value.parse().ok()?,
                interface: interface.as_ref().map(|i| i.value.clone()),
                http_port: *http_port,
                dhcp: dhcp.clone(),
            }),
            Endpoint::Wds { .. } => None,
        }
    }
}

/// Runs every check; the network ones inside `opts.netns` when set.
pub fn run(loaded: &Loaded, opts: &DoctorOptions) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(site) = loaded.ws.site.as_ref() else {
        out.push(Check::problem(
            "site",
            "the workspace has no usable site.toml",
            "run `parc check` and fix site.toml",
        ));
        return out;
    };
    if let Some(room) = &opts.room {
        if loaded.ws.room(room).is_none() {
            out.push(Check::problem(
                "room",
                format!("room {room} is not in the workspace"),
                format!(
                    "the rooms: {}",
                    loaded
                        .ws
                        .rooms
                        .iter()
                        .map(|r| r.id.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            return out;
        }
    }
    match Serving::of(site) {
        Some(serving) => {
            let net = network::Inputs::new(loaded, site, &serving, opts);
            out.extend(match &opts.netns {
                Some(ns) => network::run_in_netns(ns, net),
                None => network::run(net),
            });
        }
        None => out.push(Check::problem(
            "endpoint",
            "the site deploys through WDS, which parc does not drive yet",
            "set [endpoint] kind = \"pxe\" in site.toml: parc's own PXE endpoint",
        )),
    }
    out.extend(local_checks(loaded, site, opts));
    out
}

/// Whether the checks found a problem.
pub fn any_problem(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.verdict == Verdict::Problem)
}

/// Secrets, disk space, the room's workstations, the boot files: nothing on the network.
fn local_checks(loaded: &Loaded, site: &Site, opts: &DoctorOptions) -> Vec<Check> {
    let mut out = Vec::new();
    let secrets = crate::secrets::SecretStore::new(&loaded.dir.state_dir());
    let known = secrets.list().unwrap_or_default();
    let d = &site.domain;
    let mut needed: Vec<(&str, String)> = Vec::new();
    let join = d
        .join_password_secret
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "domain-join".into());
    needed.push(("the join password", join.clone()));
    if let Some(c) = &d.controller {
        let admin = c
            .admin_password_secret
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or(join);
        needed.push(("the DC account's password", admin));
    }
    needed.dedup_by(|a, b| a.1 == b.1);
    let missing: Vec<_> = needed.iter().filter(|(_, n)| !known.contains(n)).collect();
    if missing.is_empty() {
        out.push(Check::ok(
            "secrets",
            format!(
                "set: {}",
                needed
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    } else {
        for (what, name) in missing {
            out.push(Check::problem(
                "secrets",
                format!("{what} (secret `{name}`) is not set"),
                format!("parc secret set {name} (the value is read from stdin)"),
            ));
        }
    }
    if let Some(room) = &opts.room {
        out.push(disk_space(loaded, room));
        out.push(workstations(loaded, room));
    }
    if let Some(b) = &opts.bootenv {
        let missing: Vec<_> = ["vmlinuz", "initrd.img"]
            .into_iter()
            .filter(|f| !b.join(f).is_file())
            .collect();
        out.push(if missing.is_empty() {
            Check::ok("boot-env", format!("{}", b.display()))
        } else {
            Check::problem(
                "boot-env",
                format!("{} lacks {}", b.display(), missing.join(", ")),
                "build it: images/bootenv/build.sh (prints the folder to pass as --bootenv)",
            )
        });
    }
    if let Some(dir) = &opts.ipxe_dir {
        let missing: Vec<_> = ["undionly.kpxe", "snponly.efi"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        out.push(if missing.is_empty() {
            Check::ok(
                "ipxe",
                format!("{}: undionly.kpxe, snponly.efi", dir.display()),
            )
        } else {
            Check::problem(
                "ipxe",
                format!("{} lacks {}", dir.display(), missing.join(", ")),
                "apt-get install ipxe (or --ipxe-dir where its binaries are)",
            )
        });
    }
    out
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Free space where the room's next image goes, against the size of its last one (or of its
/// base image).
fn disk_space(loaded: &Loaded, room: &str) -> Check {
    let images = loaded.dir.images_dir();
    let store = crate::image::store::FsImageStore::new(&images);
    let last = store
        .list_manifests(Some(room))
        .ok()
        .and_then(|m| m.last().map(|m| format!("{}/{}", m.room, m.version)));
    let base = loaded
        .ws
        .room(room)
        .map(|r| format!("base/{}", r.base_image.value));
    let sized = last
        .or(base)
        .and_then(|id| Some((store.image_dir(&id).ok()?, id)))
        .map(|(dir, id)| (dir_size(&dir), id))
        .filter(|(n, _)| *n > 0);
    let probe = if images.exists() {
        images.clone()
    } else {
        loaded.dir.root.clone()
    };
    let free = match free_bytes(&probe) {
        Ok(f) => f,
        Err(e) => {
            return Check::problem(
                "disk",
                format!("free space of {}: {e}", probe.display()),
                "check the workspace's filesystem",
            );
        }
    };
    let gib = |n: u64| n as f64 / (1u64 << 30) as f64;
    match sized {
        Some((need, id)) if free < need + need / 5 => Check::problem(
            "disk",
            format!(
                "{:.1} GiB free under {}; the room's image ({id}) takes {:.1} GiB",
                gib(free),
                probe.display(),
                gib(need)
            ),
            "free space there (`parc image prune --keep 2`) before the capture",
        ),
        Some((need, id)) => Check::ok(
            "disk",
            format!(
                "{:.1} GiB free for an image of about {:.1} GiB ({id})",
                gib(free),
                gib(need)
            ),
        ),
        None => Check::ok(
            "disk",
            format!(
                "{:.1} GiB free under {} (no image of the room yet)",
                gib(free),
                probe.display()
            ),
        ),
    }
}

fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs fills the zeroed struct for a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Every workstation of the room has a MAC address no other device has (PXE and
/// wake-on-LAN find machines by it).
fn workstations(loaded: &Loaded, room: &str) -> Check {
    let hosts = loaded.ws.workstations(room);
    if hosts.is_empty() {
        return Check::problem(
            "workstations",
            format!("devices.csv lists no workstation in room {room}"),
            "add the room's machines to devices.csv (or `parc inventory import`)",
        );
    }
    let mut dup = Vec::new();
    for h in &hosts {
        let mac = crate::netboot::endpoint::tasks::normalize_mac(&h.mac.value).ok();
        let same = loaded
            .ws
            .devices
            .iter()
            .filter(|d| crate::netboot::endpoint::tasks::normalize_mac(&d.mac.value).ok() == mac)
            .count();
        if mac.is_none() || same > 1 {
            dup.push(h.hostname.value.clone());
        }
    }
    if dup.is_empty() {
        Check::ok(
            "workstations",
            format!(
                "{} workstations of room {room}, each known by its MAC address",
                hosts.len()
            ),
        )
    } else {
        Check::problem(
            "workstations",
            format!(
                "not known by a MAC address of their own: {}",
                dup.join(", ")
            ),
            "fix their `mac` in devices.csv (`parc check` locates it)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_problem_with_its_fix() {
        let c = Check::problem("dhcp", "two servers", "stop one");
        assert_eq!(
            c.render(),
            "problem dhcp          two servers\n                      fix: stop one"
        );
        assert_eq!(
            Check::ok("disk", "fine").render(),
            "ok      disk          fine"
        );
    }
}
