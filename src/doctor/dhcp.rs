//! What the DHCP servers answering on the segment mean for the site's DHCP mode.

use std::net::Ipv4Addr;

use super::Check;
use crate::domain::site::DhcpSetting;
use crate::netboot::endpoint::dhcp_probe::{AnswerKind, DhcpAnswer};

fn list(a: &[&DhcpAnswer]) -> String {
    a.iter()
        .map(|a| a.server.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `dhcp` line for the answers a DISCOVER got on the serving segment.
pub fn dhcp_verdict(mode: &DhcpSetting, parc: Ipv4Addr, answers: &[DhcpAnswer]) -> Check {
    let (addressing, pxe): (Vec<&DhcpAnswer>, Vec<&DhcpAnswer>) = answers
        .iter()
        .partition(|a| a.kind() == AnswerKind::Addresses);
    // Another PXE answer (a FOG, WDS or forgotten dnsmasq) races parc's own in every mode
    // but external, where the lycée's server pointing at parc is the point.
    let foreign_pxe: Vec<&DhcpAnswer> = pxe.iter().copied().filter(|a| a.server != parc).collect();
    if !foreign_pxe.is_empty() && !matches!(mode, DhcpSetting::External) {
        return Check::problem(
            "dhcp",
            format!(
                "another PXE server answers on the segment ({}): workstations would boot whichever answers first",
                list(&foreign_pxe)
            ),
            "switch that server's PXE service off (FOG, WDS, another parc) or serve from another segment",
        );
    }
    match mode {
        DhcpSetting::Proxy => match addressing.as_slice() {
            [] => Check::problem(
                "dhcp",
                "no DHCP server hands out addresses on the segment: in proxy mode workstations would get none",
                "check the lycée's DHCP server (or its relay on this VLAN); on an isolated segment set `dhcp = \"full\"` with a dhcp_range",
            ),
            [one] => Check::ok(
                "dhcp",
                format!(
                    "the lycée's DHCP server {} hands out addresses{}; parc answers PXE beside it (proxy)",
                    one.server,
                    one.offered
                        .map(|o| format!(" (offered {o})"))
                        .unwrap_or_default()
                ),
            ),
            many => Check::problem(
                "dhcp",
                format!(
                    "{} DHCP servers hand out addresses on the segment ({}): a second server races the lycée's",
                    many.len(),
                    list(many)
                ),
                "find the one that should not be there (a forgotten box or VM, a router) and stop its DHCP service",
            ),
        },
        DhcpSetting::Full { .. } => {
            let others: Vec<&DhcpAnswer> = addressing
                .iter()
                .copied()
                .filter(|a| a.server != parc)
                .collect();
            if others.is_empty() {
                Check::ok(
                    "dhcp",
                    "no other DHCP server on the segment: parc's own (full) may hand out addresses",
                )
            } else {
                Check::problem(
                    "dhcp",
                    format!(
                        "{} already hands out addresses: with `dhcp = \"full\"` two servers would answer",
                        list(&others)
                    ),
                    "set `dhcp = \"proxy\"` in site.toml (parc then answers PXE only, beside that server)",
                )
            }
        }
        DhcpSetting::External => {
            let pointing: Vec<&DhcpAnswer> = addressing
                .iter()
                .copied()
                .filter(|a| a.next_server == Some(parc) && a.boot_file.is_some())
                .collect();
            match (addressing.as_slice(), pointing.as_slice()) {
                ([], _) => Check::problem(
                    "dhcp",
                    "no DHCP server answers on the segment",
                    "check the lycée's DHCP server (or its relay on this VLAN)",
                ),
                (_, [one]) => Check::ok(
                    "dhcp",
                    format!(
                        "the lycée's DHCP server {} points PXE clients at parc (next server {parc}, file {})",
                        one.server,
                        one.boot_file.as_deref().unwrap_or_default()
                    ),
                ),
                (all, _) => Check::problem(
                    "dhcp",
                    format!(
                        "the DHCP server(s) {} do not point PXE clients at parc",
                        list(all)
                    ),
                    format!(
                        "set option 66 (next server) = {parc} and option 67 = undionly.kpxe (BIOS) / snponly.efi (UEFI) there (docs/pxe.md), or use `dhcp = \"proxy\"`"
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    fn lycee(ip: u8) -> DhcpAnswer {
        DhcpAnswer {
            server: Ipv4Addr::new(10, 77, 0, ip),
            offered: Some(Ipv4Addr::new(10, 77, 0, 150)),
            boot_file: None,
            next_server: None,
            pxe: false,
        }
    }

    fn pxe(ip: u8) -> DhcpAnswer {
        DhcpAnswer {
            server: Ipv4Addr::new(10, 77, 0, ip),
            offered: None,
            boot_file: Some("undionly.0".into()),
            next_server: Some(Ipv4Addr::new(10, 77, 0, ip)),
            pxe: true,
        }
    }

    fn full() -> DhcpSetting {
        use crate::domain::finding::Location;
        use crate::domain::toml_read::Sp;
        let sp = |v: &str| Sp {
            value: v.to_string(),
            at: Location {
                file: "site.toml".into(),
                line: 1,
                col: 1,
            },
        };
        DhcpSetting::Full {
            first: sp("10.77.0.100"),
            last: sp("10.77.0.199"),
        }
    }

    #[test]
    fn proxy_beside_one_lycee_server_is_ok() {
        let c = dhcp_verdict(&DhcpSetting::Proxy, PARC, &[lycee(254)]);
        assert_eq!(c.verdict, super::super::Verdict::Ok, "{c:?}");
        assert!(c.detail.contains("10.77.0.254"));
    }

    #[test]
    fn proxy_with_two_addressing_servers_names_both() {
        let c = dhcp_verdict(&DhcpSetting::Proxy, PARC, &[lycee(253), lycee(254)]);
        assert_eq!(c.verdict, super::super::Verdict::Problem);
        assert!(
            c.detail.contains("10.77.0.253, 10.77.0.254"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn proxy_without_any_server_says_full() {
        let c = dhcp_verdict(&DhcpSetting::Proxy, PARC, &[]);
        assert_eq!(c.verdict, super::super::Verdict::Problem);
        assert!(c.fix.unwrap().contains("dhcp = \"full\""));
    }

    #[test]
    fn full_beside_a_lycee_server_says_proxy() {
        let c = dhcp_verdict(&full(), PARC, &[lycee(254)]);
        assert_eq!(c.verdict, super::super::Verdict::Problem);
        assert!(c.fix.unwrap().contains("dhcp = \"proxy\""));
        assert_eq!(
            dhcp_verdict(&full(), PARC, &[]).verdict,
            super::super::Verdict::Ok
        );
    }

    #[test]
    fn a_foreign_pxe_server_is_a_problem() {
        let c = dhcp_verdict(&DhcpSetting::Proxy, PARC, &[lycee(254), pxe(20)]);
        assert_eq!(c.verdict, super::super::Verdict::Problem);
        assert!(c.detail.contains("10.77.0.20"));
    }

    #[test]
    fn external_needs_options_66_67_towards_parc() {
        let mut pointing = lycee(254);
        pointing.next_server = Some(PARC);
        pointing.boot_file = Some("undionly.kpxe".into());
        assert_eq!(
            dhcp_verdict(&DhcpSetting::External, PARC, &[pointing]).verdict,
            super::super::Verdict::Ok
        );
        let c = dhcp_verdict(&DhcpSetting::External, PARC, &[lycee(254)]);
        assert_eq!(c.verdict, super::super::Verdict::Problem);
        assert!(c.fix.unwrap().contains("option 66"));
    }
}
