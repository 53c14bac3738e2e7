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
    vec![
        Case {
            name: "offline_join_provision_three_of_a_windows_room",
            net: Net::Lab,
            run: provision_three,
        },
        Case {
            name: "offline_join_a_windows_room_runs_until_it_needs_windows",
            net: Net::Lab,
            run: windows_room,
        },
    ]
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

/// A step log kept in memory.
#[derive(Default)]
struct Lines(std::sync::Mutex<Vec<String>>);

impl parc::ports::steps::StepLog for Lines {
    fn line(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }
}

/// The lab run as a Windows room (`os.family = "windows"`, room c112, the lab's machines
/// standing in for its master and workstations) through the real step bodies and adapters:
/// collect takes the MSI into the cache, deploy's answer file provisions c112-p02 on the DC
/// and renders unattend.xml with its blob in the join component, then install stops at the
/// master, a Linux machine, with what a Windows room needs; nothing was uploaded to it and
/// no secret is in an argv or the step log. (The NTFS deploy that writes this answer file on
/// the volume is tests/images.rs's, through the same agent and endpoint routes.)
fn windows_room(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    use parc::netboot::client::LocalBootEndpoint;
    use parc::ports::steps::{StepActions, StepCx, Target};
    use parc::steps::room::{RoomActions, SiteSettings, WindowsFirstBoot};
    async move {
        let msi = ctx.workspace.join("installers/arduino-ide_2.3.4_Windows_64bit.msi");
        std::fs::create_dir_all(msi.parent().unwrap()).unwrap();
        std::fs::write(&msi, b"\xd0\xcf\x11\xe0 not a real MSI, a lab stand-in").unwrap();
        let sha = ctx.sha(&msi);
        let text = format!(
            "id = \"c112\"\nname = \"CAO\"\nmodel = \"precision-3630\"\n\n[os]\nfamily = \"windows\"\nbase_image = \"win11-edu-23h2\"\n\n\
             [[software]]\nname = \"Arduino IDE\"\nversion = \"2.3.4\"\npath = \"installers/arduino-ide_2.3.4_Windows_64bit.msi\"\nsha256 = \"{sha}\"\nlicence = \"free\"\n"
        );
        let (recipe, findings) =
            parc::domain::recipe::parse(&parc::domain::finding::Source::new("rooms/c112.toml", text));
        let recipe = Arc::new(recipe.unwrap_or_else(|| panic!("{findings:?}")));

        let dir = ctx.directory().await;
        let pw = ctx.password.clone();
        let admin = SecretBytes(b"Lab-Adm1n-not-a-real-one".to_vec());
        let state = tempfile::tempdir().unwrap();
        let ep = Arc::new(
            parc::netboot::endpoint::Endpoint::open(
                &state.path().join("boot"),
                "http://127.0.0.1:1",
                state.path(),
                std::time::Duration::from_secs(60),
            )
            .unwrap(),
        );
        let actions = RoomActions {
            site: SiteSettings {
                workspace: ctx.workspace.clone(),
                domain: ctx.lab.dns_domain().into(),
                base_ou: ctx.base_ou.clone(),
                join_account: "Administrator".into(),
                ssh_user: "root".into(),
                ssh_port: 22,
                inject: Vec::new(),
                wake_timeout: std::time::Duration::from_secs(5),
                boot_timeout: std::time::Duration::from_secs(5),
                ssh_timeout: std::time::Duration::from_secs(5),
                multicast: Default::default(),
                min_receivers: None,
                read_all: false,
            },
            connector: Arc::new(ctx.connector()),
            boot: Arc::new(LocalBootEndpoint::new(ep)),
            power: Arc::new(parc::adapters::wol::WakeOnLan::new(Vec::new())),
            directory: Arc::new(ctx.directory().await),
            images: Arc::new(parc::adapters::fake::FakeImages::new(state.path())),
            collector: parc::steps::collect::Collector::new(ctx.cache.clone()),
            join_password: Arc::new(|| panic!("a Windows room never asks for the join password")),
            offline_join: Some(Arc::new(provisioner(&ctx, Arc::new(move || Ok(pw.clone()))))),
            windows: Some(WindowsFirstBoot {
                admin_password: Arc::new(move || Ok(admin.clone())),
                time_zone: "Romance Standard Time".into(),
                locale: "fr-FR".into(),
                input_locale: "040c:0000040c".into(),
                organization: "Lycée Frédéric Mistral (labo)".into(),
            }),
            ou_ready: tokio::sync::Mutex::new(false),
            verify_log: Default::default(),
            session: Default::default(),
        };
        let master = ctx.master();
        let target = |name: &str| Target {
            hostname: name.into(),
            mac: "52:54:00:c1:12:00".into(),
            ip: ctx.lab.address(name).map(|a| a.address),
        };
        let log = Arc::new(Lines::default());
        let cx = StepCx {
            room: ROOM.into(),
            recipe,
            recipe_digest: "sha256:test".into(),
            software_digest: "sha256:test".into(),
            master: target(&master),
            image: Some("c112/v1".into()),
            cancel: Default::default(),
            log: log.clone(),
            reporter: Arc::new(parc::ports::NullReporter),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let secrets = vec![ctx.password_text(), "Lab-Adm1n-not-a-real-one".to_string()];
        let sampler = sample_for_secret(secrets.clone(), "net offlinejoin", stop.clone());

        actions.collect(&cx).await.unwrap();
        assert!(log.0.lock().unwrap().iter().any(|l| l.contains("Arduino IDE") && l.contains(&sha)));

        let xml = actions.answer_file(&cx, &target("c112-p02")).await.unwrap();
        let xml = String::from_utf8(xml.0).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed answer file");
        let blob = doc
            .descendants()
            .find(|n| n.has_tag_name("AccountData"))
            .and_then(|n| n.text())
            .expect("an AccountData");
        let join = doc
            .descendants()
            .find(|n| n.attribute("name") == Some("Microsoft-Windows-UnattendedJoin"))
            .unwrap();
        assert_eq!(join.parent().unwrap().attribute("pass"), Some("specialize"));
        assert!(join.descendants().any(|n| n.text() == Some(blob)));
        let raw = base64::engine::general_purpose::STANDARD.decode(blob).unwrap();
        assert!(contains(&raw, &utf16("C112-P02")));
        assert!(contains(&raw, &utf16(ctx.lab.dns_domain())));
        assert!(!xml.contains("Lab-Adm1n-not-a-real-one") && !xml.contains(&ctx.password_text()));
        let ou = parc::steps::join::room_ou(ROOM, &ctx.base_ou);
        let loc = dir.locate_computer("c112-p02").await.unwrap().expect("provisioned");
        assert!(loc.dn.to_lowercase().ends_with(&ou.to_lowercase()), "{}", loc.dn);

        let e = actions.install(&cx).await.unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Refused, "{e}");
        for part in [
            "answers over SSH but not in PowerShell",
            "powershell.exe",
            "os.family = \"windows\"",
            "docs/windows.md",
        ] {
            assert!(e.message.contains(part), "{part}: {e}");
        }
        let on_master = ctx.connect(&master).await;
        let req = ExecRequest {
            command: "ls /var/cache/parc/installers 'C:\\ProgramData\\parc' 2>&1; true".into(),
            stdin: None,
            timeout: std::time::Duration::from_secs(10),
            cancel: Default::default(),
        };
        let out = on_master.exec(req, &mut |_, _| {}).await.unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("arduino"),
            "an installer reached the master"
        );

        stop.store(true, Ordering::SeqCst);
        let (_, saw, leaks) = sampler.join().unwrap();
        assert!(saw, "the provisioning was not seen running");
        assert!(leaks.is_empty(), "a secret in an argv: {leaks:?}");
        for l in log.0.lock().unwrap().iter() {
            assert!(!secrets.iter().any(|s| l.contains(s.as_str())), "{l}");
            assert!(!l.contains(&blob[..40]), "the blob in the log: {l}");
        }
    }
    .boxed()
}
