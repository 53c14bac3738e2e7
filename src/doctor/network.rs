//! The checks that touch the network: the serving address and its ports, the DHCP servers on
//! the segment, the domain controller. They run on one thread (in the lab, inside the lab's
//! server namespace) and only once the serving address is known to be this machine's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{Check, DoctorOptions, Serving};
use crate::adapters::kerberos::{self, KerberosError};
use crate::adapters::ldap_directory::{LdapConfig, LdapDirectory, LdapTls, Writable};
use crate::domain::site::{DhcpSetting, LdapMode, Site};
use crate::netif::IfAddr;
use crate::ports::{PortErrorKind, SecretBytes};
use crate::workspace::Loaded;

/// Kerberos refuses tickets beyond this clock difference (its default `clockskew`).
const MAX_SKEW: Duration = Duration::from_secs(300);

/// Everything the network checks need, owned (they may run on another thread).
pub(crate) struct Inputs {
    serving: Serving,
    /// The dnsmasq files of this workspace's endpoint (`.parc/boot/dhcp/`): one a killed
    /// parc left running is stopped when the endpoint starts, so it does not count as taken.
    own_dnsmasq: (PathBuf, PathBuf),
    dc: Option<DcInputs>,
    ou: Option<String>,
    dhcp_wait: Duration,
    dc_timeout: Duration,
}

struct DcInputs {
    address: String,
    realm: String,
    ldap: LdapMode,
    /// The CA file, and where site.toml names it (`file:line:col`).
    ca_file: Option<(PathBuf, String)>,
    account: String,
    /// `Err`: why the password could not be read (said by the bind check).
    password: Result<SecretBytes, String>,
    password_secret: String,
}

impl Inputs {
    pub fn new(loaded: &Loaded, site: &Site, serving: &Serving, opts: &DoctorOptions) -> Self {
        let d = &site.domain;
        let dc = d.controller.as_ref().map(|c| {
            let secret = c
                .admin_password_secret
                .as_ref()
                .or(d.join_password_secret.as_ref())
                .map(|s| s.value.clone())
                .unwrap_or_else(|| "domain-join".into());
            let store = crate::secrets::SecretStore::new(&loaded.dir.state_dir());
            DcInputs {
                address: c.address.value.clone(),
                realm: d.realm.value.clone(),
                ldap: c.ldap,
                ca_file: c
                    .ca_file
                    .as_ref()
                    .map(|f| (loaded.dir.root.join(&f.value), f.at.to_string())),
                account: c
                    .admin_account
                    .as_ref()
                    .unwrap_or(&d.join_account)
                    .value
                    .clone(),
                password: store.get(&secret).map_err(|e| e.to_string()),
                password_secret: secret,
            }
        });
        Inputs {
            serving: serving.clone(),
            own_dnsmasq: {
                let d = loaded.dir.state_dir().join("boot/dhcp");
                (d.join("dnsmasq.pid"), d.join("dnsmasq.conf"))
            },
            dc,
            ou: opts
                .room
                .as_ref()
                .map(|r| crate::steps::join::room_ou(r, &d.computers_ou.value)),
            dhcp_wait: opts.dhcp_wait,
            dc_timeout: opts.dc_timeout,
        }
    }
}

/// [`run`] on a thread inside the network namespace `ns`.
pub(crate) fn run_in_netns(ns: &str, inputs: Inputs) -> Vec<Check> {
    crate::lab::run_in_netns(ns, move || run(inputs)).unwrap_or_else(|e| {
        vec![Check::problem(
            "lab",
            format!("{e}"),
            "bring the lab up first: lab/up.sh (as root)",
        )]
    })
}

