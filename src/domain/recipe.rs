//! `rooms/<room>.toml`: one recipe per room — its model, OS, requirements, software list,
//! technical tests, the teachers' sign-offs and the head's written authorisations.

use chrono::NaiveDate;

use super::finding::{Finding, Source};
use super::model::{DiskKind, valid_id};
use super::toml_read::{Ctx, Sp, TableReader};

/// The OS family of a room's workstations; also recorded in image manifests and used to
/// choose install and join templates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    #[default]
    Linux,
    Windows,
}

impl OsFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Linux => "linux",
            OsFamily::Windows => "windows",
        }
    }
}

/// What the room's teaching needs from a workstation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requirements {
    pub min_ram_gb: u32,
    pub min_cpu_score: u32,
    pub min_disk_gb: u32,
    /// The slowest acceptable disk (`hdd` < `ssd` < `nvme`).
    pub min_disk_kind: Option<DiskKind>,
    pub dedicated_gpu: bool,
    pub min_vram_gb: u32,
}

/// Where an installer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Downloaded over HTTP(S).
    Url(String),
    /// A file in the workspace (relative to it) or an absolute path.
    Path(String),
    /// A Debian package fetched from the configured mirror.
    Debian(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LicenceKind {
    /// Free software or freeware: no licence to hold.
    Free,
    /// A site licence covering every workstation of the lycée.
    Site,
    /// A volume agreement (e.g. the Région's or the ministry's).
    Volume,
    /// A number of seats.
    Seats,
}

/// The licence a product is installed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    pub kind: Sp<LicenceKind>,
    /// For `seats`: how many workstations it covers.
    pub seats: Option<Sp<u32>>,
    /// The reference of the proof (order form, invoice, agreement number).
    pub proof: Option<Sp<String>>,
    /// Name of the secret holding the licence key.
    pub key_secret: Option<Sp<String>>,
    pub expires: Option<Sp<NaiveDate>>,
}

/// One product of the room's software list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Software {
    pub name: Sp<String>,
    pub version: Sp<String>,
    pub source: Sp<SourceSpec>,
    /// Hex sha256 of the installer, required for URL and path sources.
    pub sha256: Option<Sp<String>>,
    /// A handlebars template of the install command; parc's default for the installer type
    /// and OS family when absent.
    pub install: Option<Sp<String>>,
    /// The name the installed system reports (dpkg package, Windows DisplayName), when it
    /// differs from `name`.
    pub package: Option<Sp<String>>,
    pub licence: Licence,
}

/// One technical test, run on the master (and at verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechTest {
    pub name: Sp<String>,
    pub command: Sp<String>,
    pub expect_exit: i32,
    /// A text the output must contain.
    pub expect_output: Option<String>,
    pub timeout_secs: u32,
}

/// A teacher's signature of one exact software list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signoff {
    pub teacher: Sp<String>,
    pub discipline: Sp<String>,
    pub date: Sp<NaiveDate>,
    /// `sha256:<hex>` of the canonical list they signed (see `digest`).
    pub digest: Sp<String>,
}

/// The head of the lycée's written authorisation to install a named product despite the
/// licence gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorisation {
    pub product: Sp<String>,
    pub by: Sp<String>,
    pub date: Sp<NaiveDate>,
    pub reference: Sp<String>,
}

/// A room's recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The file it was read from (relative to the workspace).
    pub file: String,
    pub id: Sp<String>,
    pub name: String,
    pub building: Option<String>,
    pub disciplines: Vec<Sp<String>>,
    pub model: Sp<String>,
    /// The hostname of the master workstation; default: the room's first in-service device.
    pub master: Option<Sp<String>>,
    pub os_family: OsFamily,
    pub base_image: Sp<String>,
    pub requirements: Requirements,
    pub software: Vec<Software>,
    pub tests: Vec<TechTest>,
    pub signoffs: Vec<Signoff>,
    pub authorisations: Vec<Authorisation>,
}

