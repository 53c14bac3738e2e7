//! Whether a run's deploys go to the room in one multicast stream or one HTTP stream per
//! workstation, and the session's addresses. Pure: the site's policy and the run's counts in,
//! a decision out.

use std::net::Ipv4Addr;

/// The site's multicast policy (`[deploy]` in site.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastPolicy {
    /// `multicast = false` turns it off: every deploy is unicast.
    pub enabled: bool,
    /// The group addresses sessions take theirs from (`multicast_range`, default
    /// `239.255.80.0/24`: the organisation-local scope, never routed out of the lycée).
    pub range: GroupRange,
    /// Time-to-live of the multicast packets (`multicast_ttl`, default 1: the room's subnet).
    pub ttl: u8,
    /// Rate cap of the sender in Mbit/s (`multicast_max_rate`, default 700), so a room's
    /// deploy leaves room on a 1 Gbit/s network for the rest of the lycée.
    pub max_rate_mbit: u32,
    /// Seconds the sender waits for the room's remaining workstations once the first one is
    /// ready (`multicast_wait`, default 60); the late ones then deploy by unicast.
    pub wait_secs: u64,
}

impl Default for MulticastPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            range: GroupRange {
                base: Ipv4Addr::new(239, 255, 80, 0),
                prefix: 24,
            },
            ttl: 1,
            max_rate_mbit: 700,
            wait_secs: 60,
        }
    }
}

/// A block of IPv4 multicast addresses, `a.b.c.d/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRange {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl GroupRange {
    /// Parses `239.255.80.0/24`; the block must lie in 224.0.0.0/4 and outside the
    /// link-local control block 224.0.0.0/24.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an address block like 239.255.80.0/24"))?;
        let base: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (4..=30).contains(p))
            .ok_or_else(|| format!("`/{prefix}` is not a prefix length between 4 and 30"))?;
        let mask = u32::MAX << (32 - u32::from(prefix));
        if u32::from(base) & !mask != 0 {
            return Err(format!("`{s}` has host bits set past /{prefix}"));
        }
        if !base.is_multicast() {
            return Err(format!("`{base}` is not a multicast address (224.0.0.0/4)"));
        }
        if base.octets()[..3] == [224, 0, 0] {
            return Err(format!(
                "`{s}` overlaps 224.0.0.0/24, the link-local control block"
            ));
        }
        Ok(Self { base, prefix })
    }

    /// Session `n`'s data group: the block's addresses in turn, skipping the first (the
    /// rendez-vous address of every session) and the last.
    pub fn data_group(&self, n: u32) -> Ipv4Addr {
        let size = 1u32 << (32 - u32::from(self.prefix));
        Ipv4Addr::from(u32::from(self.base) + 1 + n % (size - 2))
    }

    /// Where senders and receivers find each other: the block's first address.
    pub fn rendezvous(&self) -> Ipv4Addr {
        self.base
    }
}

impl std::fmt::Display for GroupRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// How a run deploys its workstations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// One stream to the room; the sender starts once `min_receivers` are ready (or
    /// `wait_secs` after the first one), the others catch up by unicast.
    Multicast {
        receivers: usize,
        min_receivers: usize,
    },
    /// One HTTP stream per workstation, and why not multicast.
    Unicast { reason: String },
}

/// The decision for `hosts` workstations deploying one image. `min_receivers` (the run's
/// `--min-receivers`) defaults to every one of them; `endpoint_can` is false for an
/// endpoint that cannot send multicast (WDS runs its own transmissions).
pub fn plan_transport(
    policy: &MulticastPolicy,
    hosts: usize,
    min_receivers: Option<usize>,
    endpoint_can: bool,
) -> Transport {
    let unicast = |reason: &str| Transport::Unicast {
        reason: reason.to_string(),
    };
    if !policy.enabled {
        return unicast("the site turned multicast off (site.toml [deploy] multicast = false)");
    }
    if !endpoint_can {
        return unicast("the deploy endpoint sends its own streams");
    }
    if hosts < 2 {
        return unicast("one workstation to deploy");
    }
    Transport::Multicast {
        receivers: hosts,
        min_receivers: min_receivers.unwrap_or(hosts).clamp(1, hosts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_hand_out_groups() {
        let r = GroupRange::parse("239.255.80.0/24").unwrap();
        assert_eq!(r.rendezvous(), Ipv4Addr::new(239, 255, 80, 0));
        assert_eq!(r.data_group(0), Ipv4Addr::new(239, 255, 80, 1));
        assert_eq!(r.data_group(253), Ipv4Addr::new(239, 255, 80, 254));
        assert_eq!(r.data_group(254), Ipv4Addr::new(239, 255, 80, 1));
        assert_eq!(r.to_string(), "239.255.80.0/24");
        for (bad, says) in [
            ("10.0.0.0/24", "not a multicast"),
            ("239.255.80.1/24", "host bits"),
            ("224.0.0.0/24", "link-local"),
            ("239.255.80.0", "address block"),
            ("239.255.80.0/31", "prefix length"),
            ("239.255.300.0/24", "not an IPv4"),
        ] {
            let e = GroupRange::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn multicast_needs_two_workstations_and_the_site() {
        let on = MulticastPolicy::default();
        assert_eq!(
            plan_transport(&on, 3, None, true),
            Transport::Multicast {
                receivers: 3,
                min_receivers: 3
            }
        );
        assert_eq!(
            plan_transport(&on, 3, Some(9), true),
            Transport::Multicast {
                receivers: 3,
                min_receivers: 3
            }
        );
        assert_eq!(
            plan_transport(&on, 30, Some(20), true),
            Transport::Multicast {
                receivers: 30,
                min_receivers: 20
            }
        );
        let why = |t| match t {
            Transport::Unicast { reason } => reason,
            t => panic!("{t:?}"),
        };
        assert!(why(plan_transport(&on, 1, None, true)).contains("one workstation"));
        assert!(why(plan_transport(&on, 5, None, false)).contains("its own streams"));
        let off = MulticastPolicy {
            enabled: false,
            ..on
        };
        assert!(why(plan_transport(&off, 5, None, true)).contains("multicast = false"));
    }
}
