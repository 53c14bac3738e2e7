//! Which DHCP servers answer on a network segment: one DHCPDISCOVER broadcast on one
//! interface, every OFFER collected for a while. For `parc doctor`'s pre-flight check (is
//! there a DHCP server at all? a second, rogue one? a proxyDHCP already?) before parc's own
//! dnsmasq is started in proxy mode next to the lycée's server.
//!
//! The DISCOVER looks like a PXE ROM's (option 60 `PXEClient:…`, option 93 arch 0), so
//! proxyDHCP servers answer too, from a random locally administered MAC address, so no real
//! machine is impersonated. No DHCPREQUEST is ever sent: no lease is taken, a server only
//! keeps its offer for a few seconds.
//!
//! The packets are encoded and decoded with `dhcproto` (the pure part, [`discover_packet`] and
//! [`parse_reply`], is unit-tested); [`probe`] owns the socket.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dhcproto::v4::{
    Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

/// The vendor class a BIOS PXE ROM (UNDI 2.1) sends.
pub const PXE_CLASS: &str = "PXEClient:Arch:00000:UNDI:002001";

/// Why the probe could not run (not: "no server answered", which is an empty answer list).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probing DHCP needs root (port 68 and binding to an interface); running as uid {uid}")]
    NotRoot { uid: u32 },
    #[error("no network interface named `{0}` (see `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "UDP port 68 is already in use on `{interface}` (a DHCP client running there?): stop it or probe another interface"
    )]
    PortInUse { interface: String },
    #[error("no randomness for the DHCP transaction id")]
    Random,
    #[error("encoding the DHCPDISCOVER")]
    Encode(#[source] dhcproto::error::EncodeError),
    #[error("DHCP probe on `{interface}`: {what}")]
    Io {
        interface: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// One DHCP server that answered the DISCOVER.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DhcpAnswer {
    /// Option 54 (server identifier), else the packet's source address.
    pub server: Ipv4Addr,
    /// `yiaddr` when non-zero: a server that hands out addresses.
    pub offered: Option<Ipv4Addr>,
    /// Option 67, else the BOOTP `file` field.
    pub boot_file: Option<String>,
    /// `siaddr` when non-zero, else option 66 when it is an address.
    pub next_server: Option<Ipv4Addr>,
    /// Answered as a PXE server: option 60 `PXEClient` in the reply, or vendor option 43.
    pub pxe: bool,
}

/// What kind of server a [`DhcpAnswer`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// A DHCP server that offers addresses (it may also give boot options).
    Addresses,
    /// A proxyDHCP server: boot information only, no address.
    ProxyPxe,
}

impl DhcpAnswer {
    pub fn kind(&self) -> AnswerKind {
        if self.offered.is_some() {
            AnswerKind::Addresses
        } else {
            AnswerKind::ProxyPxe
        }
    }
}

/// The parameters a PXE ROM asks for, plus what `parc doctor` wants to see.
const REQUESTED: [OptionCode; 9] = [
    OptionCode::SubnetMask,       // 1
    OptionCode::Router,           // 3
    OptionCode::DomainNameServer, // 6
    OptionCode::DomainName,       // 15
    OptionCode::VendorExtensions, // 43
    OptionCode::ServerIdentifier, // 54
    OptionCode::ClassIdentifier,  // 60
    OptionCode::TFTPServerName,   // 66
    OptionCode::BootfileName,     // 67
];

/// A random unicast, locally administered MAC address (bit 1 of the first octet set, bit 0
/// clear), so the probe never speaks for a real machine.
pub fn random_mac(random: [u8; 6]) -> [u8; 6] {
    let mut mac = random;
    mac[0] = (mac[0] & 0b1111_1100) | 0b0000_0010;
    mac
}

