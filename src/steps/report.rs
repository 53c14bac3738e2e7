//! The verify report for the administration, in French: the room's conformity record
//! ([`ConformityRecord`]) as a printable A4 HTML page and as JSON, under
//! `<workspace>/reports/verification-<room>-<stamp>.{html,json}`. Also the verdicts the
//! verify step logs during a run and their merge with the journal's. Rendering takes the
//! record's times as given (no clock there).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

pub use super::conformity::{
    ConformityRecord, DomainRecord, HostRecord, HostStatus, ImageRecord, ListedProduct, ParcRun,
    Problem, Signed, Signer, SoftwareRecord,
};
use super::verify::{Finding, Observed};

/// The verdict on one workstation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostVerdict {
    pub host: String,
    /// Empty when the workstation is compliant (and `error` is None).
    pub findings: Vec<Finding>,
    /// Set when the workstation could not be checked.
    pub error: Option<String>,
    /// What the check read on it (`None` when it was not read).
    pub observed: Option<Observed>,
    /// When its check ran (RFC 3339).
    pub checked_at: Option<String>,
    /// Which parc checked it (`None`: this run's, filled by [`room_verdicts`]).
    pub checked_by: Option<ParcRun>,
    /// The journal's state of its verify, when the verdict is not this run's.
    pub journal_state: Option<String>,
}

/// Now, as the record writes times (RFC 3339, local offset, seconds).
pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl HostVerdict {
    pub fn compliant(&self) -> bool {
        self.findings.is_empty() && self.error.is_none()
    }
}

/// What the verify step found during one run, per workstation: the step records, the command
/// that ran the procedure writes the report once the run is over.
#[derive(Debug, Default)]
pub struct VerifyLog(Mutex<BTreeMap<String, HostVerdict>>);

impl VerifyLog {
    pub fn record(&self, verdict: HostVerdict) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(verdict.host.clone(), verdict);
    }

    /// The verdicts recorded so far (the log is emptied).
    pub fn take(&self) -> BTreeMap<String, HostVerdict> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One workstation's verify step as the journal has it (`parc status`).
#[derive(Debug, Clone)]
pub struct Journaled<'a> {
    pub host: &'a str,
    /// `done`, `failed`, `skipped`, `stale`, `pending`…
    pub state: &'a str,
    /// Why it is not done, if it is not.
    pub detail: String,
    /// When its last verify ran (RFC 3339), if it ever did.
    pub checked_at: Option<String>,
    /// Which parc ran it.
    pub checked_by: Option<ParcRun>,
}

