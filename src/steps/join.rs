//! Join (procedure step h): puts a workstation in the room's OU (`OU=<room>,<base OU>`) of
//! the domain. Linux: `adcli join --stdin-password` — the password travels on the command's
//! stdin, never in its argv, and never appears in an error (scrubbed). Re-joining a machine
//! whose computer account exists resets that account instead of creating another. Windows:
//! `Add-Computer` over SSH PowerShell, the password read from stdin (rendered only).

use serde_json::json;

use super::run::run;
use super::{StepError, templates};
use crate::ports::{Directory, RemoteHost, SecretBytes};

/// What to join and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// DNS name of the domain, e.g. `lycee-mistral.test`.
    pub domain: String,
    /// The room's OU, see [`room_ou`].
    pub ou_dn: String,
    /// The account allowed to join machines (its password is passed separately).
    pub account: String,
    /// NetBIOS computer name, see [`computer_name`].
    pub computer_name: String,
    pub host_fqdn: String,
}

impl JoinRequest {
    /// The usual request for workstation `hostname` of `room`.
    pub fn for_host(
        hostname: &str,
        room: &str,
        base_ou: &str,
        domain: &str,
        account: &str,
    ) -> Self {
        Self {
            domain: domain.to_owned(),
            ou_dn: room_ou(room, base_ou),
            account: account.to_owned(),
            computer_name: computer_name(hostname),
            host_fqdn: format!("{hostname}.{domain}"),
        }
    }
}

/// PowerShell printing the DNS domain a Windows machine is a member of, or nothing when it
/// is in a workgroup.
pub const WINDOWS_DOMAIN_MEMBERSHIP: &str =
    "$cs = Get-CimInstance Win32_ComputerSystem; if ($cs.PartOfDomain) { $cs.Domain }";

/// `OU=<room>,<base OU>`.
pub fn room_ou(room: &str, base_ou: &str) -> String {
    format!("OU={room},{base_ou}")
}

pub use crate::domain::device::computer_name;

/// Makes sure the room's OU exists (created, with missing parents, if not).
pub async fn ensure_room_ou(dir: &dyn Directory, ou_dn: &str) -> Result<(), StepError> {
    dir.ensure_ou(ou_dn)
        .await
        .map_err(|source| StepError::Directory {
            what: format!("creating {ou_dn}"),
            source,
        })
}

/// The Linux join command (no secret in it).
pub fn render_linux(req: &JoinRequest) -> Result<String, StepError> {
    templates::render("linux-join", &json!(req_data(req)))
}

/// The Windows join script (PowerShell over SSH; the password is read from stdin).
pub fn render_windows(req: &JoinRequest) -> Result<String, StepError> {
    templates::render("windows-join", &json!(req_data(req)))
}

fn req_data(req: &JoinRequest) -> serde_json::Value {
    json!({
        "domain": req.domain,
        "ou_dn": req.ou_dn,
        "account": req.account,
        "computer_name": req.computer_name,
        "host_fqdn": req.host_fqdn,
    })
}

/// Removes every occurrence of the secret from `text`.
pub fn scrub(text: &str, secret: &SecretBytes) -> String {
    let s = String::from_utf8_lossy(&secret.0);
    let s = s.trim_end_matches(['\r', '\n']);
    if s.is_empty() {
        text.to_owned()
    } else {
        text.replace(s, "<secret>")
    }
}

/// What adcli reported about the joined computer (`--show-details`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub details: String,
}

/// Joins a Linux workstation with `adcli join`; the password goes through stdin only.
pub async fn join_linux(
    host: &dyn RemoteHost,
    req: &JoinRequest,
    password: &SecretBytes,
) -> Result<Joined, StepError> {
    let command = render_linux(req)?;
    let mut stdin = password.0.clone();
    stdin.push(b'\n');
    let what = format!("joining {} to {}", req.computer_name, req.domain);
    let out = run(host, &what, command, Some(SecretBytes(stdin))).await?;
    let stdout = scrub(&String::from_utf8_lossy(&out.stdout), password);
    let stderr = scrub(&String::from_utf8_lossy(&out.stderr), password);
    if out.success() {
        return Ok(Joined { details: stdout });
    }
    let detail = stderr.trim().to_owned();
    let refused = [
        "Couldn't authenticate",
        "Preauthentication failed",
        "Password incorrect",
    ];
    if refused.iter().any(|r| detail.contains(r)) {
        return Err(StepError::JoinCredentials {
            host: host.name().to_owned(),
            domain: req.domain.clone(),
            account: req.account.clone(),
            detail,
        });
    }
    Err(StepError::Command {
        host: host.name().to_owned(),
        what,
        status: out
            .exit_status
            .map_or_else(|| "by signal".to_owned(), |s| s.to_string()),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> JoinRequest {
        JoinRequest::for_host(
            "b204-p01",
            "B204",
            "OU=Pedagogie,DC=lycee-mistral,DC=test",
            "lycee-mistral.test",
            "Administrator",
        )
    }

    #[test]
    fn names_and_ou() {
        assert_eq!(
            computer_name("b204-poste-professeur.lycee.test"),
            "B204-POSTE-PROF"
        );
        assert_eq!(req().ou_dn, "OU=B204,OU=Pedagogie,DC=lycee-mistral,DC=test");
    }

    #[test]
    fn golden_linux_join_has_no_secret_slot() {
        let cmd = render_linux(&req()).unwrap();
        assert_eq!(cmd, include_str!("golden/linux-join.txt").trim_end());
        assert!(cmd.contains("--stdin-password"));
    }

    #[test]
    fn golden_windows_add_computer() {
        let mut r = req();
        r.account = "MISTRAL\\svc-parc".into();
        let ps = render_windows(&r).unwrap();
        assert_eq!(ps, include_str!("golden/windows-join.txt").trim_end());
    }

    #[test]
    fn scrub_removes_the_password() {
        let pw = SecretBytes(b"S3cr3t!pw".to_vec());
        assert_eq!(scrub("bad S3cr3t!pw here", &pw), "bad <secret> here");
    }
}
