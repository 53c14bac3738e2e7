//! `PowerControl` for the field: wake-on-LAN magic packets (6 × 0xFF, then the MAC 16 times)
//! sent over UDP only to the addresses the site configured (the room's subnet broadcast, e.g.
//! 172.16.4.255:9) — never to a default or global broadcast.

use std::net::SocketAddr;

use async_trait::async_trait;

use crate::netboot::endpoint::tasks::normalize_mac;
use crate::ports::{PortError, PortErrorKind, PortResult, PowerControl};

/// The 102-byte magic packet waking `mac`.
pub fn magic_packet(mac: &str) -> Result<[u8; 102], crate::netboot::endpoint::tasks::TaskError> {
    let norm = normalize_mac(mac)?;
    let mut bytes = [0u8; 6];
    for (b, h) in bytes.iter_mut().zip(norm.split(':')) {
        *b = u8::from_str_radix(h, 16).unwrap_or_default();
    }
    let mut p = [0xFFu8; 102];
    for i in 0..16 {
        p[6 + 6 * i..12 + 6 * i].copy_from_slice(&bytes);
    }
    Ok(p)
}

/// Wakes machines by magic packet.
pub struct WakeOnLan {
    targets: Vec<SocketAddr>,
}

impl WakeOnLan {
    /// `targets`: where packets go (usually the room subnet's broadcast address, port 9).
    pub fn new(targets: Vec<SocketAddr>) -> Self {
        Self { targets }
    }
}

#[async_trait]
impl PowerControl for WakeOnLan {
    async fn power_on(&self, hostname: &str, mac: &str) -> PortResult<()> {
        let packet = magic_packet(mac)
            .map_err(|e| PortError::new(PortErrorKind::Other, format!("waking {hostname}: {e}")))?;
        if self.targets.is_empty() {
            return Err(PortError::new(
                PortErrorKind::Other,
                format!("waking {hostname}: no wake-on-LAN address configured for its room"),
            ));
        }
        for target in &self.targets {
            let bind: SocketAddr = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .map_err(|_| PortError::new(PortErrorKind::Other, "bad bind address"))?;
            let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| {
                PortError::new(
                    PortErrorKind::Unreachable,
                    format!("waking {hostname}: {e}"),
                )
                .with_source(e)
            })?;
            let _ = sock.set_broadcast(true);
            // Three packets, as wakeonlan tools do: UDP may drop one.
            for _ in 0..3 {
                sock.send_to(&packet, target).await.map_err(|e| {
                    PortError::new(
                        PortErrorKind::Unreachable,
                        format!("waking {hostname} ({mac}) via {target}: {e}"),
                    )
                    .with_source(e)
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_packet_has_its_layout() {
        let p = magic_packet("52-54-00-77-00-0A").unwrap();
        assert_eq!(&p[..6], &[0xFF; 6]);
        let mac = [0x52, 0x54, 0x00, 0x77, 0x00, 0x0A];
        for chunk in p[6..].chunks(6) {
            assert_eq!(chunk, mac);
        }
        assert!(magic_packet("52:54:00").is_err());
    }

    #[tokio::test]
    async fn sends_only_to_the_given_address() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let wol = WakeOnLan::new(vec![rx.local_addr().unwrap()]);
        wol.power_on("b204-p01", "52:54:00:77:00:01").await.unwrap();
        let mut buf = [0u8; 200];
        let (n, _) = rx.recv_from(&mut buf).await.unwrap();
        assert_eq!(n, 102);
        assert_eq!(buf[..102], magic_packet("525400770001").unwrap());
        let none = WakeOnLan::new(vec![]);
        assert!(
            none.power_on("b204-p01", "52:54:00:77:00:01")
                .await
                .is_err()
        );
    }
}