/// Parses a room recipe. `None` when it is too broken to use; findings say why.
pub fn parse(src: &Source) -> (Option<Recipe>, Vec<Finding>) {
    let ctx = Ctx::new(src);
    let recipe = ctx.parse().and_then(|doc| {
        let root = TableReader::root(&ctx, &doc, &src.name);
        let id = root.text("id", true);
        let name = root.text("name", true);
        let building = root.text("building", false);
        let disciplines = root.strings("disciplines", false);
        let model = root.text("model", true);
        let master = root.text("master", false);
        let os = root.table("os", true).and_then(parse_os);
        let requirements = root
            .table("requirements", false)
            .map(parse_requirements)
            .unwrap_or_default();
        let software: Vec<Option<Software>> = root
            .tables("software", false)
            .into_iter()
            .map(parse_software)
            .collect();
        let tests: Vec<Option<TechTest>> = root
            .tables("test", false)
            .into_iter()
            .map(parse_test)
            .collect();
        let signoffs: Vec<Option<Signoff>> = root
            .tables("signoff", false)
            .into_iter()
            .map(parse_signoff)
            .collect();
        let auths: Vec<Option<Authorisation>> = root
            .tables("authorisation", false)
            .into_iter()
            .map(parse_authorisation)
            .collect();
        root.finish();

        if let Some(i) = &id {
            if !valid_id(&i.value) {
                ctx.push(
                    Finding::error(
                        i.at.clone(),
                        "id",
                        format!("room id \"{}\" is not a valid identifier", i.value),
                    )
                    .hint("use lower-case letters, digits and '-', e.g. \"b204\""),
                );
                return None;
            }
        }
        let (os_family, base_image) = os?;
        Some(Recipe {
            file: src.name.clone(),
            id: id?,
            name: name?.value,
            building: building.map(|b| b.value),
            disciplines,
            model: model?,
            master,
            os_family,
            base_image,
            requirements,
            software: software.into_iter().collect::<Option<Vec<_>>>()?,
            tests: tests.into_iter().collect::<Option<Vec<_>>>()?,
            signoffs: signoffs.into_iter().collect::<Option<Vec<_>>>()?,
            authorisations: auths.into_iter().collect::<Option<Vec<_>>>()?,
        })
    });
    (recipe, ctx.into_findings())
}

fn parse_os(t: TableReader) -> Option<(OsFamily, Sp<String>)> {
    let family = t.choice("family", true, &["linux", "windows"]);
    let base = t.text("base_image", true);
    t.finish();
    let family = if family?.value == "windows" {
        OsFamily::Windows
    } else {
        OsFamily::Linux
    };
    Some((family, base?))
}

fn parse_requirements(t: TableReader) -> Requirements {
    let u = |v: Option<Sp<i64>>| v.map_or(0, |v| v.value as u32);
    let r = Requirements {
        min_ram_gb: u(t.int("min_ram_gb", false, 0, 4096)),
        min_cpu_score: u(t.int("min_cpu_score", false, 0, 1_000_000)),
        min_disk_gb: u(t.int("min_disk_gb", false, 0, 1_000_000)),
        min_disk_kind: t
            .choice("disk_type", false, &["hdd", "ssd", "nvme"])
            .map(|d| match d.value {
                "hdd" => DiskKind::Hdd,
                "nvme" => DiskKind::Nvme,
                _ => DiskKind::Ssd,
            }),
        dedicated_gpu: t.boolean("dedicated_gpu").is_some_and(|b| b.value),
        min_vram_gb: u(t.int("min_vram_gb", false, 0, 1024)),
    };
    t.finish();
    r
}