/// The verdicts on every workstation of the room: this run's where it verified the
/// workstation (checked by `this_parc`); otherwise the journal's (verified in an earlier run,
/// or why it was not).
pub fn room_verdicts(
    journaled: &[Journaled<'_>],
    mut this_run: BTreeMap<String, HostVerdict>,
    this_parc: &ParcRun,
) -> Vec<HostVerdict> {
    let ours = |mut v: HostVerdict| {
        v.checked_by.get_or_insert_with(|| this_parc.clone());
        v
    };
    let mut verdicts: Vec<HostVerdict> = journaled
        .iter()
        .map(|j| {
            this_run
                .remove(j.host)
                .map(ours)
                .unwrap_or_else(|| HostVerdict {
                    host: j.host.to_owned(),
                    checked_at: j.checked_at.clone(),
                    checked_by: j.checked_by.clone(),
                    journal_state: Some(j.state.to_owned()),
                    findings: Vec::new(),
                    observed: None,
                    error: (j.state != "done").then(|| {
                        let state = match j.state {
                            "failed" => "en échec",
                            "skipped" => "non effectuée (une étape précédente a échoué)",
                            "stale" => "à refaire (l'image ou la recette a changé)",
                            "interrupted" => "interrompue",
                            _ => "pas encore effectuée",
                        };
                        if j.detail.is_empty() {
                            format!("vérification {state}")
                        } else {
                            format!("vérification {state} : {}", j.detail)
                        }
                    }),
                })
        })
        .collect();
    verdicts.extend(this_run.into_values().map(ours));
    verdicts
}

use crate::report::html::esc;

/// Escapes `s`, setting its `` `commands` `` in `<code>`.
fn esc_code(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

/// An RFC 3339 time as `22/11/2026 à 15:18` (in its own offset); anything else as written.
fn time_fr(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.format("%d/%m/%Y à %H:%M").to_string())
        .unwrap_or_else(|_| t.to_owned())
}

/// A `YYYY-MM-DD` date as `14/09/2026`; anything else as written.
fn date_fr(d: &str) -> String {
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_else(|_| d.to_owned())
}

fn parc_fr(p: &ParcRun) -> String {
    let version = match &p.parc_version {
        Some(v) => format!("parc {v}"),
        None => "parc (version non enregistrée)".to_owned(),
    };
    if p.actor.is_empty() {
        version
    } else {
        format!("{version}, lancé par {}", p.actor)
    }
}

/// The record as JSON (what the console reads back).
pub fn render_json(record: &ConformityRecord) -> String {
    serde_json::to_string_pretty(record).unwrap_or_default()
}

/// Reads a record back from its JSON file's text.
pub fn parse_json(text: &str) -> serde_json::Result<ConformityRecord> {
    serde_json::from_str(text)
}

const STYLE: &str = "@page { size: A4; margin: 15mm }
body { font-family: 'DejaVu Sans', Arial, Helvetica, sans-serif; font-size: 9.5pt; color: #000; margin: 0; line-height: 1.3 }
@media screen { body { max-width: 180mm; margin: 10mm auto } }
h1 { font-size: 15pt; margin: 0 0 2mm }
h2 { font-size: 11.5pt; margin: 5mm 0 2mm; border-bottom: 1px solid #000; break-after: avoid; page-break-after: avoid }
p { margin: 1mm 0 }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 }
th, td { border: 1px solid #777; padding: 1mm 2mm; vertical-align: top; text-align: left }
th { background: #e8e8e8; -webkit-print-color-adjust: exact; print-color-adjust: exact }
table.kv th { width: 32% }
tr { break-inside: avoid; page-break-inside: avoid }
table.hosts td:first-child { white-space: nowrap }
ul { margin: 0; padding-left: 4mm }
code, .digest { font-family: 'DejaVu Sans Mono', monospace; font-size: 8pt; word-break: break-all }
.ok { color: #060 } .ko { color: #a00; font-weight: bold }
.summary { font-size: 11pt; margin: 3mm 0 }
.fix { margin-top: 0.5mm }
.muted { color: #444; font-size: 8.5pt }
.visa td { height: 22mm; width: 50% }
";

fn kv(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<table class=\"kv\">\n");
    for (k, v) in rows {
        out.push_str(&format!("<tr><th>{}</th><td>{v}</td></tr>\n", esc(k)));
    }
    out.push_str("</table>\n");
    out
}

fn digest(d: &str) -> String {
    if d.is_empty() {
        "—".to_owned()
    } else {
        format!("<span class=\"digest\">{}</span>", esc(d))
    }
}

fn image_section(r: &ConformityRecord) -> String {
    let Some(img) = &r.image else {
        return "<p class=\"ko\">Aucune image capturée pour cette salle.</p>\n".to_owned();
    };
    let mut rows = vec![
        ("Image", esc(&img.id)),
        ("Version", esc(&img.version)),
        (
            "Capturée le",
            img.captured_at
                .as_deref()
                .map(|t| esc(&time_fr(t)))
                .unwrap_or_else(|| "date non enregistrée".to_owned()),
        ),
        (
            "Empreinte de la recette à la capture",
            digest(&img.recipe_digest),
        ),
        (
            "Empreinte de la liste à la capture",
            digest(&img.software_digest),
        ),
    ];
    if !r.recipe_digest.is_empty() && r.recipe_digest != img.recipe_digest {
        rows.push((
            "Recette actuelle",
            format!(
                "{} <span class=\"ko\">— la recette a changé depuis la capture</span>",
                digest(&r.recipe_digest)
            ),
        ));
    }
    kv(&rows)
}

fn software_section(s: &SoftwareRecord) -> String {
    let mut out = format!("<p>Empreinte de la liste : {}</p>\n", digest(&s.digest));
    if s.products.is_empty() {
        out.push_str("<p>Aucun logiciel dans la recette.</p>\n");
    } else {
        out.push_str("<table>\n<tr><th>Logiciel</th><th>Version</th></tr>\n");
        for p in &s.products {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                esc(&p.name),
                esc(&p.version)
            ));
        }
        out.push_str("</table>\n");
    }
    let signer = |g: &Signer| {
        format!(
            "{} ({}), le {}",
            esc(&g.teacher),
            esc(&g.discipline),
            esc(&date_fr(&g.date))
        )
    };
    match s.signed {
        Signed::Signed => {
            out.push_str("<p>Liste signée par :</p>\n<ul>\n");
            for g in &s.signers {
                out.push_str(&format!("<li>{}</li>\n", signer(g)));
            }
            out.push_str("</ul>\n");
        }
        Signed::Stale => {
            let latest = s.signers.first().map(signer).unwrap_or_default();
            out.push_str(&format!(
                "<p class=\"ko\">La liste a changé depuis la dernière signature ({latest}) : elle doit être signée à nouveau.</p>\n"
            ));
        }
        Signed::Unsigned => {
            out.push_str("<p class=\"ko\">Cette liste n'a été signée par aucun enseignant.</p>\n")
        }
    }
    out
}

fn domain_section(r: &ConformityRecord) -> String {
    match &r.domain {
        None => "<p>Aucun domaine configuré (site.toml sans [domain]).</p>\n".to_owned(),
        Some(d) => kv(&[
            (
                "Domaine",
                format!(
                    "{} (royaume {}, NetBIOS {})",
                    esc(&d.name),
                    esc(&d.realm),
                    esc(&d.netbios)
                ),
            ),
            ("Unité d'organisation de la salle", esc(&d.ou)),
        ]),
    }
}

fn host_details(h: &HostRecord) -> String {
    let mut lines: Vec<String> = Vec::new();
    match (&h.checked_at, &h.checked_by) {
        (Some(at), by) => lines.push(format!(
            "Vérifié le {}{}{}",
            esc(&time_fr(at)),
            by.as_ref()
                .map(|b| format!(" par {}", esc(&parc_fr(b))))
                .unwrap_or_default(),
            if h.earlier_run {
                " (exécution précédente)"
            } else {
                ""
            }
        )),
        (None, _) if h.earlier_run => {
            lines.push("Résultat d'une exécution précédente (date non enregistrée)".to_owned())
        }
        (None, _) => {}
    }
    if let Some(o) = &h.observed {
        lines.push(format!(
            "Image trouvée : {}",
            o.image_id
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "aucune (marqueur absent)".to_owned())
        ));
        if !o.products.is_empty() {
            let found: Vec<String> = o
                .products
                .iter()
                .map(|p| match &p.version {
                    Some(v) if *v == p.expected => format!("{} {}", esc(&p.product), esc(v)),
                    Some(v) => format!(
                        "{} {} <span class=\"ko\">({} attendue)</span>",
                        esc(&p.product),
                        esc(v),
                        esc(&p.expected)
                    ),
                    None => format!(
                        "{} <span class=\"ko\">absent ({} attendue)</span>",
                        esc(&p.product),
                        esc(&p.expected)
                    ),
                })
                .collect();
            lines.push(format!("Logiciels trouvés : {}", found.join(" ; ")));
        }
        lines.push(format!(
            "Compte ordinateur : {}",
            o.computer_dn
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "absent du domaine".to_owned())
        ));
    }
    let mut out = String::new();
    if !lines.is_empty() {
        out.push_str(&format!(
            "<div class=\"muted\">{}</div>",
            lines.join("<br>")
        ));
    }
    if !h.problems.is_empty() {
        out.push_str("<ul>");
        for p in &h.problems {
            out.push_str(&format!(
                "<li>{}<div class=\"fix\">→ À faire : {}</div></li>",
                esc(&p.reason),
                esc_code(&p.fix)
            ));
        }
        out.push_str("</ul>");
    }
    if out.is_empty() {
        "—".to_owned()
    } else {
        out
    }
}

/// The record as a printable page (A4, French, self-contained: inline CSS, no script).
pub fn render_html(record: &ConformityRecord) -> String {
    let r = record;
    let room = esc(&r.room);
    let title = if r.room_name.is_empty() || r.room_name == r.room {
        format!("Conformité de la salle {room}")
    } else {
        format!("Conformité de la salle {room} — {}", esc(&r.room_name))
    };
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    if let Some(e) = &r.establishment {
        out.push_str(&format!("<p>Établissement : {}</p>\n", esc(e)));
    }
    out.push_str(&format!(
        "<p>Rapport établi le {} par {}.</p>\n",
        esc(&time_fr(&r.generated_at)),
        esc(&parc_fr(&r.generated_by))
    ));
    let (class, verdict) = if r.compliant {
        ("ok", "La salle est conforme.")
    } else {
        (
            "ko",
            "La salle n'est pas conforme : chaque poste en défaut indique la correction à faire.",
        )
    };
    out.push_str(&format!(
        "<p class=\"summary\">Postes conformes : {} sur {}. <span class=\"{class}\">{verdict}</span></p>\n",
        r.conforming(),
        r.hosts.len()
    ));
    out.push_str("<h2>Image de référence</h2>\n");
    out.push_str(&image_section(r));
    out.push_str("<h2>Liste des logiciels signée par les enseignants</h2>\n");
    out.push_str(&software_section(&r.software));
    out.push_str("<h2>Domaine</h2>\n");
    out.push_str(&domain_section(r));
    out.push_str(
        "<h2>Postes</h2>\n<table class=\"hosts\">\n<tr><th>Poste</th><th>État</th><th>Constats</th></tr>\n",
    );
    for h in &r.hosts {
        let class = if h.status == HostStatus::Conforme {
            "ok"
        } else {
            "ko"
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>\n",
            esc(&h.host),
            h.status.label_fr(),
            host_details(h)
        ));
    }
    out.push_str("</table>\n");
    out.push_str(
        "<h2>Visa</h2>\n<table class=\"visa\">\n<tr><th>Le technicien</th><th>Le chef d'établissement</th></tr>\n<tr><td></td><td></td></tr>\n</table>\n",
    );
    out.push_str("</body>\n</html>\n");
    out
}

