//! Verify (parc's last step): per workstation, checks the hostname, the image-id marker
//! written at deploy, each product at the recipe's version, the domain trust
//! (`adcli testjoin`) and that the computer object sits in the room's OU. The answer is
//! `Result<Result<(), Vec<Finding>>, StepError>`: the outer error is "could not check", the
//! inner list is "checked, and this is wrong"; [`check_host`] also keeps what was read
//! ([`Observed`]: image marker, product versions, computer account) for the room's record.

use serde::{Deserialize, Serialize};

use super::StepError;
use super::install::{InstallSpec, OsFamily, installed_version};
use super::join::computer_name;
use super::run::{run, run_ok, text};
use crate::ports::{Directory, RemoteHost};
use crate::quote;

/// Where deploy writes the id of the image a workstation runs.
pub const IMAGE_MARKER_PATH: &str = "/etc/parc/image-id";

/// What a workstation should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub hostname: String,
    pub image_id: String,
    pub products: Vec<InstallSpec>,
    /// DNS name of the domain.
    pub domain: String,
    /// The room's OU.
    pub ou_dn: String,
    pub os: OsFamily,
}

/// One thing found wrong on a workstation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    Hostname {
        expected: String,
        actual: String,
    },
    ImageMarker {
        expected: String,
        actual: Option<String>,
    },
    ProductVersion {
        product: String,
        expected: String,
        actual: Option<String>,
    },
    DomainTrust {
        detail: String,
    },
    ComputerMissing {
        computer: String,
    },
    ComputerOutsideOu {
        computer: String,
        expected_ou: String,
        actual_dn: String,
    },
}

impl Finding {
    /// The finding in French, for the administration's report.
    pub fn message_fr(&self) -> String {
        match self {
            Finding::Hostname { expected, actual } => {
                format!("nom d'hôte « {actual} » au lieu de « {expected} »")
            }
            Finding::ImageMarker {
                expected,
                actual: None,
            } => {
                format!("aucune image déployée (marqueur absent), attendu « {expected} »")
            }
            Finding::ImageMarker {
                expected,
                actual: Some(a),
            } => {
                format!("image « {a} » au lieu de « {expected} »")
            }
            Finding::ProductVersion {
                product,
                expected,
                actual: None,
            } => {
                format!("logiciel {product} absent, version attendue {expected}")
            }
            Finding::ProductVersion {
                product,
                expected,
                actual: Some(a),
            } => {
                format!("logiciel {product} en version {a} au lieu de {expected}")
            }
            Finding::DomainTrust { detail } => {
                format!("relation d'approbation avec le domaine rompue : {detail}")
            }
            Finding::ComputerMissing { computer } => {
                format!("aucun compte ordinateur {computer} dans le domaine")
            }
            Finding::ComputerOutsideOu {
                computer,
                expected_ou,
                actual_dn,
            } => format!(
                "le compte ordinateur {computer} est dans « {actual_dn} », hors de l'unité d'organisation « {expected_ou} »"
            ),
        }
    }
}

/// One product of the recipe as verify found it on a workstation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundProduct {
    pub product: String,
    /// The recipe's version.
    pub expected: String,
    /// The version installed; `None` when the product is absent.
    pub version: Option<String>,
}

/// What verify read on a workstation, whatever it concluded: the evidence of the room's
/// conformity record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The name the workstation gives itself.
    pub hostname: String,
    /// The image marker deploy wrote (`None`: absent).
    pub image_id: Option<String>,
    /// Each product of the recipe, with the version found.
    pub products: Vec<FoundProduct>,
    /// Where its computer account is in the directory (`None`: no account).
    pub computer_dn: Option<String>,
}

/// A workstation checked: what was read, and what is wrong (empty: it conforms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub observed: Observed,
    pub findings: Vec<Finding>,
}

impl Checked {
    /// `Ok(())` when nothing is wrong.
    pub fn outcome(&self) -> Result<(), Vec<Finding>> {
        if self.findings.is_empty() {
            Ok(())
        } else {
            Err(self.findings.clone())
        }
    }
}

/// One product of a Windows uninstall registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WindowsProduct {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// What `windows-verify` prints about a Windows workstation (one JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WindowsFacts {
    pub computer_name: String,
    pub part_of_domain: bool,
    /// The domain (or the workgroup, when not part of a domain).
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub os_caption: String,
    #[serde(default)]
    pub os_version: String,
    #[serde(default)]
    pub os_build: String,
    #[serde(default, deserialize_with = "crate::psjson::one_or_many")]
    pub products: Vec<WindowsProduct>,
    /// The image marker parc wrote at deploy (`C:\ProgramData\parc-image-id`).
    #[serde(default)]
    pub image_id: Option<String>,
    /// `Test-ComputerSecureChannel` (`None` when not joined).
    #[serde(default)]
    pub secure_channel: Option<bool>,
}

/// The PowerShell script that prints a Windows workstation's [`WindowsFacts`].
pub fn render_windows_verify() -> Result<String, StepError> {
    super::templates::render("windows-verify", &serde_json::json!({}))
}

