//! Cases of the DHCP probe (`parc::netboot::endpoint::dhcp_probe`) on the lab's bridge: it finds the
//! lycée's own DHCP server (lab/dhcp-up.sh, started by lab/up.sh), tells a proxyDHCP server
//! (parc's own dnsmasq configuration in proxy mode) from an address server, and sees a second,
//! rogue DHCP server come and go. Every probe runs in the lab's server namespace.
//!
//! A probe and a DHCP server in the same namespace do see each other: Linux hands a copy of
//! each locally sent broadcast to the local sockets (the copy looks as if it came in on eth0),
//! so the proxy's dnsmasq on the server's eth0 gets the DISCOVER and the probe its broadcast
//! reply. That is parc's own situation (`parc doctor` next to `parc serve --dhcp proxy`).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::lab::Lab;
use parc::netboot::endpoint::dhcp::{DhcpMode, dnsmasq_conf};
use parc::netboot::endpoint::dhcp_probe::{AnswerKind, DhcpAnswer, probe};

use crate::{Case, Ctx, Net};

const WAIT: Duration = Duration::from_secs(2);
const LYCEE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 253);

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "dhcp_probe_finds_the_lycees_dhcp_server",
            net: Net::Lab,
            run: finds_the_lycees_server,
        },
        Case {
            name: "dhcp_lycee_server_leaves_the_namespace_workstations_alone",
            net: Net::Lab,
            run: workstations_unaffected,
        },
        Case {
            name: "dhcp_probe_tells_a_proxy_dhcp_from_the_address_server",
            net: Net::Lab,
            run: sees_a_proxy,
        },
        Case {
            name: "dhcp_probe_sees_a_rogue_dhcp_server_come_and_go",
            net: Net::Lab,
            run: sees_a_rogue_server,
        },
    ]
}

fn probe_eth0() -> Vec<DhcpAnswer> {
    probe("eth0", WAIT).expect("probing DHCP on eth0")
}

fn in_range(a: &DhcpAnswer, first: u8, last: u8) -> bool {
    a.offered.is_some_and(|ip| {
        let o = ip.octets();
        o[..3] == [10, 77, 0] && (first..=last).contains(&o[3])
    })
}

fn assert_lycee(a: &DhcpAnswer) {
    assert_eq!(a.server, LYCEE, "{a:?}");
    assert_eq!(a.kind(), AnswerKind::Addresses, "{a:?}");
    assert!(in_range(a, 100, 199), "offered outside 100-199: {a:?}");
    assert!(!a.pxe, "the lycée's server knows nothing of PXE: {a:?}");
    assert_eq!(a.boot_file, None, "{a:?}");
}

fn finds_the_lycees_server(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        assert_eq!(ctx.lab.dhcp_address(), Some("10.77.0.254"));
        let answers = probe_eth0();
        assert_eq!(answers.len(), 1, "{answers:#?}");
        assert_lycee(&answers[0]);
        // It never took a lease: the probe sends no DHCPREQUEST.
        let leases = ctx.lab.dir().join("dhcp-dhcp/dnsmasq.leases");
        let text = std::fs::read_to_string(&leases).unwrap_or_default();
        assert!(text.trim().is_empty(), "a lease was taken: {text}");
    }
    .boxed()
}

fn workstations_unaffected(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        // The lycée's server sends Router Advertisements (for iPXE); the namespace
        // workstations keep exactly their static address, no IPv6 from the RA.
        std::thread::sleep(Duration::from_secs(1));
        for h in ctx.lab.hosts() {
            let ns = format!("{}-{}", ctx.lab.prefix(), h.name);
            let out = Command::new("ip")
                .args(["-n", &ns, "-o", "addr", "show", "dev", "eth0"])
                .output()
                .expect("ip addr");
            let text = String::from_utf8_lossy(&out.stdout);
            let inet: Vec<&str> = text.lines().filter(|l| l.contains(" inet ")).collect();
            assert_eq!(inet.len(), 1, "{}: {text}", h.name);
            assert!(
                inet[0].contains(&format!("{}/24", h.ip)),
                "{}: {text}",
                h.name
            );
            assert!(
                !text.contains("fd77"),
                "{} autoconfigured IPv6: {text}",
                h.name
            );
        }
    }
    .boxed()
}

/// A child process killed when dropped (also when the case panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sees_a_proxy(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        // parc's own proxyDHCP configuration, on the server's eth0 (as `parc serve --dhcp
        // proxy` would run it), its files under the lab's folder (lab/down.sh removes them).
        let run: PathBuf = ctx.lab.dir().join("dhcp-proxy-case");
        std::fs::create_dir_all(&run).unwrap();
        let mode = DhcpMode::Proxy {
            subnet: Ipv4Addr::new(10, 77, 0, 0),
        };
        let conf = dnsmasq_conf(&mode, Ipv4Addr::new(10, 77, 0, 1), "eth0", &run).unwrap();
        std::fs::write(run.join("dnsmasq.conf"), conf).unwrap();
        let _proxy = Killed(
            Command::new("ip")
                .args(["netns", "exec", ctx.lab.server_netns()])
                .arg("dnsmasq")
                .arg("--keep-in-foreground")
                .arg(format!(
                    "--conf-file={}",
                    run.join("dnsmasq.conf").display()
                ))
                .spawn()
                .expect("starting dnsmasq"),
        );
        let log = run.join("dnsmasq.log");
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("sockets bound")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dnsmasq did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let answers = probe_eth0();
        assert_eq!(answers.len(), 2, "{answers:#?}");
        let proxy = &answers[0];
        assert_eq!(proxy.server, Ipv4Addr::new(10, 77, 0, 1), "{answers:#?}");
        assert_eq!(proxy.kind(), AnswerKind::ProxyPxe, "{proxy:?}");
        assert!(proxy.pxe, "{proxy:?}");
        assert_lycee(&answers[1]);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("proxy"), "{text}");
    }
    .boxed()
}

/// Stops the extra DHCP server when dropped (also when the case panics).
struct Rogue<'a>(&'a Lab);

impl Drop for Rogue<'_> {
    fn drop(&mut self) {
        let _ = self.0.stop_dhcp("rogue");
    }
}

fn sees_a_rogue_server(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let lab = &ctx.lab;
        lab.start_dhcp(
            "rogue",
            ROGUE,
            Ipv4Addr::new(10, 77, 0, 200),
            Ipv4Addr::new(10, 77, 0, 220),
        )
        .expect("starting a second DHCP server");
        let rogue = Rogue(lab);
        let answers = probe_eth0();
        assert_eq!(answers.len(), 2, "{answers:#?}");
        let (r, l) = (&answers[0], &answers[1]);
        assert_eq!(r.server, ROGUE, "{answers:#?}");
        assert_eq!(r.kind(), AnswerKind::Addresses, "{r:?}");
        assert!(in_range(r, 200, 220), "{r:?}");
        assert_lycee(l);

        drop(rogue);
        let ns = format!("/run/netns/{}-rogue", lab.prefix());
        assert!(!std::path::Path::new(&ns).exists(), "{ns} left");
        assert!(!lab.dir().join("dhcp-rogue").exists());
        let answers = probe_eth0();
        assert_eq!(answers.len(), 1, "{answers:#?}");
        assert_lycee(&answers[0]);
    }
    .boxed()
}
