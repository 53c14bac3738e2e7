//! The verify report for the administration, in French: an HTML page and the same content as
//! JSON, under `<workspace>/reports/`. The time of the report is passed in (no clock here).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::verify::Finding;

/// The verdict on one workstation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostVerdict {
    pub host: String,
    /// Empty when the workstation is compliant (and `error` is None).
    pub findings: Vec<Finding>,
    /// Set when the workstation could not be checked.
    pub error: Option<String>,
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
}

/// The verdicts on every workstation of the room: this run's where it verified the
/// workstation; otherwise the journal's (verified in an earlier run, or why it was not).
pub fn room_verdicts(
    journaled: &[Journaled<'_>],
    mut this_run: BTreeMap<String, HostVerdict>,
) -> Vec<HostVerdict> {
    let mut verdicts: Vec<HostVerdict> = journaled
        .iter()
        .map(|j| {
            this_run.remove(j.host).unwrap_or_else(|| HostVerdict {
                host: j.host.to_owned(),
                findings: Vec::new(),
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
    verdicts.extend(this_run.into_values());
    verdicts
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    room: &'a str,
    generated_at: &'a str,
    compliant: bool,
    hosts: Vec<JsonHost<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    status: &'static str,
    findings: &'a [Finding],
    messages: Vec<String>,
    error: Option<&'a str>,
}

fn status(v: &HostVerdict) -> &'static str {
    if v.error.is_some() {
        "verification-impossible"
    } else if v.findings.is_empty() {
        "conforme"
    } else {
        "non-conforme"
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The JSON report.
pub fn render_json(room: &str, generated_at: &str, verdicts: &[HostVerdict]) -> String {
    let report = JsonReport {
        room,
        generated_at,
        compliant: verdicts.iter().all(HostVerdict::compliant),
        hosts: verdicts
            .iter()
            .map(|v| JsonHost {
                host: &v.host,
                status: status(v),
                findings: &v.findings,
                messages: v.findings.iter().map(Finding::message_fr).collect(),
                error: v.error.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

/// The HTML report (French).
pub fn render_html(room: &str, generated_at: &str, verdicts: &[HostVerdict]) -> String {
    let ok = verdicts.iter().filter(|v| v.compliant()).count();
    let mut rows = String::new();
    for v in verdicts {
        let (label, class) = match status(v) {
            "conforme" => ("Conforme", "ok"),
            "non-conforme" => ("Non conforme", "ko"),
            _ => ("Vérification impossible", "ko"),
        };
        let mut details: Vec<String> = v.findings.iter().map(|f| esc(&f.message_fr())).collect();
        if let Some(e) = &v.error {
            details.push(esc(e));
        }
        let details = if details.is_empty() {
            "—".to_owned()
        } else {
            format!("<ul><li>{}</li></ul>", details.join("</li><li>"))
        };
        rows.push_str(&format!(
            "<tr class=\"{class}\"><td>{}</td><td>{label}</td><td>{details}</td></tr>\n",
            esc(&v.host)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head><meta charset=\"utf-8\"><title>Vérification de la salle {room}</title>\n\
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #999;padding:4px 8px;vertical-align:top}} tr.ok td:nth-child(2){{color:#060}} tr.ko td:nth-child(2){{color:#a00;font-weight:bold}}</style></head>\n\
<body>\n<h1>Vérification de la salle {room}</h1>\n<p>Rapport établi le {at}. Postes conformes : {ok} sur {n}.</p>\n\
<table>\n<tr><th>Poste</th><th>État</th><th>Constats</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        room = esc(room),
        at = esc(generated_at),
        n = verdicts.len(),
    )
}

/// The files written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub json: PathBuf,
}

/// Writes `reports/verification-<room>-<stamp>.{html,json}` under `workspace`; `stamp` is a
/// file-name-safe form of the time (e.g. `20261122T151800Z`).
pub fn write_verify_report(
    workspace: &Path,
    room: &str,
    generated_at: &str,
    stamp: &str,
    verdicts: &[HostVerdict],
) -> std::io::Result<ReportFiles> {
    let dir = workspace.join("reports");
    fs::create_dir_all(&dir)?;
    let base = format!("verification-{room}-{stamp}");
    let files = ReportFiles {
        html: dir.join(format!("{base}.html")),
        json: dir.join(format!("{base}.json")),
    };
    fs::write(&files.html, render_html(room, generated_at, verdicts))?;
    fs::write(&files.json, render_json(room, generated_at, verdicts))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_json_say_which_host_fails_and_why_in_french() {
        let verdicts = vec![
            HostVerdict {
                host: "b204-p01".into(),
                findings: vec![],
                error: None,
            },
            HostVerdict {
                host: "b204-p02".into(),
                findings: vec![Finding::ProductVersion {
                    product: "GeoGebra".into(),
                    expected: "6.0".into(),
                    actual: Some("5.2".into()),
                }],
                error: None,
            },
        ];
        let html = render_html("B204", "22/11/2026 15:18", &verdicts);
        assert!(html.contains("Postes conformes : 1 sur 2"), "{html}");
        assert!(html.contains("logiciel GeoGebra en version 5.2 au lieu de 6.0"));
        let json: serde_json::Value =
            serde_json::from_str(&render_json("B204", "x", &verdicts)).unwrap();
        assert_eq!(json["compliant"], false);
        assert_eq!(json["hosts"][1]["status"], "non-conforme");
        assert_eq!(json["hosts"][1]["findings"][0]["kind"], "product-version");
    }

    #[test]
    fn the_room_report_takes_this_runs_verdicts_and_the_journal_for_the_others() {
        let log = VerifyLog::default();
        log.record(HostVerdict {
            host: "labo-pc03".into(),
            findings: vec![Finding::ComputerMissing {
                computer: "LABO-PC03".into(),
            }],
            error: None,
        });
        let journaled = [
            Journaled {
                host: "labo-pc02",
                state: "done",
                detail: String::new(),
            },
            Journaled {
                host: "labo-pc03",
                state: "failed",
                detail: "x".into(),
            },
            Journaled {
                host: "labo-pc05",
                state: "skipped",
                detail: "deploy failed: never booted".into(),
            },
        ];
        let v = room_verdicts(&journaled, log.take());
        assert!(log.take().is_empty(), "taken once");
        let hosts: Vec<&str> = v.iter().map(|v| v.host.as_str()).collect();
        assert_eq!(hosts, ["labo-pc02", "labo-pc03", "labo-pc05"]);
        assert!(v[0].compliant());
        assert_eq!(
            v[1].findings.len(),
            1,
            "this run's findings, not the journal's text"
        );
        assert_eq!(
            v[2].error.as_deref(),
            Some(
                "vérification non effectuée (une étape précédente a échoué) : deploy failed: never booted"
            )
        );
        let html = render_html("labo", "t", &v);
        assert!(html.contains("Postes conformes : 1 sur 3"), "{html}");
    }

    #[test]
    fn html_escapes_what_hosts_report() {
        let v = vec![HostVerdict {
            host: "<b>".into(),
            findings: vec![],
            error: Some("a&b".into()),
        }];
        let html = render_html("B204", "t", &v);
        assert!(html.contains("&lt;b&gt;") && html.contains("a&amp;b"));
    }
}
