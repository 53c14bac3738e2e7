//! Verify (parc's last step): per workstation, checks the hostname, the image-id marker
//! written at deploy, each product at the recipe's version, the domain trust
//! (`adcli testjoin`) and that the computer object sits in the room's OU. The answer is
//! `Result<Result<(), Vec<Finding>>, StepError>`: the outer error is "could not check", the
//! inner list is "checked, and this is wrong".

use serde::Serialize;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Checks one workstation against `expected`.
pub async fn verify_host(
    host: &dyn RemoteHost,
    dir: &dyn Directory,
    expected: &Expected,
) -> Result<Result<(), Vec<Finding>>, StepError> {
    let mut findings = Vec::new();

    let actual = text(&run_ok(host, "reading the hostname", "hostname".into()).await?);
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
    if marker.as_deref() != Some(expected.image_id.as_str()) {
        findings.push(Finding::ImageMarker {
            expected: expected.image_id.clone(),
            actual: marker,
        });
    }

    for spec in &expected.products {
        let v = installed_version(host, expected.os, spec).await?;
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

    let computer = computer_name(&expected.hostname);
    let located = dir
        .locate_computer(&computer)
        .await
        .map_err(|source| StepError::Directory {
            what: format!("locating the computer {computer}"),
            source,
        })?;
    match located {
        None => findings.push(Finding::ComputerMissing { computer }),
        Some(loc) => {
            let want = format!("CN={computer},{}", expected.ou_dn);
            if !loc.dn.eq_ignore_ascii_case(&want) {
                findings.push(Finding::ComputerOutsideOu {
                    computer,
                    expected_ou: expected.ou_dn.clone(),
                    actual_dn: loc.dn,
                });
            }
        }
    }

    Ok(if findings.is_empty() {
        Ok(())
    } else {
        Err(findings)
    })
}
