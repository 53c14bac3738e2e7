//! This machine's IPv4 interfaces (getifaddrs), as seen from the calling thread's network
//! namespace: which interface holds the serving address, its subnet and broadcast.

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// One IPv4 address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl IfAddr {
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The subnet's network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & mask(self.prefix))
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !mask(self.prefix))
    }

    /// Whether `other` is on this subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & mask(self.prefix) == u32::from(self.network())
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// Every IPv4 address of every interface that is up.
pub fn ipv4_addresses() -> std::io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & (libc::IFF_UP as u32) == 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr of its family.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: AF_INET addresses are sockaddr_in; the netmask of an AF_INET address too.
        let addr = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let prefix = if ifa.ifa_netmask.is_null() {
            32
        } else {
            let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
            u32::from_be(m.sin_addr.s_addr).count_ones() as u8
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push(IfAddr {
            interface: name,
            address: Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            prefix,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The interface address holding `address`, if this machine (namespace) has it.
pub fn holding(address: Ipv4Addr) -> std::io::Result<Option<IfAddr>> {
    Ok(ipv4_addresses()?.into_iter().find(|a| a.address == address))
}

/// The interface address whose subnet holds `peer`: where packets to it go out.
pub fn facing(peer: Ipv4Addr) -> std::io::Result<Option<IfAddr>> {
    Ok(ipv4_addresses()?
        .into_iter()
        .filter(|a| a.contains(peer) && !a.address.is_loopback())
        .max_by_key(|a| a.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_arithmetic() {
        let a = IfAddr {
            interface: "eth0".into(),
            address: Ipv4Addr::new(10, 77, 0, 1),
            prefix: 24,
        };
        assert_eq!(a.network(), Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(a.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
        assert_eq!(a.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(a.contains(Ipv4Addr::new(10, 77, 0, 254)));
        assert!(!a.contains(Ipv4Addr::new(10, 78, 0, 1)));
    }

    #[test]
    fn loopback_is_listed() {
        let all = ipv4_addresses().unwrap();
        let lo = holding(Ipv4Addr::LOCALHOST).unwrap();
        assert!(lo.is_some(), "127.0.0.1 not among {all:?}");
        assert_eq!(lo.unwrap().prefix, 8);
    }
}
