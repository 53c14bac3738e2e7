//! The `Directory` port for a Samba AD domain controller, driven through an admin session
//! on the DC (`RemoteHost`): `samba-tool ou create` and `ldbsearch` against its sam.ldb. A
//! Windows DC would get its own adapter (PowerShell `New-ADOrganizationalUnit`, `Get-ADComputer`).

use async_trait::async_trait;

use crate::ports::{
    ComputerLocation, Directory, ExecRequest, PortError, PortErrorKind, PortResult, RemoteHost,
};
use crate::quote;

pub struct SambaDirectory {
    admin: Box<dyn RemoteHost>,
    /// `-H` argument of the tools: the sam.ldb path on the DC (or an ldap:// URL).
    sam: String,
}

impl SambaDirectory {
    pub fn new(admin: Box<dyn RemoteHost>, sam: impl Into<String>) -> Self {
        Self {
            admin,
            sam: sam.into(),
        }
    }

    async fn sh(&self, command: String) -> PortResult<(bool, String, String)> {
        let req = ExecRequest {
            command,
            stdin: None,
            timeout: std::time::Duration::from_secs(60),
            cancel: Default::default(),
        };
        let out = self.admin.exec(req, &mut |_, _| {}).await?;
        Ok((
            out.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The `dn:` values of an `ldbsearch` (LDIF lines unfolded).
    async fn search(&self, base: Option<&str>, filter: &str) -> PortResult<Vec<String>> {
        let base = match base {
            Some(b) => format!("-s base -b {} ", quote::sh(b)),
            None => String::new(),
        };
        let (_, out, _) = self
            .sh(format!(
                "ldbsearch -H {} {base}{} dn",
                quote::sh(&self.sam),
                quote::sh(filter)
            ))
            .await?;
        Ok(dns(&out))
    }

    async fn exists(&self, dn: &str) -> PortResult<bool> {
        Ok(!self.search(Some(dn), "(objectClass=*)").await?.is_empty())
    }
}

/// Unfolds LDIF and returns the `dn:` values.
fn dns(ldif: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for l in ldif.lines() {
        if let Some(rest) = l.strip_prefix(' ') {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
                continue;
            }
        }
        lines.push(l.to_owned());
    }
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_owned)
        .collect()
}

#[async_trait]
impl Directory for SambaDirectory {
    async fn ensure_ou(&self, ou_dn: &str) -> PortResult<()> {
        // From the top: every OU component not yet present is created.
        let parts: Vec<&str> = ou_dn.split(',').collect();
        for i in (0..parts.len()).rev() {
            if !parts[i].trim().to_ascii_uppercase().starts_with("OU=") {
                continue;
            }
            let dn = parts[i..].join(",");
            if self.exists(&dn).await? {
                continue;
            }
            let (ok, _, err) = self
                .sh(format!(
                    "samba-tool ou create {} -H {}",
                    quote::sh(&dn),
                    quote::sh(&self.sam)
                ))
                .await?;
            if !ok {
                return Err(PortError::new(
                    PortErrorKind::Other,
                    format!("creating the OU {dn}: {}", err.trim()),
                ));
            }
        }
        Ok(())
    }

    async fn locate_computer(&self, hostname: &str) -> PortResult<Option<ComputerLocation>> {
        let name = crate::domain::device::computer_name(hostname);
        let filter = format!("(&(objectClass=computer)(sAMAccountName={name}$))");
        let found = self.search(None, &filter).await?;
        match found.as_slice() {
            [] => Ok(None),
            [dn] => Ok(Some(ComputerLocation { dn: dn.clone() })),
            many => Err(PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "{} computer accounts named {name}: {}",
                    many.len(),
                    many.join("; ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_ldif_dns() {
        // Shape of `ldbsearch ... dn` output on Samba 4.17 (folded at 78 columns).
        let out = "# record 1\ndn: CN=B204-P01,OU=B204,OU=Pedagogie,DC=lycee-mistral,DC=test,DC=exa\n mple\n\n# Referral\nref: ldap:///CN=Configuration,DC=x\n\n# returned 2 records\n";
        assert_eq!(
            dns(out),
            vec!["CN=B204-P01,OU=B204,OU=Pedagogie,DC=lycee-mistral,DC=test,DC=example"]
        );
    }
}
