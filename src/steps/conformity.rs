//! The room's conformity record: what the verify report proves, as one value built once after
//! a run and rendered twice (`report::render_html`, `report::render_json`). It says which
//! image, which signed software list (and who signed it), which domain and OU, and per
//! workstation what was found, when and by which parc, and for each problem its fix. It reads
//! back from the JSON file (`serde`), so a reader (the console) renders the same page.

use serde::{Deserialize, Serialize};

use super::report::HostVerdict;
use super::verify::{Finding, Observed};
use crate::domain::digest::software_digest;
use crate::domain::recipe::Recipe;
use crate::domain::site::Site;
use crate::domain::validate::{SignoffState, signoff_state};

/// The version of the record's JSON shape.
pub const FORMAT: u32 = 1;

/// The room's conformity record (the verify report's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformityRecord {
    /// [`FORMAT`].
    pub format: u32,
    /// The room's id (`b204`).
    pub room: String,
    /// The room's name as the recipe gives it.
    #[serde(default)]
    pub room_name: String,
    /// The lycée: `name (UAI)`.
    #[serde(default)]
    pub establishment: Option<String>,
    /// When the record was made (RFC 3339, local offset).
    pub generated_at: String,
    /// The parc that made it.
    pub generated_by: ParcRun,
    /// Every workstation conforms.
    pub compliant: bool,
    /// Digest of today's recipe.
    #[serde(default)]
    pub recipe_digest: String,
    /// The image the workstations should run (the room's current capture).
    #[serde(default)]
    pub image: Option<ImageRecord>,
    /// The software list the teachers signed.
    #[serde(default)]
    pub software: SoftwareRecord,
    /// The domain the workstations join, and the room's OU.
    #[serde(default)]
    pub domain: Option<DomainRecord>,
    pub hosts: Vec<HostRecord>,
}

/// Which parc did something, and who ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcRun {
    /// `parc`'s version (`None` when the journal does not say).
    pub parc_version: Option<String>,
    /// `user@host`.
    pub actor: String,
}

impl ParcRun {
    /// This parc, run by `actor`.
    pub fn this(actor: &str) -> Self {
        ParcRun {
            parc_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            actor: actor.to_owned(),
        }
    }
}

/// The image verified against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `<room>/<version>`.
    pub id: String,
    pub version: String,
    /// When it was captured (RFC 3339), if the store says.
    pub captured_at: Option<String>,
    /// The recipe digest recorded at capture.
    pub recipe_digest: String,
    /// The software-list digest recorded at capture.
    pub software_digest: String,
}

/// One product of the signed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedProduct {
    pub name: String,
    pub version: String,
}

/// One teacher's signature of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    pub teacher: String,
    pub discipline: String,
    /// The date on the signed paper (`YYYY-MM-DD`).
    pub date: String,
}

/// Whether today's list is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signed {
    /// Signed by the teachers in `signers`.
    Signed,
    /// Signed once, but the list changed since (`signers` holds the latest signature).
    Stale,
    /// Never signed.
    #[default]
    Unsigned,
}

/// The room's software list as the teachers sign it (`parc software ROOM`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareRecord {
    /// `sha256:<hex>` of the canonical list: what the signatures bind to.
    pub digest: String,
    /// Sorted by name.
    pub products: Vec<ListedProduct>,
    pub signed: Signed,
    pub signers: Vec<Signer>,
}

impl SoftwareRecord {
    /// The list and its signatures, from the recipe.
    pub fn of(recipe: &Recipe) -> Self {
        let mut products: Vec<ListedProduct> = recipe
            .software
            .iter()
            .map(|s| ListedProduct {
                name: s.name.value.clone(),
                version: s.version.value.clone(),
            })
            .collect();
        products.sort_by(|a, b| a.name.cmp(&b.name));
        let signer = |s: &crate::domain::recipe::Signoff| Signer {
            teacher: s.teacher.value.clone(),
            discipline: s.discipline.value.clone(),
            date: s.date.value.format("%Y-%m-%d").to_string(),
        };
        let (signed, signers) = match signoff_state(recipe) {
            SignoffState::Valid(v) => (Signed::Signed, v.into_iter().map(signer).collect()),
            SignoffState::Stale { latest, .. } => (Signed::Stale, vec![signer(latest)]),
            SignoffState::None => (Signed::Unsigned, Vec::new()),
        };
        SoftwareRecord {
            digest: software_digest(&recipe.software),
            products,
            signed,
            signers,
        }
    }
}

/// The domain (site.toml `[domain]`) and the room's OU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// DNS name (`lycee-mistral.test`).
    pub name: String,
    /// Kerberos realm (`LYCEE-MISTRAL.TEST`).
    pub realm: String,
    /// NetBIOS name.
    pub netbios: String,
    /// The room's OU, where its computer accounts belong.
    pub ou: String,
}

impl DomainRecord {
    /// The site's domain and room `room`'s OU.
    pub fn of(site: &Site, room: &str) -> Self {
        let d = &site.domain;
        DomainRecord {
            name: d.realm.value.to_lowercase(),
            realm: d.realm.value.clone(),
            netbios: d.netbios.value.clone(),
            ou: super::join::room_ou(room, &d.computers_ou.value),
        }
    }
}

