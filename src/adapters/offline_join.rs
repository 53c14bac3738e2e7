//! The `OfflineJoin` port on the domain controller itself, through an admin session on it
//! (`RemoteHost`, SSH): the DC resolves its own name and reaches its own RPC endpoints, so the
//! provisioning does not depend on the technician's machine knowing the domain's DNS.
//!
//! - Samba AD DC: `net offlinejoin provision … reuse printblob` (Samba ≥ 4.15), run as the
//!   session's user with the domain account given by name; its password is written on the
//!   command's stdin (`PASSWD_FD=0`), never in an argv. Exercised against the lab's DC.
//! - Windows DC: `djoin.exe /provision … /reuse /printblob` in the session's PowerShell; the
//!   session's own rights create the account, so no password travels at all. Rendered and
//!   golden-tested only: no Windows DC ran here.
//!
//! The blob is returned as `SecretBytes` and never written to a file on either side.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::{
    ExecRequest, HostAddress, OfflineJoin, PortError, PortErrorKind, PortResult, RemoteConnector,
    SecretBytes, SecretSource,
};
use crate::quote;

/// Which tool the DC provisions with.
pub enum Flavour {
    /// Samba's `net`: the domain account that creates computer objects and its password.
    Samba {
        /// smb.conf of the DC when not the default one (`-s`).
        smb_conf: Option<String>,
        account: String,
        password: SecretSource,
    },
    /// Windows' `djoin.exe`, with the SSH session's own rights.
    Windows,
}

pub struct DcOfflineJoin {
    /// Opens the admin session on the DC, when a provisioning needs it.
    connector: Arc<dyn RemoteConnector>,
    dc: HostAddress,
    /// DNS name of the domain (`lycee-mistral.test`).
    domain: String,
    /// The DC's own DNS name, named to the tool so it provisions on this DC (`dc1.lycee-mistral.test`).
    dc_name: Option<String>,
    flavour: Flavour,
}

impl DcOfflineJoin {
    pub fn new(
        connector: Arc<dyn RemoteConnector>,
        dc: HostAddress,
        domain: impl Into<String>,
        dc_name: Option<String>,
        flavour: Flavour,
    ) -> Self {
        Self {
            connector,
            dc,
            domain: domain.into(),
            dc_name,
            flavour,
        }
    }

    /// The command that provisions `computer` in `ou_dn` (no secret in it).
    pub fn command(&self, computer: &str, ou_dn: &str) -> String {
        match &self.flavour {
            Flavour::Samba {
                smb_conf, account, ..
            } => {
                let mut c = String::from("PASSWD_FD=0 net offlinejoin provision");
                if let Some(conf) = smb_conf {
                    c.push_str(&format!(" -s {}", quote::sh(conf)));
                }
                c.push_str(&format!(" -U {}", quote::sh(account)));
                c.push_str(&format!(
                    " {} {} {}",
                    quote::sh(&format!("domain={}", self.domain)),
                    quote::sh(&format!("machine_name={computer}")),
                    quote::sh(&format!("machine_account_ou={ou_dn}")),
                ));
                if let Some(dc) = &self.dc_name {
                    c.push_str(&format!(" {}", quote::sh(&format!("dcname={dc}"))));
                }
                c.push_str(" reuse printblob");
                c
            }
            Flavour::Windows => {
                let dc = match &self.dc_name {
                    Some(dc) => format!(" /dcname {}", quote::ps(dc)),
                    None => String::new(),
                };
                format!(
                    "$out = & djoin.exe /provision /domain {} /machine {} /machineou {}{dc} /reuse /printblob\n\
                     if ($LASTEXITCODE -ne 0) {{ [Console]::Error.WriteLine(($out | Out-String)); exit $LASTEXITCODE }}\n\
                     $out",
                    quote::ps(&self.domain),
                    quote::ps(computer),
                    quote::ps(ou_dn),
                )
            }
        }
    }
}

/// The blob in the tool's output: its longest line made only of base64 characters (the
/// tools print a status line before it, djoin one after it too).
pub fn blob_of(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.len() >= 64
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        })
        .max_by_key(|l| l.len())
}