/// The DHCPDISCOVER's bytes (padded to the 300-byte BOOTP minimum some servers insist on).
pub fn discover_packet(xid: u32, mac: [u8; 6]) -> Result<Vec<u8>, ProbeError> {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_flags(Flags::default().set_broadcast());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Discover));
    opts.insert(DhcpOption::ParameterRequestList(REQUESTED.to_vec()));
    opts.insert(DhcpOption::ClassIdentifier(PXE_CLASS.as_bytes().to_vec()));
    opts.insert(DhcpOption::ClientSystemArchitecture(
        Architecture::Intelx86PC,
    ));
    let mut buf = Vec::with_capacity(dhcproto::v4::MIN_PACKET_SIZE);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(ProbeError::Encode)?;
    if buf.len() < dhcproto::v4::MIN_PACKET_SIZE {
        buf.resize(dhcproto::v4::MIN_PACKET_SIZE, 0);
    }
    Ok(buf)
}

fn nonempty_str(bytes: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_end_matches('\0').trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn nonzero(a: Ipv4Addr) -> Option<Ipv4Addr> {
    (!a.is_unspecified()).then_some(a)
}

/// The answer in `bytes`, when it is a DHCPOFFER for transaction `xid`; `source` is the
/// packet's sender (the server when it gives no option 54). Anything else (another client's
/// traffic, a malformed packet) is `None`.
pub fn parse_reply(bytes: &[u8], xid: u32, source: Ipv4Addr) -> Option<DhcpAnswer> {
    // dhcproto 0.14 asserts some options' lengths (debug builds panic on a malformed
    // packet, e.g. option 152 of 1 byte): anyone on the segment may send one.
    let msg = std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(bytes)))
        .ok()?
        .ok()?;
    if msg.opcode() != Opcode::BootReply || msg.xid() != xid {
        return None;
    }
    let opts = msg.opts();
    if opts.msg_type() != Some(MessageType::Offer) {
        return None;
    }
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => source,
    };
    let boot_file = match opts.get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(f)) => nonempty_str(f),
        _ => None,
    }
    .or_else(|| msg.fname().and_then(nonempty_str));
    let tftp_option = match opts.get(OptionCode::TFTPServerName) {
        Some(DhcpOption::TFTPServerName(n)) => nonempty_str(n).and_then(|n| n.parse().ok()),
        _ => None,
    };
    let pxe_class = matches!(
        opts.get(OptionCode::ClassIdentifier),
        Some(DhcpOption::ClassIdentifier(c)) if c.starts_with(b"PXEClient")
    );
    Some(DhcpAnswer {
        server,
        offered: nonzero(msg.yiaddr()),
        boot_file,
        next_server: nonzero(msg.siaddr()).or(tftp_option),
        pxe: pxe_class || opts.get(OptionCode::VendorExtensions).is_some(),
    })
}

fn io_err<'a>(
    interface: &'a str,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> ProbeError + 'a {
    move |source| match source.kind() {
        ErrorKind::PermissionDenied => ProbeError::NotRoot {
            // SAFETY: geteuid has no preconditions and cannot fail.
            uid: unsafe { libc::geteuid() },
        },
        ErrorKind::AddrInUse => ProbeError::PortInUse {
            interface: interface.to_owned(),
        },
        _ if source.raw_os_error() == Some(libc::ENODEV) => {
            ProbeError::NoSuchInterface(interface.to_owned())
        }
        _ => ProbeError::Io {
            interface: interface.to_owned(),
            what,
            source,
        },
    }
}

fn interface_exists(interface: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(interface) else {
        return false;
    };
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
}

