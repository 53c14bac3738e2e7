//! The answer file (`unattend.xml`) of one Windows workstation, written by the deploy agent as
//! `Windows\Panther\unattend.xml` on the deployed volume, where Windows Setup looks first when
//! the generalised image boots:
//!
//! - specialize: the domain join from an Offline Domain Join blob
//!   (`Microsoft-Windows-UnattendedJoin/Identification/Provisioning/AccountData`, the form valid
//!   in specialize; `OfflineIdentification` is only read in the offlineServicing pass, which a
//!   booted image does not run), the computer name, time zone and organisation, and a command
//!   that installs a `SetupComplete.cmd` deleting this file once Setup has finished (the
//!   oobeSystem pass still needs it after specialize);
//! - oobeSystem: French locale and keyboard by default, every OOBE screen skipped, the local
//!   administrator password (encoded as Windows expects: base64 of the UTF-16LE password
//!   followed by `AdministratorPassword`; an obfuscation, so the file stays a secret).
//!
//! No join account or password is in it: the blob carries the machine account only.
//! Rendered and checked here against the documented schema; no Windows ran it here.

use base64::Engine as _;
use serde_json::json;

use super::{StepError, templates};

/// What one workstation's answer file says.
#[derive(Debug, Clone, Copy)]
pub struct Unattend<'a> {
    /// NetBIOS computer name (`B204-P01`).
    pub computer_name: &'a str,
    /// Windows time zone id (`Romance Standard Time`).
    pub time_zone: &'a str,
    /// UI, system and user locale (`fr-FR`).
    pub locale: &'a str,
    /// Keyboard layout (`040c:0000040c`).
    pub input_locale: &'a str,
    pub organization: &'a str,
    /// The local administrator password, in clear (encoded here).
    pub admin_password: &'a str,
    /// The ODJ blob, base64 text as `net offlinejoin` / `djoin` print it.
    pub odj_blob: &'a str,
}

/// `AdministratorPassword/Value` with `PlainText` false.
pub fn encode_admin_password(password: &str) -> String {
    let units: Vec<u8> = format!("{password}AdministratorPassword")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(units)
}

/// Renders the answer file (every value XML-escaped).
pub fn render_unattend(u: &Unattend<'_>) -> Result<String, StepError> {
    if u.computer_name.is_empty() || u.computer_name.len() > 15 {
        return Err(StepError::Render {
            what: "unattend.xml".into(),
            detail: format!(
                "computer name `{}` must be 1 to 15 characters",
                u.computer_name
            ),
        });
    }
    let data = json!({
        "computer_name": u.computer_name,
        "time_zone": u.time_zone,
        "locale": u.locale,
        "input_locale": u.input_locale,
        "organization": u.organization,
        "admin_password": encode_admin_password(u.admin_password),
        "odj_blob": u.odj_blob,
    });
    templates::render("windows-unattend", &data).map(|mut s| {
        s.push('\n');
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "urn:schemas-microsoft-com:unattend";

    fn b204_p01() -> Unattend<'static> {
        Unattend {
            computer_name: "B204-P01",
            time_zone: "Romance Standard Time",
            locale: "fr-FR",
            input_locale: "040c:0000040c",
            organization: "Lycée Frédéric Mistral",
            admin_password: "FAKE-Adm1n-pw",
            odj_blob: "ARAIAMzMzMzgCAAAAAAAAAAAAgABAAAAAgAAAAQAAgACAAAAAQAAALADAAAIAAIAFAKEBLOB==",
        }
    }

    /// The text of `pass/component/path…` in the answer file.
    fn at<'a>(
        doc: &'a roxmltree::Document<'a>,
        pass: &str,
        component: &str,
        path: &[&str],
    ) -> Option<&'a str> {
        let settings = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name((NS, "settings")) && n.attribute("pass") == Some(pass))?;
        let mut node = settings.children().find(|n| {
            n.has_tag_name((NS, "component")) && n.attribute("name") == Some(component)
        })?;
        for p in path {
            node = node.children().find(|n| n.has_tag_name((NS, *p)))?;
        }
        node.text()
    }

    #[test]
    fn golden_for_a_b204_workstation() {
        let xml = render_unattend(&b204_p01()).unwrap();
        crate::golden::check("src/steps/golden/windows-unattend.xml", &xml);
    }

    #[test]
    fn well_formed_with_the_blob_in_the_join_component() {
        let u = b204_p01();
        let xml = render_unattend(&u).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().namespace(), Some(NS));
        let join = ["Identification", "Provisioning", "AccountData"];
        assert_eq!(
            at(
                &doc,
                "specialize",
                "Microsoft-Windows-UnattendedJoin",
                &join
            ),
            Some(u.odj_blob)
        );
        let shell = "Microsoft-Windows-Shell-Setup";
        assert_eq!(
            at(&doc, "specialize", shell, &["ComputerName"]),
            Some("B204-P01")
        );
        assert_eq!(
            at(
                &doc,
                "oobeSystem",
                shell,
                &["UserAccounts", "AdministratorPassword", "Value"]
            ),
            Some(encode_admin_password(u.admin_password).as_str())
        );
        assert_eq!(
            at(
                &doc,
                "oobeSystem",
                "Microsoft-Windows-International-Core",
                &["UILanguage"]
            ),
            Some("fr-FR")
        );
        // The cleanup is installed in specialize.
        let cleanup = at(
            &doc,
            "specialize",
            "Microsoft-Windows-Deployment",
            &["RunSynchronous", "RunSynchronousCommand", "Path"],
        )
        .unwrap();
        assert!(
            cleanup.contains(r"del /q /f %WINDIR%\Panther\unattend.xml"),
            "{cleanup}"
        );
        assert!(cleanup.contains(r"SetupComplete.cmd"), "{cleanup}");
        // No join credentials at all, and the password not in clear.
        for absent in [
            "Credentials",
            "JoinDomain",
            "MachinePassword",
            u.admin_password,
        ] {
            assert!(!xml.contains(absent), "{absent} in the answer file");
        }
    }

    #[test]
    fn values_are_escaped_and_round_trip() {
        let mut u = b204_p01();
        u.organization = r#"Lycée <Mistral> & "Fils" l'Isle"#;
        let xml = render_unattend(&u).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        assert_eq!(
            at(
                &doc,
                "specialize",
                "Microsoft-Windows-Shell-Setup",
                &["RegisteredOrganization"]
            ),
            Some(u.organization)
        );
        u.computer_name = "B204-P01-TOO-LONG";
        assert!(render_unattend(&u).is_err());
    }

    #[test]
    fn the_administrator_password_encoding() {
        // "pw" + "AdministratorPassword", UTF-16LE, base64.
        let expected = base64::engine::general_purpose::STANDARD.encode(
            "pwAdministratorPassword"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
        );
        assert_eq!(encode_admin_password("pw"), expected);
        assert!(
            encode_admin_password("pw").starts_with("cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIA")
        );
    }
}