/// The network checks, in this thread's namespace.
pub(crate) fn run(inputs: Inputs) -> Vec<Check> {
    let mut out = Vec::new();
    let s = &inputs.serving;
    let held = match crate::netif::holding(s.address) {
        Ok(h) => h,
        Err(e) => {
            out.push(Check::problem(
                "address",
                format!("listing this machine's addresses: {e}"),
                "report it",
            ));
            return out;
        }
    };
    let Some(ifa) = held else {
        let mine = crate::netif::ipv4_addresses()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.address.is_loopback())
            .map(|a| format!("{} on {}", a.address, a.interface))
            .collect::<Vec<_>>();
        out.push(Check::problem(
            "address",
            format!(
                "{} (site.toml [endpoint] address) is not an address of this machine: it is not on the lycée's pedagogical network",
                s.address
            ),
            format!(
                "run parc on the PEDA VLAN's server, or set [endpoint] address to one of this machine's ({})",
                if mine.is_empty() {
                    "none but loopback".to_string()
                } else {
                    mine.join(", ")
                }
            ),
        ));
        for name in ["ports", "dhcp", "dc"] {
            out.push(Check::skipped(
                name,
                "not checked: this machine is not on the pedagogical network (nothing was sent)",
            ));
        }
        return out;
    };
    if ifa.address.is_loopback() {
        out.push(Check::problem(
            "address",
            format!(
                "{} is a loopback address: no workstation can reach it",
                s.address
            ),
            "set [endpoint] address to this machine's address on the pedagogical VLAN",
        ));
        return out;
    }
    if let Some(want) = &s.interface {
        if want != &ifa.interface {
            out.push(Check::problem(
                "address",
                format!(
                    "{} is on {}, not on {want} (site.toml [endpoint] interface)",
                    s.address, ifa.interface
                ),
                format!("set interface = \"{}\" or remove it", ifa.interface),
            ));
            return out;
        }
    }
    out.push(Check::ok(
        "address",
        format!(
            "{} on {} ({}/{})",
            s.address,
            ifa.interface,
            ifa.network(),
            ifa.prefix
        ),
    ));
    out.push(ports(s, &inputs.own_dnsmasq));
    out.push(dhcp(s, &ifa, inputs.dhcp_wait));
    match &inputs.dc {
        Some(dc) => out.extend(controller(dc, inputs.ou.as_deref(), inputs.dc_timeout)),
        None => out.push(Check::problem(
            "dc",
            "site.toml names no domain controller",
            "add `controller = \"<the DC's address>\"` (and ca_file, admin_account, admin_password) to [domain]",
        )),
    }
    out
}