/// Parses the script's output (its last JSON line).
pub fn parse_windows_verify(stdout: &str) -> Result<WindowsFacts, StepError> {
    crate::psjson::last_object(stdout).map_err(|detail| StepError::Parse {
        what: "what the Windows workstation says of itself".into(),
        detail,
    })
}

/// What differs on a Windows workstation from `expected`, from its facts.
pub fn windows_findings(facts: &WindowsFacts, expected: &Expected) -> Vec<Finding> {
    let mut findings = Vec::new();
    let computer = computer_name(&expected.hostname);
    if !facts.computer_name.eq_ignore_ascii_case(&computer) {
        findings.push(Finding::Hostname {
            expected: computer,
            actual: facts.computer_name.clone(),
        });
    }
    if facts.image_id.as_deref() != Some(expected.image_id.as_str()) {
        findings.push(Finding::ImageMarker {
            expected: expected.image_id.clone(),
            actual: facts.image_id.clone(),
        });
    }
    for spec in &expected.products {
        let actual = facts
            .products
            .iter()
            .find(|p| p.name == spec.package)
            .map(|p| p.version.clone().unwrap_or_default());
        if actual.as_deref() != Some(spec.version.as_str()) {
            findings.push(Finding::ProductVersion {
                product: spec.product.clone(),
                expected: spec.version.clone(),
                actual,
            });
        }
    }
    if !facts.part_of_domain || !facts.domain.eq_ignore_ascii_case(&expected.domain) {
        findings.push(Finding::DomainTrust {
            detail: if facts.part_of_domain {
                format!(
                    "membre du domaine « {} » et non « {} »",
                    facts.domain, expected.domain
                )
            } else {
                format!(
                    "n'est pas membre du domaine « {} » (groupe de travail « {} »)",
                    expected.domain, facts.domain
                )
            },
        });
    } else if facts.secure_channel != Some(true) {
        findings.push(Finding::DomainTrust {
            detail:
                "canal sécurisé avec le contrôleur de domaine rompu (Test-ComputerSecureChannel)"
                    .into(),
        });
    }
    findings
}

/// What a Windows workstation's facts say of the recipe's products and its image.
pub fn windows_observed(facts: &WindowsFacts, expected: &Expected) -> Observed {
    Observed {
        hostname: facts.computer_name.clone(),
        image_id: facts.image_id.clone(),
        products: expected
            .products
            .iter()
            .map(|spec| FoundProduct {
                product: spec.product.clone(),
                expected: spec.version.clone(),
                version: facts
                    .products
                    .iter()
                    .find(|p| p.name == spec.package)
                    .map(|p| p.version.clone().unwrap_or_default()),
            })
            .collect(),
        computer_dn: None,
    }
}

/// Checks one workstation against `expected`.
pub async fn verify_host(
    host: &dyn RemoteHost,
    dir: &dyn Directory,
    expected: &Expected,
) -> Result<Result<(), Vec<Finding>>, StepError> {
    Ok(check_host(host, dir, expected).await?.outcome())
}

/// Checks one workstation against `expected`, keeping what was read on it.
pub async fn check_host(
    host: &dyn RemoteHost,
    dir: &dyn Directory,
    expected: &Expected,
) -> Result<Checked, StepError> {
    let mut findings = Vec::new();
    if expected.os == OsFamily::Windows {
        let out = run_ok(
            host,
            "reading the workstation's state",
            render_windows_verify()?,
        )
        .await?;
        let facts = parse_windows_verify(&String::from_utf8_lossy(&out.stdout))?;
        findings = windows_findings(&facts, expected);
        let mut observed = windows_observed(&facts, expected);
        observed.computer_dn = directory_findings(dir, expected, &mut findings).await?;
        return Ok(Checked { observed, findings });
    }

    let actual = text(&run_ok(host, "reading the hostname", "hostname".into()).await?);
    let mut observed = Observed {
        hostname: actual.clone(),
        ..Observed::default()
    };
    if actual != expected.hostname {
        findings.push(Finding::Hostname {
            expected: expected.hostname.clone(),
            actual,
        });
    }

    let marker = run(
        host,
        "reading the image marker",
        format!("cat {}", quote::sh(IMAGE_MARKER_PATH)),
        None,
    )
    .await?;
    let marker = marker.success().then(|| text(&marker));
    observed.image_id = marker.clone();
    if marker.as_deref() != Some(expected.image_id.as_str()) {
        findings.push(Finding::ImageMarker {
            expected: expected.image_id.clone(),
            actual: marker,
        });
    }

    for spec in &expected.products {
        let v = installed_version(host, expected.os, spec).await?;
        observed.products.push(FoundProduct {
            product: spec.product.clone(),
            expected: spec.version.clone(),
            version: v.clone(),
        });
        if v.as_deref() != Some(spec.version.as_str()) {
            findings.push(Finding::ProductVersion {
                product: spec.product.clone(),
                expected: spec.version.clone(),
                actual: v,
            });
        }
    }

    let trust = run(
        host,
        "testing the domain trust",
        format!("adcli testjoin --domain={}", quote::sh(&expected.domain)),
        None,
    )
    .await?;
    if !trust.success() {
        let mut detail = String::from_utf8_lossy(&trust.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = text(&trust);
        }
        findings.push(Finding::DomainTrust { detail });
    }

    observed.computer_dn = directory_findings(dir, expected, &mut findings).await?;
    Ok(Checked { observed, findings })
}