fn parse_software(t: TableReader) -> Option<Software> {
    let ctx = t.ctx();
    let name = t.text("name", true);
    let version = t.text("version", true);
    let url = t.text("url", false);
    let path = t.text("path", false);
    let debian = t.text("debian", false);
    let sha256 = t.text("sha256", false);
    let install = t.text("install", false);
    let package = t.text("package", false);
    let kind = t.choice("licence", true, &["free", "site", "volume", "seats"]);
    let seats_written = t.has("seats");
    let seats = t.int("seats", false, 0, 1_000_000);
    let proof = t.text("proof", false);
    let key_secret = t.secret_ref("key", false);
    let expires = t.date("expires", false);
    let at = t.location();
    let label = t.label().to_string();
    t.finish();

    let sources: Vec<Sp<SourceSpec>> = [
        url.map(|s| Sp {
            value: SourceSpec::Url(s.value),
            at: s.at,
        }),
        path.map(|s| Sp {
            value: SourceSpec::Path(s.value),
            at: s.at,
        }),
        debian.map(|s| Sp {
            value: SourceSpec::Debian(s.value),
            at: s.at,
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let source = match sources.len() {
        1 => sources.into_iter().next(),
        0 => {
            ctx.push(
                Finding::error(at.clone(), "source", format!("{label} has no source"))
                    .hint("give exactly one of `url`, `path` or `debian`"),
            );
            None
        }
        _ => {
            ctx.push(
                Finding::error(
                    sources[1].at.clone(),
                    "source",
                    format!("{label} has more than one source"),
                )
                .hint("give exactly one of `url`, `path` or `debian`"),
            );
            None
        }
    };
    if let Some(src) = &source {
        if let SourceSpec::Url(u) = &src.value {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                ctx.push(Finding::error(
                    src.at.clone(),
                    "url",
                    format!("\"{u}\" is not an http(s) URL"),
                ));
            }
        }
        if sha256.is_none() && !matches!(src.value, SourceSpec::Debian(_)) {
            ctx.push(
                Finding::error(
                    at.clone(),
                    "sha256",
                    format!("{label} has no `sha256`: parc installs nothing unverified"),
                )
                .hint("compute it with `sha256sum FILE` from the editor's download"),
            );
        }
    }
    if let Some(h) = &sha256 {
        if !is_sha256_hex(&h.value) {
            ctx.push(
                Finding::error(
                    h.at.clone(),
                    "digest",
                    format!("`sha256` \"{}\" is not 64 hexadecimal digits", h.value),
                )
                .hint("copy the first field printed by `sha256sum FILE`"),
            );
        }
    }
    let kind = kind.map(|k| Sp {
        value: match k.value {
            "site" => LicenceKind::Site,
            "volume" => LicenceKind::Volume,
            "seats" => LicenceKind::Seats,
            _ => LicenceKind::Free,
        },
        at: k.at,
    });
    if let Some(k) = &kind {
        if k.value == LicenceKind::Seats && !seats_written {
            ctx.push(
                Finding::error(
                    k.at.clone(),
                    "seats",
                    format!("{label}: licence \"seats\" needs `seats = N`"),
                )
                .hint("the number of workstations the licence covers"),
            );
        }
        if k.value != LicenceKind::Seats {
            if let Some(s) = &seats {
                ctx.push(Finding::warning(
                    s.at.clone(),
                    "seats",
                    format!(
                        "`seats` is ignored for a \"{}\" licence",
                        licence_word(k.value)
                    ),
                ));
            }
        }
    }
    Some(Software {
        name: name?,
        version: version?,
        source: source?,
        sha256: sha256.map(|h| Sp {
            value: h.value.to_ascii_lowercase(),
            at: h.at,
        }),
        install,
        package,
        licence: Licence {
            kind: kind?,
            seats: seats.map(|s| Sp {
                value: s.value as u32,
                at: s.at,
            }),
            proof,
            key_secret,
            expires,
        },
    })
}

pub fn licence_word(k: LicenceKind) -> &'static str {
    match k {
        LicenceKind::Free => "free",
        LicenceKind::Site => "site",
        LicenceKind::Volume => "volume",
        LicenceKind::Seats => "seats",
    }
}

fn parse_test(t: TableReader) -> Option<TechTest> {
    let name = t.text("name", true);
    let command = t.text("command", true);
    let expect_exit = t
        .int("expect_exit", false, 0, 255)
        .map_or(0, |v| v.value as i32);
    let expect_output = t.string("expect_output", false).map(|s| s.value);
    let timeout = t
        .int("timeout_secs", false, 1, 86_400)
        .map_or(60, |v| v.value as u32);
    t.finish();
    Some(TechTest {
        name: name?,
        command: command?,
        expect_exit,
        expect_output,
        timeout_secs: timeout,
    })
}

fn parse_signoff(t: TableReader) -> Option<Signoff> {
    let ctx = t.ctx();
    let teacher = t.text("teacher", true);
    let discipline = t.text("discipline", true);
    let date = t.date("date", true);
    let digest = t.text("digest", true);
    t.finish();
    if let Some(d) = &digest {
        if !d.value.strip_prefix("sha256:").is_some_and(is_sha256_hex) {
            ctx.push(
                Finding::error(
                    d.at.clone(),
                    "digest",
                    format!("sign-off digest \"{}\" is malformed", d.value),
                )
                .hint(
                    "it is \"sha256:\" and 64 hexadecimal digits; `parc signoff` writes it for you",
                ),
            );
            return None;
        }
    }
    Some(Signoff {
        teacher: teacher?,
        discipline: discipline?,
        date: date?,
        digest: digest?,
    })
}

fn parse_authorisation(t: TableReader) -> Option<Authorisation> {
    let product = t.text("product", true);
    let by = t.text("by", true);
    let date = t.date("date", true);
    let reference = t.text("reference", true);
    t.finish();
    Some(Authorisation {
        product: product?,
        by: by?,
        date: date?,
        reference: reference?,
    })
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

impl Recipe {
    /// The head's authorisation for a product, if the recipe records one.
    pub fn authorisation_for(&self, product: &str) -> Option<&Authorisation> {
        self.authorisations
            .iter()
            .find(|a| a.product.value.eq_ignore_ascii_case(product))
    }
}
