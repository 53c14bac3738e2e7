//! Offline Domain Join against the lab's Samba AD DC: the blobs of three workstations of a
//! Windows room (c112) provisioned through the DC's admin session into the room's OU, each
//! account there (`samba-tool computer show`), each blob decoding to an ODJ blob naming the
//! domain and the machine; a second provisioning (reimage) re-provisions the same account; a
//! wrong password is refused with its kind; no secret (the administrator's password, a blob)
//! in any process's argv or environment while it ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::adapters::offline_join::{DcOfflineJoin, Flavour};
use parc::ports::{
    Directory, ExecRequest, OfflineJoin, PortErrorKind, RemoteHost, SecretBytes, SecretSource,
};

use crate::cases_steps::sample_for_secret;
use crate::{Case, Ctx, Net};

pub fn cases() -> Vec<Case> {
    vec![Case {
        name: "offline_join_provision_three_of_a_windows_room",
        net: Net::Lab,
        run: provision_three,
    }]
}

const ROOM: &str = "c112";

fn provisioner(ctx: &Ctx, password: SecretSource) -> DcOfflineJoin {
    DcOfflineJoin::new(
        Arc::new(ctx.connector()),
        ctx.lab.dc_address(),
        ctx.lab.dns_domain(),
        Some(format!("dc1.{}", ctx.lab.dns_domain())),
        Flavour::Samba {
            // The lab DC's smb.conf is where Samba keeps it on any DC (lab/dc-up.sh).
            smb_conf: None,
            account: "Administrator".into(),
            password,
        },
    )
}

/// The UTF-16LE encoding of `s` (how an ODJ blob, NDR, carries its strings).
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn provision_three(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dir = ctx.directory().await;
        let ou = parc::steps::join::room_ou(ROOM, &ctx.base_ou);
        parc::steps::join::ensure_room_ou(&dir, &ou).await.unwrap();
        let pw = ctx.password.clone();
        let odj = provisioner(&ctx, Arc::new(move || Ok(pw.clone())));

        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_for_secret(vec![ctx.password_text()], "net offlinejoin", stop.clone());
        let domain = ctx.lab.dns_domain().to_owned();
        let mut blobs = Vec::new();
        for n in 1..=3 {
            let computer = format!("C112-P0{n}");
            let blob = odj.provision(&computer, &ou).await.unwrap();
            let text = String::from_utf8(blob.0.clone()).expect("the blob is base64 text");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_else(|e| panic!("the blob of {computer} is not base64: {e}"));
            // ODJ_PROVISION_DATA, NDR: a common type header (version 1, little endian,
            // length 8, filler 0xcccccccc), then the domain and machine names in UTF-16LE.
            assert_eq!(&raw[..8], &[0x01, 0x10, 0x08, 0x00, 0xcc, 0xcc, 0xcc, 0xcc]);
            assert!(contains(&raw, &utf16(&domain)), "{computer}: no {domain}");
            assert!(contains(&raw, &utf16(&computer)), "{computer}: no name");
            blobs.push(text);
        }
        // A reimage provisions the existing account again: a new machine password, so a new
        // blob, and still one account, in the room's OU.
        let before = dir.locate_computer("c112-p01").await.unwrap().unwrap();
        let again = odj.provision("C112-P01", &ou).await.unwrap();
        assert_ne!(String::from_utf8_lossy(&again.0), blobs[0]);
        let after = dir.locate_computer("c112-p01").await.unwrap().unwrap();
        assert_eq!(before, after);
        stop.store(true, Ordering::SeqCst);
        let (sampled, saw, leaks) = sampler.join().unwrap();
        assert!(
            saw,
            "the sampler never saw net offlinejoin run ({sampled} samples)"
        );
        assert!(leaks.is_empty(), "a secret in an argv: {leaks:?}");

        // The accounts as the DC's own tool shows them, in the room's OU.
        let dc = ctx
            .connector()
            .connect_host(&ctx.lab.dc_address())
            .await
            .unwrap();
        for n in 1..=3 {
            let req = ExecRequest {
                command: format!(
                    "samba-tool computer show C112-P0{n} -H {}",
                    parc::quote::sh(ctx.lab.dc_sam())
                ),
                stdin: None,
                timeout: std::time::Duration::from_secs(30),
                cancel: Default::default(),
            };
            let out = dc.exec(req, &mut |_, _| {}).await.unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.success(), "{text}");
            assert!(
                text.to_lowercase()
                    .contains(&format!("dn: cn=c112-p0{n},{}", ou.to_lowercase())),
                "{text}"
            );
        }

        // A wrong password: refused, named, and the wrong password is not in the message.
        let wrong = provisioner(
            &ctx,
            Arc::new(|| Ok(SecretBytes(b"not-the-pw-42".to_vec()))),
        );
        let e = wrong.provision("C112-P09", &ou).await.unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Refused, "{e}");
        assert!(!e.message.contains("not-the-pw-42"), "{e}");
        assert!(dir.locate_computer("c112-p09").await.unwrap().is_none());
    }
    .boxed()
}