/// The computer account: present, in the room's OU. Returns where it is.
async fn directory_findings(
    dir: &dyn Directory,
    expected: &Expected,
    findings: &mut Vec<Finding>,
) -> Result<Option<String>, StepError> {
    let computer = computer_name(&expected.hostname);
    let located = dir
        .locate_computer(&computer)
        .await
        .map_err(|source| StepError::Directory {
            what: format!("locating the computer {computer}"),
            source,
        })?;
    let dn = located.map(|loc| loc.dn);
    match &dn {
        None => findings.push(Finding::ComputerMissing { computer }),
        Some(dn) => {
            let want = format!("CN={computer},{}", expected.ou_dn);
            if !dn.eq_ignore_ascii_case(&want) {
                findings.push(Finding::ComputerOutsideOu {
                    computer,
                    expected_ou: expected.ou_dn.clone(),
                    actual_dn: dn.clone(),
                });
            }
        }
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::install::InstallerKind;

    fn expected() -> Expected {
        Expected {
            hostname: "b204-p01".into(),
            image_id: "b204/v3".into(),
            products: vec![InstallSpec {
                product: "GeoGebra".into(),
                package: "GeoGebra Classic".into(),
                version: "6.0.846".into(),
                kind: InstallerKind::Msi,
                silent_args: None,
            }],
            domain: "lycee-mistral.test".into(),
            ou_dn: "OU=b204,OU=Salles,DC=lycee-mistral,DC=test".into(),
            os: OsFamily::Windows,
        }
    }

    #[test]
    fn golden_windows_verify_script() {
        let s = render_windows_verify().unwrap();
        crate::golden::check(
            "src/steps/golden/windows-verify.txt",
            &format!(
                "{s}
"
            ),
        );
    }

    #[test]
    fn a_conforming_windows_workstation() {
        // ConvertTo-Json -Compress of the script's object, products as an array.
        let out = r#"{"computer_name":"B204-P01","part_of_domain":true,"domain":"lycee-mistral.test","os_caption":"Microsoft Windows 11 Education","os_version":"10.0.26100","os_build":"26100","products":[{"name":"GeoGebra Classic","version":"6.0.846"},{"name":"7-Zip 24.08 (x64)","version":"24.08"}],"image_id":"b204/v3","secure_channel":true}"#;
        let f = parse_windows_verify(out).unwrap();
        assert_eq!(f.os_build, "26100");
        assert_eq!(windows_findings(&f, &expected()), vec![]);
    }

    #[test]
    fn a_drifted_windows_workstation() {
        // One product comes as an object, not an array; not joined (a workgroup).
        let out = "\r\n{\"computer_name\":\"DESKTOP-4F2K\",\"part_of_domain\":false,\"domain\":\"WORKGROUP\",\"os_caption\":\"Microsoft Windows 11 Education\",\"os_version\":\"10.0.26100\",\"os_build\":\"26100\",\"products\":{\"name\":\"GeoGebra Classic\",\"version\":\"6.0.800\"},\"image_id\":null,\"secure_channel\":null}\r\n";
        let f = parse_windows_verify(out).unwrap();
        let found = windows_findings(&f, &expected());
        let fr: Vec<String> = found.iter().map(Finding::message_fr).collect();
        assert_eq!(found.len(), 4, "{fr:?}");
        assert!(
            fr[0].contains("DESKTOP-4F2K") && fr[0].contains("B204-P01"),
            "{fr:?}"
        );
        assert!(fr[1].contains("aucune image déployée"), "{fr:?}");
        // What the record shows as found: the recipe's product at the version installed.
        let seen = windows_observed(&f, &expected());
        assert_eq!(seen.hostname, "DESKTOP-4F2K");
        assert_eq!(seen.image_id, None);
        assert_eq!(
            seen.products,
            vec![FoundProduct {
                product: "GeoGebra".into(),
                expected: "6.0.846".into(),
                version: Some("6.0.800".into()),
            }]
        );
        assert!(fr[2].contains("6.0.800 au lieu de 6.0.846"), "{fr:?}");
        assert!(
            fr[3].contains("n'est pas membre du domaine « lycee-mistral.test »"),
            "{fr:?}"
        );
        // Joined, but its secure channel is broken.
        let mut joined = f.clone();
        joined.part_of_domain = true;
        joined.domain = "lycee-mistral.test".into();
        joined.secure_channel = Some(false);
        assert!(
            windows_findings(&joined, &expected())
                .iter()
                .any(|f| f.message_fr().contains("canal sécurisé"))
        );
        assert!(parse_windows_verify("Get-CimInstance : not found").is_err());
    }
}
