//! The console's pages, in French, server-rendered: they read without JavaScript; the room
//! page's small script only swaps the tiles the event stream sends.

use std::fmt::Write as _;

use super::tiles::{Board, Progress, Tile, TileState};
use crate::audit::Stored;
use crate::journal::{AttemptRow, RunRow};
use crate::steps::report::{ConformityRecord, HostStatus, Signed};

pub use crate::report::html::esc;

const CSS: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #f6f6f6; }
header { background: #000091; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.5rem; align-items: baseline; flex-wrap: wrap; }
header a { color: #fff; } header strong { font-size: 1.15rem; }
main { padding: 1rem 1.2rem; }
table { border-collapse: collapse; background: #fff; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.ok { color: #18753c; } .ko { color: #ce0500; } .wait { color: #666; }
tr.rompue { background: #fee; }
#postes { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .8rem; }
.tile { background: #fff; border: 1px solid #bbb; border-left: .5rem solid #999; border-radius: 4px; padding: .5rem .7rem; }
.tile.running { border-left-color: #0063cb; } .tile.done { border-left-color: #18753c; } .tile.failed { border-left-color: #ce0500; }
.tile h3 { margin: 0 0 .3rem; font-size: 1.05rem; } .tile p { margin: .15rem 0; font-size: .9rem; }
.tile progress { width: 100%; }
.etapes span { display: inline-block; margin: 0 .3rem .3rem 0; padding: .1rem .5rem; border-radius: 3px; background: #e5e5e5; }
.etapes .running { background: #cfe2ff; } .etapes .done { background: #d1f0da; } .etapes .failed, .etapes .blocked { background: #ffd7d7; }
details { margin-top: .3rem; font-size: .85rem; }
"#;

/// A whole page around `body`.
pub fn page(title: &str, site: &str, body: &str, script: Option<&str>) -> String {
    let script = script
        .map(|s| format!("<script>{s}</script>"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} — parc</title><style>{CSS}</style></head><body>\
         <header><strong>parc</strong><span>{site}</span>\
         <a href=\"/\">Salles</a><a href=\"/executions\">Exécutions</a>\
         <a href=\"/audit\">Journal d'audit</a><a href=\"/rapports\">Rapports</a></header>\
         <main><h1>{t}</h1>{body}</main>{script}</body></html>\n",
        t = esc(title),
        site = esc(site),
    )
}

/// A step's name for the administration.
pub fn step_fr(step: &str) -> &str {
    match step {
        "collect" => "collecte",
        "format" => "formatage",
        "install" => "installation",
        "test" => "test",
        "capture" => "capture",
        "deploy" => "déploiement",
        "join" => "jonction au domaine",
        "verify" => "vérification",
        other => other,
    }
}

/// A state's word.
pub fn state_fr(state: &str) -> &str {
    match state {
        "done" => "terminé",
        "running" => "en cours",
        "failed" => "en échec",
        "skipped" => "sauté",
        "interrupted" => "interrompu",
        "pending" => "à faire",
        "stale" => "à refaire",
        "blocked" => "bloqué",
        "partial" => "partiel",
        "waiting" => "en attente",
        other => other,
    }
}

fn human_bytes(b: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024.0 * MIB {
        format!("{:.1} Gio", b / (1024.0 * MIB))
    } else {
        format!("{:.1} Mio", b / MIB)
    }
}

fn progress_html(p: &Progress) -> String {
    let bytes = p.unit == "bytes";
    let amount = |v: u64| {
        if bytes {
            human_bytes(v as f64)
        } else {
            format!("{v} {}", esc(&p.unit))
        }
    };
    let mut out = String::new();
    if let Some(t) = p.total.filter(|t| *t > 0) {
        let _ = write!(
            out,
            "<progress max=\"{t}\" value=\"{}\"></progress><p>{} / {}",
            p.done.min(t),
            amount(p.done),
            amount(t)
        );
    } else {
        let _ = write!(out, "<p>{}", amount(p.done));
    }
    if let Some(r) = p.rate.filter(|r| *r > 0.0) {
        let _ = if bytes {
            write!(out, " — {}/s", human_bytes(r))
        } else {
            write!(out, " — {r:.1}/s")
        };
    }
    out.push_str("</p>");
    out
}

/// What the console says about the room's domain on a tile.
#[derive(Debug, Clone, Default)]
pub struct DomainText(pub String);

/// One workstation's tile. `form` adds the reimage form (token asked).
pub fn tile(room: &str, t: &Tile, domain: &DomainText) -> String {
    let state = t.state.as_str();
    let step = t.step.as_deref().unwrap_or("");
    let mut out = format!(
        "<article class=\"tile {state}\" id=\"poste-{h}\" data-state=\"{state}\" data-step=\"{s}\">\
         <h3>{h}</h3><p class=\"etape\">{what}</p>",
        h = esc(&t.host),
        s = esc(step),
        what = if step.is_empty() {
            "aucune étape".to_string()
        } else {
            format!("{} : {}", esc(step_fr(step)), esc(state_fr(state)))
        },
    );
    if let Some(p) = t
        .progress
        .as_ref()
        .filter(|_| t.state == TileState::Running)
    {
        out.push_str(&progress_html(p));
    }
    if let Some(path) = &t.path {
        let _ = write!(out, "<p>Image reçue en {}</p>", esc(path));
    }
    if t.joined {
        let _ = write!(out, "<p>Domaine : {}</p>", esc(&domain.0));
    }
    match &t.verified {
        Some(Ok(())) => out.push_str("<p class=\"ok verif\">Vérifié : conforme</p>"),
        Some(Err(why)) => {
            let _ = write!(out, "<p class=\"ko verif\">Non conforme : {}</p>", esc(why));
        }
        None => out.push_str("<p class=\"wait verif\">Pas encore vérifié</p>"),
    }
    if !t.message.is_empty() && t.state == TileState::Failed && !matches!(t.verified, Some(Err(_)))
    {
        let _ = write!(out, "<p class=\"ko\">{}</p>", esc(&t.message));
    }
    let _ = write!(
        out,
        "<details><summary>Réimager ce poste</summary>\
         <form method=\"post\" action=\"/salles/{r}/postes/{h}/reimage\">\
         <label>Jeton <input name=\"jeton\" type=\"password\" autocomplete=\"off\" required></label> \
         <button type=\"submit\">Réimager</button></form></details></article>",
        r = esc(room),
        h = esc(&t.host),
    );
    out
}

/// The run's banner on the room page.
pub fn banner(board: &Board, last_run: Option<&RunRow>) -> String {
    let mut out = String::from("<section id=\"execution\">");
    match (board.run, last_run) {
        (Some(run), _) => {
            let _ = write!(
                out,
                "<p>Exécution <a href=\"/executions/{run}\">n° {run}</a> : {}</p>",
                match &board.outcome {
                    Some(o) => esc(state_fr(o)),
                    None => "en cours".into(),
                }
            );
        }
        (None, Some(r)) => {
            let _ = write!(
                out,
                "<p>Dernière exécution <a href=\"/executions/{id}\">n° {id}</a> : {}</p>",
                esc(state_fr(r.outcome.as_deref().unwrap_or("running"))),
                id = r.id
            );
        }
        (None, None) => out.push_str("<p>Aucune exécution pour cette salle.</p>"),
    }
    if !board.steps.is_empty() {
        out.push_str("<p class=\"etapes\">");
        for s in &board.steps {
            let _ = write!(
                out,
                "<span class=\"{}\">{} : {}</span>",
                esc(&s.status),
                esc(step_fr(&s.step)),
                esc(state_fr(&s.status))
            );
        }
        out.push_str("</p>");
    }
    if !board.note.is_empty() {
        let _ = write!(out, "<p>{}</p>", esc(&board.note));
    }
    out.push_str("</section>");
    out
}

/// The script of the room page: the event stream replaces the tiles and the banner it sends.
pub const ROOM_SCRIPT: &str = r#"
(function () {
  if (!window.EventSource) return;
  var es = new EventSource(location.pathname.replace(/\/$/, '') + '/evenements');
  function swap(id, html, parent) {
    var el = document.getElementById(id);
    if (el) { el.outerHTML = html; }
    else if (parent) { document.getElementById(parent).insertAdjacentHTML('beforeend', html); }
  }
  es.addEventListener('tile', function (e) {
    var d = JSON.parse(e.data);
    var open = document.querySelector('#poste-' + CSS.escape(d.host) + ' details[open]');
    if (open) return; // the technician is typing a token: keep the form
    swap('poste-' + d.host, d.html, 'postes');
  });
  es.addEventListener('run', function (e) { swap('execution', JSON.parse(e.data).html); });
  document.documentElement.dataset.live = 'on';
})();
"#;

/// A table of runs.
pub fn runs_table(runs: &[RunRow]) -> String {
    if runs.is_empty() {
        return "<p>Aucune exécution enregistrée.</p>".into();
    }
    let mut out = String::from(
        "<table><tr><th>N°</th><th>Salle</th><th>Début</th><th>Fin</th><th>Résultat</th>\
         <th>Par</th><th>Sélection</th></tr>",
    );
    for r in runs.iter().rev() {
        let _ = write!(
            out,
            "<tr><td><a href=\"/executions/{id}\">{id}</a></td><td><a href=\"/salles/{room}\">{room}</a></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}@{}</td><td>{}</td></tr>",
            esc(&r.started),
            esc(r.finished.as_deref().unwrap_or("—")),
            esc(state_fr(r.outcome.as_deref().unwrap_or("running"))),
            esc(&r.who),
            esc(&r.host),
            esc(&r.selection),
            id = r.id,
            room = esc(&r.room),
        );
    }
    out.push_str("</table>");
    out
}

/// One run: its attempts, per step and workstation, with errors.
pub fn run_body(run: &RunRow, attempts: &[AttemptRow]) -> String {
    let mut out = format!(
        "<p>Salle <a href=\"/salles/{room}\">{room}</a> — {} par {}@{} (pid {})</p>\
         <p>Recette {}</p><p>Début {}, fin {}</p>",
        esc(state_fr(run.outcome.as_deref().unwrap_or("running"))),
        esc(&run.who),
        esc(&run.host),
        run.pid,
        esc(&run.recipe_digest),
        esc(&run.started),
        esc(run.finished.as_deref().unwrap_or("—")),
        room = esc(&run.room),
    );
    if !run.detail.is_empty() {
        let _ = write!(out, "<p>{}</p>", esc(&run.detail));
    }
    out.push_str(
        "<table><tr><th>Étape</th><th>Poste</th><th>État</th><th>Début</th><th>Fin</th>\
         <th>Message</th></tr>",
    );
    for a in attempts {
        let mut msg = esc(&a.message);
        for cause in a.error_chain.lines().skip(1) {
            let _ = write!(msg, "<br>Cause : {}", esc(cause));
        }
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{msg}</td></tr>",
            esc(step_fr(&a.step)),
            esc(a.host.as_deref().unwrap_or("")),
            if a.status == "done" {
                "ok"
            } else if a.status == "failed" {
                "ko"
            } else {
                "wait"
            },
            esc(state_fr(&a.status)),
            esc(&a.started),
            esc(a.finished.as_deref().unwrap_or("—")),
        );
    }
    out.push_str("</table>");
    out
}

/// The audit log, with the chain's verdict; `broken` is the entry where the chain breaks.
pub fn audit_body(entries: &[Stored], verdict: Result<usize, (i64, String)>) -> String {
    let mut out = match &verdict {
        Ok(n) => format!(
            "<p class=\"ok\" id=\"chaine\" data-intact=\"oui\">Chaîne intacte : {n} entrées vérifiées.</p>"
        ),
        Err((seq, why)) => format!(
            "<p class=\"ko\" id=\"chaine\" data-intact=\"non\">Chaîne rompue à l'entrée n° {seq} : {}. \
             Quelqu'un a modifié le journal d'audit (.parc/audit.db) : gardez-en une copie et signalez-le.</p>",
            esc(why)
        ),
    };
    let broken = verdict.err().map(|(seq, _)| seq);
    out.push_str(
        "<table><tr><th>N°</th><th>Date (UTC)</th><th>Salle</th><th>Action</th><th>Objet</th>\
         <th>Par</th><th>Détail</th></tr>",
    );
    for e in entries.iter().rev() {
        let bad = broken == Some(e.seq);
        let _ = write!(
            out,
            "<tr id=\"audit-{seq}\"{cls}><td>{seq}{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.ts),
            esc(&e.room),
            esc(&e.action),
            esc(&e.subject),
            esc(&e.actor),
            esc(&e.detail),
            seq = e.seq,
            cls = if bad { " class=\"rompue\"" } else { "" },
            mark = if bad { " ⚠ rompue" } else { "" },
        );
    }
    out.push_str("</table>");
    out
}

/// The room's last verify report (its conformity record) on the room page: what was verified,
/// by which parc and when, and per workstation what was found, each problem with its fix.
pub fn record_section(html_name: &str, r: &ConformityRecord) -> String {
    let mut out = format!(
        "<section id=\"verification\"><p>Rapport du {} par parc {} ({}) : <strong class=\"{}\">{} / {} postes conformes</strong> — \
         <a href=\"/rapports/fichiers/{n}\">page imprimable (A4)</a></p><ul>",
        esc(&r.generated_at),
        esc(r.generated_by.parc_version.as_deref().unwrap_or("?")),
        esc(&r.generated_by.actor),
        if r.compliant { "ok" } else { "ko" },
        r.conforming(),
        r.hosts.len(),
        n = esc(html_name),
    );
    match &r.image {
        Some(i) => {
            let _ = write!(
                out,
                "<li>Image {} (version {}, capturée le {}), recette {}</li>",
                esc(&i.id),
                esc(&i.version),
                esc(i.captured_at.as_deref().unwrap_or("date inconnue")),
                esc(&i.recipe_digest)
            );
        }
        None => out.push_str("<li>Image : aucune connue</li>"),
    }
    let signed = match r.software.signed {
        Signed::Signed => "signée",
        Signed::Stale => "signée pour une liste antérieure : à faire signer à nouveau",
        Signed::Unsigned => "non signée",
    };
    let signers: Vec<String> = r
        .software
        .signers
        .iter()
        .map(|s| {
            format!(
                "{} ({}, le {})",
                esc(&s.teacher),
                esc(&s.discipline),
                esc(&s.date)
            )
        })
        .collect();
    let _ = write!(
        out,
        "<li>Liste des logiciels {} ({} produits, empreinte {}){}{}</li>",
        signed,
        r.software.products.len(),
        esc(&r.software.digest),
        if signers.is_empty() { "" } else { " par " },
        signers.join(", ")
    );
    if let Some(d) = &r.domain {
        let _ = write!(
            out,
            "<li>Domaine {} ({}), unité d'organisation {}</li>",
            esc(&d.name),
            esc(&d.realm),
            esc(&d.ou)
        );
    }
    out.push_str(
        "</ul><table><tr><th>Poste</th><th>État</th><th>Vérifié le</th><th>Logiciels trouvés</th>\
         <th>Problème et correction</th></tr>",
    );
    for h in &r.hosts {
        let found = h.observed.as_ref().map_or_else(
            || "—".to_string(),
            |o| {
                o.products
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            esc(&p.product),
                            esc(p.version.as_deref().unwrap_or("absent"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            },
        );
        let problems = h
            .problems
            .iter()
            .map(|p| format!("{} → {}", esc(&p.reason), esc(&p.fix)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{found}</td><td>{problems}</td></tr>",
            esc(&h.host),
            if h.status == HostStatus::Conforme {
                "ok"
            } else {
                "ko"
            },
            esc(h.status.label_fr()),
            esc(h.checked_at.as_deref().unwrap_or("—")),
        );
    }
    out.push_str("</table></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_escapes_what_workstations_say_and_shows_its_state() {
        let t = Tile {
            host: "b204-02".into(),
            step: Some("verify".into()),
            state: TileState::Failed,
            verified: Some(Err("<script>alert(1)</script>".into())),
            joined: true,
            path: Some("multicast".into()),
            ..Tile::default()
        };
        let html = tile("b204", &t, &DomainText("LAB.TEST".into()));
        assert!(html.contains("data-state=\"failed\""));
        assert!(html.contains("vérification : en échec"));
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("Image reçue en multicast"));
        assert!(html.contains("Domaine : LAB.TEST"));
        assert!(html.contains("action=\"/salles/b204/postes/b204-02/reimage\""));
    }

    #[test]
    fn a_broken_audit_chain_marks_its_entry() {
        let e = |seq: i64| Stored {
            seq,
            ts: "2026-12-04T10:00:00Z".into(),
            room: "b204".into(),
            action: "deploy".into(),
            subject: "b204-02".into(),
            actor: "tech@host".into(),
            detail: "image".into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let html = audit_body(&[e(1), e(2)], Err((2, "hash mismatch".into())));
        assert!(html.contains("data-intact=\"non\""));
        assert!(html.contains("<tr id=\"audit-2\" class=\"rompue\">"));
        assert!(!html.contains("<tr id=\"audit-1\" class=\"rompue\">"));
        let html = audit_body(&[e(1)], Ok(1));
        assert!(html.contains("data-intact=\"oui\""));
    }
}
