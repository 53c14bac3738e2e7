//! What the lab cases share: the lab, a technician's workspace (parc's key authorized on the
//! lab, host keys pinned from the lab's own key files), the software to collect (two
//! versions of a locally built .deb, a tarball served over HTTP, a Debian package from the
//! configured mirror) and the room's expectations.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use parc::adapters::samba_directory::SambaDirectory;
use parc::adapters::ssh::{SshConnector, SshHost, SshOptions, known_hosts};
use parc::lab::Lab;
use parc::ports::SecretBytes;
use parc::steps::cache::{ContentCache, sha256_of};
use parc::steps::install::{InstallSpec, InstallerKind};
use russh::keys::PublicKey;

pub struct Ctx {
    pub lab: Lab,
    _ws: tempfile::TempDir,
    pub workspace: PathBuf,
    pub state: PathBuf,
    pub cache: ContentCache,
    pub files: PathBuf,
    pub deb_v1: PathBuf,
    pub deb_v09: PathBuf,
    pub tarball: PathBuf,
    pub hello_version: String,
    pub hello_sha: String,
    pub password: SecretBytes,
    pub room: String,
    pub base_ou: String,
    pub image_id: String,
    /// The host's files the lab must not change, as they were once the lab was up.
    pub host_before: Vec<(String, String)>,
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn build_deb(dir: &Path, version: &str) -> Result<PathBuf, String> {
    let root = dir.join(format!("parc-lab-tool-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.join("usr/share/parc-lab-tool")).map_err(|e| e.to_string())?;
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: parc-lab-tool\nVersion: {version}\nArchitecture: all\nMaintainer: parc lab <lab@lycee-mistral.test>\nDescription: a product of the lab's room\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(root.join("usr/share/parc-lab-tool/VERSION"), version)
        .map_err(|e| e.to_string())?;
    let deb = dir.join(format!("parc-lab-tool_{version}_all.deb"));
    sh(&format!(
        "dpkg-deb --root-owner-group --build {} {} >/dev/null",
        root.display(),
        deb.display()
    ))?;
    Ok(deb)
}

/// `Field: value` of `apt-cache show` for the candidate of `package`.
fn apt_field(package: &str, field: &str) -> Result<String, String> {
    let show = sh(&format!("apt-cache show --no-all-versions {package}"))?;
    show.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")))
        .map(str::to_owned)
        .ok_or_else(|| format!("apt-cache show {package} has no {field}"))
}

impl Ctx {
    pub fn new(lab: Lab) -> Result<Ctx, String> {
        let ws = tempfile::Builder::new()
            .prefix("parc-lab-ws-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let workspace = ws.path().to_owned();
        let state = workspace.join(".parc");
        let files = workspace.join("fixtures");
        std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;

        // parc's own key, authorized on every lab host; host keys pinned from the lab's key
        // files (what a technician does after comparing fingerprints).
        let connector =
            SshConnector::open(&state, SshOptions::default()).map_err(|e| e.to_string())?;
        lab.authorize_key(&connector.public_key_line())
            .map_err(|e| e.to_string())?;
        let mut pins: Vec<(String, String)> =
            lab.hosts().into_iter().map(|h| (h.name, h.ip)).collect();
        let dc = lab.dc_address();
        pins.push((dc.hostname.clone(), dc.address.clone()));
        for (name, ip) in pins {
            let key = PublicKey::from_openssh(
                lab.host_public_key(&name)
                    .map_err(|e| e.to_string())?
                    .trim(),
            )
            .map_err(|e| e.to_string())?;
            known_hosts::pin(connector.known_hosts(), &ip, 22, &key).map_err(|e| e.to_string())?;
        }

        let deb_v1 = build_deb(&files, "1.0")?;
        let deb_v09 = build_deb(&files, "0.9")?;
        let tree = files.join("scratch-lab");
        std::fs::create_dir_all(tree.join("bin")).map_err(|e| e.to_string())?;
        std::fs::write(
            tree.join("bin/outil"),
            "#!/bin/sh\necho \"outil 3.29 ok\"\n",
        )
        .map_err(|e| e.to_string())?;
        sh(&format!("chmod 755 {}/bin/outil", tree.display()))?;
        let tarball = files.join("scratch-lab-3.29.tar.gz");
        sh(&format!(
            "tar -czf {} -C {} .",
            tarball.display(),
            tree.display()
        ))?;

        if apt_field("hello", "SHA256").is_err() {
            sh("apt-get update -qq")?;
        }
        let hello_sha = apt_field("hello", "SHA256")?;
        let hello_version = apt_field("hello", "Version")?;
        let password = lab.admin_password().map_err(|e| e.to_string())?;
        let base_ou = format!("OU=Pedagogie,{}", lab.base_dn());
        Ok(Ctx {
            cache: ContentCache::new(workspace.join("cache")),
            lab,
            _ws: ws,
            workspace,
            state,
            files,
            deb_v1,
            deb_v09,
            tarball,
            hello_version,
            hello_sha,
            password,
            room: "B204".into(),
            base_ou,
            image_id: "B204/2026-11-22.1".into(),
            host_before: crate::cases_lab::host_snapshot(),
        })
    }

    pub fn connector(&self) -> SshConnector {
        SshConnector::open(&self.state, SshOptions::default()).expect("opening the connector")
    }

    pub async fn connect(&self, name: &str) -> SshHost {
        let addr = self
            .lab
            .address(name)
            .unwrap_or_else(|| panic!("no lab host {name}"));
        self.connector()
            .connect_host(&addr)
            .await
            .unwrap_or_else(|e| panic!("connecting to {name}: {e}"))
    }

    pub async fn directory(&self) -> SambaDirectory {
        let dc = self
            .connector()
            .connect_host(&self.lab.dc_address())
            .await
            .unwrap_or_else(|e| panic!("connecting to the DC: {e}"));
        SambaDirectory::new(Box::new(dc), self.lab.dc_sam())
    }

    /// The workstations (without the master).
    pub fn workstations(&self) -> Vec<String> {
        self.lab
            .hosts()
            .into_iter()
            .skip(1)
            .map(|h| h.name)
            .collect()
    }

    pub fn master(&self) -> String {
        self.lab.hosts()[0].name.clone()
    }

    pub fn tool_spec(&self, version: &str) -> InstallSpec {
        InstallSpec {
            product: "Outil de labo".into(),
            package: "parc-lab-tool".into(),
            version: version.into(),
            kind: InstallerKind::Deb,
            silent_args: None,
        }
    }

    pub fn hello_spec(&self) -> InstallSpec {
        InstallSpec {
            product: "GNU Hello".into(),
            package: "hello".into(),
            version: self.hello_version.clone(),
            kind: InstallerKind::Deb,
            silent_args: None,
        }
    }

    pub fn scratch_spec(&self) -> InstallSpec {
        InstallSpec {
            product: "Scratch (labo)".into(),
            package: "scratch-lab".into(),
            version: "3.29".into(),
            kind: InstallerKind::Tar,
            silent_args: None,
        }
    }

    pub fn sha(&self, path: &Path) -> String {
        sha256_of(path).expect("hashing a fixture")
    }

    /// Text of the secret, for "appears nowhere" checks.
    pub fn password_text(&self) -> String {
        String::from_utf8_lossy(&self.password.0).trim().to_owned()
    }

    pub fn short_timeout() -> Duration {
        Duration::from_secs(1)
    }
}