/// The files written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub json: PathBuf,
}

/// Writes `reports/verification-<room>-<stamp>.{html,json}` under `workspace`; `stamp` is a
/// file-name-safe form of the time (e.g. `20261122T151800`).
pub fn write_verify_report(
    workspace: &Path,
    record: &ConformityRecord,
    stamp: &str,
) -> std::io::Result<ReportFiles> {
    let dir = workspace.join("reports");
    fs::create_dir_all(&dir)?;
    let base = format!("verification-{}-{stamp}", record.room);
    let files = ReportFiles {
        html: dir.join(format!("{base}.html")),
        json: dir.join(format!("{base}.json")),
    };
    fs::write(&files.html, render_html(record))?;
    fs::write(&files.json, render_json(record))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::finding::Source;
    use crate::steps::verify::FoundProduct;

    fn parc() -> ParcRun {
        ParcRun::this("tech@stil-portable")
    }

    fn geogebra(version: Option<&str>) -> Observed {
        Observed {
            hostname: "b204-p02".into(),
            image_id: Some("b204/3".into()),
            products: vec![FoundProduct {
                product: "GeoGebra Classic".into(),
                expected: "6.0.850".into(),
                version: version.map(str::to_owned),
            }],
            computer_dn: Some(
                "CN=B204-P02,OU=b204,OU=Salles,OU=Pedagogie,DC=mistral,DC=lan".into(),
            ),
        }
    }

    /// Room b204 of the example workspace, with an image, its signed list and its domain.
    fn b204_record(verdicts: Vec<HostVerdict>) -> ConformityRecord {
        let recipe = crate::domain::recipe::parse(&Source::new(
            "rooms/b204.toml",
            include_str!("../../recipes/lycee-mistral/rooms/b204.toml"),
        ))
        .0
        .unwrap();
        let site = crate::domain::site::parse(&Source::new(
            "site.toml",
            include_str!("../../recipes/lycee-mistral/site.toml"),
        ))
        .0
        .unwrap();
        let verdicts = room_verdicts(
            &[],
            verdicts.into_iter().map(|v| (v.host.clone(), v)).collect(),
            &parc(),
        );
        let mut r = ConformityRecord::new("b204", "2026-11-22T15:18:00+01:00", parc(), verdicts);
        r.room_name = recipe.name.clone();
        r.establishment = Some(format!("{} ({})", site.name.value, site.uai.value));
        r.recipe_digest = "sha256:recette".into();
        r.image = Some(ImageRecord {
            id: "b204/3".into(),
            version: "3".into(),
            captured_at: Some("2026-11-20T10:05:00+01:00".into()),
            recipe_digest: "sha256:recette".into(),
            software_digest: "sha256:liste".into(),
        });
        r.software = SoftwareRecord::of(&recipe);
        r.domain = Some(DomainRecord::of(&site, "b204"));
        r
    }

    fn two_hosts() -> Vec<HostVerdict> {
        vec![
            HostVerdict {
                host: "b204-p01".into(),
                observed: Some(Observed {
                    hostname: "b204-p01".into(),
                    ..geogebra(Some("6.0.850"))
                }),
                checked_at: Some("2026-11-22T15:17:30+01:00".into()),
                ..Default::default()
            },
            HostVerdict {
                host: "b204-p02".into(),
                findings: vec![Finding::ProductVersion {
                    product: "GeoGebra Classic".into(),
                    expected: "6.0.850".into(),
                    actual: Some("6.0.800".into()),
                }],
                observed: Some(geogebra(Some("6.0.800"))),
                checked_at: Some("2026-11-22T15:17:41+01:00".into()),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn the_page_says_what_was_verified_and_how_to_fix_what_is_wrong() {
        let html = render_html(&b204_record(two_hosts()));
        for want in [
            "@page { size: A4; margin: 15mm }",
            "<html lang=\"fr\">",
            "Conformité de la salle b204 — Mathématiques / SES",
            "Rapport établi le 22/11/2026 à 15:18 par parc ",
            env!("CARGO_PKG_VERSION"),
            "tech@stil-portable",
            "Postes conformes : 1 sur 2",
            // The image.
            "<td>b204/3</td>",
            "Capturée le</th><td>20/11/2026 à 10:05",
            "sha256:recette",
            // The signed list and its signers.
            "<tr><td>GeoGebra Classic</td><td>6.0.850</td></tr>",
            "Mme Claire Martin (Mathématiques), le 14/09/2026",
            "M. Karim Benali (SES), le 15/09/2026",
            "sha256:07d2d3e0190a1bfefd7fd6d7c49d987d5c92efe7db087a7b42fd4cade3135462",
            // The domain and the room's OU.
            "mistral.lan (royaume MISTRAL.LAN, NetBIOS MISTRAL)",
            "OU=b204,OU=Salles,OU=Pedagogie,DC=mistral,DC=lan",
            // Per workstation: when, what was found, the reason and the fix.
            "Vérifié le 22/11/2026 à 15:17 par parc ",
            "Logiciels trouvés : GeoGebra Classic 6.0.850",
            "GeoGebra Classic 6.0.800 <span class=\"ko\">(6.0.850 attendue)</span>",
            "Compte ordinateur : CN=B204-P02,OU=b204",
            "logiciel GeoGebra Classic en version 6.0.800 au lieu de 6.0.850",
            "→ À faire : relancer <code>parc reimage b204-p02</code>",
        ] {
            assert!(html.contains(want), "{want:?} missing from:\n{html}");
        }
        assert!(!html.contains("<script"), "no script: {html}");
        assert!(!html.contains("<link"), "self-contained: {html}");
    }

    #[test]
    fn the_json_holds_the_same_and_reads_back() {
        let record = b204_record(two_hosts());
        let text = render_json(&record);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["room"], "b204");
        assert_eq!(json["compliant"], false);
        assert_eq!(
            json["generated_by"]["parc_version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(json["generated_by"]["actor"], "tech@stil-portable");
        assert_eq!(json["image"]["id"], "b204/3");
        assert_eq!(json["image"]["captured_at"], "2026-11-20T10:05:00+01:00");
        assert_eq!(json["software"]["signed"], "signed");
        assert_eq!(json["software"]["signers"][1]["teacher"], "M. Karim Benali");
        assert_eq!(json["software"]["signers"][1]["discipline"], "SES");
        assert_eq!(json["software"]["signers"][1]["date"], "2026-09-15");
        assert_eq!(json["software"]["products"][0]["name"], "EduPython");
        assert_eq!(
            json["domain"]["ou"],
            "OU=b204,OU=Salles,OU=Pedagogie,DC=mistral,DC=lan"
        );
        assert_eq!(json["domain"]["name"], "mistral.lan");
        let p02 = &json["hosts"][1];
        assert_eq!(p02["host"], "b204-p02");
        assert_eq!(p02["status"], "non-conforme");
        assert_eq!(p02["checked_at"], "2026-11-22T15:17:41+01:00");
        assert_eq!(p02["checked_by"]["parc_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(p02["observed"]["image_id"], "b204/3");
        assert_eq!(
            p02["observed"]["products"][0]["product"],
            "GeoGebra Classic"
        );
        assert_eq!(p02["observed"]["products"][0]["version"], "6.0.800");
        assert_eq!(p02["observed"]["products"][0]["expected"], "6.0.850");
        assert_eq!(p02["findings"][0]["kind"], "product-version");
        assert_eq!(
            p02["problems"][0]["reason"],
            "logiciel GeoGebra Classic en version 6.0.800 au lieu de 6.0.850"
        );
        assert!(
            p02["problems"][0]["fix"]
                .as_str()
                .unwrap()
                .starts_with("relancer `parc reimage b204-p02`"),
            "{p02}"
        );
        assert_eq!(json["hosts"][0]["status"], "conforme");
        assert_eq!(parse_json(&text).unwrap(), record, "reads back as written");
    }

    #[test]
    fn the_room_report_takes_this_runs_verdicts_and_the_journal_for_the_others() {
        let log = VerifyLog::default();
        log.record(HostVerdict {
            host: "labo-pc03".into(),
            findings: vec![Finding::ComputerMissing {
                computer: "LABO-PC03".into(),
            }],
            checked_at: Some("2026-11-22T15:30:00+01:00".into()),
            ..Default::default()
        });
        let earlier = ParcRun {
            parc_version: None,
            actor: "root@lab".into(),
        };
        let journaled = [
            Journaled {
                host: "labo-pc02",
                state: "done",
                detail: String::new(),
                checked_at: Some("2026-11-21T09:00:00+01:00".into()),
                checked_by: Some(earlier.clone()),
            },
            Journaled {
                host: "labo-pc03",
                state: "failed",
                detail: "x".into(),
                checked_at: None,
                checked_by: None,
            },
            Journaled {
                host: "labo-pc05",
                state: "skipped",
                detail: "deploy failed: never booted".into(),
                checked_at: None,
                checked_by: None,
            },
        ];
        let v = room_verdicts(&journaled, log.take(), &parc());
        assert!(log.take().is_empty(), "taken once");
        let hosts: Vec<&str> = v.iter().map(|v| v.host.as_str()).collect();
        assert_eq!(hosts, ["labo-pc02", "labo-pc03", "labo-pc05"]);
        assert!(v[0].compliant());
        assert_eq!(
            v[0].checked_by.as_ref(),
            Some(&earlier),
            "the journal's run"
        );
        assert_eq!(
            v[1].findings.len(),
            1,
            "this run's findings, not the journal's text"
        );
        assert_eq!(v[1].checked_by.as_ref(), Some(&parc()), "this run's parc");
        assert_eq!(
            v[2].error.as_deref(),
            Some(
                "vérification non effectuée (une étape précédente a échoué) : deploy failed: never booted"
            )
        );
        let record = ConformityRecord::new("labo", "2026-11-22T15:31:00+01:00", parc(), v);
        let html = render_html(&record);
        assert!(html.contains("Postes conformes : 1 sur 3"), "{html}");
        assert!(
            html.contains("Vérifié le 21/11/2026 à 09:00 par parc (version non enregistrée), lancé par root@lab (exécution précédente)"),
            "{html}"
        );
        assert!(
            html.contains("<td>labo-pc05</td><td class=\"ko\">Vérification impossible</td>"),
            "{html}"
        );
        // The reasons and their fixes.
        let json: serde_json::Value = serde_json::from_str(&render_json(&record)).unwrap();
        assert_eq!(
            json["hosts"][1]["problems"][0]["fix"],
            "rejoindre le domaine et revérifier : `parc master labo --from join --hosts labo-pc03`"
        );
        assert_eq!(json["hosts"][2]["status"], "verification-impossible");
        assert_eq!(
            json["hosts"][2]["error"],
            "vérification non effectuée (une étape précédente a échoué) : deploy failed: never booted"
        );
        assert_eq!(
            json["hosts"][2]["problems"][0]["fix"],
            "corriger la cause de l'échec indiquée, puis relancer `parc reimage labo-pc05`"
        );
        assert_eq!(json["hosts"][2]["earlier_run"], true);
        assert_eq!(json["hosts"][1]["earlier_run"], false);
    }

    #[test]
    fn html_escapes_everything_the_record_holds() {
        let v = vec![HostVerdict {
            host: "<b>".into(),
            error: Some("a&b".into()),
            ..Default::default()
        }];
        let mut r = ConformityRecord::new("<salle>", "t", ParcRun::this("x<y>@h"), v);
        r.software.signed = Signed::Signed;
        r.software.signers = vec![Signer {
            teacher: "Mme <i>O'Brien</i>".into(),
            discipline: "\"SVT\"".into(),
            date: "2026-09-14".into(),
        }];
        let html = render_html(&r);
        assert!(
            html.contains("&lt;b&gt;") && html.contains("a&amp;b"),
            "{html}"
        );
        assert!(html.contains("salle &lt;salle&gt;"), "{html}");
        assert!(html.contains("x&lt;y&gt;@h"), "{html}");
        assert!(
            html.contains("Mme &lt;i&gt;O&#39;Brien&lt;/i&gt; (&quot;SVT&quot;)"),
            "{html}"
        );
        assert!(!html.contains("<b>") && !html.contains("<i>"), "{html}");
    }
}