/// The tool's complaint, without `net`'s re-reads of the already consumed stdin and without
/// the secret should a tool ever echo it.
fn complaint(stderr: &str, stdout: &str, secret: Option<&[u8]>) -> String {
    let text: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Error reading password from file descriptor"))
        .collect();
    let mut msg = text.join("; ");
    if let Some(s) = secret.and_then(|s| std::str::from_utf8(s).ok()) {
        if !s.is_empty() {
            msg = msg.replace(s, "<redacted>");
        }
    }
    if msg.is_empty() {
        "no output".into()
    } else {
        msg
    }
}

#[async_trait]
impl OfflineJoin for DcOfflineJoin {
    async fn provision(&self, computer: &str, ou_dn: &str) -> PortResult<SecretBytes> {
        let stdin = match &self.flavour {
            Flavour::Samba { password, .. } => Some(password()?),
            Flavour::Windows => None,
        };
        let secret = stdin.as_ref().map(|s| s.0.clone());
        let req = ExecRequest {
            command: self.command(computer, ou_dn),
            stdin,
            timeout: std::time::Duration::from_secs(60),
            cancel: Default::default(),
        };
        let admin = self.connector.connect(&self.dc).await?;
        let out = admin.exec(req, &mut |_, _| {}).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let what = format!(
            "provisioning the offline join of {computer} in {ou_dn} on {}",
            self.dc.hostname
        );
        if !out.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Samba 4.17 says "The attempted logon is invalid…" for a wrong password.
            let refused = [
                "NT_STATUS_LOGON_FAILURE",
                "attempted logon is invalid",
                "ACCESS_DENIED",
                "Access is denied",
            ];
            let kind = if refused
                .iter()
                .any(|r| stderr.contains(r) || stdout.contains(r))
            {
                PortErrorKind::Refused
            } else {
                PortErrorKind::Other
            };
            // stdout may hold a blob if a tool printed one before failing: never shown.
            let shown = if blob_of(&stdout).is_some() {
                ""
            } else {
                &stdout
            };
            return Err(PortError::new(
                kind,
                format!(
                    "{what}: exit {:?}: {}",
                    out.exit_status,
                    complaint(&stderr, shown, secret.as_deref())
                ),
            ));
        }
        match blob_of(&stdout) {
            Some(b) => Ok(SecretBytes(b.as_bytes().to_vec())),
            None => Err(PortError::new(
                PortErrorKind::Integrity,
                format!("{what}: the tool succeeded but printed no blob"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ExecOutcome, OutputSink, RemoteHost};
    use std::path::Path;
    use std::sync::Mutex;

    #[async_trait]
    impl RemoteConnector for FakeHost {
        async fn connect(&self, _: &HostAddress) -> PortResult<Box<dyn RemoteHost>> {
            Ok(Box::new(self.clone()))
        }
    }

    fn dc() -> HostAddress {
        HostAddress {
            hostname: "dc1".into(),
            address: "10.1.0.10".into(),
            port: 22,
            user: "root".into(),
            shell: crate::ports::RemoteShell::Posix,
        }
    }

    /// A command and its stdin.
    type Call = (String, Option<Vec<u8>>);

    /// Answers every command with one canned outcome and records the requests.
    #[derive(Clone)]
    struct FakeHost {
        answer: Arc<Mutex<(u32, String, String)>>,
        calls: Arc<Mutex<Vec<Call>>>,
    }

    impl FakeHost {
        fn new() -> Self {
            Self {
                answer: Arc::new(Mutex::new((0, String::new(), String::new()))),
                calls: Arc::default(),
            }
        }
        fn answer(&self, status: u32, stdout: &str, stderr: &str) {
            *self.answer.lock().unwrap() = (status, stdout.into(), stderr.into());
        }
    }

    #[async_trait]
    impl RemoteHost for FakeHost {
        fn name(&self) -> &str {
            "dc1"
        }
        async fn exec(&self, req: ExecRequest, _: OutputSink<'_>) -> PortResult<ExecOutcome> {
            self.calls
                .lock()
                .unwrap()
                .push((req.command, req.stdin.map(|s| s.0)));
            let (status, out, err) = self.answer.lock().unwrap().clone();
            Ok(ExecOutcome {
                exit_status: Some(status),
                stdout: out.into_bytes(),
                stderr: err.into_bytes(),
            })
        }
        async fn upload(&self, _: &Path, _: &str) -> PortResult<String> {
            unreachable!("provisioning uploads nothing")
        }
        async fn download(&self, _: &str, _: &Path) -> PortResult<String> {
            unreachable!("provisioning downloads nothing")
        }
    }

    const OU: &str = "OU=b204,OU=Salles,DC=lycee-mistral,DC=test";

    fn samba(host: FakeHost) -> DcOfflineJoin {
        DcOfflineJoin::new(
            Arc::new(host),
            dc(),
            "lycee-mistral.test",
            Some("dc1.lycee-mistral.test".into()),
            Flavour::Samba {
                smb_conf: Some("/srv/samba/etc/smb.conf".into()),
                account: "Administrator".into(),
                password: Arc::new(|| Ok(SecretBytes(b"S3cr3t'pw".to_vec()))),
            },
        )
    }

    #[test]
    fn samba_command_names_everything_but_the_password() {
        let j = samba(FakeHost::new());
        assert_eq!(
            j.command("B204-P01", OU),
            "PASSWD_FD=0 net offlinejoin provision -s '/srv/samba/etc/smb.conf' -U 'Administrator' \
             'domain=lycee-mistral.test' 'machine_name=B204-P01' \
             'machine_account_ou=OU=b204,OU=Salles,DC=lycee-mistral,DC=test' \
             'dcname=dc1.lycee-mistral.test' reuse printblob"
        );
    }

    #[test]
    fn windows_command_golden() {
        let j = DcOfflineJoin::new(
            Arc::new(FakeHost::new()),
            dc(),
            "lycee-mistral.test",
            None,
            Flavour::Windows,
        );
        assert_eq!(
            j.command("B204-P01", OU),
            "$out = & djoin.exe /provision /domain 'lycee-mistral.test' /machine 'B204-P01' \
             /machineou 'OU=b204,OU=Salles,DC=lycee-mistral,DC=test' /reuse /printblob\n\
             if ($LASTEXITCODE -ne 0) { [Console]::Error.WriteLine(($out | Out-String)); exit $LASTEXITCODE }\n\
             $out"
        );
    }

    #[test]
    fn the_blob_is_the_long_base64_line() {
        let blob =
            "ARAIAMzMzMzgCAAAAAAAAAAAAgABAAAAAgAAAAQAAgACAAAAAQAAALADAAAIAAIAAgAAAPgEAAAMAAIA";
        let net = format!(
            "Successfully provisioned computer 'B204-P01' in domain 'lycee-mistral.test'\n{blob}\n"
        );
        assert_eq!(blob_of(&net), Some(blob));
        let djoin = format!(
            "\nProvisioning the computer...\n\n{blob}\n\nThe operation completed successfully.\n"
        );
        assert_eq!(blob_of(&djoin), Some(blob));
        assert_eq!(blob_of("Successfully provisioned computer 'X'\n"), None);
    }

    #[tokio::test]
    async fn the_password_goes_on_stdin_and_a_failure_never_shows_it() {
        let host = FakeHost::new();
        host.answer(
            1,
            "",
            "Error reading password from file descriptor 0: empty password\nFailed to provision computer account: NT_STATUS_LOGON_FAILURE (S3cr3t'pw)\n",
        );
        let j = samba(host.clone());
        let e = j.provision("B204-P01", OU).await.unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Refused);
        assert!(!e.message.contains("S3cr3t"), "{}", e.message);
        assert!(!e.message.contains("file descriptor"), "{}", e.message);
        assert!(
            e.message.contains("NT_STATUS_LOGON_FAILURE"),
            "{}",
            e.message
        );
        let calls = host.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert!(!calls[0].0.contains("S3cr3t"));
        assert_eq!(calls[0].1.as_deref(), Some(&b"S3cr3t'pw"[..]));
    }
}