/// A workstation's state in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    Conforme,
    NonConforme,
    VerificationImpossible,
}

impl HostStatus {
    /// The word on the page.
    pub fn label_fr(self) -> &'static str {
        match self {
            HostStatus::Conforme => "Conforme",
            HostStatus::NonConforme => "Non conforme",
            HostStatus::VerificationImpossible => "Vérification impossible",
        }
    }
}

/// Something wrong on a workstation, and what the technician does about it (French).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub reason: String,
    pub fix: String,
}

/// One workstation in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    pub status: HostStatus,
    /// When its check ran (RFC 3339); `None` when it never ran.
    pub checked_at: Option<String>,
    /// Which parc checked it.
    pub checked_by: Option<ParcRun>,
    /// `true` when the verdict is an earlier run's (the journal's), not this run's.
    #[serde(default)]
    pub earlier_run: bool,
    /// What was read on it (the image marker, each product's version, its computer
    /// account); `None` when it was not read by this run.
    pub observed: Option<Observed>,
    /// What is wrong, as data.
    pub findings: Vec<Finding>,
    /// What is wrong and its fix, in French (one per finding, or the reason it could not
    /// be checked).
    pub problems: Vec<Problem>,
    /// Why it could not be checked.
    pub error: Option<String>,
}

impl ConformityRecord {
    /// The record of room `room` from its workstations' verdicts (see
    /// `report::room_verdicts`); the room-wide parts (image, list, domain…) are empty, for the
    /// caller to fill.
    pub fn new(room: &str, generated_at: &str, by: ParcRun, verdicts: Vec<HostVerdict>) -> Self {
        let hosts: Vec<HostRecord> = verdicts.into_iter().map(|v| host_record(room, v)).collect();
        ConformityRecord {
            format: FORMAT,
            room: room.to_owned(),
            room_name: String::new(),
            establishment: None,
            generated_at: generated_at.to_owned(),
            generated_by: by,
            compliant: hosts.iter().all(|h| h.status == HostStatus::Conforme),
            recipe_digest: String::new(),
            image: None,
            software: SoftwareRecord::default(),
            domain: None,
            hosts,
        }
    }

    /// How many workstations conform.
    pub fn conforming(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.status == HostStatus::Conforme)
            .count()
    }
}

fn host_record(room: &str, v: HostVerdict) -> HostRecord {
    let status = if v.error.is_some() {
        HostStatus::VerificationImpossible
    } else if v.findings.is_empty() {
        HostStatus::Conforme
    } else {
        HostStatus::NonConforme
    };
    let mut problems: Vec<Problem> = v
        .findings
        .iter()
        .map(|f| Problem {
            reason: f.message_fr(),
            fix: fix_fr(room, &v.host, f),
        })
        .collect();
    if let Some(e) = &v.error {
        problems.push(Problem {
            reason: e.clone(),
            fix: unchecked_fix_fr(room, &v.host, v.journal_state.as_deref()),
        });
    }
    HostRecord {
        status,
        checked_at: v.checked_at,
        checked_by: v.checked_by,
        earlier_run: v.journal_state.is_some(),
        observed: v.observed,
        findings: v.findings,
        problems,
        error: v.error,
        host: v.host,
    }
}

/// What the technician does about `f` on `host`, in French.
pub fn fix_fr(room: &str, host: &str, f: &Finding) -> String {
    let reverify = format!("`parc master {room} --only verify --hosts {host}`");
    match f {
        Finding::Hostname { .. } | Finding::ImageMarker { .. } | Finding::ProductVersion { .. } => {
            format!(
                "relancer `parc reimage {host}` (réapplique l'image de la salle, puis rejoint le domaine et revérifie)"
            )
        }
        Finding::DomainTrust { .. } | Finding::ComputerMissing { .. } => format!(
            "rejoindre le domaine et revérifier : `parc master {room} --from join --hosts {host}`"
        ),
        Finding::ComputerOutsideOu {
            computer,
            expected_ou,
            ..
        } => format!(
            "déplacer le compte ordinateur {computer} dans « {expected_ou} » (console Utilisateurs et ordinateurs Active Directory), puis revérifier : {reverify}"
        ),
    }
}

/// What the technician does about a workstation that could not be checked; `journal_state`
/// is the journal's word when the verdict is not this run's.
pub fn unchecked_fix_fr(room: &str, host: &str, journal_state: Option<&str>) -> String {
    match journal_state {
        None | Some("failed") => format!(
            "vérifier que le poste est allumé et joignable par le réseau, puis revérifier : `parc master {room} --only verify --hosts {host}`"
        ),
        Some("skipped") => {
            format!("corriger la cause de l'échec indiquée, puis relancer `parc reimage {host}`")
        }
        Some("stale") => {
            format!("reconstruire l'image et redéployer la salle : `parc master {room}`")
        }
        Some(_) => {
            format!("terminer la procédure sur ce poste : `parc master {room} --hosts {host}`")
        }
    }
}