/// The ports parc's endpoint binds on the serving address are free.
fn ports(s: &Serving, own_dnsmasq: &(PathBuf, PathBuf)) -> Check {
    let stale = crate::netboot::endpoint::server::stale_dnsmasq(&own_dnsmasq.0, &own_dnsmasq.1);
    let stale_tag = stale.map(|pid| format!("(pid {pid})"));
    let ip = IpAddr::V4(s.address);
    let mut wanted: Vec<(&str, u16)> = vec![("tcp", s.http_port), ("udp", 69)];
    match s.dhcp {
        DhcpSetting::Proxy => wanted.extend([("udp", 67), ("udp", 4011)]),
        DhcpSetting::Full { .. } => wanted.push(("udp", 67)),
        DhcpSetting::External => {}
    }
    // A parc just stopped may still be closing its endpoint's sockets (its dnsmasq dies with
    // it): a port still taken after a few seconds is really held.
    let deadline = std::time::Instant::now() + PORT_GRACE;
    let mut left_by_parc = false;
    let taken = loop {
        let taken: Vec<(&str, u16, std::io::Error)> = wanted
            .iter()
            .filter_map(|&(proto, port)| bind_test(ip, proto, port).err().map(|e| (proto, port, e)))
            .filter(|(proto, port, _)| {
                let ours = stale_tag.as_ref().is_some_and(|tag| {
                    let h = holders(proto, *port);
                    !h.is_empty() && h.iter().all(|h| h.ends_with(tag.as_str()))
                });
                left_by_parc |= ours;
                !ours
            })
            .collect();
        if taken.is_empty() || std::time::Instant::now() >= deadline {
            break taken;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let taken: Vec<String> = taken
        .into_iter()
        .map(|(proto, port, e)| match holders(proto, port).as_slice() {
            [] => format!("{proto} {port} ({e})"),
            h => format!("{proto} {port} (held by {})", h.join(", ")),
        })
        .collect();
    let list = wanted
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if taken.is_empty() {
        let note = match (left_by_parc, stale) {
            (true, Some(pid)) => format!(
                " (but for the DHCP ports, held by the dnsmasq an interrupted parc run left, pid {pid}: the endpoint stops it when it starts)"
            ),
            _ => String::new(),
        };
        Check::ok("ports", format!("free on {}: {list}{note}", s.address))
    } else {
        Check::problem(
            "ports",
            format!("taken on {}: {}", s.address, taken.join(", ")),
            "stop what listens there (`ss -lntup` names it: another parc serve, a TFTP or DHCP service) or set http_port",
        )
    }
}

/// How long a taken port may take to be released before it counts as held.
const PORT_GRACE: Duration = Duration::from_secs(5);

/// Binds (and releases) `proto`/`port` as the endpoint would.
fn bind_test(ip: IpAddr, proto: &str, port: u16) -> std::io::Result<()> {
    match (proto, port) {
        ("tcp", _) => std::net::TcpListener::bind(SocketAddr::new(ip, port)).map(drop),
        // dnsmasq binds DHCP (and the PXE boot server) on the wildcard address.
        (_, 67 | 4011) => {
            std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
                .map(drop)
        }
        _ => std::net::UdpSocket::bind(SocketAddr::new(ip, port)).map(drop),
    }
}

/// The processes (`name (pid N)`) holding a socket bound to local `port`, read from this
/// thread's network namespace (`/proc/thread-self/net/`) and the processes' descriptors.
fn holders(proto: &str, port: u16) -> Vec<String> {
    let table =
        std::fs::read_to_string(format!("/proc/thread-self/net/{proto}")).unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = proto != "tcp" || f.get(3) == Some(&"0A");
            let inode = f.get(9)?;
            (u16::from_str_radix(local_port, 16).ok()? == port && listening)
                .then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let holds = std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
            });
        if holds {
            let name = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push(format!("{} (pid {pid})", name.trim()));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn dhcp(s: &Serving, ifa: &IfAddr, wait: Duration) -> Check {
    if let DhcpSetting::Full { first, last } = &s.dhcp {
        let outside: Vec<&str> = [first, last]
            .into_iter()
            .filter(|a| a.value.parse().map_or(true, |a| !ifa.contains(a)))
            .map(|a| a.value.as_str())
            .collect();
        if !outside.is_empty() {
            return Check::problem(
                "dhcp",
                format!(
                    "dhcp_range {} is outside the serving subnet {}/{}",
                    outside.join(", "),
                    ifa.network(),
                    ifa.prefix
                ),
                "give dhcp_range addresses of the serving interface's subnet",
            );
        }
    }
    match crate::netboot::endpoint::dhcp_probe::probe(&ifa.interface, wait) {
        Ok(answers) => super::dhcp_verdict(&s.dhcp, s.address, &answers),
        Err(e) => Check::problem(
            "dhcp",
            format!(
                "asking the segment's DHCP servers on {}: {e}",
                ifa.interface
            ),
            "run parc as root, with no DHCP client holding port 68 on this machine",
        ),
    }
}

/// Bind, Kerberos, clock, the room's OU.
fn controller(dc: &DcInputs, ou: Option<&str>, timeout: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some((path, at)) = &dc.ca_file {
        let pem = std::fs::read_to_string(path);
        if !pem
            .as_ref()
            .is_ok_and(|t| t.contains("-----BEGIN CERTIFICATE-----"))
        {
            let why = match pem {
                Err(e) => e.to_string(),
                Ok(_) => "no PEM certificate in it".into(),
            };
            out.push(Check::problem(
                "dc-ca",
                format!("{at}: ca_file {}: {why}", path.display()),
                "export the CA that signed the DC's certificate there, as PEM (Samba AD: <private dir>/tls/ca.pem; AD CS: `certutil -ca.cert ca.cer`, then `openssl x509 -inform der -in ca.cer -out dc-ca.pem`)",
            ));
            return out;
        }
    }
    let password = match &dc.password {
        Ok(p) => p.clone(),
        Err(e) => {
            out.push(Check::problem(
                "dc-bind",
                format!(
                    "the password of {} (secret `{}`): {e}",
                    dc.account, dc.password_secret
                ),
                format!("parc secret set {}", dc.password_secret),
            ));
            return out;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.push(Check::problem(
                "dc-bind",
                format!("async runtime: {e}"),
                "report it",
            ));
            return out;
        }
    };
    let cfg = LdapConfig {
        host: dc.address.clone(),
        port: None,
        tls: match dc.ldap {
            LdapMode::Ldaps => LdapTls::Ldaps,
            LdapMode::StartTls => LdapTls::StartTls,
        },
        ca_pem: dc.ca_file.as_ref().map(|(p, _)| p.clone()),
        realm: dc.realm.clone(),
        account: dc.account.clone(),
        password: password.clone(),
        timeout,
    };
    let proto = match dc.ldap {
        LdapMode::Ldaps => "LDAPS",
        LdapMode::StartTls => "LDAP+StartTLS",
    };
    let ldap = rt.block_on(LdapDirectory::connect(cfg));
    let ldap = match ldap {
        Ok(l) => {
            out.push(Check::ok(
                "dc-bind",
                format!("{proto} bind to {} as {}", dc.address, dc.account),
            ));
            l
        }
        Err(e) => {
            let fix = match e.kind {
                PortErrorKind::Unreachable | PortErrorKind::Timeout => format!(
                    "check [domain] controller = \"{}\" in site.toml and that the DC answers on the network (ports 636/389, 88)",
                    dc.address
                ),
                PortErrorKind::Refused if e.message.contains("certificate") => {
                    "set [domain] ca_file to the CA that signed the DC's certificate".to_string()
                }
                PortErrorKind::Refused => format!(
                    "check the account {} and its password: parc secret set {}",
                    dc.account, dc.password_secret
                ),
                _ => "see the message".to_string(),
            };
            out.push(Check::problem("dc-bind", e.message.clone(), fix));
            out.push(Check::skipped(
                "dc",
                "Kerberos, clock and OU not checked: no LDAP session with the DC",
            ));
            return out;
        }
    };
    out.push(
        match kerberos::kinit_check(&dc.realm, &dc.address, &dc.account, &password, timeout) {
            Ok(()) => Check::ok(
                "dc-kerberos",
                format!("ticket for {}@{} from {}", dc.account, dc.realm, dc.address),
            ),
            Err(e) => {
                let fix = match &e {
                    KerberosError::NotInstalled => "apt-get install krb5-user".to_string(),
                    KerberosError::ClockSkew { .. } => {
                        "set this machine's clock from the DC (NTP) before anything else".into()
                    }
                    _ => format!(
                        "check the KDC on {} (port 88) and the account {}",
                        dc.address, dc.account
                    ),
                };
                Check::problem("dc-kerberos", e.to_string(), fix)
            }
        },
    );
    out.push(match rt.block_on(ldap.server_time()) {
        Ok(t) => {
            let skew = (chrono::Utc::now() - t).num_milliseconds().unsigned_abs();
            let skew = Duration::from_millis(skew);
            if skew < MAX_SKEW {
                Check::ok(
                    "dc-clock",
                    format!("{:.1} s apart from the DC (Kerberos allows 300)", skew.as_secs_f64()),
                )
            } else {
                Check::problem(
                    "dc-clock",
                    format!(
                        "this machine's clock is {:.0} s off the DC's: Kerberos refuses beyond 300 s",
                        skew.as_secs_f64()
                    ),
                    "set the clock by NTP from the DC (`timedatectl set-ntp true`, the DC as server)",
                )
            }
        }
        Err(e) => Check::problem(
            "dc-clock",
            format!("reading the DC's time: {}", e.message),
            "see the message",
        ),
    });
    if let Some(ou) = ou {
        out.push(match rt.block_on(ldap.ou_writable(ou)) {
            Ok(w) => writable_check(ou, &dc.account, w),
            Err(e) => Check::problem(
                "dc-ou",
                format!("reading the rights on {ou}: {}", e.message),
                "see the message",
            ),
        });
    }
    out
}

fn writable_check(ou: &str, account: &str, w: Writable) -> Check {
    let what = if w.ou_exists {
        format!("computer objects in {ou}")
    } else {
        format!("{ou} (not there yet) under {}", w.checked_dn)
    };
    if w.allowed {
        Check::ok("dc-ou", format!("{account} may create {what}"))
    } else {
        Check::problem(
            "dc-ou",
            format!(
                "{account} may not create {what} (it may create: {})",
                if w.child_classes.is_empty() {
                    "nothing".to_string()
                } else {
                    w.child_classes.join(", ")
                }
            ),
            format!(
                "delegate \"create computer objects\" (and organizational units) on the parent OU to {account}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_names_its_process() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let me = std::process::id();
        let h = holders("udp", port);
        assert!(
            h.iter().any(|h| h.ends_with(&format!("(pid {me})"))),
            "{h:?}"
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(bind_test(IpAddr::V4(Ipv4Addr::LOCALHOST), "tcp", port).is_err());
        assert!(!holders("tcp", port).is_empty());
        drop(l);
        assert!(bind_test(IpAddr::V4(Ipv4Addr::LOCALHOST), "tcp", port).is_ok());
    }
}