/// Broadcasts one DHCPDISCOVER on `interface` (only there: SO_BINDTODEVICE) from port 68 and
/// returns every server that offered within `wait`, one answer per server, sorted by server
/// address. Runs in the calling thread's network namespace; needs root.
///
/// Servers may hold their offer back while they check the address is free (dnsmasq pings it
/// for ~3 s unless `no-ping`, ISC dhcpd for 1 s): on a real network wait at least 4 s. The
/// DISCOVER leaves from the interface's own address when it has one (a UDP socket cannot send
/// from 0.0.0.0 then); servers answer by broadcast all the same (broadcast flag, no ciaddr).
pub fn probe(interface: &str, wait: Duration) -> Result<Vec<DhcpAnswer>, ProbeError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return Err(ProbeError::NotRoot { uid });
    }
    if !interface_exists(interface) {
        return Err(ProbeError::NoSuchInterface(interface.to_owned()));
    }
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|_| ProbeError::Random)?;
    let xid = u32::from_be_bytes([random[0], random[1], random[2], random[3]]);
    let mac = random_mac([
        random[4], random[5], random[6], random[7], random[8], random[9],
    ]);
    let packet = discover_packet(xid, mac)?;

    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err(interface, "opening a UDP socket"))?;
    sock.set_reuse_address(true)
        .map_err(io_err(interface, "setting SO_REUSEADDR"))?;
    sock.set_broadcast(true)
        .map_err(io_err(interface, "setting SO_BROADCAST"))?;
    sock.bind_device(Some(interface.as_bytes()))
        .map_err(io_err(interface, "binding to the interface"))?;
    let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
    sock.bind(&local.into())
        .map_err(io_err(interface, "binding UDP port 68"))?;
    let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));
    sock.send_to(&packet, &to.into())
        .map_err(io_err(interface, "sending the DHCPDISCOVER"))?;

    let deadline = Instant::now() + wait;
    let mut answers: Vec<DhcpAnswer> = Vec::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))
            .map_err(io_err(interface, "setting the receive timeout"))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(interface, "receiving offers")(e)),
        };
        // SAFETY: recv_from initialised the first `n` bytes of `buf`.
        let bytes: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let source = match from.as_socket() {
            Some(SocketAddr::V4(a)) => *a.ip(),
            _ => Ipv4Addr::UNSPECIFIED,
        };
        if let Some(a) = parse_reply(&bytes, xid, source)
            && !answers.iter().any(|b| b.server == a.server)
        {
            answers.push(a);
        }
    }
    answers.sort();
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XID: u32 = 0x1234_5678;
    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).expect("decodes")
    }

    fn encode(msg: &Message) -> Vec<u8> {
        let mut buf = Vec::new();
        msg.encode(&mut Encoder::new(&mut buf)).expect("encodes");
        buf
    }

    /// A reply to the probe's DISCOVER, as a server would send it.
    fn reply(yiaddr: Ipv4Addr, siaddr: Ipv4Addr) -> Message {
        let mut m = Message::new_with_id(
            XID,
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            siaddr,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Offer));
        m
    }

    #[test]
    fn a_missing_interface_or_no_root_is_said_before_anything_is_sent() {
        let e = probe("parc-no-such0", Duration::ZERO).unwrap_err();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(
                matches!(e, ProbeError::NoSuchInterface(ref i) if i == "parc-no-such0"),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                "no network interface named `parc-no-such0` (see `ip link`)"
            );
        } else {
            assert!(matches!(e, ProbeError::NotRoot { .. }), "{e:?}");
        }
    }

    #[test]
    fn random_macs_are_locally_administered_unicast() {
        for first in [0x00, 0x01, 0xff, 0x53] {
            let mac = random_mac([first, 1, 2, 3, 4, 5]);
            assert_eq!(mac[0] & 0b11, 0b10, "{mac:02x?}");
            assert_eq!(&mac[1..], &[1, 2, 3, 4, 5]);
        }
    }

    #[test]
    fn the_discover_looks_like_a_pxe_rom_asking_for_everything() {
        let bytes = discover_packet(XID, MAC).unwrap();
        assert!(bytes.len() >= 300, "BOOTP minimum size: {}", bytes.len());
        let m = decode(&bytes);
        assert_eq!(m.opcode(), Opcode::BootRequest);
        assert_eq!(m.xid(), XID);
        assert!(m.flags().broadcast());
        assert_eq!(m.chaddr(), &MAC);
        assert_eq!(m.htype(), HType::Eth);
        assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
        let o = m.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Discover));
        assert_eq!(
            o.get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(PXE_CLASS.as_bytes().to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::ClientSystemArchitecture),
            Some(&DhcpOption::ClientSystemArchitecture(
                Architecture::Intelx86PC
            ))
        );
        let Some(DhcpOption::ParameterRequestList(prl)) = o.get(OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list");
        };
        let codes: Vec<u8> = prl.iter().map(|c| u8::from(*c)).collect();
        for want in [1, 3, 6, 15, 43, 54, 60, 66, 67] {
            assert!(
                codes.contains(&want),
                "option {want} not requested: {codes:?}"
            );
        }
        // Option 93 is two bytes of arch 0 on the wire.
        let pos = bytes[240..].windows(4).position(|w| w == [93, 2, 0, 0]);
        assert!(pos.is_some(), "option 93 = arch 0 on the wire");
    }

    #[test]
    fn an_offer_with_an_address_is_a_dhcp_server() {
        let mut m = reply(Ipv4Addr::new(10, 77, 0, 150), Ipv4Addr::UNSPECIFIED);
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 254)));
        m.opts_mut()
            .insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 77, 0, 1,
            )]));
        let a = parse_reply(&encode(&m), XID, Ipv4Addr::new(10, 77, 0, 9)).unwrap();
        assert_eq!(
            a,
            DhcpAnswer {
                server: Ipv4Addr::new(10, 77, 0, 254),
                offered: Some(Ipv4Addr::new(10, 77, 0, 150)),
                boot_file: None,
                next_server: None,
                pxe: false,
            }
        );
        assert_eq!(a.kind(), AnswerKind::Addresses);
    }

    #[test]
    fn a_proxy_reply_is_a_pxe_server_without_addresses() {
        let mut m = reply(Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(172, 16, 4, 2));
        m.set_fname_str("undionly.0");
        m.opts_mut()
            .insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        m.opts_mut()
            .insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
        // No option 54: the server is the packet's source.
        let a = parse_reply(&encode(&m), XID, Ipv4Addr::new(172, 16, 4, 2)).unwrap();
        assert_eq!(a.server, Ipv4Addr::new(172, 16, 4, 2));
        assert_eq!(a.offered, None);
        assert_eq!(a.boot_file.as_deref(), Some("undionly.0"));
        assert_eq!(a.next_server, Some(Ipv4Addr::new(172, 16, 4, 2)));
        assert!(a.pxe);
        assert_eq!(a.kind(), AnswerKind::ProxyPxe);
    }

    #[test]
    fn boot_options_66_and_67_are_read() {
        let mut m = reply(Ipv4Addr::new(10, 0, 0, 50), Ipv4Addr::UNSPECIFIED);
        m.opts_mut()
            .insert(DhcpOption::BootfileName(b"undionly.kpxe".to_vec()));
        m.opts_mut()
            .insert(DhcpOption::TFTPServerName(b"10.0.0.2".to_vec()));
        let a = parse_reply(&encode(&m), XID, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        assert_eq!(a.boot_file.as_deref(), Some("undionly.kpxe"));
        assert_eq!(a.next_server, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(!a.pxe);
    }

    #[test]
    fn other_traffic_is_ignored() {
        let offer = reply(Ipv4Addr::new(10, 0, 0, 50), Ipv4Addr::UNSPECIFIED);
        let src = Ipv4Addr::new(10, 0, 0, 1);
        assert!(
            parse_reply(&encode(&offer), XID + 1, src).is_none(),
            "other xid"
        );
        let mut ack = offer.clone();
        ack.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Ack));
        assert!(
            parse_reply(&encode(&ack), XID, src).is_none(),
            "not an offer"
        );
        let mut request = offer.clone();
        request.set_opcode(Opcode::BootRequest);
        assert!(
            parse_reply(&encode(&request), XID, src).is_none(),
            "a request"
        );
        assert!(parse_reply(&[1, 2, 3], XID, src).is_none(), "garbage");
        // Our own DISCOVER, should it come back to us.
        let own = discover_packet(XID, MAC).unwrap();
        assert!(parse_reply(&own, XID, src).is_none());
    }
}
